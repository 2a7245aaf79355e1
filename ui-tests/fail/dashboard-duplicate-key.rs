// A key given twice: error on the second.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        title: "Tasks",
        page_size: 20,
        title: "Again",
    }
}

fn main() {}
