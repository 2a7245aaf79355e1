// A sort field that is not a field.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        sort: created desc,
    }
}

fn main() {}
