//! CSV exports of a merchant's orders and refunds for any span of days, streamed: the body is
//! written page by page ([`qrgate_engine::EXPORT_PAGE`] rows a round trip, by keyset), so a
//! year of a busy merchant never sits in memory. Columns are what an accountant expects:
//! local time, ids on both sides, status, wallet, shop and terminal, amounts in major units.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::html;
use qrgate_domain::{Merchant, Money, Order, Refund, ShopId, Terminal};
use qrgate_engine::{Actor, ConsoleError, OrderQuery, PageCursor, EXPORT_PAGE};
use serde::Deserialize;

use crate::auth::Ctx;
use crate::error;
use crate::forms;
use crate::i18n::Lang;
use crate::layout::{Page, Section};
use crate::merchant::{merchant_id, order_query, OrdersQuery};
use crate::ConsoleState;

/// The orders export's header row.
pub const ORDER_COLUMNS: &str = "created_local,paid_local,order_key,merchant_order_id,wallet_reference,status,wallet,mode,shop,terminal,operator,currency,amount,tip,total,refunded,net,cny_paid,rate_cny";
/// The refunds export's header row.
pub const REFUND_COLUMNS: &str = "created_local,finished_local,refund_key,refund_order_id,order_key,wallet_reference,status,wallet,currency,amount,cny_refunded,operator";

/// A CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`, `-`
/// or `@` is defused with a `'` so that a spreadsheet does not run it as a formula.
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// An amount in major units without the currency: `12.34`, `-1.05`.
fn major(m: Money) -> String {
    let text = m.to_string();
    text.split(' ').next().unwrap_or("").to_owned()
}

fn local(at: Option<DateTime<Utc>>, merchant: &Merchant) -> String {
    at.map(|t| {
        t.with_timezone(&merchant.time_zone.tz())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    })
    .unwrap_or_default()
}

fn shop_of(order: &Order, terminals: &[Terminal]) -> String {
    terminals
        .iter()
        .find(|t| Some(t.terminal_no.as_str()) == order.terminal_no.as_deref())
        .and_then(|t| t.shop_id.as_ref())
        .map(ShopId::to_string)
        .unwrap_or_default()
}

pub fn order_line(o: &Order, m: &Merchant, terminals: &[Terminal]) -> String {
    let net = Money::new(o.total().minor() - o.refunded.minor(), o.amount.currency());
    let fields = [
        local(Some(o.created_at), m),
        local(o.paid_at, m),
        o.key.clone(),
        o.order_id.to_string(),
        o.channel_ref.clone().unwrap_or_default(),
        o.status.as_str().to_owned(),
        o.wallet.as_str().to_owned(),
        o.mode.as_str().to_owned(),
        shop_of(o, terminals),
        o.terminal_no.clone().unwrap_or_default(),
        o.operator_id.clone().unwrap_or_default(),
        o.amount.currency().code().to_owned(),
        major(o.amount),
        major(o.tip),
        major(o.total()),
        major(o.refunded),
        if o.status == qrgate_domain::OrderStatus::Paid {
            major(net)
        } else {
            major(Money::new(0, o.amount.currency()))
        },
        o.cny_amount.map(major).unwrap_or_default(),
        o.rate.map(|r| r.to_string()).unwrap_or_default(),
    ];
    let mut line = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

pub fn refund_line(r: &Refund, m: &Merchant) -> String {
    let fields = [
        local(Some(r.created_at), m),
        local(r.finished_at, m),
        r.key.clone(),
        r.refund_order_id.to_string(),
        r.order_key.clone(),
        r.channel_ref.clone().unwrap_or_default(),
        r.status.as_str().to_owned(),
        r.wallet.as_str().to_owned(),
        r.amount.currency().code().to_owned(),
        major(r.amount),
        r.cny_amount.map(major).unwrap_or_default(),
        r.operator_id.clone().unwrap_or_default(),
    ];
    let mut line = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn csv_response(filename: &str, body: Body) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    r
}

/// What the stream still has to write.
enum Next<C> {
    Header,
    Page(Option<C>),
    Done,
}

/// The orders matching the list's filter (dates, status, wallet, shop…), as CSV.
pub async fn orders_csv(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    Query(q): Query<OrdersQuery>,
    uri: Uri,
) -> Response {
    let l = ctx.lang();
    let checked = async {
        let id = merchant_id(&merchant)?;
        let m = state.engine.console_merchant(&ctx.actor, &id).await?;
        let query = order_query(&state, l, &m, &q).await?;
        let terminals = state.engine.terminals(&id).await?;
        Ok::<_, ConsoleError>((m, query, terminals))
    }
    .await;
    let (m, query, terminals) = match checked {
        Ok(x) => x,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let filename = format!(
        "orders-{}-{}-{}.csv",
        m.id,
        or_all(q.from()),
        or_all(q.to())
    );
    let stream = orders_stream(state, ctx.actor, m, query, terminals);
    csv_response(&filename, Body::from_stream(stream))
}

fn or_all(s: &str) -> &str {
    if s.trim().is_empty() {
        "all"
    } else {
        s.trim()
    }
}

/// The body of an orders export: the header, then one page of rows per poll.
pub fn orders_stream(
    state: ConsoleState,
    actor: Actor,
    m: Merchant,
    query: OrderQuery,
    terminals: Vec<Terminal>,
) -> impl futures_util::Stream<Item = Result<String, ConsoleError>> + Send {
    futures_util::stream::unfold(Next::<PageCursor>::Header, move |next| {
        let (state, actor, m, query, terminals) = (
            state.clone(),
            actor.clone(),
            m.clone(),
            query.clone(),
            terminals.clone(),
        );
        async move {
            match next {
                Next::Header => Some((Ok(format!("{ORDER_COLUMNS}\r\n")), Next::Page(None))),
                Next::Page(after) => {
                    let page = match state
                        .engine
                        .console_orders(&actor, &m.id, &query, after.as_ref(), EXPORT_PAGE)
                        .await
                    {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::error!(error = %e, "orders export stopped");
                            return Some((Err(e), Next::Done));
                        }
                    };
                    let text: String = page
                        .orders
                        .iter()
                        .map(|o| order_line(o, &m, &terminals))
                        .collect();
                    let next = match page.next {
                        Some(c) => Next::Page(Some(c)),
                        None => Next::Done,
                    };
                    Some((Ok(text), next))
                }
                Next::Done => None,
            }
        }
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct RangeQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// The refunds created in a span of days, as CSV.
pub async fn refunds_csv(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    Query(q): Query<RangeQuery>,
    uri: Uri,
) -> Response {
    let l = ctx.lang();
    let checked = async {
        let id = merchant_id(&merchant)?;
        let m = state.engine.console_merchant(&ctx.actor, &id).await?;
        let from = forms::opt_date(l, &l.t("from"), &q.from)?;
        let to = forms::opt_date(l, &l.t("to"), &q.to)?;
        let from = match from {
            Some(d) => state.engine.console_start_of_day(&m, d)?,
            None => DateTime::<Utc>::UNIX_EPOCH,
        };
        let to = match to {
            Some(d) => state
                .engine
                .console_start_of_day(&m, d.succ_opt().unwrap_or(d))?,
            None => state.engine.now() + chrono::Duration::days(1),
        };
        if from >= to {
            return Err(ConsoleError::Invalid(l.t("range-empty")));
        }
        Ok::<_, ConsoleError>((m, from, to))
    }
    .await;
    let (m, from, to) = match checked {
        Ok(x) => x,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let filename = format!("refunds-{}-{}-{}.csv", m.id, or_all(&q.from), or_all(&q.to));
    let actor = ctx.actor;
    let stream = futures_util::stream::unfold(Next::<PageCursor>::Header, move |next| {
        let (state, actor, m) = (state.clone(), actor.clone(), m.clone());
        async move {
            match next {
                Next::Header => Some((Ok(format!("{REFUND_COLUMNS}\r\n")), Next::Page(None))),
                Next::Page(after) => {
                    let (refunds, cursor) = match state
                        .engine
                        .console_refunds(&actor, &m.id, from, to, after.as_ref(), EXPORT_PAGE)
                        .await
                    {
                        Ok(p) => p,
                        Err(e) => return Some((Err(e), Next::Done)),
                    };
                    let text: String = refunds.iter().map(|r| refund_line(r, &m)).collect();
                    Some((Ok(text), cursor.map_or(Next::Done, |c| Next::Page(Some(c)))))
                }
                Next::Done => None,
            }
        }
    });
    csv_response(&filename, Body::from_stream(stream))
}

/// The exports page: a span of days and the two downloads.
pub async fn page(
    State(state): State<ConsoleState>,
    ctx: Ctx,
    Path(merchant): Path<String>,
    uri: Uri,
) -> Response {
    let l: Lang = ctx.lang();
    let m = match async {
        let id = merchant_id(&merchant)?;
        state.engine.console_merchant(&ctx.actor, &id).await
    }
    .await
    {
        Ok(m) => m,
        Err(e) => return error::page(&ctx, &uri, e),
    };
    let today = state.engine.console_today(&m);
    let first = today.format("%Y-%m-01").to_string();
    let today = today.format("%Y-%m-%d").to_string();
    Page::of(&ctx, l.t("nav-exports"), Section::Exports)
        .merchant(&m)
        .render(
            &uri,
            html! {
                h1 { (l.t("nav-exports")) }
                p { (l.t("exports-intro")) }
                h2 { (l.t("export-orders")) }
                form.row method="get" action=(format!("/console/m/{}/orders.csv", m.id)) {
                    div { label for="eo-from" { (l.t("from")) } input #eo-from name="from" type="date" value=(first); }
                    div { label for="eo-to" { (l.t("to")) } input #eo-to name="to" type="date" value=(today); }
                    button #export-orders type="submit" { (l.t("download-csv")) }
                }
                h2 { (l.t("export-refunds")) }
                form.row method="get" action=(format!("/console/m/{}/refunds.csv", m.id)) {
                    div { label for="er-from" { (l.t("from")) } input #er-from name="from" type="date" value=(first); }
                    div { label for="er-to" { (l.t("to")) } input #er-to name="to" type="date" value=(today); }
                    button #export-refunds type="submit" { (l.t("download-csv")) }
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(
            major(Money::new(-105, qrgate_domain::Currency::Usd)),
            "-1.05"
        );
        assert_eq!(ORDER_COLUMNS.split(',').count(), 19);
        assert_eq!(REFUND_COLUMNS.split(',').count(), 12);
    }
}
