//! Signing in and out, the second factor, the one-time link that sets a password, and the
//! account page; and [`Ctx`], the signed-in request every other page starts from.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::html;
use qrgate_engine::{Actor, ConsoleSession, ConsoleSignInError, SessionError};
use serde::Deserialize;

use crate::i18n::{cookie, Locale};
use crate::layout::{csrf, notice, Page, Section};
use crate::ConsoleState;

/// The cookie holding the session token: HttpOnly, SameSite=Strict, path `/console`.
pub const SESSION_COOKIE: &str = "qrgate_console";

/// A 303 to `to` (after a POST, or to sign in).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn signed_out(error: &SessionError) -> Response {
    let to = match error {
        SessionError::Expired => "/console/sign-in?expired=1",
        SessionError::Unknown | SessionError::Engine(_) => "/console/sign-in",
    };
    if let SessionError::Engine(e) = error {
        tracing::error!(error = %e, "console session could not be read");
    }
    let mut r = see_other(to);
    if let Ok(v) = HeaderValue::from_str(&clear_cookie()) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

/// The client's address as the accept loop saw it.
fn client_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// The client's address, as an extractor (`unknown` when served without the accept loop).
pub struct ClientIp(pub String);

impl FromRequestParts<ConsoleState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

/// A signed-in request: the language, the session, the actor for the engine, the token.
pub struct Ctx {
    pub locale: Locale,
    pub session: ConsoleSession,
    pub actor: Actor,
    pub token: String,
}

impl Ctx {
    pub fn lang(&self) -> crate::Lang {
        self.locale.lang
    }

    /// Whether a form's CSRF token is the session's (constant time).
    pub fn csrf_ok(&self, sent: &str) -> bool {
        let a = self.session.csrf_token.as_bytes();
        let b = sent.as_bytes();
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The answer to a form whose CSRF token is wrong: nothing was done.
    pub fn csrf_refused(&self, uri: &Uri) -> Response {
        let l = self.lang();
        Page::of(self, l.t("refused"), Section::None)
            .status(StatusCode::FORBIDDEN)
            .render(
                uri,
                html! {
                    h1 { (l.t("refused")) }
                    (notice("error", "csrf-error", &l.t("csrf-refused"), &l.t("csrf-refused-detail")))
                    p { a href="/console" { (l.t("back-to-console")) } }
                },
            )
    }
}

impl FromRequestParts<ConsoleState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let locale = Locale::from_parts(parts.uri.query(), &parts.headers);
        let token = cookie(&parts.headers, SESSION_COOKIE)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| signed_out(&SessionError::Unknown))?;
        let session = state
            .engine
            .console_session(&token)
            .await
            .map_err(|e| signed_out(&e))?;
        let path = parts.uri.path();
        let second_factor_page = path == "/console/sign-in/code" || path == "/console/sign-out";
        if session.pending_totp && !second_factor_page {
            return Err(see_other("/console/sign-in/code"));
        }
        let actor = Actor::console(session.user.clone(), &client_ip(parts));
        Ok(Ctx {
            locale,
            session,
            actor,
            token,
        })
    }
}

/// Where a signed-in user starts: the provider's attention page, or their merchant's
/// dashboard.
pub async fn home(ctx: Ctx) -> Response {
    match &ctx.session.user.merchant_id {
        Some(m) if !ctx.session.user.role.is_provider() => see_other(&format!("/console/m/{m}")),
        _ => see_other("/console/provider"),
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    expired: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// The sign-in form's own CSRF token (there is no session yet): a random value in a
/// `SameSite=Strict` cookie scoped to the sign-in path, repeated in the form, compared on POST.
/// A page on another site can neither read the cookie nor make the browser send it, so it
/// cannot sign a victim's browser in to the attacker's account (login CSRF).
const SIGN_IN_COOKIE: &str = "qrgate_console_sign_in";

fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn sign_in_form(l: crate::Lang, email: &str, nonce: &str) -> maud::Markup {
    html! {
        form.stack method="post" action="/console/sign-in" {
            input type="hidden" name="csrf" value=(nonce);
            label for="email" { (l.t("email")) }
            input #email name="email" type="email" value=(email) required autocomplete="username"
                autofocus[email.is_empty()] maxlength="254";
            label for="password" { (l.t("password")) }
            input #password name="password" type="password" required autocomplete="current-password"
                autofocus[!email.is_empty()] maxlength="128";
            button #sign-in type="submit" { (l.t("sign-in")) }
        }
    }
}

/// The sign-in page, keeping the browser's sign-in token when it has a well-formed one and
/// setting a new one otherwise.
fn render_sign_in(
    state: &ConsoleState,
    headers: &HeaderMap,
    locale: Locale,
    uri: &Uri,
    status: StatusCode,
    message: Option<maud::Markup>,
    email: &str,
) -> Response {
    let kept = cookie(headers, SIGN_IN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    let nonce = kept
        .clone()
        .unwrap_or_else(qrgate_engine::console_sign_in_nonce);
    let l = locale.lang;
    let mut r = Page::new(locale, l.t("sign-in")).status(status).render(
        uri,
        html! {
            h1 { (l.t("sign-in-title")) }
            @if let Some(m) = message { (m) }
            (sign_in_form(l, email, &nonce))
        },
    );
    if kept.is_none() {
        let secure = if state.config.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{SIGN_IN_COOKIE}={nonce}; Path=/console/sign-in; HttpOnly; SameSite=Strict{secure}"
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().append(SET_COOKIE, v);
        }
    }
    r
}

pub async fn sign_in_page(
    State(state): State<ConsoleState>,
    axum::extract::Query(q): axum::extract::Query<SignInQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    if let Some(token) = cookie(&headers, SESSION_COOKIE).filter(|t| !t.is_empty()) {
        if state.engine.console_session(&token).await.is_ok() {
            return see_other("/console");
        }
    }
    let l = locale.lang;
    let message = q
        .expired
        .is_some()
        .then(|| notice("info", "expired", &l.t("session-expired"), ""));
    render_sign_in(&state, &headers, locale, &uri, StatusCode::OK, message, "")
}

pub async fn sign_in(
    State(state): State<ConsoleState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<SignInForm>,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let l = locale.lang;
    let token_ok =
        cookie(&headers, SIGN_IN_COOKIE).is_some_and(|c| !c.is_empty() && same_secret(&c, &f.csrf));
    if !token_ok {
        tracing::warn!(
            client.ip = %ip,
            "console sign-in refused: the form's token is not the browser's"
        );
        let message = notice(
            "error",
            "csrf-error",
            &l.t("csrf-refused"),
            &l.t("csrf-refused-detail"),
        );
        return render_sign_in(
            &state,
            &headers,
            locale,
            &uri,
            StatusCode::FORBIDDEN,
            Some(message),
            f.email.trim(),
        );
    }
    match state
        .engine
        .sign_in_console(&f.email, &f.password, &ip)
        .await
    {
        Ok(signed_in) => {
            let to = if signed_in.session.pending_totp {
                "/console/sign-in/code"
            } else {
                "/console"
            };
            let mut r = see_other(to);
            let secure = if state.config.secure_cookie {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict{secure}",
                signed_in.token
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            // The sign-in token has done its work: a new one comes with the next form.
            let spent = format!(
                "{SIGN_IN_COOKIE}=; Path=/console/sign-in; HttpOnly; SameSite=Strict; Max-Age=0"
            );
            if let Ok(v) = HeaderValue::from_str(&spent) {
                r.headers_mut().append(SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            let (status, title, detail) = sign_in_refusal(&state, l, &e);
            let message = notice("error", "sign-in-error", &title, &detail);
            render_sign_in(
                &state,
                &headers,
                locale,
                &uri,
                status,
                Some(message),
                f.email.trim(),
            )
        }
    }
}

fn sign_in_refusal(
    state: &ConsoleState,
    l: crate::Lang,
    e: &ConsoleSignInError,
) -> (StatusCode, String, String) {
    match e {
        ConsoleSignInError::WrongCredentials => (
            StatusCode::UNAUTHORIZED,
            l.t("wrong-credentials"),
            String::new(),
        ),
        ConsoleSignInError::Locked { until } => {
            let minutes = (*until - state.engine.now()).num_minutes().max(0) + 1;
            (
                StatusCode::TOO_MANY_REQUESTS,
                l.t("locked"),
                l.ta("locked-detail", &[("minutes", minutes.to_string())]),
            )
        }
        ConsoleSignInError::Busy => (StatusCode::TOO_MANY_REQUESTS, l.t("busy"), String::new()),
        ConsoleSignInError::MerchantDisabled => (
            StatusCode::FORBIDDEN,
            l.t("merchant-disabled"),
            l.t("merchant-disabled-detail"),
        ),
        ConsoleSignInError::Engine(err) => {
            tracing::error!(error = %err, "console sign-in failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                l.t("unavailable"),
                l.t("unavailable-detail"),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

fn code_form(ctx: &Ctx, uri: &Uri, status: StatusCode, message: Option<maud::Markup>) -> Response {
    let l = ctx.lang();
    Page::of(ctx, l.t("code-title"), Section::None)
        .status(status)
        .render(
            uri,
            html! {
                h1 { (l.t("code-title")) }
                @if let Some(m) = message { (m) }
                form.stack method="post" action="/console/sign-in/code" {
                    (csrf(ctx))
                    label for="code" { (l.t("code-label")) }
                    input #code name="code" inputmode="numeric" autocomplete="one-time-code"
                        required maxlength="6" autofocus;
                    button #verify type="submit" { (l.t("code-submit")) }
                }
            },
        )
}

pub async fn code_page(ctx: Ctx, uri: Uri) -> Response {
    if !ctx.session.pending_totp {
        return see_other("/console");
    }
    code_form(&ctx, &uri, StatusCode::OK, None)
}

pub async fn code(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    uri: Uri,
    Form(f): Form<CodeForm>,
) -> Response {
    if !ctx.csrf_ok(&f.csrf) {
        return ctx.csrf_refused(&uri);
    }
    if !ctx.session.pending_totp {
        return see_other("/console");
    }
    let l = ctx.lang();
    match state.engine.verify_console_totp(&ctx.token, &f.code).await {
        Ok(()) => see_other("/console"),
        Err(e) => {
            let (status, title, detail) = sign_in_refusal(&state, l, &e);
            code_form(
                &ctx,
                &uri,
                status,
                Some(notice("error", "code-error", &title, &detail)),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    uri: Uri,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !ctx.csrf_ok(&f.csrf) {
        return ctx.csrf_refused(&uri);
    }
    if let Err(e) = state.engine.console_sign_out(&ctx.token).await {
        tracing::error!(error = %e, "console sign-out failed");
    }
    signed_out(&SessionError::Unknown)
}

#[derive(Deserialize)]
pub struct WelcomeForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

fn welcome_form(
    locale: Locale,
    uri: &Uri,
    token: &str,
    email: &str,
    status: StatusCode,
    message: Option<maud::Markup>,
) -> Response {
    let l = locale.lang;
    Page::new(locale, l.t("welcome-title"))
        .status(status)
        .render(
            uri,
            html! {
                h1 { (l.t("welcome-title")) }
                p { (l.ta("welcome-intro", &[("email", email.to_owned())])) }
                @if let Some(m) = message { (m) }
                form.stack method="post" action=(format!("/console/welcome/{token}")) {
                    label for="password" { (l.t("new-password")) }
                    input #password name="password" type="password" required minlength="12"
                        maxlength="128" autocomplete="new-password" aria-describedby="password-hint";
                    p.muted #password-hint { (l.t("password-hint")) }
                    label for="again" { (l.t("password-again")) }
                    input #again name="again" type="password" required autocomplete="new-password";
                    button #set-password type="submit" { (l.t("set-password")) }
                }
            },
        )
}

fn link_gone(locale: Locale, uri: &Uri) -> Response {
    let l = locale.lang;
    Page::new(locale, l.t("link-gone"))
        .status(StatusCode::NOT_FOUND)
        .render(
            uri,
            html! {
                h1 { (l.t("link-gone")) }
                p { (l.t("link-gone-detail")) }
                p { a href="/console/sign-in" { (l.t("sign-in")) } }
            },
        )
}

pub async fn welcome_page(
    State(state): State<ConsoleState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    match state.engine.sign_in_link_user(&token).await {
        Ok(user) => welcome_form(
            locale,
            &uri,
            &token,
            user.email.as_str(),
            StatusCode::OK,
            None,
        ),
        Err(_) => link_gone(locale, &uri),
    }
}

pub async fn welcome(
    State(state): State<ConsoleState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<WelcomeForm>,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let l = locale.lang;
    let Ok(user) = state.engine.sign_in_link_user(&token).await else {
        return link_gone(locale, &uri);
    };
    let refuse = |detail: String| {
        welcome_form(
            locale,
            &uri,
            &token,
            user.email.as_str(),
            StatusCode::BAD_REQUEST,
            Some(notice("error", "password-error", &l.t("invalid"), &detail)),
        )
    };
    if f.password != f.again {
        return refuse(l.t("passwords-differ"));
    }
    let n = f.password.chars().count();
    if !(qrgate_engine::PASSWORD_MIN_LEN..=qrgate_engine::PASSWORD_MAX_LEN).contains(&n) {
        return refuse(l.t("password-hint"));
    }
    match state
        .engine
        .set_password_with_link(&token, &f.password, &ip)
        .await
    {
        Ok(_) => {
            let message = notice("ok", "password-set", &l.t("password-set"), "");
            render_sign_in(
                &state,
                &headers,
                locale,
                &uri,
                StatusCode::OK,
                Some(message),
                user.email.as_str(),
            )
        }
        Err(qrgate_engine::ConsoleError::NotFound(_)) => link_gone(locale, &uri),
        Err(e) => {
            let (_, _, detail) = crate::error::describe(l, &e);
            refuse(detail)
        }
    }
}

/// The account page: who you are, and two-factor sign-in.
pub async fn account(ctx: Ctx, uri: Uri) -> Response {
    let l = ctx.lang();
    let u = &ctx.session.user;
    Page::of(&ctx, l.t("account-title"), Section::Account).render(
        &uri,
        html! {
            h1 { (l.t("account-title")) }
            dl.facts {
                dt { (l.t("email")) } dd #account-email { (u.email) }
                dt { (l.t("role")) } dd { (crate::layout::role_name(l, u.role)) }
                @if let Some(m) = &u.merchant_id { dt { (l.t("merchant")) } dd { (m) } }
                dt { (l.t("two-factor")) }
                dd #totp-state { (if u.totp_enabled { l.t("two-factor-on") } else { l.t("two-factor-off") }) }
            }
            h2 { (l.t("two-factor")) }
            p { (l.t("two-factor-intro")) }
            form method="post" action="/console/account/2fa" {
                (csrf(&ctx))
                button #start-2fa type="submit" {
                    (if u.totp_enabled { l.t("two-factor-replace") } else { l.t("two-factor-start") })
                }
            }
        },
    )
}

pub async fn start_totp(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    uri: Uri,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !ctx.csrf_ok(&f.csrf) {
        return ctx.csrf_refused(&uri);
    }
    let l = ctx.lang();
    let enrollment = match state.engine.start_console_totp(&ctx.actor).await {
        Ok(e) => e,
        Err(e) => return crate::error::page(&ctx, &uri, e),
    };
    Page::of(&ctx, l.t("two-factor"), Section::Account).render(
        &uri,
        html! {
            h1 { (l.t("two-factor")) }
            p { (l.t("two-factor-scan")) }
            @if let Some(svg) = qr_svg(&enrollment.otpauth_url) {
                div.qr role="img" aria-label=(l.t("two-factor-qr")) { (maud::PreEscaped(svg)) }
            }
            p.secret #totp-secret { (enrollment.secret_base32) }
            p.muted { (l.t("two-factor-url")) " " code #totp-url { (enrollment.otpauth_url) } }
            form.stack method="post" action="/console/account/2fa/confirm" {
                (csrf(&ctx))
                label for="code" { (l.t("code-label")) }
                input #code name="code" inputmode="numeric" autocomplete="one-time-code" required maxlength="6";
                button #confirm-2fa type="submit" { (l.t("two-factor-confirm")) }
            }
        },
    )
}

/// The QR of an `otpauth://` link as inline SVG (attributes only: the pages allow no inline
/// style), for an authenticator app to scan.
fn qr_svg(url: &str) -> Option<String> {
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    // The XML declaration is not valid inside HTML.
    Some(match svg.find("<svg") {
        Some(at) => svg[at..].to_owned(),
        None => svg,
    })
}

pub async fn confirm_totp(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    uri: Uri,
    Form(f): Form<CodeForm>,
) -> Response {
    if !ctx.csrf_ok(&f.csrf) {
        return ctx.csrf_refused(&uri);
    }
    let l = ctx.lang();
    match state.engine.confirm_console_totp(&ctx.actor, &f.code).await {
        Ok(()) => Page::of(&ctx, l.t("two-factor"), Section::Account).render(
            &uri,
            html! {
                h1 { (l.t("two-factor")) }
                (notice("ok", "totp-on", &l.t("two-factor-enabled"), ""))
                p { a href="/console" { (l.t("back-to-console")) } }
            },
        ),
        Err(e) => crate::error::page(&ctx, &uri, e),
    }
}
