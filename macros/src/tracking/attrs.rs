//! `#[tracking(…)]` as darling reads it: raw options, no cross-checks yet.

use darling::util::SpannedValue;
use darling::{FromDeriveInput, FromField, FromMeta, ast};
use proc_macro2::Span;

use super::unclaimed;
use super::values::{ByteCount, KeyList, PathValue, Text, Word};

/// `hooks = custom` / `hooks = default`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HooksMode {
    Default,
    Custom,
}

impl FromMeta for HooksMode {
    fn from_string(value: &str) -> darling::Result<Self> {
        match value {
            "custom" => Ok(HooksMode::Custom),
            "default" => Ok(HooksMode::Default),
            other => Err(darling::Error::unknown_value_with_alts(
                other,
                &["custom", "default"],
            )),
        }
    }

    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        match expr {
            syn::Expr::Path(p) if p.path.get_ident().is_some() => {
                let ident = p
                    .path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                Self::from_string(&ident).map_err(|e| e.with_span(p))
            }
            syn::Expr::Lit(lit) => Self::from_value(&lit.lit).map_err(|e| e.with_span(lit)),
            syn::Expr::Group(g) => Self::from_expr(&g.expr),
            other => Err(darling::Error::unexpected_expr_type(other).with_span(other)),
        }
    }
}

/// Struct-level options.
#[derive(Debug, FromDeriveInput)]
#[darling(attributes(tracking), supports(struct_named))]
pub struct Container {
    pub ident: syn::Ident,
    pub vis: syn::Visibility,
    pub generics: syn::Generics,
    pub data: ast::Data<(), Field>,
    /// `crate = "path"`: where the runtime is.
    #[darling(rename = "crate")]
    pub krate: Option<PathValue>,
    pub hooks: Option<SpannedValue<HooksMode>>,
    pub format_user: Option<PathValue>,
    pub format_objects: Option<PathValue>,
    pub format_payload: Option<PathValue>,
    pub redact: Option<KeyList>,
    pub max_payload_bytes: Option<ByteCount>,
    pub progress_sets_message: Word,
    /// Everything else is refused with where it belongs (a role written on
    /// the struct, a misspelt option).
    #[darling(flatten)]
    pub _unclaimed: unclaimed::OnStruct,
}

/// The struct options, for "did you mean" and for recognising one written
/// on a field.
pub const STRUCT_OPTIONS: &[&str] = &[
    "crate",
    "hooks",
    "format_user",
    "format_objects",
    "format_payload",
    "redact",
    "max_payload_bytes",
    "progress_sets_message",
];

/// The field options that are not roles.
pub const FIELD_OPTIONS: &[&str] = &["skip", "extra", "label"];

/// Field-level options: at most one role, `skip`, `extra`, `label`.
#[derive(Debug, FromField)]
#[darling(attributes(tracking), forward_attrs(sea_orm))]
pub struct Field {
    pub ident: Option<syn::Ident>,
    pub ty: syn::Type,
    pub attrs: Vec<syn::Attribute>,
    pub skip: Word,
    pub extra: Option<Text>,
    pub label: Option<Text>,
    pub key: Word,
    pub name: Word,
    pub status: Word,
    pub message: Word,
    pub progress: Word,
    pub user: Word,
    pub objects: Word,
    pub args: Word,
    pub kwargs: Word,
    pub result: Word,
    pub cleaned: Word,
    pub created_at: Word,
    pub updated_at: Word,
    pub started_at: Word,
    pub completed_at: Word,
    pub failed_at: Word,
    pub retry_of: Word,
    /// Everything else is refused with where it belongs (a struct option
    /// written on a field, sea-orm's words, a misspelt role).
    #[darling(flatten)]
    pub _unclaimed: unclaimed::OnField,
}

impl Field {
    /// The role flags written on the field, with their spans, in role order.
    pub fn explicit_roles(&self) -> Vec<(&'static str, Span)> {
        let flags = [
            ("key", &self.key),
            ("name", &self.name),
            ("status", &self.status),
            ("message", &self.message),
            ("progress", &self.progress),
            ("user", &self.user),
            ("objects", &self.objects),
            ("args", &self.args),
            ("kwargs", &self.kwargs),
            ("result", &self.result),
            ("cleaned", &self.cleaned),
            ("created_at", &self.created_at),
            ("updated_at", &self.updated_at),
            ("started_at", &self.started_at),
            ("completed_at", &self.completed_at),
            ("failed_at", &self.failed_at),
            ("retry_of", &self.retry_of),
        ];
        flags
            .into_iter()
            .filter(|(_, f)| f.is_present())
            .map(|(n, f)| (n, f.span()))
            .collect()
    }
}

/// The checks that come before darling reads the attributes: the item's
/// shape, and `#[tracking …]` attributes that are not a list
/// (`#[tracking = "status"]`, `#[tracking]`) or hold a literal
/// (`#[tracking("status")]`). What they find is reported with what to write;
/// the input handed on to darling has those attributes (or literals)
/// removed, so darling does not report them a second time.
pub fn check_forms(input: &syn::DeriveInput) -> (Option<syn::DeriveInput>, Vec<darling::Error>) {
    use syn::spanned::Spanned;

    let not_a_model = |span: Span, what: &str, hint: &str| {
        (
            None,
            vec![super::values::spanned(
                span,
                format!(
                    "`#[derive(TrackingConfig)]` goes on a sea-orm entity's `Model` (the struct with `#[derive(DeriveEntityModel)]`), not on {what}{hint}"
                ),
            )],
        )
    };
    match &input.data {
        syn::Data::Enum(e) => {
            return not_a_model(
                e.enum_token.span(),
                "an enum",
                "; a status enum derives sea-orm's `DeriveActiveEnum` and implements `tasktrail::TrackedStatus`",
            );
        }
        syn::Data::Union(u) => return not_a_model(u.union_token.span(), "a union", ""),
        syn::Data::Struct(s) if !matches!(s.fields, syn::Fields::Named(_)) => {
            let span = match &s.fields {
                syn::Fields::Unnamed(f) => f.paren_token.span.join(),
                _ => input.ident.span(),
            };
            return not_a_model(span, "a struct without named fields", "");
        }
        syn::Data::Struct(_) => {}
    }

    let mut errors = Vec::new();
    let mut cleaned = input.clone();
    clean_attrs(&mut cleaned.attrs, "pub struct Model", &mut errors);
    if let syn::Data::Struct(s) = &mut cleaned.data {
        for field in s.fields.iter_mut() {
            clean_attrs(&mut field.attrs, "the field", &mut errors);
        }
    }
    (Some(cleaned), errors)
}

fn clean_attrs(attrs: &mut Vec<syn::Attribute>, on: &str, errors: &mut Vec<darling::Error>) {
    use proc_macro2::TokenStream;
    use quote::ToTokens;
    use syn::spanned::Spanned;

    let example = if on == "the field" {
        "#[tracking(status)]"
    } else {
        "#[tracking(redact = [\"password\"])]"
    };
    attrs.retain_mut(|attr| {
        if !attr.path().is_ident("tracking") {
            return true;
        }
        match &mut attr.meta {
            syn::Meta::Path(p) => {
                errors.push(
                    darling::Error::custom(format!(
                        "`#[tracking]` needs its roles or options in parentheses, e.g. `{example}`"
                    ))
                    .with_span(p),
                );
                false
            }
            syn::Meta::NameValue(nv) => {
                let value = nv.value.to_token_stream().to_string();
                let word = value.trim_matches('"');
                if is_word(word) {
                    errors.push(
                        darling::Error::custom(format!(
                            "write `#[tracking({word})]`: options go in parentheses"
                        ))
                        .with_span(&*nv),
                    );
                    // Read as meant, so nothing follows from it.
                    let word = syn::Ident::new(word, nv.path.span());
                    attr.meta = syn::parse_quote!(tracking(#word));
                    true
                } else {
                    errors.push(
                        darling::Error::custom(format!(
                            "`#[tracking]` takes its options in parentheses, e.g. `{example}`"
                        ))
                        .with_span(&*nv),
                    );
                    false
                }
            }
            syn::Meta::List(list) => {
                // A list darling cannot read is darling's to report.
                let Ok(items) = ast::NestedMeta::parse_meta_list(list.tokens.clone()) else {
                    return true;
                };
                let mut changed = false;
                let kept: Vec<TokenStream> = items
                    .into_iter()
                    .filter_map(|item| {
                        let ast::NestedMeta::Lit(lit) = &item else {
                            return Some(item.to_token_stream());
                        };
                        changed = true;
                        let text = lit.to_token_stream().to_string();
                        let word = text.trim_matches('"');
                        if text.starts_with('"') && is_word(word) {
                            errors.push(
                                darling::Error::custom(format!(
                                    "write `{word}` without quotes: `#[tracking({word})]`"
                                ))
                                .with_span(lit),
                            );
                            // Read as meant.
                            Some(syn::Ident::new(word, lit.span()).to_token_stream())
                        } else {
                            errors.push(
                                darling::Error::custom(format!(
                                    "`#[tracking(…)]` takes roles and options, not a literal, e.g. `{example}`"
                                ))
                                .with_span(lit),
                            );
                            None
                        }
                    })
                    .collect();
                if changed {
                    list.tokens = quote::quote!(#(#kept),*);
                }
                true
            }
        }
    });
}

/// A role or an option name (what `#[tracking(…)]` holds).
fn is_word(text: &str) -> bool {
    super::roles::by_name(text).is_some()
        || FIELD_OPTIONS.contains(&text)
        || STRUCT_OPTIONS.contains(&text)
}
