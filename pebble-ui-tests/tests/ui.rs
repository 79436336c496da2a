//! Compile-time promises: each file in tests/ui must fail to compile with
//! the committed message (regenerate with `TRYBUILD=overwrite cargo test -p pebble-ui-tests`
//! and review the diff).

#[test]
fn mistakes_that_would_leak_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
