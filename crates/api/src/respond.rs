//! JSON answers of the hot routes.

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// A JSON answer serialized into a buffer that fits it at once. axum's `Json` starts at 128
/// bytes and writes through `BytesMut`'s `io::Write` adapter, a reserve check per token: a
/// transaction's answer (~400 bytes) cost ~6k instructions, a good part of a lookup.
pub struct JsonAnswer<T>(pub T);

/// Fits a transaction's answer (~400 bytes) with room for a long description; an answer
/// longer still (escaped control characters) grows the buffer as any `Vec` does.
const CAPACITY: usize = 640;

impl<T: Serialize> IntoResponse for JsonAnswer<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response(),
            Err(e) => ApiError::internal("serializing an answer", e).into_response(),
        }
    }
}
