//! Rules both backends apply the same way.

use dcbhub_domain::Timestamp;
use subtle::ConstantTimeEq;

use crate::{PinCheckOutcome, PinRecord, PinSendOutcome, PinSendPolicy, PinStatus};

const HOUR_MS: i64 = 3_600_000;

/// Seconds until the oldest message of the last hour ages out of the window (at least 1).
pub(crate) fn retry_after(oldest: Option<i64>, now: Timestamp) -> u32 {
    let ms = oldest.map_or(0, |o| o + HOUR_MS - now.unix_millis());
    u32::try_from((ms + 999) / 1000).unwrap_or(1).max(1)
}

pub(crate) enum Judged {
    /// The attempt counts; `valid` says whether the code matched.
    Counted {
        valid: bool,
        consent_expires_at: Timestamp,
    },
    /// Refused before any comparison; nothing changes.
    Refused(PinCheckOutcome),
}

/// The rules of API.md §4, in order; shared by both backends.
pub(crate) fn judge(
    pin: &PinRecord,
    presented_hash: &str,
    max_attempts: u32,
    consent_window_ms: i64,
    now: Timestamp,
) -> Judged {
    if pin.status != PinStatus::Active {
        return Judged::Refused(PinCheckOutcome::AlreadyUsed);
    }
    if pin.attempts >= max_attempts {
        return Judged::Refused(PinCheckOutcome::AttemptsExceeded);
    }
    if now >= pin.expires_at {
        return Judged::Refused(PinCheckOutcome::Expired);
    }
    let valid: bool = pin
        .pin_hash
        .as_bytes()
        .ct_eq(presented_hash.as_bytes())
        .into();
    Judged::Counted {
        valid,
        consent_expires_at: now.plus_millis(consent_window_ms),
    }
}

/// Why a resend of `pin` is refused before the per-account cap is looked at, if it is.
pub(crate) fn judge_resend(
    pin: &PinRecord,
    policy: &PinSendPolicy,
    now: Timestamp,
) -> Option<PinSendOutcome> {
    if pin.status != PinStatus::Active {
        return Some(PinSendOutcome::NotActive(pin.clone()));
    }
    let next_allowed = pin.last_sent_at.unix_millis() + policy.cooldown_ms;
    if now.unix_millis() < next_allowed {
        let secs = (next_allowed - now.unix_millis() + 999) / 1000;
        return Some(PinSendOutcome::TooSoon {
            retry_after_secs: u32::try_from(secs).unwrap_or(1).max(1),
        });
    }
    if pin.sends >= policy.max_sends {
        // The challenge's own cap never frees up: retry means a new challenge.
        let secs = (pin.expires_at.unix_millis() - now.unix_millis()).max(1000) / 1000;
        return Some(PinSendOutcome::SendLimit {
            retry_after_secs: u32::try_from(secs).unwrap_or(1),
        });
    }
    None
}
