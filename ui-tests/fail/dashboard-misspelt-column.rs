// A column that is not a field: error on the name, with the similar field.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        columns: [task_name, stauts],
    }
}

fn main() {}
