use crate::ParseError;

/// Whether a partner must present a validated PIN with each charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsentPolicy {
    Pin,
    None,
}

impl ConsentPolicy {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        match input {
            "pin" => Ok(Self::Pin),
            "none" => Ok(Self::None),
            _ => Err(ParseError::new("consent", "must be pin or none")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pin => "pin",
            Self::None => "none",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartnerStatus {
    Active,
    Suspended,
}

impl PartnerStatus {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        match input {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            _ => Err(ParseError::new("status", "must be active or suspended")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}
