//! Deserialisers for secrets in configuration (the domain's `Secret` has no serde impls).

use dcbhub_domain::Secret;
use serde::{Deserialize, Deserializer};

pub(crate) fn secret_string<'de, D: Deserializer<'de>>(d: D) -> Result<Secret<String>, D::Error> {
    String::deserialize(d).map(Secret::new)
}

pub(crate) fn optional_secret_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Secret<String>>, D::Error> {
    Option::<String>::deserialize(d).map(|s| s.map(Secret::new))
}
