//! Late payments: a sale someone cancelled (or left) that the customer paid all the same,
//! before its wallet closed it. Every till page of the merchant shows them at the top until
//! someone refunds or keeps each one; the script asks `/pos/late-payments` every few seconds
//! so that one paid while the till shows another screen appears without a reload.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use qrgate_domain::{MerchantOrderId, Order, RefundStatus};
use qrgate_engine::{LatePaymentAction, LatePaymentError, TillSession};
use serde::Deserialize;

use super::i18n::{self, Lang, Locale};
use super::layout::{notice, Page};
use super::{csrf_ok, csrf_refused, session_of, signed_out};
use crate::AppState;

/// The late payments of the session's merchant, as the top of a page shows them (empty
/// when there are none, or when they cannot be read: logged, and the page is still served).
pub(crate) async fn notices(state: &AppState, lang: Lang, session: &TillSession) -> Markup {
    match state.engine.late_payments(&session.merchant).await {
        Ok(orders) => render(state, lang, session, &orders),
        Err(e) => {
            tracing::error!(error = %e, "late payments could not be read");
            html! {}
        }
    }
}

fn render(state: &AppState, lang: Lang, session: &TillSession, orders: &[Order]) -> Markup {
    let tz = session.merchant.time_zone;
    html! {
        @for o in orders {
            @let refund_id = state.engine.new_till_order_id('R').map(|id| id.as_str().to_owned()).unwrap_or_default();
            @let amount = i18n::money(lang, o.total());
            div.notice.error.late role="alert" data-order-id=(o.order_id) {
                p.title { (match lang {
                    Lang::En => format!("A cancelled sale was paid after all: {amount}."),
                    Lang::Zh => format!("已取消的交易仍被支付：{amount}。"),
                }) }
                p { (match lang {
                    Lang::En => format!("Sale {} ({}, started {}). If the customer paid for it another way, refund it; if not, keep it.",
                        o.order_id, i18n::wallet_name(lang, o.wallet), i18n::clock(tz, o.created_at)),
                    Lang::Zh => format!("交易 {}（{}，发起于 {}）。如顾客已用其他方式付款，请退款；否则保留。",
                        o.order_id, i18n::wallet_name(lang, o.wallet), i18n::clock(tz, o.created_at)),
                }) }
                form.actions method="post" action={ "/pos/orders/" (o.order_id) "/late-payment" } {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    input type="hidden" name="refund_id" value=(refund_id);
                    button.late-refund type="submit" name="action" value="refund" {
                        (match lang { Lang::En => format!("Refund {amount}"), Lang::Zh => format!("退款 {amount}") }) }
                    button.secondary.late-keep type="submit" name="action" value="keep" {
                        (lang.pick("Keep the payment", "保留此付款")) }
                }
            }
        }
    }
}

/// `GET /pos/late-payments`: the notices alone, for the script to put at the top of the page.
pub(crate) async fn fragment(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let Ok((session, _)) = session_of(&state, &headers).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let markup = notices(&state, locale.lang, &session).await;
    let mut response = markup.into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct LateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    refund_id: String,
}

/// `POST /pos/orders/{order_id}/late-payment`: refund it (in full: what is left of it) or
/// keep it; either is recorded with the operator, and the notice goes away.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<LateForm>,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let lang = locale.lang;
    let (session, _) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return signed_out(&e),
    };
    if !csrf_ok(&session, &f.csrf) {
        return csrf_refused(locale, &session, &uri);
    }
    let order_id = MerchantOrderId::parse(order_id.trim()).ok();
    let action = match (
        f.action.as_str(),
        MerchantOrderId::parse(f.refund_id.trim()),
    ) {
        ("keep", _) => Some(LatePaymentAction::Keep),
        ("refund", Ok(refund_order_id)) => Some(LatePaymentAction::Refund { refund_order_id }),
        _ => None,
    };
    let operator = session.operator.id.as_str().to_owned();
    let result = match (order_id, action) {
        (Some(order_id), Some(action)) => {
            let keep = matches!(action, LatePaymentAction::Keep);
            state
                .engine
                .resolve_late_payment(&session.merchant, &order_id, action, &operator)
                .await
                .map(|refund| (keep, refund))
        }
        _ => Err(LatePaymentError::NotFound),
    };
    let (status, message) = match &result {
        Ok((true, _)) => (
            StatusCode::OK,
            notice(
                "ok",
                "late-result",
                lang.pick("The payment is kept.", "已保留此付款。"),
                "",
            ),
        ),
        Ok((false, Some(view))) if view.refund.status == RefundStatus::Failed => (
            StatusCode::OK,
            notice(
                "error",
                "late-result",
                lang.pick(
                    "The refund failed: nothing was refunded. The notice stays until it is refunded or kept.",
                    "退款失败：未退款。提醒会保留，直至退款或保留。",
                ),
                view.refund.wallet_code.as_deref().unwrap_or(""),
            ),
        ),
        Ok((false, Some(view))) if view.refund.status != RefundStatus::Succeeded => {
            let amount = i18n::money(lang, view.refund.amount);
            (
                StatusCode::ACCEPTED,
                notice(
                    "info",
                    "late-result",
                    &match lang {
                        Lang::En => format!("Refund of {amount} sent: the wallet is processing it."),
                        Lang::Zh => format!("已提交退款 {amount}：钱包处理中。"),
                    },
                    lang.pick(
                        "It finishes by itself; Today's sales shows when it is done.",
                        "退款会自动完成；完成后在今日交易中显示。",
                    ),
                ),
            )
        }
        Ok((false, refund)) => {
            let title = match (lang, refund) {
                (Lang::En, Some(v)) => format!("Refunded {}.", i18n::money(lang, v.refund.amount)),
                (Lang::Zh, Some(v)) => format!("已退款 {}。", i18n::money(lang, v.refund.amount)),
                (_, None) => lang
                    .pick("The sale was refunded already.", "此交易已退款。")
                    .to_owned(),
            };
            (
                StatusCode::OK,
                notice(
                    "ok",
                    "late-result",
                    &title,
                    lang.pick(
                        "The money goes back to the customer's wallet.",
                        "款项将退回顾客的钱包。",
                    ),
                ),
            )
        }
        Err(LatePaymentError::NotFound) => (
            StatusCode::NOT_FOUND,
            notice(
                "error",
                "late-result",
                lang.pick(
                    "There is no such late payment, or it was decided already.",
                    "没有这笔迟到付款，或已处理。",
                ),
                "",
            ),
        ),
        Err(LatePaymentError::Refund(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            notice(
                "error",
                "late-result",
                &super::today::refusal_text(lang, e),
                "",
            ),
        ),
        Err(LatePaymentError::Engine(e)) => {
            tracing::error!(error = %e, "late payment could not be decided");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                notice(
                    "error",
                    "late-result",
                    lang.pick(
                        "The gateway could not do it right now: nothing was done, try again.",
                        "网关暂时无法处理：未执行任何操作，请重试。",
                    ),
                    "",
                ),
            )
        }
    };
    let late = notices(&state, lang, &session).await;
    let body = html! {
        h1 { (lang.pick("Late payment", "迟到付款")) }
        (message)
        div.actions {
            a.button #back-to-sale href="/pos" autofocus { (lang.pick("New sale", "新交易")) }
            a.button.secondary href="/pos/today" { (lang.pick("Today's sales", "今日交易")) }
        }
    };
    Page::new(
        locale,
        lang.pick("Late payment", "迟到付款"),
        Some(&session),
    )
    .status(status)
    .late(late)
    .render(&uri, body)
}
