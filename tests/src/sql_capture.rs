//! Captures the statements tasktrail's writer sends, as it traces them
//! (TRACE events of the target `tasktrail::sql`, with the fields `sql` and
//! `binds`): its batches go to sqlx directly, past sea-orm's metric
//! callback. Install [`Layer`] in the global subscriber; statements are
//! captured only while a sink is set ([`start`] … [`stop`]), so a
//! measurement pays one atomic load per statement.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Metadata, Subscriber, subscriber::Interest};

/// Where captured statements go: `(sql, binds)` in order.
pub type Captured = Arc<Mutex<Vec<(String, usize)>>>;

static ON: AtomicBool = AtomicBool::new(false);
static SINK: Mutex<Option<Captured>> = Mutex::new(None);

/// Sends every traced statement to `sink` until [`stop`].
pub fn start(sink: Captured) {
    *SINK.lock().expect("sink") = Some(sink);
    ON.store(true, Ordering::Release);
}

/// Stops capturing.
pub fn stop() {
    ON.store(false, Ordering::Release);
    *SINK.lock().expect("sink") = None;
}

/// The capturing layer (one per process, in the global subscriber).
pub struct Layer;

#[derive(Default)]
struct Fields {
    sql: String,
    binds: usize,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "binds" {
            self.binds = value as usize;
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "binds" {
            self.binds = value as usize;
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "sql" {
            self.sql = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "sql" {
            self.sql = value.to_owned();
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.target() == "tasktrail::sql" {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }
    fn enabled(&self, meta: &Metadata<'_>, _: tracing_subscriber::layer::Context<'_, S>) -> bool {
        meta.target() == "tasktrail::sql" && ON.load(Ordering::Acquire)
    }
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "tasktrail::sql" || !ON.load(Ordering::Acquire) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(sink) = &*SINK.lock().expect("sink") {
            sink.lock().expect("lock").push((fields.sql, fields.binds));
        }
    }
}
