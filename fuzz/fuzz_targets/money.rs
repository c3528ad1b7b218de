//! `Money::parse` (the decimal grammar of API.md §1) against a reference written here:
//! `^(0|[1-9][0-9]*)(\.[0-9]+)?$`, no more fraction digits than the currency's minor unit,
//! above zero, within `i64` minor units. The first byte picks the currency. Also the JSON
//! path: an `amount` given as a JSON number must mean the same as the same text as a string.
#![no_main]

use dcbhub_domain::{AmountLiteral, Currency, Money};
use libfuzzer_sys::fuzz_target;

const CURRENCIES: [&str; 6] = ["GBP", "JPY", "KWD", "EUR", "CLF", "BHD"];

/// The exact value in minor units, or `None` where the contract refuses the literal.
fn reference(literal: &str, minor_unit: u32) -> Option<i64> {
    let (int_part, frac_part) = match literal.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (literal, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int_part) || (int_part.len() > 1 && int_part.starts_with('0')) {
        return None;
    }
    let frac = match frac_part {
        Some(f) if digits(f) => f,
        Some(_) => return None,
        None => "",
    };
    if frac.len() > minor_unit as usize {
        return None;
    }
    let mut value: u128 = 0;
    for b in int_part.bytes().chain(frac.bytes()) {
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    for _ in frac.len()..minor_unit as usize {
        value = value.checked_mul(10)?;
    }
    i64::try_from(value).ok().filter(|v| *v > 0)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(literal) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(currency) = Currency::parse(CURRENCIES[usize::from(pick) % CURRENCIES.len()]) else {
        return;
    };
    let parsed = Money::parse(literal, currency);
    let expected = reference(literal, u32::from(currency.minor_unit()));
    assert_eq!(
        parsed.as_ref().ok().map(|m| m.amount().get()),
        expected,
        "{literal:?} in {}",
        currency.code()
    );
    if let Ok(money) = parsed {
        assert_eq!(
            Money::parse(&money.to_decimal_string(), currency),
            Ok(money)
        );
    }
    // The same text as a JSON number, where it is one: read from its literal, never a float.
    let bare_number = literal
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'-')
        && !literal.bytes().any(|b| b.is_ascii_whitespace());
    if !bare_number {
        return;
    }
    if let Ok(from_number) =
        serde_json::from_str::<AmountLiteral>(literal).map(|a| a.to_money(currency))
    {
        assert_eq!(from_number.ok().map(|m| m.amount().get()), expected);
    }
});
