// A poll interval under 100ms.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        poll_interval: 10ms,
    }
}

fn main() {}
