// `hooks = custom` (a struct option) written on a field.

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
        #[tracking(hooks = custom)]
        pub user_label: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl tasktrail::FormatHooks for Model {}
}

fn main() {}
