// `read_only` written as a bare flag.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        title: "Tasks",
        read_only,
    }
}

fn main() {}
