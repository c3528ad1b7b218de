use std::fmt;

use crate::{Email, Msisdn, ParseError};

/// How a request names the customer: exactly one of an MSISDN or an email.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Customer {
    Msisdn(Msisdn),
    Email(Email),
}

impl Customer {
    /// Rebuilds a customer from the kind and value it was stored as ([`Customer::kind`] and
    /// [`Customer::as_str`]).
    pub fn parse_stored(kind: &str, value: &str) -> Result<Self, ParseError> {
        match kind {
            "msisdn" => Msisdn::parse(value).map(Self::Msisdn),
            "email" => Email::parse(value).map(Self::Email),
            _ => Err(ParseError::new("customer", "unknown customer kind")),
        }
    }

    /// The identifier as stored and sent to the CSP (unmasked).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Msisdn(m) => m.as_str(),
            Self::Email(e) => e.as_str(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Msisdn(_) => "msisdn",
            Self::Email(_) => "email",
        }
    }
}

impl fmt::Display for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Msisdn(m) => fmt::Display::fmt(m, f),
            Self::Email(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl fmt::Debug for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Msisdn(m) => fmt::Debug::fmt(m, f),
            Self::Email(e) => fmt::Debug::fmt(e, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips() {
        for c in [
            Customer::Msisdn(Msisdn::parse("+447700900000").unwrap()),
            Customer::Email(Email::parse("ann@example.com").unwrap()),
        ] {
            assert_eq!(Customer::parse_stored(c.kind(), c.as_str()), Ok(c.clone()));
        }
        assert!(Customer::parse_stored("fax", "+447700900000").is_err());
        assert!(Customer::parse_stored("email", "+447700900000").is_err());
    }
}
