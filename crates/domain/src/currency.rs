use std::fmt;

use crate::ParseError;

/// An active ISO 4217 alphabetic currency code with a defined minor unit: no funds, no
/// special codes (gold, SDR, testing), no superseded codes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    inner: iso_currency::Currency,
    minor_unit: u8,
}

const FIELD: &str = "currency";

impl Currency {
    pub fn parse(code: &str) -> Result<Self, ParseError> {
        let unknown = ParseError::new(FIELD, "must be an active ISO 4217 code");
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(unknown);
        }
        let inner = iso_currency::Currency::from_code(code).ok_or(unknown.clone())?;
        if inner.is_fund() || inner.is_special() || inner.is_superseded().is_some() {
            return Err(unknown);
        }
        let minor_unit = inner
            .exponent()
            .and_then(|e| u8::try_from(e).ok())
            .ok_or(unknown)?;
        Ok(Self { inner, minor_unit })
    }

    pub fn code(&self) -> &'static str {
        self.inner.code()
    }

    /// Number of fraction digits: 2 for GBP, 0 for JPY, 3 for KWD.
    pub fn minor_unit(&self) -> u8 {
        self.minor_unit
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn knows_minor_units() {
        assert_eq!(Currency::parse("GBP").unwrap().minor_unit(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().minor_unit(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().minor_unit(), 3);
        assert_eq!(Currency::parse("EUR").unwrap().code(), "EUR");
    }

    #[test]
    fn refuses_inactive_and_malformed_codes() {
        for bad in [
            "", "gbp", "GB", "GBPX", "XAU", "XXX", "XTS", "HRK", "BOV", "ZZZ", "G P",
        ] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    proptest! {
        #[test]
        fn round_trips(code in "[A-Z]{3}") {
            if let Ok(c) = Currency::parse(&code) {
                prop_assert_eq!(c.code(), code.as_str());
                prop_assert_eq!(Currency::parse(c.code()).unwrap(), c);
            }
        }
    }
}
