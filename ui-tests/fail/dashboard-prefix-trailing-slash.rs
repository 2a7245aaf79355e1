// A prefix ending with a slash.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        url_prefix: "/ops/",
    }
}

fn main() {}
