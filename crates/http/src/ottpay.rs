//! The OTTPAY endpoint: decode the envelope, recognise the merchant, open the data with its
//! sign key, dispatch on `action`, and answer with a sealed envelope.
//!
//! Error codes (documented for POS integrators in `docs/API.md`):
//! - `PARAM_ERROR`: the body or envelope is malformed (not JSON, missing or non-string
//!   field, `data` not base64 or of a bad length, `md5` not 32 hex digits, body too large);
//! - `PARAM_INVALID`: unknown or disabled merchant, unknown action, wrong version, a missing
//!   or invalid field in `data`;
//! - `FAIL`: the data does not decrypt or its digest does not match (wrong sign key or
//!   tampering), or the action cannot be served (not supported yet, no rate);
//! - `DB_ERROR` / `SYSTEM_ERROR`: the gateway's own trouble; nothing was done.
//!
//! Every answer is HTTP 200 with an envelope. Answers to authenticated requests are sealed
//! with the key that opened the request (an encrypted `{}` on errors). Refusals before
//! authentication (bad envelope, unknown or disabled merchant, data that does not open) seal
//! the `{}` with the empty key: there is no key to use, or using the merchant's would hand an
//! unauthenticated caller a known plaintext under it.

use std::time::Instant;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::State;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, EXPECT};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use qrgate_domain::{Currency, Merchant, MerchantId};
use qrgate_engine::{FxError, PosAuthError, PosCredentials};
use qrgate_ottpay::{
    Action, Data, ExRateQueryRequest, ExRateQueryResponse, OpenError, RequestEnvelope,
    ResponseEnvelope, RspCode, SignKey,
};

use crate::body::{read_limited, BodyRead};
use crate::AppState;

/// How long a client may take to send its request body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request that was understood and authenticated.
pub(crate) struct Authenticated {
    pub(crate) envelope: RequestEnvelope,
    pub(crate) merchant: Merchant,
    /// The key that opened the request; the answer is sealed with it.
    pub(crate) key: SignKey,
    pub(crate) data: Data,
}

/// An answer that is not a success: the code, a one-line ASCII message, and the key to seal
/// the `{}` data with.
pub(crate) struct Refusal {
    code: RspCode,
    message: String,
    key: SignKey,
    status: StatusCode,
    /// The connection must be closed after the answer (a body left unread).
    close: bool,
}

impl Refusal {
    pub(crate) fn new(code: RspCode, message: impl Into<String>, key: &SignKey) -> Self {
        Refusal {
            code,
            message: message.into(),
            key: key.clone(),
            status: StatusCode::OK,
            close: false,
        }
    }
}

/// The outcome of one request, before it is written out.
pub(crate) enum Answer {
    Success {
        data: Data,
        key: SignKey,
    },
    /// Not a success, but with data the POS needs (the order id and status of a processing
    /// or declined payment), sealed with the request's key.
    Data {
        code: RspCode,
        message: String,
        data: Data,
        key: SignKey,
    },
    Refused(Refusal),
}

pub(crate) async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "127.0.0.1".to_owned(), |c| c.0.ip().to_string());
    let expects_continue = request
        .headers()
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let ((action_label, merchant_id, answer), wallet_time) = qrgate_engine::timed(answer(
        &state,
        request.into_body(),
        expects_continue,
        client_ip,
    ))
    .await;
    let mut close = false;
    let (status, envelope, code) = match answer {
        Answer::Success { data, key } => (
            StatusCode::OK,
            ResponseEnvelope::sealed(RspCode::Success, "success", &data, &key),
            RspCode::Success,
        ),
        Answer::Data {
            code,
            message,
            data,
            key,
        } => (
            StatusCode::OK,
            ResponseEnvelope::sealed(code, &message, &data, &key),
            code,
        ),
        Answer::Refused(r) => {
            close = r.close;
            (
                r.status,
                ResponseEnvelope::error(r.code, &r.message, &r.key),
                r.code,
            )
        }
    };
    let elapsed = started.elapsed();
    state.metrics.observe(action_label, code.as_str(), elapsed);
    tracing::info!(
        ottpay.action = action_label,
        merchant.id = merchant_id.as_deref().unwrap_or("-"),
        ottpay.rsp_code = code.as_str(),
        ottpay.rsp_msg = %envelope.rsp_msg,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "ottpay request answered"
    );
    // The time spent waiting on wallets, so that a client can tell the gateway's own share
    // of the latency (W3C Server-Timing; `qrgate bench` reads it).
    let timing = format!(
        "wallet;dur={:.3};desc=\"wallet calls\"",
        wallet_time.as_secs_f64() * 1000.0
    );
    let mut response = (
        status,
        [
            (CONTENT_TYPE, "application/json".to_owned()),
            (HeaderName::from_static("server-timing"), timing),
        ],
        envelope.to_json(),
    )
        .into_response();
    if close {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Decodes, authenticates and serves one request. Returns the action's metric label, the
/// merchant id as sent (for the log line), and the answer.
async fn answer(
    state: &AppState,
    body: Body,
    expects_continue: bool,
    client_ip: String,
) -> (&'static str, Option<String>, Answer) {
    let no_key = SignKey::new("");
    let limit = state.config.body_limit_bytes;
    // An oversized body is read to its end (up to a bound) before the refusal, so that the
    // client hears it rather than a reset (crate::body).
    let bytes = match read_limited(body, limit, BODY_READ_TIMEOUT, expects_continue).await {
        BodyRead::Complete(b) => b,
        BodyRead::TooLarge { drained } => {
            let mut r = Refusal::new(
                RspCode::ParamError,
                format!("request body is larger than {limit} bytes"),
                &no_key,
            );
            r.status = StatusCode::PAYLOAD_TOO_LARGE;
            r.close = !drained;
            return ("unknown", None, Answer::Refused(r));
        }
        BodyRead::Broken => {
            let r = Refusal::new(
                RspCode::ParamError,
                "request body could not be read",
                &no_key,
            );
            return ("unknown", None, Answer::Refused(r));
        }
        BodyRead::TimedOut => {
            let mut r = Refusal::new(
                RspCode::ParamError,
                "request body not received in time",
                &no_key,
            );
            r.status = StatusCode::REQUEST_TIMEOUT;
            r.close = true;
            return ("unknown", None, Answer::Refused(r));
        }
    };
    let envelope = match RequestEnvelope::parse(&bytes) {
        Ok(e) => e,
        Err(e) => {
            let r = Refusal::new(RspCode::ParamError, format!("bad envelope: {e}"), &no_key);
            return ("unknown", None, Answer::Refused(r));
        }
    };
    let action = Action::parse(&envelope.action);
    let label = action.map_or("unknown", Action::as_str);
    // Logged only when it has the shape of a merchant id: a caller controls this text.
    let merchant_id = Some(if MerchantId::parse(&envelope.merchant_id).is_ok() {
        envelope.merchant_id.clone()
    } else {
        "(invalid)".to_owned()
    });
    let request = match authenticate(state, envelope).await {
        Ok(r) => r,
        Err(refusal) => return (label, merchant_id, Answer::Refused(refusal)),
    };
    let Some(action) = action else {
        let r = Refusal::new(RspCode::ParamInvalid, "unknown action", &request.key);
        return (label, merchant_id, Answer::Refused(r));
    };
    if request.envelope.version != action.version() {
        let r = Refusal::new(
            RspCode::ParamInvalid,
            format!(
                "unsupported version for {}: expected {}",
                action.as_str(),
                action.version()
            ),
            &request.key,
        );
        return (label, merchant_id, Answer::Refused(r));
    }
    let answer = match action {
        Action::ExRateQuery => exchange_rate(state, &request).await,
        Action::PassivePay => crate::payments::passive_pay(state, &request, client_ip).await,
        Action::StatusQuery => crate::payments::status_query(state, &request).await,
        Action::ActivePay => crate::payments::active_pay(state, &request, client_ip).await,
        Action::Refund => crate::refunds::refund(state, &request).await,
        Action::RefundQuery => crate::refunds::refund_query(state, &request).await,
    };
    (label, merchant_id, answer)
}

/// Recognises the merchant and opens `data` with its current key, or its previous key
/// during a rotation's grace period.
async fn authenticate(
    state: &AppState,
    envelope: RequestEnvelope,
) -> Result<Authenticated, Refusal> {
    let no_key = SignKey::new("");
    let PosCredentials { merchant, keys } =
        match state.engine.pos_credentials(&envelope.merchant_id).await {
            Ok(c) => c,
            Err(PosAuthError::UnknownMerchant) => {
                return Err(Refusal::new(
                    RspCode::ParamInvalid,
                    "unknown merchant_id",
                    &no_key,
                ))
            }
            Err(PosAuthError::Disabled) => {
                return Err(Refusal::new(
                    RspCode::ParamInvalid,
                    "merchant is disabled",
                    &no_key,
                ))
            }
            Err(PosAuthError::Store(e)) => {
                tracing::error!(error = %e, "cannot read the merchant");
                return Err(Refusal::new(RspCode::DbError, "database error", &no_key));
            }
            Err(PosAuthError::MasterKey(e)) => {
                tracing::error!(error = %e, "cannot decrypt the merchant's sign key");
                return Err(Refusal::new(RspCode::SystemError, "system error", &no_key));
            }
        };
    let keys: Vec<SignKey> = keys.iter().map(|k| SignKey::new(k.expose())).collect();
    let mut first_error = None;
    for key in &keys {
        match envelope.open(key) {
            Ok(data) => {
                return Ok(Authenticated {
                    envelope,
                    merchant,
                    key: key.clone(),
                    data,
                })
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let error = first_error.unwrap_or(OpenError::NotJson);
    let (code, message) = match error {
        OpenError::Base64 | OpenError::Length | OpenError::BadDigestField => {
            (RspCode::ParamError, error.to_string())
        }
        // Decrypting with a wrong key gives garbage that fails one of these checks at random
        // (now and then even the padding passes), so they all read the same to a POS.
        OpenError::Padding
        | OpenError::NotJson
        | OpenError::NotObject
        | OpenError::DigestMismatch => (
            RspCode::Fail,
            "data does not open with the merchant's sign key: wrong sign key or tampered data"
                .to_owned(),
        ),
    };
    // Sealed with the empty key, not the merchant's: a refusal to an unauthenticated caller
    // must not hand out a known plaintext (`{}`) encrypted under the merchant's key.
    Err(Refusal::new(code, message, &no_key))
}

/// EX_RATE_QUERY (`ottpay.md` §5.6): the rate to CNY ×10^8. Without `fee_type`, the
/// merchant's own currency is meant (§13.9).
async fn exchange_rate(state: &AppState, request: &Authenticated) -> Answer {
    let refuse = |code, msg: String| Answer::Refused(Refusal::new(code, msg, &request.key));
    let query = match ExRateQueryRequest::from_data(&request.data) {
        Ok(q) => q,
        Err(e) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    let currency = match query.fee_type.as_deref() {
        None => request.merchant.currency,
        Some(code) => match code.parse::<Currency>() {
            Ok(c) => c,
            Err(_) => {
                return refuse(
                    RspCode::ParamInvalid,
                    "invalid fee_type: expected CAD, USD or CNY".into(),
                )
            }
        },
    };
    match state
        .engine
        .exchange_rate(&request.merchant, currency)
        .await
    {
        Ok(quote) => {
            let response = ExRateQueryResponse {
                fee_type: currency.code().to_owned(),
                rate: quote.rate.scaled(),
                rate_time: Some(request.merchant.time_zone.wire_time(quote.updated_at)),
            };
            Answer::Success {
                data: response.to_data(),
                key: request.key.clone(),
            }
        }
        Err(FxError::Missing(c)) => {
            refuse(RspCode::Fail, format!("no exchange rate is set for {c}"))
        }
        Err(e @ FxError::Stale { .. }) => refuse(RspCode::Fail, e.to_string()),
        Err(FxError::Engine(e)) => {
            tracing::error!(error = %e, "cannot read the exchange rate");
            refuse(RspCode::DbError, "database error".into())
        }
    }
}
