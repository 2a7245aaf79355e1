//! The roles a field can play, their attribute names and conventional field
//! names. Mirrors `tasktrail::Role`.

/// What kind of column a role needs: picks the runtime's type-check trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Key,
    Text,
    Status,
    Progress,
    Payload,
    Time,
    Flag,
}

/// One role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleDef {
    /// The name in `#[tracking(NAME)]` and the `tasktrail::Role` variant.
    pub name: &'static str,
    pub variant: &'static str,
    /// Field names that take this role by convention.
    pub conventional: &'static [&'static str],
    pub kind: Kind,
}

pub const ROLES: &[RoleDef] = &[
    RoleDef {
        name: "key",
        variant: "Key",
        conventional: &["task_key", "task_id"],
        kind: Kind::Key,
    },
    RoleDef {
        name: "name",
        variant: "Name",
        conventional: &["task_name"],
        kind: Kind::Text,
    },
    RoleDef {
        name: "status",
        variant: "Status",
        conventional: &["status"],
        kind: Kind::Status,
    },
    RoleDef {
        name: "message",
        variant: "Message",
        conventional: &["message"],
        kind: Kind::Text,
    },
    RoleDef {
        name: "progress",
        variant: "Progress",
        conventional: &["progress_payload"],
        kind: Kind::Progress,
    },
    RoleDef {
        name: "user",
        variant: "User",
        conventional: &["user_label"],
        kind: Kind::Text,
    },
    RoleDef {
        name: "objects",
        variant: "Objects",
        conventional: &["affected_objects"],
        kind: Kind::Text,
    },
    RoleDef {
        name: "args",
        variant: "Args",
        conventional: &["task_args"],
        kind: Kind::Payload,
    },
    RoleDef {
        name: "kwargs",
        variant: "Kwargs",
        conventional: &["task_kwargs"],
        kind: Kind::Payload,
    },
    RoleDef {
        name: "result",
        variant: "Result",
        conventional: &["result_payload"],
        kind: Kind::Payload,
    },
    RoleDef {
        name: "cleaned",
        variant: "Cleaned",
        conventional: &["cleaned_up"],
        kind: Kind::Flag,
    },
    RoleDef {
        name: "created_at",
        variant: "CreatedAt",
        conventional: &["created_at"],
        kind: Kind::Time,
    },
    RoleDef {
        name: "updated_at",
        variant: "UpdatedAt",
        conventional: &["updated_at"],
        kind: Kind::Time,
    },
    RoleDef {
        name: "started_at",
        variant: "StartedAt",
        conventional: &["started_at"],
        kind: Kind::Time,
    },
    RoleDef {
        name: "completed_at",
        variant: "CompletedAt",
        conventional: &["completed_at"],
        kind: Kind::Time,
    },
    RoleDef {
        name: "failed_at",
        variant: "FailedAt",
        conventional: &["failed_at"],
        kind: Kind::Time,
    },
    RoleDef {
        name: "retry_of",
        variant: "RetryOf",
        conventional: &["retry_of"],
        kind: Kind::Text,
    },
];

pub fn by_name(name: &str) -> Option<&'static RoleDef> {
    ROLES.iter().find(|r| r.name == name)
}

pub fn by_field_name(field: &str) -> Option<&'static RoleDef> {
    ROLES.iter().find(|r| r.conventional.contains(&field))
}
