// A duration with an unknown unit.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        poll_interval: 2d,
    }
}

fn main() {}
