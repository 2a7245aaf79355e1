// `crate = "…"`: the generated code names the runtime through the given path,
// whether a renamed import or a facade module.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail as renamed;
    use renamed::TrackingConfig;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    #[tracking(crate = "renamed")]
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

/// A runtime facade whose `__private` shadows one item of the real one: the
/// payload cap default. If the derive ignored `crate = …`, the cap would be
/// tasktrail's default, not 1234.
mod facade {
    pub mod __private {
        pub use tasktrail::__private::*;
        pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1234;
    }
}

mod facade_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "facade_runs")]
    #[tracking(crate = "crate::facade")]
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
    let _ = |db: sea_orm::DatabaseConnection| facade_run::Tracker::new(db);
    let options = <facade_run::Model as tasktrail::TrackingConfig>::OPTIONS;
    assert_eq!(options.max_payload_bytes, 1234);
}
