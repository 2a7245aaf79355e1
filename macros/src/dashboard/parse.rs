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
    /// Mistakes in the punctuation that were read past (`;` for `,`, a
    /// quoted key, a missing comma), so the entries are still checked.
    pub errors: Vec<syn::Error>,
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
        let mut errors = Vec::new();
        while !body.is_empty() {
            let key = if body.peek(syn::LitStr) {
                // `"title": …`, the JSON habit: reported, then read as the key.
                let lit: syn::LitStr = body.parse()?;
                let name = lit.value();
                errors.push(syn::Error::new(
                    lit.span(),
                    format!("write the key without quotes: `{name}: …`"),
                ));
                // `set_span`, not `Ident::new`, which panics on `"r#type"`.
                syn::parse_str::<Ident>(&name)
                    .map(|mut i| {
                        i.set_span(lit.span());
                        i
                    })
                    .map_err(|_| syn::Error::new(lit.span(), "expected a key such as `title`"))?
            } else {
                body.call(syn::ext::IdentExt::parse_any)?
            };
            if body.is_empty() || body.peek(Token![,]) {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "`{key}` needs a value: write `{key}: {}`",
                        super::model::example(&key.to_string())
                    ),
                ));
            }
            body.parse::<Token![:]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("expected `:` after `{key}`: write `{key}: value`"),
                )
            })?;
            let mut value = TokenStream::new();
            let mut last = None;
            while !body.is_empty() && !body.peek(Token![,]) {
                if body.peek(Token![;]) {
                    // Read as a separator, so the keys after it are checked too.
                    let semi: Token![;] = body.parse()?;
                    errors.push(syn::Error::new(
                        semi.span,
                        "expected `,` here: keys are separated by commas, not `;`",
                    ));
                    break;
                }
                if let Some(last) = last
                    && starts_entry(&body)
                {
                    // `title: "Tasks"` then a new line with `page_size: 20`:
                    // the comma between them was left out.
                    errors.push(syn::Error::new(
                        last,
                        format!(
                            "expected `,` after the value of `{key}`: keys are separated by commas"
                        ),
                    ));
                    break;
                }
                let tt: proc_macro2::TokenTree = body.parse()?;
                last = Some(tt.span());
                value.extend([tt]);
            }
            if value.is_empty() {
                return Err(syn::Error::new(key.span(), format!("`{key}` has no value")));
            }
            entries.push(Entry { key, value });
            if body.peek(Token![,]) {
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
            errors,
        })
    }
}

/// Whether the input continues with `name:` (not `name::`), the start of
/// the next entry.
fn starts_entry(input: ParseStream) -> bool {
    input.peek(Ident) && input.peek2(Token![:]) && !input.peek2(Token![::])
}
