//! The values `#[tracking(…)]` options take, read so that a value of the
//! wrong kind is refused with what to write instead, on the offending token.
//!
//! darling's own impls answer "Unexpected type `path`" or "Unknown value";
//! these name the option and show the form it takes, built from what the
//! user wrote where that is possible (`label = Note` → `label = "Note"`).

use darling::util::path_to_string;
use darling::{Error, FromMeta, Result};
use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Expr, Lit, Meta};

/// The span of what follows the option's name: `= value` or `(…)`.
fn value_span(item: &Meta) -> Span {
    match item {
        Meta::Path(p) => p.span(),
        Meta::List(l) => l.delimiter.span().join(),
        Meta::NameValue(nv) => nv.value.span(),
    }
}

/// An error on `span` (a `Span` is not `Spanned`, so not `with_span`).
pub fn spanned(span: Span, message: impl std::fmt::Display) -> Error {
    syn::Error::new(span, message).into()
}

/// `expr` without the invisible groups macros may wrap it in.
fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(g) => ungroup(&g.expr),
        other => other,
    }
}

/// A bare ident written where a string was meant: `label = Note`.
fn bare_ident(expr: &Expr) -> Option<String> {
    match ungroup(expr) {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident().map(|i| i.to_string()),
        _ => None,
    }
}

/// A flag: `#[tracking(skip)]`, a role such as `#[tracking(status)]`, or
/// `progress_sets_message`. It takes no value.
#[derive(Clone, Copy, Debug, Default)]
pub struct Word(Option<Span>);

impl Word {
    pub fn is_present(&self) -> bool {
        self.0.is_some()
    }

    pub fn span(&self) -> Span {
        self.0.unwrap_or_else(Span::call_site)
    }
}

impl FromMeta for Word {
    fn from_none() -> Option<Self> {
        Some(Word(None))
    }

    fn from_meta(item: &Meta) -> Result<Self> {
        if let Meta::Path(p) = item {
            return Ok(Word(Some(p.span())));
        }
        let key = path_to_string(item.path());
        let message = if super::roles::by_name(&key).is_some() {
            format!(
                "a role takes no value: `#[tracking({key})]` on a field makes that field the run's `{key}`"
            )
        } else if key == "progress_sets_message" {
            "`progress_sets_message` is a flag and takes no value: write `#[tracking(progress_sets_message)]` to turn it on, leave it out to keep it off".to_owned()
        } else {
            format!("`{key}` is a flag and takes no value: write `#[tracking({key})]`")
        };
        Err(spanned(value_span(item), message))
    }
}

/// A string option: `label = "Note"`, `extra = "tenant"`.
#[derive(Clone, Debug)]
pub struct Text {
    pub value: String,
    pub span: Span,
}

impl FromMeta for Text {
    fn from_meta(item: &Meta) -> Result<Self> {
        let key = path_to_string(item.path());
        let example = if key == "extra" { "tenant" } else { "…" };
        let message = match item {
            Meta::NameValue(nv) => match ungroup(&nv.value) {
                Expr::Lit(lit) => match &lit.lit {
                    Lit::Str(s) => {
                        return Ok(Text {
                            value: s.value(),
                            span: s.span(),
                        });
                    }
                    other => format!(
                        "`{key}` takes a string: write `{key} = \"{}\"`",
                        other.to_token_stream()
                    ),
                },
                value => match bare_ident(value) {
                    Some(ident) => format!("`{key}` takes a string: write `{key} = \"{ident}\"`"),
                    None => format!("`{key}` takes a string, e.g. `{key} = \"{example}\"`"),
                },
            },
            Meta::Path(_) if key == "extra" => {
                "`extra` needs the extra's name: write `extra = \"tenant\"`".to_owned()
            }
            Meta::Path(_) => format!("`{key}` needs a value: write `{key} = \"{example}\"`"),
            Meta::List(_) => format!("write `{key} = \"{example}\"`, not `{key}(…)`"),
        };
        Err(spanned(value_span(item), message))
    }
}

/// `redact = ["password", "token"]`; the list form `redact("password")` is
/// read too.
#[derive(Clone, Debug)]
pub struct KeyList {
    pub keys: Vec<syn::LitStr>,
    pub span: Span,
}

/// `"password"` for a string literal or a bare name, `None` otherwise.
fn as_key(expr: &Expr) -> Option<String> {
    match ungroup(expr) {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(format!("{:?}", s.value())),
        other => bare_ident(other).map(|i| format!("\"{i}\"")),
    }
}

fn redact_form(keys: &[String]) -> String {
    format!("redact = [{}]", keys.join(", "))
}

impl FromMeta for KeyList {
    fn from_meta(item: &Meta) -> Result<Self> {
        let span = value_span(item);
        let example = "`redact = [\"password\", \"token\"]`";
        match item {
            Meta::NameValue(nv) => match ungroup(&nv.value) {
                Expr::Array(array) => {
                    let mut keys = Vec::new();
                    for elem in &array.elems {
                        match ungroup(elem) {
                            Expr::Lit(syn::ExprLit {
                                lit: Lit::Str(s), ..
                            }) => keys.push(s.clone()),
                            _ => {
                                // Show the whole list as it should be written.
                                let message = match array
                                    .elems
                                    .iter()
                                    .map(as_key)
                                    .collect::<Option<Vec<_>>>()
                                {
                                    Some(all) => format!(
                                        "`redact` takes the keys as strings: write `{}`",
                                        redact_form(&all)
                                    ),
                                    None => {
                                        format!("`redact` takes a list of strings, e.g. {example}")
                                    }
                                };
                                return Err(Error::custom(message).with_span(elem));
                            }
                        }
                    }
                    Ok(KeyList { keys, span })
                }
                value => {
                    let message = match as_key(value) {
                        Some(key) => format!(
                            "`redact` takes a list, even of one key: write `{}`",
                            redact_form(&[key])
                        ),
                        None => format!("`redact` takes a list of strings, e.g. {example}"),
                    };
                    Err(Error::custom(message).with_span(value))
                }
            },
            Meta::List(list) => {
                let items = darling::ast::NestedMeta::parse_meta_list(list.tokens.clone())?;
                let mut keys = Vec::new();
                for nested in &items {
                    match nested {
                        darling::ast::NestedMeta::Lit(Lit::Str(s)) => keys.push(s.clone()),
                        other => {
                            return Err(Error::custom(format!(
                                "`redact` takes a list of strings, e.g. {example}"
                            ))
                            .with_span(other));
                        }
                    }
                }
                Ok(KeyList { keys, span })
            }
            Meta::Path(_) => Err(spanned(
                span,
                format!("`redact` needs the keys whose values are hidden, e.g. {example}"),
            )),
        }
    }
}

/// The value of a simple integer expression such as `64 * 1024`.
fn eval_int(expr: &Expr) -> Option<u128> {
    match ungroup(expr) {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().ok(),
        Expr::Paren(p) => eval_int(&p.expr),
        Expr::Binary(b) => {
            let (l, r) = (eval_int(&b.left)?, eval_int(&b.right)?);
            match b.op {
                syn::BinOp::Mul(_) => l.checked_mul(r),
                syn::BinOp::Add(_) => l.checked_add(r),
                syn::BinOp::Sub(_) => l.checked_sub(r),
                syn::BinOp::Shl(_) => u32::try_from(r).ok().and_then(|r| l.checked_shl(r)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `max_payload_bytes = 65536`: an integer literal (its range is checked
/// with the model).
#[derive(Clone, Debug)]
pub struct ByteCount(pub syn::LitInt);

impl FromMeta for ByteCount {
    fn from_meta(item: &Meta) -> Result<Self> {
        let key = path_to_string(item.path());
        let message = match item {
            Meta::NameValue(nv) => match ungroup(&nv.value) {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Int(i), ..
                }) => return Ok(ByteCount(i.clone())),
                value => match eval_int(value) {
                    Some(n) => format!(
                        "`{key}` takes a number written out, not an expression: write `{key} = {n}`"
                    ),
                    None => {
                        format!("`{key}` takes a number of bytes, e.g. `{key} = 65536` (64 KiB)")
                    }
                },
            },
            _ => format!("`{key}` takes a number of bytes: write `{key} = 65536` (64 KiB)"),
        };
        Err(spanned(value_span(item), message))
    }
}

/// A path option: `crate = "::tasktrail"` (a string, serde's habit) or
/// `format_user = my_hooks::user` (a path, as a string or bare).
#[derive(Clone, Debug)]
pub struct PathValue {
    pub path: syn::Path,
    pub span: Span,
}

impl FromMeta for PathValue {
    fn from_meta(item: &Meta) -> Result<Self> {
        let key = path_to_string(item.path());
        let example = if key == "crate" {
            "crate = \"::tasktrail\"".to_owned()
        } else {
            format!("{key} = crate::hooks::{key}")
        };
        let what = if key == "crate" {
            "the path of the tasktrail crate"
        } else {
            "the path of a function"
        };
        let message = match item {
            Meta::NameValue(nv) => match ungroup(&nv.value) {
                Expr::Path(p) if p.qself.is_none() => {
                    return Ok(PathValue {
                        path: p.path.clone(),
                        span: p.span(),
                    });
                }
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) => match s
                    .parse::<syn::Path>()
                    .map(|path| expression_path(path, s.span()))
                {
                    Ok(Some(path)) => {
                        return Ok(PathValue {
                            path,
                            span: s.span(),
                        });
                    }
                    _ => format!(
                        "`{:?}` is not a path: `{key}` takes {what}, e.g. `{example}`",
                        s.value()
                    ),
                },
                Expr::Closure(_) => format!(
                    "`{key}` takes {what}, not a closure: write the closure as a `fn` and name it, e.g. `{example}`"
                ),
                _ => format!("`{key}` takes {what}, e.g. `{example}`"),
            },
            _ => format!("`{key}` takes {what}: write `{example}`"),
        };
        Err(spanned(value_span(item), message))
    }
}

/// A path read from a string, as it can be written in an expression (the
/// generated code calls a hook and names the crate's items in expressions):
/// generic arguments with `::` (`a<T>` → `a::<T>`, or `a < T > x` would be
/// read as comparisons), and `None` for a path with `Fn(A) -> B` arguments,
/// which no expression can hold.
fn expression_path(mut path: syn::Path, span: Span) -> Option<syn::Path> {
    for segment in &mut path.segments {
        match &mut segment.arguments {
            syn::PathArguments::None => {}
            syn::PathArguments::AngleBracketed(args) => {
                args.colon2_token.get_or_insert(syn::Token![::](span));
            }
            syn::PathArguments::Parenthesized(_) => return None,
        }
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(tokens: proc_macro2::TokenStream) -> Meta {
        syn::parse2(tokens).expect("a meta item")
    }

    fn error<T: FromMeta + std::fmt::Debug>(tokens: proc_macro2::TokenStream) -> String {
        T::from_meta(&meta(tokens))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_flag_with_a_value_says_to_write_the_word() {
        assert_eq!(
            error::<Word>(quote::quote!(progress_sets_message = "true")),
            "`progress_sets_message` is a flag and takes no value: write `#[tracking(progress_sets_message)]` to turn it on, leave it out to keep it off"
        );
        assert!(error::<Word>(quote::quote!(key = "run_key")).starts_with("a role takes no value"));
        assert!(Word::from_meta(&meta(quote::quote!(skip))).is_ok());
    }

    #[test]
    fn text_quotes_a_bare_name() {
        assert_eq!(
            error::<Text>(quote::quote!(label = Note)),
            "`label` takes a string: write `label = \"Note\"`"
        );
        assert_eq!(
            error::<Text>(quote::quote!(extra)),
            "`extra` needs the extra's name: write `extra = \"tenant\"`"
        );
    }

    #[test]
    fn redact_shows_the_list_as_it_should_be() {
        assert_eq!(
            error::<KeyList>(quote::quote!(redact = [password, "token"])),
            "`redact` takes the keys as strings: write `redact = [\"password\", \"token\"]`"
        );
        assert_eq!(
            error::<KeyList>(quote::quote!(redact = "password")),
            "`redact` takes a list, even of one key: write `redact = [\"password\"]`"
        );
        let list = KeyList::from_meta(&meta(quote::quote!(redact("a", "b")))).expect("list form");
        assert_eq!(list.keys.len(), 2);
    }

    #[test]
    fn byte_count_evaluates_the_expression_it_refuses() {
        assert_eq!(
            error::<ByteCount>(quote::quote!(max_payload_bytes = 64 * 1024)),
            "`max_payload_bytes` takes a number written out, not an expression: write `max_payload_bytes = 65536`"
        );
        assert_eq!(eval_int(&syn::parse_quote!((1 << 10) + 1)), Some(1025));
    }

    #[test]
    fn path_value_reads_strings_and_paths_and_refuses_closures() {
        let p = PathValue::from_meta(&meta(quote::quote!(crate = "::tasktrail"))).expect("string");
        assert_eq!(p.path.to_token_stream().to_string(), ":: tasktrail");
        assert!(PathValue::from_meta(&meta(quote::quote!(format_user = a::b))).is_ok());
        assert!(error::<PathValue>(quote::quote!(format_user = |u| x)).contains("not a closure"));
    }

    #[test]
    fn a_path_string_is_read_as_an_expression_path() {
        // Found with `crate = "a<T>"` by the property test (`fuzz_tests`):
        // the generated code uses the path in expressions.
        let p = PathValue::from_meta(&meta(quote::quote!(format_user = "f<T>"))).expect("generic");
        assert_eq!(p.path.to_token_stream().to_string(), "f :: < T >");
        assert!(
            error::<PathValue>(quote::quote!(crate = "F(A) -> B")).contains("is not a path"),
            "`Fn` arguments cannot be written in an expression"
        );
    }
}
