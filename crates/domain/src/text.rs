//! Text built on every request, without `core::fmt` or char-by-char iterators.

/// `bytes` in lower-case hex. `hex::encode` collects an iterator of chars (~35 instructions a
/// byte); this pushes into a string of the right size (~8). It runs on every request: the API
/// key's hash, the request's fingerprint.
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A string of ASCII bytes written by the caller (digits, signs, separators). UTF-8 is
/// checked (a few instructions per 8 bytes) and the bytes copied once; collecting them as chars
/// cost ~25 instructions a byte. Anything not UTF-8 would be replaced, never dropped silently:
/// the callers' tests compare with `format!`.
pub(crate) fn ascii_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_lower_is_hex_encode(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(hex_lower(&bytes), hex::encode(&bytes));
        }
    }

    #[test]
    fn ascii_string_keeps_the_bytes() {
        assert_eq!(ascii_string(b"-12.50"), "-12.50");
        assert_eq!(ascii_string(b""), "");
    }
}
