// A page size out of range.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        page_size: 0,
    }
}

fn main() {}
