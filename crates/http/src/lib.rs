//! qrgate's HTTP layer: the OTTPAY endpoint (`POST /processV2`, also `/process` and
//! `/processV3`), `GET /healthz`, `GET /metrics`, and the web till under `/pos`.
//!
//! Handlers decode the wire format, call one engine use case and encode the answer. They hold
//! no business rules and issue no SQL. Every log line of a request carries its request id (the
//! `x-request-id` header, generated when absent, echoed in the response).
//!
//! The transport keeps one client from holding the gateway: an accept loop with a cap on
//! connections per source, header and idle timeouts (`transport`); request slots with a
//! bounded share for the public routes, and a deadline on every request (`limits`).

mod body;
mod headers;
mod limits;
mod metrics;
mod notify;
mod ottpay;
mod payments;
mod refunds;
mod till;
mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use qrgate_engine::Engine;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use metrics::Metrics;
pub use payments::OttpayNotificationFormat;

/// The default largest request body accepted: OTTPAY requests are a few hundred bytes.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Requests served at once by default; more wait in line.
pub const MAX_CONCURRENT_REQUESTS: usize = 1024;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Larger request bodies are refused with `PARAM_ERROR` (HTTP 413).
    pub body_limit_bytes: usize,
    /// Connections, timeouts and request slots.
    pub limits: HttpLimits,
    /// Whether the till's session and known-till cookies carry `Secure` (HTTPS only).
    pub till_secure_cookie: bool,
    /// Proxies whose `X-Forwarded-For` names the till's clients, for the limits per source
    /// address on signing in; from any other peer the header is ignored.
    pub till_trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            till_secure_cookie: false,
            till_trusted_proxies: Vec::new(),
            limits: HttpLimits::default(),
        }
    }
}

/// What keeps slow or abusive clients from holding the gateway. The defaults suit a gateway
/// behind a load balancer (every connection then comes from the balancer's addresses).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A request's headers must arrive within this of their first byte (of the accept, for
    /// a connection's first request).
    pub header_read_timeout: Duration,
    /// A kept-alive connection that starts no request within this is closed.
    pub idle_timeout: Duration,
    /// Every request is answered within this of its headers' arrival: waiting for a slot,
    /// reading the body, handling it. Past it, 503.
    pub request_timeout: Duration,
    /// Connections open at once from one source address (IPv6: one /64); more are closed
    /// as soon as they are accepted.
    pub max_connections_per_ip: usize,
    /// Requests served at once; the POS endpoint's wait for a slot.
    pub max_requests: usize,
    /// Of those, at most this many for the public routes (`/notify/*`, `/pos/*`, unknown
    /// paths); more are refused at once with 503.
    pub max_public_requests: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            request_timeout: Duration::from_secs(30),
            max_connections_per_ip: 1024,
            max_requests: MAX_CONCURRENT_REQUESTS,
            max_public_requests: 256,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub metrics: Arc<Metrics>,
    pub config: HttpConfig,
}

impl AppState {
    pub fn new(engine: Engine, config: HttpConfig) -> Self {
        AppState {
            engine,
            metrics: Arc::new(Metrics::new()),
            config,
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole router, without a socket (tests can serve it on port 0).
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The whole router with `pages` merged at the root (the web console under `/console`,
/// whose routes bring their own state and Content-Security-Policy). They are public routes:
/// they draw on the public share of the request slots, and get the deadline, tracing and
/// security headers of every route.
pub fn app_with(state: AppState, pages: Router) -> Router {
    // Requests beyond the slots wait for one (or, on the public routes, are refused), so
    // neither a burst nor a flood can exhaust memory or the database pool.
    let slots = limits::Slots::new(&state.config.limits);
    let router = Router::new()
        .route("/processV2", post(ottpay::handle))
        .route("/process", post(ottpay::handle))
        .route("/processV3", post(ottpay::handle))
        .route("/notify/{wallet}", post(notify::handle))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .merge(headers::for_pages(till::router(), &till::inline_styles()))
        .with_state(state)
        .merge(pages)
        // Within the request's span: the deadline, and a slot.
        .layer(axum::middleware::from_fn_with_state(
            slots.clone(),
            limits::limit,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    request_id = %id,
                    method = %req.method(),
                    path = %req.uri().path(),
                )
            }),
        )
        // Before it: a public route over its share is refused untraced, so that a flood does
        // not flood the log (a summary is logged instead).
        .layer(axum::middleware::from_fn_with_state(
            slots,
            limits::public_share,
        ));
    headers::for_every_response(router)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_secs(2), state.engine.store().ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(serde_json::json!({"status": "ok", "database": "ok"})),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unavailable", "database": "error"})),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "database": "timeout"})),
        ),
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight
/// finish. Handlers get the peer address as `ConnectInfo<SocketAddr>` (wallets want the
/// caller's IP with a payment).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Router::new(), shutdown).await
}

/// [`serve`], with `pages` merged at the root (see [`app_with`]).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    pages: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.limits;
    transport::serve(listener, app_with(state, pages), limits, shutdown).await
}
