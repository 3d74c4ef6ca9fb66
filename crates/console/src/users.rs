//! Users: a merchant's (its owner invites staff and owners), and every user (the provider).
//! An invitation shows the new user's one-time sign-in link once, to be passed on.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use qrgate_domain::{ConsoleRole, MerchantId, Permission, UserStatus};
use qrgate_engine::{ConsoleError, ConsoleUser, SignInLink};
use serde::Deserialize;

use crate::auth::Ctx;
use crate::error;
use crate::forms;
use crate::i18n::Lang;
use crate::layout::{csrf, notice, role_name, Page, Section};
use crate::merchant::merchant_id;
use crate::ConsoleState;

fn users_table(ctx: &Ctx, users: &[ConsoleUser], base: &str, manage: bool) -> Markup {
    let l = ctx.lang();
    html! {
        div.table-wrap { table #users {
            thead { tr {
                th scope="col" { (l.t("email")) } th scope="col" { (l.t("role")) }
                th scope="col" { (l.t("merchant")) } th scope="col" { (l.t("status")) }
                th scope="col" { (l.t("two-factor")) }
                @if manage { th scope="col" { (l.t("actions")) } }
            } }
            tbody { @for u in users { tr {
                td { (u.email) } td { (role_name(l, u.role)) }
                td { (u.merchant_id.as_ref().map_or("-", MerchantId::as_str)) }
                td { (if u.status == UserStatus::Active { l.t("active") } else { l.t("disabled") })
                     @if !u.has_password { " · " (l.t("link-not-used")) } }
                td { (if u.totp_enabled { l.t("two-factor-on") } else { l.t("two-factor-off") }) }
                @if manage { td {
                    @if ctx.session.user.id != u.id {
                        form.inline method="post" action=(format!("{base}/{}/status", u.id)) {
                            (csrf(ctx))
                            input type="hidden" name="status" value=(if u.status == UserStatus::Active { "disabled" } else { "active" });
                            button.secondary type="submit" { (if u.status == UserStatus::Active { l.t("disable") } else { l.t("enable") }) }
                        }
                        " "
                        form.inline method="post" action=(format!("{base}/{}/link", u.id)) {
                            (csrf(ctx))
                            button.secondary type="submit" { (l.t("new-link")) }
                        }
                    }
                } }
            } } }
        } }
    }
}

fn invite_form(ctx: &Ctx, action: &str, roles: &[ConsoleRole], with_merchant: bool) -> Markup {
    let l = ctx.lang();
    html! {
        h2 #invite-title { (l.t("invite")) }
        form.row method="post" action=(action) aria-labelledby="invite-title" {
            (csrf(ctx))
            div { label for="invite-email" { (l.t("email")) } input #invite-email name="email" type="email" required maxlength="254"; }
            div { label for="invite-role" { (l.t("role")) }
                select #invite-role name="role" { @for r in roles { option value=(r.as_str()) { (role_name(l, *r)) } } } }
            @if with_merchant {
                div { label for="invite-merchant" { (l.t("merchant-if-merchant-role")) } input #invite-merchant name="merchant_id" maxlength="10"; }
            }
            button #invite type="submit" { (l.t("invite")) }
        }
    }
}

fn link_notice(l: Lang, state: &ConsoleState, email: &str, link: &SignInLink) -> Markup {
    let _ = state;
    html! {
        div.notice.ok #invite-link role="status" {
            p.title { (l.ta("link-for", &[("email", email.to_owned())])) }
            p.secret #sign-in-link { (link.path()) }
            p { (l.t("link-once")) }
        }
    }
}

async fn merchant_users_page(
    state: &ConsoleState,
    ctx: &Ctx,
    merchant: &str,
    uri: &Uri,
    message: Option<(StatusCode, Markup)>,
) -> Response {
    let l = ctx.lang();
    let loaded = async {
        let id = merchant_id(merchant)?;
        let m = state.engine.console_merchant(&ctx.actor, &id).await?;
        if !(ctx.actor.may(Permission::ManageMerchantUsers)
            || ctx.actor.may(Permission::ViewProvider))
        {
            return Err(ConsoleError::Forbidden);
        }
        let users = state.engine.console_users(&ctx.actor, Some(&id)).await?;
        Ok::<_, ConsoleError>((m, users))
    }
    .await;
    let (m, users) = match loaded {
        Ok(x) => x,
        Err(e) => return error::page(ctx, uri, e),
    };
    let manage =
        ctx.actor.may(Permission::ManageMerchantUsers) || ctx.actor.may(Permission::ManageProvider);
    let base = format!("/console/m/{}/users", m.id);
    let (status, message) = message.map_or((StatusCode::OK, None), |(s, m)| (s, Some(m)));
    Page::of(ctx, l.t("nav-users"), Section::Users)
        .merchant(&m)
        .status(status)
        .render(
            uri,
            html! {
                h1 { (l.t("nav-users")) }
                @if let Some(msg) = message { (msg) }
                (users_table(ctx, &users, &base, manage))
                @if manage { (invite_form(ctx, &base, &[ConsoleRole::MerchantStaff, ConsoleRole::MerchantOwner], false)) }
            },
        )
}

pub async fn merchant_users(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
) -> Response {
    merchant_users_page(&state, &ctx, &merchant, &uri, None).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    merchant_id: String,
}

fn role_of(l: Lang, raw: &str) -> Result<ConsoleRole, ConsoleError> {
    ConsoleRole::parse(raw.trim())
        .ok_or_else(|| ConsoleError::Invalid(l.ta("field-invalid", &[("field", l.t("role"))])))
}

/// What a user change did, for the page: a message, or why not (a 4xx), or an error page.
enum Outcome {
    Done(Markup),
    Refused(String),
}

async fn run(
    ctx: &Ctx,
    uri: &Uri,
    csrf: &str,
    change: impl std::future::Future<Output = Result<Markup, ConsoleError>>,
) -> Result<Outcome, Response> {
    if !ctx.csrf_ok(csrf) {
        return Err(ctx.csrf_refused(uri));
    }
    match change.await {
        Ok(m) => Ok(Outcome::Done(m)),
        Err(e) => error::refusal(ctx.lang(), e)
            .map(Outcome::Refused)
            .map_err(|e| error::page(ctx, uri, e)),
    }
}

fn message(l: Lang, outcome: Outcome) -> (StatusCode, Markup) {
    match outcome {
        Outcome::Done(m) => (StatusCode::OK, m),
        Outcome::Refused(m) => (
            StatusCode::BAD_REQUEST,
            notice("error", "form-error", &l.t("invalid"), &m),
        ),
    }
}

pub async fn invite_merchant_user(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
    Form(f): Form<InviteForm>,
) -> Response {
    let l = ctx.lang();
    let id = match merchant_id(&merchant) {
        Ok(id) => id,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    if let Err(e) = state.engine.console_merchant(&ctx.actor, &id).await {
        return error::page(&ctx, &uri, e);
    }
    let change = async {
        let role = role_of(l, &f.role)?;
        if role.is_provider() {
            return Err(ConsoleError::Invalid(
                l.ta("field-invalid", &[("field", l.t("role"))]),
            ));
        }
        let email = forms::required(l, &l.t("email"), &f.email)?;
        let (user, link) = state
            .engine
            .create_console_user(&ctx.actor, &email, role, Some(&id))
            .await?;
        Ok(link_notice(l, &state, user.email.as_str(), &link))
    };
    match run(&ctx, &uri, &f.csrf, change).await {
        Ok(o) => merchant_users_page(&state, &ctx, &merchant, &uri, Some(message(l, o))).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
}

fn user_id(raw: &str) -> Result<i64, ConsoleError> {
    raw.parse().map_err(|_| ConsoleError::NotFound("user"))
}

async fn change_status(
    state: &ConsoleState,
    ctx: &Ctx,
    user: &str,
    status: &str,
) -> Result<Markup, ConsoleError> {
    let l = ctx.lang();
    let uid = user_id(user)?;
    let status = UserStatus::parse(status.trim())
        .ok_or_else(|| ConsoleError::Invalid(l.ta("field-invalid", &[("field", l.t("status"))])))?;
    let u = state
        .engine
        .set_console_user_status(&ctx.actor, uid, status)
        .await?;
    Ok(notice(
        "ok",
        "done",
        &l.ta("user-status-set", &[("email", u.email.to_string())]),
        "",
    ))
}

async fn new_link(state: &ConsoleState, ctx: &Ctx, user: &str) -> Result<Markup, ConsoleError> {
    let l = ctx.lang();
    let uid = user_id(user)?;
    let link = state.engine.new_sign_in_link(&ctx.actor, uid).await?;
    let email = state
        .engine
        .console_users(&ctx.actor, None)
        .await
        .ok()
        .and_then(|all| {
            all.into_iter()
                .find(|u| u.id == uid)
                .map(|u| u.email.to_string())
        })
        .unwrap_or_default();
    Ok(link_notice(l, state, &email, &link))
}

/// The merchant's user (path) must be one of its own: the engine answers 404 otherwise.
async fn check_merchant_user(
    state: &ConsoleState,
    ctx: &Ctx,
    merchant: &str,
    user: &str,
) -> Result<(), ConsoleError> {
    let id = merchant_id(merchant)?;
    state.engine.console_merchant(&ctx.actor, &id).await?;
    let uid = user_id(user)?;
    let users = state.engine.console_users(&ctx.actor, Some(&id)).await?;
    if users.iter().any(|u| u.id == uid) {
        Ok(())
    } else {
        Err(ConsoleError::NotFound("user"))
    }
}

pub async fn merchant_user_status(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path((merchant, user)): Path<(String, String)>,
    uri: Uri,
    Form(f): Form<StatusForm>,
) -> Response {
    let l = ctx.lang();
    if let Err(e) = check_merchant_user(&state, &ctx, &merchant, &user).await {
        return error::page(&ctx, &uri, e);
    }
    match run(
        &ctx,
        &uri,
        &f.csrf,
        change_status(&state, &ctx, &user, &f.status),
    )
    .await
    {
        Ok(o) => merchant_users_page(&state, &ctx, &merchant, &uri, Some(message(l, o))).await,
        Err(r) => r,
    }
}

pub async fn merchant_user_link(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path((merchant, user)): Path<(String, String)>,
    uri: Uri,
    Form(f): Form<crate::merchant::CsrfOnly>,
) -> Response {
    let l = ctx.lang();
    if let Err(e) = check_merchant_user(&state, &ctx, &merchant, &user).await {
        return error::page(&ctx, &uri, e);
    }
    match run(&ctx, &uri, f.csrf(), new_link(&state, &ctx, &user)).await {
        Ok(o) => merchant_users_page(&state, &ctx, &merchant, &uri, Some(message(l, o))).await,
        Err(r) => r,
    }
}

async fn provider_users_page(
    state: &ConsoleState,
    ctx: &Ctx,
    uri: &Uri,
    message: Option<(StatusCode, Markup)>,
) -> Response {
    let l = ctx.lang();
    let users = match state.engine.console_users(&ctx.actor, None).await {
        Ok(u) => u,
        Err(e) => return error::page(ctx, uri, e),
    };
    let manage = ctx.actor.may(Permission::ManageProvider);
    let (status, message) = message.map_or((StatusCode::OK, None), |(s, m)| (s, Some(m)));
    Page::of(ctx, l.t("nav-users"), Section::ProviderUsers)
        .status(status)
        .render(
            uri,
            html! {
                h1 { (l.t("all-users")) }
                @if let Some(msg) = message { (msg) }
                (users_table(ctx, &users, "/console/provider/users", manage))
                @if manage {
                    @for u in users.iter().filter(|u| u.totp_enabled && u.id != ctx.session.user.id) {
                        form.row method="post" action=(format!("/console/provider/users/{}/2fa-reset", u.id)) {
                            (csrf(ctx))
                            button.secondary type="submit" { (l.ta("reset-2fa-of", &[("email", u.email.to_string())])) }
                        }
                    }
                    (invite_form(ctx, "/console/provider/users", &ConsoleRole::ALL, true))
                }
            },
        )
}

pub async fn provider_users(State(state): State<ConsoleState>, ctx: Ctx, uri: Uri) -> Response {
    provider_users_page(&state, &ctx, &uri, None).await
}

pub async fn invite_provider_user(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    uri: Uri,
    Form(f): Form<InviteForm>,
) -> Response {
    let l = ctx.lang();
    if let Err(e) = ctx.actor.check_provider(Permission::ViewProvider) {
        return error::page(&ctx, &uri, e);
    }
    let change = async {
        let role = role_of(l, &f.role)?;
        let email = forms::required(l, &l.t("email"), &f.email)?;
        let merchant = match forms::text(l, &l.t("merchant"), &f.merchant_id)? {
            Some(m) if !role.is_provider() => Some(MerchantId::parse(&m).map_err(|_| {
                ConsoleError::Invalid(l.ta("field-invalid", &[("field", l.t("merchant"))]))
            })?),
            None if !role.is_provider() => {
                return Err(ConsoleError::Invalid(
                    l.ta("field-required", &[("field", l.t("merchant"))]),
                ))
            }
            _ => None,
        };
        let (user, link) = state
            .engine
            .create_console_user(&ctx.actor, &email, role, merchant.as_ref())
            .await
            .map_err(|e| match e {
                ConsoleError::NotFound(_) => ConsoleError::Invalid(l.t("no-such-merchant")),
                other => other,
            })?;
        Ok(link_notice(l, &state, user.email.as_str(), &link))
    };
    match run(&ctx, &uri, &f.csrf, change).await {
        Ok(o) => provider_users_page(&state, &ctx, &uri, Some(message(l, o))).await,
        Err(r) => r,
    }
}

pub async fn provider_user_status(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(user): Path<String>,
    uri: Uri,
    Form(f): Form<StatusForm>,
) -> Response {
    let l = ctx.lang();
    if let Err(e) = ctx.actor.check_provider(Permission::ViewProvider) {
        return error::page(&ctx, &uri, e);
    }
    match run(
        &ctx,
        &uri,
        &f.csrf,
        change_status(&state, &ctx, &user, &f.status),
    )
    .await
    {
        Ok(o) => provider_users_page(&state, &ctx, &uri, Some(message(l, o))).await,
        Err(r) => r,
    }
}

pub async fn provider_user_link(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(user): Path<String>,
    uri: Uri,
    Form(f): Form<crate::merchant::CsrfOnly>,
) -> Response {
    let l = ctx.lang();
    if let Err(e) = ctx.actor.check_provider(Permission::ViewProvider) {
        return error::page(&ctx, &uri, e);
    }
    match run(&ctx, &uri, f.csrf(), new_link(&state, &ctx, &user)).await {
        Ok(o) => provider_users_page(&state, &ctx, &uri, Some(message(l, o))).await,
        Err(r) => r,
    }
}

pub async fn reset_totp(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(user): Path<String>,
    uri: Uri,
    Form(f): Form<crate::merchant::CsrfOnly>,
) -> Response {
    let l = ctx.lang();
    if let Err(e) = ctx.actor.check_provider(Permission::ViewProvider) {
        return error::page(&ctx, &uri, e);
    }
    let change = async {
        let uid = user_id(&user)?;
        let u = state.engine.reset_console_totp(&ctx.actor, uid).await?;
        Ok(notice(
            "ok",
            "done",
            &l.ta("two-factor-reset", &[("email", u.email.to_string())]),
            "",
        ))
    };
    match run(&ctx, &uri, f.csrf(), change).await {
        Ok(o) => provider_users_page(&state, &ctx, &uri, Some(message(l, o))).await,
        Err(r) => r,
    }
}
