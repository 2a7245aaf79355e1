//! Property tests of both macros' expansion functions on generated input:
//! `tracking::expand` (for every generated derive input that parses as a
//! `syn::DeriveInput`) and `dashboard::expand` (for every generated input).
//!
//! For every input, each expansion must
//! - not panic (each call runs under `catch_unwind`, and a panic fails the
//!   case with its message and the input's tokens), and
//! - return either at least one `compile_error!` with a non-empty message,
//!   or tokens that parse as items (`syn::File`).
//!
//! The generators are structured so that they reach the deep code paths:
//! derive inputs are mostly named structs with realistic field names and
//! types and `#[tracking(…)]` / `#[sea_orm(…)]` attributes built from the
//! real keys with values of every kind (and some enums, unions, tuple,
//! unit and generic structs); dashboard inputs are `key: value` entries
//! with the grammar's real keys, values of every kind and broken
//! punctuation; a share of both is arbitrary token trees (idents, literals,
//! punctuation and groups of every delimiter, nested). The derive test also
//! asserts that at least half of its inputs reach `expand` and that some
//! expand without errors, so the generator cannot quietly degrade into
//! testing nothing.
//!
//! Each generator runs 2,000 cases by default (in a debug build on two
//! cores, about 6 s for the derive and 7 s for the dashboard, run side by
//! side by `cargo test`); `PROPTEST_CASES` sets another count, e.g.
//! `PROPTEST_CASES=100000 cargo test -p tasktrail-macros fuzz`. A failure
//! is shrunk to a minimal input and its seed saved under
//! `macros/proptest-regressions/`, replayed first by later runs.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// Cases per generator when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 2_000;

// ---------------------------------------------------------------------------
// Token pieces

/// One piece of a generated input: a value proptest can shrink, turned into
/// tokens only when the case runs.
#[derive(Clone, Debug)]
enum Tt {
    /// Source text, lexed as it stands (balanced by construction).
    Src(String),
    /// An identifier, `r#` for a raw one.
    Ident { name: String, raw: bool },
    /// A literal, from its source text.
    Lit(String),
    /// An operator of one or more characters, joined.
    Op(&'static str),
    /// A group; `Delimiter::None` is the invisible group macros make.
    Group(Delimiter, Vec<Tt>),
}

/// A piece of source text.
fn src(text: impl Into<String>) -> Tt {
    Tt::Src(text.into())
}

/// Appends the tokens of `pieces` to `out`.
fn extend(out: &mut TokenStream, pieces: &[Tt]) {
    let span = Span::call_site();
    for piece in pieces {
        match piece {
            Tt::Src(text) => out.extend(
                text.parse::<TokenStream>()
                    .unwrap_or_else(|e| panic!("generator bug: {text:?} does not lex: {e}")),
            ),
            Tt::Ident { name, raw: false } => {
                out.extend([TokenTree::Ident(Ident::new(name, span))])
            }
            Tt::Ident { name, raw: true } => {
                out.extend([TokenTree::Ident(Ident::new_raw(name, span))]);
            }
            Tt::Lit(text) => out
                .extend([TokenTree::Literal(text.parse::<Literal>().unwrap_or_else(
                    |e| panic!("generator bug: {text:?} is no literal: {e}"),
                ))]),
            Tt::Op(op) => {
                let chars: Vec<char> = op.chars().collect();
                for (i, c) in chars.iter().enumerate() {
                    let spacing = if i + 1 < chars.len() {
                        Spacing::Joint
                    } else {
                        Spacing::Alone
                    };
                    out.extend([TokenTree::Punct(Punct::new(*c, spacing))]);
                }
            }
            Tt::Group(delimiter, inner) => {
                let mut stream = TokenStream::new();
                extend(&mut stream, inner);
                out.extend([TokenTree::Group(Group::new(*delimiter, stream))]);
            }
        }
    }
}

/// A generated input; its `Debug` is its tokens, so a failure shows them.
#[derive(Clone)]
struct Input(Vec<Tt>);

impl Input {
    fn tokens(&self) -> TokenStream {
        let mut out = TokenStream::new();
        extend(&mut out, &self.0);
        out
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.tokens())
    }
}

// ---------------------------------------------------------------------------
// Pools

/// The roles of `#[tracking(…)]`: the derive's own list.
static ROLES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    crate::tracking::roles::ROLES
        .iter()
        .map(|role| role.name)
        .collect()
});

/// Words written in `#[tracking(…)]` by mistake (tracking/unclaimed.rs
/// says where each belongs), and identifiers no option has.
const TRACKING_MISTAKES: &[&str] = &[
    "role",
    "ignore",
    "hoks",
    "stauts",
    "unique",
    "primary_key",
    "table_name",
    "enum_name",
    "Key",
    "self",
    "_",
    "é",
    "clé",
    "ключ",
];

/// The struct and field options of `#[tracking(…)]` (the derive's own
/// lists) and the mistakes above.
static TRACKING_OPTIONS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    use crate::tracking::attrs;
    [
        attrs::STRUCT_OPTIONS,
        attrs::FIELD_OPTIONS,
        TRACKING_MISTAKES,
    ]
    .concat()
});

/// The keys of `dashboard!`: the macro's own list.
const DASHBOARD_KEYS: &[&str] = crate::dashboard::model::KEYS;

/// Keys `dashboard!` does not know: misspelt, keywords, raw, Unicode.
const DASHBOARD_MISSPELT_KEYS: &[&str] = &[
    "titel",
    "accent_color",
    "colour",
    "page",
    "Title",
    "type",
    "fn",
    "self",
    "_",
    "r#title",
    "r#type",
    "é",
    "crate",
];

/// Field names: the conventional ones, others, and edge cases.
const FIELD_NAMES: &[&str] = &[
    "task_key",
    "task_id",
    "task_name",
    "status",
    "message",
    "progress_payload",
    "user_label",
    "affected_objects",
    "task_args",
    "task_kwargs",
    "result_payload",
    "cleaned_up",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "failed_at",
    "retry_of",
    "id",
    "state",
    "percent",
    "tenant",
    "note",
    "cache",
    "self_",
    "Self_",
    "r#type",
    "r#match",
    "_",
    "_1",
    "__",
    "_2fa",
    "a__b",
    "x",
    "é",
    "naïve",
    "日本",
    "Ωmega",
    "ß",
    "ǆ",
];

/// Field types: the ones the roles take, others, and odd ones.
const TYPES: &[&str] = &[
    "String",
    "Option<String>",
    "i64",
    "i32",
    "i16",
    "u64",
    "f32",
    "f64",
    "bool",
    "Option<bool>",
    "Json",
    "Option<Json>",
    "serde_json::Value",
    "DateTimeUtc",
    "Option<DateTimeUtc>",
    "DateTimeWithTimeZone",
    "DateTime",
    "Vec<u8>",
    "Option<i64>",
    "Option<f32>",
    "Option<Option<String>>",
    "tasktrail::Status",
    "Option<tasktrail::Status>",
    "::my_tasktrail::Status",
    "Status",
    "RunState",
    "crate::a::B<C>",
    "(i32, String)",
    "()",
    "(String,)",
    "&'static str",
    "&'a str",
    "&mut String",
    "[u8; 4]",
    "[u8]",
    "*const u8",
    "fn() -> String",
    "Box<dyn Fn()>",
    "dyn Display",
    "impl Display",
    "_",
    "!",
    "<T as Trait>::Assoc",
    "m!()",
    "Option<>",
    "Option",
    "Option<&str>",
    "Option<String, String>",
    "Option<'a>",
    "r#type",
    "Self",
];

/// Values of `#[tracking(… = value)]`, or list items.
const ATTR_VALUES: &[&str] = &[
    "\"\"",
    "\" \"",
    "\"::tasktrail\"",
    "\"::my_tasktrail\"",
    "\"tasktrail\"",
    "\"crate\"",
    "\"self::x\"",
    "\"Self\"",
    "\"a<T>\"",
    "\"a::<T>\"",
    "\"a<T>::b\"",
    "\"F(A)\"",
    "\"F(A) -> B\"",
    "\"<T as X>::y\"",
    "\"dyn A\"",
    "\"::\"",
    "\"a b\"",
    "\"a::b::c\"",
    "\"crate::hooks::user\"",
    "\"password\"",
    "\"token\"",
    "\"Password\"",
    "\"tenant\"",
    "\"custom\"",
    "\"default\"",
    "\"status\"",
    "\"key\"",
    "\"crate\"",
    "\"skip\"",
    "\"é\"",
    "\"r#type\"",
    "\"1abc\"",
    "\"\\n\\\"\"",
    "r#\"raw\"#",
    "0",
    "1",
    "64",
    "4096",
    "65536",
    "0x10",
    "1_000",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1u8",
    "4096usize",
    "-1",
    "- 4096",
    "1.5",
    "1e400",
    "0.0",
    "1e3",
    "1.5f32",
    "true",
    "false",
    "custom",
    "default",
    "Custom",
    "crate::hooks::user",
    "a::<T>",
    "::a",
    "self",
    "Self",
    "super::x",
    "r#type",
    "<T as X>::y",
    "64 * 1024",
    "1 << 10",
    "(1 << 200)",
    "1 << 4294967296",
    "1 - 2",
    "(64) * (1024)",
    "|u| x",
    "move || 1",
    "{ 1 }",
    "a.b()",
    "&\"x\"",
    "[]",
    "[\"password\", \"token\"]",
    "[\"a\", \"A\"]",
    "[\"\", \"x\"]",
    "[password]",
    "[password, \"token\"]",
    "[[\"a\"]]",
    "[1, 2]",
    "[\"a\"; 2]",
    "(\"a\", \"b\")",
    "b\"x\"",
    "br\"x\"",
    "'c'",
    "b'c'",
    "c\"x\"",
    "'a",
];

/// Values of `#[sea_orm(enum_name = …)]`.
const ENUM_NAMES: &[&str] = &[
    "\"TenantId\"",
    "\"Renamed\"",
    "\"\"",
    "\"1x\"",
    "\"a b\"",
    "\"fn\"",
    "\"Self\"",
    "\"self\"",
    "\"r#Type\"",
    "\"é\"",
    "\"_\"",
    "\"Self_\"",
    "\"a-b\"",
    "1",
    "Renamed",
];

/// `sea_orm` column and entity options.
const SEA_ORM_ITEMS: &[&str] = &[
    "primary_key",
    "ignore",
    "unique",
    "nullable",
    "auto_increment = false",
    "column_type = \"Text\"",
    "column_name = \"x\"",
    "table_name = \"task_runs\"",
    "ignore = true",
    "enum_name",
    "enum_name(\"X\")",
    "primary_key, ignore",
];

/// Dashboard values by the kind of key.
const DASH_STRINGS: &[&str] = &[
    "\"Tasks\"",
    "\"\"",
    "\"é ✓ \\u{1F600}\"",
    "\"/\"",
    "\"/ops/tasks\"",
    "\"ops/\"",
    "\"/ops/\"",
    "\"//\"",
    "\"/./x\"",
    "\"/é\"",
    "\"/a b\"",
    "\"#2563eb\"",
    "\"#fff\"",
    "\"blue\"",
    "\"#ggg\"",
    "\"#\"",
    "\"#ééé\"",
    "\"#ffff\"",
    "\"+02:00\"",
    "\"-14:00\"",
    "\"+15:00\"",
    "\"UTC\"",
    "\"local\"",
    "\"Mars/Olympus\"",
    "\"+99:99\"",
    "\"+é:00\"",
    "\"+0é:00\"",
    "\"+1:000\"",
    "r\"raw\"",
    "\"a\" \"b\"",
    "3",
    "b\"x\"",
    "'c'",
    "Tasks",
];

/// Values for `page_size` and `retention_days`.
const DASH_NUMBERS: &[&str] = &[
    "0",
    "1",
    "25",
    "1000",
    "1001",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "20u32",
    "0x10",
    "1.5",
    "-1",
    "\"20\"",
    "1e400",
    "twenty",
];

/// Values for `poll_interval` and `stuck_after`, up to and past what a
/// `u64` of milliseconds holds.
const DASH_DURATIONS: &[&str] = &[
    "10s",
    "500ms",
    "2m",
    "1h",
    "0s",
    "99ms",
    "100ms",
    "1.5s",
    "0.5ms",
    "1.25s",
    "0.1s",
    "2.5m",
    "1e3s",
    "1e400s",
    "10",
    "\"10s\"",
    "10x",
    "10 s",
    "0x10s",
    "18446744073709551615ms",
    "18446744073709551615s",
    "18446744073709551615m",
    "18446744073709551615h",
    "307445734561825861m",
    "307445734561825860m",
    "5124095576030432h",
    "5124095576030431h",
    "18446744073709551s",
    "18446744073709552s",
    "18446744073709551616s",
    "-10s",
];

/// Values for `columns`, `filters`, `search` and `actions`.
const DASH_LISTS: &[&str] = &[
    "[task_name, status]",
    "[task_name, status, percent, user_label, created_at]",
    "[]",
    "[status, status]",
    "[\"task_name\"]",
    "[task_name, \"status\"]",
    "[fn]",
    "[self]",
    "[Self]",
    "[_]",
    "[r#type]",
    "[type]",
    "[a b]",
    "[[a]]",
    "[a,,b]",
    "[a,]",
    "[1]",
    "[é]",
    "(a, b)",
    "task_name",
    "[cancel, retry, delete]",
    "[cancel, archive]",
    "[\"cancel\", \"retry\"]",
    "[cancel, cancel]",
    "[r#cancel]",
];

/// Values for `sort`.
const DASH_SORTS: &[&str] = &[
    "created_at desc",
    "created_at",
    "created_at asc",
    "created_at sideways",
    "\"created_at desc\"",
    "fn desc",
    "_ asc",
    "self",
    "r#type desc",
    "desc",
    "1 desc",
    "created_at desc extra",
    "created_at \"desc\"",
    "[created_at]",
];

/// Values for `read_only`.
const DASH_BOOLS: &[&str] = &["true", "false", "yes", "\"true\"", "1", "r#true"];

/// Attributes on the dashboard's struct.
const DASH_ATTRS: &[&str] = &[
    "/// The dashboard.",
    "#[doc = \"x\"]",
    "#[derive(Debug, Eq)]",
    "#[derive(Default)]",
    "#[derive(serde::Serialize)]",
    "#[derive(Clone, Clone)]",
    "#[derive]",
    "#[derive = \"x\"]",
    "#[derive(a = b)]",
    "#[derive(Debug,,)]",
    "#[derive(Hash)]",
    "#[allow(dead_code)]",
    "#[cfg(any())]",
];

/// Identifier-like words for arbitrary trees.
const WORDS: &[&str] = &[
    "struct",
    "enum",
    "union",
    "pub",
    "crate",
    "self",
    "Self",
    "super",
    "fn",
    "type",
    "where",
    "impl",
    "dyn",
    "mod",
    "as",
    "in",
    "tracking",
    "sea_orm",
    "derive",
    "Model",
    "Entity",
    "ModelEx",
    "Option",
    "String",
    "_",
    "r",
    "tasktrail",
    "true",
    "false",
    "desc",
    "asc",
    "custom",
];

/// Operators for arbitrary trees.
const OPS: &[&str] = &[
    ",", ";", ":", "::", "=", "==", "=>", "->", "#", "!", "$", "<", ">", "&", "'", "-", "+", "*",
    "/", ".", "..", "...", "..=", "@", "?", "|", "^", "~", "<<=", "%",
];

/// Literals for arbitrary trees.
const LITERALS: &[&str] = &[
    "\"\"",
    "\"x\"",
    "\"title\"",
    "\"::tasktrail\"",
    "\"r#type\"",
    "0",
    "1",
    "-1",
    "10s",
    "1.5",
    "1e400",
    "18446744073709551616",
    "b\"x\"",
    "'c'",
    "b'c'",
    "c\"x\"",
    "r#\"x\"#",
    "1u8",
];

// ---------------------------------------------------------------------------
// Strategies: shared

/// One of `pool`, as source text.
fn pick(pool: &'static [&'static str]) -> BoxedStrategy<Tt> {
    select(pool).prop_map(src).boxed()
}

/// A random identifier (never `r#…`, which `Tt::Ident { raw }` makes).
fn random_ident() -> BoxedStrategy<String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,10}".boxed()
}

/// An identifier: a keyword or a word the macros know, a random one, a
/// raw one, a Unicode one.
fn ident_tt() -> BoxedStrategy<Tt> {
    prop_oneof![
        3 => select(WORDS).prop_map(|w| Tt::Ident { name: w.to_owned(), raw: false }),
        3 => random_ident().prop_map(|name| Tt::Ident { name, raw: false }),
        1 => select(&["type", "match", "fn", "Model", "title", "status"][..])
            .prop_map(|w| Tt::Ident { name: w.to_owned(), raw: true }),
        1 => select(&["é", "naïve", "日本", "Ωmega", "ǆ", "Modèle"][..])
            .prop_map(|w| Tt::Ident { name: w.to_owned(), raw: false }),
    ]
    .boxed()
}

/// A string literal of up to 20,000 non-ASCII characters.
fn long_string() -> BoxedStrategy<Tt> {
    (1usize..20_000)
        .prop_map(|n| Tt::Lit(format!("\"{}\"", "é".repeat(n))))
        .boxed()
}

/// Any token tree: idents, literals, punctuation, groups of every
/// delimiter (the invisible one too), nested up to four levels.
fn arbitrary_tt() -> BoxedStrategy<Tt> {
    let leaf = prop_oneof![
        4 => ident_tt(),
        3 => select(LITERALS).prop_map(|l| Tt::Lit(l.to_owned())),
        3 => select(OPS).prop_map(Tt::Op),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        (
            select(
                &[
                    Delimiter::Parenthesis,
                    Delimiter::Brace,
                    Delimiter::Bracket,
                    Delimiter::None,
                ][..],
            ),
            vec(inner, 0..6),
        )
            .prop_map(|(d, items)| Tt::Group(d, items))
    })
    .boxed()
}

/// Up to `max` arbitrary token trees.
fn arbitrary_stream(max: usize) -> BoxedStrategy<Vec<Tt>> {
    vec(arbitrary_tt(), 0..max).boxed()
}

/// `items` joined by commas, with now and then a comma left out, doubled,
/// or one at the end.
fn comma_list(items: BoxedStrategy<Vec<Tt>>, max: usize) -> BoxedStrategy<Vec<Tt>> {
    (
        vec(
            (
                items,
                prop_oneof![8 => Just(","), 1 => Just(""), 1 => Just(",,"), 1 => Just(";")],
            ),
            0..max,
        ),
        any::<bool>(),
    )
        .prop_map(|(items, trailing)| {
            let n = items.len();
            let mut out = Vec::new();
            for (i, (item, sep)) in items.into_iter().enumerate() {
                out.extend(item);
                if i + 1 < n || trailing {
                    out.push(src(sep));
                }
            }
            out
        })
        .boxed()
}

// ---------------------------------------------------------------------------
// Strategies: derive inputs

/// A value: from the pool, a long string, a nested list, an invisible
/// group (as macros pass expressions), or arbitrary tokens.
fn attr_value() -> BoxedStrategy<Vec<Tt>> {
    let leaf = prop_oneof![
        12 => pick(ATTR_VALUES).prop_map(|t| vec![t]),
        1 => long_string().prop_map(|t| vec![t]),
        2 => arbitrary_stream(4),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            // `[a, b]`
            vec(inner.clone(), 0..4).prop_map(|items| {
                let mut list = Vec::new();
                for item in items {
                    list.extend(item);
                    list.push(src(","));
                }
                vec![Tt::Group(Delimiter::Bracket, list)]
            }),
            // An expression in an invisible group.
            inner.prop_map(|v| vec![Tt::Group(Delimiter::None, v)]),
        ]
    })
    .boxed()
}

/// A key of `#[tracking(…)]`.
fn tracking_key() -> BoxedStrategy<Tt> {
    prop_oneof![
        6 => pick(ROLES.as_slice()),
        6 => pick(TRACKING_OPTIONS.as_slice()),
        1 => random_ident().prop_map(src),
        1 => select(&["key", "status", "crate", "skip"][..])
            .prop_map(|w| Tt::Ident { name: w.to_owned(), raw: w != "crate" && w != "skip" }),
        1 => Just(src("tracking::key")),
    ]
    .boxed()
}

/// One item of `#[tracking(…)]`.
fn tracking_item() -> BoxedStrategy<Vec<Tt>> {
    let item = prop_oneof![
        // `key`
        6 => tracking_key().prop_map(|k| vec![k]),
        // `key = value`
        8 => (tracking_key(), attr_value()).prop_map(|(k, v)| {
            let mut out = vec![k, src("=")];
            out.extend(v);
            out
        }),
        // `key(value, …)`
        2 => (tracking_key(), vec(attr_value(), 0..3)).prop_map(|(k, vs)| {
            let mut inner = Vec::new();
            for v in vs {
                inner.extend(v);
                inner.push(src(","));
            }
            vec![k, Tt::Group(Delimiter::Parenthesis, inner)]
        }),
        // A key given twice.
        1 => (tracking_key(), attr_value(), any::<bool>()).prop_map(|(k, v, valued)| {
            let mut one = vec![k];
            if valued {
                one.push(src("="));
                one.extend(v);
            }
            let mut out = one.clone();
            out.push(src(","));
            out.extend(one);
            out
        }),
        // A literal alone, `"status"`.
        2 => prop_oneof![
            pick(&["\"status\"", "\"key\"", "\"crate\"", "\"hooks\"", "\"nope\"", "1", "true"]),
            pick(ATTR_VALUES),
        ]
        .prop_map(|t| vec![t]),
        1 => arbitrary_stream(4),
    ];
    item.prop_recursive(1, 8, 3, |inner| {
        // `key(key2 = value, …)`: nested items.
        (tracking_key(), comma_list(inner, 3))
            .prop_map(|(k, items)| vec![k, Tt::Group(Delimiter::Parenthesis, items)])
    })
    .boxed()
}

/// The items of a `#[tracking(…)]` that are all correct for a struct.
fn valid_struct_items() -> BoxedStrategy<Vec<Tt>> {
    comma_list(
        pick(&[
            "crate = \"::my_tasktrail\"",
            "crate = ::tasktrail",
            "hooks = custom",
            "hooks = \"default\"",
            "format_user = crate::hooks::user",
            "format_objects = \"hooks::objects\"",
            "format_payload = hooks::payload",
            "redact = [\"password\", \"token\"]",
            "redact(\"secret\")",
            "max_payload_bytes = 4096",
            "progress_sets_message",
            // Read, though odd.
            "crate = \"a<T>\"",
            "crate = \"F(A) -> B\"",
            "crate = \"::a::b::c\"",
            "crate = self",
            "format_user = \"f<T>\"",
            "format_objects = f::<T>",
            "format_payload = \"<T as X>::f\"",
            "format_payload = \"F(A)\"",
            "max_payload_bytes = 18446744073709551615",
            "redact = [\"é\", \"\\u{0}\"]",
        ])
        .prop_map(|t| vec![t])
        .boxed(),
        3,
    )
}

/// An attribute on the struct or on a field.
fn attribute(on_field: bool) -> BoxedStrategy<Vec<Tt>> {
    let tracking_list = comma_list(tracking_item(), 4);
    let valid = if on_field {
        pick(&[
            "skip",
            "extra = \"tenant\"",
            "label = \"Note\"",
            "status, label = \"State\"",
            "progress",
            "message",
            "key",
        ])
        .prop_map(|t| vec![t])
        .boxed()
    } else {
        valid_struct_items()
    };
    let sea_orm = if on_field {
        prop_oneof![
            3 => pick(SEA_ORM_ITEMS),
            2 => pick(ENUM_NAMES).prop_map(|v| src(format!("enum_name = {}", tt_text(&v)))),
        ]
        .boxed()
    } else {
        pick(&["table_name = \"task_runs\"", "schema_name = \"x\""])
    };
    let attr = |path: &'static str, body: Tt| {
        vec![
            src("#"),
            Tt::Group(Delimiter::Bracket, vec![src(path), body]),
        ]
    };
    prop_oneof![
        // `#[tracking(…)]`
        8 => tracking_list.prop_map(move |items| {
            attr("tracking", Tt::Group(Delimiter::Parenthesis, items))
        }),
        4 => valid.prop_map(move |items| {
            attr("tracking", Tt::Group(Delimiter::Parenthesis, items))
        }),
        // `#[tracking = value]`
        1 => attr_value().prop_map(|v| {
            let mut inner = vec![src("tracking"), src("=")];
            inner.extend(v);
            vec![src("#"), Tt::Group(Delimiter::Bracket, inner)]
        }),
        // `#[tracking]`, `#[tracking{…}]`, `#[tracking::x]`
        1 => pick(&[
            "#[tracking]",
            "#[tracking{ status }]",
            "#[tracking[key]]",
            "#[tracking::x(status)]",
            "#[tracking()]",
            "#[tracking(,)]",
        ])
        .prop_map(|t| vec![t]),
        // `#[tracking(<anything>)]`
        1 => arbitrary_stream(6).prop_map(move |items| {
            attr("tracking", Tt::Group(Delimiter::Parenthesis, items))
        }),
        3 => sea_orm.prop_map(move |item| {
            attr("sea_orm", Tt::Group(Delimiter::Parenthesis, vec![item]))
        }),
        1 => pick(&["#[doc = \"x\"]", "#[serde(rename = \"x\")]", "#[sea_orm]", "#[sea_orm(enum_name = )]"])
            .prop_map(|t| vec![t]),
    ]
    .boxed()
}

/// The text of a `Src` or `Lit` piece (for building source text).
fn tt_text(t: &Tt) -> String {
    match t {
        Tt::Src(s) | Tt::Lit(s) => s.clone(),
        other => {
            let mut out = TokenStream::new();
            extend(&mut out, std::slice::from_ref(other));
            out.to_string()
        }
    }
}

/// A field type: from the pool, a random path, or either wrapped in
/// `Option`, `Vec`, a reference or a tuple.
fn field_type() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        8 => select(TYPES).prop_map(str::to_owned),
        1 => vec(random_ident(), 1..4).prop_map(|segments| segments.join("::")),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| format!("Option<{t}>")),
            inner.clone().prop_map(|t| format!("Vec<{t}>")),
            inner.clone().prop_map(|t| format!("&'static {t}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}, {b})")),
        ]
    })
    .boxed()
}

/// A field name: mostly a realistic one, now and then a random one.
fn field_name() -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(FIELD_NAMES).prop_map(str::to_owned),
        1 => random_ident(),
    ]
    .boxed()
}

/// A visibility, mostly none.
fn visibility() -> BoxedStrategy<Tt> {
    pick(&["", "", "pub", "pub(crate)", "pub(in crate::x)"])
}

/// `attrs vis name: Type`
fn field(names: BoxedStrategy<String>, types: BoxedStrategy<String>) -> BoxedStrategy<Vec<Tt>> {
    (
        weighted(0.35, vec(attribute(true), 1..3)),
        visibility(),
        names,
        types,
    )
        .prop_map(|(attrs, vis, name, ty)| {
            let mut out: Vec<Tt> = attrs.unwrap_or_default().concat();
            out.push(vis);
            out.push(src(name));
            out.push(src(":"));
            out.push(src(ty));
            out
        })
        .boxed()
}

/// The struct's name: mostly `Model`.
fn struct_name() -> BoxedStrategy<Tt> {
    prop_oneof![
        20 => Just(src("Model")),
        1 => Just(src("ModelEx")),
        2 => random_ident().prop_map(src),
        1 => pick(&["r#Model", "Modèle", "r#type"]),
    ]
    .boxed()
}

/// `struct Model { … }` with realistic fields: a key and a status field
/// most of the time, so some inputs expand without errors.
fn named_struct() -> BoxedStrategy<Vec<Tt>> {
    let key = field(
        select(&["task_key", "task_id"][..])
            .prop_map(str::to_owned)
            .boxed(),
        prop_oneof![6 => Just("String".to_owned()), 1 => field_type()].boxed(),
    );
    let status = field(
        Just("status".to_owned()).boxed(),
        prop_oneof![
            6 => Just("String".to_owned()),
            1 => Just("RunState".to_owned()),
            1 => field_type(),
        ]
        .boxed(),
    );
    (
        weighted(0.5, vec(attribute(false), 1..3)),
        visibility(),
        struct_name(),
        prop_oneof![
            12 => Just(""),
            1 => Just("<T>"),
            1 => Just("<'a>"),
            1 => Just("<const N: usize>"),
            1 => Just("where Self: Sized"),
            1 => Just("<T: Clone> where T: Copy"),
        ],
        weighted(0.85, key),
        weighted(0.85, status),
        vec(field(field_name(), field_type()), 0..6),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(attrs, vis, name, generics, key, status, fields, at)| {
            let mut fields = fields;
            // The key and status fields go in anywhere.
            for anchor in [status, key].into_iter().flatten() {
                let i = at.index(fields.len() + 1);
                fields.insert(i, anchor);
            }
            let mut body = Vec::new();
            for f in fields {
                body.extend(f);
                body.push(src(","));
            }
            let mut out: Vec<Tt> = attrs.unwrap_or_default().concat();
            out.push(vis);
            out.push(src("struct"));
            out.push(name);
            // `where` goes after the generics: split them.
            let (params, clause) = match generics.find("where") {
                Some(i) => generics.split_at(i),
                None => (generics, ""),
            };
            out.push(src(params));
            out.push(src(clause));
            out.push(Tt::Group(Delimiter::Brace, body));
            out
        })
        .boxed()
}

/// Enums, unions, tuple and unit structs, with attributes.
fn other_item() -> BoxedStrategy<Vec<Tt>> {
    (
        vec(attribute(false), 0..2),
        struct_name(),
        select(
            &[
                "enum {} { A, B(i32), C { x: i32 } }",
                "enum {} { #[tracking(status)] A }",
                "enum {} {}",
                "union {} { a: u32, b: f32 }",
                "struct {}(String, i64);",
                "struct {}(#[tracking(key)] String);",
                "struct {}();",
                "struct {};",
                "struct {}<T>(T);",
            ][..],
        ),
    )
        .prop_map(|(attrs, name, shape)| {
            let mut out: Vec<Tt> = attrs.concat();
            out.push(src(shape.replace("{}", &tt_text(&name))));
            out
        })
        .boxed()
}

/// A derive input: mostly a named struct, then other items, and arbitrary
/// tokens in a struct's body or alone.
fn derive_input() -> BoxedStrategy<Input> {
    prop_oneof![
        16 => named_struct(),
        2 => other_item(),
        // `struct Model { <anything> }`
        1 => arbitrary_stream(8).prop_map(|body| vec![
            src("struct Model"),
            Tt::Group(Delimiter::Brace, body),
        ]),
        1 => arbitrary_stream(10),
    ]
    .prop_map(Input)
    .boxed()
}

// ---------------------------------------------------------------------------
// Strategies: dashboard inputs

/// A value for `key`, mostly of the kind the key takes.
fn dashboard_value(key: &str) -> BoxedStrategy<Vec<Tt>> {
    let typed = match key {
        "title" | "header_title" | "description" | "url_prefix" | "accent_colour" | "time_zone" => {
            pick(DASH_STRINGS)
        }
        "page_size" | "retention_days" => pick(DASH_NUMBERS),
        "poll_interval" | "stuck_after" => pick(DASH_DURATIONS),
        "columns" | "filters" | "search" | "actions" => pick(DASH_LISTS),
        "sort" => pick(DASH_SORTS),
        "read_only" => pick(DASH_BOOLS),
        _ => pick(DASH_STRINGS),
    };
    let any_kind = prop_oneof![
        pick(DASH_STRINGS),
        pick(DASH_NUMBERS),
        pick(DASH_DURATIONS),
        pick(DASH_LISTS),
        pick(DASH_SORTS),
        pick(DASH_BOOLS),
    ];
    prop_oneof![
        10 => typed.prop_map(|t| vec![t]),
        3 => any_kind.prop_map(|t| vec![t]),
        1 => long_string().prop_map(|t| vec![t]),
        // As a `macro_rules!` passes an expression.
        1 => pick(DASH_DURATIONS).prop_map(|t| vec![Tt::Group(Delimiter::None, vec![t])]),
        2 => vec(arbitrary_tt(), 1..4),
    ]
    .boxed()
}

/// `key: value,` with a real key, the value mostly of the kind it takes.
fn dashboard_entry() -> BoxedStrategy<Vec<Tt>> {
    prop_oneof![
        12 => select(DASHBOARD_KEYS).prop_flat_map(|key| {
            dashboard_value(key).prop_map(move |value| {
                let mut out = vec![src(key), src(":")];
                out.extend(value);
                out.push(src(","));
                out
            })
        }),
        1 => dashboard_mistake(),
    ]
    .boxed()
}

/// An entry with a mistake or several: a misspelt, quoted or odd key, a
/// wrong or missing separator, no value, a wrong or missing comma.
fn dashboard_mistake() -> BoxedStrategy<Vec<Tt>> {
    let key = prop_oneof![
        4 => select(DASHBOARD_KEYS).prop_map(|k| (k, src(k))),
        3 => select(DASHBOARD_MISSPELT_KEYS).prop_map(|k| (k, src(k))),
        1 => random_ident().prop_map(|k| ("", src(k))),
        // `"title": …`
        2 => select(&[
            "\"title\"", "\"page_size\"", "\"r#title\"", "\"\"", "\"fn\"", "\"a b\"",
            "\"é\"", "\"_\"", "\"1\"", "\"r#type\"", "\"self\"", "\"title \"",
        ][..])
        .prop_map(|k| ("", src(k))),
        1 => pick(&["1", "'c'", "#", "[title]"]).prop_map(|t| ("", t)),
    ];
    (
        key,
        prop_oneof![
            4 => Just(":"),
            1 => Just("="),
            1 => Just("::"),
            1 => Just(""),
            1 => Just(": :"),
        ],
        weighted(0.9, Just(())),
        prop_oneof![
            2 => Just(","),
            2 => Just(";"),
            4 => Just(""),
            1 => Just(",,"),
        ],
    )
        .prop_flat_map(|((key, key_tt), sep, has_value, end)| {
            dashboard_value(key).prop_map(move |value| {
                let mut out = vec![key_tt.clone(), src(sep)];
                if has_value.is_some() {
                    out.extend(value);
                }
                out.push(src(end));
                out
            })
        })
        .boxed()
}

/// A `dashboard!` input: mostly the header and entries, then arbitrary
/// tokens after the crate path or alone.
fn dashboard_input() -> BoxedStrategy<Input> {
    let header = (
        prop_oneof![
            40 => Just("::tasktrail;"),
            1 => Just("tasktrail;"),
            1 => Just("crate;"),
            1 => Just("self;"),
            1 => Just("::a::b;"),
            1 => Just("r#tasktrail;"),
            1 => Just("::tasktrail"),
            1 => Just("$crate;"),
            1 => Just(""),
        ],
        vec(pick(DASH_ATTRS), 0..3),
        visibility(),
        prop_oneof![
            40 => Just("struct"),
            1 => Just("enum"),
            1 => Just(""),
        ],
        prop_oneof![
            20 => pick(&["Ops", "Dash", "OpsDashboard"]),
            2 => random_ident().prop_map(src),
            1 => pick(&["r#Dash", "Modèle", "r#struct", "fn", "_"]),
        ],
        prop_oneof![
            30 => pick(&[
                "<task_run::Entity>",
                "<crate::task_run::Entity>",
                "<tasktrail_ui_tests::task_run::Entity>",
            ]),
            4 => pick(&[
                "<task_run>",
                "<task_run::Model>",
                "<task_run::ActiveModel>",
                "<task_run::ModelEx>",
                "<Entity>",
                "<Self>",
                "<self>",
                "<super::x::Entity>",
                "<::a::Entity>",
                "<r#mod::Entity>",
                "<r#mod>",
                "<é>",
            ]),
            1 => pick(&[
                "<_>",
                "<a::<T>::Entity>",
                "<task_run::Entity<T>>",
                "<>",
                "",
                "<task_run::Entity,>",
            ]),
        ],
    );
    let structured = (
        header,
        prop_oneof![
            8 => vec(dashboard_entry(), 0..10).prop_map(|entries| entries.concat()),
            1 => arbitrary_stream(8),
        ],
        prop_oneof![
            30 => Just(""),
            1 => Just(";"),
            1 => Just("extra"),
        ],
    )
        .prop_map(|((krate, attrs, vis, kw, name, entity), body, after)| {
            let mut out = vec![src(krate)];
            out.extend(attrs);
            out.push(vis);
            out.push(src(kw));
            out.push(name);
            out.push(entity);
            out.push(Tt::Group(Delimiter::Brace, body));
            out.push(src(after));
            out
        });
    prop_oneof![
        10 => structured,
        // `::tasktrail; <anything>`
        1 => arbitrary_stream(8).prop_map(|rest| {
            let mut out = vec![src("::tasktrail;")];
            out.extend(rest);
            out
        }),
        1 => arbitrary_stream(10),
    ]
    .prop_map(Input)
    .boxed()
}

// ---------------------------------------------------------------------------
// The property

/// What an expansion returned, once checked.
enum Outcome {
    /// Items, no error.
    Clean,
    /// At least one `compile_error!`, every one with a message.
    Errors,
}

/// The messages of every `compile_error!` in `tokens` (`None` for one
/// without a string literal).
fn compile_errors(tokens: TokenStream, out: &mut Vec<Option<String>>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tt) in tokens.iter().enumerate() {
        match tt {
            TokenTree::Ident(id) if id == "compile_error" => {
                let message = match (tokens.get(i + 1), tokens.get(i + 2)) {
                    (Some(TokenTree::Punct(bang)), Some(TokenTree::Group(g)))
                        if bang.as_char() == '!' =>
                    {
                        syn::parse2::<syn::LitStr>(g.stream())
                            .ok()
                            .map(|lit| lit.value())
                    }
                    _ => None,
                };
                out.push(message);
            }
            TokenTree::Group(g) => compile_errors(g.stream(), out),
            _ => {}
        }
    }
}

/// The message of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a non-string panic payload)".to_owned())
}

/// Runs `expand` under `catch_unwind` and checks what it returned.
fn check(
    what: &str,
    input: &TokenStream,
    expand: impl FnOnce() -> TokenStream,
) -> Result<(Outcome, TokenStream), TestCaseError> {
    let output = catch_unwind(AssertUnwindSafe(expand)).map_err(|payload| {
        TestCaseError::fail(format!(
            "{what} panicked: {}\ninput: {input}",
            panic_message(&*payload)
        ))
    })?;
    let mut errors = Vec::new();
    compile_errors(output.clone(), &mut errors);
    if errors.is_empty() {
        return match syn::parse2::<syn::File>(output.clone()) {
            Ok(_) => Ok((Outcome::Clean, output)),
            Err(e) => Err(TestCaseError::fail(format!(
                "{what}: no compile_error!, and the output does not parse as items: {e}\ninput: {input}\noutput: {output}"
            ))),
        };
    }
    if errors
        .iter()
        .any(|m| m.as_ref().is_none_or(|m| m.trim().is_empty()))
    {
        return Err(TestCaseError::fail(format!(
            "{what}: a compile_error! without a message\ninput: {input}\noutput: {output}"
        )));
    }
    Ok((Outcome::Errors, output))
}

/// Whether `tokens` hold the identifier `name`, at any depth.
fn mentions(tokens: TokenStream, name: &str) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(id) => id == name,
        TokenTree::Group(g) => mentions(g.stream(), name),
        _ => false,
    })
}

/// Cases per generator: `PROPTEST_CASES`, or `DEFAULT_CASES`.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// A runner that saves failures in `macros/proptest-regressions/`.
fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    })
}

/// Counts over a run (atomics: the runner's closure is `Fn`).
#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    reached: AtomicUsize,
    clean: AtomicUsize,
}

impl Counts {
    fn get(&self) -> (usize, usize, usize) {
        (
            self.total.load(Ordering::Relaxed),
            self.reached.load(Ordering::Relaxed),
            self.clean.load(Ordering::Relaxed),
        )
    }
}

/// Fails the test with proptest's report (the shrunk input) if the run
/// failed.
fn report(result: Result<(), proptest::test_runner::TestError<Input>>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// `tracking::expand` on generated derive inputs.
#[test]
fn fuzz_derive_never_panics_and_errs_or_parses() {
    let counts = Counts::default();
    let mut runner = runner();
    let result = runner.run(&derive_input(), |input| {
        let tokens = input.tokens();
        counts.total.fetch_add(1, Ordering::Relaxed);
        // The real derive reports input that is no item (parse_macro_input).
        let Ok(parsed) = syn::parse2::<syn::DeriveInput>(tokens.clone()) else {
            return Ok(());
        };
        counts.reached.fetch_add(1, Ordering::Relaxed);
        let (outcome, _) = check("tracking::expand", &tokens, || {
            crate::tracking::expand(&parsed)
        })?;
        if let Outcome::Clean = outcome {
            counts.clean.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    report(result);
    let (total, reached, clean) = counts.get();
    eprintln!("derive: {total} inputs, {reached} reached expand, {clean} expanded without errors");
    assert!(
        reached * 2 >= total,
        "only {reached} of {total} derive inputs parsed as a DeriveInput: the generator has degraded"
    );
    assert!(
        clean >= 1,
        "none of {total} derive inputs expanded without errors: the generator has degraded"
    );
}

/// `dashboard::expand` on generated inputs.
#[test]
fn fuzz_dashboard_never_panics_and_errs_or_parses() {
    let counts = Counts::default();
    let mut runner = runner();
    let result = runner.run(&dashboard_input(), |input| {
        let tokens = input.tokens();
        counts.total.fetch_add(1, Ordering::Relaxed);
        let (outcome, output) = check("dashboard::expand", &tokens, || {
            crate::dashboard::expand(tokens.clone())
        })?;
        // Past the parser, the expansion always implements the config trait.
        if mentions(output, "DashboardConfig") {
            counts.reached.fetch_add(1, Ordering::Relaxed);
        }
        if let Outcome::Clean = outcome {
            counts.clean.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    report(result);
    let (total, reached, clean) = counts.get();
    eprintln!(
        "dashboard: {total} inputs, {reached} got past the parser, {clean} expanded without errors"
    );
    assert!(
        reached * 4 >= total,
        "only {reached} of {total} dashboard inputs got past the parser: the generator has degraded"
    );
    assert!(
        clean >= 1,
        "none of {total} dashboard inputs expanded without errors: the generator has degraded"
    );
}
