// A keyword where a field name goes: a field called `type` is written
// `r#type`.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        columns: [task_key, type],
    }
}

fn main() {}
