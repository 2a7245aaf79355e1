//! How a batch of ops becomes statements: rounds that keep each lane's
//! order, multi-row statements for rows of one template within a round.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Op, Template, Work};

/// The ops of each round, by index: round `r` holds the `r`-th op of every
/// lane (ops without a lane are all in round 0), in batch order.
pub(crate) fn rounds(lanes: impl IntoIterator<Item = Option<u64>>) -> Vec<Vec<usize>> {
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, lane) in lanes.into_iter().enumerate() {
        let round = match lane {
            Some(lane) => {
                let n = seen.entry(lane).or_insert(0);
                *n += 1;
                *n - 1
            }
            None => 0,
        };
        if rounds.len() <= round {
            rounds.resize_with(round + 1, Vec::new);
        }
        rounds[round].push(i);
    }
    rounds
}

/// The sizes a group of `n` rows is cut into: powers of two, largest
/// first, none above `max`.
pub(crate) fn chunks(mut n: usize, max: usize) -> Vec<usize> {
    let max = max.max(1);
    let mut out = Vec::new();
    while n > 0 {
        let size = if n >= max { max } else { 1 << n.ilog2() };
        out.push(size);
        n -= size;
    }
    out
}

/// The statements that write `ops`, in order, each with the indices of the
/// ops it writes.
/// An op's `updated_at` ([`super::feed::Stamp`]) is set to `now`.
pub(crate) fn plan(
    ops: &[Op],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(sea_orm::Statement, Vec<usize>)> {
    let stamp = |op: &Op, values: &mut [sea_orm::Value], base: usize| {
        if let Some(s) = op.change.as_ref().and_then(|c| c.stamp)
            && let Some(v) = values.get_mut(base + s.index)
        {
            *v = (s.encode)(now);
        }
    };
    let mut out = Vec::new();
    for round in rounds(ops.iter().map(|op| op.lane)) {
        // Groups in order of first appearance; lone statements in place.
        enum Item {
            Group(Arc<Template>, Vec<usize>),
            Single(usize),
        }
        let mut items: Vec<Item> = Vec::new();
        let mut group_of: HashMap<*const Template, usize> = HashMap::new();
        for i in round {
            match &ops[i].work {
                Work::Row { template, .. } => {
                    let ptr = Arc::as_ptr(template);
                    match group_of.get(&ptr) {
                        Some(&g) => {
                            if let Item::Group(_, rows) = &mut items[g] {
                                rows.push(i);
                            }
                        }
                        None => {
                            group_of.insert(ptr, items.len());
                            items.push(Item::Group(template.clone(), vec![i]));
                        }
                    }
                }
                Work::Statement(_) => items.push(Item::Single(i)),
            }
        }
        for item in items {
            match item {
                Item::Single(i) => {
                    if let Work::Statement(stmt) = &ops[i].work {
                        let mut stmt = stmt.clone();
                        if let Some(values) = stmt.values.as_mut() {
                            stamp(&ops[i], &mut values.0, 0);
                        }
                        out.push((stmt, vec![i]));
                    }
                }
                Item::Group(template, rows) => {
                    let mut rest = rows.as_slice();
                    for size in chunks(rows.len(), template.max_rows()) {
                        let (these, later) = rest.split_at(size);
                        rest = later;
                        let mut values = Vec::with_capacity(size * template.params_per_row);
                        for &i in these {
                            if let Work::Row { values: v, .. } = &ops[i].work {
                                let base = values.len();
                                values.extend(v.iter().cloned());
                                stamp(&ops[i], &mut values, base);
                            }
                        }
                        let sql = template.sql(size);
                        out.push((
                            sea_orm::Statement::from_sql_and_values(
                                template.backend,
                                &*sql,
                                values,
                            ),
                            these.to_vec(),
                        ));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_keep_each_lane_in_order() {
        let lanes = [Some(1), Some(2), Some(1), None, Some(1), Some(2), None];
        assert_eq!(rounds(lanes), vec![vec![0, 1, 3, 6], vec![2, 5], vec![4]]);
        assert!(rounds([]).is_empty());
    }

    #[test]
    fn chunks_are_powers_of_two() {
        assert_eq!(chunks(37, 64), vec![32, 4, 1]);
        assert_eq!(chunks(300, 128), vec![128, 128, 32, 8, 4]);
        assert_eq!(chunks(1, 64), vec![1]);
        assert_eq!(chunks(0, 64), Vec::<usize>::new());
        for n in 0..600 {
            let c = chunks(n, 256);
            assert_eq!(c.iter().sum::<usize>(), n);
            assert!(c.iter().all(|s| s.is_power_of_two() && *s <= 256));
        }
    }

    #[test]
    fn rows_of_one_template_share_a_statement_per_round() {
        use sea_orm::{DbBackend, Value};
        let t = Template::new(DbBackend::Sqlite, 2, |n| {
            let rows = vec!["(?, ?)"; n].join(", ");
            format!("INSERT INTO t (k, v) VALUES {rows}")
        });
        let row = |lane: u64, v: i64| Op {
            lane: Some(lane),
            work: Work::Row {
                template: t.clone(),
                values: vec![Value::BigInt(Some(lane as i64)), Value::BigInt(Some(v))],
            },
            on_transient: super::super::OnTransient::Retry,
            ack: None,
            change: None,
        };
        let stmt = |lane: u64| Op {
            lane: Some(lane),
            work: Work::Statement(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                format!("DELETE FROM t WHERE k = {lane}"),
            )),
            on_transient: super::super::OnTransient::Retry,
            ack: None,
            change: None,
        };
        // Lane 1 twice: its second row waits for round 1.
        let ops = vec![row(1, 10), row(2, 20), stmt(3), row(1, 11), row(4, 40)];
        let plan = plan(&ops, chrono::Utc::now());
        let shapes: Vec<(String, Vec<usize>)> = plan
            .iter()
            .map(|(s, rows)| (s.sql.clone(), rows.clone()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                // Round 0: rows 0, 1, 4 → 2 + 1; the statement in place.
                (
                    "INSERT INTO t (k, v) VALUES (?, ?), (?, ?)".into(),
                    vec![0, 1]
                ),
                ("INSERT INTO t (k, v) VALUES (?, ?)".into(), vec![4]),
                ("DELETE FROM t WHERE k = 3".into(), vec![2]),
                // Round 1: lane 1's second row.
                ("INSERT INTO t (k, v) VALUES (?, ?)".into(), vec![3]),
            ]
        );
        let values = plan[0].0.values.as_ref().unwrap().0.clone();
        assert_eq!(
            values,
            vec![
                Value::BigInt(Some(1)),
                Value::BigInt(Some(10)),
                Value::BigInt(Some(2)),
                Value::BigInt(Some(20))
            ]
        );
    }
}
