// A key without its colon.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        title "Tasks",
    }
}

fn main() {}
