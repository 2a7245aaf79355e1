// `#[tracking(skip)]` on a field with a conventional name and a type the role refuses:
// skipped, so not type-checked.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub status: String,
        #[tracking(skip)]
        pub message: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {
    let _ = |db: sea_orm::DatabaseConnection| task_run::Tracker::new(db);
    let fields = <task_run::Model as tasktrail::TrackingConfig>::FIELDS;
    assert_eq!(fields[3].field, "message");
    assert_eq!(fields[3].role, None);
    assert!(<task_run::Model as tasktrail::TrackingConfig>::binding(tasktrail::Role::Message).is_none());
}
