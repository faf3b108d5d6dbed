//! Compile-fail cases of the capability checks: asking a backend for
//! something it cannot do is a compile error naming the backend and the
//! capability.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p errand-ui-tests --test capability`
//! and read every one of them: each is the message a user will see.

#[test]
fn capability() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/capability/fail/*.rs");
}
