//! Every OCS answer mapped to a typed outcome, with a verdict for the circuit breaker and
//! the retry loop. Only an explicit, well-formed answer is final; anything unexpected is
//! `Unknown` where the OCS may have acted and `Unavailable` where it cannot have — never
//! success.

use dcbhub_domain::{Currency, MinorUnits, Money, TransactionId};
use serde::de::DeserializeOwned;

use super::transport::{Answer, Attempt, Failure, Verdict, verdict};
use super::wire::{
    AccumulatedBalance, ErrorBody, GONE_STATES, LIVE_STATES, MONEY_UNITS, RESULT_SUCCESS,
    RatingDataResponse, RequestSubType, Service, problems,
};
use crate::{ChargeOutcome, ConnectorError, DeclineReason, FinishOutcome, ReserveOutcome};

/// `Retry-After` given to callers: the OCS names none.
pub(crate) const DEFAULT_RETRY_AFTER_SECS: u32 = 5;
/// How much of an unparsable error body is searched for the known reason texts.
const MAX_ERROR_TEXT: usize = 4 * 1024;

fn parse<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}

/// What an error answer says, whichever form it came in.
#[derive(Debug, Default)]
struct Problem {
    /// The body is an OCS error (JSON or problem+json) rather than something else.
    recognised: bool,
    /// Reason, title, message and detail, lower-cased; for an unreadable body, its text.
    text: String,
    /// The 3GPP cause, upper-cased, spaces as underscores.
    cause: Option<String>,
}

impl Problem {
    fn read(body: &[u8]) -> Self {
        if let Some(error) = parse::<ErrorBody>(body) {
            let text = [&error.reason, &error.title, &error.message, &error.detail]
                .into_iter()
                .flatten()
                .map(|s| s.to_lowercase())
                .collect::<Vec<_>>()
                .join(" | ");
            let cause = error
                .cause
                .map(|c| c.trim().to_ascii_uppercase().replace(' ', "_"));
            let recognised = !text.is_empty() || cause.is_some();
            return Self {
                recognised,
                text,
                cause,
            };
        }
        // Some OCS versions write their JSON error with a missing comma: still search the
        // text for the documented reasons.
        let end = body.len().min(MAX_ERROR_TEXT);
        Self {
            recognised: false,
            text: String::from_utf8_lossy(&body[..end]).to_lowercase(),
            cause: None,
        }
    }

    fn says(&self, causes: &[&str], text: &str) -> bool {
        self.cause
            .as_deref()
            .is_some_and(|cause| causes.contains(&cause))
            || self.text.contains(text)
    }

    fn insufficient_credit(&self) -> bool {
        self.says(
            &[problems::CAUSE_QUOTA_LIMIT_REACHED],
            problems::TEXT_INSUFFICIENT_CREDIT,
        )
    }

    fn restricted(&self) -> bool {
        self.says(
            &[problems::CAUSE_END_USER_REQUEST_DENIED],
            problems::TEXT_RESTRICTED,
        )
    }

    fn unknown_subscriber(&self) -> bool {
        self.says(
            &problems::CAUSES_UNKNOWN_SUBSCRIBER,
            problems::TEXT_UNKNOWN_SUBSCRIBER,
        )
    }

    fn unknown_ref(&self) -> bool {
        self.says(&[problems::CAUSE_UNKNOWN_REF], problems::TEXT_UNKNOWN_REF)
    }

    /// A TMF "no such item" answer (or any OCS error: the path itself is right).
    fn no_such_item(&self) -> bool {
        self.recognised || self.text.contains(problems::TEXT_NO_SUCH)
    }
}

fn struggling(answer: &Answer) -> bool {
    answer.status >= 500 || answer.status == 429
}

/// Wrong credentials make the OCS unusable for us: count them against the breaker.
fn healthy(answer: &Answer) -> bool {
    !struggling(answer) && answer.status != 401
}

// ---------------------------------------------------------------- account lookups

/// What the service inventory says about a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Rated normally; `product` is the billing account that owns the balance.
    Good { product: String },
    /// `isServiceEnabled: false`: rating refuses it.
    Disabled { product: String },
    /// Unknown, terminated or inactive.
    NotFound,
}

/// The balance of a subscriber as the OCS reports it (`totalBalance` of the accumulated
/// balance, in the CSP's currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NrfBalance {
    Positive(MinorUnits),
    /// The OCS lists no positive money balance: zero or less (it hides negative buckets).
    ZeroOrLess,
    /// No such subscriber.
    NotFound,
}

type Lookup<T> = Verdict<Result<T, ConnectorError>>;

fn lookup_failure<T>(attempt: &Attempt) -> Lookup<T> {
    let unavailable = Err(ConnectorError::Unavailable {
        retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
    });
    match attempt {
        Err(_) => verdict(unavailable, false, true),
        // A 200 we cannot read: worth asking again.
        Ok(answer) if answer.status == 200 => verdict(unavailable, false, true),
        Ok(answer) => verdict(unavailable, healthy(answer), answer.status >= 500),
    }
}

fn standing(service: Service) -> Option<Standing> {
    let product = service.product?.id().trim().to_owned();
    if product.is_empty() {
        return None;
    }
    match service.state.as_deref() {
        Some(state) if GONE_STATES.contains(&state) => return Some(Standing::NotFound),
        Some(state) if !LIVE_STATES.contains(&state) => return None,
        _ => {}
    }
    Some(if service.is_service_enabled {
        Standing::Good { product }
    } else {
        Standing::Disabled { product }
    })
}

/// `GET /serviceInventoryManagement/v2/service/{msisdn}`.
pub(crate) fn service(attempt: &Attempt) -> Lookup<Standing> {
    let Ok(answer) = attempt else {
        return lookup_failure(attempt);
    };
    match answer.status {
        200 => match parse::<Service>(&answer.body).and_then(standing) {
            Some(standing) => verdict(Ok(standing), true, false),
            None => lookup_failure(attempt),
        },
        404 if Problem::read(&answer.body).no_such_item() => {
            verdict(Ok(Standing::NotFound), true, false)
        }
        _ => lookup_failure(attempt),
    }
}

/// `GET /balanceManagement/v1/service/{msisdn}/accumulatedBalance`.
pub(crate) fn balance(attempt: &Attempt, currency: Currency) -> Lookup<NrfBalance> {
    let Ok(answer) = attempt else {
        return lookup_failure(attempt);
    };
    match answer.status {
        200 => match parse::<AccumulatedBalance>(&answer.body).and_then(|b| total(&b, currency)) {
            Some(balance) => verdict(Ok(balance), true, false),
            None => lookup_failure(attempt),
        },
        404 if Problem::read(&answer.body).no_such_item() => {
            verdict(Ok(NrfBalance::NotFound), true, false)
        }
        _ => lookup_failure(attempt),
    }
}

fn total(balance: &AccumulatedBalance, currency: Currency) -> Option<NrfBalance> {
    let mut sum = MinorUnits::ZERO;
    for quantity in &balance.total_balance {
        if !quantity.units.eq_ignore_ascii_case(MONEY_UNITS) {
            continue;
        }
        let amount = parse_major_units(&quantity.amount, currency.minor_unit())?;
        sum = sum.checked_add(amount)?;
    }
    Some(if sum.is_positive() {
        NrfBalance::Positive(sum)
    } else {
        NrfBalance::ZeroOrLess
    })
}

/// Reads an OCS amount (`"5"`, `"3.5"`, `"-6.5"`, `"0.123456"`) as minor units, dropping
/// digits below the minor unit (the OCS counts in millionths). No floats.
pub(crate) fn parse_major_units(amount: &str, minor_digits: u8) -> Option<MinorUnits> {
    let (negative, digits) = match amount.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, amount.trim()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if digits.contains('.') && fraction.is_empty() {
        return None;
    }
    let scale = 10i64.checked_pow(u32::from(minor_digits))?;
    let mut value = whole.parse::<i64>().ok()?.checked_mul(scale)?;
    let kept: String = fraction.chars().take(usize::from(minor_digits)).collect();
    if !kept.is_empty() {
        let padding = u32::from(minor_digits) - u32::try_from(kept.len()).ok()?;
        let part = kept.parse::<i64>().ok()?.checked_mul(10i64.pow(padding))?;
        value = value.checked_add(part)?;
    }
    Some(MinorUnits::new(if negative { -value } else { value }))
}

/// The service-specific units of an amount, if it is a whole number of them.
pub(crate) fn units_of(money: &Money, minor_units_per_unit: u32) -> Option<u64> {
    let amount = u64::try_from(money.amount().get()).ok()?;
    let per_unit = u64::from(minor_units_per_unit);
    (per_unit > 0 && amount % per_unit == 0).then(|| amount / per_unit)
}

// ---------------------------------------------------------------- rating

/// The `{ref}` of a `Location` such as `/nrf-rating/v1/ratingdata/1795733278058962` (older
/// OCS versions write `/ratingdata/{ref}`; an absolute URL works too).
pub(crate) fn rating_ref(location: &str) -> Option<String> {
    let path = match reqwest::Url::parse(location) {
        Ok(url) => url.path().to_owned(),
        Err(_) => location
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let (parent, reference) = path.trim_end_matches('/').rsplit_once('/')?;
    (parent.ends_with("ratingdata") && valid_ref(reference)).then(|| reference.to_owned())
}

/// A reference we are willing to put in a path: short, plain characters.
pub(crate) fn valid_ref(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= 128
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && reference != "."
        && reference != ".."
}

/// What a reserve answer means, before the connector acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reserve {
    Final(ReserveOutcome),
    /// The OCS created a reservation but its answer is not the documented success (wrong
    /// result code, other units, unreadable body): it must be released.
    Stray {
        reference: String,
    },
}

fn grants(body: &[u8], units: u64) -> bool {
    let Some(answer) = parse::<RatingDataResponse>(body) else {
        return false;
    };
    match answer.service_rating.as_slice() {
        [only] => {
            only.result_code.as_deref() == Some(RESULT_SUCCESS)
                && only.granted_unit.map(|g| g.service_specific_unit) == Some(units)
        }
        _ => false,
    }
}

/// `POST /nrf-rating/v1/ratingdata` with a PEC `RESERVE` of `units`.
pub(crate) fn reserve(attempt: &Attempt, units: u64) -> Verdict<Reserve> {
    let fin = |outcome, healthy, retry| verdict(Reserve::Final(outcome), healthy, retry);
    let unavailable = ReserveOutcome::Unavailable {
        retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
    };
    let answer = match attempt {
        // Never sent: safe to try again.
        Err(Failure::NotSent) => return fin(unavailable, false, true),
        Err(Failure::Lost) => return fin(ReserveOutcome::Unknown, false, false),
        Ok(answer) => answer,
    };
    if (200..300).contains(&answer.status) {
        let reference = answer.location.as_deref().and_then(rating_ref);
        return match reference {
            Some(reference) if answer.status == 201 && grants(&answer.body, units) => {
                fin(ReserveOutcome::Reserved { reference }, true, false)
            }
            Some(reference) => verdict(Reserve::Stray { reference }, false, false),
            // Something may be held, and we cannot name it.
            None => fin(ReserveOutcome::Unknown, false, false),
        };
    }
    if answer.status >= 500 {
        return fin(ReserveOutcome::Unknown, false, false);
    }
    let problem = Problem::read(&answer.body);
    let declined = |reason| fin(ReserveOutcome::Declined(reason), true, false);
    match answer.status {
        403 if problem.insufficient_credit() => declined(DeclineReason::InsufficientFunds),
        403 if problem.restricted() => declined(DeclineReason::Suspended),
        404 if problem.unknown_subscriber() => declined(DeclineReason::AccountNotFound),
        400 if problem.recognised => declined(DeclineReason::Declined),
        // Any other refusal (credentials, an unknown path, throttling, a redirect): the OCS
        // did not rate the request.
        _ => fin(unavailable, healthy(answer), false),
    }
}

/// `POST /nrf-rating/v1/ratingdata/{ref}/release` with `DEBIT` of `units` or `RELEASE`.
/// Repeatable: once the first of two attempts went through, the second finds the
/// reference gone.
pub(crate) fn finish(
    attempt: &Attempt,
    sub_type: RequestSubType,
    units: u64,
) -> Verdict<FinishOutcome> {
    let answer = match attempt {
        Err(Failure::NotSent) => return verdict(FinishOutcome::Unavailable, false, true),
        Err(Failure::Lost) => return verdict(FinishOutcome::Unknown, false, true),
        Ok(answer) => answer,
    };
    match answer.status {
        200 => {
            let done = parse::<RatingDataResponse>(&answer.body).is_some_and(|body| {
                body.service_rating.iter().all(|rating| {
                    let result_ok = rating
                        .result_code
                        .as_deref()
                        .is_none_or(|code| code == RESULT_SUCCESS);
                    let units_ok = sub_type != RequestSubType::Debit
                        || rating
                            .consumed_unit
                            .is_none_or(|c| c.service_specific_unit == units);
                    result_ok && units_ok
                })
            });
            if done {
                verdict(FinishOutcome::Done, true, false)
            } else {
                verdict(FinishOutcome::Unknown, false, false)
            }
        }
        404 if Problem::read(&answer.body).unknown_ref() => {
            verdict(FinishOutcome::AlreadyFinished, true, false)
        }
        status if status >= 500 => verdict(FinishOutcome::Unknown, false, true),
        // A refusal (unknown subscriber, bad request, credentials, an unknown path): not
        // done, and the reservation still stands.
        _ => verdict(FinishOutcome::Unavailable, healthy(answer), false),
    }
}

// ---------------------------------------------------------------- refunds

/// `POST /balanceManagement/v1/balanceAdjustment` with a positive amount. Never repeated
/// once it may have reached the OCS: a second adjustment would credit twice.
pub(crate) fn adjustment(attempt: &Attempt, refund: &TransactionId) -> Verdict<ChargeOutcome> {
    let unavailable = ChargeOutcome::Unavailable {
        retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
    };
    let answer = match attempt {
        Err(Failure::NotSent) => return verdict(unavailable, false, true),
        Err(Failure::Lost) => return verdict(ChargeOutcome::Unknown, false, false),
        Ok(answer) => answer,
    };
    if answer.status == 204 {
        let success = ChargeOutcome::Success {
            csp_reference: refund.as_str().to_owned(),
        };
        return verdict(success, true, false);
    }
    if (200..300).contains(&answer.status) || answer.status >= 500 {
        return verdict(ChargeOutcome::Unknown, false, false);
    }
    let problem = Problem::read(&answer.body);
    match answer.status {
        404 if problem.no_such_item() => verdict(
            ChargeOutcome::Declined(DeclineReason::AccountNotFound),
            true,
            false,
        ),
        400 if problem.recognised => verdict(
            ChargeOutcome::Declined(DeclineReason::Declined),
            true,
            false,
        ),
        _ => verdict(unavailable, healthy(answer), false),
    }
}

/// Outcome labels of the `dcbhub_csp_calls_total` metric.
pub(crate) mod labels {
    use super::NrfBalance;
    use crate::{AccountOutcome, ChargeOutcome, ConnectorError, FinishOutcome, ReserveOutcome};

    pub fn validate(outcome: &Result<AccountOutcome, ConnectorError>) -> &'static str {
        match outcome {
            Ok(AccountOutcome::Active { .. }) => "active",
            Ok(AccountOutcome::NotFound) => "not_found",
            Ok(AccountOutcome::SuspendedNonPayment) => "suspended_non_payment",
            Ok(AccountOutcome::Suspended) => "suspended",
            Ok(AccountOutcome::Barred) => "barred",
            Err(ConnectorError::Unavailable { .. }) => "unavailable",
        }
    }

    pub fn balance(outcome: &Result<NrfBalance, ConnectorError>) -> &'static str {
        match outcome {
            Ok(NrfBalance::Positive(_)) => "positive",
            Ok(NrfBalance::ZeroOrLess) => "zero_or_less",
            Ok(NrfBalance::NotFound) => "not_found",
            Err(ConnectorError::Unavailable { .. }) => "unavailable",
        }
    }

    pub fn reserve(outcome: &ReserveOutcome) -> &'static str {
        match outcome {
            ReserveOutcome::Reserved { .. } => "reserved",
            ReserveOutcome::Declined(_) => "declined",
            ReserveOutcome::Unknown => "unknown",
            ReserveOutcome::Unavailable { .. } => "unavailable",
        }
    }

    pub fn finish(outcome: &FinishOutcome) -> &'static str {
        match outcome {
            FinishOutcome::Done => "done",
            FinishOutcome::AlreadyFinished => "already_finished",
            FinishOutcome::Unknown => "unknown",
            FinishOutcome::Unavailable => "unavailable",
        }
    }

    pub fn charge(outcome: &ChargeOutcome) -> &'static str {
        match outcome {
            ChargeOutcome::Success { .. } => "success",
            ChargeOutcome::Declined(_) => "declined",
            ChargeOutcome::Unknown => "unknown",
            ChargeOutcome::Unavailable { .. } => "unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Attempt {
        Ok(Answer {
            status,
            location: None,
            body: body.as_bytes().to_vec(),
        })
    }

    fn created(location: Option<&str>, body: &str) -> Attempt {
        Ok(Answer {
            status: 201,
            location: location.map(str::to_owned),
            body: body.as_bytes().to_vec(),
        })
    }

    const GRANTED_40: &str = r#"{"invocationTimeStamp":"2026-11-26T22:47:57.000Z","invocationSequenceNumber":1,
        "serviceRating":[{"serviceId":1,"ratingGroup":1,"grantedUnit":{"serviceSpecificUnit":40},"resultCode":"SUCCESS"}]}"#;
    const INSUFFICIENT: &str = r#"{"@type":"Error","referenceError":"https://app.swaggerhub.com/apis-docs/SigScale/nrf-rating/1.2.1#/",
        "code":"","reason":"Request denied due to insufficient credit (usage applied)","status":"403"}"#;
    const RESTRICTED: &str = r#"{"@type":"Error","code":"","reason":"Request denied due to restrictions or limitations related to the subscriber","status":"403"}"#;
    const UNKNOWN_SUBSCRIBER_PROBLEM: &str = r#"{"type":"https://app.swaggerhub.com/apis/SigScale/nrf-rating/1.0.0#/",
        "title":"Request denied because the subscriber identity is unrecognized","cause":"USER_UNKNOWN",
        "invalidParams":[{"param":"/subscriptionId","reason":"Unknown subscriber identifier"}],"status":404}"#;
    const UNKNOWN_REF: &str = r#"{"@type":"Error","code":"","reason":"Request denied because the rating data ref is not recognized","status":"404"}"#;

    fn reserved(outcome: Verdict<Reserve>) -> Reserve {
        outcome.outcome
    }

    #[test]
    fn reads_rating_refs_from_locations() {
        assert_eq!(
            rating_ref("/nrf-rating/v1/ratingdata/1795733278058962").as_deref(),
            Some("1795733278058962")
        );
        assert_eq!(
            rating_ref("/ratingdata/17957-3").as_deref(),
            Some("17957-3")
        );
        assert_eq!(
            rating_ref("http://ocs:8080/nrf-rating/v1/ratingdata/abc?x=1").as_deref(),
            Some("abc")
        );
        for bad in [
            "",
            "/nrf-rating/v1/ratingdata/",
            "/nrf-rating/v1/ratingdata",
            "/nrf-rating/v1/other/123",
            "/nrf-rating/v1/ratingdata/a%2Fb",
            "/nrf-rating/v1/ratingdata/..",
        ] {
            assert_eq!(rating_ref(bad), None, "{bad}");
        }
    }

    #[test]
    fn reserve_answers() {
        let loc = Some("/nrf-rating/v1/ratingdata/42");
        let ok = reserve(&created(loc, GRANTED_40), 40);
        assert_eq!(
            ok.outcome,
            Reserve::Final(ReserveOutcome::Reserved {
                reference: "42".into()
            })
        );
        assert!(ok.healthy && !ok.retry);
        // Held, but not as asked: to be released.
        let stray = Reserve::Stray {
            reference: "42".into(),
        };
        assert_eq!(reserved(reserve(&created(loc, GRANTED_40), 41)), stray);
        assert_eq!(reserved(reserve(&created(loc, "{garbage"), 40)), stray);
        let odd = GRANTED_40.replace("SUCCESS", "PARTIAL_SUCCESS");
        assert_eq!(reserved(reserve(&created(loc, &odd), 40)), stray);
        let unknown = Reserve::Final(ReserveOutcome::Unknown);
        assert_eq!(reserved(reserve(&created(None, GRANTED_40), 40)), unknown);
        assert_eq!(reserved(reserve(&answer(500, ""), 40)), unknown);
        assert_eq!(reserved(reserve(&Err(Failure::Lost), 40)), unknown);
        let declined = |r| Reserve::Final(ReserveOutcome::Declined(r));
        assert_eq!(
            reserved(reserve(&answer(403, INSUFFICIENT), 40)),
            declined(DeclineReason::InsufficientFunds)
        );
        assert_eq!(
            reserved(reserve(&answer(403, RESTRICTED), 40)),
            declined(DeclineReason::Suspended)
        );
        assert_eq!(
            reserved(reserve(&answer(404, UNKNOWN_SUBSCRIBER_PROBLEM), 40)),
            declined(DeclineReason::AccountNotFound)
        );
        let problem_400 = r#"{"type":"about:blank","title":"Request denied because the service context id is not recognized","cause":"CHARGING_FAILED"}"#;
        assert_eq!(
            reserved(reserve(&answer(400, problem_400), 40)),
            declined(DeclineReason::Declined)
        );
        // The JSON error some versions write without a comma still names the reason.
        let broken = r#"{"@type": "Error"
            "referenceError": "x", "code": "", "reason": "Request denied due to insufficient credit (usage applied)"}"#;
        assert_eq!(
            reserved(reserve(&answer(403, broken), 40)),
            declined(DeclineReason::InsufficientFunds)
        );
        let cause_only = r#"{"type":"x","title":"Forbidden","cause":"END_USER REQUEST_DENIED"}"#;
        assert_eq!(
            reserved(reserve(&answer(403, cause_only), 40)),
            declined(DeclineReason::Suspended)
        );
        let unavailable = Reserve::Final(ReserveOutcome::Unavailable {
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
        });
        for (status, body) in [
            (401, "<html>Unauthorized</html>"),
            (404, "<html>no route</html>"),
            (403, r#"{"@type":"Error","reason":"Forbidden"}"#),
            (400, ""),
            (302, ""),
            (429, ""),
        ] {
            assert_eq!(
                reserved(reserve(&answer(status, body), 40)),
                unavailable,
                "{status}"
            );
        }
        let not_sent = reserve(&Err(Failure::NotSent), 40);
        assert_eq!(not_sent.outcome, unavailable);
        assert!(not_sent.retry);
        assert!(!reserve(&answer(401, ""), 40).healthy);
    }

    #[test]
    fn finish_answers() {
        let debit = |attempt: Attempt| finish(&attempt, RequestSubType::Debit, 20).outcome;
        let ok = r#"{"invocationSequenceNumber":2,"serviceRating":[{"serviceId":1,"ratingGroup":1,"consumedUnit":{"serviceSpecificUnit":20}}]}"#;
        assert_eq!(debit(answer(200, ok)), FinishOutcome::Done);
        assert_eq!(
            debit(answer(200, &ok.replace("20", "19"))),
            FinishOutcome::Unknown
        );
        let failed = r#"{"serviceRating":[{"resultCode":"RATING_FAILED"}]}"#;
        assert_eq!(debit(answer(200, failed)), FinishOutcome::Unknown);
        assert_eq!(debit(answer(200, "not json")), FinishOutcome::Unknown);
        assert_eq!(
            debit(answer(404, UNKNOWN_REF)),
            FinishOutcome::AlreadyFinished
        );
        let problem = r#"{"type":"x","title":"Request denied because the rating data ref is not recognized","cause":"RATING_DATA_REF_UNKNOWN","status":404}"#;
        assert_eq!(debit(answer(404, problem)), FinishOutcome::AlreadyFinished);
        // A 404 that is not about the reference proves nothing was finished.
        assert_eq!(
            debit(answer(404, "<html></html>")),
            FinishOutcome::Unavailable
        );
        assert_eq!(
            debit(answer(404, UNKNOWN_SUBSCRIBER_PROBLEM)),
            FinishOutcome::Unavailable
        );
        assert_eq!(debit(answer(403, INSUFFICIENT)), FinishOutcome::Unavailable);
        assert_eq!(debit(answer(503, "")), FinishOutcome::Unknown);
        let lost = finish(&Err(Failure::Lost), RequestSubType::Release, 20);
        assert_eq!(lost.outcome, FinishOutcome::Unknown);
        assert!(lost.retry, "repeating a release is safe");
        let release = |attempt: Attempt| finish(&attempt, RequestSubType::Release, 20).outcome;
        assert_eq!(
            release(answer(
                200,
                r#"{"serviceRating":[{"serviceId":1,"ratingGroup":1}]}"#
            )),
            FinishOutcome::Done
        );
    }

    #[test]
    fn lookup_answers() {
        let standing = |body: &str| service(&answer(200, body)).outcome;
        let good = r#"{"id":"491701234567","state":"active","product":"1795733224858-258","isServiceEnabled":true}"#;
        assert_eq!(
            standing(good),
            Ok(Standing::Good {
                product: "1795733224858-258".into()
            })
        );
        assert_eq!(
            standing(&good.replace("true", "false")),
            Ok(Standing::Disabled {
                product: "1795733224858-258".into()
            })
        );
        assert_eq!(
            standing(&good.replace("\"active\"", "\"terminated\"")),
            Ok(Standing::NotFound)
        );
        assert_eq!(
            standing(r#"{"product":{"id":"p1"},"isServiceEnabled":true}"#),
            Ok(Standing::Good {
                product: "p1".into()
            })
        );
        for bad in [
            r#"{"state":"active","product":"p","isServiceEnabled":"yes"}"#,
            r#"{"state":"suspended","product":"p","isServiceEnabled":true}"#,
            r#"{"state":"active","isServiceEnabled":true}"#,
            r#"{"state":"active","product":"","isServiceEnabled":true}"#,
            "[]",
        ] {
            let v = service(&answer(200, bad));
            assert!(v.outcome.is_err(), "{bad}");
            assert!(v.retry);
        }
        let missing = r#"{"@type":"Error","reason":"Not Found","message":"No such Service inventory item","status":"404"}"#;
        assert_eq!(
            service(&answer(404, missing)).outcome,
            Ok(Standing::NotFound)
        );
        assert!(service(&answer(404, "")).outcome.is_err());
        assert!(service(&answer(401, "")).outcome.is_err());

        let eur = Currency::parse("EUR").unwrap();
        let total = |body: &str| balance(&answer(200, body), eur).outcome;
        assert_eq!(
            total(
                r#"{"id":"4917","totalBalance":[{"amount":"3.5","units":"cents"}],"buckets":[]}"#
            ),
            Ok(NrfBalance::Positive(MinorUnits::new(350)))
        );
        assert_eq!(
            total(
                r#"{"totalBalance":[{"amount":"0.51","units":"cents"},{"amount":"100","units":"octets"}]}"#
            ),
            Ok(NrfBalance::Positive(MinorUnits::new(51)))
        );
        assert_eq!(total(r#"{"totalBalance":[]}"#), Ok(NrfBalance::ZeroOrLess));
        assert!(total(r#"{"totalBalance":[{"amount":"x","units":"cents"}]}"#).is_err());
        assert!(total(r#"{"buckets":[]}"#).is_err());
        assert_eq!(
            balance(&answer(404, "No such Service inventory item found"), eur).outcome,
            Ok(NrfBalance::NotFound)
        );
    }

    #[test]
    fn adjustment_answers() {
        let id = TransactionId::generate();
        let outcome = |attempt: Attempt| adjustment(&attempt, &id).outcome;
        assert_eq!(
            outcome(answer(204, "")),
            ChargeOutcome::Success {
                csp_reference: id.as_str().to_owned()
            }
        );
        assert_eq!(outcome(answer(200, "{}")), ChargeOutcome::Unknown);
        assert_eq!(outcome(answer(500, "")), ChargeOutcome::Unknown);
        assert_eq!(outcome(Err(Failure::Lost)), ChargeOutcome::Unknown);
        let missing = r#"{"type":"about:blank","title":"Not Found","detail":"No such Product/Service inventory item found"}"#;
        assert_eq!(
            outcome(answer(404, missing)),
            ChargeOutcome::Declined(DeclineReason::AccountNotFound)
        );
        assert!(matches!(
            outcome(answer(401, "")),
            ChargeOutcome::Unavailable { .. }
        ));
        let not_sent = adjustment(&Err(Failure::NotSent), &id);
        assert!(matches!(not_sent.outcome, ChargeOutcome::Unavailable { .. }) && not_sent.retry);
        assert!(!adjustment(&Err(Failure::Lost), &id).retry);
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_major_units("5", 2), Some(MinorUnits::new(500)));
        assert_eq!(parse_major_units("3.5", 2), Some(MinorUnits::new(350)));
        assert_eq!(parse_major_units("0.51", 2), Some(MinorUnits::new(51)));
        assert_eq!(parse_major_units("0.519999", 2), Some(MinorUnits::new(51)));
        assert_eq!(parse_major_units("-6.5", 2), Some(MinorUnits::new(-650)));
        assert_eq!(parse_major_units("7", 0), Some(MinorUnits::new(7)));
        assert_eq!(parse_major_units("1.2", 3), Some(MinorUnits::new(1200)));
        for bad in ["", "-", ".5", "5.", "1e3", "1.2.3", " ", "+5"] {
            assert_eq!(parse_major_units(bad, 2), None, "{bad:?}");
        }
        let eur = Currency::parse("EUR").unwrap();
        let money = |s| Money::parse(s, eur).unwrap();
        assert_eq!(units_of(&money("0.40"), 1), Some(40));
        assert_eq!(units_of(&money("0.40"), 5), Some(8));
        assert_eq!(units_of(&money("0.42"), 5), None);
        assert_eq!(units_of(&money("0.42"), 0), None);
    }
}
