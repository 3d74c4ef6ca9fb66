//! One sale as it stands: the QR to scan (with a countdown), "waiting for the customer", or
//! the result a cashier reads at a glance (paid, failed and why, not charged). While the
//! order is open the page asks `/pos/orders/{id}/status` every second and reloads when the
//! state changes; a failed request shows "connection lost" and it keeps asking: the order
//! lives on the gateway, nothing is lost.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use maud::{html, Markup, PreEscaped};
use qrcode::{Color, QrCode};
use qrgate_domain::{MerchantOrderId, Order, OrderStatus, PaymentMode};
use qrgate_engine::{CancelError, CancelOutcome, TillSession};
use serde::Deserialize;

use super::i18n::{self, Lang, Locale};
use super::layout::{notice, Page};
use super::{session_of, signed_out};
use crate::AppState;

/// What the screen shows for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Qr,
    Waiting,
    /// Someone asked to cancel it; the wallet has not closed or reversed it yet.
    Cancelling,
    Paid,
    Failed,
    NotCharged,
}

fn view_of(order: &Order) -> View {
    match order.status {
        OrderStatus::Paid => View::Paid,
        OrderStatus::Failed => View::Failed,
        OrderStatus::Reversed | OrderStatus::Closed => View::NotCharged,
        _ if order.cancel_requested_at.is_some() => View::Cancelling,
        OrderStatus::Pending | OrderStatus::Unknown | OrderStatus::Paying
            if order.mode == PaymentMode::Active && order.code_url.is_some() =>
        {
            View::Qr
        }
        _ => View::Waiting,
    }
}

/// A page saying the gateway could not answer (the database is down, say).
pub(crate) fn unavailable(
    locale: Locale,
    uri: &Uri,
    session: &TillSession,
    detail: &str,
) -> Response {
    tracing::error!(error = detail, "till page could not be served");
    let lang = locale.lang;
    Page::new(locale, lang.pick("Unavailable", "暂不可用"), Some(session))
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .render(
            uri,
            notice(
                "error",
                "unavailable",
                lang.pick(
                    "The gateway cannot answer right now: try again in a moment.",
                    "网关暂时无法响应，请稍后重试。",
                ),
                "",
            ),
        )
}

pub(crate) fn not_found(locale: Locale, uri: &Uri, session: &TillSession) -> Response {
    let lang = locale.lang;
    Page::new(locale, lang.pick("No such sale", "无此交易"), Some(session))
        .status(StatusCode::NOT_FOUND)
        .render(
            uri,
            html! {
                (notice("error", "not-found", lang.pick("There is no such sale.", "没有这笔交易。"), ""))
                p { a.button href="/pos/today" { (lang.pick("Today's sales", "今日交易")) } }
            },
        )
}

/// The session's merchant's order, or the response to give instead.
pub(crate) async fn find(
    state: &AppState,
    locale: Locale,
    uri: &Uri,
    session: &TillSession,
    order_id: &str,
) -> Result<Order, Response> {
    let Ok(order_id) = MerchantOrderId::parse(order_id) else {
        return Err(not_found(locale, uri, session));
    };
    match state.engine.find_order(&session.merchant, &order_id).await {
        Ok(Some(order)) => Ok(order),
        Ok(None) => Err(not_found(locale, uri, session)),
        Err(e) => Err(unavailable(locale, uri, session, &e.to_string())),
    }
}

/// A QR code of `text` as inline SVG (quiet zone of 4 modules), or `None` if too long.
pub(crate) fn qr_svg(text: &str, label: &str) -> Option<String> {
    const QUIET: usize = 4;
    let code = QrCode::new(text.as_bytes()).ok()?;
    let size = code.width();
    let full = size + 2 * QUIET;
    let mut path = String::new();
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color == Color::Dark {
            path.push_str(&format!(
                "M{} {}h1v1h-1z",
                i % size + QUIET,
                i / size + QUIET
            ));
        }
    }
    let label: String = maud::html! { (label) }.into_string();
    Some(format!(
        "<svg class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {full} {full}\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"{label}\"><rect width=\"{full}\" \
         height=\"{full}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

fn facts(lang: Lang, session: &TillSession, order: &Order) -> Markup {
    let tz = session.merchant.time_zone;
    html! {
        dl.facts {
            dt { (lang.pick("Wallet", "钱包")) } dd #wallet { (i18n::wallet_name(lang, order.wallet)) }
            @if order.tip.minor() > 0 {
                dt { (lang.pick("Amount", "金额")) } dd { (i18n::money(lang, order.amount)) }
                dt { (lang.pick("Tip", "小费")) } dd { (i18n::money(lang, order.tip)) }
            }
            @if let Some(at) = order.paid_at {
                dt { (lang.pick("Paid at", "支付时间")) }
                dd { time datetime=(i18n::iso_time(tz, at)) { (i18n::time(lang, tz, at)) } }
            } @else {
                dt { (lang.pick("Started", "发起时间")) }
                dd { time datetime=(i18n::iso_time(tz, order.created_at)) { (i18n::time(lang, tz, order.created_at)) } }
            }
            dt { (lang.pick("Sale", "交易号")) } dd #order-id { (order.order_id) }
        }
    }
}

fn new_sale_button(lang: Lang, focus: bool) -> Markup {
    html! {
        a.button #new-sale href="/pos" autofocus[focus] { (lang.pick("New sale", "新交易")) }
    }
}

fn body(
    lang: Lang,
    session: &TillSession,
    order: &Order,
    now: chrono::DateTime<chrono::Utc>,
) -> Markup {
    let view = view_of(order);
    let total = i18n::money(lang, order.total());
    let wallet = i18n::wallet_name(lang, order.wallet);
    let status_url = format!("/pos/orders/{}/status", order.order_id);
    let open = matches!(view, View::Qr | View::Waiting | View::Cancelling);
    let cancel_url = format!("/pos/orders/{}/cancel", order.order_id);
    let tz = session.merchant.time_zone;
    html! {
        div #order data-status=(order.status.as_str()) data-final=(if open { "false" } else { "true" })
            data-status-url=(status_url)
            data-cancel-url=[(view == View::Qr).then_some(&cancel_url)]
            data-csrf=[(view == View::Qr).then_some(&session.csrf_token)] {
            p #connection.notice.error role="alert" hidden {
                (lang.pick("Connection lost, retrying… The sale is kept on the gateway.",
                    "网络中断，正在重试… 交易已保存在网关。"))
            }
            @match view {
                View::Qr => {
                    @let code_url = order.code_url.clone().unwrap_or_default();
                    @let label = match lang {
                        Lang::En => format!("QR code to pay {total} with {wallet}"),
                        Lang::Zh => format!("用{wallet}支付 {total} 的二维码"),
                    };
                    div.qr-screen {
                        div.qr-box #qr data-code-url=(code_url) {
                            @if let Some(svg) = qr_svg(&code_url, &label) { (PreEscaped(svg)) }
                            details.qr-link {
                                summary { (lang.pick("The QR's link", "二维码链接")) }
                                p { code #code-url { (code_url) } }
                            }
                        }
                        div {
                            h1 #result { (match lang {
                                Lang::En => format!("Scan with {wallet} to pay"),
                                Lang::Zh => format!("请用{wallet}扫码支付"),
                            }) }
                            p.amount.countdown #amount { (total) }
                            @if let Some(expires) = order.expires_at {
                                @let left = (expires - now).num_seconds().max(0);
                                p { (lang.pick("Expires in", "剩余时间")) " "
                                    span.countdown #countdown data-seconds-left=(left) role="timer" {
                                        (left / 60) ":" (format!("{:02}", left % 60))
                                    }
                                }
                            }
                            p #qr-expired.notice.info hidden {
                                (lang.pick("The QR expired: it can no longer be paid. Waiting for the wallet to close it.",
                                    "二维码已过期，无法再支付。正在等待钱包关闭订单。"))
                            }
                            p.muted role="status" aria-live="polite" {
                                (lang.pick("Waiting for the customer to pay… this screen changes by itself.",
                                    "等待顾客支付… 页面会自动更新。"))
                            }
                            (facts(lang, session, order))
                            form.actions #cancel-form method="post" action=(cancel_url) {
                                input type="hidden" name="csrf" value=(session.csrf_token);
                                button.danger #cancel type="submit" name="then" value="stay" {
                                    (lang.pick("Cancel this QR", "取消此二维码")) }
                                button.secondary #new-sale type="submit" name="then" value="new-sale" {
                                    (lang.pick("New sale (cancels this QR)", "新交易（取消此二维码）")) }
                            }
                        }
                    }
                }
                View::Waiting => {
                    div.result.waiting {
                        div.spinner aria-hidden="true" {}
                        h1 #result role="status" aria-live="polite" {
                            @match order.status {
                                OrderStatus::Pending => (lang.pick("Waiting for the customer to confirm", "等待顾客确认")),
                                OrderStatus::Reversing => (lang.pick("Cancelling the payment", "正在撤销支付")),
                                _ => (lang.pick("Checking with the wallet", "正在向钱包确认")),
                            }
                        }
                        p.amount #amount { (total) }
                        p { @match order.status {
                            OrderStatus::Pending => (lang.pick("The customer enters their password on their phone. This screen changes by itself.",
                                "顾客正在手机上输入密码。页面会自动更新。")),
                            OrderStatus::Reversing => (lang.pick("The customer did not confirm in time: the payment is being reversed and will not be charged.",
                                "顾客未及时确认：正在撤销支付，不会扣款。")),
                            _ => (lang.pick("The wallet has not answered yet. Do not take another payment for this sale: this screen changes by itself.",
                                "钱包尚未答复。请勿为此交易重复收款，页面会自动更新。")),
                        } }
                        (facts(lang, session, order))
                        @if matches!(order.status, OrderStatus::Pending | OrderStatus::Unknown | OrderStatus::Paying) {
                            form.actions #cancel-form method="post" action=(cancel_url) {
                                input type="hidden" name="csrf" value=(session.csrf_token);
                                button.danger #cancel type="submit" name="then" value="stay" {
                                    (lang.pick("Cancel the payment", "撤销此支付")) }
                            }
                        }
                    }
                }
                View::Cancelling => {
                    div.result.waiting {
                        div.spinner aria-hidden="true" {}
                        h1 #result role="status" aria-live="polite" {
                            (lang.pick("Cancelling…", "正在取消…"))
                        }
                        p.amount #amount { (total) }
                        p #reason {
                            @if order.mode == PaymentMode::Active {
                                @let at = qrgate_engine::payable_until(order);
                                @if at > now {
                                    (match lang {
                                        Lang::En => format!("{wallet} does not close it at once: the QR is hidden, but a customer who scanned it could still pay until {} at the latest. If they do, every screen of the till says so at the top.", i18n::clock(tz, at)),
                                        Lang::Zh => format!("{wallet}无法立即关闭：二维码已隐藏，但已扫码的顾客最迟在 {} 前仍可能支付。如有支付，收银台每个页面顶部都会提示。", i18n::clock(tz, at)),
                                    })
                                } @else {
                                    (lang.pick("Closing the QR at the wallet. This screen changes by itself.",
                                        "正在钱包关闭二维码。页面会自动更新。"))
                                }
                            } @else {
                                (lang.pick("Reversing the payment at the wallet: the customer will not be charged. This screen changes by itself.",
                                    "正在钱包撤销支付：不会扣款。页面会自动更新。"))
                            }
                        }
                        (facts(lang, session, order))
                    }
                    div.actions { (new_sale_button(lang, true)) }
                }
                View::Paid => {
                    div.result.paid {
                        p.mark aria-hidden="true" { "✓" }
                        h1 #result { (lang.pick("Paid", "支付成功")) }
                        p.amount #amount { (total) }
                        (facts(lang, session, order))
                    }
                    div.actions {
                        (new_sale_button(lang, true))
                        a.button.secondary #receipt-80 href={ "/pos/orders/" (order.order_id) "/receipt?paper=80" } {
                            (lang.pick("Receipt (80 mm)", "小票 (80 mm)")) }
                        a.button.secondary #receipt-58 href={ "/pos/orders/" (order.order_id) "/receipt?paper=58" } {
                            (lang.pick("Receipt (58 mm)", "小票 (58 mm)")) }
                    }
                }
                View::Failed => {
                    div.result.failed {
                        p.mark aria-hidden="true" { "✗" }
                        h1 #result { (lang.pick("Payment failed", "支付失败")) }
                        p.amount #amount { (total) }
                        p #reason { @if order.mode == PaymentMode::Active {
                            (lang.pick("The wallet could not create the QR: nothing can be paid on it, nothing was charged.",
                                "钱包无法生成二维码：无法支付，未扣款。"))
                        } @else {
                            (i18n::decline_text(lang, order.decline_reason()))
                        } }
                        @if let Some(code) = &order.wallet_code {
                            p.muted { (lang.pick("Wallet's code", "钱包返回码")) ": " (code) }
                        }
                        (facts(lang, session, order))
                    }
                    div.actions { (new_sale_button(lang, true)) }
                }
                View::NotCharged => {
                    div.result.closed {
                        p.mark aria-hidden="true" { "–" }
                        h1 #result { @if order.cancel_requested_at.is_some() {
                            (lang.pick("Cancelled, nothing was charged", "已取消，未扣款"))
                        } @else if order.mode == PaymentMode::Active {
                            (lang.pick("QR expired, nothing was charged", "二维码已过期，未扣款"))
                        } @else {
                            (lang.pick("Payment cancelled, nothing was charged", "支付已撤销，未扣款"))
                        } }
                        p.amount #amount { (total) }
                        p #reason { @if order.cancel_requested_at.is_some() && order.mode == PaymentMode::Active {
                            (lang.pick("The QR was closed at the wallet: it can no longer be paid.",
                                "二维码已在钱包关闭，无法再支付。"))
                        } @else if order.cancel_requested_at.is_some() {
                            (lang.pick("The payment was reversed at the wallet.", "支付已在钱包撤销。"))
                        } @else if order.mode == PaymentMode::Active {
                            (lang.pick("Nobody paid the QR in time; it was closed at the wallet.",
                                "二维码在有效期内未被支付，已在钱包关闭。"))
                        } @else {
                            (lang.pick("The customer did not confirm in time, so the payment was reversed.",
                                "顾客未及时确认，支付已撤销。"))
                        } }
                        (facts(lang, session, order))
                    }
                    div.actions { (new_sale_button(lang, true)) }
                }
            }
        }
    }
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let (session, _) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return signed_out(&e),
    };
    let order = match find(&state, locale, &uri, &session, &order_id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let lang = locale.lang;
    let title = match view_of(&order) {
        View::Qr => lang.pick("Scan to pay", "扫码支付"),
        View::Waiting => lang.pick("Waiting", "等待中"),
        View::Paid => lang.pick("Paid", "支付成功"),
        View::Failed => lang.pick("Payment failed", "支付失败"),
        View::NotCharged => lang.pick("Not charged", "未扣款"),
        View::Cancelling => lang.pick("Cancelling", "正在取消"),
    };
    let late = super::late::notices(&state, lang, &session).await;
    let mut page = Page::new(locale, title, Some(&session)).late(late);
    if view_of(&order) == View::Qr {
        page = page.open_order(order.order_id.as_str().to_owned());
    }
    page.render(&uri, body(lang, &session, &order, state.engine.now()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CancelForm {
    #[serde(default)]
    csrf: String,
    /// `new-sale`: then the sale screen (unless it was paid); `leave`: the page is going
    /// away (its script's beacon), answered with no content; else the sale's page.
    #[serde(default)]
    then: String,
}

/// `POST /pos/orders/{order_id}/cancel`: cancels the sale through the engine (a QR closed at
/// its wallet, a waiting code payment reversed), then shows how it stands.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<CancelForm>,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let (session, _) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return signed_out(&e),
    };
    if !super::csrf_ok(&session, &f.csrf) {
        return super::csrf_refused(locale, &session, &uri);
    }
    let Ok(id) = MerchantOrderId::parse(order_id.trim()) else {
        return not_found(locale, &uri, &session);
    };
    let by = session.operator.id.as_str().to_owned();
    match state.engine.cancel_order(&session.merchant, &id, &by).await {
        Ok(done) => match (f.then.as_str(), done.outcome) {
            ("leave", _) => StatusCode::NO_CONTENT.into_response(),
            ("new-sale", outcome) if outcome != CancelOutcome::Paid => super::see_other("/pos"),
            _ => super::see_other(&format!("/pos/orders/{id}")),
        },
        Err(CancelError::NotFound) => not_found(locale, &uri, &session),
        Err(CancelError::Engine(e)) => unavailable(locale, &uri, &session, &e.to_string()),
    }
}

/// `{"status": "pending", "final": false}`: what the open order page polls. 401 once the
/// session ended (the page then goes to the sign-in screen).
pub(crate) async fn status(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match session_of(&state, &headers).await {
        Ok((s, _)) => s,
        Err(e) => {
            let expired = matches!(e, qrgate_engine::SessionError::Expired);
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": if expired { "session_expired" } else { "signed_out" }})),
            )
                .into_response();
        }
    };
    let Ok(order_id) = MerchantOrderId::parse(&order_id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "not_found"})),
        )
            .into_response();
    };
    match state.engine.find_order(&session.merchant, &order_id).await {
        Ok(Some(order)) => Json(serde_json::json!({
            "status": order.status.as_str(),
            "final": order.status.is_final(),
        }))
        .into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "not_found"})),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "till status could not be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"error": "unavailable"})),
            )
                .into_response()
        }
    }
}
