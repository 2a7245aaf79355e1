// `format_user` given a closure instead of a function path.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    #[tracking(format_user = |user| String::from("x"))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub status: String,
        pub user_label: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {}
