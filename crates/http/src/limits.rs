//! Request slots and the request deadline, per request (the accept loop in
//! [`crate::transport`] bounds connections).
//!
//! - At most `max_requests` requests are served at once; the POS endpoint's requests wait
//!   for a slot (bursts are normal there).
//! - The public routes (wallet notifications `/notify/*`, the till `/pos/*`, the console
//!   `/console/*`, and any unknown path), which anyone can reach without a sign key, get at most `max_public_requests` of
//!   those slots, and are refused at once (503) when they have none left: a flood of them
//!   can never take the slots of the POS endpoint, `/healthz` or `/metrics`. Those refusals
//!   are not logged one by one (a flood would flood the log): one line sums them up every
//!   10 s at most.
//! - Every request, from the moment its headers are read, must be answered within
//!   `request_timeout`: waiting for a slot, reading the body and handling it. Past it the
//!   request is dropped and answered 503 (a POS gets a `TIMEOUT` envelope).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use qrgate_ottpay::{ResponseEnvelope, RspCode, SignKey};
use tokio::sync::Semaphore;

use crate::HttpLimits;

/// Which share of the slots a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// The OTTPAY endpoint and the operators' `/healthz` and `/metrics`.
    Pos,
    /// Everything reachable without a sign key: wallet notifications, the till, unknown paths.
    Public,
}

impl Lane {
    fn of(path: &str) -> Lane {
        match path {
            "/processV2" | "/process" | "/processV3" | "/healthz" | "/metrics" => Lane::Pos,
            _ => Lane::Public,
        }
    }
}

/// How often, at most, refusals of the public routes are summed up in the log.
const BUSY_REPORT_EVERY: Duration = Duration::from_secs(10);

/// The slots and the deadline, shared by every request.
#[derive(Clone)]
pub(crate) struct Slots {
    all: Arc<Semaphore>,
    public: Arc<Semaphore>,
    max_public: usize,
    request_timeout: Duration,
    busy: Arc<BusyReport>,
}

impl Slots {
    pub(crate) fn new(limits: &HttpLimits) -> Self {
        let max_public = limits.max_public_requests.min(limits.max_requests);
        Slots {
            all: Arc::new(Semaphore::new(limits.max_requests)),
            public: Arc::new(Semaphore::new(max_public)),
            max_public,
            request_timeout: limits.request_timeout,
            busy: Arc::new(BusyReport {
                started: Instant::now(),
                refused: AtomicU64::new(0),
                reported_at_secs: AtomicU64::new(0),
            }),
        }
    }
}

/// Refusals of the public routes, logged as one line every `BUSY_REPORT_EVERY` at most.
struct BusyReport {
    started: Instant,
    refused: AtomicU64,
    /// Seconds after `started` of the last report, plus one (0: never reported).
    reported_at_secs: AtomicU64,
}

impl BusyReport {
    fn refused_one(&self, max: usize) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_secs().saturating_add(1);
        let last = self.reported_at_secs.load(Ordering::Relaxed);
        let due = last == 0 || now >= last.saturating_add(BUSY_REPORT_EVERY.as_secs());
        if due
            && self
                .reported_at_secs
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let refused = self.refused.swap(0, Ordering::Relaxed);
            tracing::warn!(
                refused,
                max_public_requests = max,
                "public routes (/notify, /pos) at their share of the request slots: requests \
                 refused with 503 (count since the last such line)"
            );
        }
    }
}

/// The first middleware, before the request is traced: a public route gets a slot of its
/// share or is refused at once. The permit is held until the answer is ready.
pub(crate) async fn public_share(
    State(slots): State<Slots>,
    request: Request,
    next: Next,
) -> Response {
    match Lane::of(request.uri().path()) {
        Lane::Pos => next.run(request).await,
        Lane::Public => match Arc::clone(&slots.public).try_acquire_owned() {
            Ok(_permit) => next.run(request).await,
            Err(_) => {
                slots.busy.refused_one(slots.max_public);
                busy()
            }
        },
    }
}

/// The second middleware, within the request's span: a slot, then the handler, within the
/// deadline.
pub(crate) async fn limit(State(slots): State<Slots>, request: Request, next: Next) -> Response {
    let lane = Lane::of(request.uri().path());
    let served = tokio::time::timeout(slots.request_timeout, async {
        let Ok(_slot) = slots.all.acquire().await else {
            // The semaphore is never closed.
            return busy();
        };
        next.run(request).await
    })
    .await;
    match served {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                request_timeout_secs = slots.request_timeout.as_secs(),
                "request not answered within the request deadline; dropped"
            );
            not_in_time(lane, slots.request_timeout)
        }
    }
}

/// The public routes' slots are all taken.
fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(RETRY_AFTER, "1")],
        "busy: try again shortly\n",
    )
        .into_response()
}

/// The answer to a request dropped at its deadline. A POS gets an envelope, as for every
/// other answer; whether a payment request was carried out is then unknown to it.
fn not_in_time(lane: Lane, timeout: Duration) -> Response {
    let secs = timeout.as_secs();
    match lane {
        Lane::Pos => {
            let envelope = ResponseEnvelope::error(
                RspCode::Timeout,
                &format!(
                    "request not answered within {secs} s; a payment's outcome is unknown: \
                     ask STATUS_QUERY"
                ),
                &SignKey::new(""),
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(CONTENT_TYPE, "application/json")],
                envelope.to_json(),
            )
                .into_response()
        }
        Lane::Public => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("request not answered within {secs} s\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pos_endpoint_and_the_operators_routes_are_in_the_pos_lane() {
        for path in [
            "/processV2",
            "/process",
            "/processV3",
            "/healthz",
            "/metrics",
        ] {
            assert_eq!(Lane::of(path), Lane::Pos, "{path}");
        }
        for path in [
            "/notify/alipay",
            "/pos",
            "/pos/sign-in",
            "/console",
            "/console/sign-in",
            "/processV2/",
            "/healthz/x",
            "/",
            "/nope",
        ] {
            assert_eq!(Lane::of(path), Lane::Public, "{path}");
        }
    }
}
