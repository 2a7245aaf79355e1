// The entity's module instead of its `Entity`.
use tasktrail_ui_tests::task_run;

tasktrail::dashboard! {
    pub struct Ops<task_run> {
        title: "Tasks",
    }
}

fn main() {}
