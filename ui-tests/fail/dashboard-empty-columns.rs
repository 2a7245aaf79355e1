// An empty column list.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        columns: [],
    }
}

fn main() {}
