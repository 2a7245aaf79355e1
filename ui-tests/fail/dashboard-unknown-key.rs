// A misspelt key: error on it, with the key it resembles.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        titel: "Tasks",
    }
}

fn main() {}
