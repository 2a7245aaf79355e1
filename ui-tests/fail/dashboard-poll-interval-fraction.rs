// A fractional duration.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        poll_interval: 1.5s,
    }
}

fn main() {}
