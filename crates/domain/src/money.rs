use std::fmt;

use serde::de::{self, Deserialize, Deserializer};

use crate::{Currency, ParseError};

/// An amount in the smallest unit of its currency (pence, yen, fils). Arithmetic is
/// checked: an overflow is an error, never a wrap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MinorUnits(i64);

impl MinorUnits {
    pub const ZERO: Self = Self(0);

    pub const fn new(value: i64) -> Self {
        Self(value)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    pub fn checked_mul(self, factor: i64) -> Option<Self> {
        self.0.checked_mul(factor).map(Self)
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

/// A positive amount of money in one currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: MinorUnits,
    currency: Currency,
}

const FIELD: &str = "amount";

impl Money {
    /// Builds from minor units; refuses zero and negative amounts.
    pub fn from_minor(amount: MinorUnits, currency: Currency) -> Result<Self, ParseError> {
        if !amount.is_positive() {
            return Err(ParseError::new(FIELD, "must be greater than zero"));
        }
        Ok(Self { amount, currency })
    }

    /// Rebuilds stored money: minor units and an ISO 4217 code.
    pub fn from_stored(minor: i64, currency: &str) -> Result<Self, ParseError> {
        Self::from_minor(MinorUnits(minor), Currency::parse(currency)?)
    }

    /// Parses the contract's decimal grammar `^(0|[1-9][0-9]*)(\.[0-9]+)?$` exactly, with no
    /// more fraction digits than the currency's minor unit, and a result above zero.
    pub fn parse(literal: &str, currency: Currency) -> Result<Self, ParseError> {
        let amount = parse_decimal(literal, currency.minor_unit())?;
        Self::from_minor(amount, currency)
    }

    pub fn amount(&self) -> MinorUnits {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The decimal form with exactly the currency's fraction digits: `4.99`, `100`, `1.250`.
    pub fn to_decimal_string(&self) -> String {
        format_minor(self.amount, self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

/// Formats any amount (zero and negative too) in a currency's decimal form. Digits written by
/// hand from the right: `format!` with padding was ~1% of a charge's request thread (its
/// answer and its receipt show three amounts).
pub fn format_minor(amount: MinorUnits, currency: Currency) -> String {
    let fraction = usize::from(currency.minor_unit());
    // A sign, 20 digits, a point and the zeros of a fraction of up to 255 digits.
    let mut text = [0u8; 280];
    let mut start = text.len();
    let mut rest = amount.get().unsigned_abs();
    let mut written = 0;
    while rest > 0 || written <= fraction {
        if fraction > 0 && written == fraction {
            start -= 1;
            text[start] = b'.';
        }
        start -= 1;
        // `rest % 10` is below 10: the cast cannot truncate.
        text[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        written += 1;
    }
    if amount.get() < 0 {
        start -= 1;
        text[start] = b'-';
    }
    crate::text::ascii_string(&text[start..])
}

impl MinorUnits {
    /// The decimal form of this amount in `currency`, e.g. `"0.00"`.
    pub fn format(self, currency: Currency) -> String {
        format_minor(self, currency)
    }
}

fn parse_decimal(literal: &str, minor_unit: u8) -> Result<MinorUnits, ParseError> {
    let bad = ParseError::new(FIELD, "must be a decimal like 4.99");
    let (int_part, frac_part) = match literal.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (literal, None),
    };
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(int_part) || (int_part.len() > 1 && int_part.starts_with('0')) {
        return Err(bad);
    }
    let frac = match frac_part {
        Some(f) if !is_digits(f) => return Err(bad),
        Some(f) => f,
        None => "",
    };
    if frac.len() > usize::from(minor_unit) {
        return Err(ParseError::new(
            FIELD,
            "has more fraction digits than the currency allows",
        ));
    }
    let too_large = ParseError::new(FIELD, "is too large");
    let mut value: i64 = 0;
    let padding = usize::from(minor_unit) - frac.len();
    for b in int_part
        .bytes()
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', padding))
    {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(too_large.clone())?;
    }
    Ok(MinorUnits(value))
}

/// The text of an `amount` as the partner sent it: a JSON string, or a JSON number read from
/// its literal (never through a float). It becomes [`Money`] once the currency is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmountLiteral(String);

impl AmountLiteral {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn to_money(&self, currency: Currency) -> Result<Money, ParseError> {
        Money::parse(&self.0, currency)
    }
}

impl<'de> Deserialize<'de> for AmountLiteral {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: &serde_json::value::RawValue = Deserialize::deserialize(deserializer)?;
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(text)
                .map(AmountLiteral)
                .map_err(de::Error::custom),
            Some(b) if b.is_ascii_digit() || *b == b'-' => Ok(AmountLiteral(text.to_owned())),
            _ => Err(de::Error::invalid_type(
                de::Unexpected::Other(text),
                &"a decimal string or number",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn parses_exactly() {
        let gbp = cur("GBP");
        assert_eq!(Money::parse("4.99", gbp).unwrap().amount().get(), 499);
        assert_eq!(Money::parse("4.9", gbp).unwrap().amount().get(), 490);
        assert_eq!(Money::parse("4", gbp).unwrap().amount().get(), 400);
        assert_eq!(Money::parse("0.01", gbp).unwrap().amount().get(), 1);
        assert_eq!(Money::parse("100", cur("JPY")).unwrap().amount().get(), 100);
        assert_eq!(
            Money::parse("1.250", cur("KWD")).unwrap().amount().get(),
            1250
        );
        assert_eq!(
            Money::parse("1.25", cur("KWD"))
                .unwrap()
                .to_decimal_string(),
            "1.250"
        );
    }

    #[test]
    fn formats_with_the_minor_unit() {
        assert_eq!(
            Money::parse("4.9", cur("GBP")).unwrap().to_decimal_string(),
            "4.90"
        );
        assert_eq!(
            Money::parse("100", cur("JPY")).unwrap().to_decimal_string(),
            "100"
        );
        assert_eq!(MinorUnits::ZERO.format(cur("GBP")), "0.00");
        assert_eq!(MinorUnits::new(-5).format(cur("GBP")), "-0.05");
        assert_eq!(MinorUnits::new(7).format(cur("KWD")), "0.007");
    }

    #[test]
    fn refuses_what_the_grammar_refuses() {
        let gbp = cur("GBP");
        for bad in [
            "",
            "0",
            "0.00",
            "-1",
            "+1",
            "01",
            "1.",
            ".5",
            "1.999",
            "1e2",
            "1E2",
            " 1",
            "1 ",
            "1,00",
            "0x10",
            "NaN",
            "Infinity",
            "١",
            "99999999999999999999",
        ] {
            assert!(Money::parse(bad, gbp).is_err(), "{bad:?} should be refused");
        }
        assert!(Money::parse("1.5", cur("JPY")).is_err());
    }

    #[test]
    fn stored_money_round_trips() {
        let m = Money::parse("1.250", cur("KWD")).unwrap();
        assert_eq!(
            Money::from_stored(m.amount().get(), m.currency().code()),
            Ok(m)
        );
        assert!(Money::from_stored(0, "GBP").is_err());
        assert!(Money::from_stored(100, "XXX").is_err());
    }

    #[test]
    fn checked_arithmetic() {
        assert_eq!(
            MinorUnits::new(i64::MAX).checked_add(MinorUnits::new(1)),
            None
        );
        assert_eq!(
            MinorUnits::new(i64::MIN).checked_sub(MinorUnits::new(1)),
            None
        );
        assert_eq!(
            MinorUnits::new(5).checked_sub(MinorUnits::new(7)),
            Some(MinorUnits::new(-2))
        );
    }

    #[test]
    fn literal_from_json_string_or_number() {
        #[derive(serde::Deserialize)]
        struct Body {
            amount: AmountLiteral,
        }
        let from_number: Body = serde_json::from_str(r#"{"amount": 4.99}"#).unwrap();
        assert_eq!(from_number.amount.as_str(), "4.99");
        let from_string: Body = serde_json::from_str(r#"{"amount": "4.99"}"#).unwrap();
        assert_eq!(from_string.amount.as_str(), "4.99");
        // 0.1 + 0.2 style literals stay exact because no float is ever made.
        let exact: Body = serde_json::from_str(r#"{"amount": 0.30}"#).unwrap();
        assert_eq!(
            exact.amount.to_money(cur("GBP")).unwrap().amount().get(),
            30
        );
        let exponent: Body = serde_json::from_str(r#"{"amount": 1e2}"#).unwrap();
        assert!(exponent.amount.to_money(cur("GBP")).is_err());
        assert!(serde_json::from_str::<Body>(r#"{"amount": true}"#).is_err());
        assert!(serde_json::from_str::<Body>(r#"{"amount": null}"#).is_err());
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(minor in 1i64..=i64::MAX, code in prop::sample::select(vec!["GBP", "JPY", "KWD", "EUR", "BHD", "CLP"])) {
            let c = cur(code);
            let m = Money::from_minor(MinorUnits::new(minor), c).unwrap();
            let text = m.to_decimal_string();
            prop_assert_eq!(Money::parse(&text, c).unwrap(), m);
        }

        #[test]
        fn hand_written_digits_match_the_general_format(minor in any::<i64>(), code in prop::sample::select(vec!["GBP", "JPY", "KWD", "CLP", "BHD"])) {
            let c = cur(code);
            let digits = usize::from(c.minor_unit());
            let magnitude = minor.unsigned_abs();
            let sign = if minor < 0 { "-" } else { "" };
            let general = if digits == 0 {
                format!("{sign}{magnitude}")
            } else {
                let scale = 10u64.pow(u32::from(c.minor_unit()));
                format!("{sign}{}.{:0digits$}", magnitude / scale, magnitude % scale)
            };
            prop_assert_eq!(MinorUnits::new(minor).format(c), general);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}") {
            if let Ok(m) = Money::parse(&s, cur("GBP")) {
                prop_assert!(m.amount().is_positive());
            }
        }

        #[test]
        fn add_then_sub_is_identity(a in any::<i32>(), b in any::<i32>()) {
            let (a, b) = (MinorUnits::new(i64::from(a)), MinorUnits::new(i64::from(b)));
            prop_assert_eq!(a.checked_add(b).and_then(|s| s.checked_sub(b)), Some(a));
        }
    }
}
