// A search field that is not a field.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        search: [mesage],
    }
}

fn main() {}
