//! Compile-pass and compile-fail cases of `#[errand::job]`.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p errand-ui-tests --test job`
//! and read every one of them: each is the message a user will see.

#[test]
fn job() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/job/pass/*.rs");
    cases.compile_fail("tests/job/fail/*.rs");
}
