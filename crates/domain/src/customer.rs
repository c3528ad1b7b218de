use std::fmt;

use crate::{Email, Msisdn};

/// How a request names the customer: exactly one of an MSISDN or an email.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Customer {
    Msisdn(Msisdn),
    Email(Email),
}

impl Customer {
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
