// Column names written as strings.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        columns: ["task_name", "status"],
    }
}

fn main() {}
