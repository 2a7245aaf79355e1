// Actions written as strings.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        actions: ["cancel", "retry"],
    }
}

fn main() {}
