//! `#[derive(TrackingConfig)]`: attributes → model → code.

mod attrs;
mod expand;
mod model;
mod roles;

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
    let parsed =
        attrs::Container::from_derive_input(input).and_then(|c| model::Model::validate(input, c));
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
