// Extra columns mapped by name, of any type, with labels; an ignored field is not listed.

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
        #[tracking(extra = "tenant")]
        pub tenant: Option<String>,
        #[tracking(extra = "shard", label = "Shard number")]
        pub shard: i32,
        #[tracking(extra = "meta")]
        pub metadata: Option<Json>,
        #[sea_orm(ignore)]
        pub scratch: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {
    let _ = |db: sea_orm::DatabaseConnection| task_run::Tracker::new(db);
    let fields = <task_run::Model as tasktrail::TrackingConfig>::FIELDS;
    use tasktrail::TrackingConfig;
    assert_eq!(fields.len(), 6);
    assert_eq!(task_run::Model::extra("shard").map(|f| f.label), Some("Shard number"));
    assert_eq!(task_run::Model::extra("meta").map(|f| f.field), Some("metadata"));
}
