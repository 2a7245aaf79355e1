// A filter that is not a field.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        filters: [task_nme],
    }
}

fn main() {}
