//! The runs list as data: what a list URL asks for (filters, search, sort,
//! cursor, limit), checked against the dashboard's settings and the tracked
//! model, and the query that answers it with keyset pagination.
//!
//! Pages are cut by the sort value and the key of the last row shown (the
//! cursor), not by an offset: rows inserted while someone pages through the
//! list never shift or repeat the rows of the next page, and a deep page
//! costs what the first one costs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbBackend, DbErr, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, Value,
};

use crate::config::{
    ColumnKind, ColumnOf, Encode, FieldInfo, Role, TrackingConfig, column_value, find_all,
};
use crate::dashboard::DashboardSettings;
use crate::dashboard::search::{self, SearchCache, SearchRoute};
use crate::lifecycle::Status;

/// A query parameter that is not valid: answered with 400 and this message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("query parameter `{param}`: {message}")]
pub struct QueryError {
    /// The parameter.
    pub param: String,
    /// What is wrong with it.
    pub message: String,
}

fn bad(param: &str, message: impl Into<String>) -> QueryError {
    QueryError {
        param: param.to_owned(),
        message: message.into(),
    }
}

/// One filter: the field equals one of the values.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// The model field.
    pub field: &'static str,
    /// The values as written in the URL.
    pub values: Vec<String>,
}

/// A checked list request.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    /// Filters, ANDed; the values of one filter are ORed.
    pub filters: Vec<Filter>,
    /// Free text looked for in the search fields.
    pub search: Option<String>,
    /// The field the list is sorted by.
    pub sort: &'static str,
    /// Largest first.
    pub descending: bool,
    /// Where the page starts (the cursor of the previous page's last row).
    pub after: Option<String>,
    /// Rows per page.
    pub limit: u64,
    /// Only runs whose time field is in this range.
    pub time: Option<TimeRange>,
    /// How the search is answered, once [planned](ListQuery::plan); an
    /// unplanned search compares every run's text (what an export wants).
    pub route: Option<SearchRoute>,
    /// Only stuck runs (`stuck=true`): the handler fills [`keys`](Self::keys)
    /// with theirs.
    pub stuck: bool,
    /// Only the runs with these keys (the stuck ones), when set.
    pub keys: Option<Vec<String>>,
    /// The fields the caller reads, when not all: [`list`] then reads
    /// these, the key, the status and the sort field, and leaves every
    /// other field that may be NULL out of the `SELECT` (the model gets
    /// `None`). The HTML list shows six of a run's fields; the others'
    /// values were a quarter of its work.
    pub reads: Option<Vec<&'static str>>,
}

/// A time-range filter: `since=24h` (the last 24 hours; `m`, `h`, `d` or
/// `w`), or `from=` and / or `to=` (RFC 3339, or `2026-12-01`,
/// `2026-12-01T08:30` in the dashboard's time zone; a date alone as `to`
/// takes in that whole day). The field is the first timestamp field in
/// `filters` that tasktrail maps (`created_at`, `updated_at`,
/// `started_at`, `completed_at`, `failed_at`), else the creation time.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeRange {
    /// The model field the range applies to.
    pub field: &'static str,
    /// `since` as written (`24h`), when the range is relative.
    pub since: Option<String>,
    /// `from` and `to` as written, when given.
    pub from_text: Option<String>,
    /// See `from_text`.
    pub to_text: Option<String>,
    /// The earliest time included.
    pub from: Option<DateTime<Utc>>,
    /// The first time past the range.
    pub to: Option<DateTime<Utc>>,
}

/// The longest `since`: ten years.
const MAX_SINCE_DAYS: i64 = 3_650;

/// The most rows one page may ask for.
pub const MAX_LIMIT: u64 = 1_000;

fn field<M: TrackingConfig>(name: &str) -> Option<&'static FieldInfo<ColumnOf<M>>> {
    M::FIELDS.iter().find(|f| f.field == name)
}

fn role_field<M: TrackingConfig>(role: Role) -> Option<&'static str> {
    M::field(role).map(|f| f.field)
}

/// The roles whose fields are times a range can filter.
const TIME_ROLES: [Role; 5] = [
    Role::CreatedAt,
    Role::UpdatedAt,
    Role::StartedAt,
    Role::CompletedAt,
    Role::FailedAt,
];

/// The field time ranges filter: the first timestamp field in `filters`
/// that tasktrail maps, else the creation time, if mapped.
pub fn time_field<M: TrackingConfig>(settings: &DashboardSettings) -> Option<&'static str> {
    settings
        .filters
        .iter()
        .filter_map(|f| field::<M>(f))
        .find(|f| f.role.is_some_and(|r| TIME_ROLES.contains(&r)))
        .or_else(|| M::field(Role::CreatedAt))
        .map(|f| f.field)
}

/// The filters a dashboard offers: the configured ones, or the status and
/// name fields.
pub fn filter_fields<M: TrackingConfig>(settings: &DashboardSettings) -> Vec<&'static str> {
    if settings.filters.is_empty() {
        [Role::Status, Role::Name]
            .into_iter()
            .filter_map(role_field::<M>)
            .collect()
    } else {
        settings
            .filters
            .iter()
            .filter_map(|f| field::<M>(f).map(|f| f.field))
            .collect()
    }
}

/// The fields free-text search looks in: the configured ones, or the key,
/// name and message fields.
pub fn search_fields<M: TrackingConfig>(settings: &DashboardSettings) -> Vec<&'static str> {
    if settings.search.is_empty() {
        [Role::Key, Role::Name, Role::Message]
            .into_iter()
            .filter_map(role_field::<M>)
            .collect()
    } else {
        settings
            .search
            .iter()
            .filter_map(|f| field::<M>(f).map(|f| f.field))
            .collect()
    }
}

/// The default order: the configured one, or newest first by `created_at`
/// (the key when no creation time is mapped).
pub fn default_sort<M: TrackingConfig>(settings: &DashboardSettings) -> (&'static str, bool) {
    if let Some(f) = field::<M>(&settings.sort.field) {
        return (f.field, settings.sort.descending);
    }
    match role_field::<M>(Role::CreatedAt) {
        Some(created) => (created, true),
        None => (role_field::<M>(Role::Key).expect("a key is mapped"), true),
    }
}

impl ListQuery {
    /// Checks the query string's pairs: `FIELD=value` for each filter field
    /// (repeatable), `q`, `sort` (`field` or `-field`), `after`, `limit`.
    /// Anything else is an error, so a typo never silently shows everything.
    pub fn parse<M: TrackingConfig>(
        settings: &DashboardSettings,
        pairs: &[(String, String)],
    ) -> Result<Self, QueryError> {
        let filterable = filter_fields::<M>(settings);
        let (sort, descending) = default_sort::<M>(settings);
        let mut query = ListQuery {
            filters: Vec::new(),
            search: None,
            sort,
            descending,
            after: None,
            limit: u64::from(settings.page_size),
            time: None,
            route: None,
            stuck: false,
            keys: None,
            reads: None,
        };
        let zone = crate::dashboard::pages::Zone::of(&settings.time_zone);
        let mut seen_single: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            let name = name.as_str();
            if matches!(
                name,
                "q" | "sort" | "after" | "limit" | "since" | "from" | "to" | "stuck"
            ) {
                if seen_single.contains(&name) {
                    return Err(bad(name, "given more than once"));
                }
                seen_single.push(name);
            }
            match name {
                "q" => {
                    let text = value.trim();
                    if text.chars().count() > 200 {
                        return Err(bad("q", "longer than 200 characters"));
                    }
                    if !text.is_empty() {
                        query.search = Some(text.to_owned());
                    }
                }
                "sort" => {
                    let (desc, name) = match value.strip_prefix('-') {
                        Some(rest) => (true, rest),
                        None => (false, value.as_str()),
                    };
                    let f = field::<M>(name).ok_or_else(|| {
                        bad("sort", format!("`{name}` is not a field of the runs"))
                    })?;
                    if !sortable(f) {
                        return Err(bad(
                            "sort",
                            format!("the runs cannot be sorted by `{name}`"),
                        ));
                    }
                    query.sort = f.field;
                    query.descending = desc;
                }
                "stuck" => {
                    query.stuck = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(bad(
                                "stuck",
                                format!("`{value}` is not `true` or `false`"),
                            ));
                        }
                    }
                }
                "after" => {
                    if !value.is_empty() {
                        Cursor::decode(value)
                            .ok_or_else(|| bad("after", "not a cursor from this list"))?;
                        query.after = Some(value.clone());
                    }
                }
                "since" | "from" | "to" => {
                    let Some(time_field) = time_field::<M>(settings) else {
                        return Err(bad(name, "the runs have no time field to filter by"));
                    };
                    let range = query.time.get_or_insert(TimeRange {
                        field: time_field,
                        since: None,
                        from_text: None,
                        to_text: None,
                        from: None,
                        to: None,
                    });
                    let text = value.trim();
                    if text.is_empty() {
                        continue;
                    }
                    match name {
                        "since" => {
                            range.from = Some(Utc::now() - parse_since(text)?);
                            range.since = Some(text.to_owned());
                        }
                        "from" => {
                            range.from = Some(parse_time("from", text, zone, false)?);
                            range.from_text = Some(text.to_owned());
                        }
                        _ => {
                            range.to = Some(parse_time("to", text, zone, true)?);
                            range.to_text = Some(text.to_owned());
                        }
                    }
                }
                "limit" => {
                    let n: u64 = value
                        .parse()
                        .map_err(|_| bad("limit", format!("`{value}` is not a whole number")))?;
                    if !(1..=MAX_LIMIT).contains(&n) {
                        return Err(bad(
                            "limit",
                            format!("{n} is not between 1 and {MAX_LIMIT}"),
                        ));
                    }
                    query.limit = n;
                }
                _ if Some(name) == time_field::<M>(settings) => {
                    return Err(bad(
                        name,
                        "a time is filtered by range: `since=24h`, or `from=` and `to=`",
                    ));
                }
                _ => {
                    let Some(field) = filterable.iter().find(|f| **f == name) else {
                        return Err(bad(
                            name,
                            format!(
                                "not a filter of this list (filters: {})",
                                filterable.join(", ")
                            ),
                        ));
                    };
                    // Checked now, so the query never fails on it.
                    filter_value::<M>(field, value)?;
                    match query.filters.iter_mut().find(|f| f.field == *field) {
                        Some(f) => f.values.push(value.clone()),
                        None => query.filters.push(Filter {
                            field,
                            values: vec![value.clone()],
                        }),
                    }
                }
            }
        }
        if let Some(range) = &query.time {
            if range.since.is_some() && (range.from_text.is_some() || range.to_text.is_some()) {
                return Err(bad("since", "give `since` or `from` / `to`, not both"));
            }
            if let (Some(from), Some(to)) = (range.from, range.to)
                && from >= to
            {
                return Err(bad("to", "`to` must be later than `from`"));
            }
            if range.since.is_none() && range.from.is_none() && range.to.is_none() {
                query.time = None;
            }
        }
        // Checked once the sort is known: a cursor of another column's
        // type (a crafted or stale one) is a value the database cannot
        // compare with this one (PostgreSQL refuses `timestamptz < text`),
        // or cannot even take (an unsigned number past `i64::MAX`).
        if let Some(after) = &query.after {
            let sort = field::<M>(query.sort).expect("the sort is a field");
            if !Cursor::decode(after).is_some_and(|c| c.fits(sort)) {
                return Err(bad(
                    "after",
                    format!("not a cursor of this list sorted by `{}`", query.sort),
                ));
            }
        }
        Ok(query)
    }

    /// Plans the search, if any ([`search`](crate::dashboard::search)):
    /// what the list pages and the API do, so that a search reads an index
    /// or a bounded window, never the whole table.
    pub(crate) async fn plan<M: TrackingConfig>(
        &mut self,
        db: &DatabaseConnection,
        settings: &DashboardSettings,
        cache: &SearchCache,
    ) -> Result<(), DbErr> {
        if let Some(term) = &self.search {
            self.route = Some(search::plan::<M>(db, settings, cache, term).await?);
        }
        Ok(())
    }

    /// The query string pairs that reproduce this query (without `after`):
    /// the list's state in its URL.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for f in &self.filters {
            for v in &f.values {
                pairs.push((f.field.to_owned(), v.clone()));
            }
        }
        if let Some(q) = &self.search {
            pairs.push(("q".into(), q.clone()));
        }
        if let Some(range) = &self.time {
            for (name, value) in [
                ("since", &range.since),
                ("from", &range.from_text),
                ("to", &range.to_text),
            ] {
                if let Some(value) = value {
                    pairs.push((name.into(), value.clone()));
                }
            }
        }
        if self.stuck {
            pairs.push(("stuck".into(), "true".into()));
        }
        let sign = if self.descending { "-" } else { "" };
        pairs.push(("sort".into(), format!("{sign}{}", self.sort)));
        pairs
    }
}

fn sortable<C: ColumnTrait>(f: &FieldInfo<C>) -> bool {
    matches!(
        f.kind(),
        ColumnKind::Text | ColumnKind::Number | ColumnKind::Timestamp | ColumnKind::Bool
    )
}

/// A filter value as a column value.
fn filter_value<M: TrackingConfig>(field_name: &str, text: &str) -> Result<Value, QueryError> {
    let f = field::<M>(field_name).expect("filter fields are model fields");
    if f.role == Some(Role::Status) {
        let status: Status = text
            .parse()
            .map_err(|e: crate::lifecycle::ParseStatusError| bad(field_name, e.to_string()))?;
        let Some(Encode::Status(encode, _)) = M::binding(Role::Status).map(|b| b.encode) else {
            unreachable!("the status role has a status encoder")
        };
        return Ok(encode(status));
    }
    match f.kind() {
        ColumnKind::Text => Ok(Value::String(Some(text.to_owned()))),
        ColumnKind::Bool => match text {
            "true" => Ok(Value::Bool(Some(true))),
            "false" => Ok(Value::Bool(Some(false))),
            _ => Err(bad(
                field_name,
                format!("`{text}` is not `true` or `false`"),
            )),
        },
        ColumnKind::Number => {
            if let Ok(n) = text.parse::<i64>() {
                Ok(Value::BigInt(Some(n)))
            } else {
                text.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map(|x| Value::Double(Some(x)))
                    .ok_or_else(|| bad(field_name, format!("`{text}` is not a number")))
            }
        }
        _ => Err(bad(field_name, "this field cannot be filtered by value")),
    }
}

/// `since`: a whole number and a unit, `m`, `h`, `d` or `w`.
fn parse_since(text: &str) -> Result<chrono::Duration, QueryError> {
    let wrong = || {
        bad(
            "since",
            format!("`{text}` is not a span such as `1h`, `24h`, `7d` (units m, h, d, w)"),
        )
    };
    let unit = text.chars().last().ok_or_else(wrong)?;
    let n: i64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| wrong())?;
    let minutes = match unit {
        'm' => 1,
        'h' => 60,
        'd' => 24 * 60,
        'w' => 7 * 24 * 60,
        _ => return Err(wrong()),
    };
    if n < 1 || n.saturating_mul(minutes) > MAX_SINCE_DAYS * 24 * 60 {
        return Err(bad(
            "since",
            format!("`{text}` is not between 1 minute and {MAX_SINCE_DAYS} days"),
        ));
    }
    Ok(chrono::Duration::minutes(n * minutes))
}

/// `from` / `to`: RFC 3339, or a date with an optional time of day in the
/// dashboard's time zone. A date alone as the end (`end`) takes in that
/// whole day.
fn parse_time(
    param: &str,
    text: &str,
    zone: crate::dashboard::pages::Zone,
    end: bool,
) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.to_utc());
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| if end { d.succ_opt() } else { Some(d) })
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(|| {
        bad(
            param,
            format!(
                "`{text}` is not a time such as `2026-12-01`, `2026-12-01T08:30` or \
                     `2026-12-01T08:30:00Z`"
            ),
        )
    })?;
    zone.to_utc(naive).ok_or_else(|| {
        bad(
            param,
            format!("`{text}` does not exist in the dashboard's time zone"),
        )
    })
}

/// Where a page starts: the sort value and the key of the row before it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cursor {
    /// The row's sort value; a NULL one (of any type) when it had none.
    pub value: Value,
    pub key: String,
}

impl Cursor {
    /// Whether the row before the page had no sort value.
    pub(crate) fn is_null(&self) -> bool {
        self.value == self.value.as_null()
    }

    pub(crate) fn encode(&self) -> Option<String> {
        let (tag, json) = match &self.value {
            Value::String(Some(s)) => ("s", serde_json::json!(s)),
            Value::Bool(Some(b)) => ("b", serde_json::json!(b)),
            Value::TinyInt(Some(n)) => ("i", serde_json::json!(n)),
            Value::SmallInt(Some(n)) => ("i", serde_json::json!(n)),
            Value::Int(Some(n)) => ("i", serde_json::json!(n)),
            Value::BigInt(Some(n)) => ("i", serde_json::json!(n)),
            Value::Float(Some(x)) => ("f", serde_json::json!(x)),
            Value::Double(Some(x)) => ("f", serde_json::json!(x)),
            Value::ChronoDateTimeUtc(Some(t)) => ("tu", serde_json::json!(t.to_rfc3339())),
            Value::ChronoDateTimeWithTimeZone(Some(t)) => ("tz", serde_json::json!(t.to_rfc3339())),
            Value::ChronoDateTime(Some(t)) => ("tn", serde_json::json!(t)),
            Value::ChronoDateTimeLocal(Some(t)) => ("tz", serde_json::json!(t.to_rfc3339())),
            Value::TinyUnsigned(Some(n)) => ("u", serde_json::json!(n)),
            Value::SmallUnsigned(Some(n)) => ("u", serde_json::json!(n)),
            Value::Unsigned(Some(n)) => ("u", serde_json::json!(n)),
            Value::BigUnsigned(Some(n)) => ("u", serde_json::json!(n)),
            // The row has no value: the page ends among the NULLs.
            value if *value == value.as_null() => ("n", serde_json::Value::Null),
            // A type no sortable column holds.
            _ => return None,
        };
        let text = serde_json::to_string(&(tag, json, &self.key)).ok()?;
        Some(URL_SAFE_NO_PAD.encode(text))
    }

    /// Whether the cursor's value can stand for a value of `sort`'s
    /// column: none (the row had no value), or a value of the column's
    /// kind; an unsigned number past `i64::MAX` only for an unsigned
    /// column (only MySQL stores one; the other backends take none).
    pub(crate) fn fits<C: ColumnTrait>(&self, sort: &FieldInfo<C>) -> bool {
        if self.is_null() {
            return true;
        }
        match (&self.value, sort.kind()) {
            (Value::String(_), ColumnKind::Text)
            | (Value::Bool(_), ColumnKind::Bool)
            | (Value::BigInt(_) | Value::Double(_), ColumnKind::Number)
            | (
                Value::ChronoDateTimeUtc(_)
                | Value::ChronoDateTimeWithTimeZone(_)
                | Value::ChronoDateTime(_),
                ColumnKind::Timestamp,
            ) => true,
            (Value::BigUnsigned(Some(n)), ColumnKind::Number) => {
                i64::try_from(*n).is_ok()
                    || matches!(
                        sort.column.def().get_column_type(),
                        sea_orm::ColumnType::BigUnsigned
                    )
            }
            _ => false,
        }
    }

    pub(crate) fn decode(token: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let (tag, raw, key): (String, &serde_json::value::RawValue, String) =
            serde_json::from_slice(&bytes).ok()?;
        // A float by the standard library's parser: serde_json's (without
        // its `float_roundtrip` feature) may give the neighbouring `f64`,
        // and the next page then started before the cursor's row or after
        // the one that follows it.
        if tag == "f" {
            let value = raw.get().parse::<f64>().ok().filter(|x| x.is_finite())?;
            return Some(Cursor {
                value: Value::Double(Some(value)),
                key,
            });
        }
        let json: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
        let value = match tag.as_str() {
            "s" => Value::String(Some(json.as_str()?.to_owned())),
            "b" => Value::Bool(Some(json.as_bool()?)),
            "i" => Value::BigInt(Some(json.as_i64()?)),
            "u" => Value::BigUnsigned(Some(json.as_u64()?)),
            "tu" => Value::ChronoDateTimeUtc(Some(
                chrono::DateTime::parse_from_rfc3339(json.as_str()?)
                    .ok()?
                    .with_timezone(&chrono::Utc),
            )),
            "tz" => Value::ChronoDateTimeWithTimeZone(Some(
                chrono::DateTime::parse_from_rfc3339(json.as_str()?).ok()?,
            )),
            "tn" => Value::ChronoDateTime(Some(serde_json::from_value(json).ok()?)),
            "n" => Value::String(None),
            _ => return None,
        };
        Some(Cursor { value, key })
    }
}

/// One page of runs.
#[derive(Clone, Debug)]
pub struct Page<M> {
    /// The rows, in the list's order.
    pub rows: Vec<M>,
    /// The cursor of the next page, if there is one.
    pub next: Option<String>,
}

/// Runs `query`: one `SELECT` with the filters, the search, the keyset
/// condition, the order and `limit + 1` rows (to know whether a next page
/// exists) — and, for a column that may be NULL, a second one for the rows
/// without a value, which come last in both directions.
///
/// The keyset predicate for the rows with a value is a row-value
/// comparison, `(sort, key) < (value, key)` (`>` ascending), which SQLite
/// (3.15+) and PostgreSQL turn into a range scan of an index on `sort` that
/// stops after the page's rows; the equivalent `sort < value OR (sort =
/// value AND key < key)` is planned as two index scans whose union is
/// sorted: every row past the cursor read and sorted for each page. A NULL
/// makes that comparison NULL, so those rows are never in that range: they
/// are read by `sort IS NULL`, ordered by the key alone (`key < key` past a
/// cursor among them), once the rows with a value are exhausted. A column
/// declared `NOT NULL` sends exactly the row-value statement and nothing
/// else; the first page of a nullable one adds `sort IS NOT NULL`, which an
/// index on `sort` serves as a range too. Backends disagree on where NULLs
/// sort (SQLite first in `ASC`, PostgreSQL first in `DESC`); with them
/// kept out of the ordered statement the order is the same everywhere.
pub async fn list<M: TrackingConfig>(
    db: &DatabaseConnection,
    settings: &DashboardSettings,
    query: &ListQuery,
) -> Result<Page<M>, DbErr> {
    list_rows::<M, M>(db, settings, query, reading::<M>(query)).await
}

/// What a page of runs can be read as: the model, or each run as one value
/// (the JSON list on SQLite: [`crate::dashboard::run_rows::RunRow`]).
pub(crate) trait PageRow<M: TrackingConfig>: Sized + Send {
    /// Runs `select`: the list's statement, with the columns this type
    /// reads.
    fn fetch(
        select: sea_orm::Select<M::Entity>,
        db: &DatabaseConnection,
    ) -> futures::future::BoxFuture<'_, Result<Vec<Self>, DbErr>>;

    /// The value of `column` (the key and the sort field: the cursor), as
    /// sea-orm's `ModelTrait::get` gives it.
    fn column(&self, column: ColumnOf<M>) -> Value;
}

impl<M: TrackingConfig> PageRow<M> for M {
    fn fetch(
        select: sea_orm::Select<M::Entity>,
        db: &DatabaseConnection,
    ) -> futures::future::BoxFuture<'_, Result<Vec<Self>, DbErr>> {
        find_all(select, db)
    }

    fn column(&self, column: ColumnOf<M>) -> Value {
        column_value::<M::Entity>(self, column)
    }
}

/// [`list`], reading each run as `R` through `projection` (`M::Entity`'s
/// `SELECT` with the columns `R` reads).
pub(crate) async fn list_rows<M: TrackingConfig, R: PageRow<M>>(
    db: &DatabaseConnection,
    settings: &DashboardSettings,
    query: &ListQuery,
    projection: sea_orm::Select<M::Entity>,
) -> Result<Page<R>, DbErr> {
    let (key_col, encode_key) = crate::config::key_encoder::<M>();
    let sort_col = field::<M>(query.sort).expect("checked by parse").column;
    let nullable = sort_col.def().is_null();
    let cursor = query.after.as_deref().and_then(Cursor::decode);
    let among_nulls = cursor.as_ref().is_some_and(Cursor::is_null);
    let order = if query.descending {
        Order::Desc
    } else {
        Order::Asc
    };
    let want = query.limit + 1;
    let base = projection.filter(conditions::<M>(settings, query));

    let mut rows = Vec::new();
    if !among_nulls {
        let mut select = base.clone();
        match &cursor {
            Some(cursor) => {
                let value = match &cursor.value {
                    // Only MySQL stores an unsigned number past `i64::MAX`
                    // (the other drivers cannot even bind one): elsewhere
                    // the cursor is at the largest number they store.
                    Value::BigUnsigned(Some(n))
                        if db.get_database_backend() != DbBackend::MySql =>
                    {
                        Value::BigInt(Some(i64::try_from(*n).unwrap_or(i64::MAX)))
                    }
                    value => value.clone(),
                };
                let value = sort_col.save_as(Expr::val(value));
                let key = Expr::val(encode_key(&cursor.key));
                select = select.filter(if db.get_database_backend() == DbBackend::MySql {
                    // MySQL reads a row comparison without its index: the
                    // same order as two ranges of `(sort, key)`.
                    let (sorted, keyed) = if query.descending {
                        (
                            Expr::col(sort_col).lt(value.clone()),
                            Expr::col(key_col).lt(key),
                        )
                    } else {
                        (
                            Expr::col(sort_col).gt(value.clone()),
                            Expr::col(key_col).gt(key),
                        )
                    };
                    sorted.or(Expr::col(sort_col).eq(value).and(keyed))
                } else {
                    let row = Expr::tuple([Expr::col(sort_col), Expr::col(key_col)]);
                    let at = Expr::tuple([value, key]);
                    if query.descending {
                        row.lt(at)
                    } else {
                        row.gt(at)
                    }
                });
            }
            None if nullable => select = select.filter(Expr::col(sort_col).is_not_null()),
            None => {}
        }
        let select = select
            .order_by(sort_col, order.clone())
            .order_by(key_col, order.clone())
            .limit(want);
        rows = R::fetch(select, db).await?;
    }
    if nullable && (rows.len() as u64) < want {
        let mut select = base.filter(Expr::col(sort_col).is_null());
        if let Some(cursor) = cursor.as_ref().filter(|c| c.is_null()) {
            let key = Expr::val(encode_key(&cursor.key));
            select = select.filter(if query.descending {
                Expr::col(key_col).lt(key)
            } else {
                Expr::col(key_col).gt(key)
            });
        }
        let select = select
            .order_by(key_col, order)
            .limit(want - rows.len() as u64);
        rows.extend(R::fetch(select, db).await?);
    }

    let next = if rows.len() as u64 > query.limit {
        rows.truncate(query.limit as usize);
        rows.last().and_then(|last| {
            let key = crate::config::value_text(last.column(key_col))?;
            let cursor = Cursor {
                value: last.column(sort_col),
                key,
            };
            let token = cursor.encode();
            if token.is_none() {
                tracing::warn!(
                    field = query.sort,
                    "tasktrail dashboard: this field's values cannot make a page cursor; the list stops here"
                );
            }
            token
        })
    } else {
        None
    };
    Ok(Page { rows, next })
}

/// `SELECT` of the fields `query` [reads](ListQuery::reads): every column
/// when it names none; else each column it needs, and of the others those
/// that may not be NULL (the model needs a value). sea-orm builds an
/// `Option` field whose column is not in the result as `None`; a column
/// left out costs the database driver nothing, where `NULL AS col` still
/// made SQLite copy a value per row.
fn reading<M: TrackingConfig>(query: &ListQuery) -> sea_orm::Select<M::Entity> {
    use sea_orm::IdenStatic as _;
    let Some(reads) = &query.reads else {
        return M::Entity::find();
    };
    let needed = |column: ColumnOf<M>| {
        M::FIELDS
            .iter()
            .find(|f| f.column.as_str() == column.as_str())
            .is_none_or(|f| {
                f.field == query.sort
                    || matches!(f.role, Some(Role::Key | Role::Status))
                    || reads.contains(&f.field)
            })
    };
    let mut select = M::Entity::find().select_only();
    for column in <ColumnOf<M> as sea_orm::Iterable>::iter() {
        if needed(column) || !column.def().is_null() {
            select = select.column(column);
        }
    }
    select
}

/// How many runs match `query`'s filters and search (its cursor and limit
/// aside): an exact `COUNT(*)`, for work that is not on a page's path (the
/// progress of a background bulk action).
pub async fn count<M: TrackingConfig>(
    db: &DatabaseConnection,
    settings: &DashboardSettings,
    query: &ListQuery,
) -> Result<u64, DbErr> {
    let select = M::Entity::find()
        .filter(conditions::<M>(settings, query))
        .select_only()
        .column_as(Expr::col(sea_orm::sea_query::Asterisk).count(), "n")
        .into_tuple::<i64>();
    let n: Option<i64> = Box::pin(select.one(db)).await?;
    Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// The filters and the search as one condition.
fn conditions<M: TrackingConfig>(settings: &DashboardSettings, query: &ListQuery) -> Condition {
    let mut all = Condition::all();
    for filter in &query.filters {
        let col = field::<M>(filter.field).expect("checked by parse").column;
        let values: Vec<Expr> = filter
            .values
            .iter()
            .filter_map(|v| filter_value::<M>(filter.field, v).ok())
            .map(|v| col.save_as(Expr::val(v)))
            .collect();
        all = all.add(Expr::col(col).is_in(values));
    }
    if let Some(range) = &query.time
        && let Some(f) = field::<M>(range.field)
        && let Some(crate::config::Binding {
            encode: Encode::Time(encode),
            ..
        }) = f.role.and_then(M::binding)
    {
        let col = f.column;
        if let Some(from) = range.from {
            all = all.add(Expr::col(col).gte(col.save_as(Expr::val(encode(from)))));
        }
        if let Some(to) = range.to {
            all = all.add(Expr::col(col).lt(col.save_as(Expr::val(encode(to)))));
        }
    }
    if let Some(text) = &query.search {
        all = all.add(search::condition::<M>(settings, text, query.route.as_ref()));
    }
    if let Some(keys) = &query.keys {
        let (key_col, encode_key) = crate::config::key_encoder::<M>();
        let keys: Vec<Expr> = keys.iter().map(|k| Expr::val(encode_key(k))).collect();
        all = all.add(Expr::col(key_col).is_in(keys));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        for value in [
            Value::String(Some("a b".into())),
            Value::BigInt(Some(-3)),
            Value::Double(Some(2.5)),
            Value::Bool(Some(true)),
            Value::ChronoDateTimeUtc(Some(t)),
            Value::BigUnsigned(Some(u64::MAX)),
            Value::String(None),
        ] {
            let cursor = Cursor {
                value,
                key: "k-1".into(),
            };
            assert_eq!(Cursor::decode(&cursor.encode().unwrap()), Some(cursor));
        }
        // Floats come back as the same `f64`, to the last bit (serde_json's
        // own parser gave 99.99f32 back one step below: a page repeated
        // rows). Floats of `f32` columns as `f64`, as bound.
        for i in 1..2_000 {
            let n = f64::from(i);
            for value in [
                n / 7.0,
                -1.0 / (n * 3.0),
                n.sqrt() * 1e-9,
                n.powi(7) / 3.0,
                f64::from(i as f32 / 7.0),
            ] {
                let cursor = Cursor {
                    value: Value::Double(Some(value)),
                    key: "k".into(),
                };
                let back = Cursor::decode(&cursor.encode().unwrap()).unwrap();
                assert_eq!(back.value, Value::Double(Some(value)), "{value:e}");
            }
        }
        let cursor = Cursor {
            value: Value::Float(Some(99.99)),
            key: "k".into(),
        };
        assert_eq!(
            Cursor::decode(&cursor.encode().unwrap()).unwrap().value,
            Value::Double(Some(f64::from(99.99f32)))
        );
        // A row without a value, whatever the column's type.
        for null in [
            Value::ChronoDateTimeUtc(None),
            Value::Double(None),
            Value::Bool(None),
        ] {
            let cursor = Cursor {
                value: null,
                key: "k-2".into(),
            };
            assert!(cursor.is_null());
            let back = Cursor::decode(&cursor.encode().unwrap()).unwrap();
            assert!(back.is_null());
            assert_eq!(back.key, "k-2");
        }
        // A value no sortable column holds makes no cursor.
        let cursor = Cursor {
            value: Value::Bytes(Some(vec![1, 2])),
            key: "k-3".into(),
        };
        assert_eq!(cursor.encode(), None);
        for junk in [
            "",
            "%%%",
            "bm90IGpzb24",
            &URL_SAFE_NO_PAD.encode(r#"["x",1,"k"]"#),
        ] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }
}
