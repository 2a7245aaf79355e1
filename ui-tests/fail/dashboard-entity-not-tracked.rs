// An entity without #[derive(TrackingConfig)].

tasktrail::dashboard! {
    pub struct Ops<tasktrail_ui_tests::plain_row::Entity> {
        title: "Rows",
    }
}

fn main() {}
