// A prefix with a `..` segment.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        url_prefix: "/ops/../admin",
    }
}

fn main() {}
