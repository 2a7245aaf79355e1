// `task_id: i32` (a foreign key) takes the key role by its name.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub task_id: i32,
        pub status: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {}
