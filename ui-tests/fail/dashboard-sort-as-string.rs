// The sort written as one string.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        sort: "created_at desc",
    }
}

fn main() {}
