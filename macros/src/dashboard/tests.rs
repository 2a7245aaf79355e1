//! Snapshot of the expansion, and every error of a configuration with many
//! mistakes reported at once.

use quote::quote;

fn expand(input: proc_macro2::TokenStream) -> String {
    let output = super::expand(input);
    match syn::parse2::<syn::File>(output.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => output.to_string(),
    }
}

#[test]
fn full_configuration() {
    insta::assert_snapshot!(expand(quote! {
        ::tasktrail;
        /// The operations dashboard.
        pub struct OpsDashboard<crate::task_run::Entity> {
            title: "Background tasks",
            header_title: "Ops",
            description: "Imports, reports and newsletters",
            url_prefix: "/ops/tasks",
            accent_colour: "#0f766e",
            page_size: 25,
            poll_interval: 10s,
            columns: [task_name, status, percent, user_label, created_at],
            filters: [status, task_name],
            search: [task_name, message],
            sort: created_at desc,
            actions: [cancel, retry, delete],
            retention_days: 30,
            time_zone: "+02:00",
            read_only: false,
        }
    }));
}

#[test]
fn minimal_configuration() {
    insta::assert_snapshot!(expand(quote! {
        ::tasktrail;
        struct Dash<task_run::Entity> {}
    }));
}

#[test]
fn every_mistake_is_reported() {
    let output = super::expand(quote! {
        ::tasktrail;
        pub struct Dash<task_run::Entity> {
            titel: "x",
            title: 3,
            url_prefix: "ops/",
            accent_colour: "blue",
            page_size: 0,
            poll_interval: 10,
            columns: [],
            actions: [cancel, archive],
            sort: created_at sideways,
            time_zone: "Mars/Olympus",
            read_only: yes,
            filters: [status, status],
            title: "again",
        }
    })
    .to_string();
    let count = output.matches("compile_error").count();
    assert_eq!(count, 13, "{output}");
    // The struct is still generated, so uses of it do not cascade.
    assert!(output.contains("struct Dash"), "{output}");
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
    walk(super::expand(input), &mut out);
    out
}

#[test]
fn punctuation_mistakes_are_read_past() {
    let found = messages(quote! {
        ::tasktrail;
        pub struct Dash<task_run> {
            "title": "Tasks";
            page_size: 20
            actions: ["cancel", "retry"],
        }
    });
    assert_eq!(
        found,
        [
            "write the key without quotes: `title: …`",
            "expected `,` here: keys are separated by commas, not `;`",
            "expected `,` after the value of `page_size`: keys are separated by commas",
            "`task_run` is a module: `dashboard!` takes the entity in it, `struct Dash<task_run::Entity>`",
            "actions are written without quotes: `actions: [cancel, retry]` (the actions are `cancel`, `retry` and `delete`)",
        ]
    );
}

#[test]
fn the_suggested_entity_is_used() {
    let output = super::expand(quote! {
        ::tasktrail;
        #[derive(Debug, Eq)]
        pub struct Dash<task_run::Model> {}
    })
    .to_string();
    assert!(output.contains("task_run :: Entity as"), "{output}");
    // `Debug` is refused (and dropped), `Eq` is kept.
    assert!(output.contains("# [derive (Eq)]"), "{output}");
}

// Regressions found by the property test (`fuzz_tests`), each its shrunk
// input as it stands.

#[test]
fn a_quoted_raw_key_is_read_without_panicking() {
    // `Ident::new("r#type", …)` panicked.
    let found = messages(quote! {
        ::tasktrail;
        struct Ops<task_run::Entity> { "r#type" }
    });
    assert_eq!(found, ["`r#type` needs a value: write `r#type: …`"]);
}

#[test]
fn a_duration_past_u64_milliseconds_is_refused() {
    // `n * 60` overflowed (a panic in debug builds, a wrong duration in
    // release ones).
    let found = messages(quote! {
        ::tasktrail;
        struct Ops<task_run::Entity> { poll_interval: 18446744073709551615m, title: "Tasks", }
    });
    assert_eq!(
        found,
        ["`poll_interval: 18446744073709551615m` is too long: at most `307445734561825m`"]
    );
    // The longest of each unit is still read.
    assert!(
        messages(quote! {
            ::tasktrail;
            struct Ops<task_run::Entity> {
                poll_interval: 307445734561825m,
                stuck_after: 18446744073709551615ms,
            }
        })
        .is_empty()
    );
}

#[test]
fn a_keyword_as_a_field_name_is_refused() {
    // `columns: [fn]` generated `model.fn`, which does not parse, and no
    // error said why.
    let found = messages(quote! {
        ::tasktrail;
        struct Ops<task_run::Entity> { columns: [fn], }
    });
    assert_eq!(
        found,
        ["`fn` is a keyword: a field called `fn` is written `r#fn`"]
    );
    let found = messages(quote! {
        ::tasktrail;
        struct Ops<task_run::Entity> { search: [_, r#type], sort: self desc }
    });
    assert_eq!(
        found,
        ["`_` is not a field name", "`self` is not a field name"]
    );
}
