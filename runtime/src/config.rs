//! What `#[derive(TrackingConfig)]` tells the runtime about an entity: which
//! column plays which role, how to encode values for it, and the column
//! metadata the dashboard reads.

use std::fmt;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ColumnType, EntityTrait, Value};

use crate::hooks::FormatHooks;
use crate::lifecycle::{Progress, Status};

/// The part a column plays in a run's record.
///
/// A field named after a role's conventional name takes that role; any field
/// takes one with `#[tracking(ROLE)]`. See the field-mapping reference in the
/// guide for accepted types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The run's identity (`task_key` / `task_id`). Required.
    Key,
    /// The task's name (`task_name`).
    Name,
    /// The run's [`Status`] (`status`). Required.
    Status,
    /// The last message: an error, a note (`message`).
    Message,
    /// Progress as number, text or JSON (`progress_payload`).
    Progress,
    /// Who started the run (`user_label`).
    User,
    /// What the run touches (`affected_objects`).
    Objects,
    /// Arguments as JSON (`task_args`).
    Args,
    /// Keyword arguments / options as JSON (`task_kwargs`).
    Kwargs,
    /// The result as JSON (`result_payload`).
    Result,
    /// Whether cleanup ran (`cleaned_up`).
    Cleaned,
    /// When the row was created (`created_at`); never changes.
    CreatedAt,
    /// When the row was last written (`updated_at`); every write.
    UpdatedAt,
    /// When the run started (`started_at`).
    StartedAt,
    /// When the run completed (`completed_at`).
    CompletedAt,
    /// When the run failed (`failed_at`).
    FailedAt,
    /// The key of the run this run retries (`retry_of`).
    RetryOf,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 17] = [
        Role::Key,
        Role::Name,
        Role::Status,
        Role::Message,
        Role::Progress,
        Role::User,
        Role::Objects,
        Role::Args,
        Role::Kwargs,
        Role::Result,
        Role::Cleaned,
        Role::CreatedAt,
        Role::UpdatedAt,
        Role::StartedAt,
        Role::CompletedAt,
        Role::FailedAt,
        Role::RetryOf,
    ];

    /// The role's name as written in `#[tracking(…)]`.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Key => "key",
            Role::Name => "name",
            Role::Status => "status",
            Role::Message => "message",
            Role::Progress => "progress",
            Role::User => "user",
            Role::Objects => "objects",
            Role::Args => "args",
            Role::Kwargs => "kwargs",
            Role::Result => "result",
            Role::Cleaned => "cleaned",
            Role::CreatedAt => "created_at",
            Role::UpdatedAt => "updated_at",
            Role::StartedAt => "started_at",
            Role::CompletedAt => "completed_at",
            Role::FailedAt => "failed_at",
            Role::RetryOf => "retry_of",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a value is encoded for a role's column: one function per kind of
/// role, taken from the field type's [`fields`](crate::fields) trait.
#[derive(Clone, Copy)]
pub enum Encode {
    /// [`KeyField`](crate::fields::KeyField).
    Key(fn(&str) -> Value),
    /// [`TextField`](crate::fields::TextField).
    Text(fn(&str) -> Value),
    /// [`StatusField`](crate::fields::StatusField): encode and decode.
    Status(fn(Status) -> Value, fn(Value) -> Option<Status>),
    /// [`ProgressField`](crate::fields::ProgressField).
    Progress(fn(&Progress) -> Value),
    /// [`PayloadField`](crate::fields::PayloadField).
    Payload(fn(&serde_json::Value) -> Value),
    /// [`TimestampField`](crate::fields::TimestampField).
    Time(fn(DateTime<Utc>) -> Value),
    /// [`FlagField`](crate::fields::FlagField).
    Flag(fn(bool) -> Value),
}

impl fmt::Debug for Encode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Encode::Key(_) => "Key",
            Encode::Text(_) => "Text",
            Encode::Status(..) => "Status",
            Encode::Progress(_) => "Progress",
            Encode::Payload(_) => "Payload",
            Encode::Time(_) => "Time",
            Encode::Flag(_) => "Flag",
        };
        f.write_str(kind)
    }
}

/// A mapped role: its column, whether a row needs a value for it, and how to
/// encode one.
#[derive(Clone, Copy, Debug)]
pub struct Binding<C> {
    /// The column.
    pub column: C,
    /// `true` when the field is not an `Option`: an insert must give a value.
    pub required: bool,
    /// The encoder for the field's type.
    pub encode: Encode,
}

/// One field of the tracked model, as the dashboard sees it.
#[derive(Clone, Copy, Debug)]
pub struct FieldInfo<C: 'static> {
    /// The Rust field name.
    pub field: &'static str,
    /// The sea-orm column.
    pub column: C,
    /// A human label: `#[tracking(label = "…")]`, or the field name in
    /// sentence case (`task_name` → `Task name`).
    pub label: &'static str,
    /// The role, if the field has one.
    pub role: Option<Role>,
    /// The extra's name, for `#[tracking(extra = "…")]` fields.
    pub extra: Option<&'static str>,
}

/// What kind of values a column holds, read from its sea-orm column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// Text.
    Text,
    /// An integer or decimal number.
    Number,
    /// `true` / `false`.
    Bool,
    /// A date-time.
    Timestamp,
    /// JSON.
    Json,
    /// Anything else (UUID, bytes, enums, …).
    Other,
}

impl<C: ColumnTrait> FieldInfo<C> {
    /// The column's database name.
    pub fn column_name(&self) -> &'static str {
        self.column.as_str()
    }

    /// The kind of values the column holds.
    pub fn kind(&self) -> ColumnKind {
        match self.column.def().get_column_type() {
            ColumnType::Char(_) | ColumnType::String(_) | ColumnType::Text => ColumnKind::Text,
            ColumnType::TinyInteger
            | ColumnType::SmallInteger
            | ColumnType::Integer
            | ColumnType::BigInteger
            | ColumnType::TinyUnsigned
            | ColumnType::SmallUnsigned
            | ColumnType::Unsigned
            | ColumnType::BigUnsigned
            | ColumnType::Float
            | ColumnType::Double
            | ColumnType::Decimal(_)
            | ColumnType::Money(_) => ColumnKind::Number,
            ColumnType::Boolean => ColumnKind::Bool,
            ColumnType::DateTime | ColumnType::Timestamp | ColumnType::TimestampWithTimeZone => {
                ColumnKind::Timestamp
            }
            ColumnType::Json | ColumnType::JsonBinary => ColumnKind::Json,
            _ => ColumnKind::Other,
        }
    }
}

/// Struct-level options of `#[tracking(…)]`.
#[derive(Clone, Copy, Debug)]
pub struct TrackingOptions {
    /// Object keys replaced by `[redacted]` in every payload, at any depth.
    pub redact: &'static [&'static str],
    /// The size cap of one payload's JSON text, in bytes.
    pub max_payload_bytes: usize,
    /// Whether a progress text also replaces the `message` column.
    pub progress_sets_message: bool,
}

impl TrackingOptions {
    /// The default cap on a payload: 64 KiB.
    pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024;
}

/// The column type of a tracked model's entity.
pub type ColumnOf<M> = <<M as TrackingConfig>::Entity as EntityTrait>::Column;

/// A sea-orm model that records one row per task run.
///
/// Implemented by `#[derive(TrackingConfig)]`; not meant to be implemented by
/// hand (its items may change between minor versions).
pub trait TrackingConfig: FormatHooks + Sized + Send + Sync + 'static {
    /// The entity whose rows are runs.
    type Entity: EntityTrait<Model = Self>;

    /// Every field of the model that is a column, in declaration order.
    const FIELDS: &'static [FieldInfo<ColumnOf<Self>>];

    /// Struct options.
    const OPTIONS: TrackingOptions;

    /// The column and encoder of `role`, if mapped.
    fn binding(role: Role) -> Option<Binding<ColumnOf<Self>>>;

    /// The status a stored status value means.
    fn decode_status(value: Value) -> Option<Status> {
        match Self::binding(Role::Status)?.encode {
            Encode::Status(_, decode) => decode(value),
            _ => None,
        }
    }

    /// What type field number `index` of [`FIELDS`](Self::FIELDS) has, as
    /// far as tasktrail reads it without the model (the JSON list on
    /// SQLite, [`FieldType`]); the derive answers it from each field's
    /// type.
    #[doc(hidden)]
    fn field_type(index: usize) -> FieldType {
        let _ = index;
        FieldType(ValueClass::Other, false)
    }

    /// The field mapped to `role`, if any.
    fn field(role: Role) -> Option<&'static FieldInfo<ColumnOf<Self>>> {
        Self::FIELDS.iter().find(|f| f.role == Some(role))
    }

    /// The field mapped to the extra `name`, if any.
    fn extra(name: &str) -> Option<&'static FieldInfo<ColumnOf<Self>>> {
        Self::FIELDS.iter().find(|f| f.extra == Some(name))
    }
}

/// The kinds of field types whose values tasktrail can build without the
/// model, exactly as sea-orm's `ModelTrait::get` gives them
/// ([`TrackingConfig::field_type`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueClass {
    /// `String`.
    Text,
    /// `serde_json::Value` (sea-orm's `Json`).
    Json,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `bool`.
    Bool,
    /// `chrono::DateTime<Utc>` (sea-orm's `DateTimeUtc`).
    TimeUtc,
    /// Any other type.
    Other,
}

/// A field's type: its [`ValueClass`], and whether it is an `Option`.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldType(pub ValueClass, pub bool);

/// What the derive asks a field's type with: `(&&TypeProbe::<T>::new())
/// .field_type()` finds [`KnownType`] for the types of [`ValueClass`] and
/// [`OtherType`] (one reference less) for every other type, so no field
/// type fails to compile.
#[doc(hidden)]
pub struct TypeProbe<T>(std::marker::PhantomData<fn() -> T>);

impl<T> TypeProbe<T> {
    /// The probe of `T`.
    pub const fn new() -> Self {
        TypeProbe(std::marker::PhantomData)
    }
}

impl<T> Default for TypeProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// [`TypeProbe`] for the types of [`ValueClass`].
#[doc(hidden)]
pub trait KnownType {
    /// The type's class.
    fn field_type(&self) -> FieldType;
}

macro_rules! known_types {
    ($($ty:ty => $class:ident),* $(,)?) => {$(
        impl KnownType for &TypeProbe<$ty> {
            fn field_type(&self) -> FieldType {
                FieldType(ValueClass::$class, false)
            }
        }
        impl KnownType for &TypeProbe<Option<$ty>> {
            fn field_type(&self) -> FieldType {
                FieldType(ValueClass::$class, true)
            }
        }
    )*};
}

known_types!(
    String => Text,
    serde_json::Value => Json,
    i32 => I32,
    i64 => I64,
    f32 => F32,
    f64 => F64,
    bool => Bool,
    DateTime<Utc> => TimeUtc,
);

/// [`TypeProbe`] for every other type.
#[doc(hidden)]
pub trait OtherType {
    /// [`ValueClass::Other`].
    fn field_type(&self) -> FieldType;
}

impl<T> OtherType for TypeProbe<T> {
    fn field_type(&self) -> FieldType {
        FieldType(ValueClass::Other, false)
    }
}

/// Binding constructors for generated code: one generic function per kind
/// of role, so a field of the wrong type is one error on the field's type.
#[doc(hidden)]
pub mod bind {
    use super::{Binding, Encode};
    use crate::fields::*;

    pub fn key<T: KeyField, C>(column: C) -> Binding<C> {
        Binding {
            column,
            required: true,
            encode: Encode::Key(T::encode_key),
        }
    }
    pub fn text<T: TextField, C>(column: C) -> Binding<C> {
        Binding {
            column,
            required: T::REQUIRED,
            encode: Encode::Text(T::encode_text),
        }
    }
    pub fn status<T: StatusField, C>(column: C) -> Binding<C> {
        Binding {
            column,
            required: T::REQUIRED,
            encode: Encode::Status(T::encode_status, T::decode_status),
        }
    }
    pub fn progress<T: ProgressField, C>(column: C) -> Binding<C> {
        Binding {
            column,
            required: T::REQUIRED,
            encode: Encode::Progress(T::encode_progress),
        }
    }
    pub fn payload<T: PayloadField, C>(column: C) -> Binding<C> {
        Binding {
            column,
            required: T::REQUIRED,
            encode: Encode::Payload(T::encode_payload),
        }
    }
    pub fn time<T: TimestampField, C>(column: C) -> Binding<C> {
        Binding {
            column,
            required: T::REQUIRED,
            encode: Encode::Time(T::encode_time),
        }
    }
    pub fn flag<T: FlagField, C>(column: C) -> Binding<C> {
        Binding {
            column,
            required: T::REQUIRED,
            encode: Encode::Flag(T::encode_flag),
        }
    }
}

/// The value of `column` in `model` (generic over the entity, so that the
/// model's `ModelTrait` is in scope).
pub(crate) fn column_value<E: EntityTrait>(model: &E::Model, column: E::Column) -> Value {
    sea_orm::ModelTrait::get(model, column)
}

/// A text (or JSON) column value as text.
pub(crate) fn value_text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => s,
        Value::Json(j) => j.map(|j| j.to_string()),
        _ => None,
    }
}

/// A timestamp column's value as UTC, whichever chrono type the column has.
#[cfg(feature = "dashboard")]
pub(crate) fn value_time(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    match value {
        Value::ChronoDateTimeUtc(Some(t)) => Some(*t),
        Value::ChronoDateTimeWithTimeZone(Some(t)) => Some(t.to_utc()),
        Value::ChronoDateTimeLocal(Some(t)) => Some(t.to_utc()),
        Value::ChronoDateTime(Some(t)) => Some(t.and_utc()),
        _ => None,
    }
}

/// `select.all(db)`, boxed. Generic over the entity so that its model's
/// `FromQueryResult` is in scope, and boxed so that futures calling it stay
/// provably `Send` for a generic tracked model. On SQLite the `LIMIT` and
/// `OFFSET` are written into the SQL ([`inline_limits`]).
pub(crate) fn find_all<'a, E: EntityTrait>(
    select: sea_orm::Select<E>,
    db: &'a sea_orm::DatabaseConnection,
) -> futures::future::BoxFuture<'a, Result<Vec<E::Model>, sea_orm::DbErr>>
where
    E::Model: Send,
{
    use sea_orm::QueryTrait;
    if db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        let statement = inline_limits(select.build(sea_orm::DbBackend::Sqlite));
        return Box::pin(E::find().from_raw_sql(statement).all(db));
    }
    Box::pin(select.all(db))
}

/// `select.one(db)`, boxed; see [`find_all`].
pub(crate) fn find_one<'a, E: EntityTrait>(
    select: sea_orm::Select<E>,
    db: &'a sea_orm::DatabaseConnection,
) -> futures::future::BoxFuture<'a, Result<Option<E::Model>, sea_orm::DbErr>>
where
    E::Model: Send,
{
    use sea_orm::{QuerySelect, QueryTrait};
    if db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        let statement = inline_limits(select.limit(1).build(sea_orm::DbBackend::Sqlite));
        return Box::pin(E::find().from_raw_sql(statement).one(db));
    }
    Box::pin(select.one(db))
}

/// `statement` with a trailing `LIMIT ?` / `OFFSET ?` written as numbers.
///
/// SQLite (3.4x, as bundled) treats a bound `LIMIT` as an input of the
/// query plan: binding a new value expires the prepared statement, and its
/// next step parses and plans it again. Every page of runs (`LIMIT 51`)
/// was re-prepared on each request: 13 % of a list page's CPU under load
/// at 1,000,000 runs (measured with `perf`). The values are the integers
/// tasktrail chose (page sizes, offsets), never request text.
pub(crate) fn inline_limits(mut statement: sea_orm::Statement) -> sea_orm::Statement {
    let Some(values) = statement.values.as_mut() else {
        return statement;
    };
    let number = |value: &Value| match value {
        Value::BigUnsigned(Some(n)) => Some(n.to_string()),
        Value::Unsigned(Some(n)) => Some(n.to_string()),
        Value::BigInt(Some(n)) => Some(n.to_string()),
        Value::Int(Some(n)) => Some(n.to_string()),
        _ => None,
    };
    // `… LIMIT ? OFFSET ?`: the offset is the last value, the limit the
    // one before it.
    let mut tail = String::new();
    for clause in [" OFFSET ?", " LIMIT ?"] {
        if !statement.sql.ends_with(clause) {
            continue;
        }
        let Some(n) = values.0.last().and_then(number) else {
            break;
        };
        values.0.pop();
        statement.sql.truncate(statement.sql.len() - clause.len());
        tail = format!("{}{n}{tail}", &clause[..clause.len() - 1]);
    }
    statement.sql.push_str(&tail);
    statement
}

/// The key column of `M` and the encoder of key values (the derive
/// guarantees both).
pub(crate) fn key_encoder<M: TrackingConfig>() -> (ColumnOf<M>, fn(&str) -> Value) {
    let binding = M::binding(Role::Key).expect("the derive guarantees a key column");
    let Encode::Key(encode) = binding.encode else {
        unreachable!("the key column has a key encoder")
    };
    (binding.column, encode)
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn statement(sql: &str, values: Vec<Value>) -> sea_orm::Statement {
        sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Sqlite, sql, values)
    }

    #[test]
    fn trailing_limits_become_numbers() {
        let s = inline_limits(statement(
            "SELECT a FROM t WHERE b = ? ORDER BY a LIMIT ?",
            vec!["x".into(), Value::BigUnsigned(Some(51))],
        ));
        assert_eq!(s.sql, "SELECT a FROM t WHERE b = ? ORDER BY a LIMIT 51");
        assert_eq!(s.values.unwrap().0, vec![Value::from("x")]);
        let s = inline_limits(statement(
            "SELECT a FROM t ORDER BY a LIMIT ? OFFSET ?",
            vec![
                Value::BigUnsigned(Some(1)),
                Value::BigUnsigned(Some(99_999)),
            ],
        ));
        assert_eq!(s.sql, "SELECT a FROM t ORDER BY a LIMIT 1 OFFSET 99999");
        assert!(s.values.unwrap().0.is_empty());
        // A text value in that place is left bound.
        let s = inline_limits(statement("SELECT a FROM t LIMIT ?", vec!["1; DROP".into()]));
        assert_eq!(s.sql, "SELECT a FROM t LIMIT ?");
        // A LIMIT inside a subquery is not the statement's.
        let s = inline_limits(statement(
            "SELECT a FROM t WHERE a IN (SELECT a FROM u LIMIT ?) AND b = ?",
            vec![Value::BigUnsigned(Some(5)), Value::BigUnsigned(Some(7))],
        ));
        assert_eq!(s.values.unwrap().0.len(), 2);
    }
}
