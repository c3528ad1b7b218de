//! The GSM 03.38 (3GPP TS 23.038) default alphabet and its extension table, one septet per
//! byte ("unpacked").

/// The escape septet: the next septet is read from the extension table.
pub const ESCAPE: u8 = 0x1B;

/// The default alphabet by septet value. Index 0x1B is the escape, never a character.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: each character costs the escape plus this septet.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// How one character is written in GSM 7-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Septets {
    Basic(u8),
    /// Written as [`ESCAPE`] and this septet.
    Extension(u8),
}

pub fn encode_char(c: char) -> Option<Septets> {
    if c != '\u{1B}'
        && let Some(i) = BASIC.iter().position(|&b| b == c)
    {
        return u8::try_from(i).ok().map(Septets::Basic);
    }
    EXTENSION
        .iter()
        .find(|&&(_, e)| e == c)
        .map(|&(septet, _)| Septets::Extension(septet))
}

pub fn decode_basic(septet: u8) -> Option<char> {
    BASIC
        .get(usize::from(septet))
        .copied()
        .filter(|_| septet != ESCAPE)
}

pub fn decode_extension(septet: u8) -> Option<char> {
    EXTENSION
        .iter()
        .find(|&&(s, _)| s == septet)
        .map(|&(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_basic_character_round_trips() {
        for septet in 0u8..128 {
            if septet == ESCAPE {
                assert_eq!(decode_basic(septet), None);
                continue;
            }
            let c = decode_basic(septet).unwrap();
            assert_eq!(encode_char(c), Some(Septets::Basic(septet)), "{c:?}");
        }
        assert_eq!(decode_basic(128), None);
    }

    #[test]
    fn extension_characters_and_refusals() {
        assert_eq!(encode_char('€'), Some(Septets::Extension(0x65)));
        assert_eq!(encode_char('['), Some(Septets::Extension(0x3C)));
        assert_eq!(decode_extension(0x65), Some('€'));
        assert_eq!(decode_extension(0x41), None);
        for c in ['ł', '\u{1B}', '\t', '😀', 'ç', 'á', '`'] {
            assert_eq!(encode_char(c), None, "{c:?}");
        }
        assert_eq!(encode_char('@'), Some(Septets::Basic(0)));
        assert_eq!(encode_char('A'), Some(Septets::Basic(0x41)));
    }
}
