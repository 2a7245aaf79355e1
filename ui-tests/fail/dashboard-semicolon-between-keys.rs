// A `;` instead of a `,` between two keys.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        title: "Tasks";
        page_size: 20,
    }
}

fn main() {}
