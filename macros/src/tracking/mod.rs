//! `#[derive(TrackingConfig)]`: attributes → model → code.

pub(crate) mod attrs;
mod expand;
mod model;
pub(crate) mod roles;
mod unclaimed;
mod values;

use darling::FromDeriveInput;
use proc_macro2::TokenStream;

/// Expands the derive; every problem found becomes a `compile_error!` on its
/// span, next to a stub impl so the user sees one error, not a cascade.
pub fn expand(input: &syn::DeriveInput) -> TokenStream {
    // sea-orm's `#[sea_orm::model]` copies every derive onto `ModelEx` as
    // well; the tracking config belongs to `Model` alone.
    if input.ident == "ModelEx" {
        return TokenStream::new();
    }
    // The item's shape and the attribute forms darling cannot explain well
    // are checked first; darling reads what remains, so a mistake is
    // reported once, and the checks after it still run.
    let (cleaned, mut errors) = attrs::check_forms(input);
    let parsed = cleaned
        .ok_or_else(|| darling::Error::multiple(std::mem::take(&mut errors)))
        .and_then(|cleaned| {
            attrs::Container::from_derive_input(&cleaned)
                .and_then(|c| model::Model::validate(&cleaned, c))
        });
    let parsed = match parsed {
        Ok(model) if errors.is_empty() => Ok(model),
        Ok(_) => Err(darling::Error::multiple(errors)),
        Err(e) => {
            errors.push(e);
            Err(darling::Error::multiple(errors))
        }
    };
    match parsed {
        Ok(model) => expand::expand(&model),
        Err(errors) => {
            let stub = expand::fallback(input);
            let errors = errors.write_errors();
            quote::quote! { #errors #stub }
        }
    }
}

#[cfg(test)]
mod tests;
