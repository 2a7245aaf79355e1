//! One run's event writer: events in order, progress coalesced.
//!
//! The task hands progress to [`Recorder::report`] (a mutex and a notify, no
//! I/O); the recorder's loop runs beside the task and writes the events in
//! the order they were pushed. Progress is written at most once per
//! interval, always the latest value; what is still pending when the run
//! ends is merged into the terminal event, so it is persisted with it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::TrackingConfig;
use crate::lifecycle::{Event, EventKind, Progress, Tracker};
use crate::run::context::ProgressSink;

#[derive(Default)]
struct State {
    queue: VecDeque<Event>,
    progress: Option<Progress>,
    message: Option<String>,
    closed: bool,
}

pub(crate) struct Recorder<M: TrackingConfig> {
    tracker: Tracker<M>,
    key: String,
    interval: Duration,
    state: Mutex<State>,
    wake: Notify,
    /// The run's shared state: an orphaned run writes nothing more.
    control: std::sync::Arc<super::Control>,
}

enum Step {
    Write(Box<Event>),
    WaitUntil(Instant),
    Wait,
    Done,
}

impl<M: TrackingConfig> Recorder<M> {
    pub fn new(
        tracker: Tracker<M>,
        key: String,
        interval: Duration,
        control: std::sync::Arc<super::Control>,
    ) -> Self {
        Recorder {
            tracker,
            key,
            interval,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            control,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event` (its key is the run's).
    pub fn push(&self, mut event: Event) {
        event.key.clone_from(&self.key);
        self.state().queue.push_back(event);
        self.wake.notify_one();
    }

    /// No more events: the loop ends once everything is written.
    pub fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }

    /// Writes events until closed and drained.
    pub async fn run(&self) {
        let mut next_progress = Instant::now();
        loop {
            let step = {
                let mut st = self.state();
                if let Some(mut event) = st.queue.pop_front() {
                    if event.kind.is_terminal() {
                        // Persist the latest progress with the terminal event.
                        if let Some(p) = st.progress.take()
                            && event.progress.is_none()
                        {
                            event.progress = Some(p);
                        }
                        if let Some(m) = st.message.take()
                            && event.message.is_none()
                        {
                            event.message = Some(m);
                        }
                    }
                    Step::Write(Box::new(event))
                } else if st.progress.is_some() || st.message.is_some() {
                    let now = Instant::now();
                    if now >= next_progress {
                        next_progress = now + self.interval;
                        let mut event = Event::new(EventKind::Progress, &self.key);
                        event.progress = st.progress.take();
                        event.message = st.message.take();
                        self.tracker
                            .runs()
                            .progress_writes
                            .fetch_add(1, Ordering::Relaxed);
                        Step::Write(Box::new(event))
                    } else {
                        Step::WaitUntil(next_progress)
                    }
                } else if st.closed {
                    Step::Done
                } else {
                    Step::Wait
                }
            };
            match step {
                Step::Write(event) => {
                    if self.control.orphaned.load(Ordering::Acquire) {
                        // Another instance took the run over (and may have
                        // deleted it): an event now could re-create its row.
                        tracing::debug!(key = %self.key, kind = ?event.kind, "tasktrail: an event of a run taken over by another instance is not written");
                        continue;
                    }
                    // Errors are logged and counted by the tracker; what the
                    // database cannot take now waits in its retry queue.
                    let _ = self.tracker.lifecycle(*event).await;
                }
                Step::WaitUntil(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => {}
                    }
                }
                Step::Wait => self.wake.notified().await,
                Step::Done => return,
            }
        }
    }
}

impl<M: TrackingConfig> ProgressSink for Recorder<M> {
    fn report(&self, progress: Option<Progress>, message: Option<String>) {
        let mut st = self.state();
        if st.closed {
            return;
        }
        if progress.is_some() {
            st.progress = progress;
        }
        if message.is_some() {
            st.message = message;
        }
        drop(st);
        self.wake.notify_one();
    }
}
