// read_only given a string.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        read_only: "yes",
    }
}

fn main() {}
