//! Turns an event into one atomic SQL statement.
//!
//! Every event except `cleanup` is an upsert on the key column
//! (`INSERT … ON CONFLICT (key) DO UPDATE SET …`), so a run is created by
//! whichever event arrives first, and two writers never make two rows. The
//! `SET` list holds only what the event carries; values that describe the
//! run's state (status, message, progress, result, timestamps) are written
//! only when the status move is allowed, checked against the stored row in
//! the same statement:
//!
//! ```sql
//! status = CASE WHEN t.status IS NULL OR t.status NOT IN (<blocked>)
//!               THEN excluded.status ELSE t.status END
//! ```
//!
//! On MySQL / MariaDB the same upsert is `INSERT … ON DUPLICATE KEY UPDATE`,
//! `excluded.col` is `VALUES(col)`, and the status is assigned last: MySQL
//! evaluates the assignments in order, each seeing the ones before, and
//! every guard reads the stored status.
//!
//! `cleanup` is a plain `UPDATE … WHERE key = ?` of the cleaned flag and
//! `updated_at`: it never creates a row.
//!
//! The blocked statuses and the empty-text check are SQL literals, so the
//! only bound values are the inserted ones, in column order: the SQL of an
//! upsert depends only on the event's [`Shape`], and the tracker renders it
//! once per shape.

use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, Func, InsertStatement, OnConflict, Query, UpdateStatement,
};
use sea_orm::{ColumnTrait, DbBackend, EntityName, IdenStatic, Value};

use crate::config::{Binding, ColumnOf, Encode, Role, TrackingConfig};
use crate::lifecycle::{Progress, Status};

/// How a column is written when the row already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    /// Written whenever carried (name, user, objects, args, extras).
    Identity,
    /// Written only when the status move is allowed.
    State,
    /// Written only where the stored value is NULL or the empty text a
    /// placeholder left (what `create` carries).
    Fill,
    /// Like `State`, but an existing value is kept (`started_at`).
    KeepFirst,
    /// Written only by the insert (`created_at`, placeholders).
    InsertOnly,
}

/// A column value of a prepared event.
#[derive(Clone)]
pub(crate) struct Cell<C> {
    pub column: C,
    pub value: Value,
    pub class: Class,
}

/// An event after hooks, redaction, capping and column mapping.
pub(crate) struct Prepared<M: TrackingConfig> {
    pub key_column: ColumnOf<M>,
    pub key_value: Value,
    pub status: Option<(ColumnOf<M>, Status)>,
    pub cells: Vec<Cell<ColumnOf<M>>>,
}

impl<M: TrackingConfig> Clone for Prepared<M> {
    fn clone(&self) -> Self {
        Prepared {
            key_column: self.key_column,
            key_value: self.key_value.clone(),
            status: self.status,
            cells: self.cells.clone(),
        }
    }
}

/// The statement for a prepared event.
pub(crate) enum Statement {
    Upsert(InsertStatement),
    Update(UpdateStatement),
}

/// What an upsert's SQL depends on: the target status and, per column,
/// its class and whether its value is text (a text `Fill` also checks for
/// the empty placeholder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    status: Status,
    cells: Vec<(&'static str, Class, bool)>,
}

impl Shape {
    /// Whether `p` has this shape (without building its own).
    pub fn matches<M: TrackingConfig>(&self, p: &Prepared<M>) -> bool {
        p.status.is_some_and(|(_, s)| s == self.status)
            && self.cells.len() == p.cells.len()
            && self
                .cells
                .iter()
                .zip(&p.cells)
                .all(|(&(name, class, text), c)| {
                    class == c.class
                        && text == matches!(c.value, Value::String(_))
                        && name == c.column.as_str()
                })
    }
}

/// Shapes and what was made for each: a short list searched by a cheap
/// signature (a tracker sees a handful of shapes; hashing each event's
/// column names with SipHash cost more than the rest of its lookup).
pub(crate) struct Shapes<T> {
    entries: Vec<(u64, Shape, T)>,
}

impl<T> Default for Shapes<T> {
    fn default() -> Self {
        Shapes {
            entries: Vec::new(),
        }
    }
}

impl<T: Clone> Shapes<T> {
    /// What was made for `p`'s shape, made by `make` the first time.
    pub fn get_or_insert<M: TrackingConfig>(
        &mut self,
        p: &Prepared<M>,
        make: impl FnOnce() -> T,
    ) -> Option<T> {
        let signature = p.signature()?;
        if let Some((_, _, made)) = self
            .entries
            .iter()
            .find(|(sig, shape, _)| *sig == signature && shape.matches(p))
        {
            return Some(made.clone());
        }
        let made = make();
        self.entries.push((signature, p.shape()?, made.clone()));
        Some(made)
    }
}

/// The value the insert proposed for `col`: `excluded.col` (PostgreSQL,
/// SQLite); `VALUES(col)` on MySQL / MariaDB, which MariaDB needs and MySQL
/// 8 still takes.
fn excluded<C: ColumnTrait>(backend: DbBackend, col: C) -> Expr {
    if backend == DbBackend::MySql {
        Func::cust(Alias::new("VALUES")).arg(Expr::col(col)).into()
    } else {
        Expr::col((Alias::new("excluded"), col))
    }
}

fn existing<M: TrackingConfig>(col: ColumnOf<M>) -> Expr {
    Expr::col((M::Entity::default(), col))
}

/// The placeholder an insert needs for a required column the event does not
/// carry.
pub(crate) fn placeholder(
    binding: &Binding<impl Copy>,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    match binding.encode {
        Encode::Key(f) | Encode::Text(f) => f(""),
        Encode::Status(f, _) => f(Status::Pending),
        Encode::Progress(f) => f(&Progress::new(0.0)),
        Encode::Payload(f) => f(&serde_json::Value::Null),
        Encode::Time(f) => f(now),
        Encode::Flag(f) => f(false),
    }
}

impl<M: TrackingConfig> Prepared<M> {
    /// Adds `value` for `role` if the role is mapped; returns whether it was.
    pub fn push(&mut self, role: Role, class: Class, value: impl FnOnce(Encode) -> Option<Value>) {
        if let Some(binding) = M::binding(role)
            && let Some(value) = value(binding.encode)
        {
            self.cells.push(Cell {
                column: binding.column,
                value,
                class,
            });
        }
    }

    /// A cheap hash of [`shape`](Self::shape): the column names' static
    /// addresses, not their text.
    fn signature(&self) -> Option<u64> {
        let (_, status) = self.status?;
        let mix = |h: u64, x: u64| (h.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        let mut h = mix(0, status as u64);
        for c in &self.cells {
            let name = c.column.as_str();
            h = mix(h, name.as_ptr() as u64);
            h = mix(h, name.len() as u64);
            h = mix(
                h,
                (c.class as u64) << 1 | u64::from(matches!(c.value, Value::String(_))),
            );
        }
        Some(h)
    }

    /// The upsert's shape, for events that move the status.
    pub fn shape(&self) -> Option<Shape> {
        let (_, status) = self.status?;
        Some(Shape {
            status,
            cells: self
                .cells
                .iter()
                .map(|c| {
                    (
                        c.column.as_str(),
                        c.class,
                        matches!(c.value, Value::String(_)),
                    )
                })
                .collect(),
        })
    }

    /// The upsert's bound values, in the order its SQL binds them: the key,
    /// the status, then the cells.
    pub fn upsert_values(&self) -> Vec<Value> {
        self.clone().into_upsert_values()
    }

    /// [`upsert_values`](Self::upsert_values), moving the values out.
    pub fn into_upsert_values(self) -> Vec<Value> {
        let Some((_, status)) = self.status else {
            return Vec::new();
        };
        let encode_status = match M::binding(Role::Status).map(|b| b.encode) {
            Some(Encode::Status(f, _)) => f,
            _ => unreachable!("the derive guarantees a status column with a status encoder"),
        };
        let mut values = Vec::with_capacity(self.cells.len() + 2);
        values.push(self.key_value);
        values.push(encode_status(status));
        values.extend(self.cells.into_iter().map(|c| c.value));
        values
    }

    pub fn statement(&self, backend: DbBackend) -> Statement {
        match self.status {
            Some((status_col, status)) => {
                Statement::Upsert(self.upsert(backend, status_col, status, 1))
            }
            None => Statement::Update(self.update()),
        }
    }

    /// The upsert of `rows` rows of this event's shape (the values bound
    /// are this event's, `rows` times; a caller binds its own, row after
    /// row, in [`upsert_values`](Self::upsert_values) order).
    pub fn upsert_rows(&self, backend: DbBackend, rows: usize) -> Option<InsertStatement> {
        let (status_col, status) = self.status?;
        Some(self.upsert(backend, status_col, status, rows))
    }

    fn save(col: ColumnOf<M>, value: Value) -> Expr {
        col.save_as(Expr::val(value))
    }

    fn upsert(
        &self,
        backend: DbBackend,
        status_col: ColumnOf<M>,
        status: Status,
        rows: usize,
    ) -> InsertStatement {
        let encode_status = match M::binding(Role::Status).map(|b| b.encode) {
            Some(Encode::Status(f, _)) => f,
            _ => unreachable!("the derive guarantees a status column with a status encoder"),
        };

        let mut columns = vec![self.key_column, status_col];
        let mut values = vec![
            Self::save(self.key_column, self.key_value.clone()),
            Self::save(status_col, encode_status(status)),
        ];
        for cell in &self.cells {
            columns.push(cell.column);
            values.push(Self::save(cell.column, cell.value.clone()));
        }

        // The status move is allowed unless the stored status blocks it.
        let blocked: Vec<Expr> = status
            .blocked_from()
            .iter()
            .map(|s| status_col.save_as(Expr::Constant(encode_status(*s))))
            .collect();
        let allowed = existing::<M>(status_col)
            .is_null()
            .or(existing::<M>(status_col).is_not_in(blocked));
        let guarded = |then: Expr, col: ColumnOf<M>| -> Expr {
            Expr::case(allowed.clone(), then)
                .finally(existing::<M>(col))
                .into()
        };

        let excluded = |col| excluded(backend, col);
        let mut on_conflict = OnConflict::column(self.key_column);
        // MySQL evaluates `ON DUPLICATE KEY UPDATE` left to right, each
        // assignment seeing the ones before it: the status, which every
        // guard reads, is assigned last there.
        let status_last = backend == DbBackend::MySql;
        if !status_last {
            on_conflict.value(status_col, guarded(excluded(status_col), status_col));
        }
        for cell in &self.cells {
            let col = cell.column;
            match cell.class {
                Class::Identity => {
                    on_conflict.value(col, excluded(col));
                }
                Class::State => {
                    on_conflict.value(col, guarded(excluded(col), col));
                }
                Class::Fill => {
                    let stored = existing::<M>(col);
                    let empty = match cell.value {
                        Value::String(_) => stored
                            .clone()
                            .is_null()
                            .or(stored.clone().eq(Expr::Constant("".into()))),
                        _ => stored.clone().is_null(),
                    };
                    on_conflict.value(col, Expr::case(empty, excluded(col)).finally(stored));
                }
                Class::KeepFirst => {
                    let first = Expr::col((M::Entity::default(), col)).if_null(excluded(col));
                    on_conflict.value(col, guarded(first, col));
                }
                Class::InsertOnly => {}
            }
        }
        if status_last {
            on_conflict.value(status_col, guarded(excluded(status_col), status_col));
        }

        let mut insert = Query::insert();
        insert
            .into_table(M::Entity::default().table_ref())
            .columns(columns)
            .on_conflict(on_conflict);
        for _ in 0..rows.max(1) {
            insert.values_panic(values.clone());
        }
        insert
    }

    fn update(&self) -> UpdateStatement {
        let mut update = Query::update();
        update.table(M::Entity::default().table_ref());
        for cell in &self.cells {
            if cell.class != Class::InsertOnly {
                update.value(cell.column, Self::save(cell.column, cell.value.clone()));
            }
        }
        update.and_where(
            Expr::col(self.key_column).eq(Self::save(self.key_column, self.key_value.clone())),
        );
        update
    }
}
