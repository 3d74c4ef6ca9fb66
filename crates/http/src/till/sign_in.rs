//! Signing in (merchant id, operator id, PIN) and out.

use axum::extract::{Query, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Utc};
use maud::html;
use qrgate_engine::{SignInAttempt, SignInError, KNOWN_TILL_LIFETIME};
use serde::Deserialize;

use super::i18n::{cookie, Lang, Locale};
use super::layout::{notice, Page};
use super::{
    csrf_ok, see_other, session_of, signed_out, source_address, KNOWN_TILL_COOKIE, SESSION_COOKIE,
};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct SignInQuery {
    expired: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    merchant_id: String,
    #[serde(default)]
    operator_id: String,
    #[serde(default)]
    pin: String,
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
    /// On sign-out from an open sale's page: the sale, cancelled first.
    #[serde(default)]
    order_id: String,
}

fn form(lang: Lang, merchant_id: &str, operator_id: &str) -> maud::Markup {
    html! {
        form.sign-in-form method="post" action="/pos/sign-in" {
            label for="merchant_id" { (lang.pick("Merchant id", "商户号")) }
            input #merchant_id name="merchant_id" value=(merchant_id) required
                autocomplete="username" autocapitalize="characters" spellcheck="false"
                autofocus[merchant_id.is_empty()];
            label for="operator_id" { (lang.pick("Operator id", "收银员编号")) }
            input #operator_id name="operator_id" value=(operator_id) required
                inputmode="numeric" autocomplete="off"
                autofocus[!merchant_id.is_empty() && operator_id.is_empty()];
            label for="pin" { (lang.pick("PIN", "密码 (PIN)")) }
            input #pin name="pin" type="password" required inputmode="numeric"
                autocomplete="current-password"
                autofocus[!merchant_id.is_empty() && !operator_id.is_empty()];
            button #sign-in type="submit" { (lang.pick("Sign in", "登录")) }
        }
    }
}

fn render(
    locale: Locale,
    uri: &Uri,
    status: StatusCode,
    message: Option<maud::Markup>,
    merchant_id: &str,
    operator_id: &str,
) -> Response {
    let lang = locale.lang;
    Page::new(locale, lang.pick("Sign in", "登录"), None)
        .status(status)
        .render(
            uri,
            html! {
                div.sign-in {
                    h1 { (lang.pick("Sign in to the till", "登录收银台")) }
                    @if let Some(m) = message { (m) }
                    (form(lang, merchant_id, operator_id))
                }
            },
        )
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Query(q): Query<SignInQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    // Already signed in: straight to the till.
    if session_of(&state, &headers).await.is_ok() {
        return see_other("/pos");
    }
    let lang = locale.lang;
    let message = q.expired.is_some().then(|| {
        notice(
            "info",
            "expired",
            lang.pick(
                "Your session expired, please sign in again.",
                "登录已过期，请重新登录。",
            ),
            "",
        )
    });
    render(locale, &uri, StatusCode::OK, message, "", "")
}

/// "Try again in …" for a wait until `until`.
fn wait_words(lang: Lang, now: DateTime<Utc>, until: DateTime<Utc>) -> String {
    let seconds = (until - now).num_seconds().max(1);
    match lang {
        Lang::En if seconds <= 90 => format!("Try again in {seconds} s."),
        Lang::En => format!("Try again in {} min.", (seconds + 59) / 60),
        Lang::Zh if seconds <= 90 => format!("请 {seconds} 秒后重试。"),
        Lang::Zh => format!("请 {} 分钟后重试。", (seconds + 59) / 60),
    }
}

fn retry_after(now: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
    u64::try_from((until - now).num_seconds().max(1)).unwrap_or(1)
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    uri: Uri,
    Form(f): Form<SignInForm>,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let lang = locale.lang;
    let known_till = cookie(&headers, KNOWN_TILL_COOKIE);
    let attempt = SignInAttempt {
        merchant_id: &f.merchant_id,
        operator_id: &f.operator_id,
        pin: &f.pin,
        source: source_address(&state, &extensions, &headers),
        known_till: known_till.as_deref(),
    };
    let secure = if state.config.till_secure_cookie {
        "; Secure"
    } else {
        ""
    };
    match state.engine.sign_in_operator(&attempt).await {
        Ok(signed_in) => {
            let mut r = see_other("/pos");
            let cookies = [
                format!(
                    "{SESSION_COOKIE}={}; Path=/pos; HttpOnly; SameSite=Strict{secure}",
                    signed_in.token
                ),
                format!(
                    "{KNOWN_TILL_COOKIE}={}; Path=/pos; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                    signed_in.known_till,
                    KNOWN_TILL_LIFETIME.num_seconds()
                ),
            ];
            for cookie in cookies {
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().append(SET_COOKIE, v);
                }
            }
            r
        }
        Err(e) => {
            let now = state.engine.now();
            let (status, title, detail, wait) = match &e {
                SignInError::WrongCredentials => (
                    StatusCode::UNAUTHORIZED,
                    lang.pick(
                        "Merchant id, operator id or PIN is wrong.",
                        "商户号、收银员编号或密码错误。",
                    ),
                    String::new(),
                    None,
                ),
                SignInError::Locked { until } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    lang.pick(
                        "Too many wrong PINs for this operator id.",
                        "该收银员编号的密码错误次数过多。",
                    ),
                    format!(
                        "{} {}",
                        wait_words(lang, now, *until),
                        lang.pick(
                            "The shop's usual till can still sign in; or ask the manager.",
                            "本店常用的收银台仍可登录；或联系店长。",
                        )
                    ),
                    Some(*until),
                ),
                SignInError::SourcePaused { until } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    lang.pick(
                        "Too many sign-in attempts from this network.",
                        "来自此网络的登录尝试过多。",
                    ),
                    wait_words(lang, now, *until),
                    Some(*until),
                ),
                SignInError::Busy => (
                    StatusCode::TOO_MANY_REQUESTS,
                    lang.pick(
                        "Too many sign-ins right now: try again in a moment.",
                        "当前登录请求过多，请稍后重试。",
                    ),
                    String::new(),
                    Some(now + chrono::Duration::seconds(1)),
                ),
                SignInError::OperatorDisabled => (
                    StatusCode::FORBIDDEN,
                    lang.pick(
                        "This operator is disabled: ask the manager.",
                        "该收银员已停用：请联系店长。",
                    ),
                    String::new(),
                    None,
                ),
                SignInError::MerchantDisabled => (
                    StatusCode::FORBIDDEN,
                    lang.pick(
                        "This merchant is disabled: call your payment provider.",
                        "该商户已停用：请联系支付服务商。",
                    ),
                    String::new(),
                    None,
                ),
                SignInError::Engine(err) => {
                    tracing::error!(error = %err, "till sign-in failed");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        lang.pick(
                            "The gateway cannot sign you in right now: try again in a moment.",
                            "网关暂时无法登录，请稍后重试。",
                        ),
                        String::new(),
                        None,
                    )
                }
            };
            let message = notice("error", "sign-in-error", title, &detail);
            let mut r = render(
                locale,
                &uri,
                status,
                Some(message),
                f.merchant_id.trim(),
                f.operator_id.trim(),
            );
            if let Some(until) = wait {
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after(now, until)));
            }
            r
        }
    }
}

pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<CsrfForm>,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let (session, token) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return signed_out(&e),
    };
    if !csrf_ok(&session, &f.csrf) {
        return super::csrf_refused(locale, &session, &uri);
    }
    // Leaving an open sale by signing out cancels it, as leaving it any other way does.
    if let Ok(order_id) = qrgate_domain::MerchantOrderId::parse(f.order_id.trim()) {
        let by = session.operator.id.as_str();
        if let Err(e) = state
            .engine
            .cancel_order(&session.merchant, &order_id, by)
            .await
        {
            tracing::warn!(order.id = %order_id, error = %e, "the open sale could not be cancelled at sign-out");
        }
    }
    if let Err(e) = state.engine.sign_out(&token).await {
        tracing::error!(error = %e, "till sign-out failed");
    }
    signed_out(&qrgate_engine::SessionError::Unknown)
}
