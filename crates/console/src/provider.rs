//! The provider's pages: attention, merchants (onboarding, status, fees), rates, wallets,
//! the whole audit log. A merchant's user asking for any of them gets 404.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use qrgate_domain::{
    Currency, FeeRate, FxRate, MerchantStatus, MerchantTimeZone, Permission, Wallet,
};
use qrgate_engine::{ConsoleError, MerchantRequest};
use serde::Deserialize;

use crate::auth::Ctx;
use crate::error;
use crate::forms;
use crate::layout::{csrf, notice, Page, Section};
use crate::merchant::{audit_table, merchant_id, status_name, wallet_name, AuditQuery, CsrfOnly};
use crate::ConsoleState;

async fn attention_page(
    state: &ConsoleState,
    ctx: &Ctx,
    uri: &Uri,
    ledger: Option<Vec<String>>,
) -> Response {
    let l = ctx.lang();
    let a = match state.engine.console_attention(&ctx.actor).await {
        Ok(a) => a,
        Err(e) => return error::page(ctx, uri, e),
    };
    let tz = MerchantTimeZone::DEFAULT;
    Page::of(ctx, l.t("nav-attention"), Section::Attention).render(
        uri,
        html! {
            h1 { (l.t("nav-attention")) }
            h2 { (l.t("stuck-orders")) }
            @if a.stuck_orders.is_empty() { p #no-stuck-orders { (l.t("none")) } } @else {
                div.table-wrap { table #stuck-orders {
                    thead { tr { th scope="col" { (l.t("created")) } th scope="col" { (l.t("merchant")) } th scope="col" { (l.t("order-id")) } th scope="col" { (l.t("status")) } th scope="col" { (l.t("wallet")) } th.num scope="col" { (l.t("total")) } } }
                    tbody { @for o in &a.stuck_orders { tr {
                        td { (l.time(o.created_at, tz)) " UTC+8" } td { (o.merchant_id) }
                        td { a href=(format!("/console/m/{}/orders/{}", o.merchant_id, o.key)) { (o.order_id) } }
                        td { (status_name(l, o.status)) } td { (wallet_name(l, o.wallet)) } td.num { (l.money(o.total())) }
                    } } }
                } }
            }
            h2 { (l.t("stuck-refunds")) }
            @if a.stuck_refunds.is_empty() { p { (l.t("none")) } } @else {
                div.table-wrap { table #stuck-refunds {
                    thead { tr { th scope="col" { (l.t("created")) } th scope="col" { (l.t("merchant")) } th scope="col" { (l.t("refund-id")) } th.num scope="col" { (l.t("amount")) } th scope="col" { (l.t("sends")) } } }
                    tbody { @for r in &a.stuck_refunds { tr {
                        td { (l.time(r.created_at, tz)) " UTC+8" } td { (r.merchant_id) }
                        td { a href=(format!("/console/m/{}/orders/{}", r.merchant_id, r.order_key)) { (r.refund_order_id) } }
                        td.num { (l.money(r.amount)) } td { (r.sends) }
                    } } }
                } }
            }
            h2 { (l.t("failing-callbacks")) }
            @if a.failing_callbacks.is_empty() { p { (l.t("none")) } } @else {
                div.table-wrap { table #failing-callbacks {
                    thead { tr { th scope="col" { (l.t("merchant")) } th scope="col" { (l.t("order-id")) } th scope="col" { (l.t("status")) } th.num scope="col" { (l.t("attempts")) } th scope="col" { "URL" } } }
                    tbody { @for c in &a.failing_callbacks { tr {
                        td { (c.merchant_id) }
                        td { a href=(format!("/console/m/{}/orders/{}", c.merchant_id, c.order_key)) { (c.order_id) } }
                        td { (c.status) } td.num { (c.attempts) } td { (c.url) }
                    } } }
                } }
            }
            h2 { (l.t("ledger-check")) }
            @match &ledger {
                None => p { (l.t("ledger-check-intro")) },
                Some(broken) if broken.is_empty() => (notice("ok", "ledger-result", &l.t("ledger-ok"), "")),
                Some(broken) => {
                    (notice("error", "ledger-result", &l.ta("ledger-broken", &[("n", broken.len().to_string())]), ""))
                    ul { @for b in broken { li { (b) } } }
                }
            }
            form method="post" action="/console/provider/ledger-check" {
                (csrf(ctx))
                button #ledger-check type="submit" { (l.t("run-ledger-check")) }
            }
        },
    )
}

pub async fn attention(State(state): State<ConsoleState>, ctx: Ctx, uri: Uri) -> Response {
    attention_page(&state, &ctx, &uri, None).await
}

pub async fn ledger_check(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    uri: Uri,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Err(e) = ctx.actor.check_provider(Permission::ViewProvider) {
        return error::page(&ctx, &uri, e);
    }
    if !ctx.csrf_ok(f.csrf()) {
        return ctx.csrf_refused(&uri);
    }
    match state.engine.console_ledger_check(&ctx.actor).await {
        Ok(broken) => attention_page(&state, &ctx, &uri, Some(broken)).await,
        Err(e) => error::page(&ctx, &uri, e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct MerchantsQuery {
    #[serde(default)]
    q: String,
}

async fn merchants_page(
    state: &ConsoleState,
    ctx: &Ctx,
    uri: &Uri,
    search: &str,
    message: Option<(StatusCode, Markup)>,
) -> Response {
    let l = ctx.lang();
    let list = match state
        .engine
        .console_merchants(&ctx.actor, Some(search))
        .await
    {
        Ok(m) => m,
        Err(e) => return error::page(ctx, uri, e),
    };
    let manage = ctx.actor.may(Permission::ManageProvider);
    let (status, message) = message.map_or((StatusCode::OK, None), |(s, m)| (s, Some(m)));
    Page::of(ctx, l.t("nav-merchants"), Section::Merchants)
        .status(status)
        .render(
            uri,
            html! {
                h1 { (l.t("nav-merchants")) }
                @if let Some(msg) = message { (msg) }
                form.row method="get" action="/console/provider/merchants" role="search" {
                    div { label for="m-q" { (l.t("search-merchants")) } input #m-q name="q" value=(search) maxlength="100"; }
                    button type="submit" { (l.t("search")) }
                }
                div.table-wrap { table #merchants {
                    thead { tr {
                        th scope="col" { (l.t("merchant")) } th scope="col" { (l.t("name")) } th scope="col" { (l.t("currency")) }
                        th scope="col" { (l.t("status")) } th scope="col" { (l.t("provider-fee")) }
                        @if manage { th scope="col" { (l.t("actions")) } }
                    } }
                    tbody { @for m in &list { tr {
                        td { a href=(format!("/console/m/{}", m.id)) { (m.id) } } td { (m.name) } td { (m.currency) }
                        td { (if m.status == MerchantStatus::Active { l.t("active") } else { l.t("disabled") }) }
                        td { (m.fee_rate) }
                        @if manage { td {
                            form.inline method="post" action=(format!("/console/provider/merchants/{}/status", m.id)) {
                                (csrf(ctx))
                                input type="hidden" name="status" value=(if m.status == MerchantStatus::Active { "disabled" } else { "active" });
                                button.secondary type="submit" { (if m.status == MerchantStatus::Active { l.t("disable") } else { l.t("enable") }) }
                            }
                            form.row method="post" action=(format!("/console/provider/merchants/{}/fee", m.id)) {
                                (csrf(ctx))
                                label.visually-hidden for=(format!("fee-{}", m.id)) { (l.t("fee-bps")) }
                                input id=(format!("fee-{}", m.id)) name="bps" inputmode="numeric" value=(m.fee_rate.bps()) size="5";
                                button.secondary type="submit" { (l.t("set-fee")) }
                            }
                            a href=(format!("/console/m/{}/users", m.id)) { (l.t("nav-users")) }
                        } }
                    } } }
                } }
                @if manage {
                    h2 #onboard-title { (l.t("onboard")) }
                    form.stack method="post" action="/console/provider/merchants" aria-labelledby="onboard-title" {
                        (csrf(ctx))
                        label for="onboard-name" { (l.t("name")) }
                        input #onboard-name name="name" required maxlength="100";
                        label for="onboard-currency" { (l.t("currency")) }
                        select #onboard-currency name="currency" { @for c in Currency::ALL { option value=(c.code()) { (c.code()) } } }
                        label for="onboard-zone" { (l.t("time-zone")) }
                        input #onboard-zone name="time_zone" value="America/Toronto" required maxlength="64";
                        label for="onboard-prefix" { (l.t("id-prefix")) }
                        input #onboard-prefix name="prefix" value="ON" required maxlength="2";
                        button #onboard type="submit" { (l.t("onboard")) }
                    }
                }
            },
        )
}

pub async fn merchants(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Query(q): Query<MerchantsQuery>,
    uri: Uri,
) -> Response {
    merchants_page(&state, &ctx, &uri, &q.q, None).await
}

#[derive(Deserialize)]
pub struct OnboardForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    prefix: String,
}

/// Runs a provider change and shows the merchants page with what happened.
async fn merchants_change(
    state: &ConsoleState,
    ctx: &Ctx,
    uri: &Uri,
    csrf: &str,
    change: impl std::future::Future<Output = Result<Markup, ConsoleError>>,
) -> Response {
    let l = ctx.lang();
    if let Err(e) = ctx.actor.check_provider(Permission::ViewProvider) {
        return error::page(ctx, uri, e);
    }
    if !ctx.csrf_ok(csrf) {
        return ctx.csrf_refused(uri);
    }
    let message = match change.await {
        Ok(m) => (StatusCode::OK, m),
        Err(e) => match error::refusal(l, e) {
            Ok(m) => (
                StatusCode::BAD_REQUEST,
                notice("error", "form-error", &l.t("invalid"), &m),
            ),
            Err(e) => return error::page(ctx, uri, e),
        },
    };
    merchants_page(state, ctx, uri, "", Some(message)).await
}

pub async fn onboard(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    uri: Uri,
    Form(f): Form<OnboardForm>,
) -> Response {
    let l = ctx.lang();
    let change = async {
        let name = forms::required(l, &l.t("name"), &f.name)?;
        let currency: Currency = forms::required(l, &l.t("currency"), &f.currency)?
            .parse()
            .map_err(|_| {
                ConsoleError::Invalid(l.ta("field-invalid", &[("field", l.t("currency"))]))
            })?;
        let time_zone: MerchantTimeZone = forms::required(l, &l.t("time-zone"), &f.time_zone)?
            .parse()
            .map_err(|_| {
                ConsoleError::Invalid(l.ta("field-invalid", &[("field", l.t("time-zone"))]))
            })?;
        let prefix = forms::required(l, &l.t("id-prefix"), &f.prefix)?;
        let created = state
            .engine
            .console_create_merchant(
                &ctx.actor,
                &MerchantRequest {
                    name,
                    currency,
                    time_zone,
                    id_prefix: prefix,
                },
            )
            .await?;
        Ok(html! {
            div.notice.ok #onboarded role="status" {
                p.title { (l.ta("merchant-created", &[("id", created.merchant.id.to_string()), ("name", created.merchant.name.clone())])) }
                p { (l.t("sign-key")) ": " span.secret #onboarded-key { (created.sign_key.expose()) } }
                p { (l.t("new-key-once")) }
                p { (l.t("operator")) ": " (created.operator.id) " · " (l.t("shop")) ": " (created.shop.id) }
                p { a #onboarded-link href=(format!("/console/m/{}", created.merchant.id)) { (l.t("open-merchant")) } }
            }
        })
    };
    merchants_change(&state, &ctx, &uri, &f.csrf, change).await
}

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
}

pub async fn merchant_status(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
    Form(f): Form<StatusForm>,
) -> Response {
    let l = ctx.lang();
    let change = async {
        let id = merchant_id(&merchant)?;
        let status = MerchantStatus::parse(f.status.trim()).ok_or_else(|| {
            ConsoleError::Invalid(l.ta("field-invalid", &[("field", l.t("status"))]))
        })?;
        let m = state
            .engine
            .console_set_merchant_status(&ctx.actor, &id, status)
            .await?;
        Ok(notice(
            "ok",
            "done",
            &l.ta("merchant-status-set", &[("id", m.id.to_string())]),
            "",
        ))
    };
    merchants_change(&state, &ctx, &uri, &f.csrf, change).await
}

#[derive(Deserialize)]
pub struct FeeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    bps: String,
}

pub async fn merchant_fee(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
    Form(f): Form<FeeForm>,
) -> Response {
    let l = ctx.lang();
    let change = async {
        let id = merchant_id(&merchant)?;
        let bps = forms::required(l, &l.t("fee-bps"), &f.bps)?;
        let fee = bps
            .parse::<i64>()
            .ok()
            .and_then(|b| FeeRate::from_bps(b).ok())
            .ok_or_else(|| ConsoleError::Invalid(l.t("fee-range")))?;
        let m = state.engine.console_set_fee(&ctx.actor, &id, fee).await?;
        Ok(notice(
            "ok",
            "done",
            &l.ta(
                "fee-set",
                &[("id", m.id.to_string()), ("fee", m.fee_rate.to_string())],
            ),
            "",
        ))
    };
    merchants_change(&state, &ctx, &uri, &f.csrf, change).await
}

async fn rates_page(
    state: &ConsoleState,
    ctx: &Ctx,
    uri: &Uri,
    message: Option<(StatusCode, Markup)>,
) -> Response {
    let l = ctx.lang();
    let (provider, wallets) = match state.engine.console_rates(&ctx.actor).await {
        Ok(r) => r,
        Err(e) => return error::page(ctx, uri, e),
    };
    let age = |at| {
        let d = state.engine.rate_age(at);
        l.ta(
            "age",
            &[
                ("hours", d.num_hours().to_string()),
                ("minutes", (d.num_minutes() % 60).to_string()),
            ],
        )
    };
    let tz = MerchantTimeZone::DEFAULT;
    let (status, message) = message.map_or((StatusCode::OK, None), |(s, m)| (s, Some(m)));
    Page::of(ctx, l.t("nav-rates"), Section::Rates)
        .status(status)
        .render(
            uri,
            html! {
                h1 { (l.t("nav-rates")) }
                @if let Some(msg) = message { (msg) }
                h2 { (l.t("provider-rates")) }
                div.table-wrap { table #provider-rates {
                    thead { tr { th scope="col" { (l.t("currency")) } th.num scope="col" { (l.t("rate-cny")) } th scope="col" { (l.t("updated")) } th scope="col" { (l.t("rate-age")) } } }
                    tbody { @for q in &provider { tr { td { (q.currency) } td.num { (q.rate) } td { (l.time(q.updated_at, tz)) " UTC+8" } td { (age(q.updated_at)) } } } }
                } }
                h2 { (l.t("wallet-rates")) }
                div.table-wrap { table #wallet-rates {
                    thead { tr { th scope="col" { (l.t("wallet")) } th scope="col" { (l.t("currency")) } th.num scope="col" { (l.t("rate-cny")) } th scope="col" { (l.t("rate-age")) } } }
                    tbody { @for (w, q) in &wallets { tr { td { (wallet_name(l, *w)) } td { (q.currency) } td.num { (q.rate) } td { (age(q.updated_at)) } } } }
                } }
                @if ctx.actor.may(Permission::ManageProvider) {
                    h2 #set-rate-title { (l.t("set-rate")) }
                    form.row method="post" action="/console/provider/rates" aria-labelledby="set-rate-title" {
                        (csrf(ctx))
                        div { label for="rate-currency" { (l.t("currency")) }
                            select #rate-currency name="currency" { option value="CAD" { "CAD" } option value="USD" { "USD" } } }
                        div { label for="rate-value" { (l.t("rate-cny")) } input #rate-value name="rate" inputmode="decimal" required maxlength="20"; }
                        button #set-rate type="submit" { (l.t("set-rate")) }
                    }
                }
            },
        )
}

pub async fn rates(State(state): State<ConsoleState>, ctx: Ctx, uri: Uri) -> Response {
    rates_page(&state, &ctx, &uri, None).await
}

#[derive(Deserialize)]
pub struct RateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    rate: String,
}

pub async fn set_rate(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    uri: Uri,
    Form(f): Form<RateForm>,
) -> Response {
    let l = ctx.lang();
    if let Err(e) = ctx.actor.check_provider(Permission::ViewProvider) {
        return error::page(&ctx, &uri, e);
    }
    if !ctx.csrf_ok(&f.csrf) {
        return ctx.csrf_refused(&uri);
    }
    let change = async {
        let currency: Currency = forms::required(l, &l.t("currency"), &f.currency)?
            .parse()
            .map_err(|_| {
                ConsoleError::Invalid(l.ta("field-invalid", &[("field", l.t("currency"))]))
            })?;
        let rate: FxRate = forms::required(l, &l.t("rate-cny"), &f.rate)?
            .parse()
            .map_err(|e: qrgate_domain::FxRateParseError| ConsoleError::Invalid(e.to_string()))?;
        let q = state
            .engine
            .console_set_rate(&ctx.actor, currency, rate)
            .await?;
        Ok(notice(
            "ok",
            "done",
            &l.ta(
                "rate-set",
                &[
                    ("currency", q.currency.to_string()),
                    ("rate", q.rate.to_string()),
                ],
            ),
            "",
        ))
    };
    let message = match change.await {
        Ok(m) => (StatusCode::OK, m),
        Err(e) => match error::refusal(l, e) {
            Ok(m) => (
                StatusCode::BAD_REQUEST,
                notice("error", "form-error", &l.t("invalid"), &m),
            ),
            Err(e) => return error::page(&ctx, &uri, e),
        },
    };
    rates_page(&state, &ctx, &uri, Some(message)).await
}

pub async fn wallets(State(state): State<ConsoleState>, ctx: Ctx, uri: Uri) -> Response {
    let l = ctx.lang();
    let health = match state.engine.console_wallet_health(&ctx.actor).await {
        Ok(h) => h,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let url_of = |w: Wallet| {
        state
            .config
            .wallet_base_urls
            .iter()
            .find(|(x, _)| *x == w)
            .map_or_else(|| "-".to_owned(), |(_, u)| u.clone())
    };
    Page::of(&ctx, l.t("nav-wallets"), Section::Wallets).render(
        &uri,
        html! {
            h1 { (l.t("nav-wallets")) }
            p.muted { (l.t("wallets-intro")) }
            div.table-wrap { table #wallet-health {
                thead { tr {
                    th scope="col" { (l.t("wallet")) } th scope="col" { (l.t("enabled")) } th scope="col" { (l.t("base-url")) }
                    th.num scope="col" { (l.t("calls")) } th.num scope="col" { (l.t("error-rate")) }
                    th.num scope="col" { (l.t("latency-avg")) } th.num scope="col" { (l.t("latency-max")) } th scope="col" { (l.t("last-call")) }
                } }
                tbody { @for h in &health { tr {
                    th scope="row" { (wallet_name(l, h.wallet)) }
                    td { (if h.enabled { l.t("yes") } else { l.t("no") }) }
                    td { (url_of(h.wallet)) }
                    @match &h.calls {
                        Some(c) => {
                            td.num { (c.calls) }
                            td.num { (if c.calls > 0 { format!("{}.{} %", c.errors * 100 / c.calls, (c.errors * 1000 / c.calls) % 10) } else { "-".into() }) }
                            td.num { (c.latency_ms_avg) " ms" } td.num { (c.latency_ms_max) " ms" }
                            td { (c.last_at.map(|t| l.time(t, MerchantTimeZone::DEFAULT) + " UTC+8").unwrap_or_default()) }
                        }
                        None => { td.num { "0" } td.num { "-" } td.num { "-" } td.num { "-" } td { "-" } }
                    }
                } } }
            } }
        },
    )
}

pub async fn audit(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Query(q): Query<AuditQuery>,
    uri: Uri,
) -> Response {
    let l = ctx.lang();
    let before = q.before().trim().parse::<i64>().ok();
    let entries = match state
        .engine
        .console_audit(&ctx.actor, None, before, 100)
        .await
    {
        Ok(e) => e,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let next = (entries.len() == 100)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Page::of(&ctx, l.t("nav-audit"), Section::ProviderAudit).render(
        &uri,
        html! {
            h1 { (l.t("nav-audit")) }
            (audit_table(l, &entries, MerchantTimeZone::DEFAULT))
            @if let Some(n) = next { p { a href=(format!("/console/provider/audit?before={n}")) { (l.t("next-page")) } } }
        },
    )
}
