// A colour that is not #rgb / #rrggbb.

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::task_run::Entity> {
        accent_colour: "blue",
    }
}

fn main() {}
