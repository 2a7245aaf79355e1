// A `#[derive]` on the struct, which `dashboard!` already derives.

tasktrail::dashboard! {
    #[derive(Debug, Default)]
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        title: "Tasks",
    }
}

fn main() {}
