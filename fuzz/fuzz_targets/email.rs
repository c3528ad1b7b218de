//! `Email::parse`: never panics; what it accepts is ASCII, at most 254 characters, has one
//! domain in lower case, parses again to itself, and its masked form hides the local part.
#![no_main]

use dcbhub_domain::Email;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(email) = Email::parse(text) else {
        return;
    };
    let stored = email.as_str();
    assert!(stored.len() <= 254 && stored.is_ascii());
    assert!(stored.eq_ignore_ascii_case(text));
    let domain = email.domain();
    assert!(!domain.is_empty());
    assert_eq!(domain, domain.to_ascii_lowercase());
    assert_eq!(format!("{}@{}", email.local_part(), domain), stored);
    assert_eq!(Email::parse(stored).as_ref(), Ok(&email));
    let masked = email.to_string();
    let (shown_local, shown_domain) = masked.split_once("***@").expect("a masked email");
    assert_eq!(shown_domain, domain);
    assert!(shown_local.chars().count() <= 1, "{masked}");
});
