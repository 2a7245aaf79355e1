// A comma left out between two keys, one per line.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        title: "Tasks"
        page_size: 20,
    }
}

fn main() {}
