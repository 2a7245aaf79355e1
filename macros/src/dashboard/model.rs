//! The validated configuration: every key's value, typed, with the spans of
//! the field names it refers to. Validation collects every error.

use std::collections::HashSet;
use std::time::Duration;

use darling::Error;
use proc_macro2::{TokenStream, TokenTree};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitBool, LitInt, LitStr, Path, Token, Visibility};

use super::parse::{Entry, Input};
use tasktrail_rules::{check_colour, check_prefix, check_time_zone};

/// The keys, in the order the generated struct declares them.
pub const KEYS: &[&str] = &[
    "title",
    "header_title",
    "description",
    "url_prefix",
    "accent_colour",
    "page_size",
    "poll_interval",
    "columns",
    "filters",
    "search",
    "sort",
    "actions",
    "retention_days",
    "time_zone",
    "read_only",
    "stuck_after",
];

pub const ACTIONS: &[&str] = &["cancel", "retry", "delete"];

/// A value for `key`, as the examples in the messages show it.
pub fn example(key: &str) -> &'static str {
    match key {
        "title" | "header_title" => "\"Tasks\"",
        "description" => "\"Background jobs\"",
        "url_prefix" => "\"/tasks\"",
        "accent_colour" => "\"#2563eb\"",
        "page_size" => "50",
        "poll_interval" => "10s",
        "columns" | "filters" | "search" => "[task_name, status]",
        "sort" => "created_at desc",
        "actions" => "[cancel, retry]",
        "retention_days" => "30",
        "time_zone" => "\"UTC\"",
        "read_only" => "true",
        "stuck_after" => "30m",
        _ => "…",
    }
}

/// What `dashboard!` derives and implements itself: a `#[derive]` of one of
/// these on the struct would conflict.
const GENERATED_TRAITS: &[&str] = &[
    "Clone",
    "Debug",
    "PartialEq",
    "Default",
    "Serialize",
    "Deserialize",
];

pub struct Model {
    pub krate: Path,
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub entity: Path,
    pub title: String,
    pub header_title: Option<String>,
    pub description: String,
    pub url_prefix: String,
    pub accent_colour: String,
    pub page_size: u32,
    pub poll_interval: Duration,
    pub columns: Vec<Ident>,
    pub filters: Vec<Ident>,
    pub search: Vec<Ident>,
    pub sort: Option<(Ident, bool)>,
    pub actions: Vec<String>,
    pub retention_days: Option<u32>,
    pub time_zone: String,
    pub read_only: bool,
    pub stuck_after: Duration,
}

/// "unknown {what} `x`; did you mean `y`? ({what}s: a, b, c)"
fn unknown(what: &str, value: &str, known: &[&str]) -> Error {
    let close = known
        .iter()
        .map(|k| (strsim::jaro_winkler(value, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    Error::custom(format!(
        "unknown {what} `{value}`{close} (the {what}s are {})",
        list.join(", ")
    ))
}

fn lit_str(value: &TokenStream, key: &str) -> Result<String, Error> {
    syn::parse2::<LitStr>(value.clone())
        .map(|l| l.value())
        .map_err(|_| {
            Error::custom(format!(
                "`{key}` takes a string literal, e.g. `{key}: \"…\"`"
            ))
        })
}

fn lit_int(value: &TokenStream, key: &str, example: &str) -> Result<(u64, LitInt), Error> {
    let lit = syn::parse2::<LitInt>(value.clone()).map_err(|_| {
        Error::custom(format!(
            "`{key}` takes a whole number, e.g. `{key}: {example}`"
        ))
    })?;
    if !lit.suffix().is_empty() {
        return Err(Error::custom(format!(
            "`{key}` takes a plain number without a suffix, e.g. `{key}: {example}`"
        )));
    }
    let n = lit
        .base10_parse::<u64>()
        .map_err(|e| Error::custom(format!("`{key}`: {e}")))?;
    Ok((n, lit))
}

/// An item of a list of names, as written: `task_name` or `"task_name"`.
enum Name {
    Bare(Ident),
    Quoted(LitStr),
}

impl syn::parse::Parse for Name {
    fn parse(input: syn::parse::ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            input.parse().map(Name::Quoted)
        } else {
            input.call(syn::ext::IdentExt::parse_any).map(Name::Bare)
        }
    }
}

/// `[a, b]`: field names, or for `actions` the actions. A name written as
/// a string is refused with the list as it should be written.
fn idents(value: &TokenStream, key: &str) -> Result<Vec<Ident>, Error> {
    let (what, hint) = if key == "actions" {
        (
            "actions",
            " (the actions are `cancel`, `retry` and `delete`)".to_owned(),
        )
    } else {
        ("field names", String::new())
    };
    let parser = |input: syn::parse::ParseStream| {
        let content;
        syn::bracketed!(content in input);
        Punctuated::<Name, Token![,]>::parse_terminated(&content)
    };
    let list = parser.parse2(value.clone()).map_err(|_| {
        Error::custom(format!(
            "`{key}` takes a list of {what}, e.g. `{key}: {}`{hint}",
            example(key)
        ))
    })?;
    if let Some(Name::Quoted(first)) = list.iter().find(|n| matches!(n, Name::Quoted(_))) {
        let written: Vec<String> = list
            .iter()
            .map(|n| match n {
                Name::Bare(i) => i.to_string(),
                Name::Quoted(s) => s.value(),
            })
            .collect();
        return Err(Error::custom(format!(
            "{what} are written without quotes: `{key}: [{}]`{hint}",
            written.join(", ")
        ))
        .with_span(first));
    }
    let list: Vec<Ident> = list
        .into_iter()
        .filter_map(|n| match n {
            Name::Bare(i) => Some(i),
            Name::Quoted(_) => None,
        })
        .collect();
    if key != "actions" {
        let mut errors = Error::accumulator();
        for name in &list {
            errors.handle(field_name(name));
        }
        errors.finish()?;
    }
    Ok(list)
}

/// Refuses a keyword or `_` where a field name goes: the generated code
/// reads `model.<name>`, which would not parse. A field called `type` is
/// written `r#type`.
fn field_name(name: &Ident) -> Result<(), Error> {
    if syn::parse2::<Ident>(quote::ToTokens::to_token_stream(name)).is_ok() {
        return Ok(());
    }
    let message = if matches!(
        name.to_string().as_str(),
        "_" | "self" | "Self" | "super" | "crate"
    ) {
        format!("`{name}` is not a field name")
    } else {
        format!("`{name}` is a keyword: a field called `{name}` is written `r#{name}`")
    };
    Err(Error::custom(message).with_span(name))
}

/// `1.5s`: the same duration in a unit that makes it whole, if there is one.
fn whole_duration(value: &TokenStream) -> Option<String> {
    let lit = syn::parse2::<syn::LitFloat>(value.clone()).ok()?;
    let n: f64 = lit.base10_parse().ok()?;
    let ms = match lit.suffix() {
        "s" => n * 1e3,
        "m" => n * 60e3,
        "h" => n * 3600e3,
        _ => return None,
    };
    let secs = ms / 1e3;
    if secs.fract() == 0.0 {
        Some(format!("{secs}s"))
    } else if ms.fract() == 0.0 {
        Some(format!("{ms}ms"))
    } else {
        None
    }
}

/// A duration literal (`10s`, `500ms`, `2m`, `1h`) for `key`.
fn duration(value: &TokenStream, key: &str) -> Result<Duration, Error> {
    if let Some(whole) = whole_duration(value) {
        return Err(Error::custom(format!(
            "`{key}` takes a whole number with a unit: write `{key}: {whole}`"
        )));
    }
    let lit = syn::parse2::<LitInt>(value.clone()).map_err(|_| {
        Error::custom(format!(
            "`{key}` takes a duration literal such as `10s`, `500ms`, `2m` or `1h`"
        ))
    })?;
    let n = lit
        .base10_parse::<u64>()
        .map_err(|e| Error::custom(format!("`{key}`: {e}")))?;
    let unit_ms: u64 = match lit.suffix() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => {
            return Err(Error::custom(format!(
                "`{key}` needs a unit: `{n}s`, `{n}ms`, `{n}m` or `{n}h`"
            )));
        }
        other => {
            return Err(Error::custom(format!(
                "`{other}` is not a duration unit; use `ms`, `s`, `m` or `h`"
            )));
        }
    };
    // The generated code holds the duration in milliseconds, as a `u64`.
    let ms = n.checked_mul(unit_ms).ok_or_else(|| {
        let unit = lit.suffix();
        Error::custom(format!(
            "`{key}: {n}{unit}` is too long: at most `{}{unit}`",
            u64::MAX / unit_ms
        ))
    })?;
    Ok(Duration::from_millis(ms))
}

fn sort(value: &TokenStream) -> Result<(Ident, bool), Error> {
    if let Ok(lit) = syn::parse2::<LitStr>(value.clone()) {
        return Err(Error::custom(format!(
            "`sort` is written without quotes: `sort: {}`",
            lit.value()
        )));
    }
    let tokens: Vec<TokenTree> = value.clone().into_iter().collect();
    let bad = || {
        Error::custom(
            "`sort` takes a field name and an optional direction, e.g. `sort: created_at desc`",
        )
    };
    let field = match tokens.first() {
        Some(TokenTree::Ident(i)) => i.clone(),
        _ => return Err(bad()),
    };
    field_name(&field)?;
    match tokens.get(1..) {
        Some([]) => Ok((field, false)),
        Some([TokenTree::Ident(dir)]) if dir == "asc" => Ok((field, false)),
        Some([TokenTree::Ident(dir)]) if dir == "desc" => Ok((field, true)),
        Some([TokenTree::Ident(dir)]) => {
            Err(unknown("sort direction", &dir.to_string(), &["asc", "desc"]).with_span(dir))
        }
        _ => Err(bad()),
    }
}

/// What was written in place of the entity, what to write, and the path
/// to go on with: the module (`task_run`) or another item of it
/// (`task_run::Model`) instead of `task_run::Entity`.
fn entity_fix(entity: &Path, name_of_struct: &Ident) -> Option<(String, Path)> {
    let last = entity.segments.last()?;
    let name = last.ident.to_string();
    let written = darling::util::path_to_string(entity);
    let mut fixed = entity.clone();
    if name.starts_with(|c: char| c.is_lowercase()) {
        fixed.segments.push(syn::PathSegment::from(Ident::new(
            "Entity",
            last.ident.span(),
        )));
        let fix = darling::util::path_to_string(&fixed);
        let message = format!(
            "`{written}` is a module: `dashboard!` takes the entity in it, `struct {name_of_struct}<{fix}>`"
        );
        return Some((message, fixed));
    }
    let items = [
        "Model",
        "ModelEx",
        "ActiveModel",
        "Column",
        "PrimaryKey",
        "Relation",
    ];
    if items.contains(&name.as_str()) {
        if let Some(seg) = fixed.segments.last_mut() {
            seg.ident = Ident::new("Entity", last.ident.span());
        }
        let fix = darling::util::path_to_string(&fixed);
        let message = format!("`dashboard!` takes the entity, not its `{name}`: write `{fix}`");
        return Some((message, fixed));
    }
    None
}

/// The attributes with `Clone`, `Debug`, `PartialEq`, `Default`,
/// `Serialize` and `Deserialize` taken out of any `#[derive]` (each one
/// reported): the macro generates them, and a second one conflicts.
fn without_generated_derives(
    attrs: Vec<Attribute>,
    errors: &mut darling::error::Accumulator,
) -> Vec<Attribute> {
    attrs
        .into_iter()
        .filter_map(|mut attr| {
            if !attr.path().is_ident("derive") {
                return Some(attr);
            }
            let Ok(paths) =
                attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)
            else {
                return Some(attr);
            };
            let (generated, kept): (Vec<Path>, Vec<Path>) = paths.into_iter().partition(|p| {
                p.segments
                    .last()
                    .is_some_and(|s| GENERATED_TRAITS.iter().any(|t| s.ident == t))
            });
            for path in &generated {
                let name = darling::util::path_to_string(path);
                errors.push(
                    Error::custom(format!(
                        "`dashboard!` already implements `{name}` (it derives `Clone`, `Debug` and `PartialEq`, and implements `Default`, `Serialize` and `Deserialize`): remove it from this `#[derive]`"
                    ))
                    .with_span(path),
                );
            }
            if kept.is_empty() {
                return None;
            }
            if let syn::Meta::List(list) = &mut attr.meta {
                list.tokens = quote::quote!(#(#kept),*);
            }
            Some(attr)
        })
        .collect()
}

impl Model {
    /// The model, with every problem found; the model holds defaults where
    /// a value was wrong.
    pub fn validate(input: Input) -> (Model, Option<Error>) {
        let mut errors = Error::accumulator();
        for e in input.errors {
            errors.push(e.into());
        }
        let entity = match entity_fix(&input.entity, &input.name) {
            Some((message, fixed)) => {
                // On the last segment, the token to change (a span over the
                // whole path shows only its first token on stable).
                let last = input.entity.segments.last().map(|s| &s.ident);
                errors.push(match last {
                    Some(ident) => Error::custom(message).with_span(ident),
                    None => Error::custom(message).with_span(&input.entity),
                });
                // The macro goes on with the entity it suggests, so only
                // this error is reported if the suggestion is right.
                fixed
            }
            None => input.entity,
        };
        let attrs = without_generated_derives(input.attrs, &mut errors);
        let mut model = Model {
            krate: input.krate,
            attrs,
            vis: input.vis,
            name: input.name,
            entity,
            title: "Tasks".into(),
            header_title: None,
            description: String::new(),
            url_prefix: "/tasks".into(),
            accent_colour: "#2563eb".into(),
            page_size: 50,
            poll_interval: Duration::from_secs(5),
            columns: Vec::new(),
            filters: Vec::new(),
            search: Vec::new(),
            sort: None,
            actions: vec!["cancel".into(), "retry".into()],
            retention_days: None,
            time_zone: "UTC".into(),
            read_only: false,
            stuck_after: Duration::from_secs(30 * 60),
        };
        let mut seen: HashSet<String> = HashSet::new();
        for entry in input.entries {
            let key = entry.key.to_string();
            if !KEYS.contains(&key.as_str()) {
                errors.push(unknown("key", &key, KEYS).with_span(&entry.key));
                continue;
            }
            if !seen.insert(key.clone()) {
                errors.push(Error::custom(format!("`{key}` is given twice")).with_span(&entry.key));
                continue;
            }
            if let Err(err) = model.set(&key, &entry) {
                errors.push(err.with_span(&entry.value));
            }
        }
        for (key, list) in [
            ("columns", &model.columns),
            ("filters", &model.filters),
            ("search", &model.search),
        ] {
            let mut names = HashSet::new();
            for field in list {
                if !names.insert(field.to_string()) {
                    errors.push(
                        Error::custom(format!("`{field}` is listed twice in `{key}`"))
                            .with_span(field),
                    );
                }
            }
        }
        let errors = errors.finish().err();
        (model, errors)
    }

    fn set(&mut self, key: &str, entry: &Entry) -> Result<(), Error> {
        let v = &entry.value;
        match key {
            "title" => self.title = lit_str(v, key)?,
            "header_title" => self.header_title = Some(lit_str(v, key)?),
            "description" => self.description = lit_str(v, key)?,
            "url_prefix" => {
                let prefix = lit_str(v, key)?;
                check_prefix(&prefix).map_err(|m| Error::custom(format!("`url_prefix`: {m}")))?;
                self.url_prefix = prefix;
            }
            "accent_colour" => {
                let colour = lit_str(v, key)?;
                check_colour(&colour)
                    .map_err(|m| Error::custom(format!("`accent_colour`: {m}")))?;
                self.accent_colour = colour;
            }
            "time_zone" => {
                let zone = lit_str(v, key)?;
                check_time_zone(&zone).map_err(|m| Error::custom(format!("`time_zone`: {m}")))?;
                self.time_zone = zone;
            }
            "page_size" => {
                let (n, _) = lit_int(v, key, "50")?;
                if !(1..=1000).contains(&n) {
                    return Err(Error::custom(format!(
                        "`page_size` must be between 1 and 1000, not {n}"
                    )));
                }
                self.page_size = n as u32;
            }
            "retention_days" => {
                let (n, _) = lit_int(v, key, "30")?;
                if n == 0 || n > u64::from(u32::MAX) {
                    return Err(Error::custom(
                        "`retention_days` must be at least 1 (leave it out to keep runs for ever)",
                    ));
                }
                self.retention_days = Some(n as u32);
            }
            "poll_interval" => {
                let d = duration(v, key)?;
                if d < Duration::from_millis(100) {
                    return Err(Error::custom("`poll_interval` must be at least 100ms"));
                }
                self.poll_interval = d;
            }
            "stuck_after" => self.stuck_after = duration(v, key)?,
            "columns" => {
                let list = idents(v, key)?;
                if list.is_empty() {
                    return Err(Error::custom(
                        "`columns` needs at least one field (leave it out for the default columns)",
                    ));
                }
                self.columns = list;
            }
            "filters" => self.filters = idents(v, key)?,
            "search" => self.search = idents(v, key)?,
            "sort" => self.sort = Some(sort(v)?),
            "actions" => {
                let list = idents(v, key)?;
                let mut actions = Vec::new();
                let mut errors = Error::accumulator();
                for action in list {
                    let name = action.to_string();
                    if !ACTIONS.contains(&name.as_str()) {
                        errors.push(unknown("action", &name, ACTIONS).with_span(&action));
                    } else if actions.contains(&name) {
                        errors.push(
                            Error::custom(format!("`{name}` is listed twice in `actions`"))
                                .with_span(&action),
                        );
                    } else {
                        actions.push(name);
                    }
                }
                errors.finish()?;
                self.actions = actions;
            }
            "read_only" => {
                self.read_only = syn::parse2::<LitBool>(v.clone())
                    .map_err(|_| Error::custom("`read_only` takes `true` or `false`"))?
                    .value;
            }
            _ => unreachable!("keys are checked first"),
        }
        Ok(())
    }

    /// Every field name the configuration refers to, with its span.
    pub fn referenced_fields(&self) -> impl Iterator<Item = &Ident> {
        self.columns
            .iter()
            .chain(&self.filters)
            .chain(&self.search)
            .chain(self.sort.iter().map(|(f, _)| f))
    }
}
