use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A value that must never reach a log: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A partner API key as shown once to its owner: `dcb_` and 256 random bits in hex.
#[derive(Clone)]
pub struct ApiKey(Secret<String>);

const API_KEY_PREFIX: &str = "dcb_";

impl ApiKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        // ThreadRng is a CSPRNG (ChaCha12, reseeded from the OS).
        rand::rng().fill_bytes(&mut bytes);
        Self(Secret::new(format!(
            "{API_KEY_PREFIX}{}",
            crate::hex_lower(&bytes)
        )))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The stored form. API keys carry 256 random bits, so a fast unsalted hash is safe:
    /// there is nothing to brute-force, and lookups stay one index probe.
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash::of(self.expose())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// SHA-256 of a secret, hex-encoded; what the store keeps instead of the secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(String);

impl ApiKeyHash {
    /// Any string is accepted, e.g. a key as a caller presented it: an unknown key is found out
    /// by its hash, and a malformed one simply matches nothing.
    pub fn of(secret: &str) -> Self {
        Self(crate::hex_lower(&Sha256::digest(secret.as_bytes())))
    }

    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, for secrets compared outside an index lookup.
    pub fn matches(&self, other: &ApiKeyHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({}…)", &self.0[..self.0.len().min(8)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 4 + 64);
        assert_eq!(a.hash(), ApiKeyHash::of(a.expose()));
        assert_ne!(a.hash(), b.hash());
        assert!(a.hash().matches(&ApiKeyHash::of(a.expose())));
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
        assert_eq!(format!("{}", Secret::new("pin")), "[redacted]");
    }

    /// The stored form must not change: keys issued earlier are found by it.
    #[test]
    fn the_stored_hash_is_lower_case_hex_sha256() {
        assert_eq!(
            ApiKeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
