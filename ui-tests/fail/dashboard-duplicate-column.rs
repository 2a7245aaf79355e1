// A column listed twice.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        columns: [status, task_name, status],
    }
}

fn main() {}
