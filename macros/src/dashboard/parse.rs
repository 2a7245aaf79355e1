//! The macro's input as written: a crate path, the struct header, and
//! `key: value` entries whose values stay raw tokens until validation.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, Path, Token, Visibility};

/// `$crate; #[attrs] vis struct Name<Entity> { key: value, … }`
pub struct Input {
    /// The runtime crate (`$crate` from the `tasktrail::dashboard!` wrapper).
    pub krate: Path,
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub entity: Path,
    pub entries: Vec<Entry>,
}

/// One `key: value`.
pub struct Entry {
    pub key: Ident,
    pub value: TokenStream,
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let krate = if input.peek(Token![$]) {
            // Not reachable through the wrapper; `$crate` arrives as an ident.
            return Err(input.error("expected the runtime crate path"));
        } else {
            Path::parse_mod_style(input)?
        };
        input.parse::<Token![;]>()?;
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `struct Name<path::to::Entity> { … }`, e.g. `pub struct Ops<task_run::Entity> { title: \"Tasks\" }`",
            )
        })?;
        let name: Ident = input.parse()?;
        let lt: Option<Token![<]> = input.parse()?;
        if lt.is_none() {
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "name the tracked entity after the struct's name: `struct {name}<task_run::Entity> {{ … }}`"
                ),
            ));
        }
        let entity = Path::parse_mod_style(input)?;
        input.parse::<Token![>]>()?;
        let body;
        syn::braced!(body in input);
        let mut entries = Vec::new();
        while !body.is_empty() {
            let key: Ident = body.call(syn::ext::IdentExt::parse_any)?;
            body.parse::<Token![:]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("expected `:` after `{key}`: write `{key}: value`"),
                )
            })?;
            let mut value = TokenStream::new();
            while !body.is_empty() && !body.peek(Token![,]) {
                let tt: proc_macro2::TokenTree = body.parse()?;
                value.extend([tt]);
            }
            if value.is_empty() {
                return Err(syn::Error::new(key.span(), format!("`{key}` has no value")));
            }
            entries.push(Entry { key, value });
            if !body.is_empty() {
                body.parse::<Token![,]>()?;
            }
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the struct's body"));
        }
        Ok(Input {
            krate,
            attrs,
            vis,
            name,
            entity,
            entries,
        })
    }
}
