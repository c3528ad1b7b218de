//! A test double of SigScale OCS (an axum server on 127.0.0.1:0) written from
//! `/work/shared/reference/nrf-rating-ocs.md`: Basic auth, the service inventory, the
//! accumulated balance (`[]` for zero or less), all-or-nothing PEC reserves that hold the
//! amount, `DEBIT` of the consumed units returning the rest, `RELEASE` returning all, `404`
//! for an unknown or finished reference, the two `403` reason texts, `balanceAdjustment`
//! answering `204`, problem+json when asked for. Its balances, holds and requests are
//! inspectable, and faults can be armed per route.
//!
//! Shared by the connector tests (`crates/connectors/tests/nrf.rs`) and the hub's
//! (`crates/dcbhub/tests/nrf_hub.rs`), each including it with `#[path = …] mod ocs;`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// `admin:admin`, the OCS's default REST user.
pub const BASIC_ADMIN: &str = "Basic YWRtaW46YWRtaW4=";
pub const SERVICE_CONTEXT: &str = "32274@3gpp.org";
const REFERENCE_ERROR: &str = "https://app.swaggerhub.com/apis-docs/SigScale/nrf-rating/1.2.1#/";

const INSUFFICIENT: &str = "Request denied due to insufficient credit (usage applied)";
const RESTRICTED: &str =
    "Request denied due to restrictions or limitations related to the subscriber";
const UNKNOWN_SUBSCRIBER: &str = "Request denied because the subscriber identity is unrecognized";
const UNKNOWN_REF: &str = "Request denied because the rating data ref is not recognized";
pub const ERRONEOUS: &str = "Incomplete or erroneous session or subscriber information";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Service,
    Balance,
    Reserve,
    Finish,
    Adjustment,
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers this, doing nothing.
    Answer(u16, &'static str, String),
    /// Does the work, then answers this instead (keeping the Location of the real answer).
    ActThenAnswer(u16, String),
    /// Does the work, answers as usual but without the Location header.
    DropLocation,
    /// Does the work, then answers only after this long.
    ActThenStall(Duration),
    /// Answers only after this long, doing nothing.
    Stall(Duration),
}

struct Armed {
    route: Route,
    fault: Fault,
    times: usize,
}

#[derive(Clone, Debug)]
struct Subscriber {
    product: String,
    enabled: bool,
    state: &'static str,
}

#[derive(Clone, Debug)]
struct Hold {
    product: String,
    units: u64,
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct OcsState {
    services: HashMap<String, Subscriber>,
    /// Money per product, in cents.
    balances: HashMap<String, i64>,
    holds: HashMap<String, Hold>,
    adjustments: Vec<Value>,
    requests: Vec<Logged>,
    armed: Vec<Armed>,
    /// Answer errors as problem+json whatever the request accepts.
    problem_json: bool,
    next_ref: u64,
}

pub struct Ocs {
    state: Mutex<OcsState>,
    /// What one service-specific unit costs, in cents (the tariff's usage price).
    unit_price: i64,
}

impl Ocs {
    /// Provisions a subscriber with its own product (billing account) and balance.
    pub fn subscriber(&self, digits: &str, cents: i64) -> String {
        let mut s = self.state.lock();
        let product = format!("1795733224858-{}", s.services.len() + 258);
        s.services.insert(
            digits.into(),
            Subscriber {
                product: product.clone(),
                enabled: true,
                state: "active",
            },
        );
        s.balances.insert(product.clone(), cents);
        product
    }

    pub fn set_enabled(&self, digits: &str, enabled: bool) {
        self.state.lock().services.get_mut(digits).unwrap().enabled = enabled;
    }

    pub fn set_state(&self, digits: &str, state: &'static str) {
        self.state.lock().services.get_mut(digits).unwrap().state = state;
    }

    pub fn balance(&self, product: &str) -> i64 {
        self.state.lock().balances[product]
    }

    pub fn held(&self, product: &str) -> i64 {
        let s = self.state.lock();
        s.holds
            .values()
            .filter(|h| h.product == product)
            .map(|h| h.units as i64 * self.unit_price)
            .sum()
    }

    pub fn hold_count(&self) -> usize {
        self.state.lock().holds.len()
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state.lock().requests.clone()
    }

    pub fn requests_to(&self, route: Route) -> usize {
        self.requests()
            .iter()
            .filter(|r| route_of(&r.method, &segments(&r.path)) == Some(route))
            .count()
    }

    pub fn adjustments(&self) -> Vec<Value> {
        self.state.lock().adjustments.clone()
    }

    pub fn arm(&self, route: Route, fault: Fault, times: usize) {
        self.state.lock().armed.push(Armed {
            route,
            fault,
            times,
        });
    }

    /// Takes back every armed fault.
    pub fn disarm(&self) {
        self.state.lock().armed.clear();
    }

    /// Answers errors as problem+json whatever the request accepts (or as the request asks).
    pub fn set_problem_json(&self, on: bool) {
        self.state.lock().problem_json = on;
    }

    fn take_fault(&self, route: Route) -> Option<Fault> {
        let mut s = self.state.lock();
        let armed = s
            .armed
            .iter_mut()
            .find(|a| a.route == route && a.times > 0)?;
        armed.times -= 1;
        Some(armed.fault.clone())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn route_of(method: &Method, segments: &[String]) -> Option<Route> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, s.as_slice()) {
        (&Method::GET, ["serviceInventoryManagement", "v2", "service", _]) => Some(Route::Service),
        (
            &Method::GET,
            [
                "balanceManagement",
                "v1",
                "service",
                _,
                "accumulatedBalance",
            ],
        ) => Some(Route::Balance),
        (&Method::POST, ["nrf-rating", "v1", "ratingdata"]) => Some(Route::Reserve),
        (&Method::POST, ["nrf-rating", "v1", "ratingdata", _, "release"]) => Some(Route::Finish),
        (&Method::POST, ["balanceManagement", "v1", "balanceAdjustment"]) => {
            Some(Route::Adjustment)
        }
        _ => None,
    }
}

/// An OCS error in the form the client accepts.
fn error(problem_json: bool, status: u16, title: &str, cause: Option<&str>) -> Response {
    let (content_type, body) = if problem_json {
        let mut body = json!({"type": REFERENCE_ERROR, "title": title, "status": status});
        if let Some(cause) = cause {
            body["cause"] = json!(cause);
        }
        ("application/problem+json", body)
    } else {
        (
            "application/json",
            json!({"@type": "Error", "referenceError": REFERENCE_ERROR, "code": "",
                   "reason": title, "status": status.to_string()}),
        )
    };
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response()
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `204`: an empty `text/html` body.
fn no_content() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::CONTENT_TYPE, "text/html")],
    )
        .into_response()
}

/// TMF654 output form: `"5"`, `"3.5"`, `"0.51"`.
fn normalised(cents: i64) -> String {
    let text = format!("{}.{:02}", cents / 100, cents % 100);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// TMF654 input form: a decimal string in major units.
fn cents_of(amount: &str) -> Option<i64> {
    let (negative, digits) = match amount.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, amount),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if fraction.len() > 2 {
        return None;
    }
    let cents = whole.parse::<i64>().ok()? * 100 + format!("{fraction:0<2}").parse::<i64>().ok()?;
    Some(if negative { -cents } else { cents })
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

const RATING_KEYS: [&str; 8] = [
    "invocationSequenceNumber",
    "invocationTimeStamp",
    "nfConsumerIdentification",
    "oneTimeEvent",
    "oneTimeEventType",
    "serviceContextId",
    "serviceRating",
    "subscriptionId",
];

/// Checks the top-level fields every rating request repeats; answers the subscriber's
/// MSISDN digits.
fn rating_envelope(body: &Value, sequence: u64) -> Result<String, &'static str> {
    if keys(body) != RATING_KEYS {
        return Err("fields");
    }
    if body["nfConsumerIdentification"] != json!({"nodeFunctionality": "OCF"})
        || body["invocationSequenceNumber"].as_u64() != Some(sequence)
        || body["oneTimeEvent"] != json!(true)
        || body["oneTimeEventType"] != json!("PEC")
        || body["invocationTimeStamp"]
            .as_str()
            .is_none_or(|t| !t.ends_with('Z'))
    {
        return Err("envelope");
    }
    match body["subscriptionId"].as_array().map(Vec::as_slice) {
        Some([Value::String(id)]) => id
            .strip_prefix("msisdn-")
            .map(str::to_owned)
            .ok_or("subscriptionId"),
        _ => Err("subscriptionId"),
    }
}

/// The one `serviceRating` entry, checked for exactly the documented fields.
fn one_rating(body: &Value, unit_field: Option<&str>, sub_type: &str) -> Option<u64> {
    let [rating] = body["serviceRating"].as_array()?.as_slice() else {
        return None;
    };
    let mut expected = vec!["ratingGroup", "requestSubType", "serviceId"];
    expected.extend(unit_field);
    expected.sort_unstable();
    if keys(rating) != expected
        || rating["serviceId"] != json!(1)
        || rating["ratingGroup"] != json!(1)
        || rating["requestSubType"] != json!(sub_type)
    {
        return None;
    }
    match unit_field {
        Some(field) => {
            let unit = &rating[field];
            (keys(unit) == ["serviceSpecificUnit"])
                .then(|| unit["serviceSpecificUnit"].as_u64())
                .flatten()
                .filter(|n| *n > 0)
        }
        None => Some(0),
    }
}

impl Ocs {
    fn answer(&self, route: Route, path: &[String], body: &Value, problem: bool) -> Response {
        match route {
            Route::Service => self.service(&path[3], problem),
            Route::Balance => self.accumulated_balance(&path[3], problem),
            Route::Reserve => self.reserve(body, problem),
            Route::Finish => self.finish(&path[3], body, problem),
            Route::Adjustment => self.adjust(body, problem),
        }
    }

    fn service(&self, id: &str, problem: bool) -> Response {
        let s = self.state.lock();
        let Some(sub) = s.services.get(id) else {
            let mut answer = error(problem, 404, "Not Found", None);
            if !problem {
                // The TMF form names the missing item in `message`.
                let body = json!({"@type": "Error", "referenceError": REFERENCE_ERROR,
                    "code": "", "reason": "Not Found",
                    "message": "No such Service inventory item", "status": "404"});
                *answer.body_mut() = Body::from(body.to_string());
            }
            return answer;
        };
        json_answer(
            StatusCode::OK,
            json!({"id": id, "href": format!("/serviceInventoryManagement/v2/service/{id}"),
                   "state": sub.state, "product": sub.product,
                   "isServiceEnabled": sub.enabled, "@type": "CFS",
                   "serviceCharacteristic": [{"name": "serviceIdentity", "value": id},
                                             {"name": "multiSession", "value": false}]}),
        )
    }

    fn accumulated_balance(&self, id: &str, problem: bool) -> Response {
        let s = self.state.lock();
        let Some(sub) = s.services.get(id) else {
            return error(problem, 404, "No such Service inventory item found", None);
        };
        let cents = s.balances[&sub.product];
        // Zero and negative balances are left out.
        let total = if cents > 0 {
            json!([{"amount": normalised(cents), "units": "cents"}])
        } else {
            json!([])
        };
        json_answer(
            StatusCode::OK,
            json!({"id": id, "totalBalance": total,
                   "buckets": [{"id": "1795733230131-290"}],
                   "product": [{"id": sub.product}]}),
        )
    }

    fn reserve(&self, body: &Value, problem: bool) -> Response {
        let digits = match rating_envelope(body, 1) {
            Ok(digits) => digits,
            Err(_) => return error(problem, 400, ERRONEOUS, Some("CHARGING_FAILED")),
        };
        if body["serviceContextId"] != json!(SERVICE_CONTEXT) {
            let title = "Request denied because the service context id is not recognized";
            return error(problem, 400, title, Some("CHARGING_FAILED"));
        }
        let Some(units) = one_rating(body, Some("requestedUnit"), "RESERVE") else {
            return error(problem, 400, ERRONEOUS, Some("CHARGING_FAILED"));
        };
        let mut s = self.state.lock();
        let Some(sub) = s.services.get(&digits).cloned() else {
            return error(problem, 404, UNKNOWN_SUBSCRIBER, Some("USER_UNKNOWN"));
        };
        if !sub.enabled {
            return error(problem, 403, RESTRICTED, Some("END_USER_REQUEST_DENIED"));
        }
        let held: i64 = s
            .holds
            .values()
            .filter(|h| h.product == sub.product)
            .map(|h| h.units as i64 * self.unit_price)
            .sum();
        let amount = units as i64 * self.unit_price;
        // All or nothing: a request beyond the available balance takes nothing.
        if s.balances[&sub.product] - held < amount {
            return error(problem, 403, INSUFFICIENT, Some("QUOTA_LIMIT_REACHED"));
        }
        s.next_ref += 1;
        let reference = format!("1795733278058{:03}", s.next_ref);
        s.holds.insert(
            reference.clone(),
            Hold {
                product: sub.product,
                units,
            },
        );
        let mut response = json_answer(
            StatusCode::CREATED,
            json!({"invocationTimeStamp": "2026-11-26T22:47:57.000Z",
                   "invocationSequenceNumber": 1,
                   "serviceRating": [{"serviceId": 1, "ratingGroup": 1,
                       "grantedUnit": {"serviceSpecificUnit": units}, "resultCode": "SUCCESS"}]}),
        );
        let location = format!("/nrf-rating/v1/ratingdata/{reference}");
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_str(&location).unwrap());
        response
    }

    fn finish(&self, reference: &str, body: &Value, problem: bool) -> Response {
        let mut s = self.state.lock();
        let Some(hold) = s.holds.get(reference).cloned() else {
            return error(problem, 404, UNKNOWN_REF, Some("RATING_DATA_REF_UNKNOWN"));
        };
        let digits = match rating_envelope(body, 2) {
            Ok(digits) => digits,
            Err(_) => return error(problem, 400, ERRONEOUS, Some("CHARGING_FAILED")),
        };
        if !s.services.contains_key(&digits) {
            return error(problem, 404, UNKNOWN_SUBSCRIBER, Some("USER_UNKNOWN"));
        }
        let rating = if let Some(consumed) = one_rating(body, Some("consumedUnit"), "DEBIT") {
            if consumed > hold.units {
                return error(problem, 400, ERRONEOUS, Some("CHARGING_FAILED"));
            }
            // The consumed part is taken; the unused part returns with the hold.
            *s.balances.get_mut(&hold.product).unwrap() -= consumed as i64 * self.unit_price;
            json!({"serviceId": 1, "ratingGroup": 1,
                   "consumedUnit": {"serviceSpecificUnit": consumed}})
        } else if one_rating(body, None, "RELEASE").is_some() {
            json!({"serviceId": 1, "ratingGroup": 1})
        } else {
            return error(problem, 400, ERRONEOUS, Some("CHARGING_FAILED"));
        };
        s.holds.remove(reference);
        json_answer(
            StatusCode::OK,
            json!({"invocationTimeStamp": "2026-11-26T22:48:10.000Z",
                   "invocationSequenceNumber": 2, "serviceRating": [rating]}),
        )
    }

    fn adjust(&self, body: &Value, problem: bool) -> Response {
        let well_formed = keys(body) == ["amount", "description", "product", "reason", "type"]
            && keys(&body["amount"]) == ["amount", "units"]
            && body["amount"]["units"] == json!("cents")
            && keys(&body["product"]) == ["id"];
        let cents = body["amount"]["amount"].as_str().and_then(cents_of);
        let (true, Some(cents)) = (well_formed, cents) else {
            return error(problem, 400, "Bad Request", None);
        };
        let product = body["product"]["id"].as_str().unwrap_or_default();
        let mut s = self.state.lock();
        let Some(balance) = s.balances.get_mut(product) else {
            return if cents > 0 {
                error(
                    problem,
                    404,
                    "No such Product/Service inventory item found",
                    None,
                )
            } else {
                error(
                    problem,
                    500,
                    "Exception occurred applying Balance Adjustment",
                    None,
                )
            };
        };
        // No overdraft protection: adjustments apply whatever the balance.
        *balance += cents;
        s.adjustments.push(body.clone());
        no_content()
    }
}

async fn handle(State(ocs): State<Arc<Ocs>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let bytes = to_bytes(request.into_body(), 1 << 16).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if method == Method::GET && path == "/health" {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/health+json")],
            r#"{"status":"pass"}"#,
        )
            .into_response();
    }
    ocs.state.lock().requests.push(Logged {
        method: method.clone(),
        path: path.clone(),
        body: body.clone(),
    });
    if headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        != Some(BASIC_ADMIN.as_bytes())
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>Unauthorized</h1></body></html>",
        )
            .into_response();
    }
    let problem = ocs.state.lock().problem_json
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/problem+json"));
    let segments = segments(&path);
    let Some(route) = route_of(&method, &segments) else {
        return error(problem, 404, "Not Found", None);
    };
    if route != Route::Service && route != Route::Balance && !has_json_type(&headers) {
        return error(problem, 415, "Unsupported Media Type", None);
    }
    match ocs.take_fault(route) {
        None => ocs.answer(route, &segments, &body, problem),
        Some(Fault::Answer(status, content_type, text)) => (
            StatusCode::from_u16(status).unwrap(),
            [(header::CONTENT_TYPE, content_type)],
            text,
        )
            .into_response(),
        Some(Fault::ActThenAnswer(status, text)) => {
            let real = ocs.answer(route, &segments, &body, problem);
            let mut response = Response::new(Body::from(text));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(location) = real.headers().get(header::LOCATION) {
                response
                    .headers_mut()
                    .insert(header::LOCATION, location.clone());
            }
            response
        }
        Some(Fault::DropLocation) => {
            let mut real = ocs.answer(route, &segments, &body, problem);
            real.headers_mut().remove(header::LOCATION);
            real
        }
        Some(Fault::ActThenStall(delay)) => {
            let real = ocs.answer(route, &segments, &body, problem);
            tokio::time::sleep(delay).await;
            real
        }
        Some(Fault::Stall(delay)) => {
            tokio::time::sleep(delay).await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn has_json_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

pub async fn spawn_ocs_priced(unit_price: i64) -> (Arc<Ocs>, String) {
    let ocs = Arc::new(Ocs {
        state: Mutex::new(OcsState::default()),
        unit_price,
    });
    let app = Router::new().fallback(handle).with_state(ocs.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (ocs, url)
}

/// An OCS whose tariff makes one unit one cent.
pub async fn spawn_ocs() -> (Arc<Ocs>, String) {
    spawn_ocs_priced(1).await
}

/// A loopback port with nobody listening: connections are refused.
pub async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}
