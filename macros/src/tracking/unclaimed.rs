//! What `#[tracking(…)]` holds that is neither a role nor an option of the
//! place it is written: a struct option on a field, a role on the struct,
//! sea-orm's words, misspellings. darling hands them over (`flatten`), and
//! each gets a message that says where it belongs or what was meant,
//! reported with darling's other errors.

use darling::Error;
use darling::ast::NestedMeta;
use darling::util::path_to_string;
use proc_macro2::Span;
use syn::Meta;
use syn::spanned::Spanned;

use super::attrs::{FIELD_OPTIONS, STRUCT_OPTIONS};
use super::roles::{self, ROLES};
use super::values::spanned;

/// sea-orm's column options: written in `#[tracking(…)]` by mistake.
const SEA_ORM_FIELD_OPTIONS: &[&str] = &[
    "primary_key",
    "auto_increment",
    "unique",
    "unique_key",
    "indexed",
    "nullable",
    "column_name",
    "column_type",
    "default_value",
    "default_expr",
    "enum_name",
    "select_as",
    "save_as",
    "comment",
];

/// sea-orm's entity options.
const SEA_ORM_STRUCT_OPTIONS: &[&str] = &[
    "table_name",
    "schema_name",
    "comment",
    "model_attrs",
    "active_model_attrs",
];

/// The closest of `known` to `value`, if close enough to suggest.
fn closest<'a>(value: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(value, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn quoted(names: impl IntoIterator<Item = &'static str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn role_names() -> impl Iterator<Item = &'static str> {
    ROLES.iter().map(|r| r.name)
}

/// The name of an item, its path (for the span) and the item when it
/// parsed as a `Meta`. A literal is refused before darling reads the
/// attribute (see `attrs::check_forms`), so it is not expected here.
fn name_of(item: &NestedMeta) -> (String, Span, Option<&Meta>) {
    match item {
        NestedMeta::Meta(meta) => (path_to_string(meta.path()), meta.path().span(), Some(meta)),
        NestedMeta::NameValueInvalidExpr(nv) => (path_to_string(&nv.path), nv.path.span(), None),
        NestedMeta::Lit(lit) => (String::new(), lit.span(), None),
    }
}

/// The string or bare name a `name = value` item holds.
fn value_word(meta: Option<&Meta>) -> Option<String> {
    let Some(Meta::NameValue(nv)) = meta else {
        return None;
    };
    match &nv.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Some(s.value()),
        syn::Expr::Path(p) => p.path.get_ident().map(ToString::to_string),
        _ => None,
    }
}

/// The left-over items of a field's `#[tracking(…)]`: none, or an error.
#[derive(Debug, Default)]
pub struct OnField;

impl darling::FromMeta for OnField {
    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        finish(items.iter().map(on_field).collect())
    }
}

/// The left-over items of the struct's `#[tracking(…)]`: none, or an error.
#[derive(Debug, Default)]
pub struct OnStruct;

impl darling::FromMeta for OnStruct {
    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        finish(items.iter().map(on_struct).collect())
    }
}

fn finish<T: Default>(errors: Vec<Error>) -> darling::Result<T> {
    if errors.is_empty() {
        Ok(T::default())
    } else {
        Err(Error::multiple(errors))
    }
}

/// An item left over in a field's `#[tracking(…)]`.
fn on_field(item: &NestedMeta) -> Error {
    let (name, path, meta) = name_of(item);
    let message = if STRUCT_OPTIONS.contains(&name.as_str()) {
        format!(
            "`{name}` is an option of the struct's `#[tracking(…)]`, not of a field: move it to the `#[tracking(…)]` above the struct"
        )
    } else if name == "ignore" {
        "to leave a field unmapped write `#[tracking(skip)]` (`ignore` is sea-orm's: `#[sea_orm(ignore)]` is a field with no column)".to_owned()
    } else if name == "role" {
        match value_word(meta).and_then(|r| roles::by_name(&r)) {
            Some(role) => format!("write the role itself: `#[tracking({})]`", role.name),
            None => format!(
                "write the role itself, e.g. `#[tracking(status)]` (the roles are {})",
                quoted(role_names())
            ),
        }
    } else if SEA_ORM_FIELD_OPTIONS.contains(&name.as_str()) {
        format!("`{name}` is a sea-orm option: write it in `#[sea_orm(…)]`")
    } else {
        let known = role_names().chain(FIELD_OPTIONS.iter().copied());
        match closest(&name, known) {
            Some(close) => {
                format!("`{name}` is not a role or a field option; did you mean `{close}`?")
            }
            None => format!(
                "`{name}` is not a role or a field option (the roles are {}; the field options are {})",
                quoted(role_names()),
                quoted(FIELD_OPTIONS.iter().copied())
            ),
        }
    };
    spanned(path, message)
}

/// An item left over in the struct's `#[tracking(…)]`.
fn on_struct(item: &NestedMeta) -> Error {
    let (name, path, meta) = name_of(item);
    let is_role = roles::by_name(&name).is_some();
    let message = if is_role || FIELD_OPTIONS.contains(&name.as_str()) {
        let what = if is_role { "a role" } else { "a field option" };
        let attr = if is_role || name == "skip" {
            format!("#[tracking({name})]")
        } else {
            format!("#[tracking({name} = \"…\")]")
        };
        match value_word(meta) {
            Some(field) => format!(
                "`{name}` is {what}, written on the field it applies to: put `{attr}` above `{field}` and remove it here"
            ),
            None => format!(
                "`{name}` is {what}, written on the field it applies to: put `{attr}` above that field"
            ),
        }
    } else if SEA_ORM_STRUCT_OPTIONS.contains(&name.as_str()) {
        format!("`{name}` is a sea-orm option: write it in `#[sea_orm(…)]`")
    } else {
        match closest(&name, STRUCT_OPTIONS.iter().copied()) {
            Some(close) => format!(
                "`{name}` is not an option of the struct's `#[tracking(…)]`; did you mean `{close}`?"
            ),
            None => format!(
                "`{name}` is not an option of the struct's `#[tracking(…)]` (the options are {})",
                quoted(STRUCT_OPTIONS.iter().copied())
            ),
        }
    };
    spanned(path, message)
}
