//! The web till at `/pos` (docs/TILL.md): an operator signs in with a PIN, enters an amount
//! and a tip, and either shows a wallet's QR or takes the customer's scanned code; the screen
//! follows the order until it settles; receipts for 58 and 80 mm paper; today's sales with
//! refunds.
//!
//! Server-rendered HTML (maud) with one small script for the keypad, the scanner field and
//! status polling; English and Chinese. Handlers call the engine and render what it returns:
//! no payment rule lives here. Every POST but sign-in carries the session's CSRF token.

mod i18n;
mod late;
mod layout;
#[cfg(test)]
mod messages;
mod order;
mod receipt;
mod sale;
mod sign_in;
mod today;
mod z_report;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use qrgate_engine::{SessionError, TillSession};

use crate::AppState;
use i18n::Locale;

/// The cookie holding the session token: HttpOnly, SameSite=Strict, path `/pos`.
pub(crate) const SESSION_COOKIE: &str = "qrgate_till";
/// The cookie that marks a browser as a known till of a merchant (docs/TILL.md).
pub(crate) const KNOWN_TILL_COOKIE: &str = "qrgate_till_known";

/// The till's routes, to be mounted at the gateway's root (they all start with `/pos`).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/pos", get(sale::page))
        .route("/pos/", get(sale::page))
        .route("/pos/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/pos/sign-out", post(sign_in::sign_out))
        .route("/pos/charge", post(sale::charge))
        .route("/pos/qr", post(sale::show_qr))
        .route("/pos/orders/{order_id}", get(order::page))
        .route("/pos/orders/{order_id}/status", get(order::status))
        .route("/pos/orders/{order_id}/receipt", get(receipt::page))
        .route(
            "/pos/orders/{order_id}/refund",
            get(today::refund_page).post(today::refund),
        )
        .route("/pos/orders/{order_id}/cancel", post(order::cancel))
        .route("/pos/orders/{order_id}/late-payment", post(late::resolve))
        .route("/pos/late-payments", get(late::fragment))
        .route("/pos/today", get(today::page))
        .route("/pos/today/state", get(today::state))
        .route("/pos/z-report", get(z_report::page))
        .route("/pos/assets/till.css", get(layout::css))
        .route("/pos/assets/till.js", get(layout::js))
}

/// Every inline `<style>` the till's pages carry (the receipt's, one per paper width): the
/// pages' Content-Security-Policy allows exactly these, by hash.
pub(crate) fn inline_styles() -> Vec<String> {
    receipt::PAPERS.map(receipt::print_style).to_vec()
}

/// A redirect after a POST or to the sign-in screen (303: the browser follows with a GET).
pub(crate) fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/pos; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Where a request without a running session goes: the sign-in screen, saying so when the
/// session expired.
pub(crate) fn signed_out(error: &SessionError) -> Response {
    let to = match error {
        SessionError::Expired => "/pos/sign-in?expired=1",
        SessionError::Unknown | SessionError::Engine(_) => "/pos/sign-in",
    };
    if let SessionError::Engine(e) = error {
        tracing::error!(error = %e, "till session could not be read");
    }
    let mut r = see_other(to);
    if let Ok(v) = HeaderValue::from_str(&clear_session_cookie()) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

/// The address a request comes from: its peer, or, when the peer is one of the trusted
/// proxies, the last address in `X-Forwarded-For` that is not one (the client as the
/// nearest untrusted hop; the entries before it could be made up).
pub(crate) fn source_address(
    state: &AppState,
    extensions: &Extensions,
    headers: &HeaderMap,
) -> IpAddr {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| {
            c.0.ip().to_canonical()
        });
    let trusted = &state.config.till_trusted_proxies;
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut source = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                source = ip.to_canonical();
                if !trusted.contains(&source) {
                    return source;
                }
            }
            // Not an address: nothing further left can be trusted.
            Err(_) => return peer,
        }
    }
    source
}

/// The request's session, or why there is none.
pub(crate) async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(TillSession, String), SessionError> {
    let token = i18n::cookie(headers, SESSION_COOKIE)
        .filter(|t| !t.is_empty())
        .ok_or(SessionError::Unknown)?;
    let session = state.engine.till_session(&token).await?;
    Ok((session, token))
}

/// Whether a form's CSRF token is the session's (compared in constant time).
pub(crate) fn csrf_ok(session: &TillSession, sent: &str) -> bool {
    let a = session.csrf_token.as_bytes();
    let b = sent.as_bytes();
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The answer to a POST whose CSRF token is missing or wrong: nothing was done.
pub(crate) fn csrf_refused(
    locale: Locale,
    session: &TillSession,
    uri: &axum::http::Uri,
) -> Response {
    let lang = locale.lang;
    layout::Page::new(locale, lang.pick("Refused", "已拒绝"), Some(session))
        .status(StatusCode::FORBIDDEN)
        .render(
            uri,
            maud::html! {
                (layout::notice(
                    "error",
                    "csrf-error",
                    lang.pick(
                        "This form is out of date: nothing was done.",
                        "此表单已失效：未执行任何操作。",
                    ),
                    lang.pick(
                        "Go back to the till and try again.",
                        "请返回收银台重试。",
                    ),
                ))
                p { a.button href="/pos" { (lang.pick("Back to the till", "返回收银台")) } }
            },
        )
}
