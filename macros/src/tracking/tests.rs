//! Snapshot tests of the expansion, and the error count of a model with many
//! mistakes (every error is reported, none is lost).

use quote::quote;

fn pretty(input: proc_macro2::TokenStream) -> String {
    let input: syn::DeriveInput = syn::parse2(input).expect("a derive input");
    let output = super::expand(&input);
    match syn::parse2::<syn::File>(output.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => output.to_string(),
    }
}

#[test]
fn minimal_entity() {
    insta::assert_snapshot!(pretty(quote! {
        #[sea_orm(table_name = "runs")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub task_key: String,
            pub status: String,
        }
    }));
}

#[test]
fn full_entity() {
    insta::assert_snapshot!(pretty(quote! {
        #[sea_orm(table_name = "task_runs")]
        #[tracking(
            crate = "::my_tasktrail",
            format_user = crate::hooks::user_label,
            redact = ["password", "token"],
            max_payload_bytes = 4096,
            progress_sets_message
        )]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            #[sea_orm(unique)]
            pub task_id: String,
            pub task_name: String,
            #[tracking(status, label = "State")]
            pub state: RunState,
            pub message: Option<String>,
            #[tracking(progress)]
            pub percent: Option<f32>,
            pub user_label: Option<String>,
            pub affected_objects: Option<String>,
            pub task_args: Option<Json>,
            pub task_kwargs: Option<Json>,
            pub result_payload: Option<Json>,
            pub cleaned_up: bool,
            pub created_at: DateTimeUtc,
            pub updated_at: DateTimeUtc,
            pub started_at: Option<DateTimeUtc>,
            pub completed_at: Option<DateTimeUtc>,
            pub failed_at: Option<DateTimeUtc>,
            #[tracking(extra = "tenant")]
            #[sea_orm(enum_name = "TenantId")]
            pub tenant: Option<String>,
            #[tracking(skip)]
            pub status_note: Option<String>,
            #[sea_orm(ignore)]
            pub cache: Vec<u8>,
        }
    }));
}

#[test]
fn model_ex_is_skipped() {
    assert_eq!(
        pretty(quote! {
            pub struct ModelEx { pub task_key: String, pub status: String }
        }),
        ""
    );
}

#[test]
fn every_error_is_reported() {
    let out = pretty(quote! {
        #[tracking(max_payload_bytes = 0, redact = ["", "a", "A"])]
        pub struct Model {
            #[tracking(key, status)]
            pub a: String,
            #[tracking(skip, extra = "x")]
            pub b: String,
            #[tracking(label = "")]
            pub c: String,
        }
    });
    let errors = out.matches("compile_error").count();
    // `status` beside `key` on one field, `skip` with `extra`, the empty
    // label, the missing status role (the conflicting flag is not taken),
    // the zero cap, the empty redact key and the duplicate redact key.
    assert_eq!(errors, 7, "{out}");
}

/// The `compile_error!` messages of an expansion, in order.
fn messages(input: proc_macro2::TokenStream) -> Vec<String> {
    fn walk(tokens: proc_macro2::TokenStream, out: &mut Vec<String>) {
        let tokens: Vec<_> = tokens.into_iter().collect();
        for (i, tt) in tokens.iter().enumerate() {
            match tt {
                proc_macro2::TokenTree::Ident(id) if id == "compile_error" => {
                    if let Some(proc_macro2::TokenTree::Group(g)) = tokens.get(i + 2)
                        && let Ok(lit) = syn::parse2::<syn::LitStr>(g.stream())
                    {
                        out.push(lit.value());
                    }
                }
                proc_macro2::TokenTree::Group(g) => walk(g.stream(), out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(
        {
            let input: syn::DeriveInput = syn::parse2(input).expect("a derive input");
            super::expand(&input)
        },
        &mut out,
    );
    out
}

#[test]
fn options_in_the_wrong_place_say_where_they_belong() {
    let found = messages(quote! {
        #[tracking(status = "state", hoks = custom)]
        pub struct Model {
            pub task_key: String,
            pub state: String,
            #[tracking(redact = ["password"], ignore)]
            pub task_args: Option<Json>,
            #[tracking(role = "message", label = Note)]
            pub note: Option<String>,
            #[tracking(unique)]
            pub code: String,
        }
    });
    // darling reads the fields' attributes before the struct's.
    assert_eq!(
        found,
        [
            "`redact` is an option of the struct's `#[tracking(…)]`, not of a field: move it to the `#[tracking(…)]` above the struct",
            "to leave a field unmapped write `#[tracking(skip)]` (`ignore` is sea-orm's: `#[sea_orm(ignore)]` is a field with no column)",
            "`label` takes a string: write `label = \"Note\"`",
            "write the role itself: `#[tracking(message)]`",
            "`unique` is a sea-orm option: write it in `#[sea_orm(…)]`",
            "`status` is a role, written on the field it applies to: put `#[tracking(status)]` above `state` and remove it here",
            "`hoks` is not an option of the struct's `#[tracking(…)]`; did you mean `hooks`?",
        ],
    );
}

#[test]
fn attribute_forms_are_read_as_meant() {
    let found = messages(quote! {
        pub struct Model {
            pub task_key: String,
            #[tracking = "status"]
            pub state: String,
            #[tracking("message")]
            pub note: Option<String>,
        }
    });
    assert_eq!(
        found,
        [
            "write `#[tracking(status)]`: options go in parentheses",
            "write `message` without quotes: `#[tracking(message)]`",
        ]
    );
}

#[test]
fn the_runtime_status_enum_as_a_column_is_refused_first() {
    let found = messages(quote! {
        pub struct Model {
            pub task_key: String,
            pub status: Option<tasktrail::Status>,
        }
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("`tasktrail::Status` is not a type sea-orm can store"));
    // A bare `Status` may be the user's own `ActiveEnum`.
    assert!(
        messages(quote! {
            pub struct Model { pub task_key: String, pub status: Status }
        })
        .is_empty()
    );
}

// Regressions found by the property test (`fuzz_tests`), each its shrunk
// input as it stands.

#[test]
fn a_field_without_a_column_variant_is_an_error_not_a_panic() {
    // `_` in UpperCamelCase is empty: `Ident::new("", …)` panicked.
    let found = messages(quote! {
        struct Model { _ : String , }
    });
    assert_eq!(
        found[0],
        "`_` has no sea-orm `Column` variant: its name in UpperCamelCase is empty; name the variant with `#[sea_orm(enum_name = \"…\")]` or rename the field"
    );
    // A variant that starts with a digit, and an `enum_name` with a space.
    let found = messages(quote! {
        struct Model {
            _1x: String,
            #[sea_orm(enum_name = "a b")]
            note: String,
        }
    });
    assert!(found[0].contains("is `1x`, not an identifier"), "{found:?}");
    assert_eq!(
        found[1],
        "`enum_name = \"a b\"` is not an identifier: sea-orm names `note`'s `Column` variant with it"
    );
}

#[test]
fn a_generic_path_in_a_string_gets_a_turbofish() {
    // `a<T>::__private::Option::Some(…)` in an expression read as chained
    // comparisons: the expansion did not parse, and no error said why.
    let input = quote! {
        # [tracking (crate = "a<T>")] struct Model { task_key : String , status : String , }
    };
    let output = {
        let input: syn::DeriveInput = syn::parse2(input).expect("a derive input");
        super::expand(&input)
    };
    assert!(syn::parse2::<syn::File>(output.clone()).is_ok(), "{output}");
    assert!(
        output
            .to_string()
            .contains("a :: < T > :: __private :: Option"),
        "{output}"
    );
}
