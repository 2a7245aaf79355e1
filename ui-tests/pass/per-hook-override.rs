// Each hook overridden by a path: `format_user`, `format_objects`, `format_payload`.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    #[tracking(format_user = hooks::user, format_objects = hooks::objects, format_payload = self::hooks::payload)]
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

    pub mod hooks {
        use tasktrail::{Actor, PayloadKind, TrackedObject};

        pub fn user(user: Option<&dyn Actor>) -> String {
            user.map_or_else(|| "nobody".to_owned(), |u| u.label().to_uppercase())
        }

        pub fn objects(objects: &[&dyn TrackedObject]) -> String {
            format!("{} objects", objects.len())
        }

        pub fn payload(_kind: PayloadKind, value: serde_json::Value) -> serde_json::Value {
            serde_json::json!({ "wrapped": value })
        }
    }
}

fn main() {
    let _ = |db: sea_orm::DatabaseConnection| task_run::Tracker::new(db);
    let fields = <task_run::Model as tasktrail::TrackingConfig>::FIELDS;
    use tasktrail::FormatHooks;
    assert_eq!(fields.len(), 6);
    assert_eq!(task_run::Model::format_user(None), "nobody");
    assert_eq!(task_run::Model::format_objects(&[]), "0 objects");
}
