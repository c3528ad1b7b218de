use std::fmt;

use email_address::{EmailAddress, Options};

use crate::ParseError;

/// An RFC 5322 addr-spec (no display name, no domain literal), ASCII only, at most 254
/// characters. The domain is kept lower-cased, so two spellings of one domain compare equal;
/// the local part is kept as given. `Display` and `Debug` mask it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

const FIELD: &str = "email";
const MAX_LEN: usize = 254;

impl Email {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if input.len() > MAX_LEN {
            return Err(ParseError::new(FIELD, "must be at most 254 characters"));
        }
        if !input.is_ascii() {
            return Err(ParseError::new(FIELD, "must be ASCII"));
        }
        let options = Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: false,
            allow_long_local_parts: false,
        };
        let bad = ParseError::new(FIELD, "must be an RFC 5322 addr-spec");
        let parsed = EmailAddress::parse_with_options(input, options).map_err(|_| bad.clone())?;
        // The crate tolerates surrounding text such as " <a@b.c>"; the contract takes the
        // bare addr-spec only.
        if parsed.local_part().len() + 1 + parsed.domain().len() != input.len() {
            return Err(bad);
        }
        Ok(Self(format!(
            "{}@{}",
            parsed.local_part(),
            parsed.domain().to_ascii_lowercase()
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.split().0
    }

    pub fn domain(&self) -> &str {
        self.split().1
    }

    fn split(&self) -> (&str, &str) {
        // The local part may itself hold a quoted `@`; the domain never does.
        self.0.rsplit_once('@').unwrap_or((&self.0, ""))
    }

    /// A form safe for logs: the first character of the local part and the domain.
    pub fn masked(&self) -> String {
        let (local, domain) = self.split();
        let first = local.chars().next().unwrap_or('*');
        format!("{first}***@{domain}")
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_addr_specs_and_lowercases_the_domain() {
        let e = Email::parse("Ann.Lee+dcb@Example.COM").unwrap();
        assert_eq!(e.as_str(), "Ann.Lee+dcb@example.com");
        assert_eq!(e.domain(), "example.com");
        assert_eq!(e.local_part(), "Ann.Lee+dcb");
        assert_eq!(
            Email::parse("447700900000@sandbox.dcbhub.test")
                .unwrap()
                .as_str(),
            "447700900000@sandbox.dcbhub.test"
        );
    }

    #[test]
    fn rejects_non_addr_specs() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@localhost",
            "Ann <ann@example.com>",
            "ann@[127.0.0.1]",
            "ann..lee@example.com",
            "ann@exa mple.com",
            "ann@example..com",
            "änn@example.com",
            long.as_str(),
            "ann@@example.com",
            ".ann@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn masks() {
        let e = Email::parse("ann@example.com").unwrap();
        assert_eq!(e.to_string(), "a***@example.com");
        assert!(!format!("{e:?}").contains("ann"));
    }

    proptest! {
        #[test]
        fn round_trips(local in "[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]", domain in "[a-z][a-z0-9-]{0,10}[a-z]\\.[a-z]{2,6}") {
            prop_assume!(!local.contains(".."));
            let s = format!("{local}@{domain}");
            let e = Email::parse(&s).unwrap();
            prop_assert_eq!(e.as_str(), s.as_str());
            prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert!(e.as_str().len() <= 254);
                prop_assert!(e.as_str().contains('@'));
            }
        }
    }
}
