//! The entities the scenarios run on.

/// Every role mapped; progress as `f32` under a non-default name.
pub mod task_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "task_runs")]
    #[tracking(redact = ["password", "token"], max_payload_bytes = 2048)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub task_name: String,
        pub status: String,
        pub message: Option<String>,
        #[tracking(progress)]
        pub percent: Option<f32>,
        pub user_label: Option<String>,
        pub affected_objects: Option<String>,
        pub task_args: Option<Json>,
        pub task_kwargs: Option<Json>,
        pub result_payload: Option<Json>,
        pub cleaned_up: bool,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub started_at: Option<DateTimeUtc>,
        pub completed_at: Option<DateTimeUtc>,
        pub failed_at: Option<DateTimeUtc>,
        #[tracking(extra = "tenant")]
        pub tenant: Option<String>,
        #[tracking(skip)]
        pub internal_note: Option<String>,
        pub retry_of: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `hooks = custom`: every hook written by hand.
pub mod custom_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::{Actor, PayloadKind, TrackedObject, TrackingConfig};

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "custom_runs")]
    #[tracking(hooks = custom, progress_sets_message)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_id: String,
        pub task_name: String,
        pub status: String,
        pub message: Option<String>,
        pub progress_payload: Option<String>,
        pub user_label: Option<String>,
        pub affected_objects: Option<String>,
        pub task_args: Option<Json>,
        pub result_payload: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    impl tasktrail::FormatHooks for Model {
        fn format_user(user: Option<&dyn Actor>) -> String {
            match user {
                Some(u) => format!("user:{}", u.label().to_uppercase()),
                None => "system".to_owned(),
            }
        }
        fn format_objects(objects: &[&dyn TrackedObject]) -> String {
            objects
                .iter()
                .map(|o| o.object_key())
                .collect::<Vec<_>>()
                .join(" | ")
        }
        fn format_payload(kind: PayloadKind, value: serde_json::Value) -> serde_json::Value {
            serde_json::json!({ "kind": format!("{kind:?}"), "value": value })
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A `format_user` override that panics, to show a broken hook never breaks
/// a run.
pub mod panicky_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    pub fn explode(_: Option<&dyn tasktrail::Actor>) -> String {
        panic!("the user formatter is broken")
    }

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "panicky_runs")]
    #[tracking(format_user = explode)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        pub status: String,
        pub user_label: Option<String>,
        pub updated_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Status as a user `ActiveEnum`; progress as text.
pub mod enum_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::{Status, TrackingConfig};

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
    #[sea_orm(table_name = "enum_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub task_key: String,
        #[tracking(status)]
        pub state: RunState,
        #[tracking(progress)]
        pub progress_text: Option<String>,
        pub message: Option<String>,
        pub created_at: DateTimeWithTimeZone,
        pub updated_at: DateTime,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// sea-orm 2.0's `#[sea_orm::model]` form, derive in the derive list: it runs
/// on `Model` and `ModelEx`, and only `Model` is tracked.
pub mod dense_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::TrackingConfig;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "dense_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub task_key: String,
        pub status: String,
        pub message: Option<String>,
        pub updated_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// sea-orm 2.0's `#[sea_orm::model]` form with the derive in `model_attrs`.
pub mod dense_attrs_run {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "dense_attrs_runs")]
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

/// A status mapping that stores an ended and a not-ended status alike:
/// `Cancelled` as `queued` (with `Pending`) and `Interrupted` as `running`
/// (with `InProgress`). Retention and the heartbeat must never take a
/// pending or running run for an ended one.
pub mod shared_run {
    use sea_orm::entity::prelude::*;
    use tasktrail::{Status, TrackingConfig};

    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum Phase {
        #[sea_orm(string_value = "queued")]
        Queued,
        #[sea_orm(string_value = "running")]
        Running,
        #[sea_orm(string_value = "done")]
        Done,
        #[sea_orm(string_value = "error")]
        Error,
    }

    impl tasktrail::TrackedStatus for Phase {
        fn from_status(status: Status) -> Self {
            match status {
                Status::Pending | Status::Unknown | Status::Cancelled => Self::Queued,
                Status::InProgress | Status::Interrupted => Self::Running,
                Status::Success => Self::Done,
                Status::Failed => Self::Error,
            }
        }
        fn to_status(&self) -> Status {
            match self {
                Self::Queued => Status::Pending,
                Self::Running => Status::InProgress,
                Self::Done => Status::Success,
                Self::Error => Status::Failed,
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]
    #[sea_orm(table_name = "shared_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub task_key: String,
        #[tracking(status)]
        pub phase: Phase,
        pub message: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The entity of the guide's page on migrating from a hand-written manager
/// (`docs/migrating.md`): a table another application made, with its own
/// column names and status strings, annotated so that nothing in the
/// table changes. `tests/tests/migrating.rs` checks that the page shows
/// this very struct.
pub mod background_job {
    use sea_orm::entity::prelude::*;
    use tasktrail::{Actor, PayloadKind, Status};

    /// The `state` column: the old application's strings, and any other
    /// string as it is.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveValueType)]
    #[sea_orm(
        value_type = "String",
        from_str = "JobState::parse",
        to_str = "JobState::as_str"
    )]
    pub enum JobState {
        Queued,
        Running,
        Done,
        Failed,
        Cancelled,
        Interrupted,
        /// Whatever else a row holds (`DONE`, `weird`): kept, never lost.
        Other(String),
    }

    impl JobState {
        /// The stored string.
        pub fn as_str(&self) -> &str {
            match self {
                Self::Queued => "queued",
                Self::Running => "running",
                Self::Done => "done",
                Self::Failed => "failed",
                Self::Cancelled => "cancelled",
                Self::Interrupted => "interrupted",
                Self::Other(s) => s,
            }
        }

        /// Reads any string: one the application knows, or `Other`.
        pub fn parse(s: &str) -> Result<Self, std::convert::Infallible> {
            Ok(match s {
                "queued" => Self::Queued,
                "running" => Self::Running,
                "done" => Self::Done,
                "failed" => Self::Failed,
                "cancelled" => Self::Cancelled,
                "interrupted" => Self::Interrupted,
                other => Self::Other(other.to_owned()),
            })
        }
    }

    /// What tasktrail writes for each of its statuses, and what each
    /// stored string means to it (`Other` means nothing: `None`).
    impl tasktrail::fields::StatusField for JobState {
        const REQUIRED: bool = true;

        fn encode_status(status: Status) -> Value {
            let state = match status {
                Status::Pending => Self::Queued,
                Status::InProgress => Self::Running,
                Status::Success => Self::Done,
                Status::Failed => Self::Failed,
                Status::Cancelled => Self::Cancelled,
                Status::Interrupted => Self::Interrupted,
                Status::Unknown => Self::Other("unknown".to_owned()),
            };
            state.into()
        }

        fn decode_status(value: Value) -> Option<Status> {
            match <Self as sea_orm::sea_query::ValueType>::try_from(value).ok()? {
                Self::Queued => Some(Status::Pending),
                Self::Running => Some(Status::InProgress),
                Self::Done => Some(Status::Success),
                Self::Failed => Some(Status::Failed),
                Self::Cancelled => Some(Status::Cancelled),
                Self::Interrupted => Some(Status::Interrupted),
                Self::Other(_) => None,
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
    #[sea_orm(table_name = "background_jobs")]
    #[tracking(hooks = custom, progress_sets_message)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[tracking(key, label = "Job id")]
        pub job_id: String,
        #[tracking(name, label = "Job")]
        pub job_type: String,
        #[tracking(status)]
        pub state: JobState,
        #[tracking(progress, label = "Progress")]
        pub pct: Option<i32>,
        #[tracking(message)]
        pub detail: Option<String>,
        #[tracking(user)]
        pub requested_by: Option<String>,
        #[tracking(objects)]
        pub targets: Option<String>,
        #[tracking(args)]
        pub params: Option<String>,
        #[tracking(result)]
        pub output: Option<String>,
        #[tracking(cleaned)]
        pub archived: bool,
        #[tracking(created_at)]
        pub created: DateTimeUtc,
        #[tracking(updated_at)]
        pub modified: Option<DateTimeUtc>,
        #[tracking(started_at)]
        pub started: Option<DateTimeUtc>,
        #[tracking(completed_at)]
        pub finished: Option<DateTimeUtc>,
    }

    /// The old `user_label` and `serialise_params`, as hooks.
    impl tasktrail::FormatHooks for Model {
        fn format_user(user: Option<&dyn Actor>) -> String {
            match user {
                Some(user) => match user.id() {
                    Some(id) => format!("{} (#{id})", user.label()),
                    None => user.label(),
                },
                None => "system".to_owned(),
            }
        }

        fn format_payload(kind: PayloadKind, value: serde_json::Value) -> serde_json::Value {
            match (kind, value) {
                (PayloadKind::Args, serde_json::Value::Object(mut args)) => {
                    args.remove("api_token");
                    serde_json::json!({ "v": 1, "args": args })
                }
                (_, value) => value,
            }
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
