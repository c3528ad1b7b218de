use std::fmt;

use crate::ParseError;

/// The partner's id for a transaction: 1 to 64 characters of `A-Z a-z 0-9 . _ : -`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtTransactionId(String);

impl ExtTransactionId {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        Self::parse_field(input, "extTransactionID")
    }

    /// Parses with the name of the field it came from, for fields such as
    /// `originalExtTransactionID`.
    pub fn parse_field(input: &str, field: &'static str) -> Result<Self, ParseError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
        if input.is_empty() || input.len() > 64 || !input.bytes().all(allowed) {
            return Err(ParseError::new(
                field,
                "must be 1 to 64 characters of A-Z a-z 0-9 . _ : -",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A partner (OTT organisation) code such as `NFLX`: 2 to 16 characters of `A-Z 0-9 _ -`,
/// starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerCode(String);

impl PartnerCode {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let bytes = input.as_bytes();
        let ok = (2..=16).contains(&bytes.len())
            && bytes[0].is_ascii_uppercase() | bytes[0].is_ascii_digit()
            && bytes
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
        if !ok {
            return Err(ParseError::new(
                "code",
                "must be 2 to 16 characters of A-Z 0-9 _ -",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The partner's product code: 1 to 15 printable ASCII characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProductCode(String);

impl ProductCode {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if input.is_empty() || input.len() > 15 || !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::new(
                "productCode",
                "must be 1 to 15 printable ASCII characters",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the customer sees on the bill: 1 to 100 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Description(String);

impl Description {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let len = input.chars().count();
        if !(1..=100).contains(&len)
            || input.chars().any(char::is_control)
            || input.trim().is_empty()
        {
            return Err(ParseError::new(
                "description",
                "must be 1 to 100 characters without control characters",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `prefix` and `id` in lower-case hex without hyphens. Written without `core::fmt`: ids
/// are minted on every request.
pub fn hex_id(prefix: &str, id: uuid::Uuid) -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    let hex = id.simple().encode_lower(&mut buf);
    let mut out = String::with_capacity(prefix.len() + hex.len());
    out.push_str(prefix);
    out.push_str(hex);
    out
}

macro_rules! minted_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// Mints a new id: the prefix and a UUIDv7 (time-ordered, so index inserts stay
            /// local) in lower-case hex.
            pub fn generate() -> Self {
                Self(hex_id($prefix, uuid::Uuid::now_v7()))
            }

            /// Accepts only ids of the shape this hub mints.
            pub fn parse(input: &str) -> Result<Self, ParseError> {
                let ok = input
                    .strip_prefix($prefix)
                    .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
                if !ok {
                    return Err(ParseError::new($field, concat!("must be an id minted by the hub (", $prefix, "…)")));
                }
                Ok(Self(input.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

minted_id!(
    /// The hub's id of a transaction; also the CSP's idempotency key.
    TransactionId, "tx_", "transactionId"
);
minted_id!(
    /// The hub's id of a PIN challenge.
    PinId, "pin_", "pinId"
);
minted_id!(
    /// The hub's id of a queued notification.
    NotificationId, "ntf_", "notificationId"
);

macro_rules! plain_debug_display {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
    )*};
}
plain_debug_display!(ExtTransactionId, PartnerCode, ProductCode, Description);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ext_transaction_id_grammar() {
        assert!(ExtTransactionId::parse("ott-0001").is_ok());
        assert!(ExtTransactionId::parse("a.b_c:d-E9").is_ok());
        assert!(ExtTransactionId::parse(&"x".repeat(64)).is_ok());
        for bad in ["", "a b", "a/b", "ä", "a\n", "x".repeat(65).as_str()] {
            assert!(
                ExtTransactionId::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn partner_code_grammar() {
        assert!(PartnerCode::parse("NFLX").is_ok());
        assert!(PartnerCode::parse("DEMO").is_ok());
        for bad in ["", "N", "nflx", "-NFLX", "NFLX!", "ABCDEFGHIJKLMNOPQ"] {
            assert!(
                PartnerCode::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn minted_ids_parse_back() {
        let id = TransactionId::generate();
        assert!(id.as_str().starts_with("tx_"));
        assert_eq!(TransactionId::parse(id.as_str()).unwrap(), id);
        assert!(PinId::parse(id.as_str()).is_err());
        assert!(PinId::parse("pin_123").is_err());
        assert!(PinId::parse(PinId::generate().as_str()).is_ok());
    }

    #[test]
    fn hex_ids_are_the_prefix_and_the_uuid_without_hyphens() {
        let id = uuid::Uuid::from_u128(0x0192_3e4f_5a6b_7c8d_9eaf_b0c1_d2e3_f405);
        assert_eq!(hex_id("tx_", id), "tx_01923e4f5a6b7c8d9eafb0c1d2e3f405");
        assert_eq!(hex_id("", id), id.simple().to_string());
    }

    #[test]
    fn description_and_product_code() {
        assert!(Description::parse("Premium plan, December").is_ok());
        assert!(Description::parse(&"é".repeat(100)).is_ok());
        assert!(Description::parse(&"é".repeat(101)).is_err());
        assert!(Description::parse("").is_err());
        assert!(Description::parse("   ").is_err());
        assert!(Description::parse("a\u{0}b").is_err());
        assert!(ProductCode::parse("PREMIUM-M").is_ok());
        assert!(ProductCode::parse("ABCDEFGHIJKLMNOP").is_err());
        assert!(ProductCode::parse("A B").is_err());
    }

    proptest! {
        #[test]
        fn ext_id_round_trips(s in "[A-Za-z0-9._:-]{1,64}") {
            let id = ExtTransactionId::parse(&s).unwrap();
            prop_assert_eq!(ExtTransactionId::parse(id.as_str()).unwrap(), id);
        }

        #[test]
        fn ext_id_never_panics(s in "\\PC{0,80}") {
            if let Ok(id) = ExtTransactionId::parse(&s) {
                prop_assert!(id.as_str().len() <= 64);
            }
        }

        #[test]
        fn partner_code_round_trips(s in "[A-Z0-9][A-Z0-9_-]{1,15}") {
            let code = PartnerCode::parse(&s).unwrap();
            prop_assert_eq!(PartnerCode::parse(code.as_str()).unwrap(), code);
        }
    }
}
