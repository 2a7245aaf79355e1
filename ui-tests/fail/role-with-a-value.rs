// A role given a value, as if naming the column: `#[tracking(key = "task_key")]`.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        #[tracking(key = "run_key")]
        pub run_key: String,
        pub status: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {}
