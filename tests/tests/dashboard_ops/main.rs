//! The dashboard's operator tools (issue 16), one test binary: search
//! routed to an index, time ranges, task-kind pages, stuck runs, the trace
//! view, runs started from the page, streamed export and unbounded bulk
//! actions, and the comfort features (dark mode, shortcuts). Each area is a
//! module; they share this binary so the suite links it once.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

mod comfort;
mod export;
mod kinds;
mod search;
mod start;
mod trace;

/// The log lines and spans the runs of this test binary write: a global
/// subscriber (the runs run on the runtime's worker threads) with the log
/// layer.
#[allow(dead_code)] // until a module uses it
pub fn logs() -> Arc<tasktrail::logs::MemoryLogStorage> {
    static LOGS: OnceLock<Arc<tasktrail::logs::MemoryLogStorage>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let logs = Arc::new(tasktrail::logs::MemoryLogStorage::new(100_000));
        let subscriber =
            tracing_subscriber::registry().with(tasktrail::logs::TaskLogLayer::new(logs.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    })
    .clone()
}

/// Serves `app` over TCP on a free loopback port, with the peer's address
/// (for the browser tests).
pub async fn serve(
    app: axum::Router,
) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );
    (addr, server)
}
