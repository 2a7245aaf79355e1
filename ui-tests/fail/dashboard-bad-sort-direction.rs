// A sort direction that is neither asc nor desc.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        sort: created_at newest,
    }
}

fn main() {}
