//! `dashboard! { … }`: tokens → raw entries → validated model → code.

mod expand;
pub(crate) mod model;
mod parse;

use proc_macro2::TokenStream;

/// Expands the macro; every problem found becomes a `compile_error!` on its
/// span. With errors, the struct is still emitted with its defaults, so the
/// user sees the mistakes in the macro, not a cascade where it is used.
pub fn expand(input: TokenStream) -> TokenStream {
    let raw = match syn::parse2::<parse::Input>(input) {
        Ok(raw) => raw,
        Err(err) => return err.into_compile_error(),
    };
    let (model, errors) = model::Model::validate(raw);
    let code = expand::expand(&model);
    match errors {
        Some(errors) => {
            let errors = errors.write_errors();
            quote::quote! { #errors #code }
        }
        None => code,
    }
}

#[cfg(test)]
mod tests;
