//! The OpenAPI 3.1 document, generated from the real handlers, and the offline docs page.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_swagger_ui::Config;

use crate::error::ErrorBody;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "dcbhub OTT API",
        version = "1.0.0",
        description = "Direct carrier billing hub implementing the MarketONE OTT APIs v1.0: \
            account validation, PIN consent, charges and refunds, notifications. Every non-2xx \
            answer is `{\"code\", \"message\"}`."
    ),
    modifiers(&Security),
    components(schemas(ErrorBody)),
    tags(
        (name = "account", description = "Account validation"),
        (name = "pin", description = "One-time PIN consent"),
        (name = "transaction", description = "Charges and refunds"),
        (name = "notification", description = "Customer notifications"),
        (name = "sandbox", description = "The sandbox CSP's inbox"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "admin", description = "Operator API (bearer admin token)"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-KEY"))),
        );
        components.add_security_scheme(
            "adminToken",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Declares on every operation the errors the edge itself can produce for it, so the
/// document lists every status an operation can answer.
pub struct CommonErrors;

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

impl Modify for CommonErrors {
    fn modify(&self, api: &mut OpenApi) {
        for item in api.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let has_body = op.request_body.is_some();
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                };
                if has_body {
                    add("400", "`invalid-request` or `parameter-not-supported`");
                    add("413", "`payload-too-large`");
                    add("415", "`unsupported-media-type`");
                }
                if secured {
                    add("401", "`authorization-failure`");
                    add("403", "`permission-denied`");
                    add("404", "`not-found`");
                    add("429", "`too-many-requests`");
                }
                add("405", "`method-not-allowed`");
                add("500", "`system-error`");
            }
        }
    }
}

pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// `/openapi.json`, `/docs` and its assets, all served from the binary.
pub fn docs_router<S: Clone + Send + Sync + 'static>(spec: &OpenApi) -> Router<S> {
    let json: Arc<str> = spec.to_pretty_json().unwrap_or_else(|_| "{}".into()).into();
    let config = Arc::new(Config::new(["/openapi.json"]).validator_url("none"));
    let index = {
        let config = Arc::clone(&config);
        move || docs_file(String::new(), Arc::clone(&config))
    };
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = Arc::clone(&json);
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        json.to_string(),
                    )
                }
            }),
        )
        .route("/docs", get(index.clone()))
        .route("/docs/", get(index))
        .route(
            "/docs/{*file}",
            get(move |Path(file): Path<String>| docs_file(file, Arc::clone(&config))),
        )
}

async fn docs_file(file: String, config: Arc<Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(&file, config) {
        Ok(Some(found)) => {
            let mut bytes = found.bytes.into_owned();
            if found.content_type.starts_with("text/html") {
                // Served at /docs as well as /docs/: anchor the page's relative asset paths.
                let html = String::from_utf8_lossy(&bytes).replacen(
                    "<head>",
                    "<head><base href=\"/docs/\">",
                    1,
                );
                bytes = html.into_bytes();
            }
            let mut response = (StatusCode::OK, bytes).into_response();
            if let Ok(ct) = HeaderValue::from_str(&found.content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            if found.gzpipped {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => crate::error::ApiError::NotFound.into_response(),
        Err(e) => crate::error::ApiError::internal("docs page", e).into_response(),
    }
}
