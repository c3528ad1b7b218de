use std::fmt;

use crate::ParseError;

/// A customer's phone number in strict E.164: `+`, an existing country calling code, 8 to 15
/// digits in all, nothing else. `Display` and `Debug` mask it; `as_str` gives the real value
/// for the wire and the database.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(String);

const FIELD: &str = "msisdn";

impl Msisdn {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let digits = input
            .strip_prefix('+')
            .ok_or(ParseError::new(FIELD, "must start with +"))?;
        if !(8..=15).contains(&digits.len()) {
            return Err(ParseError::new(FIELD, "must have 8 to 15 digits"));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new(FIELD, "must contain digits only"));
        }
        if digits.starts_with('0') || !has_country_code(digits) {
            return Err(ParseError::new(FIELD, "unknown country calling code"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The real number, e.g. `+447700900000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the leading `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// A form safe for logs: all but the last four digits hidden.
    pub fn masked(&self) -> String {
        let digits = self.digits();
        let keep = digits.len().saturating_sub(4);
        let mut out = String::with_capacity(self.0.len());
        out.push('+');
        out.extend(std::iter::repeat_n('*', keep));
        out.push_str(&digits[keep..]);
        out
    }
}

/// Country calling codes are one to three digits and prefix-free, so at most one prefix of
/// the number can be a known code.
fn has_country_code(digits: &str) -> bool {
    (1..=3).any(|len| {
        digits[..len]
            .parse::<u16>()
            .ok()
            .and_then(|code| phonenumber::metadata::DATABASE.by_code(&code))
            .is_some()
    })
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_e164() {
        for ok in [
            "+447700900000",
            "+14155550123",
            "+4915112345678",
            "+33612345678",
            "+12345678",
        ] {
            assert_eq!(
                Msisdn::parse(ok).map(|m| m.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "+",
            "447700900000",
            "+44 7700 900000",
            "+44-7700900000",
            "+4477009",
            "+1234567",
            "+1234567890123456",
            "++447700900000",
            "+0447700900000",
            "+447700900000 ",
            " +447700900000",
            "+44770090000a",
            "+٤٤٧٧٠٠٩٠٠٠٠٠",
            "+999123456789",
        ] {
            assert!(Msisdn::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn masks_in_display_and_debug() {
        let m = Msisdn::parse("+447700900123").unwrap();
        assert_eq!(m.to_string(), "+********0123");
        assert!(!format!("{m:?}").contains("7700900"));
        assert_eq!(m.digits(), "447700900123");
    }

    proptest! {
        #[test]
        fn round_trips(rest in "[0-9]{7,12}") {
            let s = format!("+44{rest}");
            let m = Msisdn::parse(&s).unwrap();
            prop_assert_eq!(Msisdn::parse(m.as_str()).unwrap(), m.clone());
            prop_assert_eq!(m.as_str(), s.as_str());
        }

        #[test]
        fn never_panics_and_only_accepts_plus_digits(s in "\\PC{0,20}") {
            if let Ok(m) = Msisdn::parse(&s) {
                prop_assert!(m.as_str().starts_with('+'));
                prop_assert!(m.digits().bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}
