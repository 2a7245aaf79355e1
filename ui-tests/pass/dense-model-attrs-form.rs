// sea-orm 2.0's `#[sea_orm::model]` with the derive given in `model_attrs`.

mod task_run {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_runs")]
    #[sea_orm(model_attrs(derive(tasktrail::TrackingConfig)))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub task_key: String,
        pub status: String,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {
    let _ = |db: sea_orm::DatabaseConnection| task_run::Tracker::new(db);
    let fields = <task_run::Model as tasktrail::TrackingConfig>::FIELDS;
    assert_eq!(fields.len(), 4);
}
