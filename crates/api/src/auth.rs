//! Authentication extractors: partners by `X-API-KEY`, operators by the admin bearer token.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use dcbhub_core::{AuthError, Caller};
use dcbhub_domain::ApiKeyHash;

use crate::error::ApiError;
use crate::state::AppState;

pub const API_KEY_HEADER: &str = "x-api-key";

/// The partner that sent the request.
pub struct Partner(pub Arc<Caller>);

impl FromRequestParts<AppState> for Partner {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok());
        match state.auth.authenticate(presented).await {
            Ok(caller) => {
                tracing::Span::current().record("partner", caller.partner.code.as_str());
                Ok(Partner(caller))
            }
            Err(AuthError::Unauthorized) => Err(ApiError::AuthorizationFailure),
            Err(AuthError::Suspended) => Err(ApiError::PermissionDenied),
            Err(AuthError::Store(e)) => Err(ApiError::internal("authentication", e)),
        }
    }
}

/// An operator holding the admin token. Without a configured token the whole admin API
/// answers 404, as if it did not exist.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = &state.admin_token else {
            return Err(ApiError::NotFound);
        };
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::AuthorizationFailure)?;
        if ApiKeyHash::of(presented).matches(expected) {
            Ok(Admin)
        } else {
            Err(ApiError::AuthorizationFailure)
        }
    }
}
