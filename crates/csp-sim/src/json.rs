//! A JSON body extractor whose every rejection is the API's JSON error, not axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::SimError;

/// Largest request body the simulator reads.
pub const MAX_BODY: usize = 16 * 1024;

pub struct SimJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for SimJson<T> {
    type Rejection = SimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(SimError::unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| SimError::payload_too_large())?;
        if bytes.len() > MAX_BODY {
            return Err(SimError::payload_too_large());
        }
        parse(&bytes).map(SimJson)
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SimError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let message = error.inner().to_string();
        // serde names an unknown field as "unknown field `name`, expected …".
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or_default();
            return SimError::not_supported(field);
        }
        let path = error.path().to_string();
        let field = if path == "." { "body" } else { path.as_str() };
        SimError::invalid(field, "Malformed JSON, a missing field or a wrong type")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcbhub_connectors::http::wire::ValidateAccountRequest;

    #[test]
    fn names_the_field_at_fault() {
        let unknown = parse::<ValidateAccountRequest>(br#"{"msisdn":"+1","pin":"1"}"#).unwrap_err();
        assert_eq!(unknown.status().as_u16(), 400);
        assert!(format!("{unknown:?}").contains("parameter-not-supported"));
        assert!(format!("{unknown:?}").contains("\"pin\""));
        let wrong = parse::<ValidateAccountRequest>(br#"{"msisdn":5}"#).unwrap_err();
        assert!(format!("{wrong:?}").contains("\"msisdn\""));
        assert!(parse::<ValidateAccountRequest>(b"{").is_err());
    }
}
