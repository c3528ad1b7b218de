//! Our own extractors, so that every rejection answers with the contract's JSON error
//! instead of axum's plain-text defaults.

use std::fmt;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::error::ApiError;

/// Largest request body the API reads.
pub const MAX_BODY: usize = 16 * 1024;

/// A request body type: which top-level fields the contract defines for it.
pub trait RequestBody: DeserializeOwned {
    const FIELDS: &'static [&'static str];
}

/// A JSON body read under the contract's rules: `application/json` only (else 415), at most
/// 16 KiB (else 413), an object whose every field the contract defines (else
/// `parameter-not-supported` naming it), of the right types (else `invalid-request` naming
/// the field).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > MAX_BODY) {
            return Err(ApiError::PayloadTooLarge);
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        if bytes.len() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge);
        }
        parse_body(&bytes).map(ApiJson)
    }
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Parses a body for `T`; public so fuzzing and tests reach exactly what the edge runs.
pub fn parse_body<T: RequestBody>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |_| ApiError::InvalidRequest {
        field: None,
        message: "The body is not a JSON object.".into(),
    };
    // First pass: the shape and the field names, without interpreting any value.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let unknown = FieldNames(T::FIELDS)
        .deserialize(&mut de)
        .and_then(|unknown| de.end().map(|()| unknown))
        .map_err(malformed)?;
    if let Some(field) = unknown {
        return Err(ApiError::ParameterNotSupported { field });
    }
    // Second pass: the values. Tracking the path of a value costs a copy of every key, so it
    // is left to a third pass over a body that does not fit.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    if let Ok(body) = T::deserialize(&mut de) {
        return Ok(body);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        // serde reports a missing or repeated field at the root, only in its message
        // (`missing field `amount``); no structured form exists, so the name is read there.
        let inner = e.inner().to_string();
        for (prefix, problem) in [
            ("missing field `", "is required"),
            ("duplicate field `", "appears more than once"),
        ] {
            let named = inner
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .filter(|name| T::FIELDS.contains(name));
            if let Some(name) = named {
                return ApiError::InvalidRequest {
                    field: Some(name.to_owned()),
                    message: format!("The field {name} {problem}."),
                };
            }
        }
        let field = (path != ".").then(|| path.split(['.', '[']).next().unwrap_or("").to_owned());
        let message = match &field {
            Some(f) => format!("The field {f} is invalid."),
            None => "The body does not match the request schema.".to_owned(),
        };
        ApiError::InvalidRequest {
            field: field.filter(|f| !f.is_empty()),
            message,
        }
    })
}

/// Reads a JSON object's keys against the fields the contract defines and skips its values;
/// answers the first key it does not define, in the order of the document. Hand-written
/// instead of reading the object into a map: it allocates nothing for a body that fits.
struct FieldNames(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldNames {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldNames {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut first_unknown = None;
        while let Some(unknown) = map.next_key_seed(FieldName(self.0))? {
            first_unknown = first_unknown.or(unknown);
            map.next_value::<IgnoredAny>()?;
        }
        Ok(first_unknown)
    }
}

/// One key: `Some(name)` when the contract does not define it. A key written with escapes
/// (`"\u0061mount"`) arrives unescaped, as its value would.
struct FieldName(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldName {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldName {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok((!self.0.contains(&key)).then(|| key.to_owned()))
    }
}

/// Path parameters, rejected with the contract's error body (an unreadable path is a path
/// that does not exist).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|_| ApiError::NotFound)
    }
}

/// A query string, rejected with the contract's error body.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::InvalidRequest {
                field: None,
                message: format!("Invalid query string: {}", e.body_text()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Probe {
        msisdn: Option<String>,
        count: Option<u32>,
    }

    impl RequestBody for Probe {
        const FIELDS: &'static [&'static str] = &["msisdn", "count"];
    }

    #[test]
    fn rejections() {
        let code = |b: &str| {
            parse_body::<Probe>(b.as_bytes())
                .map(|_| ())
                .map_err(|e| (e.code(), e.body().field))
        };
        assert_eq!(code(r#"{"msisdn":"+1"}"#), Ok(()));
        assert_eq!(code("{"), Err(("invalid-request", None)));
        assert_eq!(code("[]"), Err(("invalid-request", None)));
        assert_eq!(code("null"), Err(("invalid-request", None)));
        assert_eq!(
            code(r#"{"foo":1}"#),
            Err(("parameter-not-supported", Some("foo".into())))
        );
        // The first unknown field of the document, whatever follows it.
        assert_eq!(
            code(r#"{"msisdn":"+1","zed":{"a":[1]},"alpha":2}"#),
            Err(("parameter-not-supported", Some("zed".into())))
        );
        // Unreadable JSON is malformed before any unknown field counts.
        assert_eq!(code(r#"{"foo":1,}"#), Err(("invalid-request", None)));
        assert_eq!(code(r#"{"foo":1} x"#), Err(("invalid-request", None)));
        assert_eq!(code(r#"{"msisdn":"+1"}  "#), Ok(()));
        assert_eq!(
            code(r#"{"count":"x"}"#),
            Err(("invalid-request", Some("count".into())))
        );
        assert_eq!(
            code(r#"{"msisdn":5}"#),
            Err(("invalid-request", Some("msisdn".into())))
        );
        assert_eq!(
            code("{\"msisdn\":\"a\",\"msisdn\":\"b\"}").map_err(|e| e.0),
            Err("invalid-request")
        );
    }
}
