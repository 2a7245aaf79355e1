//! The validated configuration: every key's value, typed, with the spans of
//! the field names it refers to. Validation collects every error.

use std::collections::HashSet;
use std::time::Duration;

use darling::Error;
use proc_macro2::{TokenStream, TokenTree};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitBool, LitInt, LitStr, Path, Token, Visibility};

use super::checks;
use super::parse::{Entry, Input};

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
];

pub const ACTIONS: &[&str] = &["cancel", "retry", "delete"];

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

fn idents(value: &TokenStream, key: &str) -> Result<Vec<Ident>, Error> {
    let parser = |input: syn::parse::ParseStream| {
        let content;
        syn::bracketed!(content in input);
        Punctuated::<Ident, Token![,]>::parse_terminated(&content)
    };
    parser
        .parse2(value.clone())
        .map(|list| list.into_iter().collect())
        .map_err(|_| {
            Error::custom(format!(
                "`{key}` takes a list of field names, e.g. `{key}: [task_name, status]`"
            ))
        })
}

fn duration(value: &TokenStream) -> Result<Duration, Error> {
    let lit = syn::parse2::<LitInt>(value.clone()).map_err(|_| {
        Error::custom(
            "`poll_interval` takes a duration literal such as `10s`, `500ms`, `2m` or `1h`",
        )
    })?;
    let n = lit
        .base10_parse::<u64>()
        .map_err(|e| Error::custom(format!("`poll_interval`: {e}")))?;
    let d = match lit.suffix() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "" => {
            return Err(Error::custom(format!(
                "`poll_interval` needs a unit: `{n}s`, `{n}ms`, `{n}m` or `{n}h`"
            )));
        }
        other => {
            return Err(Error::custom(format!(
                "`{other}` is not a duration unit; use `ms`, `s`, `m` or `h`"
            )));
        }
    };
    if d < Duration::from_millis(100) {
        return Err(Error::custom("`poll_interval` must be at least 100ms"));
    }
    Ok(d)
}

fn sort(value: &TokenStream) -> Result<(Ident, bool), Error> {
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

impl Model {
    /// The model, with every problem found; the model holds defaults where
    /// a value was wrong.
    pub fn validate(input: Input) -> (Model, Option<Error>) {
        let mut errors = Error::accumulator();
        let mut model = Model {
            krate: input.krate,
            attrs: input.attrs,
            vis: input.vis,
            name: input.name,
            entity: input.entity,
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
                checks::prefix(&prefix).map_err(|m| Error::custom(format!("`url_prefix`: {m}")))?;
                self.url_prefix = prefix;
            }
            "accent_colour" => {
                let colour = lit_str(v, key)?;
                checks::colour(&colour)
                    .map_err(|m| Error::custom(format!("`accent_colour`: {m}")))?;
                self.accent_colour = colour;
            }
            "time_zone" => {
                let zone = lit_str(v, key)?;
                checks::time_zone(&zone).map_err(|m| Error::custom(format!("`time_zone`: {m}")))?;
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
            "poll_interval" => self.poll_interval = duration(v)?,
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
