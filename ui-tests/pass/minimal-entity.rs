// Only the two required roles: key and status, both by convention.

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
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {
    let _ = |db: sea_orm::DatabaseConnection| task_run::Tracker::new(db);
    let fields = <task_run::Model as tasktrail::TrackingConfig>::FIELDS;
    assert_eq!(fields.len(), 3);
    assert_eq!(fields[1].role, Some(tasktrail::Role::Key));
    assert_eq!(fields[2].role, Some(tasktrail::Role::Status));
}
