// `hooks = custom` with a hand-written `impl tasktrail::FormatHooks`.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;
    use tasktrail::{Actor, PayloadKind, TrackedObject};

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    #[tracking(hooks = custom)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub status: String,
        pub user_label: Option<String>,
        pub affected_objects: Option<String>,
        pub task_args: Option<Json>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl tasktrail::FormatHooks for Model {
        fn format_user(user: Option<&dyn Actor>) -> String {
            user.map_or_else(|| "system".to_owned(), |u| format!("user:{}", u.label()))
        }
        fn format_objects(objects: &[&dyn TrackedObject]) -> String {
            objects
                .iter()
                .map(|o| o.object_key())
                .collect::<Vec<_>>()
                .join(" | ")
        }
        fn format_payload(kind: PayloadKind, value: serde_json::Value) -> serde_json::Value {
            serde_json::json!({ "kind": format!("{kind:?}"), "value": value })
        }
    }
}

fn main() {
    let _ = |db: sea_orm::DatabaseConnection| task_run::Tracker::new(db);
    let fields = <task_run::Model as tasktrail::TrackingConfig>::FIELDS;
    use tasktrail::FormatHooks;
    assert_eq!(fields.len(), 6);
    assert_eq!(task_run::Model::format_user(None), "system");
}
