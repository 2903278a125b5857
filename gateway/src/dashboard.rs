//! The dashboard at `/`: one HTML page, its stylesheet and its script, built into
//! the binary (no build step, nothing fetched from elsewhere: it works offline),
//! served with headers that keep a browser strict about it ([`security_headers`]).
//!
//! The page calls the `/v1` API with the bearer token the user enters once per
//! browser session (kept in `sessionStorage`, sent only in the `Authorization`
//! header, never in a URL): the fleet's bars (`/v1/vessels`), the live feed
//! (`/v1/events`, read with `fetch()` streaming since `EventSource` cannot send a
//! header, resumed with `Last-Event-ID`), the create form (`POST /v1/consignments`,
//! the service's error message shown inline) and the running instances
//! (`/v1/services`, from `$SRV.STATS`).

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_CSS: &str = include_str!("dashboard/app.css");
const APP_JS: &str = include_str!("dashboard/app.js");

/// The page's Content-Security-Policy: its own script and stylesheet only (no
/// inline script or style), calls to this origin only, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Adds the security headers to every response (the API's too: they cost nothing
/// there): the CSP, no MIME sniffing, no framing, no referrer.
pub async fn security_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}
