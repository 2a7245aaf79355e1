// columns given a single name, not a list.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        columns: task_name,
    }
}

fn main() {}
