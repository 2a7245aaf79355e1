// A sea-orm `ActiveEnum` status that does not implement `tasktrail::TrackedStatus`.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum RunState {
        #[sea_orm(string_value = "queued")]
        Queued,
        #[sea_orm(string_value = "done")]
        Done,
    }

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub status: RunState,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {}
