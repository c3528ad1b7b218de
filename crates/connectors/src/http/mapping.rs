//! Every CSP answer mapped to a typed outcome, with a verdict for the circuit breaker and
//! the retry loop. Only an explicit, well-formed answer is final; anything unexpected is
//! `Unknown` for a charge and `Unavailable` (or transient) otherwise — never success.

use dcbhub_domain::{Currency, NotificationId, TransactionId};
use serde::de::DeserializeOwned;

use super::wire::{
    AccountTypeWord, ErrorBody, NotificationResponse, TransactionResponse, TransactionStatus,
    ValidateAccountResponse, codes,
};
use crate::{
    AccountOutcome, AccountType, ChargeOutcome, ConnectorError, DeclineReason, NotifyOutcome,
    StatusOutcome,
};

/// `Retry-After` given to callers when the CSP named none.
pub(crate) const DEFAULT_RETRY_AFTER_SECS: u32 = 5;
const MAX_RETRY_AFTER_SECS: u32 = 3_600;

/// An HTTP answer, read in full.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<u32>,
    pub body: Vec<u8>,
}

/// A call that got no readable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The connection could not be made: the request never left.
    NotSent,
    /// Timeout or broken connection after the request may have reached the CSP.
    Lost,
}

pub(crate) type Attempt = Result<Answer, Failure>;

#[derive(Debug)]
pub(crate) struct Verdict<T> {
    pub outcome: T,
    /// The CSP answered sensibly (even with a refusal); feeds the circuit breaker.
    pub healthy: bool,
    /// Worth another attempt, if the call may be repeated.
    pub retry: bool,
}

fn verdict<T>(outcome: T, healthy: bool, retry: bool) -> Verdict<T> {
    Verdict {
        outcome,
        healthy,
        retry,
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}

fn error_code(answer: &Answer) -> Option<String> {
    parse::<ErrorBody>(&answer.body).map(|e| e.code)
}

/// The retry delay a CSP asked for: the `Retry-After` header, else `retryAfterSeconds`.
fn retry_after(answer: &Answer) -> u32 {
    answer
        .retry_after
        .or_else(|| parse::<ErrorBody>(&answer.body).and_then(|e| e.retry_after_seconds))
        .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
        .clamp(1, MAX_RETRY_AFTER_SECS)
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is ignored).
pub(crate) fn parse_retry_after(value: &str) -> Option<u32> {
    value.trim().parse::<u32>().ok()
}

/// A well-formed `503 csp-unavailable`: the CSP refused before doing anything.
fn refused(answer: &Answer) -> bool {
    answer.status == 503 && error_code(answer).as_deref() == Some(codes::CSP_UNAVAILABLE)
}

/// A server error or throttling: the CSP is struggling.
fn struggling(answer: &Answer) -> bool {
    answer.status >= 500 || answer.status == 429
}

/// The account refusals of API.md §2, each only with its documented status.
fn account_refusal(answer: &Answer) -> Option<AccountOutcome> {
    let code = error_code(answer)?;
    match (answer.status, code.as_str()) {
        (404, codes::ACCOUNT_NOT_FOUND) => Some(AccountOutcome::NotFound),
        (400, codes::SUSPENDED_NON_PAYMENT) => Some(AccountOutcome::SuspendedNonPayment),
        (400, codes::ACCOUNT_SUSPENDED) => Some(AccountOutcome::Suspended),
        (400, codes::DCB_BARRED) => Some(AccountOutcome::Barred),
        _ => None,
    }
}

fn active_account(body: &[u8]) -> Option<AccountOutcome> {
    let answer: ValidateAccountResponse = parse(body)?;
    let currency = Currency::parse(&answer.currency).ok()?;
    if answer.account_ref.is_empty() {
        return None;
    }
    let account_type = match answer.account_type {
        AccountTypeWord::Prepaid => AccountType::Prepaid,
        AccountTypeWord::Postpaid => AccountType::Postpaid,
    };
    Some(AccountOutcome::Active {
        account_type,
        currency,
        account_ref: answer.account_ref,
    })
}

pub(crate) fn validate(attempt: &Attempt) -> Verdict<Result<AccountOutcome, ConnectorError>> {
    let unavailable = |secs| {
        Err(ConnectorError::Unavailable {
            retry_after_secs: secs,
        })
    };
    let answer = match attempt {
        Ok(answer) => answer,
        Err(_) => return verdict(unavailable(DEFAULT_RETRY_AFTER_SECS), false, true),
    };
    if answer.status == 200 {
        return match active_account(&answer.body) {
            Some(active) => verdict(Ok(active), true, false),
            None => verdict(unavailable(DEFAULT_RETRY_AFTER_SECS), false, true),
        };
    }
    if let Some(refusal) = account_refusal(answer) {
        return verdict(Ok(refusal), true, false);
    }
    if refused(answer) {
        return verdict(unavailable(retry_after(answer)), true, false);
    }
    let struggling = struggling(answer);
    verdict(
        unavailable(retry_after(answer)),
        !struggling,
        answer.status >= 500,
    )
}

/// A charge is repeated only when it never left; anything that may have reached the CSP is
/// left to the reconciler.
pub(crate) fn charge(attempt: &Attempt, id: &TransactionId) -> Verdict<ChargeOutcome> {
    let answer = match attempt {
        Err(Failure::NotSent) => {
            return verdict(
                ChargeOutcome::Unavailable {
                    retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
                },
                false,
                true,
            );
        }
        Err(Failure::Lost) => return verdict(ChargeOutcome::Unknown, false, false),
        Ok(answer) => answer,
    };
    let outcome = match answer.status {
        200 | 201 => match parse::<TransactionResponse>(&answer.body) {
            Some(TransactionResponse {
                transaction_id,
                status: TransactionStatus::Success,
                csp_reference: Some(csp_reference),
                ..
            }) if transaction_id == id.as_str() && !csp_reference.is_empty() => {
                return verdict(ChargeOutcome::Success { csp_reference }, true, false);
            }
            // PENDING, FAILED in a 2xx, another id, a missing reference: not final.
            Some(_) => return verdict(ChargeOutcome::Unknown, true, false),
            None => return verdict(ChargeOutcome::Unknown, false, false),
        },
        402 => match error_code(answer).as_deref() {
            Some(codes::TRANSACTION_DECLINED) => Some(DeclineReason::Declined),
            Some(codes::INSUFFICIENT_FUNDS) => Some(DeclineReason::InsufficientFunds),
            _ => None,
        }
        .map(ChargeOutcome::Declined),
        401 => Some(ChargeOutcome::Unavailable {
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
        }),
        _ if refused(answer) => Some(ChargeOutcome::Unavailable {
            retry_after_secs: retry_after(answer),
        }),
        _ => account_refusal(answer)
            .and_then(|refusal| DeclineReason::for_account(&refusal))
            .map(ChargeOutcome::Declined),
    };
    match outcome {
        Some(outcome) => verdict(outcome, true, false),
        None => verdict(ChargeOutcome::Unknown, !struggling(answer), false),
    }
}

pub(crate) fn status(attempt: &Attempt, id: &TransactionId) -> Verdict<StatusOutcome> {
    let answer = match attempt {
        Ok(answer) => answer,
        Err(_) => return verdict(StatusOutcome::Unavailable, false, true),
    };
    match answer.status {
        200 => {
            let Some(body) = parse::<TransactionResponse>(&answer.body) else {
                return verdict(StatusOutcome::Unavailable, false, true);
            };
            if body.transaction_id != id.as_str() {
                return verdict(StatusOutcome::Unavailable, false, false);
            }
            let outcome = match (body.status, body.csp_reference) {
                (TransactionStatus::Success, Some(csp_reference)) if !csp_reference.is_empty() => {
                    StatusOutcome::Success { csp_reference }
                }
                (TransactionStatus::Success, _) => StatusOutcome::Unavailable,
                // The CSP says FAILED, which is final; an unknown reason is a plain decline.
                (TransactionStatus::Failed, _) => StatusOutcome::Failed(
                    body.failure_code
                        .as_deref()
                        .and_then(DeclineReason::from_code)
                        .unwrap_or(DeclineReason::Declined),
                ),
                (TransactionStatus::Pending, _) => StatusOutcome::Pending,
            };
            verdict(outcome, true, false)
        }
        404 if error_code(answer).as_deref() == Some(codes::TRANSACTION_NOT_FOUND) => {
            verdict(StatusOutcome::NotFound, true, false)
        }
        _ => verdict(
            StatusOutcome::Unavailable,
            !struggling(answer) || refused(answer),
            answer.status >= 500 && !refused(answer),
        ),
    }
}

pub(crate) fn notify(attempt: &Attempt, id: &NotificationId) -> Verdict<NotifyOutcome> {
    let answer = match attempt {
        Ok(answer) => answer,
        Err(Failure::NotSent) => {
            return verdict(
                NotifyOutcome::Transient("CSP unreachable".into()),
                false,
                true,
            );
        }
        Err(Failure::Lost) => {
            return verdict(
                NotifyOutcome::Transient("no answer in time".into()),
                false,
                true,
            );
        }
    };
    let code = error_code(answer);
    let described = |fallback: String| code.clone().unwrap_or(fallback);
    match answer.status {
        200 | 202 => match parse::<NotificationResponse>(&answer.body) {
            Some(body) if body.notification_id == id.as_str() => {
                verdict(NotifyOutcome::Delivered, true, false)
            }
            _ => verdict(
                NotifyOutcome::Transient("unreadable answer".into()),
                false,
                true,
            ),
        },
        400 | 422 => verdict(
            NotifyOutcome::Permanent(described(format!("HTTP {}", answer.status))),
            true,
            false,
        ),
        404 if code.as_deref() == Some(codes::ACCOUNT_NOT_FOUND) => verdict(
            NotifyOutcome::Permanent(codes::ACCOUNT_NOT_FOUND.into()),
            true,
            false,
        ),
        status => verdict(
            NotifyOutcome::Transient(described(format!("HTTP {status}"))),
            !struggling(answer) || refused(answer),
            status >= 500 && !refused(answer),
        ),
    }
}

/// Outcome labels of the `dcbhub_csp_calls_total` metric.
pub(crate) mod labels {
    use crate::{AccountOutcome, ChargeOutcome, ConnectorError, NotifyOutcome, StatusOutcome};

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

    pub fn charge(outcome: &ChargeOutcome) -> &'static str {
        match outcome {
            ChargeOutcome::Success { .. } => "success",
            ChargeOutcome::Declined(_) => "declined",
            ChargeOutcome::Unknown => "unknown",
            ChargeOutcome::Unavailable { .. } => "unavailable",
        }
    }

    pub fn status(outcome: &StatusOutcome) -> &'static str {
        match outcome {
            StatusOutcome::Success { .. } => "success",
            StatusOutcome::Failed(_) => "failed",
            StatusOutcome::Pending => "pending",
            StatusOutcome::NotFound => "not_found",
            StatusOutcome::Unavailable => "unavailable",
        }
    }

    pub fn notify(outcome: &NotifyOutcome) -> &'static str {
        match outcome {
            NotifyOutcome::Delivered => "delivered",
            NotifyOutcome::Transient(_) => "transient",
            NotifyOutcome::Permanent(_) => "permanent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Attempt {
        Ok(Answer {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        })
    }

    fn id() -> TransactionId {
        TransactionId::parse("tx_0190c7e0a1b27c3d8e9f001122334455").unwrap()
    }

    fn tx(status: &str, extra: &str) -> String {
        format!(
            r#"{{"transactionId":"{}","status":"{status}"{extra}}}"#,
            id()
        )
    }

    #[test]
    fn charge_answers() {
        let ok = charge(
            &answer(201, &tx("SUCCESS", r#","cspReference":"r1""#)),
            &id(),
        );
        assert_eq!(
            ok.outcome,
            ChargeOutcome::Success {
                csp_reference: "r1".into()
            }
        );
        assert!(ok.healthy && !ok.retry);
        let unknown = |attempt: Attempt| charge(&attempt, &id()).outcome;
        assert_eq!(
            unknown(answer(201, &tx("SUCCESS", ""))),
            ChargeOutcome::Unknown
        );
        assert_eq!(
            unknown(answer(201, &tx("PENDING", ""))),
            ChargeOutcome::Unknown
        );
        assert_eq!(
            unknown(answer(201, &tx("MAYBE", r#","cspReference":"r""#))),
            ChargeOutcome::Unknown
        );
        assert_eq!(unknown(answer(201, "{")), ChargeOutcome::Unknown);
        assert_eq!(
            unknown(answer(500, r#"{"code":"system-error","message":""}"#)),
            ChargeOutcome::Unknown
        );
        assert_eq!(
            unknown(answer(402, r#"{"code":"spending-limit","message":""}"#)),
            ChargeOutcome::Unknown
        );
        assert_eq!(unknown(answer(404, "")), ChargeOutcome::Unknown);
        assert_eq!(unknown(answer(503, "")), ChargeOutcome::Unknown);
        assert_eq!(unknown(Err(Failure::Lost)), ChargeOutcome::Unknown);
        let other_id = r#"{"transactionId":"tx_other","status":"SUCCESS","cspReference":"r"}"#;
        assert_eq!(unknown(answer(201, other_id)), ChargeOutcome::Unknown);
        assert_eq!(
            unknown(answer(
                402,
                r#"{"code":"insufficient-funds","message":"x"}"#
            )),
            ChargeOutcome::Declined(DeclineReason::InsufficientFunds)
        );
        assert_eq!(
            unknown(answer(400, r#"{"code":"dcb-barred","message":"x"}"#)),
            ChargeOutcome::Declined(DeclineReason::Barred)
        );
        // The right code with the wrong status is not trusted.
        assert_eq!(
            unknown(answer(400, r#"{"code":"account-not-found","message":"x"}"#)),
            ChargeOutcome::Unknown
        );
        let refused = Ok(Answer {
            status: 503,
            retry_after: Some(9),
            body: br#"{"code":"csp-unavailable","message":"x"}"#.to_vec(),
        });
        assert_eq!(
            unknown(refused),
            ChargeOutcome::Unavailable {
                retry_after_secs: 9
            }
        );
        let not_sent = charge(&Err(Failure::NotSent), &id());
        assert!(matches!(
            not_sent.outcome,
            ChargeOutcome::Unavailable { .. }
        ));
        assert!(not_sent.retry && !not_sent.healthy);
        assert!(!charge(&Err(Failure::Lost), &id()).retry);
    }

    #[test]
    fn validate_answers() {
        let outcome = |attempt: Attempt| validate(&attempt).outcome;
        let ok =
            r#"{"status":"ACTIVE","type":"prepaid","currency":"GBP","accountRef":"a1","extra":1}"#;
        assert!(matches!(
            outcome(answer(200, ok)),
            Ok(AccountOutcome::Active {
                account_type: AccountType::Prepaid,
                ..
            })
        ));
        for bad in [
            r#"{"status":"DORMANT","type":"prepaid","currency":"GBP","accountRef":"a1"}"#,
            r#"{"status":"ACTIVE","type":"hybrid","currency":"GBP","accountRef":"a1"}"#,
            r#"{"status":"ACTIVE","type":"prepaid","currency":"XXX","accountRef":"a1"}"#,
            r#"{"status":"ACTIVE","type":"prepaid","currency":"GBP","accountRef":""}"#,
            r#"{"status":"ACTIVE","type":"prepaid"}"#,
            "not json",
        ] {
            let v = validate(&answer(200, bad));
            assert!(v.outcome.is_err(), "{bad}");
            assert!(v.retry && !v.healthy);
        }
        assert_eq!(
            outcome(answer(
                404,
                r#"{"code":"account-not-found","message":"Account not found"}"#
            )),
            Ok(AccountOutcome::NotFound)
        );
        assert_eq!(
            outcome(answer(
                400,
                r#"{"code":"suspended-non-payment","message":"x"}"#
            )),
            Ok(AccountOutcome::SuspendedNonPayment)
        );
        assert!(outcome(answer(404, "<html>")).is_err());
        let server_error = validate(&answer(502, ""));
        assert!(server_error.retry && !server_error.healthy);
        let auth = validate(&answer(
            401,
            r#"{"code":"authorization-failure","message":"x"}"#,
        ));
        assert!(auth.outcome.is_err() && !auth.retry);
    }

    #[test]
    fn status_answers() {
        let outcome = |attempt: Attempt| status(&attempt, &id()).outcome;
        assert_eq!(
            outcome(answer(
                200,
                &tx("FAILED", r#","failureCode":"insufficient-funds""#)
            )),
            StatusOutcome::Failed(DeclineReason::InsufficientFunds)
        );
        assert_eq!(
            outcome(answer(200, &tx("FAILED", r#","failureCode":"odd""#))),
            StatusOutcome::Failed(DeclineReason::Declined)
        );
        assert_eq!(
            outcome(answer(200, &tx("PENDING", ""))),
            StatusOutcome::Pending
        );
        assert_eq!(
            outcome(answer(200, &tx("SUCCESS", ""))),
            StatusOutcome::Unavailable
        );
        assert_eq!(
            outcome(answer(200, &tx("SETTLED", ""))),
            StatusOutcome::Unavailable
        );
        assert_eq!(
            outcome(answer(
                404,
                r#"{"code":"transaction-not-found","message":"x"}"#
            )),
            StatusOutcome::NotFound
        );
        assert_eq!(outcome(answer(404, "")), StatusOutcome::Unavailable);
    }

    #[test]
    fn notify_answers() {
        let nid = NotificationId::parse("ntf_0190c7e0a1b27c3d8e9f001122334455").unwrap();
        let notify = |attempt: &Attempt| super::notify(attempt, &nid);
        let accepted = format!(r#"{{"notificationId":"{nid}","status":"ACCEPTED"}}"#);
        assert_eq!(
            notify(&answer(202, &accepted)).outcome,
            NotifyOutcome::Delivered
        );
        assert!(matches!(
            notify(&answer(202, "")).outcome,
            NotifyOutcome::Transient(_)
        ));
        let other = r#"{"notificationId":"ntf_x","status":"ACCEPTED"}"#;
        assert!(matches!(
            notify(&answer(202, other)).outcome,
            NotifyOutcome::Transient(_)
        ));
        assert_eq!(
            notify(&answer(
                404,
                r#"{"code":"account-not-found","message":"x"}"#
            ))
            .outcome,
            NotifyOutcome::Permanent("account-not-found".into())
        );
        assert!(matches!(
            notify(&answer(400, "")).outcome,
            NotifyOutcome::Permanent(_)
        ));
        assert!(matches!(
            notify(&answer(404, "")).outcome,
            NotifyOutcome::Transient(_)
        ));
        assert!(matches!(
            notify(&answer(500, "")).outcome,
            NotifyOutcome::Transient(_)
        ));
        assert!(matches!(
            notify(&Err(Failure::Lost)).outcome,
            NotifyOutcome::Transient(_)
        ));
    }

    #[test]
    fn retry_after_header() {
        assert_eq!(parse_retry_after(" 12 "), Some(12));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
    }
}
