//! The HTTP routes, their layers, and the OpenAPI document made from them.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::BytesRejection, rejection::PathRejection, rejection::QueryRejection},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shared::{
    ErrorCode, ServiceError,
    model::{
        Consignment, ConsignmentList, Container, ListConsignments, ListVessels, ListedVessel, Load, NewConsignment,
        NewVessel, Specification, Vessel, VesselList,
    },
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use utoipa::OpenApi as _;

use crate::{
    auth::Auth,
    error::{ApiError, ErrorBody, ErrorDetail},
    events::FeedEvent,
    nats::Nats,
};

/// The header a caller names a create with: the same key gives the same consignment.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub nats: Nats,
    pub feed: crate::events::Feed,
    pub auth: Arc<Auth>,
}

/// The limits the layers enforce.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    /// Origins allowed by CORS; empty leaves CORS off.
    pub cors_origins: Vec<HeaderValue>,
}

impl Limits {
    pub fn from_config(config: &crate::Config) -> anyhow::Result<Self> {
        let cors_origins = config
            .cors_origins
            .iter()
            .filter(|origin| !origin.trim().is_empty())
            .map(|origin| {
                HeaderValue::from_str(origin.trim()).map_err(|_| anyhow::anyhow!("invalid CORS origin {origin:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            max_request_bytes: config.max_request_bytes,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            cors_origins,
        })
    }
}

/// Every route, behind its layers: `/v1` behind the token check; all of it behind
/// the body limit, the timeout, tracing, and error bodies for every error.
pub fn router(state: AppState, limits: &Limits) -> Router {
    let max = limits.max_request_bytes;
    let v1 = Router::new()
        .route(
            "/consignments",
            get(list_consignments).post(move |state, headers, body| create_consignment(state, headers, body, max)),
        )
        .route("/consignments/{id}", get(get_consignment))
        .route("/vessels", get(list_vessels).post(move |state, headers, body| create_vessel(state, headers, body, max)))
        .route("/vessels/available", get(find_available))
        .route("/events", get(events))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state.auth), crate::auth::require_token));
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .nest("/v1", v1)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(max))
        .layer(RequestBodyLimitLayer::new(max))
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, limits.request_timeout));
    if !limits.cors_origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(limits.cors_origins.clone()))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static(IDEMPOTENCY_KEY)])
                .expose_headers([header::LOCATION, header::LINK, header::RETRY_AFTER]),
        );
    }
    // Outermost: every error response, whoever made it, gets the error body; the
    // trace layer logs method, path and status, never headers (tokens).
    router.layer(middleware::from_fn(crate::error::json_errors)).layer(TraceLayer::new_for_http())
}

/// The API, as OpenAPI 3.1.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(title = "shippy gateway", description = "The shippy services over HTTP/JSON."),
    paths(
        create_consignment, list_consignments, get_consignment, list_vessels, create_vessel, find_available,
        events, healthz, readyz
    ),
    components(schemas(
        Consignment, Container, NewConsignment, ConsignmentList, Vessel, ListedVessel, Load, NewVessel, VesselList,
        ErrorBody, ErrorDetail, Health, FeedEvent
    )),
    modifiers(&BearerAuth),
    tags((name = "consignments"), (name = "vessels"), (name = "events"), (name = "health"))
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme the `/v1` routes name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The body of `/healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `not ready`.
    pub status: String,
}

/// The query of `GET /v1/consignments`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documents the query; the handler reads it as ListConsignments")]
struct ConsignmentsQuery {
    /// The most consignments in the page.
    limit: Option<u32>,
    /// Where the page starts: the `next` of the previous page.
    cursor: Option<String>,
    /// Only consignments booked onto this vessel.
    vessel_id: Option<String>,
    /// Only consignments with a container of this user.
    user_id: Option<String>,
}

/// The query of `GET /v1/vessels`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documents the query; the handler reads it as ListVessels")]
struct VesselsQuery {
    /// The most vessels in the page.
    limit: Option<u32>,
    /// Where the page starts: the `next` of the previous page.
    cursor: Option<String>,
}

/// The query of `GET /v1/vessels/available`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documents the query; the handler reads it as Specification")]
struct AvailableQuery {
    /// Containers to carry.
    capacity: u32,
    /// Weight to carry, in kilograms.
    max_weight: u64,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_owned() })
}

/// The gateway is connected to NATS (503 if not).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if state.nats.is_connected() {
        (StatusCode::OK, Json(Health { status: "ready".to_owned() }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "not ready".to_owned() }))
    }
}

/// The document, made once from the code.
static OPENAPI_JSON: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default());

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON.as_str())
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// Creates a consignment and books it onto a vessel. The same `Idempotency-Key`
/// gives the same consignment (201 again); the key reused for another consignment
/// is a 409. Without a key the gateway makes one, and names it in the response.
#[utoipa::path(post, path = "/v1/consignments", tag = "consignments", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Names the create: sent again, it gives the same consignment. One is made if absent.")),
    request_body(content = NewConsignment, content_type = "application/json"),
    responses(
        (status = 201, description = "Booked", body = Consignment,
            headers(("Location" = String), ("Idempotency-Key" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
async fn create_consignment(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Response, ApiError> {
    let new: NewConsignment = json_body(&headers, body, limit)?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        Some(value) => idempotency_key(value)?,
        // Made here, so that the caller (told it in the response) may send it again safely.
        None => uuid::Uuid::new_v4().to_string(),
    };
    let created = state.nats.create_consignment(&new, &key).await?;
    let location = format!("/v1/consignments/{}", created.consignment.id);
    let mut response = (StatusCode::CREATED, Json(created.consignment)).into_response();
    let response_headers = response.headers_mut();
    insert(response_headers, header::LOCATION, &location);
    insert(response_headers, HeaderName::from_static(IDEMPOTENCY_KEY), &key);
    Ok(response)
}

/// Lists consignments, oldest first, a page at a time; `Link: rel="next"` names the next page.
#[utoipa::path(get, path = "/v1/consignments", tag = "consignments", security(("bearer" = [])),
    params(ConsignmentsQuery),
    responses((status = 200, body = ConsignmentList, headers(("Link" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
async fn list_consignments(
    State(state): State<AppState>,
    query: Result<Query<ListConsignments>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let page = state.nats.consignments(&query).await?;
    let next = page.next.as_ref().map(|cursor| {
        next_link("/v1/consignments", &ListConsignments { cursor: Some(cursor.clone()), ..query.clone() })
    });
    Ok(with_link(Json(page).into_response(), next))
}

/// One consignment.
#[utoipa::path(get, path = "/v1/consignments/{id}", tag = "consignments", security(("bearer" = [])),
    params(("id" = String, Path, description = "The consignment's id")),
    responses((status = 200, body = Consignment), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
async fn get_consignment(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Consignment>, ApiError> {
    let Path(id) = id?;
    Ok(Json(state.nats.consignment(id).await?.consignment))
}

/// The fleet, in id order, a page at a time; `Link: rel="next"` names the next page.
#[utoipa::path(get, path = "/v1/vessels", tag = "vessels", security(("bearer" = [])),
    params(VesselsQuery),
    responses((status = 200, body = VesselList, headers(("Link" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
async fn list_vessels(
    State(state): State<AppState>,
    query: Result<Query<ListVessels>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let page = state.nats.vessels(&query).await?;
    let next = page
        .next
        .as_ref()
        .map(|cursor| next_link("/v1/vessels", &ListVessels { cursor: Some(cursor.clone()), limit: query.limit }));
    Ok(with_link(Json(page).into_response(), next))
}

/// Adds a vessel to the fleet: 201 if added, 200 if the same vessel was there already.
#[utoipa::path(post, path = "/v1/vessels", tag = "vessels", security(("bearer" = [])),
    request_body(content = NewVessel, content_type = "application/json"),
    responses((status = 201, description = "Added", body = Vessel), (status = 200, description = "There already", body = Vessel),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_vessel(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Response, ApiError> {
    let new: NewVessel = json_body(&headers, body, limit)?;
    let created = state.nats.create_vessel(&new).await?;
    let status = if created.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(created.vessel)).into_response())
}

/// A vessel with room for `capacity` containers weighing `max_weight` kg (404 if none).
#[utoipa::path(get, path = "/v1/vessels/available", tag = "vessels", security(("bearer" = [])),
    params(AvailableQuery),
    responses((status = 200, body = Vessel), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
async fn find_available(
    State(state): State<AppState>,
    query: Result<Query<Specification>, QueryRejection>,
) -> Result<Json<Vessel>, ApiError> {
    let Query(specification) = query?;
    Ok(Json(state.nats.find_available(&specification).await?.vessel))
}

/// The consignments created, as Server-Sent Events (`event: consignment.created`,
/// `data:` a [`FeedEvent`]), from now on; with `Last-Event-ID` (an event's `id`,
/// its stream sequence), every event after it first. Each event is sent once, in
/// stream order; a comment every 15 s keeps an idle connection open.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<u64>, Header,
        description = "Resume after this event: its `id`, the stream sequence.")),
    responses(
        (status = 200, description = "Server-Sent Events; each `data` is a FeedEvent", content_type = "text/event-stream",
            body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn events(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    use axum::response::sse::{KeepAlive, Sse};
    use futures::StreamExt as _;
    let last_event_id = headers
        .get(LAST_EVENT_ID)
        .map(|value| {
            value.to_str().ok().and_then(|value| value.trim().parse::<u64>().ok()).ok_or_else(|| {
                ApiError::BadRequest("invalid Last-Event-ID: expected an event's id, a whole number".to_owned())
            })
        })
        .transpose()?;
    let events = state.feed.subscribe(last_event_id).await.ok_or(ApiError::NatsUnavailable)?;
    let sse = Sse::new(events.map(Ok::<_, std::convert::Infallible>))
        .keep_alive(KeepAlive::new().interval(crate::events::KEEP_ALIVE));
    Ok(sse.into_response())
}

/// The header a client resumes the events with.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// The body as `T`: JSON only (415 otherwise), within the limit (413), decoded
/// as the services decode requests (400 naming the bad field).
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = body.map_err(|rejection| ApiError::from_body(&rejection, limit))?;
    Ok(shared::codec::decode_request(&body)?)
}

/// An `Idempotency-Key` header as a `Nats-Msg-Id`: printable ASCII, no spaces, not too long.
fn idempotency_key(value: &HeaderValue) -> Result<String, ApiError> {
    let bad = || {
        ApiError::Service(ServiceError::new(
            ErrorCode::BadRequest,
            format!(
                "invalid Idempotency-Key: expected 1 to {MAX_IDEMPOTENCY_KEY_BYTES} printable ASCII characters without spaces"
            ),
        ))
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(key.to_owned())
}

/// `<path?query>; rel="next"`, the query form-encoded, its fields in order.
fn next_link(path: &str, query: &impl Serialize) -> String {
    format!("<{path}?{}>; rel=\"next\"", serde_urlencoded::to_string(query).unwrap_or_default())
}

fn with_link(mut response: Response, link: Option<String>) -> Response {
    if let Some(link) = link {
        insert(response.headers_mut(), header::LINK, &link);
    }
    response
}

/// Sets `name` to `value`, when `value` is a valid header value (ids and cursors are).
fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The services' error reply and the gateway's error body are one shape.
#[cfg(test)]
mod tests {
    use shared::error::ErrorReply;

    use super::*;

    #[test]
    fn a_service_error_reads_as_the_gateway_error_body() {
        let reply = ErrorReply { error: ServiceError::not_found("no such consignment") };
        let body: ErrorBody = serde_json::from_slice(&serde_json::to_vec(&reply).unwrap()).unwrap();
        assert_eq!(body, ErrorBody::new(StatusCode::NOT_FOUND, "no such consignment"));
    }

    #[test]
    fn next_links_carry_the_query_encoded() {
        let query = ListConsignments {
            limit: Some(2),
            cursor: Some("a b&c".to_owned()),
            vessel_id: None,
            user_id: Some("u1".to_owned()),
        };
        assert_eq!(
            next_link("/v1/consignments", &query),
            "</v1/consignments?limit=2&cursor=a+b%26c&user_id=u1>; rel=\"next\""
        );
    }
}
