//! `dcbhub_api::extract::parse_body`, the edge's JSON reader, with a body type shaped like
//! `POST /transaction`'s (the route DTOs are private to the api crate). It must never panic,
//! accept only objects whose every field is declared, name an undeclared field it refuses,
//! and call a body "not a JSON object" only when it is not one.
#![no_main]

use dcbhub_api::ApiError;
use dcbhub_api::extract::{RequestBody, parse_body};
use dcbhub_domain::AmountLiteral;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct TransactionBody {
    #[serde(rename = "extTransactionID")]
    ext_transaction_id: String,
    msisdn: Option<String>,
    email: Option<String>,
    amount: AmountLiteral,
    currency: String,
    description: String,
    product_code: Option<String>,
    pin_id: Option<String>,
    #[serde(rename = "type")]
    tx_type: Option<String>,
    #[serde(rename = "originalExtTransactionID")]
    original_ext_transaction_id: Option<String>,
    tax_included: Option<bool>,
}

impl RequestBody for TransactionBody {
    const FIELDS: &'static [&'static str] = &[
        "extTransactionID",
        "msisdn",
        "email",
        "amount",
        "currency",
        "description",
        "productCode",
        "pinId",
        "type",
        "originalExtTransactionID",
        "taxIncluded",
    ];
}

fuzz_target!(|data: &[u8]| {
    match parse_body::<TransactionBody>(data) {
        Ok(_) => {
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(data).expect("an accepted body is a JSON object");
            assert!(
                object
                    .keys()
                    .all(|k| TransactionBody::FIELDS.contains(&k.as_str()))
            );
        }
        Err(ApiError::ParameterNotSupported { field }) => {
            assert!(!TransactionBody::FIELDS.contains(&field.as_str()));
        }
        Err(e) => {
            assert_eq!(e.status().as_u16(), 400, "{e:?}");
            assert_eq!(e.code(), "invalid-request");
            // "not a JSON object" only for what really is not one.
            if e.body().field.is_none()
                && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data)
                    .is_ok()
            {
                panic!("a JSON object refused as not one: {e:?}");
            }
        }
    }
});
