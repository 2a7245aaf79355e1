// A time zone that is not UTC, local or an offset.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        time_zone: "Europe/Paris",
    }
}

fn main() {}
