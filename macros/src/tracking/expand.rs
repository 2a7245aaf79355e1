//! Code generation from the validated model. Reads only the model; names the
//! runtime only through `#krate::__private`.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{Field, Hooks, Model};
use super::roles::Kind;

/// The runtime's type-check trait for a kind of role, the label of its
/// error, and what a value of the role is called.
fn kind_check(kind: Kind) -> (&'static str, &'static str, &'static str, &'static str) {
    match kind {
        Kind::Key => (
            "key",
            "KeyField",
            "a run's key",
            "the `key` column must be a `String`",
        ),
        Kind::Text => (
            "text",
            "TextField",
            "text",
            "this role needs `String` or `Option<String>`",
        ),
        Kind::Status => (
            "status",
            "StatusField",
            "a run's status",
            "the `status` column must be `String` or an `ActiveEnum` that implements `tasktrail::TrackedStatus`",
        ),
        Kind::Progress => (
            "progress",
            "ProgressField",
            "a run's progress",
            "`progress` must be a number (`f32`, `f64`, `i16`, `i32`, `i64`), text (`String`) or `Json`, optionally in `Option`",
        ),
        Kind::Payload => (
            "payload",
            "PayloadField",
            "a JSON payload",
            "payload roles (`args`, `kwargs`, `result`) need `Json` or `String`, optionally in `Option`",
        ),
        Kind::Time => (
            "time",
            "TimestampField",
            "a timestamp",
            "timestamps must be chrono date-times: `DateTimeUtc`, `DateTimeWithTimeZone` or `DateTime` (naive, UTC), optionally in `Option`",
        ),
        Kind::Flag => (
            "flag",
            "FlagField",
            "the cleaned-up flag",
            "`cleaned` must be `bool` or `Option<bool>`",
        ),
    }
}

fn binding(krate: &syn::Path, field: &Field) -> Option<TokenStream> {
    let role = field.role?;
    let ty = &field.ty;
    let variant = &field.variant;
    let role_variant = format_ident!("{}", role.variant);
    let p = quote!(#krate::__private);
    let (ctor, check, what, label) = kind_check(role.kind);
    let ctor = format_ident!("{ctor}");
    // Spanned on the field's type: a type that cannot play the role is one
    // error, pointing at the type.
    let bind = if field.by_name {
        // The user did not write this role: the error says where it came
        // from and how to leave the field out.
        let check = format_ident!("{check}");
        let name = &field.name;
        let message = format!(
            "`{{Self}}` cannot hold {what}: a field called `{name}` plays the role `{}`",
            role.name
        );
        let note = format!(
            "to keep `{name}` out of tracking, mark it `#[tracking(skip)]`; to use it as the `{}`, change its type",
            role.name
        );
        quote_spanned! {ty.span()=>
            {
                #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
                trait ByName: #p::#check {}
                impl<T: #p::#check> ByName for T {}
                fn bind<T: ByName>(column: Column) -> #p::Binding<Column> {
                    #p::bind::#ctor::<T, Column>(column)
                }
                bind::<#ty>(Column::#variant)
            }
        }
    } else {
        quote_spanned! {ty.span()=>
            #p::bind::#ctor::<#ty, Column>(Column::#variant)
        }
    };
    Some(quote! {
        #p::Role::#role_variant => #p::Option::Some(#bind),
    })
}

fn field_info(krate: &syn::Path, field: &Field) -> TokenStream {
    let name = &field.name;
    let variant = &field.variant;
    let label = &field.label;
    let role = match field.role {
        Some(r) => {
            let v = format_ident!("{}", r.variant);
            quote!(#krate::__private::Option::Some(#krate::__private::Role::#v))
        }
        None => quote!(#krate::__private::Option::None),
    };
    let extra = match &field.extra {
        Some(e) => quote!(#krate::__private::Option::Some(#e)),
        None => quote!(#krate::__private::Option::None),
    };
    quote! {
        #krate::__private::FieldInfo {
            field: #name,
            column: Column::#variant,
            label: #label,
            role: #role,
            extra: #extra,
        }
    }
}

fn format_hooks(model: &Model) -> TokenStream {
    let krate = &model.krate;
    let ident = &model.ident;
    let Hooks::Generated {
        format_user,
        format_objects,
        format_payload,
    } = &model.hooks
    else {
        return TokenStream::new();
    };
    let p = quote!(#krate::__private);
    let user = format_user.as_ref().map(|path| {
        let call = quote_spanned!(path.span()=> #path(user));
        quote! {
            fn format_user(user: #p::Option<&dyn #p::Actor>) -> #p::String { #call }
        }
    });
    let objects = format_objects.as_ref().map(|path| {
        let call = quote_spanned!(path.span()=> #path(objects));
        quote! {
            fn format_objects(objects: &[&dyn #p::TrackedObject]) -> #p::String { #call }
        }
    });
    let payload = format_payload.as_ref().map(|path| {
        let call = quote_spanned!(path.span()=> #path(kind, value));
        quote! {
            fn format_payload(kind: #p::PayloadKind, value: #p::JsonValue) -> #p::JsonValue { #call }
        }
    });
    quote! {
        #[automatically_derived]
        impl #p::FormatHooks for #ident {
            #user
            #objects
            #payload
        }
    }
}

fn tracker_alias(vis: &syn::Visibility, krate: &syn::Path, ident: &syn::Ident) -> TokenStream {
    let doc = format!(
        " The lifecycle manager of [`{ident}`], generated by `#[derive(TrackingConfig)]`:\n \
         `Tracker::new(db)` records this entity's runs."
    );
    quote! {
        #[doc = #doc]
        #vis type Tracker = #krate::__private::Tracker<#ident>;
    }
}

/// `Entity` and `Column` for a struct that has none beside it: a glob
/// import, so the ones sea-orm's `DeriveEntityModel` generates take
/// precedence wherever they exist. Where they do not (the derive is on a
/// plain struct), the generated code still resolves, and `model_check`
/// makes the first error say where the derive belongs instead of a row of
/// "cannot find type `Entity`".
fn fallback_names(ident: &syn::Ident, variants: &[&syn::Ident]) -> TokenStream {
    // Named so that the errors that follow `model_check`'s read plainly.
    let module = format_ident!("__tasktrail_no_entity_beside_{}", ident);
    quote! {
        #[doc(hidden)]
        #[allow(non_snake_case, dead_code, unreachable_pub)]
        mod #module {
            pub struct Entity {}
            pub enum Column { #(#variants),* }
        }
        #[allow(unused_imports)]
        use #module::*;
    }
}

/// Fails to compile, with a message on the struct's name, unless `Entity`
/// is a sea-orm entity (so when it is `fallback_names`' stand-in). Emitted
/// before the impls, so its error comes first.
fn model_check(krate: &syn::Path, ident: &syn::Ident) -> TokenStream {
    let message = format!(
        "`#[derive(TrackingConfig)]` goes on a sea-orm entity's `Model`, and `{ident}` is not one"
    );
    let label = format!("no sea-orm `Entity` and `Column` beside `{ident}`");
    let note = "derive it on the `Model` of an entity module, next to sea-orm's derive: `#[derive(Clone, Debug, PartialEq, DeriveEntityModel, TrackingConfig)]`";
    let check = quote_spanned! {ident.span()=>
        #[allow(dead_code)]
        fn check() where Entity: SeaOrmEntity {}
    };
    quote! {
        const _: () = {
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
            trait SeaOrmEntity {}
            // Not recommended: the error is this trait's message, without
            // rustc listing every type that implements `EntityTrait`.
            #[diagnostic::do_not_recommend]
            impl<E: #krate::__private::EntityTrait> SeaOrmEntity for E {}
            #check
        };
    }
}

pub fn expand(model: &Model) -> TokenStream {
    let krate = &model.krate;
    let ident = &model.ident;
    let p = quote!(#krate::__private);
    let fields = model.fields.iter().map(|f| field_info(krate, f));
    // A `use` path takes no generic arguments (a crate path written with
    // some fails elsewhere, with its own error; this must still parse).
    let mut use_krate = krate.clone();
    for segment in &mut use_krate.segments {
        segment.arguments = syn::PathArguments::None;
    }
    let types = model.fields.iter().enumerate().map(|(i, f)| {
        let ty = &f.ty;
        quote!(#i => (&&#p::TypeProbe::<#ty>::new()).field_type(),)
    });
    let bindings = model.fields.iter().filter_map(|f| binding(krate, f));
    let redact = &model.redact;
    let max = match model.max_payload_bytes {
        Some(n) => quote!(#n),
        None => quote!(#p::DEFAULT_MAX_PAYLOAD_BYTES),
    };
    let progress_sets_message = model.progress_sets_message;
    let hooks = format_hooks(model);
    let alias = tracker_alias(&model.vis, krate, ident);
    let variants: Vec<&syn::Ident> = model.fields.iter().map(|f| &f.variant).collect();
    let names = fallback_names(ident, &variants);
    let check = model_check(krate, ident);

    quote! {
        #names
        #check

        #[automatically_derived]
        impl #p::TrackingConfig for #ident {
            type Entity = Entity;

            const FIELDS: &'static [#p::FieldInfo<Column>] = &[#(#fields),*];

            const OPTIONS: #p::TrackingOptions = #p::TrackingOptions {
                redact: &[#(#redact),*],
                max_payload_bytes: #max,
                progress_sets_message: #progress_sets_message,
            };

            fn binding(role: #p::Role) -> #p::Option<#p::Binding<Column>> {
                match role {
                    #(#bindings)*
                    _ => #p::Option::None,
                }
            }

            fn field_type(index: usize) -> #p::FieldType {
                #[allow(unused_imports)]
                use #use_krate::__private::{KnownType as _, OtherType as _};
                match index {
                    #(#types)*
                    _ => #p::FieldType(#p::ValueClass::Other, false),
                }
            }
        }

        #hooks

        #alias
    }
}

/// What is emitted beside the errors when the input is a named struct: the
/// impls with empty bodies, so the errors are not followed by "trait not
/// implemented" everywhere the model is used.
pub fn fallback(input: &syn::DeriveInput) -> TokenStream {
    let syn::Data::Struct(syn::DataStruct {
        fields: syn::Fields::Named(_),
        ..
    }) = &input.data
    else {
        return TokenStream::new();
    };
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    // Only with the default crate path: a wrong `crate = …` is one of the errors.
    let (has_crate, custom_hooks) = struct_options(input);
    if has_crate {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let hooks = if custom_hooks {
        TokenStream::new()
    } else {
        quote!(impl ::tasktrail::__private::FormatHooks for #ident {})
    };
    let krate: syn::Path = syn::parse_quote!(::tasktrail);
    let alias = tracker_alias(&input.vis, &krate, ident);
    let names = fallback_names(ident, &[]);
    let check = model_check(&krate, ident);
    quote! {
        #names
        #check
        impl ::tasktrail::__private::TrackingConfig for #ident {
            type Entity = Entity;
            const FIELDS: &'static [::tasktrail::__private::FieldInfo<Column>] = &[];
            const OPTIONS: ::tasktrail::__private::TrackingOptions = ::tasktrail::__private::TrackingOptions {
                redact: &[],
                max_payload_bytes: ::tasktrail::__private::DEFAULT_MAX_PAYLOAD_BYTES,
                progress_sets_message: false,
            };
            fn binding(_: ::tasktrail::__private::Role) -> ::core::option::Option<::tasktrail::__private::Binding<Column>> {
                ::core::option::Option::None
            }
        }
        #hooks
        #alias
    }
}

/// Whether the struct's `#[tracking(…)]` sets `crate`, and whether any
/// `#[tracking(…)]` says `custom` (`hooks = custom`, or the same misspelt or
/// misplaced: the user then has an `impl FormatHooks` a stub would
/// conflict with), read leniently (the attribute may be malformed).
fn struct_options(input: &syn::DeriveInput) -> (bool, bool) {
    let mut has_crate = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("tracking")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                has_crate = true;
            }
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _: proc_macro2::Group = meta.input.parse()?;
            }
            Ok(())
        });
    }
    let fields = match &input.data {
        syn::Data::Struct(s) => s.fields.iter().flat_map(|f| &f.attrs).collect(),
        _ => Vec::new(),
    };
    let custom = input
        .attrs
        .iter()
        .chain(fields)
        .filter(|a| a.path().is_ident("tracking"))
        .any(|a| says_custom(a.meta.to_token_stream()));
    (has_crate, custom)
}

fn says_custom(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        proc_macro2::TokenTree::Ident(i) => i == "custom",
        proc_macro2::TokenTree::Literal(l) => l.to_string() == "\"custom\"",
        proc_macro2::TokenTree::Group(g) => says_custom(g.stream()),
        proc_macro2::TokenTree::Punct(_) => false,
    })
}
