//! Turns a text into SMPP `short_message` segments, and back. Pure: no I/O.
//!
//! - **GSM 03.38** (`data_coding` 0x00) when every character is in the default alphabet or its
//!   extension table. Septets are sent **unpacked**, one per octet, the usual SMPP convention:
//!   the SMSC packs them for the air interface. An extension character is the escape 0x1B plus
//!   one septet, so it counts as two.
//! - **UCS-2** (`data_coding` 0x08) otherwise, as UTF-16BE; a character outside the BMP (an
//!   emoji) is a surrogate pair and counts as two.
//!
//! A text over one segment's capacity (160 septets, 70 UTF-16 units) is split into
//! concatenated segments, each starting with a 6-octet UDH (IEI 0x00, 8-bit reference) and
//! holding at most 153 septets or 67 UTF-16 units: what fits in 140 octets once packed. A
//! character is never split across segments, so each segment decodes on its own.
//!
//! Written here rather than taken from `rusmpp`'s `extra` feature: its concatenation budgets
//! unpacked octets (giving 154 septets next to a 6-octet UDH, one more than fits once the SMSC
//! packs them) and it has no decoder to check the result against.

use super::gsm7::{self, ESCAPE, Septets};

/// The text encoding of a message, as SMPP's `data_coding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// GSM 03.38 default alphabet, unpacked septets.
    Gsm7,
    /// UCS-2 / UTF-16BE.
    Ucs2,
}

impl Coding {
    /// The `data_coding` octet of `submit_sm`.
    pub const fn data_coding(self) -> u8 {
        match self {
            Self::Gsm7 => 0x00,
            Self::Ucs2 => 0x08,
        }
    }

    pub const fn from_data_coding(value: u8) -> Option<Self> {
        match value {
            0x00 => Some(Self::Gsm7),
            0x08 => Some(Self::Ucs2),
            _ => None,
        }
    }

    /// Payload octets that fit in a message sent whole.
    const fn single_capacity(self) -> usize {
        match self {
            Self::Gsm7 => 160,
            Self::Ucs2 => 140,
        }
    }

    /// Payload octets that fit next to a concatenation UDH.
    const fn segment_capacity(self) -> usize {
        match self {
            Self::Gsm7 => 153,
            Self::Ucs2 => 134,
        }
    }
}

/// The `esm_class` octet for a segment carrying a UDH (UDHI set).
pub const ESM_CLASS_UDHI: u8 = 0x40;
/// Length of the concatenation UDH: UDHL, IEI 0x00, IEDL 3, reference, total, sequence.
pub const UDH_LEN: usize = 6;
const IEI_CONCAT_8BIT: u8 = 0x00;
const MAX_SEGMENTS: usize = 255;

/// Where a segment sits in a concatenated message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concatenation {
    pub reference: u8,
    pub total: u8,
    /// 1-based.
    pub sequence: u8,
}

impl Concatenation {
    fn udh(self) -> [u8; UDH_LEN] {
        [
            5,
            IEI_CONCAT_8BIT,
            3,
            self.reference,
            self.total,
            self.sequence,
        ]
    }
}

/// One `submit_sm`'s worth of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `None` when the text fits one message.
    pub concatenation: Option<Concatenation>,
    /// The encoded text, without UDH.
    pub payload: Vec<u8>,
}

impl Segment {
    /// The `short_message` field: the UDH, if any, then the payload.
    pub fn short_message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(UDH_LEN + self.payload.len());
        if let Some(c) = self.concatenation {
            out.extend_from_slice(&c.udh());
        }
        out.extend_from_slice(&self.payload);
        out
    }

    /// The `esm_class` field: UDHI when the segment carries a UDH.
    pub fn esm_class(&self) -> u8 {
        if self.concatenation.is_some() {
            ESM_CLASS_UDHI
        } else {
            0
        }
    }
}

/// A text ready to submit: its coding and one or more segments, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedText {
    pub coding: Coding,
    pub segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("text needs {0} segments, more than 255")]
    TooLong(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("septet {0:#04x} is not in the GSM 03.38 alphabet")]
    BadSeptet(u8),
    #[error("escape {0:#04x} has no extension character")]
    BadExtension(u8),
    #[error("text ends in an escape")]
    DanglingEscape,
    #[error("UCS-2 payload has an odd length")]
    OddLength,
    #[error("UCS-2 payload is not valid UTF-16 (split surrogate pair?)")]
    BadUtf16,
    #[error("UDH is malformed or has no 8-bit concatenation element")]
    BadUdh,
}

/// Encodes `text` in GSM 03.38 when it can, else UCS-2, split into segments that share the
/// concatenation `reference` when it does not fit one message.
pub fn encode(text: &str, reference: u8) -> Result<EncodedText, EncodeError> {
    let (coding, bytes, boundaries) = match encode_gsm7(text) {
        Some((bytes, boundaries)) => (Coding::Gsm7, bytes, boundaries),
        None => {
            let (bytes, boundaries) = encode_ucs2(text);
            (Coding::Ucs2, bytes, boundaries)
        }
    };
    if bytes.len() <= coding.single_capacity() {
        let segment = Segment {
            concatenation: None,
            payload: bytes,
        };
        return Ok(EncodedText {
            coding,
            segments: vec![segment],
        });
    }
    let payloads = split_at_boundaries(&bytes, &boundaries, coding.segment_capacity());
    let total = u8::try_from(payloads.len())
        .ok()
        .filter(|_| payloads.len() <= MAX_SEGMENTS)
        .ok_or(EncodeError::TooLong(payloads.len()))?;
    let segments = payloads
        .into_iter()
        .zip(1..=total)
        .map(|(payload, sequence)| Segment {
            concatenation: Some(Concatenation {
                reference,
                total,
                sequence,
            }),
            payload,
        })
        .collect();
    Ok(EncodedText { coding, segments })
}

/// True when every character of `text` is in the GSM 03.38 alphabet or extension table.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7::encode_char(c).is_some())
}

/// The encoded octets and the offsets at which a segment may end (after each character).
type Encoded = (Vec<u8>, Vec<usize>);

fn encode_gsm7(text: &str) -> Option<Encoded> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut boundaries = Vec::with_capacity(text.len());
    for c in text.chars() {
        match gsm7::encode_char(c)? {
            Septets::Basic(s) => bytes.push(s),
            Septets::Extension(s) => bytes.extend_from_slice(&[ESCAPE, s]),
        }
        boundaries.push(bytes.len());
    }
    Some((bytes, boundaries))
}

fn encode_ucs2(text: &str) -> Encoded {
    let mut bytes = Vec::with_capacity(text.len() * 2);
    let mut boundaries = Vec::with_capacity(text.len());
    let mut units = [0u16; 2];
    for c in text.chars() {
        for unit in c.encode_utf16(&mut units) {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        boundaries.push(bytes.len());
    }
    (bytes, boundaries)
}

/// Greedy split: each part ends at the last character boundary within `capacity` octets.
/// No character is longer than a part's capacity, so every part holds at least one.
fn split_at_boundaries(bytes: &[u8], boundaries: &[usize], capacity: usize) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for &boundary in boundaries {
        if boundary - start > capacity {
            parts.push(bytes[start..end].to_vec());
            start = end;
        }
        end = boundary;
    }
    if end > start {
        parts.push(bytes[start..end].to_vec());
    }
    parts
}

/// Decodes one payload (without UDH) back to text.
pub fn decode(coding: Coding, payload: &[u8]) -> Result<String, DecodeError> {
    match coding {
        Coding::Gsm7 => decode_gsm7(payload),
        Coding::Ucs2 => decode_ucs2(payload),
    }
}

fn decode_gsm7(payload: &[u8]) -> Result<String, DecodeError> {
    let mut out = String::with_capacity(payload.len());
    let mut septets = payload.iter().copied();
    while let Some(s) = septets.next() {
        if s == ESCAPE {
            let e = septets.next().ok_or(DecodeError::DanglingEscape)?;
            out.push(gsm7::decode_extension(e).ok_or(DecodeError::BadExtension(e))?);
        } else {
            out.push(gsm7::decode_basic(s).ok_or(DecodeError::BadSeptet(s))?);
        }
    }
    Ok(out)
}

fn decode_ucs2(payload: &[u8]) -> Result<String, DecodeError> {
    if !payload.len().is_multiple_of(2) {
        return Err(DecodeError::OddLength);
    }
    let units: Vec<u16> = payload
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| DecodeError::BadUtf16)
}

/// Splits a `short_message` sent with UDHI into its concatenation element and payload.
pub fn split_udh(short_message: &[u8]) -> Result<(Concatenation, &[u8]), DecodeError> {
    let (&udhl, rest) = short_message.split_first().ok_or(DecodeError::BadUdh)?;
    let udhl = usize::from(udhl);
    if rest.len() < udhl {
        return Err(DecodeError::BadUdh);
    }
    let (mut elements, payload) = rest.split_at(udhl);
    while let [iei, len, tail @ ..] = elements {
        let len = usize::from(*len);
        if tail.len() < len {
            return Err(DecodeError::BadUdh);
        }
        let (data, next) = tail.split_at(len);
        if let (IEI_CONCAT_8BIT, &[reference, total, sequence]) = (*iei, data) {
            return Ok((
                Concatenation {
                    reference,
                    total,
                    sequence,
                },
                payload,
            ));
        }
        elements = next;
    }
    Err(DecodeError::BadUdh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reassemble(encoded: &EncodedText) -> String {
        encoded
            .segments
            .iter()
            .map(|s| {
                let sm = s.short_message();
                let payload = match s.concatenation {
                    Some(c) => {
                        let (parsed, payload) = split_udh(&sm).unwrap();
                        assert_eq!(parsed, c);
                        payload.to_vec()
                    }
                    None => sm,
                };
                decode(encoded.coding, &payload).unwrap()
            })
            .collect()
    }

    #[test]
    fn short_gsm_text_is_one_unheadered_segment() {
        let e = encode("Your PIN is 123456", 7).unwrap();
        assert_eq!(e.coding, Coding::Gsm7);
        assert_eq!(e.segments.len(), 1);
        assert_eq!(e.segments[0].concatenation, None);
        assert_eq!(e.segments[0].esm_class(), 0);
        assert_eq!(e.segments[0].short_message(), b"Your PIN is 123456");
    }

    #[test]
    fn gsm_specials_map_to_their_septets() {
        let e = encode("@£ü€[", 0).unwrap();
        assert_eq!(e.coding, Coding::Gsm7);
        assert_eq!(
            e.segments[0].payload,
            [0x00, 0x01, 0x7E, 0x1B, 0x65, 0x1B, 0x3C]
        );
    }

    #[test]
    fn non_gsm_characters_switch_to_ucs2() {
        let e = encode("Zł", 0).unwrap();
        assert_eq!(e.coding, Coding::Ucs2);
        assert_eq!(e.segments[0].payload, [0x00, 0x5A, 0x01, 0x42]);
        let e = encode("a😀", 0).unwrap();
        assert_eq!(e.coding, Coding::Ucs2);
        assert_eq!(e.segments[0].payload, [0x00, 0x61, 0xD8, 0x3D, 0xDE, 0x00]);
        assert!(!is_gsm7("ç"));
        assert!(is_gsm7("Ç€"));
    }

    #[test]
    fn single_segment_limits() {
        assert_eq!(encode(&"a".repeat(160), 0).unwrap().segments.len(), 1);
        assert_eq!(encode(&"a".repeat(161), 0).unwrap().segments.len(), 2);
        // Extension characters count twice: 80 of them fill one message exactly.
        assert_eq!(encode(&"€".repeat(80), 0).unwrap().segments.len(), 1);
        assert_eq!(encode(&"€".repeat(81), 0).unwrap().segments.len(), 2);
        assert_eq!(encode(&"ł".repeat(70), 0).unwrap().segments.len(), 1);
        assert_eq!(encode(&"ł".repeat(71), 0).unwrap().segments.len(), 2);
        assert_eq!(encode(&"😀".repeat(35), 0).unwrap().segments.len(), 1);
        assert_eq!(encode(&"😀".repeat(36), 0).unwrap().segments.len(), 2);
    }

    #[test]
    fn gsm_segments_hold_153_septets_with_a_udh() {
        let text = "x".repeat(400);
        let e = encode(&text, 0xAB).unwrap();
        let sizes: Vec<usize> = e.segments.iter().map(|s| s.payload.len()).collect();
        assert_eq!(sizes, [153, 153, 94]);
        let sm = e.segments[1].short_message();
        assert_eq!(&sm[..UDH_LEN], &[5, 0, 3, 0xAB, 3, 2]);
        assert_eq!(sm.len(), UDH_LEN + 153);
        assert!(e.segments.iter().all(|s| s.esm_class() == ESM_CLASS_UDHI));
        assert_eq!(reassemble(&e), text);
    }

    #[test]
    fn an_extension_character_is_never_split() {
        // 152 plain septets, then "€" (2 septets) would straddle the 153 boundary.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(20));
        let e = encode(&text, 1).unwrap();
        assert_eq!(e.segments[0].payload.len(), 152);
        assert_eq!(&e.segments[1].payload[..2], &[ESCAPE, 0x65]);
        assert_eq!(reassemble(&e), text);
    }

    #[test]
    fn a_surrogate_pair_is_never_split() {
        // 66 BMP units, then an emoji (2 units) would straddle the 67 boundary.
        let text = format!("{}😀{}", "ł".repeat(66), "ł".repeat(10));
        let e = encode(&text, 1).unwrap();
        assert_eq!(e.coding, Coding::Ucs2);
        assert_eq!(e.segments[0].payload.len(), 132);
        assert_eq!(&e.segments[1].payload[..4], &[0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(reassemble(&e), text);
    }

    #[test]
    fn ucs2_segments_hold_67_units() {
        let text = "ł".repeat(200);
        let e = encode(&text, 9).unwrap();
        let sizes: Vec<usize> = e.segments.iter().map(|s| s.payload.len()).collect();
        assert_eq!(sizes, [134, 134, 132]);
        assert_eq!(reassemble(&e), text);
    }

    #[test]
    fn too_many_segments_is_an_error() {
        assert_eq!(
            encode(&"a".repeat(153 * 255), 0).unwrap().segments.len(),
            255
        );
        assert_eq!(
            encode(&"a".repeat(153 * 255 + 1), 0),
            Err(EncodeError::TooLong(256))
        );
    }

    #[test]
    fn empty_text_is_one_empty_segment() {
        let e = encode("", 0).unwrap();
        assert_eq!(
            e.segments,
            [Segment {
                concatenation: None,
                payload: vec![]
            }]
        );
    }

    #[test]
    fn decode_refuses_malformed_payloads() {
        assert_eq!(
            decode(Coding::Gsm7, &[0x41, ESCAPE]),
            Err(DecodeError::DanglingEscape)
        );
        assert_eq!(
            decode(Coding::Gsm7, &[ESCAPE, 0x41]),
            Err(DecodeError::BadExtension(0x41))
        );
        assert_eq!(
            decode(Coding::Gsm7, &[0x80]),
            Err(DecodeError::BadSeptet(0x80))
        );
        assert_eq!(decode(Coding::Ucs2, &[0x00]), Err(DecodeError::OddLength));
        assert_eq!(
            decode(Coding::Ucs2, &[0xD8, 0x3D]),
            Err(DecodeError::BadUtf16)
        );
        assert_eq!(split_udh(&[5, 0, 3, 1]), Err(DecodeError::BadUdh));
        assert_eq!(split_udh(&[]), Err(DecodeError::BadUdh));
        // Another element before the concatenation element is skipped.
        let (c, payload) = split_udh(&[8, 0x24, 1, 0, 0, 3, 9, 2, 1, b'x']).unwrap();
        assert_eq!(
            c,
            Concatenation {
                reference: 9,
                total: 2,
                sequence: 1
            }
        );
        assert_eq!(payload, b"x");
    }

    fn gsm_char() -> impl Strategy<Value = char> {
        prop::sample::select(
            "@£$¥èéùìòÇ\nØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà^{}\\[~]|€"
                .chars()
                .collect::<Vec<_>>(),
        )
    }

    fn any_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => gsm_char(),
            1 => prop::sample::select(vec!['ł', 'ç', 'ß', '中', '😀', '👍', '\u{10FFFF}', '€']),
            1 => any::<char>(),
        ]
    }

    proptest! {
        #[test]
        fn segments_reassemble_to_the_text(
            chars in prop::collection::vec(any_char(), 0..700),
            reference in any::<u8>(),
        ) {
            let text: String = chars.into_iter().collect();
            let e = encode(&text, reference).unwrap();
            prop_assert_eq!(e.coding == Coding::Gsm7, is_gsm7(&text));
            // Each segment decodes on its own, so no character was split.
            prop_assert_eq!(reassemble(&e), text.clone());
            let n = e.segments.len();
            if n == 1 {
                prop_assert!(e.segments[0].payload.len() <= e.coding.single_capacity());
                prop_assert!(e.segments[0].concatenation.is_none());
            } else {
                let (enc, _) = match e.coding {
                    Coding::Gsm7 => encode_gsm7(&text).unwrap(),
                    Coding::Ucs2 => encode_ucs2(&text),
                };
                prop_assert!(enc.len() > e.coding.single_capacity());
                for (i, s) in e.segments.iter().enumerate() {
                    let c = s.concatenation.unwrap();
                    prop_assert_eq!(c.reference, reference);
                    prop_assert_eq!(usize::from(c.total), n);
                    prop_assert_eq!(usize::from(c.sequence), i + 1);
                    prop_assert!(s.payload.len() <= e.coding.segment_capacity());
                    prop_assert!(s.short_message().len() <= 160);
                    // Greedy: a segment ends only where the next character would not fit.
                    if let Some(next) = e.segments.get(i + 1) {
                        let next_char_len = match (e.coding, next.payload.first()) {
                            (Coding::Gsm7, Some(&ESCAPE)) => 2,
                            (Coding::Gsm7, _) => 1,
                            (Coding::Ucs2, Some(&hi)) if (0xD8..0xDC).contains(&hi) => 4,
                            (Coding::Ucs2, _) => 2,
                        };
                        prop_assert!(s.payload.len() + next_char_len > e.coding.segment_capacity());
                    }
                }
            }
        }
    }
}
