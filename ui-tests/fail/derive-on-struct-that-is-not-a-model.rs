// The derive on a plain struct: no sea-orm `Entity` / `Column` beside it.

use tasktrail::TrackingConfig;

#[derive(Clone, Debug, TrackingConfig)]
pub struct Job {
    pub task_key: String,
    pub status: String,
    pub message: Option<String>,
}

fn main() {}
