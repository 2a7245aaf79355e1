// A key written as a JSON string.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        "title": "Tasks",
    }
}

fn main() {}
