//! `#[tracking(…)]` as darling reads it: raw options, no cross-checks yet.

use darling::util::{Flag, SpannedValue};
use darling::{FromDeriveInput, FromField, FromMeta, ast};
use proc_macro2::Span;

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
    pub krate: Option<SpannedValue<syn::Path>>,
    pub hooks: Option<SpannedValue<HooksMode>>,
    pub format_user: Option<syn::Path>,
    pub format_objects: Option<syn::Path>,
    pub format_payload: Option<syn::Path>,
    pub redact: Option<SpannedValue<Vec<syn::LitStr>>>,
    pub max_payload_bytes: Option<syn::LitInt>,
    pub progress_sets_message: Flag,
}

/// Field-level options: at most one role, `skip`, `extra`, `label`.
#[derive(Debug, FromField)]
#[darling(attributes(tracking), forward_attrs(sea_orm))]
pub struct Field {
    pub ident: Option<syn::Ident>,
    pub ty: syn::Type,
    pub attrs: Vec<syn::Attribute>,
    pub skip: Flag,
    pub extra: Option<SpannedValue<String>>,
    pub label: Option<SpannedValue<String>>,
    pub key: Flag,
    pub name: Flag,
    pub status: Flag,
    pub message: Flag,
    pub progress: Flag,
    pub user: Flag,
    pub objects: Flag,
    pub args: Flag,
    pub kwargs: Flag,
    pub result: Flag,
    pub cleaned: Flag,
    pub created_at: Flag,
    pub updated_at: Flag,
    pub started_at: Flag,
    pub completed_at: Flag,
    pub failed_at: Flag,
    pub retry_of: Flag,
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
