// An action that does not exist: error on it, with the actions there are.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        actions: [cancel, archive],
    }
}

fn main() {}
