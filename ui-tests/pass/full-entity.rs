// Every role mapped, by convention or explicitly, with every struct option.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    #[tracking(redact = ["password", "token"], max_payload_bytes = 2048, progress_sets_message)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub task_name: String,
        pub status: String,
        pub message: Option<String>,
        #[tracking(progress)]
        pub percent: Option<f32>,
        pub user_label: Option<String>,
        pub affected_objects: Option<String>,
        pub task_args: Option<Json>,
        pub task_kwargs: Option<Json>,
        pub result_payload: Option<Json>,
        pub cleaned_up: bool,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub started_at: Option<DateTimeUtc>,
        pub completed_at: Option<DateTimeUtc>,
        #[tracking(failed_at, label = "Crashed at")]
        pub crashed_at: Option<DateTimeUtc>,
        #[tracking(retry_of)]
        pub retried_from: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {
    let _ = |db: sea_orm::DatabaseConnection| task_run::Tracker::new(db);
    let fields = <task_run::Model as tasktrail::TrackingConfig>::FIELDS;
    for role in tasktrail::Role::ALL {
        assert!(
            <task_run::Model as tasktrail::TrackingConfig>::binding(role).is_some(),
            "{role} is not mapped"
        );
    }
    assert_eq!(fields.len(), 18);
    let options = <task_run::Model as tasktrail::TrackingConfig>::OPTIONS;
    assert_eq!(options.redact, &["password", "token"]);
    assert_eq!(options.max_payload_bytes, 2048);
    assert!(options.progress_sets_message);
    assert_eq!(fields[16].label, "Crashed at");
}
