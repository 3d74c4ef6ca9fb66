//! A merchant's pages: dashboard, orders, an order's story and its refund, notifications,
//! settings, the audit log. The merchant is in the path; the engine answers 404 for one the
//! signed-in user does not see.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};
use qrgate_domain::{
    Merchant, MerchantId, OperatorId, Order, OrderStatus, Permission, ShopId, TerminalNo, Wallet,
};
use qrgate_engine::PageCursor;
use qrgate_engine::{ConsoleError, Dashboard, OrderQuery};
use serde::Deserialize;

use crate::auth::{see_other, Ctx};
use crate::error;
use crate::forms;
use crate::i18n::Lang;
use crate::layout::{csrf, notice, Page, Section};
use crate::ConsoleState;

/// Orders per page of the list.
const PAGE_SIZE: i64 = 50;

pub fn merchant_id(raw: &str) -> Result<MerchantId, ConsoleError> {
    MerchantId::parse(raw).map_err(|_| ConsoleError::NotFound("merchant"))
}

pub fn status_name(l: Lang, s: OrderStatus) -> String {
    l.t(match s {
        OrderStatus::Paying => "status-paying",
        OrderStatus::Pending => "status-pending",
        OrderStatus::Unknown => "status-unknown",
        OrderStatus::Reversing => "status-reversing",
        OrderStatus::Paid => "status-paid",
        OrderStatus::Failed => "status-failed",
        OrderStatus::Reversed => "status-reversed",
        OrderStatus::Closed => "status-closed",
    })
}

pub fn wallet_name(l: Lang, w: Wallet) -> String {
    l.t(match w {
        Wallet::WechatPay => "wallet-wechatpay",
        Wallet::Alipay => "wallet-alipay",
        Wallet::UnionPay => "wallet-unionpay",
    })
}

/// The 30-day chart as an SVG bar chart (attributes only: the CSP allows no inline style).
fn chart(l: Lang, d: &Dashboard) -> Markup {
    let max = d
        .days
        .iter()
        .map(|d| d.sales.minor())
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, h, bar) = (600i64, 160i64, 20i64);
    html! {
        svg.chart viewBox=(format!("0 0 {w} {}", h + 20)) role="img"
            aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg" {
            title #chart-title { (l.t("chart-title")) }
            @for (i, day) in d.days.iter().enumerate() {
                @let x = i64::try_from(i).unwrap_or(0) * bar;
                @let height = day.sales.minor().saturating_mul(h) / max;
                rect.bar x=(x + 2) y=(h - height) width=(bar - 4) height=(height) {
                    title { (day.day.format("%Y-%m-%d")) ": " (l.money(day.sales)) }
                }
                @if i % 7 == 0 {
                    text x=(x + 2) y=(h + 14) { (day.day.format("%m-%d")) }
                }
            }
            line.axis x1="0" y1=(h) x2=(w) y2=(h) {}
        }
    }
}

fn summary_cards(l: Lang, id: &str, title: &str, s: &qrgate_engine::Summary) -> Markup {
    html! {
        section aria-labelledby=(format!("{id}-title")) {
            h2 id=(format!("{id}-title")) { (title) }
            div.cards {
                div.card { div.muted { (l.t("sales")) } div.figure id=(format!("{id}-sales")) { (l.money(s.sales)) } div.muted { (l.ta("n-orders", &[("n", s.sales_count.to_string())])) } }
                div.card { div.muted { (l.t("refunds")) } div.figure id=(format!("{id}-refunds")) { (l.money(s.refunds)) } div.muted { (l.ta("n-refunds", &[("n", s.refunds_count.to_string())])) } }
                div.card { div.muted { (l.t("net")) } div.figure id=(format!("{id}-net")) { (l.money(s.net)) } }
            }
            @if !s.by_wallet.is_empty() {
                h3 { (l.t("by-wallet")) }
                div.table-wrap { table {
                    thead { tr { th scope="col" { (l.t("wallet")) } th.num scope="col" { (l.t("sales")) } th.num scope="col" { (l.t("refunds")) } } }
                    tbody { @for w in &s.by_wallet { tr { th scope="row" { (wallet_name(l, w.wallet)) } td.num { (l.money(w.sales)) " (" (w.sales_count) ")" } td.num { (l.money(w.refunds)) " (" (w.refunds_count) ")" } } } }
                } }
            }
            @if !s.by_terminal.is_empty() {
                h3 { (l.t("by-terminal")) }
                div.table-wrap { table {
                    thead { tr { th scope="col" { (l.t("shop")) } th scope="col" { (l.t("terminal")) } th.num scope="col" { (l.t("orders")) } th.num scope="col" { (l.t("sales")) } } }
                    tbody { @for (shop, terminal, n, sales) in &s.by_terminal { tr { td { (shop) } td { (terminal) } td.num { (n) } td.num { (l.money(*sales)) } } } }
                } }
            }
        }
    }
}

pub async fn dashboard(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
) -> Response {
    let l = ctx.lang();
    let d = match async {
        let id = merchant_id(&merchant)?;
        state.engine.dashboard(&ctx.actor, &id).await
    }
    .await
    {
        Ok(d) => d,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let m = d.merchant.clone();
    Page::of(&ctx, l.t("nav-dashboard"), Section::Dashboard)
        .merchant(&m)
        .render(
            &uri,
            html! {
                h1 { (m.name) " · " (l.t("nav-dashboard")) }
                p.muted { (l.ta("in-currency-and-zone", &[("currency", m.currency.to_string()), ("zone", m.time_zone.name().to_owned())])) }
                (summary_cards(l, "today", &l.t("today"), &d.today))
                (summary_cards(l, "month", &l.t("this-month"), &d.month))
                h2 { (l.t("chart-title")) }
                (chart(l, &d))
            },
        )
}

#[derive(Debug, Default, Deserialize)]
pub struct OrdersQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    wallet: String,
    #[serde(default)]
    shop: String,
    #[serde(default)]
    terminal: String,
    #[serde(default)]
    operator: String,
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
}

impl OrdersQuery {
    pub fn from(&self) -> &str {
        &self.from
    }

    pub fn to(&self) -> &str {
        &self.to
    }
}

/// The filter as typed, checked: another merchant's shop, a bad date or three decimals are
/// refused with a message.
pub async fn order_query(
    state: &ConsoleState,
    l: Lang,
    merchant: &Merchant,
    q: &OrdersQuery,
) -> Result<OrderQuery, ConsoleError> {
    let from = forms::opt_date(l, &l.t("from"), &q.from)?;
    let to = forms::opt_date(l, &l.t("to"), &q.to)?;
    let start = |d| state.engine.console_start_of_day(merchant, d);
    let statuses = match forms::text(l, &l.t("status"), &q.status)? {
        None => Vec::new(),
        Some(s) => vec![OrderStatus::parse(&s).ok_or_else(|| {
            ConsoleError::Invalid(l.ta("field-invalid", &[("field", l.t("status"))]))
        })?],
    };
    Ok(OrderQuery {
        from: from.map(start).transpose()?,
        to: match to {
            Some(d) => Some(start(d.succ_opt().unwrap_or(d))?),
            None => None,
        },
        statuses,
        wallet: forms::parsed(l, &l.t("wallet"), &q.wallet, |s| Wallet::parse(s).ok_or(()))?,
        shop: forms::parsed(l, &l.t("shop"), &q.shop, ShopId::parse)?,
        terminal_no: forms::parsed(l, &l.t("terminal"), &q.terminal, TerminalNo::parse)?,
        operator_id: forms::parsed(l, &l.t("operator"), &q.operator, OperatorId::parse)?,
        total_min: forms::opt_amount(l, &l.t("amount-min"), &q.min, merchant.currency)?,
        total_max: forms::opt_amount(l, &l.t("amount-max"), &q.max, merchant.currency)?,
        search: forms::text(l, &l.t("search"), &q.q)?,
    })
}

/// `<created_at ms>.<key>`, as the next page's link carries it.
pub fn cursor_text(c: &PageCursor) -> String {
    format!("{}.{}", c.created_at.timestamp_millis(), c.key)
}

pub fn parse_cursor(text: &str) -> Option<PageCursor> {
    let (ms, key) = text.split_once('.')?;
    let created_at = DateTime::<Utc>::from_timestamp_millis(ms.parse().ok()?)?;
    (!key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_alphanumeric())).then(
        || PageCursor {
            created_at,
            key: key.to_owned(),
        },
    )
}

fn filters_form(l: Lang, m: &Merchant, q: &OrdersQuery, action: &str) -> Markup {
    html! {
        form.filters method="get" action=(action) role="search" aria-label=(l.t("filters")) {
            div { label for="f-q" { (l.t("search")) } input #f-q name="q" value=(q.q) maxlength="64" placeholder=(l.t("search-hint")); }
            div { label for="f-from" { (l.t("from")) } input #f-from name="from" type="date" value=(q.from); }
            div { label for="f-to" { (l.t("to")) } input #f-to name="to" type="date" value=(q.to); }
            div { label for="f-status" { (l.t("status")) }
                select #f-status name="status" {
                    option value="" { (l.t("any")) }
                    @for s in OrderStatus::ALL { option value=(s.as_str()) selected[q.status == s.as_str()] { (status_name(l, s)) } }
                } }
            div { label for="f-wallet" { (l.t("wallet")) }
                select #f-wallet name="wallet" {
                    option value="" { (l.t("any")) }
                    @for w in Wallet::ALL { option value=(w.as_str()) selected[q.wallet == w.as_str()] { (wallet_name(l, w)) } }
                } }
            div { label for="f-shop" { (l.t("shop")) } input #f-shop name="shop" value=(q.shop) placeholder=(format!("{}001", m.id)); }
            div { label for="f-terminal" { (l.t("terminal")) } input #f-terminal name="terminal" value=(q.terminal); }
            div { label for="f-operator" { (l.t("operator")) } input #f-operator name="operator" value=(q.operator) inputmode="numeric"; }
            div { label for="f-min" { (l.ta("amount-min-in", &[("currency", m.currency.to_string())])) } input #f-min name="min" value=(q.min) inputmode="decimal"; }
            div { label for="f-max" { (l.ta("amount-max-in", &[("currency", m.currency.to_string())])) } input #f-max name="max" value=(q.max) inputmode="decimal"; }
            div { button #filter type="submit" { (l.t("apply-filters")) } }
        }
    }
}

fn query_string(q: &OrdersQuery, after: Option<&str>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("q", &q.q),
        ("from", &q.from),
        ("to", &q.to),
        ("status", &q.status),
        ("wallet", &q.wallet),
        ("shop", &q.shop),
        ("terminal", &q.terminal),
        ("operator", &q.operator),
        ("min", &q.min),
        ("max", &q.max),
    ] {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    if let Some(a) = after {
        s.append_pair("after", a);
    }
    s.finish()
}

pub fn orders_table(l: Lang, m: &Merchant, orders: &[Order]) -> Markup {
    html! {
        div.table-wrap { table #orders {
            caption.visually-hidden { (l.t("nav-orders")) }
            thead { tr {
                th scope="col" { (l.t("created")) }
                th scope="col" { (l.t("order-id")) }
                th scope="col" { (l.t("status")) }
                th scope="col" { (l.t("wallet")) }
                th scope="col" { (l.t("terminal")) }
                th.num scope="col" { (l.t("total")) }
                th.num scope="col" { (l.t("refunded")) }
            } }
            tbody {
                @for o in orders {
                    tr {
                        td { (l.time(o.created_at, m.time_zone)) }
                        td { a href=(format!("/console/m/{}/orders/{}", m.id, o.key)) { (o.order_id) } }
                        td { (status_name(l, o.status)) }
                        td { (wallet_name(l, o.wallet)) }
                        td { (o.terminal_no.as_deref().unwrap_or("-")) }
                        td.num { (l.money(o.total())) }
                        td.num { (l.money(o.refunded)) }
                    }
                }
            }
        } }
    }
}

pub async fn orders(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    Query(q): Query<OrdersQuery>,
    uri: Uri,
) -> Response {
    let l = ctx.lang();
    let m = match async {
        let id = merchant_id(&merchant)?;
        state.engine.console_merchant(&ctx.actor, &id).await
    }
    .await
    {
        Ok(m) => m,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let action = format!("/console/m/{}/orders", m.id);
    let result = async {
        let query = order_query(&state, l, &m, &q).await?;
        let after = match q.after.trim() {
            "" => None,
            a => Some(parse_cursor(a).ok_or_else(|| {
                ConsoleError::Invalid(l.ta("field-invalid", &[("field", "after".to_owned())]))
            })?),
        };
        state
            .engine
            .console_orders(&ctx.actor, &m.id, &query, after.as_ref(), PAGE_SIZE)
            .await
    }
    .await;
    let (status, body) = match result {
        Ok(page) => (
            StatusCode::OK,
            html! {
                @if page.orders.is_empty() { p #no-orders { (l.t("no-orders")) } }
                @else { (orders_table(l, &m, &page.orders)) }
                div.pager {
                    @if !q.after.is_empty() { a href=(format!("{action}?{}", query_string(&q, None))) { (l.t("first-page")) } }
                    @if let Some(next) = &page.next {
                        a #next-page href=(format!("{action}?{}", query_string(&q, Some(&cursor_text(next))))) rel="next" { (l.t("next-page")) }
                    }
                }
            },
        ),
        Err(ConsoleError::Invalid(msg)) => (
            StatusCode::BAD_REQUEST,
            notice("error", "filter-error", &l.t("invalid"), &msg),
        ),
        Err(e) => return error::page(&ctx, &uri, e),
    };
    Page::of(&ctx, l.t("nav-orders"), Section::Orders)
        .merchant(&m)
        .status(status)
        .render(
            &uri,
            html! {
                h1 { (l.t("nav-orders")) }
                (filters_form(l, &m, &q, &action))
                (body)
            },
        )
}

pub async fn order(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path((merchant, key)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let l = ctx.lang();
    let loaded = async {
        let id = merchant_id(&merchant)?;
        let m = state.engine.console_merchant(&ctx.actor, &id).await?;
        let d = state.engine.console_order(&ctx.actor, &id, &key).await?;
        let refund_id = state.engine.new_console_refund_id()?;
        Ok::<_, ConsoleError>((m, d, refund_id))
    }
    .await;
    let (m, d, refund_id) = match loaded {
        Ok(x) => x,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let o = &d.order;
    let tz = m.time_zone;
    let may_refund = ctx.session.user.role.may(Permission::Refund)
        && o.status == OrderStatus::Paid
        && o.refundable().minor() > 0;
    Page::of(&ctx, l.ta("order-title", &[("id", o.order_id.to_string())]), Section::Orders)
        .merchant(&m)
        .render(
            &uri,
            html! {
                h1 { (l.ta("order-title", &[("id", o.order_id.to_string())])) }
                dl.facts #order-facts {
                    dt { (l.t("status")) } dd #order-status { (status_name(l, o.status)) }
                    dt { (l.t("order-key")) } dd { (o.key) }
                    dt { (l.t("wallet")) } dd { (wallet_name(l, o.wallet)) }
                    dt { (l.t("wallet-ref")) } dd { (o.channel_ref.as_deref().unwrap_or("-")) }
                    dt { (l.t("amount")) } dd { (l.money(o.amount)) }
                    dt { (l.t("tip")) } dd { (l.money(o.tip)) }
                    dt { (l.t("total")) } dd #order-total { (l.money(o.total())) }
                    @if let Some(cny) = o.cny_amount { dt { (l.t("cny-paid")) } dd { (l.money(cny)) } }
                    dt { (l.t("refunded")) } dd #order-refunded { (l.money(o.refunded)) }
                    dt { (l.t("terminal")) } dd { (o.terminal_no.as_deref().unwrap_or("-")) }
                    dt { (l.t("operator")) } dd { (o.operator_id.as_deref().unwrap_or("-")) }
                    dt { (l.t("created")) } dd { (l.time(o.created_at, tz)) }
                    @if let Some(p) = o.paid_at { dt { (l.t("paid-at")) } dd { (l.time(p, tz)) } }
                }
                @if may_refund {
                    h2 #refund-title { (l.t("refund")) }
                    form.stack method="post" action=(format!("/console/m/{}/orders/{}/refund", m.id, o.key)) aria-labelledby="refund-title" {
                        (csrf(&ctx))
                        input type="hidden" name="refund_id" value=(refund_id);
                        label for="refund-amount" { (l.ta("refund-amount-in", &[("currency", m.currency.to_string()), ("max", l.money(o.refundable()))])) }
                        input #refund-amount name="amount" inputmode="decimal" required;
                        label for="refund-reason" { (l.t("refund-reason")) }
                        input #refund-reason name="reason" required maxlength="200";
                        button #refund-next type="submit" { (l.t("refund-continue")) }
                    }
                }
                h2 { (l.t("timeline")) }
                div.table-wrap { table #timeline {
                    thead { tr { th scope="col" { (l.t("time")) } th scope="col" { (l.t("call")) } th scope="col" { (l.t("outcome")) } th scope="col" { (l.t("wallet-code")) } th.num scope="col" { (l.t("latency")) } th scope="col" { (l.t("detail")) } th scope="col" { (l.t("worker")) } } }
                    tbody { @for e in &d.timeline { tr {
                        td { (l.time(e.at, tz)) } td { (e.operation) } td { (e.outcome) }
                        td { (e.wallet_code.as_deref().unwrap_or("")) } td.num { (e.latency_ms) " ms" }
                        td { (e.detail.as_deref().unwrap_or("")) } td { (e.worker.as_deref().unwrap_or("")) }
                    } } }
                } }
                h2 { (l.t("refunds")) }
                @if d.refunds.is_empty() { p.muted { (l.t("none")) } } @else {
                    div.table-wrap { table #refunds {
                        thead { tr { th scope="col" { (l.t("created")) } th scope="col" { (l.t("refund-id")) } th scope="col" { (l.t("status")) } th.num scope="col" { (l.t("amount")) } th scope="col" { (l.t("wallet-code")) } } }
                        tbody { @for r in &d.refunds { tr {
                            td { (l.time(r.created_at, tz)) } td { (r.refund_order_id) } td { (r.status.as_str()) }
                            td.num { (l.money(r.amount)) } td { (r.wallet_code.as_deref().unwrap_or("")) }
                        } } }
                    } }
                }
                h2 { (l.t("notification")) }
                @match &d.callback {
                    None => p.muted { (l.t("none")) },
                    Some((cb, attempts)) => {
                        p { (cb.url) " · " (cb.status.as_str()) " · " (l.ta("n-attempts", &[("n", cb.attempts.to_string())])) }
                        @if !attempts.is_empty() { div.table-wrap { table {
                            thead { tr { th scope="col" { (l.t("time")) } th scope="col" { (l.t("http-status")) } th.num scope="col" { (l.t("latency")) } th scope="col" { (l.t("answer")) } } }
                            tbody { @for a in attempts { tr { td { (l.time(a.at, tz)) } td { (a.http_status.map_or("-".to_owned(), |s| s.to_string())) } td.num { (a.latency_ms) " ms" } td { (a.excerpt) } } } }
                        } } }
                    }
                }
                h2 { (l.t("ledger")) }
                @if d.ledger.is_empty() { p.muted { (l.t("none")) } } @else {
                    div.table-wrap { table #ledger {
                        thead { tr { th scope="col" { (l.t("time")) } th scope="col" { (l.t("posting")) } th scope="col" { (l.t("account")) } th.num scope="col" { (l.t("amount")) } } }
                        tbody { @for e in &d.ledger { tr { td { (l.time(e.at, tz)) } td { (e.txn) } td { (e.account) } td.num { (l.money(e.amount)) } } } }
                    } }
                }
            },
        )
}

#[derive(Deserialize)]
pub struct RefundForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    refund_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
}

/// Checks the refund form and asks for confirmation; nothing is refunded yet.
pub async fn refund_confirm(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path((merchant, key)): Path<(String, String)>,
    uri: Uri,
    Form(f): Form<RefundForm>,
) -> Response {
    let l = ctx.lang();
    let checked = async {
        let id = merchant_id(&merchant)?;
        let m = state.engine.console_merchant(&ctx.actor, &id).await?;
        let d = state.engine.console_order(&ctx.actor, &id, &key).await?;
        if !ctx.actor.may(Permission::Refund) {
            return Err(ConsoleError::Forbidden);
        }
        let amount = forms::amount(l, &l.t("amount"), &f.amount, m.currency)?;
        let reason = forms::required(l, &l.t("refund-reason"), &f.reason)?;
        if amount.minor() <= 0 {
            return Err(ConsoleError::Invalid(l.t("amount-positive")));
        }
        if amount.minor() > d.order.refundable().minor() {
            return Err(ConsoleError::Invalid(l.ta(
                "refund-exceeds",
                &[("refundable", l.money(d.order.refundable()))],
            )));
        }
        Ok((m, d, amount, reason))
    }
    .await;
    if !ctx.csrf_ok(&f.csrf) {
        return ctx.csrf_refused(&uri);
    }
    let (m, d, amount, reason) = match checked {
        Ok(x) => x,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    Page::of(&ctx, l.t("refund-confirm-title"), Section::Orders)
        .merchant(&m)
        .render(
            &uri,
            html! {
                h1 { (l.t("refund-confirm-title")) }
                p #refund-summary { (l.ta("refund-confirm-text", &[("amount", l.money(amount)), ("order", d.order.order_id.to_string())])) }
                p { (l.t("refund-reason")) ": " (reason) }
                form method="post" action=(format!("/console/m/{}/orders/{}/refund/confirmed", m.id, d.order.key)) {
                    (csrf(&ctx))
                    input type="hidden" name="refund_id" value=(f.refund_id);
                    input type="hidden" name="amount" value=(f.amount.trim());
                    input type="hidden" name="reason" value=(reason);
                    button.danger #refund-confirm type="submit" { (l.t("refund-do")) }
                    " "
                    a.button.secondary href=(format!("/console/m/{}/orders/{}", m.id, d.order.key)) { (l.t("cancel")) }
                }
            },
        )
}

/// Refunds, once confirmed, by the same rules as REFUND on the wire.
pub async fn refund(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path((merchant, key)): Path<(String, String)>,
    uri: Uri,
    Form(f): Form<RefundForm>,
) -> Response {
    let l = ctx.lang();
    let done = async {
        let id = merchant_id(&merchant)?;
        let m = state.engine.console_merchant(&ctx.actor, &id).await?;
        if !ctx.csrf_ok(&f.csrf) {
            return Ok(None);
        }
        let amount = forms::amount(l, &l.t("amount"), &f.amount, m.currency)?;
        let reason = forms::required(l, &l.t("refund-reason"), &f.reason)?;
        let view = state
            .engine
            .console_refund(&ctx.actor, &id, &key, &f.refund_id, amount, &reason)
            .await?;
        Ok(Some((m, view)))
    }
    .await;
    let (m, view) = match done {
        Ok(Some(x)) => x,
        Ok(None) => return ctx.csrf_refused(&uri),
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let status = view.refund.status;
    let title = l.t(match status {
        qrgate_domain::RefundStatus::Succeeded => "refund-succeeded",
        qrgate_domain::RefundStatus::Processing => "refund-processing",
        qrgate_domain::RefundStatus::Failed => "refund-failed",
    });
    let kind = if status == qrgate_domain::RefundStatus::Failed {
        "error"
    } else {
        "ok"
    };
    Page::of(&ctx, title.clone(), Section::Orders)
        .merchant(&m)
        .render(
            &uri,
            html! {
                h1 { (title) }
                (notice(kind, "refund-result", &title, &l.ta("refund-result-detail", &[("amount", l.money(view.refund.amount)), ("order", view.order.order_id.to_string())])))
                p { a #back-to-order href=(format!("/console/m/{}/orders/{}", m.id, view.order.key)) { (l.t("back-to-order")) } }
            },
        )
}

pub async fn callbacks(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
) -> Response {
    let l = ctx.lang();
    let loaded = async {
        let id = merchant_id(&merchant)?;
        let m = state.engine.console_merchant(&ctx.actor, &id).await?;
        let list = state.engine.console_callbacks(&ctx.actor, &id, 100).await?;
        Ok::<_, ConsoleError>((m, list))
    }
    .await;
    let (m, list) = match loaded {
        Ok(x) => x,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let may_retry = ctx.actor.may(Permission::RetryCallback);
    Page::of(&ctx, l.t("nav-callbacks"), Section::Callbacks)
        .merchant(&m)
        .render(
            &uri,
            html! {
                h1 { (l.t("nav-callbacks")) }
                p.muted { (l.t("callbacks-intro")) }
                @if list.is_empty() { p #no-callbacks { (l.t("none")) } }
                @for (r, attempts) in &list {
                    section.card id=(format!("cb-{}", r.callback.order_key)) {
                        h2 { a href=(format!("/console/m/{}/orders/{}", m.id, r.callback.order_key)) { (r.order_id) } " · " span.cb-status { (r.callback.status.as_str()) } }
                        p.muted { (r.callback.url) " · " (l.ta("n-attempts", &[("n", r.callback.attempts.to_string())])) }
                        @if !attempts.is_empty() { div.table-wrap { table {
                            thead { tr { th scope="col" { (l.t("time")) } th scope="col" { (l.t("http-status")) } th.num scope="col" { (l.t("latency")) } th scope="col" { (l.t("answer")) } } }
                            tbody { @for a in attempts { tr { td { (l.time(a.at, m.time_zone)) } td { (a.http_status.map_or("-".to_owned(), |s| s.to_string())) } td.num { (a.latency_ms) " ms" } td { (a.excerpt) } } } }
                        } } }
                        @if may_retry {
                            form method="post" action=(format!("/console/m/{}/callbacks/{}/retry", m.id, r.callback.order_key)) {
                                (csrf(&ctx))
                                button.secondary.retry type="submit" { (l.t("send-again")) }
                            }
                        }
                    }
                }
            },
        )
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

impl CsrfOnly {
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub async fn retry_callback(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path((merchant, key)): Path<(String, String)>,
    uri: Uri,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let done = async {
        let id = merchant_id(&merchant)?;
        state.engine.console_merchant(&ctx.actor, &id).await?;
        if !ctx.csrf_ok(&f.csrf) {
            return Ok(None);
        }
        state
            .engine
            .console_retry_callback(&ctx.actor, &id, &key)
            .await?;
        Ok(Some(id))
    }
    .await;
    match done {
        Ok(Some(id)) => see_other(&format!("/console/m/{id}/callbacks?sent={key}")),
        Ok(None) => ctx.csrf_refused(&uri),
        Err(e) => error::page(&ctx, &uri, e),
    }
}

pub async fn settings(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
) -> Response {
    settings_page(&state, &ctx, &merchant, &uri, None).await
}

/// The settings page, with an optional message (what was just done, or why not).
pub async fn settings_page(
    state: &ConsoleState,
    ctx: &Ctx,
    merchant: &str,
    uri: &Uri,
    message: Option<(StatusCode, Markup)>,
) -> Response {
    let l = ctx.lang();
    let loaded = async {
        let id = merchant_id(merchant)?;
        state.engine.console_settings(&ctx.actor, &id).await
    }
    .await;
    let (m, shops, terminals, operators) = match loaded {
        Ok(x) => x,
        Err(e) => return error::page(ctx, uri, e),
    };
    let manage = ctx.actor.may(Permission::ManageSettings);
    let base = format!("/console/m/{}/settings", m.id);
    let (status, message) = message.map_or((StatusCode::OK, None), |(s, m)| (s, Some(m)));
    Page::of(ctx, l.t("nav-settings"), Section::Settings)
        .merchant(&m)
        .status(status)
        .render(
            uri,
            html! {
                h1 { (l.t("nav-settings")) }
                @if let Some(msg) = message { (msg) }
                dl.facts {
                    dt { (l.t("merchant")) } dd { (m.id) " · " (m.name) }
                    dt { (l.t("currency")) } dd { (m.currency) }
                    dt { (l.t("time-zone")) } dd { (m.time_zone) }
                    dt { (l.t("provider-fee")) } dd #fee { (m.fee_rate) }
                }
                h2 { (l.t("shops")) }
                ul { @for s in &shops { li { (s.id) " · " (s.name) } } }
                @if manage {
                    form.row method="post" action=(format!("{base}/shops")) {
                        (csrf(ctx))
                        div { label for="shop-name" { (l.t("shop-name")) } input #shop-name name="name" required maxlength="100"; }
                        button #add-shop type="submit" { (l.t("add-shop")) }
                    }
                }
                h2 { (l.t("terminals")) }
                ul { @for t in &terminals { li { (t.terminal_no) " · " (t.shop_id.as_ref().map_or("-", ShopId::as_str)) " · " (t.name) } } }
                @if manage {
                    form.row method="post" action=(format!("{base}/terminals")) {
                        (csrf(ctx))
                        div { label for="terminal-no" { (l.t("terminal-no")) } input #terminal-no name="terminal_no" required maxlength="32"; }
                        div { label for="terminal-shop" { (l.t("shop")) }
                            select #terminal-shop name="shop" { option value="" { "-" } @for s in &shops { option value=(s.id) { (s.name) } } } }
                        div { label for="terminal-name" { (l.t("name")) } input #terminal-name name="name" maxlength="100"; }
                        button #add-terminal type="submit" { (l.t("add-terminal")) }
                    }
                }
                h2 { (l.t("operators")) }
                div.table-wrap { table #operators {
                    thead { tr { th scope="col" { (l.t("operator")) } th scope="col" { (l.t("name")) } @if manage { th scope="col" { (l.t("till-pin")) } } } }
                    tbody { @for o in &operators { tr {
                        td { (o.id) } td { (o.name) }
                        @if manage { td {
                            form.row method="post" action=(format!("{base}/operators/{}/pin", o.id)) {
                                (csrf(ctx))
                                label.visually-hidden for=(format!("pin-{}", o.id)) { (l.ta("new-pin-for", &[("name", o.name.clone())])) }
                                input id=(format!("pin-{}", o.id)) name="pin" type="password" inputmode="numeric" autocomplete="new-password" required maxlength="12";
                                button.secondary type="submit" { (l.t("set-pin")) }
                            }
                        } }
                    } } }
                } }
                @if manage {
                    form.row method="post" action=(format!("{base}/operators")) {
                        (csrf(ctx))
                        div { label for="operator-name" { (l.t("operator-name")) } input #operator-name name="name" required maxlength="100"; }
                        button #add-operator type="submit" { (l.t("add-operator")) }
                    }
                    h2 { (l.t("sign-key")) }
                    p { (l.t("sign-key-intro")) }
                    form.row method="post" action=(format!("{base}/key")) {
                        (csrf(ctx))
                        div { label for="grace" { (l.t("grace-hours")) } input #grace name="grace_hours" inputmode="numeric" value="24"; }
                        button.danger #rotate-key type="submit" { (l.t("rotate-key")) }
                    }
                }
            },
        )
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// Runs a settings change, then shows the settings page with what happened.
async fn settings_change<F, Fut>(
    state: &ConsoleState,
    ctx: &Ctx,
    merchant: &str,
    uri: &Uri,
    csrf: &str,
    change: F,
) -> Response
where
    F: FnOnce(MerchantId) -> Fut,
    Fut: std::future::Future<Output = Result<String, ConsoleError>>,
{
    let l = ctx.lang();
    let id = match merchant_id(merchant) {
        Ok(id) => id,
        Err(e) => return error::page(ctx, uri, e),
    };
    if let Err(e) = state.engine.console_merchant(&ctx.actor, &id).await {
        return error::page(ctx, uri, e);
    }
    if !ctx.csrf_ok(csrf) {
        return ctx.csrf_refused(uri);
    }
    let message = match change(id).await {
        Ok(done) => (StatusCode::OK, notice("ok", "done", &done, "")),
        Err(e) => match error::refusal(l, e) {
            Ok(m) => (
                StatusCode::BAD_REQUEST,
                notice("error", "form-error", &l.t("invalid"), &m),
            ),
            Err(e) => return error::page(ctx, uri, e),
        },
    };
    settings_page(state, ctx, merchant, uri, Some(message)).await
}

pub async fn add_shop(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
    Form(f): Form<NameForm>,
) -> Response {
    let l = ctx.lang();
    let (state, ctx, f) = (&state, &ctx, &f);
    settings_change(state, ctx, &merchant, &uri, &f.csrf, move |id| async move {
        let name = forms::required(l, &l.t("shop-name"), &f.name)?;
        let shop = state
            .engine
            .console_add_shop(&ctx.actor, &id, &name)
            .await?;
        Ok(l.ta("shop-added", &[("id", shop.id.to_string())]))
    })
    .await
}

#[derive(Deserialize)]
pub struct TerminalForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    terminal_no: String,
    #[serde(default)]
    shop: String,
    #[serde(default)]
    name: String,
}

pub async fn add_terminal(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
    Form(f): Form<TerminalForm>,
) -> Response {
    let l = ctx.lang();
    let (state, ctx, f) = (&state, &ctx, &f);
    settings_change(state, ctx, &merchant, &uri, &f.csrf, move |id| async move {
        let no = forms::required(l, &l.t("terminal-no"), &f.terminal_no)?;
        let no = TerminalNo::parse(&no).map_err(|e| ConsoleError::Invalid(e.to_string()))?;
        let shop = forms::parsed(l, &l.t("shop"), &f.shop, ShopId::parse)?;
        let name = forms::text(l, &l.t("name"), &f.name)?;
        let t = state
            .engine
            .console_add_terminal(&ctx.actor, &id, &no, shop.as_ref(), name.as_deref())
            .await?;
        Ok(l.ta("terminal-added", &[("id", t.terminal_no.to_string())]))
    })
    .await
}

pub async fn add_operator(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
    Form(f): Form<NameForm>,
) -> Response {
    let l = ctx.lang();
    let (state, ctx, f) = (&state, &ctx, &f);
    settings_change(state, ctx, &merchant, &uri, &f.csrf, move |id| async move {
        let name = forms::required(l, &l.t("operator-name"), &f.name)?;
        let op = state
            .engine
            .console_add_operator(&ctx.actor, &id, &name)
            .await?;
        Ok(l.ta("operator-added", &[("id", op.id.to_string())]))
    })
    .await
}

#[derive(Deserialize)]
pub struct PinForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pin: String,
}

pub async fn set_pin(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path((merchant, operator)): Path<(String, String)>,
    uri: Uri,
    Form(f): Form<PinForm>,
) -> Response {
    let l = ctx.lang();
    let Ok(operator) = OperatorId::parse(&operator) else {
        return error::page(&ctx, &uri, ConsoleError::NotFound("operator"));
    };
    let (state, ctx, f) = (&state, &ctx, &f);
    settings_change(state, ctx, &merchant, &uri, &f.csrf, move |id| async move {
        state
            .engine
            .console_set_pin(&ctx.actor, &id, &operator, f.pin.trim())
            .await?;
        Ok(l.ta("pin-set", &[("id", operator.to_string())]))
    })
    .await
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    grace_hours: String,
}

pub async fn rotate_key(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
    Form(f): Form<KeyForm>,
) -> Response {
    let l = ctx.lang();
    let done = async {
        let id = merchant_id(&merchant)?;
        let m = state.engine.console_merchant(&ctx.actor, &id).await?;
        if !ctx.csrf_ok(&f.csrf) {
            return Ok(None);
        }
        let grace = match forms::text(l, &l.t("grace-hours"), &f.grace_hours)? {
            None => None,
            Some(h) => {
                let hours: i64 = h.parse().map_err(|_| {
                    ConsoleError::Invalid(l.ta("field-invalid", &[("field", l.t("grace-hours"))]))
                })?;
                if !(0..=720).contains(&hours) {
                    return Err(ConsoleError::Invalid(l.t("grace-range")));
                }
                (hours > 0).then(|| Duration::hours(hours))
            }
        };
        let rotated = state
            .engine
            .console_rotate_key(&ctx.actor, &id, grace)
            .await?;
        Ok(Some((m, rotated)))
    }
    .await;
    let (m, rotated) = match done {
        Ok(Some(x)) => x,
        Ok(None) => return ctx.csrf_refused(&uri),
        Err(ConsoleError::Invalid(msg)) => {
            let message = (
                StatusCode::BAD_REQUEST,
                notice("error", "form-error", &l.t("invalid"), &msg),
            );
            return settings_page(&state, &ctx, &merchant, &uri, Some(message)).await;
        }
        Err(e) => return error::page(&ctx, &uri, e),
    };
    Page::of(&ctx, l.t("new-key-title"), Section::Settings)
        .merchant(&m)
        .render(
            &uri,
            html! {
                h1 { (l.t("new-key-title")) }
                (notice("info", "key-once", &l.t("new-key-once"), ""))
                p.secret #new-key { (rotated.sign_key.expose()) }
                p #key-grace { @match rotated.previous_valid_until {
                    Some(until) => (l.ta("old-key-until", &[("until", l.time(until, m.time_zone))])),
                    None => (l.t("old-key-stopped")),
                } }
                p { a href=(format!("/console/m/{}/settings", m.id)) { (l.t("back-to-settings")) } }
            },
        )
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    before: String,
}

impl AuditQuery {
    pub fn before(&self) -> &str {
        &self.before
    }
}

pub fn audit_table(
    l: Lang,
    entries: &[qrgate_engine::AuditEntry],
    tz: qrgate_domain::MerchantTimeZone,
) -> Markup {
    html! {
        div.table-wrap { table #audit {
            thead { tr { th scope="col" { (l.t("time")) } th scope="col" { (l.t("who")) } th scope="col" { (l.t("address")) } th scope="col" { (l.t("action")) } th scope="col" { (l.t("target")) } th scope="col" { (l.t("before")) } th scope="col" { (l.t("after")) } } }
            tbody { @for e in entries { tr {
                td { (l.time(e.at, tz)) } td { (e.actor) } td { (e.ip) } td.action { (e.action) }
                td { (e.target) @if let Some(m) = &e.merchant_id { " (" (m) ")" } }
                td { code { (e.before.as_deref().unwrap_or("")) } } td { code { (e.after.as_deref().unwrap_or("")) } }
            } } }
        } }
    }
}

pub async fn audit(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    Query(q): Query<AuditQuery>,
    uri: Uri,
) -> Response {
    let l = ctx.lang();
    let loaded = async {
        let id = merchant_id(&merchant)?;
        let m = state.engine.console_merchant(&ctx.actor, &id).await?;
        let before = q.before.trim().parse::<i64>().ok();
        let entries = state
            .engine
            .console_audit(&ctx.actor, Some(&id), before, 100)
            .await?;
        Ok::<_, ConsoleError>((m, entries))
    }
    .await;
    let (m, entries) = match loaded {
        Ok(x) => x,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let next = (entries.len() == 100)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Page::of(&ctx, l.t("nav-audit"), Section::Audit)
        .merchant(&m)
        .render(
            &uri,
            html! {
                h1 { (l.t("nav-audit")) }
                (audit_table(l, &entries, m.time_zone))
                @if let Some(n) = next { p { a href=(format!("/console/m/{}/audit?before={n}", m.id)) { (l.t("next-page")) } } }
            },
        )
}
