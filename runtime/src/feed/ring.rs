//! The newest entries of the feed kept in memory, in the feed's order:
//! the process's reader keeps changes, a dashboard's follower its events.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{ChangeRow, Cursor};

/// An entry's place in the feed.
pub(crate) trait Placed {
    fn cursor(&self) -> Cursor;
}

impl Placed for Arc<ChangeRow> {
    fn cursor(&self) -> Cursor {
        self.cursor
    }
}

/// What a ring holds after a cursor.
pub(crate) enum Since<T> {
    /// Every entry after it (up to the number asked).
    Rows(Vec<T>),
    /// Entries after it have left the ring (or the ring has not started):
    /// read the database from the cursor, up to this floor.
    Behind(Option<Cursor>),
}

/// At most `cap` entries, oldest first; it holds every entry after its
/// floor.
pub(crate) struct Ring<T> {
    items: VecDeque<T>,
    /// `None` until [`start`](Self::start).
    floor: Option<Cursor>,
    /// The place read up to (past entries that were not kept, too).
    head: Option<Cursor>,
    cap: usize,
}

impl<T: Placed + Clone> Ring<T> {
    pub fn new(cap: usize) -> Self {
        Ring {
            items: VecDeque::new(),
            floor: None,
            head: None,
            cap,
        }
    }

    /// Empties the ring, to hold what comes after `at`.
    pub fn start(&mut self, at: Cursor) {
        self.items.clear();
        self.floor = Some(at);
        self.head = Some(at);
    }

    /// Empties the ring and forgets its place.
    #[cfg(feature = "dashboard")]
    pub fn stop(&mut self) {
        self.items.clear();
        self.floor = None;
        self.head = None;
    }

    pub fn head(&self) -> Option<Cursor> {
        self.head
    }

    /// Adds `items` (after the present ones, in order), read up to `head`;
    /// the oldest leave beyond the capacity.
    pub fn push(&mut self, items: impl IntoIterator<Item = T>, head: Cursor) {
        self.items.extend(items);
        while self.items.len() > self.cap {
            if let Some(gone) = self.items.pop_front() {
                self.floor = Some(gone.cursor());
            }
        }
        self.head = Some(head);
    }

    /// Up to `max` entries after `after`.
    pub fn since(&self, after: Cursor, max: usize) -> Since<T> {
        match self.floor {
            Some(floor) if after >= floor => {
                let start = self.items.partition_point(|i| i.cursor() <= after);
                Since::Rows(self.items.range(start..).take(max).cloned().collect())
            }
            floor => Since::Behind(floor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct E(i64);
    impl Placed for E {
        fn cursor(&self) -> Cursor {
            Cursor {
                txid: 0,
                seq: self.0,
            }
        }
    }
    fn at(seq: i64) -> Cursor {
        Cursor { txid: 0, seq }
    }

    #[test]
    fn a_ring_answers_from_its_floor_on() {
        let mut ring = Ring::new(3);
        assert!(matches!(ring.since(at(0), 10), Since::Behind(None)));
        ring.start(at(10));
        ring.push([E(11), E(12)], at(12));
        let Since::Rows(rows) = ring.since(at(10), 10) else {
            panic!()
        };
        assert_eq!(rows, [E(11), E(12)]);
        let Since::Rows(rows) = ring.since(at(11), 1) else {
            panic!()
        };
        assert_eq!(rows, [E(12)]);
        // Two more: 11 leaves, the floor moves to it.
        ring.push([E(13), E(14)], at(20));
        assert_eq!(ring.head(), Some(at(20)));
        assert!(matches!(ring.since(at(10), 10), Since::Behind(Some(c)) if c == at(11)));
        let Since::Rows(rows) = ring.since(at(11), 10) else {
            panic!()
        };
        assert_eq!(rows, [E(12), E(13), E(14)]);
        ring.stop();
        assert!(matches!(ring.since(at(11), 10), Since::Behind(None)));
    }
}
