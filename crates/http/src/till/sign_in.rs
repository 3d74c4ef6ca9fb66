//! Signing in (merchant id, operator id, PIN) and out.

use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use maud::html;
use qrgate_engine::SignInError;
use serde::Deserialize;

use super::i18n::{Lang, Locale};
use super::layout::{notice, Page};
use super::{csrf_ok, see_other, session_of, signed_out, SESSION_COOKIE};
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

pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<SignInForm>,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let lang = locale.lang;
    match state
        .engine
        .sign_in_operator(&f.merchant_id, &f.operator_id, &f.pin)
        .await
    {
        Ok(signed_in) => {
            let mut r = see_other("/pos");
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/pos; HttpOnly; SameSite=Strict",
                signed_in.token
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            let (status, title, detail) = match &e {
                SignInError::WrongCredentials => (
                    StatusCode::UNAUTHORIZED,
                    lang.pick(
                        "Merchant id, operator id or PIN is wrong.",
                        "商户号、收银员编号或密码错误。",
                    ),
                    String::new(),
                ),
                SignInError::Locked { until } => {
                    let minutes = (*until - state.engine.now()).num_minutes().max(0) + 1;
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        lang.pick(
                            "Too many wrong PINs: this operator is locked for 5 minutes.",
                            "密码错误次数过多：该收银员已被锁定 5 分钟。",
                        ),
                        match lang {
                            Lang::En => format!("Try again in {minutes} min, or ask the manager."),
                            Lang::Zh => format!("请 {minutes} 分钟后重试，或联系店长。"),
                        },
                    )
                }
                SignInError::MerchantDisabled => (
                    StatusCode::FORBIDDEN,
                    lang.pick(
                        "This merchant is disabled: call your payment provider.",
                        "该商户已停用：请联系支付服务商。",
                    ),
                    String::new(),
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
                    )
                }
            };
            let message = notice("error", "sign-in-error", title, &detail);
            render(
                locale,
                &uri,
                status,
                Some(message),
                f.merchant_id.trim(),
                f.operator_id.trim(),
            )
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
    if let Err(e) = state.engine.sign_out(&token).await {
        tracing::error!(error = %e, "till sign-out failed");
    }
    signed_out(&qrgate_engine::SessionError::Unknown)
}
