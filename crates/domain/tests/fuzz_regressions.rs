//! Inputs the fuzzers in `fuzz/` found (docs/FUZZING.md), kept as regression tests.

use dcbhub_domain::Email;

/// fuzz target `email`: `" <E.p@xa.a>"` (an empty display name and angle brackets) was
/// accepted and stored as `E.p@xa.a`, but the contract takes a bare addr-spec only (API.md §1).
#[test]
fn email_with_angle_brackets_is_refused() {
    for input in [" <E.p@xa.a>", " <ann@example.com>"] {
        assert!(
            Email::parse(input).is_err(),
            "{input:?} is not an addr-spec and must be refused"
        );
    }
}
