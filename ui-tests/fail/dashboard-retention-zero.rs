// retention_days of zero.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        retention_days: 0,
    }
}

fn main() {}
