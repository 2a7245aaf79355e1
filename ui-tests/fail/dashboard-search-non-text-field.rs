// Search over a timestamp: error on the field.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        search: [task_name, created_at],
    }
}

fn main() {}
