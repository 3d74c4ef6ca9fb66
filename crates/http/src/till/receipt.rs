//! A printable receipt, laid out for 58 mm or 80 mm till paper (`?paper=58|80`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use maud::{html, PreEscaped};
use qrgate_domain::{Money, RefundStatus};
use serde::Deserialize;

use super::i18n::{self, Lang, Locale};
use super::layout::Page;
use super::order::{find, unavailable};
use super::{session_of, signed_out};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct ReceiptQuery {
    paper: Option<String>,
}

fn refund_status(lang: Lang, s: RefundStatus) -> &'static str {
    match s {
        RefundStatus::Processing => lang.pick("processing", "处理中"),
        RefundStatus::Succeeded => lang.pick("refunded", "已退款"),
        RefundStatus::Failed => lang.pick("failed", "失败"),
    }
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Query(q): Query<ReceiptQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let lang = locale.lang;
    let (session, _) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return signed_out(&e),
    };
    let order = match find(&state, locale, &uri, &session, &order_id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let refunds = match state.engine.refunds_of_order(&order.key).await {
        Ok(r) => r,
        Err(e) => return unavailable(locale, &uri, &session, &e.to_string()),
    };
    let paper = match q.paper.as_deref() {
        Some("58") => 58,
        _ => 80,
    };
    let tz = session.merchant.time_zone;
    let at = order.paid_at.unwrap_or(order.created_at);
    let money = |m: Money| i18n::money(lang, m);
    let style = print_style(paper);
    let other = if paper == 58 { 80 } else { 58 };
    let body = html! {
        style { (PreEscaped(style)) }
        div.no-print.actions {
            button #print type="button" { (lang.pick("Print", "打印")) }
            a.button.secondary href={ "/pos/orders/" (order.order_id) "/receipt?paper=" (other) } {
                (match lang { Lang::En => format!("{other} mm paper"), Lang::Zh => format!("{other} mm 纸") }) }
            a.button.secondary href={ "/pos/orders/" (order.order_id) } { (lang.pick("Back", "返回")) }
        }
        article.receipt #receipt data-paper=(paper) {
            h1.r-title { (session.merchant.name) }
            p.r-center { (lang.pick("Payment receipt", "支付凭证")) }
            hr;
            table.r-lines {
                tr { th { (lang.pick("Time", "时间")) } td { (i18n::time(lang, tz, at)) } }
                tr { th { (lang.pick("Amount", "金额")) } td.num { (money(order.amount)) } }
                @if order.tip.minor() > 0 {
                    tr { th { (lang.pick("Tip", "小费")) } td.num { (money(order.tip)) } }
                }
                tr.r-total { th { (lang.pick("Total", "合计")) } td.num #receipt-total { (money(order.total())) } }
                @if let Some(cny) = order.cny_amount.filter(|c| c.currency() != order.amount.currency()) {
                    tr { th { (lang.pick("Paid in CNY", "人民币金额")) } td.num { (money(cny)) } }
                }
                tr { th { (lang.pick("Wallet", "钱包")) } td { (i18n::wallet_name(lang, order.wallet)) } }
                tr { th { (lang.pick("Status", "状态")) } td #receipt-status { (i18n::status_name(lang, order.status)) } }
                tr { th { (lang.pick("Order", "订单号")) } td.r-id { (order.order_id) } }
                @if let Some(txn) = &order.channel_ref {
                    tr { th { (lang.pick("Wallet txn", "钱包交易号")) } td.r-id { (txn) } }
                }
                @if let Some(op) = &order.operator_id {
                    tr { th { (lang.pick("Operator", "收银员")) } td { (op) } }
                }
            }
            @if !refunds.is_empty() {
                hr;
                p.r-center { (lang.pick("Refunds", "退款")) }
                table.r-lines #receipt-refunds {
                    @for r in &refunds {
                        tr {
                            th { (i18n::time(lang, tz, r.created_at)) }
                            td.num { "-" (money(r.amount)) " " (refund_status(lang, r.status)) }
                        }
                        @if let Some(op) = &r.operator_id {
                            tr.r-refund-by { th { (lang.pick("Asked by", "申请人")) } td { (op) } }
                        }
                        @if let Some(op) = &r.approved_by {
                            tr.r-refund-by { th { (lang.pick("Approved by", "批准人")) } td { (op) } }
                        }
                    }
                }
            }
            hr;
            p.r-center { (lang.pick("Thank you", "谢谢惠顾")) }
        }
    };
    let mut page = Page::new(locale, lang.pick("Receipt", "小票"), Some(&session));
    page.bare = true;
    page.render(&uri, body)
}

/// The paper widths a receipt is laid out for, in mm.
pub(crate) const PAPERS: [u16; 2] = [58, 80];

/// The receipt's inline style for `paper` mm (the page's Content-Security-Policy allows
/// exactly these, by hash).
pub(crate) fn print_style(paper: u16) -> String {
    // Printable width: the paper less the printer's margins.
    let (width_mm, size) = if paper == 58 {
        (48, "9pt")
    } else {
        (72, "10.5pt")
    };
    format!(
        "@page{{size:{paper}mm auto;margin:0}}\
         .receipt{{width:{width_mm}mm;margin:0 auto;font:{size}/1.35 ui-monospace,monospace;color:#000}}"
    )
}
