#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The `nrf-rating` connector against a test double of SigScale OCS (an axum server on
//! 127.0.0.1:0) written from `/work/shared/reference/nrf-rating-ocs.md`: Basic auth, the
//! service inventory, the accumulated balance (`[]` for zero or less), all-or-nothing PEC
//! reserves that hold the amount, `DEBIT` of the consumed units returning the rest,
//! `RELEASE` returning all, `404` for an unknown or finished reference, the two `403`
//! reason texts, `balanceAdjustment` answering `204`, problem+json when asked for. Its
//! balances, holds and requests are inspectable, and faults can be armed per route.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dcbhub_connectors::breaker::BreakerState;
use dcbhub_connectors::{
    AccountOutcome, AccountType, CallContext, ChargeKind, ChargeOutcome, ChargeRequest,
    ConnectorError, CspConnector, DeclineReason, FinishOutcome, Notification, NotifyOutcome,
    NrfBalance, NrfRatingConfig, NrfRatingConnector, ReserveOutcome, StatusOutcome,
    TwoPhaseCharging,
};
use dcbhub_domain::{
    Currency, Customer, Description, Email, MinorUnits, Money, Msisdn, NotificationId, PartnerCode,
    TransactionId,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;

// ------------------------------------------------------------------ the OCS double

/// `admin:admin`, the OCS's default REST user.
const BASIC_ADMIN: &str = "Basic YWRtaW46YWRtaW4=";
const SERVICE_CONTEXT: &str = "32274@3gpp.org";
const REFERENCE_ERROR: &str = "https://app.swaggerhub.com/apis-docs/SigScale/nrf-rating/1.2.1#/";

const INSUFFICIENT: &str = "Request denied due to insufficient credit (usage applied)";
const RESTRICTED: &str =
    "Request denied due to restrictions or limitations related to the subscriber";
const UNKNOWN_SUBSCRIBER: &str = "Request denied because the subscriber identity is unrecognized";
const UNKNOWN_REF: &str = "Request denied because the rating data ref is not recognized";
const ERRONEOUS: &str = "Incomplete or erroneous session or subscriber information";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Service,
    Balance,
    Reserve,
    Finish,
    Adjustment,
}

#[derive(Clone, Debug)]
enum Fault {
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
struct Logged {
    method: Method,
    path: String,
    body: Value,
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

struct Ocs {
    state: Mutex<OcsState>,
    /// What one service-specific unit costs, in cents (the tariff's usage price).
    unit_price: i64,
}

impl Ocs {
    /// Provisions a subscriber with its own product (billing account) and balance.
    fn subscriber(&self, digits: &str, cents: i64) -> String {
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

    fn set_enabled(&self, digits: &str, enabled: bool) {
        self.state.lock().services.get_mut(digits).unwrap().enabled = enabled;
    }

    fn set_state(&self, digits: &str, state: &'static str) {
        self.state.lock().services.get_mut(digits).unwrap().state = state;
    }

    fn balance(&self, product: &str) -> i64 {
        self.state.lock().balances[product]
    }

    fn held(&self, product: &str) -> i64 {
        let s = self.state.lock();
        s.holds
            .values()
            .filter(|h| h.product == product)
            .map(|h| h.units as i64 * self.unit_price)
            .sum()
    }

    fn hold_count(&self) -> usize {
        self.state.lock().holds.len()
    }

    fn requests(&self) -> Vec<Logged> {
        self.state.lock().requests.clone()
    }

    fn requests_to(&self, route: Route) -> usize {
        self.requests()
            .iter()
            .filter(|r| route_of(&r.method, &segments(&r.path)) == Some(route))
            .count()
    }

    fn adjustments(&self) -> Vec<Value> {
        self.state.lock().adjustments.clone()
    }

    fn arm(&self, route: Route, fault: Fault, times: usize) {
        self.state.lock().armed.push(Armed {
            route,
            fault,
            times,
        });
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

async fn spawn_ocs_priced(unit_price: i64) -> (Arc<Ocs>, String) {
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
async fn spawn_ocs() -> (Arc<Ocs>, String) {
    spawn_ocs_priced(1).await
}

/// A loopback port with nobody listening: connections are refused.
async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

// ------------------------------------------------------------------ the connector side

const TIMEOUT_MS: u64 = 300;
/// What a call may take beyond its budget: scheduling, connection teardown.
const MARGIN: Duration = Duration::from_millis(250);
/// A subscriber of the tests, provisioned per test.
const ANN: &str = "491701234567";
const BOB: &str = "491709876543";

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn config(url: &str) -> NrfRatingConfig {
    let mut config = NrfRatingConfig::new(url, "admin", "admin", eur());
    config.timeout_ms = TIMEOUT_MS;
    config.backoff_base_ms = 10;
    config.backoff_max_ms = 40;
    config.breaker_failure_threshold = 1_000;
    config
}

fn connector(url: &str) -> NrfRatingConnector {
    NrfRatingConnector::new("ocs-de", config(url)).unwrap()
}

fn msisdn(digits: &str) -> Msisdn {
    Msisdn::parse(&format!("+{digits}")).unwrap()
}

fn customer(digits: &str) -> Customer {
    Customer::Msisdn(msisdn(digits))
}

fn partner() -> PartnerCode {
    PartnerCode::parse("NFLX").unwrap()
}

fn ctx() -> CallContext {
    CallContext::with_request_id("req-1")
}

fn charge(digits: &str, amount: &str) -> ChargeRequest {
    ChargeRequest {
        transaction_id: TransactionId::generate(),
        customer: customer(digits),
        money: Money::parse(amount, eur()).unwrap(),
        description: Description::parse("Premium plan").unwrap(),
        charge_code: None,
        partner: partner(),
        kind: ChargeKind::Charge,
    }
}

fn refund_of(original: &ChargeRequest, amount: &str) -> ChargeRequest {
    ChargeRequest {
        transaction_id: TransactionId::generate(),
        money: Money::parse(amount, eur()).unwrap(),
        kind: ChargeKind::Refund {
            original: original.transaction_id.clone(),
        },
        ..original.clone()
    }
}

/// Runs `call`, checks it ended within the budget plus the margin, returns its outcome.
async fn timed<T>(call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let outcome = call.await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(TIMEOUT_MS) + MARGIN,
        "took {elapsed:?}"
    );
    outcome
}

fn reference_of(outcome: ReserveOutcome) -> String {
    match outcome {
        ReserveOutcome::Reserved { reference } => reference,
        other => panic!("not reserved: {other:?}"),
    }
}

fn is_unavailable(outcome: &Result<AccountOutcome, ConnectorError>) -> bool {
    matches!(outcome, Err(ConnectorError::Unavailable { retry_after_secs }) if *retry_after_secs >= 1)
}

// ------------------------------------------------------------------ the double itself

#[tokio::test]
async fn the_double_wants_basic_auth_except_on_health() {
    let (ocs, url) = spawn_ocs().await;
    ocs.subscriber(ANN, 100);
    let client = reqwest::Client::new();
    let open = client
        .get(format!("{url}/serviceInventoryManagement/v2/service/{ANN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 401);
    assert_eq!(open.headers()["content-type"], "text/html");
    let health = client.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["content-type"], "application/health+json");
    let asked = client
        .get(format!(
            "{url}/serviceInventoryManagement/v2/service/490000"
        ))
        .header("authorization", BASIC_ADMIN)
        .header("accept", "application/problem+json")
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 404);
    assert_eq!(asked.headers()["content-type"], "application/problem+json");
}

// ------------------------------------------------------------------ accounts

#[tokio::test]
async fn an_active_subscriber_is_a_prepaid_account_in_the_configured_currency() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    ocs.subscriber(BOB, 0);
    let c = connector(&url);
    let outcome = c.validate_account(&customer(ANN), &partner(), &ctx()).await;
    assert_eq!(
        outcome,
        Ok(AccountOutcome::Active {
            account_type: AccountType::Prepaid,
            currency: eur(),
            account_ref: product,
        })
    );
    let paths: Vec<String> = ocs.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            format!("/serviceInventoryManagement/v2/service/{ANN}"),
            format!("/balanceManagement/v1/service/{ANN}/accumulatedBalance"),
        ]
    );
    // A zero balance (`[]`) is still an account in good standing.
    assert!(matches!(
        c.validate_account(&customer(BOB), &partner(), &ctx()).await,
        Ok(AccountOutcome::Active { .. })
    ));
    assert_eq!(
        c.balance(&msisdn(ANN), &ctx()).await,
        Ok(NrfBalance::Positive(MinorUnits::new(100)))
    );
    assert_eq!(
        c.balance(&msisdn(BOB), &ctx()).await,
        Ok(NrfBalance::ZeroOrLess)
    );
    assert_eq!(
        c.balance(&msisdn("491700000000"), &ctx()).await,
        Ok(NrfBalance::NotFound)
    );
}

#[tokio::test]
async fn unknown_gone_and_disabled_subscribers() {
    let (ocs, url) = spawn_ocs().await;
    ocs.subscriber(ANN, 100);
    ocs.subscriber(BOB, 100);
    let c = connector(&url);
    let validate = |digits: &'static str| {
        let c = &c;
        async move {
            c.validate_account(&customer(digits), &partner(), &ctx())
                .await
        }
    };
    assert_eq!(validate("491700000000").await, Ok(AccountOutcome::NotFound));
    ocs.set_enabled(ANN, false);
    assert_eq!(validate(ANN).await, Ok(AccountOutcome::Suspended));
    ocs.set_state(BOB, "terminated");
    assert_eq!(validate(BOB).await, Ok(AccountOutcome::NotFound));
    ocs.set_state(BOB, "inactive");
    assert_eq!(validate(BOB).await, Ok(AccountOutcome::NotFound));
    ocs.set_state(BOB, "reserved");
    assert!(matches!(
        validate(BOB).await,
        Ok(AccountOutcome::Active { .. })
    ));

    // The OCS knows MSISDNs only.
    let before = ocs.requests().len();
    let email = Customer::Email(Email::parse("ann@example.com").unwrap());
    assert_eq!(
        c.validate_account(&email, &partner(), &ctx()).await,
        Ok(AccountOutcome::NotFound)
    );
    assert_eq!(ocs.requests().len(), before);

    // With problem+json errors the answers are the same.
    ocs.state.lock().problem_json = true;
    assert_eq!(validate("491700000000").await, Ok(AccountOutcome::NotFound));
}

#[tokio::test]
async fn malformed_lookups_are_unavailable() {
    let (ocs, url) = spawn_ocs().await;
    ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let (ann, nflx, req_ctx) = (customer(ANN), partner(), ctx());
    let validate = || c.validate_account(&ann, &nflx, &req_ctx);

    ocs.arm(
        Route::Service,
        Fault::Answer(200, "application/json", "{garbage".into()),
        1,
    );
    // An unreadable 200 is asked again within the budget, and then answers properly.
    assert!(matches!(
        timed(validate()).await,
        Ok(AccountOutcome::Active { .. })
    ));

    ocs.arm(
        Route::Service,
        Fault::Answer(500, "application/json", "{}".into()),
        10,
    );
    assert!(is_unavailable(&timed(validate()).await));
    ocs.state.lock().armed.clear();

    let product_less = r#"{"id":"491701234567","state":"active","isServiceEnabled":true}"#;
    ocs.arm(
        Route::Service,
        Fault::Answer(200, "application/json", product_less.into()),
        10,
    );
    assert!(is_unavailable(&timed(validate()).await));
    ocs.state.lock().armed.clear();

    let invalid_state =
        r#"{"id":"491701234567","state":"suspended","product":"p","isServiceEnabled":true}"#;
    ocs.arm(
        Route::Service,
        Fault::Answer(200, "application/json", invalid_state.into()),
        10,
    );
    assert!(is_unavailable(&timed(validate()).await));
    ocs.state.lock().armed.clear();

    ocs.arm(
        Route::Balance,
        Fault::Answer(200, "application/json", r#"{"totalBalance":{}}"#.into()),
        10,
    );
    assert!(is_unavailable(&timed(validate()).await));
    ocs.state.lock().armed.clear();

    // A 404 that is not the OCS's (a wrong base path behind a proxy) is no verdict.
    ocs.arm(
        Route::Service,
        Fault::Answer(404, "text/html", "<html>gone</html>".into()),
        1,
    );
    assert!(is_unavailable(&timed(validate()).await));

    ocs.arm(Route::Service, Fault::Stall(Duration::from_secs(2)), 10);
    assert!(is_unavailable(&timed(validate()).await));
    ocs.state.lock().armed.clear();

    let mut wrong = config(&url);
    wrong.password = dcbhub_domain::Secret::new("guess".into());
    let wrong = NrfRatingConnector::new("ocs-de", wrong).unwrap();
    assert!(is_unavailable(
        &wrong
            .validate_account(&customer(ANN), &partner(), &ctx())
            .await
    ));

    let down = connector(&refusing_url().await);
    assert!(is_unavailable(
        &timed(down.validate_account(&customer(ANN), &partner(), &ctx())).await
    ));
}

// ------------------------------------------------------------------ charges

#[tokio::test]
async fn a_charge_within_the_balance_takes_exactly_the_amount() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let outcome = c.charge(&req, &ctx()).await;
    let ChargeOutcome::Success { csp_reference } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(ocs.balance(&product), 60);
    assert_eq!(ocs.hold_count(), 0);

    let requests = ocs.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/nrf-rating/v1/ratingdata");
    let reserve = &requests[0].body;
    assert_eq!(reserve["oneTimeEventType"], "PEC");
    assert_eq!(reserve["subscriptionId"], json!([format!("msisdn-{ANN}")]));
    assert_eq!(reserve["serviceContextId"], SERVICE_CONTEXT);
    assert_eq!(
        reserve["serviceRating"],
        json!([{"serviceId": 1, "ratingGroup": 1,
                "requestedUnit": {"serviceSpecificUnit": 40}, "requestSubType": "RESERVE"}])
    );
    assert_eq!(
        requests[1].path,
        format!("/nrf-rating/v1/ratingdata/{csp_reference}/release")
    );
    assert_eq!(requests[1].body["invocationSequenceNumber"], 2);
    assert_eq!(
        requests[1].body["serviceRating"],
        json!([{"serviceId": 1, "ratingGroup": 1,
                "consumedUnit": {"serviceSpecificUnit": 40}, "requestSubType": "DEBIT"}])
    );
    assert!(
        requests.iter().all(|r| r.body["oneTimeEventType"] != "IEC"),
        "the one-shot form is never used"
    );

    // The whole remaining balance can be charged too.
    assert!(matches!(
        c.charge(&charge(ANN, "0.60"), &ctx()).await,
        ChargeOutcome::Success { .. }
    ));
    assert_eq!(ocs.balance(&product), 0);
}

#[tokio::test]
async fn a_charge_above_the_balance_takes_nothing() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 30);
    let c = connector(&url);
    assert_eq!(
        c.charge(&charge(ANN, "0.40"), &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::InsufficientFunds)
    );
    assert_eq!(ocs.balance(&product), 30);
    assert_eq!(ocs.hold_count(), 0);
    assert_eq!(ocs.requests_to(Route::Finish), 0);
    // The same with problem+json error bodies.
    ocs.state.lock().problem_json = true;
    assert_eq!(
        c.reserve(&charge(ANN, "0.31"), &ctx()).await,
        ReserveOutcome::Declined(DeclineReason::InsufficientFunds)
    );
    assert_eq!(ocs.balance(&product), 30);
    assert_eq!(ocs.hold_count(), 0);
}

#[tokio::test]
async fn refusals_of_the_reserve_are_typed_declines() {
    let (ocs, url) = spawn_ocs().await;
    ocs.subscriber(ANN, 100);
    let c = connector(&url);
    for problem_json in [false, true] {
        ocs.state.lock().problem_json = problem_json;
        assert_eq!(
            c.charge(&charge("491700000000", "0.10"), &ctx()).await,
            ChargeOutcome::Declined(DeclineReason::AccountNotFound)
        );
        ocs.set_enabled(ANN, false);
        assert_eq!(
            c.charge(&charge(ANN, "0.10"), &ctx()).await,
            ChargeOutcome::Declined(DeclineReason::Suspended)
        );
        ocs.set_enabled(ANN, true);
    }
    // A service context the OCS does not rate: 400.
    let mut other = config(&url);
    other.service_context_id = "32251@3gpp.org".into();
    let other = NrfRatingConnector::new("ocs-de", other).unwrap();
    assert_eq!(
        other.charge(&charge(ANN, "0.10"), &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::Declined)
    );
    // Email customers and amounts that are not whole units never reach the OCS.
    let before = ocs.requests().len();
    let mut email = charge(ANN, "0.10");
    email.customer = Customer::Email(Email::parse("ann@example.com").unwrap());
    assert_eq!(
        c.charge(&email, &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::AccountNotFound)
    );
    assert_eq!(ocs.requests().len(), before);
    assert_eq!(ocs.hold_count(), 0);
}

#[tokio::test]
async fn units_follow_the_configured_unit_size() {
    // The tariff prices one unit at 5 cents.
    let (ocs, url) = spawn_ocs_priced(5).await;
    let product = ocs.subscriber(ANN, 100);
    let mut config = config(&url);
    config.minor_units_per_unit = 5;
    let c = NrfRatingConnector::new("ocs-de", config).unwrap();
    assert!(matches!(
        c.charge(&charge(ANN, "0.40"), &ctx()).await,
        ChargeOutcome::Success { .. }
    ));
    assert_eq!(ocs.balance(&product), 60);
    assert_eq!(
        ocs.requests()[0].body["serviceRating"][0]["requestedUnit"],
        json!({"serviceSpecificUnit": 8})
    );
    let before = ocs.requests().len();
    assert_eq!(
        c.charge(&charge(ANN, "0.42"), &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::Declined)
    );
    assert_eq!(ocs.requests().len(), before);
    assert_eq!(ocs.balance(&product), 60);
}

#[tokio::test]
async fn concurrent_reserves_never_overspend() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = Arc::new(connector(&url));
    let calls = (0..20).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.charge(&charge(ANN, "0.15"), &ctx()).await })
    });
    let mut successes = 0;
    let mut declines = 0;
    for call in calls {
        match call.await.unwrap() {
            ChargeOutcome::Success { .. } => successes += 1,
            ChargeOutcome::Declined(DeclineReason::InsufficientFunds) => declines += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((successes, declines), (6, 14));
    assert_eq!(ocs.balance(&product), 10);
    assert_eq!(ocs.hold_count(), 0);
}

// ------------------------------------------------------------------ crashes and the reconciler

#[tokio::test]
async fn a_crash_after_the_reserve_is_released_by_reference_once() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let req = charge(ANN, "0.40");
    let reference = {
        let c = connector(&url);
        let two_phase = c.two_phase().expect("the nrf connector is two-phase");
        reference_of(two_phase.reserve(&req, &ctx()).await)
        // The hub "crashes" here: the connector is gone, the persisted reference stays.
    };
    assert_eq!(ocs.held(&product), 40);
    assert_eq!(ocs.balance(&product), 100);

    let reconciler = connector(&url);
    assert_eq!(
        reconciler.release(&reference, &req, &ctx()).await,
        FinishOutcome::Done
    );
    assert_eq!(ocs.held(&product), 0);
    assert_eq!(ocs.balance(&product), 100);
    assert_eq!(
        reconciler.release(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    // Never both: a debit after the release finds nothing to take.
    assert_eq!(
        reconciler.debit(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(ocs.balance(&product), 100);
    let releases = ocs
        .requests()
        .iter()
        .filter(|r| r.body["serviceRating"][0]["requestSubType"] == "RELEASE")
        .count();
    assert_eq!(releases, 2);
}

#[tokio::test]
async fn a_crash_after_the_reserve_is_debited_by_reference_once() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let req = charge(ANN, "0.40");
    let reference = reference_of(connector(&url).reserve(&req, &ctx()).await);

    let reconciler = connector(&url);
    assert_eq!(
        reconciler.debit(&reference, &req, &ctx()).await,
        FinishOutcome::Done
    );
    assert_eq!(ocs.balance(&product), 60);
    assert_eq!(ocs.held(&product), 0);
    assert_eq!(
        reconciler.debit(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(
        reconciler.release(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(ocs.balance(&product), 60, "debited once, never released");
}

#[tokio::test]
async fn a_lost_debit_answer_is_settled_by_the_reference() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    // The OCS takes the money, and its answer comes too late.
    ocs.arm(
        Route::Finish,
        Fault::ActThenStall(Duration::from_secs(2)),
        1,
    );
    assert_eq!(
        timed(c.debit(&reference, &req, &ctx())).await,
        FinishOutcome::Unknown
    );
    assert_eq!(ocs.balance(&product), 60);
    assert_eq!(
        c.debit(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(ocs.balance(&product), 60, "debited once");

    // Through `charge`, the same loss is reported as unknown, never success.
    let req = charge(ANN, "0.10");
    ocs.arm(
        Route::Finish,
        Fault::ActThenStall(Duration::from_secs(2)),
        1,
    );
    assert_eq!(c.charge(&req, &ctx()).await, ChargeOutcome::Unknown);
    assert_eq!(ocs.balance(&product), 50);
}

#[tokio::test]
async fn a_debit_is_retried_within_its_budget_after_a_5xx() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    ocs.arm(
        Route::Finish,
        Fault::Answer(503, "text/html", String::new()),
        1,
    );
    assert_eq!(
        timed(c.debit(&reference, &req, &ctx())).await,
        FinishOutcome::Done
    );
    assert_eq!(ocs.requests_to(Route::Finish), 2);
    assert_eq!(ocs.balance(&product), 60);

    // A 5xx that persists leaves it unknown, and the reservation in place.
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    ocs.arm(
        Route::Finish,
        Fault::Answer(500, "application/json", "{}".into()),
        10,
    );
    assert_eq!(
        timed(c.debit(&reference, &req, &ctx())).await,
        FinishOutcome::Unknown
    );
    assert_eq!(ocs.held(&product), 40);
    ocs.state.lock().armed.clear();
    assert_eq!(
        c.release(&reference, &req, &ctx()).await,
        FinishOutcome::Done
    );
    assert_eq!(ocs.balance(&product), 60);
}

#[tokio::test]
async fn only_the_unknown_reference_404_counts_as_finished() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    // A 404 from something else than the OCS's rating (a proxy, a wrong base path).
    ocs.arm(
        Route::Finish,
        Fault::Answer(404, "text/html", "<html>Not Found</html>".into()),
        1,
    );
    assert_eq!(
        c.debit(&reference, &req, &ctx()).await,
        FinishOutcome::Unavailable
    );
    // The subscriber vanished between reserve and debit: the OCS's 404 is about them.
    let mut stranger = req.clone();
    stranger.customer = customer("491700000000");
    assert_eq!(
        c.debit(&reference, &stranger, &ctx()).await,
        FinishOutcome::Unavailable
    );
    assert_eq!(ocs.held(&product), 40, "the reservation still stands");
    assert_eq!(c.debit(&reference, &req, &ctx()).await, FinishOutcome::Done);
    assert_eq!(ocs.balance(&product), 60);
}

#[tokio::test]
async fn a_refused_debit_is_released() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let bad_request = json!({"@type": "Error", "code": "", "reason": ERRONEOUS, "status": "400"});
    ocs.arm(
        Route::Finish,
        Fault::Answer(400, "application/json", bad_request.to_string()),
        1,
    );
    assert!(matches!(
        c.charge(&charge(ANN, "0.40"), &ctx()).await,
        ChargeOutcome::Unavailable { .. }
    ));
    assert_eq!(ocs.balance(&product), 100);
    assert_eq!(ocs.hold_count(), 0, "the reservation was released");
    let last = ocs.requests().pop().unwrap();
    assert_eq!(last.body["serviceRating"][0]["requestSubType"], "RELEASE");
}

#[tokio::test]
async fn a_garbled_debit_answer_is_unknown_then_settled() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let req = charge(ANN, "0.40");
    let reference = reference_of(c.reserve(&req, &ctx()).await);
    ocs.arm(
        Route::Finish,
        Fault::ActThenAnswer(200, "{garbage".into()),
        1,
    );
    assert_eq!(
        c.debit(&reference, &req, &ctx()).await,
        FinishOutcome::Unknown
    );
    assert_eq!(
        c.debit(&reference, &req, &ctx()).await,
        FinishOutcome::AlreadyFinished
    );
    assert_eq!(ocs.balance(&product), 60);
}

// ------------------------------------------------------------------ unexpected reserve answers

/// A fresh OCS with 1.00 for ANN, a fault armed on its reserve route, one charge.
async fn charge_against(fault: Fault) -> (Arc<Ocs>, String, ChargeOutcome) {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    ocs.arm(Route::Reserve, fault, 1);
    let outcome = timed(connector(&url).charge(&charge(ANN, "0.40"), &ctx())).await;
    assert!(
        !matches!(outcome, ChargeOutcome::Success { .. }),
        "{outcome:?}"
    );
    assert_eq!(ocs.balance(&product), 100, "nothing is ever debited");
    assert_eq!(
        ocs.requests_to(Route::Reserve),
        1,
        "a reserve is never repeated"
    );
    (ocs, product, outcome)
}

#[tokio::test]
async fn unexpected_reserve_answers_are_never_success() {
    // A 500, with or without the reservation made: maybe held.
    let (ocs, product, outcome) =
        charge_against(Fault::Answer(500, "application/json", "{}".into())).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
    assert_eq!(ocs.held(&product), 0);
    let (ocs, product, outcome) = charge_against(Fault::ActThenAnswer(500, "{}".into())).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
    assert_eq!(
        ocs.held(&product),
        40,
        "held under a reference we never got"
    );

    // A 201 without Location: held, and nothing to name it by.
    let (ocs, product, outcome) = charge_against(Fault::DropLocation).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
    assert_eq!(ocs.held(&product), 40);
    assert_eq!(ocs.requests_to(Route::Finish), 0);

    // A 201 with a Location but garbage, or an unknown resultCode: released at once.
    let unknown_code = json!({"invocationSequenceNumber": 1, "serviceRating": [{"serviceId": 1,
        "ratingGroup": 1, "grantedUnit": {"serviceSpecificUnit": 40}, "resultCode": "END_USER_SERVICE_DENIED"}]});
    let partial = json!({"serviceRating": [{"grantedUnit": {"serviceSpecificUnit": 30},
        "resultCode": "SUCCESS"}]});
    for body in [
        "{garbage".to_owned(),
        unknown_code.to_string(),
        partial.to_string(),
        String::new(),
    ] {
        let (ocs, product, outcome) = charge_against(Fault::ActThenAnswer(201, body)).await;
        assert!(
            matches!(outcome, ChargeOutcome::Unavailable { .. }),
            "{outcome:?}"
        );
        assert_eq!(ocs.held(&product), 0, "the stray reservation was released");
        assert_eq!(ocs.requests_to(Route::Finish), 1);
    }

    // Refusals that are not the documented ones: nothing reserved.
    for (status, content_type, body) in [
        (403, "text/html", "<html>Forbidden</html>"),
        (404, "text/html", "<html>Not here</html>"),
        (400, "text/html", ""),
        (302, "text/html", ""),
    ] {
        let (_, _, outcome) =
            charge_against(Fault::Answer(status, content_type, body.into())).await;
        assert!(
            matches!(outcome, ChargeOutcome::Unavailable { .. }),
            "{status}: {outcome:?}"
        );
    }

    // No answer in time: maybe held.
    let (ocs, product, outcome) = charge_against(Fault::ActThenStall(Duration::from_secs(2))).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
    assert_eq!(ocs.held(&product), 40);
    let (_, _, outcome) = charge_against(Fault::Stall(Duration::from_secs(2))).await;
    assert_eq!(outcome, ChargeOutcome::Unknown);
}

#[tokio::test]
async fn wrong_credentials_and_a_dead_ocs_are_unavailable() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let mut wrong = config(&url);
    wrong.password = dcbhub_domain::Secret::new("guess".into());
    let wrong = NrfRatingConnector::new("ocs-de", wrong).unwrap();
    assert!(matches!(
        wrong.charge(&charge(ANN, "0.40"), &ctx()).await,
        ChargeOutcome::Unavailable { .. }
    ));
    assert_eq!(ocs.held(&product), 0);

    let down = connector(&refusing_url().await);
    let req = charge(ANN, "0.40");
    assert!(matches!(
        timed(down.reserve(&req, &ctx())).await,
        ReserveOutcome::Unavailable { .. }
    ));
    assert!(matches!(
        timed(down.charge(&req, &ctx())).await,
        ChargeOutcome::Unavailable { .. }
    ));
    assert_eq!(
        timed(down.debit("1795733278058001", &req, &ctx())).await,
        FinishOutcome::Unavailable
    );
    assert_eq!(
        timed(down.release("1795733278058001", &req, &ctx())).await,
        FinishOutcome::Unavailable
    );
}

#[tokio::test]
async fn the_breaker_opens_on_a_failing_ocs() {
    let mut config = config(&refusing_url().await);
    config.breaker_failure_threshold = 2;
    config.max_retries = 0;
    let c = NrfRatingConnector::new("ocs-de", config).unwrap();
    let req = charge(ANN, "0.40");
    c.reserve(&req, &ctx()).await;
    c.reserve(&req, &ctx()).await;
    assert_eq!(c.breaker_state(), BreakerState::Open);
    assert!(matches!(
        c.reserve(&req, &ctx()).await,
        ReserveOutcome::Unavailable { retry_after_secs } if retry_after_secs >= 1
    ));
}

// ------------------------------------------------------------------ refunds

#[tokio::test]
async fn a_refund_is_a_positive_adjustment_naming_the_charge() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let original = charge(ANN, "0.40");
    assert!(matches!(
        c.charge(&original, &ctx()).await,
        ChargeOutcome::Success { .. }
    ));
    assert_eq!(ocs.balance(&product), 60);
    let refund = refund_of(&original, "0.25");
    assert_eq!(
        c.charge(&refund, &ctx()).await,
        ChargeOutcome::Success {
            csp_reference: refund.transaction_id.as_str().to_owned()
        }
    );
    assert_eq!(ocs.balance(&product), 85);
    let adjustments = ocs.adjustments();
    assert_eq!(adjustments.len(), 1);
    let adjustment = &adjustments[0];
    assert_eq!(
        adjustment["amount"],
        json!({"units": "cents", "amount": "0.25"})
    );
    assert_eq!(adjustment["product"], json!({"id": product}));
    assert_eq!(adjustment["type"], "adjustment");
    let description = adjustment["description"].as_str().unwrap();
    assert!(
        description.contains(refund.transaction_id.as_str()),
        "{description}"
    );
    assert!(
        description.contains(original.transaction_id.as_str()),
        "{description}"
    );

    // A disabled subscriber can still be refunded; an unknown one cannot.
    ocs.set_enabled(ANN, false);
    assert!(matches!(
        c.charge(&refund_of(&original, "0.15"), &ctx()).await,
        ChargeOutcome::Success { .. }
    ));
    assert_eq!(ocs.balance(&product), 100);
    let mut stranger = refund_of(&original, "0.15");
    stranger.customer = customer("491700000000");
    assert_eq!(
        c.charge(&stranger, &ctx()).await,
        ChargeOutcome::Declined(DeclineReason::AccountNotFound)
    );
    assert_eq!(ocs.adjustments().len(), 2);
}

#[tokio::test]
async fn a_refund_that_may_have_reached_the_ocs_is_never_repeated() {
    let (ocs, url) = spawn_ocs().await;
    let product = ocs.subscriber(ANN, 100);
    let c = connector(&url);
    let original = charge(ANN, "0.40");

    ocs.arm(
        Route::Adjustment,
        Fault::Answer(500, "application/json", "{}".into()),
        10,
    );
    assert_eq!(
        timed(c.charge(&refund_of(&original, "0.40"), &ctx())).await,
        ChargeOutcome::Unknown
    );
    assert_eq!(ocs.requests_to(Route::Adjustment), 1);
    ocs.state.lock().armed.clear();

    ocs.arm(
        Route::Adjustment,
        Fault::ActThenStall(Duration::from_secs(2)),
        1,
    );
    assert_eq!(
        timed(c.charge(&refund_of(&original, "0.40"), &ctx())).await,
        ChargeOutcome::Unknown
    );
    assert_eq!(ocs.requests_to(Route::Adjustment), 2);
    assert_eq!(ocs.balance(&product), 140, "credited once");

    // A 2xx other than the documented 204 is not trusted either.
    ocs.arm(Route::Adjustment, Fault::ActThenAnswer(200, "{}".into()), 1);
    assert_eq!(
        c.charge(&refund_of(&original, "0.10"), &ctx()).await,
        ChargeOutcome::Unknown
    );

    let down = connector(&refusing_url().await);
    assert!(matches!(
        timed(down.charge(&refund_of(&original, "0.40"), &ctx())).await,
        ChargeOutcome::Unavailable { .. }
    ));
}

// ------------------------------------------------------------------ the rest of the trait

#[tokio::test]
async fn status_and_messages_are_not_the_ocs_business() {
    let (_ocs, url) = spawn_ocs().await;
    let c = connector(&url);
    assert_eq!(c.kind(), "nrf-rating");
    assert!(c.two_phase().is_some());
    assert_eq!(
        c.charge_status(&TransactionId::generate(), &ctx()).await,
        StatusOutcome::Pending
    );
    let n = Notification {
        id: NotificationId::generate(),
        to: customer(ANN),
        text: "Your PIN is 123456".into(),
        partner: partner(),
    };
    assert_eq!(
        c.notify(&n, &ctx()).await,
        NotifyOutcome::Permanent("not supported".into())
    );
}

#[test]
fn calls_are_counted_and_timed_per_operation_and_outcome() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (ocs, url) = spawn_ocs().await;
            ocs.subscriber(ANN, 100);
            let c = connector(&url);
            c.validate_account(&customer(ANN), &partner(), &ctx())
                .await
                .unwrap();
            c.charge(&charge(ANN, "0.40"), &ctx()).await;
            c.charge(&charge(ANN, "0.70"), &ctx()).await;
        });
    });
    let text = handle.render();
    let lines: HashMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .collect();
    for (series, count) in [
        (
            r#"dcbhub_csp_calls_total{csp="ocs-de",operation="validate",outcome="active"}"#,
            "1",
        ),
        (
            r#"dcbhub_csp_calls_total{csp="ocs-de",operation="reserve",outcome="reserved"}"#,
            "1",
        ),
        (
            r#"dcbhub_csp_calls_total{csp="ocs-de",operation="reserve",outcome="declined"}"#,
            "1",
        ),
        (
            r#"dcbhub_csp_calls_total{csp="ocs-de",operation="debit",outcome="done"}"#,
            "1",
        ),
    ] {
        assert_eq!(lines.get(series), Some(&count), "{series}\n{text}");
    }
    assert!(
        text.contains(
            r#"dcbhub_csp_call_duration_seconds_count{csp="ocs-de",operation="reserve"} 2"#
        ) || text.contains(
            r#"dcbhub_csp_call_duration_seconds{csp="ocs-de",operation="reserve",quantile="#
        ),
        "{text}"
    );
}
