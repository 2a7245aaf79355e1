// A duration written as a string.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        poll_interval: "10s",
    }
}

fn main() {}
