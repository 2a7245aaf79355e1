//! Procedural macros for [tasktrail](https://docs.rs/tasktrail). Use them
//! through the `tasktrail` crate, which re-exports them; the generated code
//! names the runtime only through `::tasktrail::__private` (or the path given
//! with `#[tracking(crate = "…")]`).

#![forbid(unsafe_code)]

mod dashboard;
#[cfg(test)]
mod fuzz_tests;
mod tracking;

use proc_macro::TokenStream;

/// Derives `tasktrail::TrackingConfig` for a sea-orm `Model`: see the
/// field-mapping reference in tasktrail's guide.
#[proc_macro_derive(TrackingConfig, attributes(tracking))]
pub fn derive_tracking_config(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    tracking::expand(&input).into()
}

/// The implementation of `tasktrail::dashboard!`; use that macro, which
/// passes the runtime's path (`$crate`) to this one.
#[doc(hidden)]
#[proc_macro]
pub fn dashboard(input: TokenStream) -> TokenStream {
    dashboard::expand(input.into()).into()
}
