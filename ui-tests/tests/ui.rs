//! Compile-fail and compile-pass cases for `#[derive(TrackingConfig)]`.
//!
//! Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p tasktrail-ui-tests`, then read every
//! `.stderr` before committing it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("fail/*.rs");
    t.pass("pass/*.rs");
}
