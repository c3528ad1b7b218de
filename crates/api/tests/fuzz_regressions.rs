//! Inputs the fuzzers in `fuzz/` and schemathesis found (docs/FUZZING.md), kept as
//! regression tests of the body reader.

use dcbhub_api::ApiError;
use dcbhub_api::extract::{RequestBody, parse_body};
use serde::Deserialize;

#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct Body {
    amount: Option<String>,
}

impl RequestBody for Body {
    const FIELDS: &'static [&'static str] = &["amount"];
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Charge {
    #[serde(rename = "extTransactionID")]
    ext_transaction_id: String,
    msisdn: Option<String>,
    amount: String,
    currency: String,
}

impl RequestBody for Charge {
    const FIELDS: &'static [&'static str] = &["extTransactionID", "msisdn", "amount", "currency"];
}

/// Found by the same run: a field given twice.
#[test]
fn a_repeated_field_is_named() {
    let refused = parse_body::<Charge>(
        b"{\"extTransactionID\":\"ott-0001\",\"msisdn\":\"+4477009000\",\"msisdn\":\"+447700900000\",\"amount\":\"3.99\",\"currency\":\"GBP\"}",
    )
    .map(|_| ());
    assert_eq!(
        refused,
        Err(ApiError::InvalidRequest {
            field: Some("msisdn".to_owned()),
            message: "The field msisdn appears more than once.".to_owned(),
        })
    );
}

/// The fuzz smoke run in CI (seed 1) found a JSON object without `amount` refused with no
/// field named ("does not match the request schema"), as if it were not an object at all.
#[test]
fn a_missing_required_field_is_named() {
    let refused = parse_body::<Charge>(
        b"{\"extTransactionID\":\"ott-0001\",\"msisdn\":\"+4477009000cember\"}\n",
    )
    .map(|_| ());
    assert_eq!(
        refused,
        Err(ApiError::InvalidRequest {
            field: Some("amount".to_owned()),
            message: "The field amount is required.".to_owned(),
        })
    );
}

/// A JSON object whose key is written with an escape (`"\u0061mount"` is `"amount"`) was
/// refused as "not a JSON object": the first pass borrowed keys as `&str`, which serde_json
/// cannot do for escaped text.
#[test]
fn an_escaped_key_is_read_like_any_other() {
    let body = parse_body::<Body>(br#"{"\u0061mount": "4.99"}"#).map(|b| b.amount);
    assert_eq!(body, Ok(Some("4.99".to_owned())));
}

#[test]
fn an_escaped_unknown_key_is_named_as_not_supported() {
    let refused = parse_body::<Body>(br#"{"\u00e9t\u00e9": 1}"#).map(|_| ());
    assert_eq!(
        refused,
        Err(ApiError::ParameterNotSupported {
            field: "\u{e9}t\u{e9}".to_owned()
        })
    );
}
