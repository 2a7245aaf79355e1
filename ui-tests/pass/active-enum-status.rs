// The status is a user `DeriveActiveEnum` implementing `tasktrail::TrackedStatus`.

mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;
    use tasktrail::Status;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum RunState {
        #[sea_orm(string_value = "queued")]
        Queued,
        #[sea_orm(string_value = "running")]
        Running,
        #[sea_orm(string_value = "done")]
        Done,
        #[sea_orm(string_value = "error")]
        Error,
        #[sea_orm(string_value = "stopped")]
        Stopped,
    }

    impl tasktrail::TrackedStatus for RunState {
        fn from_status(status: Status) -> Self {
            match status {
                Status::Pending | Status::Unknown => Self::Queued,
                Status::InProgress => Self::Running,
                Status::Success => Self::Done,
                Status::Failed | Status::Interrupted => Self::Error,
                Status::Cancelled => Self::Stopped,
            }
        }
        fn to_status(&self) -> Status {
            match self {
                Self::Queued => Status::Pending,
                Self::Running => Status::InProgress,
                Self::Done => Status::Success,
                Self::Error => Status::Failed,
                Self::Stopped => Status::Cancelled,
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        #[tracking(status)]
        pub state: RunState,
        pub message: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {
    let _ = |db: sea_orm::DatabaseConnection| task_run::Tracker::new(db);
    let fields = <task_run::Model as tasktrail::TrackingConfig>::FIELDS;
    assert_eq!(fields[2].field, "state");
    assert_eq!(fields[2].role, Some(tasktrail::Role::Status));
}
