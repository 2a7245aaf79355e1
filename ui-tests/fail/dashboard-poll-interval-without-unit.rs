// A duration without a unit.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        poll_interval: 10,
    }
}

fn main() {}
