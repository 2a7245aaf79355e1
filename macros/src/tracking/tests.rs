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
