//! `Msisdn::parse`: never panics; what it accepts is strict E.164 and round-trips; its masked
//! forms never show more than the last four digits.
#![no_main]

use dcbhub_domain::Msisdn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(msisdn) = Msisdn::parse(text) else {
        return;
    };
    assert_eq!(msisdn.as_str(), text);
    let digits = msisdn.digits();
    assert!((8..=15).contains(&digits.len()));
    assert!(digits.bytes().all(|b| b.is_ascii_digit()));
    assert!(!digits.starts_with('0'));
    assert_eq!(Msisdn::parse(msisdn.as_str()).as_ref(), Ok(&msisdn));
    let shown = msisdn.to_string();
    assert_eq!(shown.len(), text.len());
    assert!(shown.bytes().filter(u8::is_ascii_digit).count() <= 4);
    let debug = format!("{msisdn:?}");
    assert!(
        debug.bytes().filter(u8::is_ascii_digit).count() <= 4,
        "{debug}"
    );
});
