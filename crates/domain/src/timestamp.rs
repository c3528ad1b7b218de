use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant with millisecond precision; stored as Unix milliseconds, shown as RFC 3339
/// with milliseconds (`2026-11-26T22:47:57.123Z`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub const fn from_unix_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        let ms = dt.unix_timestamp_nanos() / 1_000_000;
        Self(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    pub fn parse_rfc3339(input: &str) -> Option<Self> {
        OffsetDateTime::parse(input, &Rfc3339)
            .ok()
            .map(Self::from_datetime)
    }

    pub fn to_rfc3339(self) -> String {
        let dt = self.to_datetime();
        match u16::try_from(dt.year()) {
            // Digits written by hand: `format!` with padding was ~2% of a charge's request
            // thread (its answer shows two timestamps).
            Ok(year) if year <= 9999 => {
                let mut out = *b"0000-00-00T00:00:00.000Z";
                put_digits(&mut out[0..4], u32::from(year));
                put_digits(&mut out[5..7], u32::from(u8::from(dt.month())));
                put_digits(&mut out[8..10], u32::from(dt.day()));
                put_digits(&mut out[11..13], u32::from(dt.hour()));
                put_digits(&mut out[14..16], u32::from(dt.minute()));
                put_digits(&mut out[17..19], u32::from(dt.second()));
                put_digits(&mut out[20..23], u32::from(dt.millisecond()));
                crate::text::ascii_string(&out)
            }
            _ => general_rfc3339(dt),
        }
    }
}

/// The same text through `core::fmt`, for the years the digits above do not cover.
fn general_rfc3339(dt: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// Writes `value` in decimal into `slot`, right-aligned and zero-padded to its width.
fn put_digits(slot: &mut [u8], mut value: u32) {
    for b in slot.iter_mut().rev() {
        // `value % 10` is below 10: the cast cannot truncate.
        *b = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_digits_match_the_general_format() {
        let general = |t: Timestamp| general_rfc3339(t.to_datetime());
        // Spread over the four-digit years, and one before them.
        let mut ms: i64 = 0;
        while ms < 253_402_300_799_999 {
            let t = Timestamp::from_unix_millis(ms);
            assert_eq!(t.to_rfc3339(), general(t));
            ms += 9_876_543_210_987;
        }
        let before_year_zero = Timestamp::from_unix_millis(-62_167_219_200_001);
        assert_eq!(before_year_zero.to_rfc3339(), general(before_year_zero));
        assert_eq!(
            Timestamp::from_unix_millis(253_402_300_799_999).to_rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn formats_with_millis_and_z() {
        let t = Timestamp::from_unix_millis(1_795_733_277_123);
        assert_eq!(t.to_rfc3339(), "2026-11-26T22:47:57.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            Timestamp::from_unix_millis(0).to_rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
