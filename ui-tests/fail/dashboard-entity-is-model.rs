// The entity's `Model` instead of its `Entity`.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Model> {
        title: "Tasks",
    }
}

fn main() {}
