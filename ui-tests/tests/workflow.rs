//! Compile-pass and compile-fail cases of `#[errand::workflow]`,
//! `#[dag_step]` and `#[step]`.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p errand-ui-tests --test workflow`
//! and read every one of them: each is the message a user will see.

#[test]
fn workflow() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/workflow/pass/*.rs");
    cases.compile_fail("tests/workflow/fail/*.rs");
}
