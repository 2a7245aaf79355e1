// A string key given a number.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        title: 42,
    }
}

fn main() {}
