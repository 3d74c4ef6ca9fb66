//! qrgate's HTTP layer: the OTTPAY endpoint (`POST /processV2`, also `/process` and
//! `/processV3`), `GET /healthz`, `GET /metrics`, and the web till under `/pos`.
//!
//! Handlers decode the wire format, call one engine use case and encode the answer. They hold
//! no business rules and issue no SQL. Every log line of a request carries its request id (the
//! `x-request-id` header, generated when absent, echoed in the response).

mod metrics;
mod notify;
mod ottpay;
mod payments;
mod refunds;
mod till;

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

/// Requests served at once; more wait in line.
pub const MAX_CONCURRENT_REQUESTS: usize = 1024;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Larger request bodies are refused with `PARAM_ERROR` (HTTP 413).
    pub body_limit_bytes: usize,
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
    Router::new()
        .route("/processV2", post(ottpay::handle))
        .route("/process", post(ottpay::handle))
        .route("/processV3", post(ottpay::handle))
        .route("/notify/{wallet}", post(notify::handle))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .merge(till::router())
        .with_state(state)
        .layer(
            tower::ServiceBuilder::new()
                // Requests beyond this wait for a slot, so a burst cannot exhaust memory or
                // the database pool.
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    MAX_CONCURRENT_REQUESTS,
                ))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
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
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
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

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address reaches handlers (wallets want the caller's IP with a payment).
    let app = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
