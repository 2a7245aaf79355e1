//! The validated model of a tracked entity: plain data for the expansion,
//! built after checking every rule and collecting every error with its span.

use std::collections::HashMap;

use heck::ToUpperCamelCase;
use proc_macro2::Span;
use syn::spanned::Spanned;

use super::attrs::{self, HooksMode};
use super::roles::{self, Kind, RoleDef};
use super::values::Text;

/// The formatter hooks to generate.
pub enum Hooks {
    /// Generate `impl FormatHooks`, overriding the hooks given.
    Generated {
        format_user: Option<syn::Path>,
        format_objects: Option<syn::Path>,
        format_payload: Option<syn::Path>,
    },
    /// `hooks = custom`: the user writes `impl FormatHooks`.
    Custom,
}

pub struct Model {
    pub ident: syn::Ident,
    pub vis: syn::Visibility,
    pub krate: syn::Path,
    pub hooks: Hooks,
    pub redact: Vec<String>,
    pub max_payload_bytes: Option<usize>,
    pub progress_sets_message: bool,
    /// The fields that are columns (not `#[sea_orm(ignore)]`), in order.
    pub fields: Vec<Field>,
}

pub struct Field {
    /// The field name without `r#`.
    pub name: String,
    /// The sea-orm `Column` variant.
    pub variant: syn::Ident,
    pub ty: syn::Type,
    pub label: String,
    pub role: Option<&'static RoleDef>,
    /// The role was taken from the field's name, not written.
    pub by_name: bool,
    pub extra: Option<String>,
}

fn error(span: Span, message: impl std::fmt::Display) -> darling::Error {
    syn::Error::new(span, message).into()
}

/// What `#[sea_orm(…)]` says about a field that matters here.
#[derive(Default)]
struct SeaOrmField {
    ignore: bool,
    enum_name: Option<syn::LitStr>,
}

fn sea_orm_field(attrs: &[syn::Attribute]) -> SeaOrmField {
    let mut out = SeaOrmField::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("sea_orm")) {
        // sea-orm reports malformed attributes itself; read what parses.
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("ignore") {
                out.ignore = true;
            } else if meta.path.is_ident("enum_name") {
                out.enum_name = Some(meta.value()?.parse()?);
            } else if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _: proc_macro2::Group = meta.input.parse()?;
            }
            Ok(())
        });
    }
    out
}

/// The `Column` variant sea-orm's `DeriveEntityModel` generates for a field,
/// or why there is none: the name it would have is not an identifier (a
/// field called `_` or `_1`, an `enum_name` such as `"a b"`).
fn column_variant(name: &str, enum_name: Option<&str>, span: Span) -> Result<syn::Ident, String> {
    let variant = enum_name.map_or_else(|| name.to_upper_camel_case(), str::to_owned);
    let variant = if variant == "Self" {
        "Self_".to_owned()
    } else {
        variant
    };
    match syn::parse_str::<syn::Ident>(&variant) {
        Ok(mut ident) => {
            ident.set_span(span);
            Ok(ident)
        }
        Err(_) if enum_name.is_some() => Err(format!(
            "`enum_name = {variant:?}` is not an identifier: sea-orm names `{name}`'s `Column` variant with it"
        )),
        Err(_) => {
            let what = if variant.is_empty() {
                "empty".to_owned()
            } else {
                format!("`{variant}`, not an identifier")
            };
            Err(format!(
                "`{name}` has no sea-orm `Column` variant: its name in UpperCamelCase is {what}; name the variant with `#[sea_orm(enum_name = \"…\")]` or rename the field"
            ))
        }
    }
}

/// `task_name` → `Task name`.
fn sentence_case(name: &str) -> String {
    let words = name.replace('_', " ");
    let mut chars = words.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn spanned_str(v: &Text) -> (&str, Span) {
    (v.value.as_str(), v.span)
}

/// The span of `tasktrail::Status` (or `Option<tasktrail::Status>`) when
/// `ty` names the runtime's own status enum by a path through the crate:
/// sea-orm cannot store it, and its derive says so in some twenty errors
/// before ours. A bare `Status` may be the user's own `ActiveEnum` and is
/// left to the type check.
fn runtime_status_type(ty: &syn::Type, krate: &syn::Path) -> Option<Span> {
    let syn::Type::Path(tp) = ty else {
        return None;
    };
    if tp.qself.is_some() {
        return None;
    }
    let segments: Vec<_> = tp.path.segments.iter().collect();
    let last = segments.last()?;
    if last.ident == "Option"
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
    {
        return runtime_status_type(inner, krate);
    }
    let crate_name = krate.segments.last().map(|s| s.ident.to_string());
    let through_runtime = segments[..segments.len() - 1]
        .iter()
        .any(|s| s.ident == "tasktrail" || crate_name.as_deref().is_some_and(|c| s.ident == c));
    (last.ident == "Status" && last.arguments.is_none() && through_runtime)
        .then(|| last.ident.span())
}

impl Model {
    pub fn validate(input: &syn::DeriveInput, c: attrs::Container) -> darling::Result<Model> {
        let mut errors = darling::Error::accumulator();

        if !c.generics.params.is_empty() {
            errors.push(error(
                c.generics.span(),
                "`TrackingConfig` works on a sea-orm `Model`, which has no generic parameters",
            ));
        }

        let data = c.data.take_struct().map(|s| s.fields).unwrap_or_default();

        let krate = c
            .krate
            .as_ref()
            .map_or_else(|| syn::parse_quote!(::tasktrail), |k| k.path.clone());
        let mut fields = Vec::new();
        // role name -> (field name, span of where the role was given)
        let mut taken: HashMap<&'static str, (String, Span)> = HashMap::new();
        let mut extras: HashMap<String, Span> = HashMap::new();

        for f in data {
            let Some(ident) = f.ident.clone() else {
                continue;
            };
            let name = ident.to_string().trim_start_matches("r#").to_owned();
            let sea = sea_orm_field(&f.attrs);
            let explicit = f.explicit_roles();

            for (role, span) in explicit.iter().skip(1) {
                errors.push(error(
                    *span,
                    format!(
                        "`{role}` conflicts with `{}`: a field takes one role",
                        explicit[0].0
                    ),
                ));
            }
            if f.skip.is_present() && (!explicit.is_empty() || f.extra.is_some()) {
                errors.push(error(
                    f.skip.span(),
                    "`skip` cannot be combined with a role or `extra` on the same field",
                ));
            }
            if let (Some(extra), Some((role, _))) = (&f.extra, explicit.first()) {
                errors.push(error(
                    extra.span,
                    format!(
                        "`extra` conflicts with `{role}`: a field is either a role or an extra"
                    ),
                ));
            }
            if sea.ignore && (!explicit.is_empty() || f.extra.is_some()) {
                let span = explicit.first().map_or_else(|| ident.span(), |(_, s)| *s);
                errors.push(error(
                    span,
                    format!("`{name}` is `#[sea_orm(ignore)]`: it has no column to track"),
                ));
            }
            if let Some(label) = &f.label {
                let (text, span) = spanned_str(label);
                if text.trim().is_empty() {
                    errors.push(error(span, "`label` must not be empty"));
                }
            }
            let extra = f.extra.as_ref().map(|e| {
                let (text, span) = spanned_str(e);
                if text.trim().is_empty() {
                    errors.push(error(
                        span,
                        "`extra` needs a name, e.g. `extra = \"tenant\"`",
                    ));
                } else if extras.insert(text.to_owned(), span).is_some() {
                    errors.push(error(span, format!("the extra `{text}` is mapped twice")));
                }
                text.to_owned()
            });
            if sea.ignore {
                continue;
            }

            let role = if let Some((role, span)) = explicit.first() {
                roles::by_name(role).map(|r| (r, *span, true))
            } else if f.skip.is_present() || extra.is_some() {
                None
            } else {
                roles::by_field_name(&name).map(|r| (r, ident.span(), false))
            };
            if let Some((role, span, explicit)) = role {
                if let Some((other, _)) = taken.get(role.name) {
                    let how = if explicit {
                        format!(
                            "add `#[tracking(skip)]` to `{other}` or map `{name}` to another role"
                        )
                    } else {
                        format!("add `#[tracking(skip)]` to `{name}` to leave it unmapped")
                    };
                    errors.push(error(
                        span,
                        format!(
                            "the role `{}` is already taken by `{other}`; {how}",
                            role.name
                        ),
                    ));
                } else {
                    taken.insert(role.name, (name.clone(), span));
                }
            }

            if let Some((role, _, _)) = role
                && role.kind == Kind::Status
                && let Some(span) = runtime_status_type(&f.ty, &krate)
            {
                errors.push(error(
                    span,
                    format!(
                        "`tasktrail::Status` is not a type sea-orm can store in a column: make `{name}` a `String` (tasktrail stores `pending`, `in_progress`, `success`, …), or a sea-orm `ActiveEnum` of your own that implements `tasktrail::TrackedStatus`"
                    ),
                ));
            }

            let enum_name = sea.enum_name.as_ref().map(syn::LitStr::value);
            let variant = match column_variant(&name, enum_name.as_deref(), ident.span()) {
                Ok(variant) => variant,
                Err(message) => {
                    let span = sea.enum_name.as_ref().map_or(ident.span(), |l| l.span());
                    errors.push(error(span, message));
                    continue;
                }
            };
            fields.push(Field {
                variant,
                label: f
                    .label
                    .as_ref()
                    .map_or_else(|| sentence_case(&name), |l| l.value.clone()),
                role: role.map(|(r, _, _)| r),
                by_name: role.is_some_and(|(_, _, explicit)| !explicit),
                extra,
                ty: f.ty,
                name,
            });
        }

        for (role, hint) in [
            (
                "key",
                "name a `String` field `task_key` or `task_id`, or mark one with `#[tracking(key)]`",
            ),
            (
                "status",
                "name a field `status`, or mark one with `#[tracking(status)]`",
            ),
        ] {
            if !taken.contains_key(role) {
                errors.push(error(
                    input.ident.span(),
                    format!(
                        "no field has the role `{role}`, which every tracked model needs: {hint}"
                    ),
                ));
            }
        }

        let custom = c.hooks.as_ref().is_some_and(|h| **h == HooksMode::Custom);
        let hooks = if custom {
            for path in [&c.format_user, &c.format_objects, &c.format_payload]
                .into_iter()
                .flatten()
            {
                errors.push(error(
                    path.span,
                    "a per-hook override has no effect with `hooks = custom`: write this hook in your `impl FormatHooks`, or drop `hooks = custom`",
                ));
            }
            Hooks::Custom
        } else {
            Hooks::Generated {
                format_user: c.format_user.map(|p| p.path),
                format_objects: c.format_objects.map(|p| p.path),
                format_payload: c.format_payload.map(|p| p.path),
            }
        };

        let mut redact = Vec::new();
        if let Some(list) = &c.redact {
            if list.keys.is_empty() {
                errors.push(error(list.span, "`redact` lists no keys; remove it or name the keys, e.g. `redact = [\"password\"]`"));
            }
            for lit in &list.keys {
                let key = lit.value();
                if key.trim().is_empty() {
                    errors.push(error(lit.span(), "a redacted key must not be empty"));
                } else if redact.iter().any(|k: &String| k.eq_ignore_ascii_case(&key)) {
                    errors.push(error(
                        lit.span(),
                        format!("`{key}` is listed twice in `redact`"),
                    ));
                } else {
                    redact.push(key);
                }
            }
        }

        let max_payload_bytes = c.max_payload_bytes.as_ref().map(|b| &b.0).and_then(|lit| {
            if !lit.suffix().is_empty() {
                errors.push(error(
                    lit.span(),
                    "`max_payload_bytes` is a plain byte count, e.g. `max_payload_bytes = 65536`",
                ));
                return None;
            }
            match lit.base10_parse::<usize>() {
                Ok(0) => {
                    errors.push(error(lit.span(), "`max_payload_bytes` must be at least 1"));
                    None
                }
                Ok(n) => Some(n),
                Err(e) => {
                    errors.push(error(
                        lit.span(),
                        format!("`max_payload_bytes` must be a byte count: {e}"),
                    ));
                    None
                }
            }
        });

        errors.finish()?;
        Ok(Model {
            krate,
            ident: c.ident,
            vis: c.vis,
            hooks,
            redact,
            max_payload_bytes,
            progress_sets_message: c.progress_sets_message.is_present(),
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_variants_follow_sea_orm() {
        let s = Span::call_site();
        let variant = |name, enum_name| column_variant(name, enum_name, s).expect("a variant");
        assert_eq!(variant("task_key", None), "TaskKey");
        assert_eq!(variant("step2_at", None), "Step2At");
        assert_eq!(variant("x", Some("Renamed")), "Renamed");
        assert_eq!(variant("self", None), "Self_");
    }

    #[test]
    fn labels_are_sentence_case() {
        assert_eq!(sentence_case("task_name"), "Task name");
        assert_eq!(sentence_case("id"), "Id");
    }
}
