//! The requests the benchmark sends: charges with distinct `extTransactionID`s spread over
//! the ordinary sandbox customers, and lookups of acknowledged charges.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};

use crate::load::Workload;

/// Sandbox numbers `+447700900100`–`+447700900999`: ordinary postpaid GBP accounts (API.md
/// §9); 000–008 have special behaviour and are avoided.
const FIRST_CUSTOMER: u64 = 100;
const CUSTOMERS: u64 = 900;

/// `POST /transaction` charges, each with a new `extTransactionID`.
pub struct Charges {
    /// Makes ids unique across runs on one database.
    pub run_id: String,
    pub api_key: Option<String>,
    pub host: String,
    pub path: &'static str,
}

impl Charges {
    pub fn body(&self, ext_id: &str, conn: usize, seq: u64) -> String {
        // A prime stride spreads neighbouring connections over different customers.
        let customer = FIRST_CUSTOMER + (conn as u64 * 7919 + seq) % CUSTOMERS;
        format!(
            concat!(
                r#"{{"extTransactionID":"{ext}","msisdn":"+447700900{customer}","#,
                r#""amount":"0.99","currency":"GBP","#,
                r#""description":"Premium plan renewal, December","#,
                r#""productCode":"PREMIUM-M","taxIncluded":true}}"#
            ),
            ext = ext_id,
            customer = customer,
        )
    }
}

impl Workload for Charges {
    fn request(&self, conn: usize, seq: u64) -> (Request<Full<Bytes>>, Option<String>) {
        let ext_id = format!("b{}-{conn}-{seq}", self.run_id);
        let body = self.body(&ext_id, conn, seq);
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json");
        if let Some(key) = &self.api_key {
            builder = builder.header("x-api-key", key);
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())));
        (request, Some(ext_id))
    }

    fn expected(&self) -> StatusCode {
        StatusCode::CREATED
    }
}

/// `GET /transaction/{extTransactionID}` over acknowledged charges, round robin.
pub struct Lookups {
    pub ids: Arc<Vec<String>>,
    pub api_key: String,
    pub host: String,
}

impl Workload for Lookups {
    fn request(&self, conn: usize, seq: u64) -> (Request<Full<Bytes>>, Option<String>) {
        let len = self.ids.len().max(1) as u64;
        let index = (conn as u64 * 104_729 + seq * 64 + conn as u64) % len;
        let id = self
            .ids
            .get(usize::try_from(index).unwrap_or(0))
            .map_or("none", String::as_str);
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("/transaction/{id}"))
            .header(HOST, &self.host)
            .header("x-api-key", &self.api_key)
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())));
        (request, None)
    }

    fn expected(&self) -> StatusCode {
        StatusCode::OK
    }
}

/// A short random id for this run (lower-case letters and digits).
pub fn run_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_distinct_and_avoid_special_numbers() {
        let w = Charges {
            run_id: "abc".into(),
            api_key: Some("k".into()),
            host: "h".into(),
            path: "/transaction",
        };
        let mut ids = std::collections::HashSet::new();
        for conn in 0..64 {
            for seq in 0..50 {
                let (req, tag) = w.request(conn, seq);
                assert_eq!(req.uri().path(), "/transaction");
                let tag = tag.unwrap();
                assert!(tag.len() <= 64);
                assert!(ids.insert(tag.clone()), "duplicate {tag}");
                let body: serde_json::Value =
                    serde_json::from_str(&w.body(&tag, conn, seq)).unwrap();
                let msisdn = body["msisdn"].as_str().unwrap();
                let last: u64 = msisdn["+447700900".len()..].parse().unwrap();
                assert!((100..=999).contains(&last), "{msisdn}");
                assert_eq!(body["extTransactionID"], tag.as_str());
            }
        }
    }
}
