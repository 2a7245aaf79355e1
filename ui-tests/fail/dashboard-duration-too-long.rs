// A duration longer than the generated code can hold (u64 milliseconds).

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        poll_interval: 18446744073709551615m,
    }
}

fn main() {}
