//! A page of runs read as one value per run, for the JSON list on SQLite.
//!
//! sqlx copies every value of a row out of SQLite (`sqlite3_value_dup`, one
//! or two `sqlite3_malloc` each) and the runtime's threads free them; with
//! SQLite's memory statistics on (its default), each of those takes one
//! process-wide mutex, and the pool's threads and the runtime's contend on
//! it. A page of 50 runs of 14 fields was 700 values; read as
//! `json_array(col, …)` it is 50, and the JSON list costs about half
//! (BENCHMARKS.md, issue 16).
//!
//! The values are rebuilt exactly as sea-orm's `ModelTrait::get` gives them
//! for each field's type ([`TrackingConfig::field_type`]), and written by
//! the same code as the model's ([`crate::dashboard::api::RunJson`]). A
//! value this module cannot rebuild exactly (a type it does not know, a
//! time in another format than RFC 3339, text in a number column…) sends
//! the page back to the model path: the answer is the same either way.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QuerySelect,
    QueryTrait, Value,
};
use serde_json::value::RawValue;

use crate::config::{ColumnOf, FieldType, TrackingConfig, ValueClass};
use crate::dashboard::query::PageRow;

/// One run: its fields' values in [`TrackingConfig::FIELDS`]' order.
pub(crate) struct RunRow {
    pub values: Vec<Value>,
}

/// The error [`PageRow::fetch`] answers when a row holds a value that is
/// not rebuilt exactly: the caller reads the page through the model.
const NOT_EXACT: &str = "tasktrail: a run read as one value needs the model";

/// Whether the runs of `M` are read this way on `db`: SQLite, every field of
/// a type [`ValueClass`] knows, and `json_array` not found missing before.
pub(crate) fn readable<M: TrackingConfig>(db: &DatabaseConnection, enabled: &AtomicBool) -> bool {
    db.get_database_backend() == DbBackend::Sqlite
        && enabled.load(Ordering::Relaxed)
        && (0..M::FIELDS.len()).all(|i| M::field_type(i).0 != ValueClass::Other)
}

/// What to do with an error of the one-value read: `true` to read the page
/// through the model instead. A SQLite built without JSON functions turns
/// the path off for good.
pub(crate) fn falls_back(err: &DbErr, enabled: &AtomicBool) -> bool {
    if crate::db_error::is_transient(err) {
        return false;
    }
    let text = err.to_string();
    if text.contains("no such function") {
        if enabled.swap(false, Ordering::Relaxed) {
            tracing::info!(error = %err, "tasktrail dashboard: this SQLite has no JSON functions; the JSON list reads runs through the model");
        }
    } else if !text.contains(NOT_EXACT) {
        tracing::debug!(error = %err, "tasktrail dashboard: a page read as one value per run failed; reading it through the model");
    }
    true
}

/// `SELECT json_array(col, …) AS run FROM …`: each field's column in
/// [`TrackingConfig::FIELDS`]' order, read as sea-orm reads it for the
/// model (through the column's `select_as`). A float column's value goes as text
/// with 17 significant digits and an `r` in front (SQLite writes a float in
/// JSON with 15, which does not give every `f64` back).
pub(crate) fn projection<M: TrackingConfig>() -> sea_orm::Select<M::Entity> {
    let args = M::FIELDS.iter().enumerate().map(|(i, field)| {
        // As sea-orm selects the column for the model (a `select_as` cast).
        let col = field.column.select_as(Expr::col(field.column));
        if matches!(M::field_type(i).0, ValueClass::F32 | ValueClass::F64) {
            Expr::case(
                Expr::cust_with_exprs("typeof(?) = 'real'", [col.clone()]),
                Expr::cust_with_exprs("'r' || printf('%!.17g', ?)", [col.clone()]),
            )
            .finally(col)
            .into()
        } else {
            col
        }
    });
    M::Entity::find()
        .select_only()
        .expr_as(Func::cust("json_array").args(args), "run")
}

impl<M: TrackingConfig> PageRow<M> for RunRow {
    fn fetch(
        select: sea_orm::Select<M::Entity>,
        db: &DatabaseConnection,
    ) -> futures::future::BoxFuture<'_, Result<Vec<Self>, DbErr>> {
        let statement = crate::config::inline_limits(select.build(DbBackend::Sqlite));
        Box::pin(async move {
            let rows = db.query_all_raw(statement).await?;
            rows.iter()
                .map(|row| {
                    let text: String = row.try_get_by_index(0)?;
                    RunRow::decode::<M>(&text).ok_or_else(|| DbErr::Custom(NOT_EXACT.into()))
                })
                .collect()
        })
    }

    fn column(&self, column: ColumnOf<M>) -> Value {
        use sea_orm::IdenStatic as _;
        M::FIELDS
            .iter()
            .position(|f| f.column.as_str() == column.as_str())
            .and_then(|i| self.values.get(i).cloned())
            .unwrap_or(Value::String(None))
    }
}

impl RunRow {
    /// The run in `text` (a JSON array of its columns' values), or `None`
    /// when a value is not rebuilt exactly.
    pub(crate) fn decode<M: TrackingConfig>(text: &str) -> Option<RunRow> {
        let raw: Vec<&RawValue> = serde_json::from_str(text).ok()?;
        if raw.len() != M::FIELDS.len() {
            return None;
        }
        let values = raw
            .iter()
            .enumerate()
            .map(|(i, raw)| value(M::field_type(i), raw.get()))
            .collect::<Option<Vec<_>>>()?;
        Some(RunRow { values })
    }
}

/// The value sea-orm builds for a field of type `ty` from the column value
/// SQLite wrote as `json`, or `None` when it may build another.
fn value(FieldType(class, nullable): FieldType, json: &str) -> Option<Value> {
    if json == "null" {
        // A NULL in a field that is not an `Option` fails the model: so
        // does this page, through the model.
        return nullable.then(|| null(class)).flatten();
    }
    Some(match class {
        ValueClass::Text => Value::String(Some(serde_json::from_str::<String>(json).ok()?)),
        ValueClass::Json => {
            let text: std::borrow::Cow<'_, str> = serde_json::from_str(json).ok()?;
            Value::Json(Some(Box::new(serde_json::from_str(&text).ok()?)))
        }
        ValueClass::I32 => Value::Int(Some(integer(json)?.try_into().ok()?)),
        ValueClass::I64 => Value::BigInt(Some(integer(json)?)),
        ValueClass::F32 => Value::Float(Some(float(json)? as f32)),
        ValueClass::F64 => Value::Double(Some(float(json)?)),
        ValueClass::Bool => Value::Bool(Some(integer(json)? != 0)),
        ValueClass::TimeUtc => {
            let text: &str = serde_json::from_str(json).ok()?;
            Value::ChronoDateTimeUtc(Some(
                DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc),
            ))
        }
        ValueClass::Other => return None,
    })
}

/// A float column's value as [`projection`] writes it (or an integer in a
/// float column, which SQLite converts), as sqlx reads it (a double; an
/// `f32` is that double cast).
fn float(json: &str) -> Option<f64> {
    if let Some(n) = integer(json) {
        return Some(n as f64);
    }
    let text: &str = serde_json::from_str(json).ok()?;
    text.strip_prefix('r')?.parse().ok()
}

/// An integer as SQLite writes one in JSON (digits, maybe a minus).
fn integer(json: &str) -> Option<i64> {
    let digits = json.strip_prefix('-').unwrap_or(json);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    json.parse().ok()
}

/// The NULL of a field of class `class`.
fn null(class: ValueClass) -> Option<Value> {
    Some(match class {
        ValueClass::Text => Value::String(None),
        ValueClass::Json => Value::Json(None),
        ValueClass::I32 => Value::Int(None),
        ValueClass::I64 => Value::BigInt(None),
        ValueClass::F32 => Value::Float(None),
        ValueClass::F64 => Value::Double(None),
        ValueClass::Bool => Value::Bool(None),
        ValueClass::TimeUtc => Value::ChronoDateTimeUtc(None),
        ValueClass::Other => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_only_what_sqlite_writes_for_one() {
        assert_eq!(integer("0"), Some(0));
        assert_eq!(integer("-42"), Some(-42));
        assert_eq!(integer("9223372036854775807"), Some(i64::MAX));
        for not in [
            "",
            "-",
            "1.0",
            "1e3",
            "\"1\"",
            "+1",
            " 1",
            "99999999999999999999",
        ] {
            assert_eq!(integer(not), None, "{not}");
        }
    }

    #[test]
    fn values_are_those_of_the_field_types() {
        let text = FieldType(ValueClass::Text, true);
        assert_eq!(
            value(text, r#""a\"b\n\u0000""#),
            Some(Value::String(Some("a\"b\n\0".into())))
        );
        assert_eq!(value(text, "null"), Some(Value::String(None)));
        assert_eq!(value(FieldType(ValueClass::Text, false), "null"), None);
        assert_eq!(value(text, "12"), None, "a number in a text field");
        let float = FieldType(ValueClass::F64, false);
        assert_eq!(
            value(float, r#""r0.30000000000000004""#),
            Some(Value::Double(Some(0.1 + 0.2)))
        );
        assert_eq!(value(float, "3"), Some(Value::Double(Some(3.0))));
        assert_eq!(value(float, "\"0.5\""), None, "text in a float column");
        assert_eq!(
            value(FieldType(ValueClass::Bool, false), "2"),
            Some(Value::Bool(Some(true)))
        );
        let time = FieldType(ValueClass::TimeUtc, false);
        assert!(value(time, "\"2026-12-07T10:00:00.5+02:00\"").is_some());
        assert_eq!(value(time, "\"2026-12-07 10:00:00\""), None);
        assert_eq!(value(time, "1700000000"), None);
        assert_eq!(
            value(FieldType(ValueClass::I32, false), "2147483648"),
            None,
            "past i32"
        );
    }
}
