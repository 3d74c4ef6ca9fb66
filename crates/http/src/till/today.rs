//! Today's sales (the merchant's day, in its time zone), every state included, with a
//! receipt link and, for paid sales with something left, a refund form.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::html;
use qrgate_domain::Order;
use qrgate_domain::{Money, OrderStatus, RefundStatus};
use qrgate_engine::{ApprovalError, RefundError, RefundOrder, TillSession};
use serde::Deserialize;

use super::i18n::{self, Lang, Locale};
use super::layout::{notice, Page};
use super::order::{find, unavailable};
use super::{csrf_ok, csrf_refused, session_of, signed_out};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct RefundForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    refund_id: String,
    #[serde(default)]
    supervisor: String,
    #[serde(default)]
    supervisor_pin: String,
}

/// A short fingerprint of the day's sales as the list shows them (each sale's state and
/// refunds): the page's script asks for it every few seconds and reloads the list when it
/// changes, so a payment or a refund that finishes shows without a reload by hand.
fn day_state(orders: &[Order]) -> String {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same list gives the same value on every node.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for o in orders {
        (
            o.order_id.as_str(),
            o.status.as_str(),
            o.refunded.minor(),
            o.refund_reserved.minor(),
        )
            .hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// `GET /pos/today/state`: `{"state": "…"}`, the fingerprint of today's list.
pub(crate) async fn state(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Ok((session, _)) = session_of(&state, &headers).await else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "signed_out"})),
        )
            .into_response();
    };
    let merchant = &session.merchant;
    let day = state.engine.merchant_day(merchant, state.engine.now());
    match state.engine.orders_of_day(merchant, day).await {
        Ok(orders) => axum::Json(serde_json::json!({"state": day_state(&orders)})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "today's state could not be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"error": "unavailable"})),
            )
                .into_response()
        }
    }
}

pub(crate) async fn page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let lang = locale.lang;
    let (session, _) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return signed_out(&e),
    };
    let merchant = &session.merchant;
    let day = state.engine.merchant_day(merchant, state.engine.now());
    let orders = match state.engine.orders_of_day(merchant, day).await {
        Ok(o) => o,
        Err(e) => return unavailable(locale, &uri, &session, &e.to_string()),
    };
    let tz = merchant.time_zone;
    let paid: Vec<_> = orders
        .iter()
        .filter(|o| o.status == OrderStatus::Paid)
        .collect();
    let takings = paid.iter().fold(0i64, |sum, o| {
        sum.saturating_add(o.total().minor())
            .saturating_sub(o.refunded.minor())
    });
    let body = html! {
        h1 { (lang.pick("Today's sales", "今日交易")) " · " (day.format("%Y-%m-%d").to_string()) }
        p { a.button.secondary #z-report-link href="/pos/z-report" { (lang.pick("Day's close (Z report)", "日结报表")) } }
        div #day hidden data-state-url="/pos/today/state" data-state=(day_state(&orders)) {}
        p #takings { (match lang {
            Lang::En => format!("{} paid, {} taken (after refunds).", paid.len(),
                i18n::money(lang, Money::new(takings, merchant.currency))),
            Lang::Zh => format!("已支付 {} 笔，实收 {}（已扣除退款）。", paid.len(),
                i18n::money(lang, Money::new(takings, merchant.currency))),
        }) }
        @if orders.is_empty() {
            p.muted #no-sales { (lang.pick("No sales yet today.", "今天还没有交易。")) }
        } @else {
            table #sales {
                thead { tr {
                    th scope="col" { (lang.pick("Time", "时间")) }
                    th scope="col" { (lang.pick("Sale", "交易号")) }
                    th.num scope="col" { (lang.pick("Total", "金额")) }
                    th scope="col" { (lang.pick("Wallet", "钱包")) }
                    th scope="col" { (lang.pick("Status", "状态")) }
                    th.num scope="col" { (lang.pick("Refunded", "已退款")) }
                    th scope="col" { (lang.pick("Actions", "操作")) }
                } }
                tbody {
                    @for o in &orders {
                        tr data-order-id=(o.order_id) data-status=(o.status.as_str()) {
                            td { time datetime=(i18n::iso_time(tz, o.created_at)) { (i18n::clock(tz, o.created_at)) } }
                            td { a href={ "/pos/orders/" (o.order_id) } { (o.order_id) } }
                            td.num { (i18n::money(lang, o.total())) }
                            td { (i18n::wallet_name(lang, o.wallet)) }
                            td.status {
                                (i18n::status_name(lang, o.status))
                                @if o.status == OrderStatus::Failed {
                                    br; span.muted.reason { (i18n::decline_text(lang, o.decline_reason())) }
                                }
                            }
                            td.num.refunded {
                                @if o.refunded.minor() > 0 { (i18n::money(lang, o.refunded)) }
                                @if o.refund_reserved.minor() > o.refunded.minor() {
                                    br; span.muted { (lang.pick("refund in progress", "退款处理中")) }
                                }
                            }
                            td {
                                a href={ "/pos/orders/" (o.order_id) "/receipt?paper=80" } { (lang.pick("Receipt", "小票")) }
                                @if o.status == OrderStatus::Paid && o.refundable().minor() > 0 {
                                    " · "
                                    a id={ "refund-" (o.order_id) } href={ "/pos/orders/" (o.order_id) "/refund" } {
                                        (lang.pick("Refund…", "退款…")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let late = super::late::notices(&state, lang, &session).await;
    Page::new(
        locale,
        lang.pick("Today's sales", "今日交易"),
        Some(&session),
    )
    .late(late)
    .render(&uri, body)
}

pub(crate) fn refusal_text(lang: Lang, e: &RefundError) -> String {
    match e {
        RefundError::Exceeds { refundable, .. } => match lang {
            Lang::En => format!(
                "That is more than is left to refund: at most {}.",
                i18n::money(lang, *refundable)
            ),
            Lang::Zh => format!("超过可退金额：最多 {}。", i18n::money(lang, *refundable)),
        },
        RefundError::NotPaid { .. } => lang
            .pick(
                "This sale was not paid: there is nothing to refund.",
                "此交易未支付，无可退款。",
            )
            .into(),
        RefundError::OrderNotFound(_) => {
            lang.pick("There is no such sale.", "没有这笔交易。").into()
        }
        RefundError::OrderUsed(_) => lang
            .pick(
                "This refund form was already used: open Today's sales again.",
                "此退款表单已使用，请重新打开今日交易。",
            )
            .into(),
        RefundError::NotEnabled(w) => match lang {
            Lang::En => format!(
                "{} refunds are not enabled on this gateway.",
                i18n::wallet_name(lang, *w)
            ),
            Lang::Zh => format!("此网关未启用{}退款。", i18n::wallet_name(lang, *w)),
        },
        RefundError::AmountOutOfRange { max } => match lang {
            Lang::En => format!(
                "The amount is more than one refund can be: at most {}.",
                i18n::money(lang, *max)
            ),
            Lang::Zh => format!("退款金额超过上限：最多 {}。", i18n::money(lang, *max)),
        },
        RefundError::WrongCurrency(c) => match lang {
            Lang::En => format!("A refund is in the merchant's currency, {}.", c.code()),
            Lang::Zh => format!("退款须使用商户币种 {}。", c.code()),
        },
        RefundError::Invalid(msg) => {
            tracing::error!(error = %msg, "till refund refused by the engine");
            lang.pick(
                "The gateway could not take the refund right now. Nothing was refunded: try again.",
                "网关暂时无法处理退款。未退款，请重试。",
            )
            .into()
        }
        RefundError::Engine(err) => {
            tracing::error!(error = %err, "till refund could not be started");
            lang.pick(
                "The gateway could not take the refund right now. Nothing was refunded: try again.",
                "网关暂时无法处理退款。未退款，请重试。",
            )
            .into()
        }
    }
}

pub(crate) async fn refund(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<RefundForm>,
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
    let order = match find(&state, locale, &uri, &session, &order_id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let amount = i18n::parse_amount(&f.amount).filter(|a| *a > 0);
    let Some(refund_id) = qrgate_domain::MerchantOrderId::parse(f.refund_id.trim()).ok() else {
        let text = lang.pick(
            "This refund form is out of date: open the sale's refund again.",
            "此退款表单已失效，请重新打开此交易的退款。",
        );
        return refund_form(
            &state,
            locale,
            &uri,
            &session,
            &order,
            &f.amount,
            Some(text.into()),
        )
        .await;
    };
    let Some(amount) = amount else {
        let text = if f.amount.trim().is_empty() || i18n::parse_amount(&f.amount) == Some(0) {
            lang.pick(
                "Enter the amount to refund, like 5.00.",
                "请输入退款金额，如 5.00。",
            )
            .to_owned()
        } else {
            super::sale::amount_problem(lang, &f.amount, session.merchant.currency)
        };
        return refund_form(
            &state,
            locale,
            &uri,
            &session,
            &order,
            &f.amount,
            Some(text),
        )
        .await;
    };
    let amount = Money::new(amount, session.merchant.currency);
    // Above the merchant's limit, a supervisor approves on this screen with their PIN.
    let limit = match state.engine.refund_approval_above(&session.merchant).await {
        Ok(l) => l,
        Err(e) => return unavailable(locale, &uri, &session, &e.to_string()),
    };
    let mut approved_by = None;
    if amount.minor() > limit.minor() {
        let refused = if f.supervisor.trim().is_empty() || f.supervisor_pin.is_empty() {
            Some(lang.pick(
                "This refund needs a supervisor's approval: they type their operator id and PIN below.",
                "此退款需主管批准：请主管在下方输入收银员编号和 PIN。",
            ).to_owned())
        } else {
            match state
                .engine
                .approve_refund(&session.merchant, &f.supervisor, &f.supervisor_pin)
                .await
            {
                Ok(id) => {
                    approved_by = Some(id.as_str().to_owned());
                    None
                }
                Err(e) => Some(approval_text(lang, &e)),
            }
        };
        if let Some(text) = refused {
            return refund_form(
                &state,
                locale,
                &uri,
                &session,
                &order,
                &f.amount,
                Some(text),
            )
            .await;
        }
    }
    let result = state
        .engine
        .refund(RefundOrder {
            merchant: session.merchant.clone(),
            refund_order_id: Some(refund_id),
            ori_order_id: order.order_id.clone(),
            amount,
            operator_id: Some(session.operator.id.as_str().to_owned()),
            approved_by: approved_by.clone(),
        })
        .await
        .map_err(|e| refusal_text(lang, &e));
    let (status, message) = match &result {
        Ok(view) => {
            let amount = i18n::money(lang, view.refund.amount);
            match view.refund.status {
                RefundStatus::Succeeded => (
                    StatusCode::OK,
                    notice(
                        "ok",
                        "refund-result",
                        &match lang {
                            Lang::En => format!("Refunded {amount}."),
                            Lang::Zh => format!("已退款 {amount}。"),
                        },
                        lang.pick(
                            "The money goes back to the customer's wallet.",
                            "款项将退回顾客的钱包。",
                        ),
                    ),
                ),
                RefundStatus::Processing => (
                    StatusCode::ACCEPTED,
                    notice(
                        "info",
                        "refund-result",
                        &match lang {
                            Lang::En => {
                                format!("Refund of {amount} sent: the wallet is processing it.")
                            }
                            Lang::Zh => format!("已提交退款 {amount}：钱包处理中。"),
                        },
                        lang.pick(
                            "It finishes by itself; Today's sales shows when it is done.",
                            "退款会自动完成；完成后在今日交易中显示。",
                        ),
                    ),
                ),
                RefundStatus::Failed => (
                    StatusCode::OK,
                    notice(
                        "error",
                        "refund-result",
                        &match lang {
                            Lang::En => format!("Refund of {amount} failed: nothing was refunded."),
                            Lang::Zh => format!("退款 {amount} 失败：未退款。"),
                        },
                        &format!(
                            "{} {}",
                            view.refund.wallet_message.as_deref().unwrap_or(""),
                            view.refund
                                .wallet_code
                                .as_deref()
                                .map(|c| format!("({c})"))
                                .unwrap_or_default()
                        ),
                    ),
                ),
            }
        }
        Err(text) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            notice("error", "refund-result", text, ""),
        ),
    };
    let body = html! {
        h1 { (lang.pick("Refund", "退款")) " · " (order.order_id) }
        (message)
        @if result.is_ok() {
            p #refund-people {
                (lang.pick("Asked by", "申请人")) " " (session.operator.id)
                @if let Some(by) = &approved_by {
                    " · " (lang.pick("approved by", "批准人")) " " (by)
                }
            }
        }
        div.actions {
            a.button #back-to-today href="/pos/today" autofocus { (lang.pick("Today's sales", "今日交易")) }
            a.button.secondary href={ "/pos/orders/" (order.order_id) "/receipt?paper=80" } { (lang.pick("Receipt", "小票")) }
        }
    };
    Page::new(locale, lang.pick("Refund", "退款"), Some(&session))
        .status(status)
        .render(&uri, body)
}

pub(crate) fn approval_text(lang: Lang, e: &ApprovalError) -> String {
    match e {
        ApprovalError::WrongCredentials => lang
            .pick(
                "Supervisor id or PIN is wrong: nothing was refunded.",
                "主管编号或 PIN 错误：未退款。",
            )
            .into(),
        ApprovalError::Locked { .. } => lang
            .pick(
                "Too many wrong PINs for this operator id: try again later, or ask another supervisor. Nothing was refunded.",
                "此收银员编号 PIN 错误次数过多：请稍后重试或请其他主管批准。未退款。",
            )
            .into(),
        ApprovalError::NotSupervisor => lang
            .pick(
                "This operator cannot approve refunds: a supervisor must. Nothing was refunded.",
                "此收银员无权批准退款，须由主管批准。未退款。",
            )
            .into(),
        ApprovalError::Busy => lang
            .pick(
                "Too many PIN checks right now: try again in a moment. Nothing was refunded.",
                "PIN 验证繁忙，请稍后重试。未退款。",
            )
            .into(),
        ApprovalError::Engine(err) => {
            tracing::error!(error = %err, "refund approval could not be checked");
            lang.pick(
                "The gateway could not check the approval right now. Nothing was refunded: try again.",
                "网关暂时无法验证批准。未退款，请重试。",
            )
            .into()
        }
    }
}

/// `GET /pos/orders/{order_id}/refund`: the sale's refund screen.
pub(crate) async fn refund_page(
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
    refund_form(&state, locale, &uri, &session, &order, "", None).await
}

/// The refund screen: the sale, what was refunded and what is left, an amount to type
/// (nothing filled in), and the supervisor's id and PIN when the amount needs approval.
async fn refund_form(
    state: &AppState,
    locale: Locale,
    uri: &Uri,
    session: &TillSession,
    order: &Order,
    typed: &str,
    error: Option<String>,
) -> Response {
    let lang = locale.lang;
    let limit = match state.engine.refund_approval_above(&session.merchant).await {
        Ok(l) => l,
        Err(e) => return unavailable(locale, uri, session, &e.to_string()),
    };
    let refund_id = match state.engine.new_till_order_id('R') {
        Ok(id) => id.as_str().to_owned(),
        Err(e) => return unavailable(locale, uri, session, &e.to_string()),
    };
    let currency = session.merchant.currency;
    let refundable = order.refundable();
    let can_refund = order.status == OrderStatus::Paid && refundable.minor() > 0;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { (lang.pick("Refund", "退款")) " · " (order.order_id) }
        @if let Some(text) = &error {
            (notice("error", "refund-error", text, ""))
        }
        dl.facts {
            dt { (lang.pick("Sale", "交易")) } dd #refund-sale-total { (i18n::money(lang, order.total())) " · " (i18n::wallet_name(lang, order.wallet)) }
            dt { (lang.pick("Refunded so far", "已退款")) } dd #refund-done { (i18n::money(lang, order.refunded)) }
            dt { (lang.pick("Left to refund", "可退金额")) } dd #refundable { (i18n::money(lang, refundable)) }
        }
        @if can_refund {
            form #refund-form method="post" action={ "/pos/orders/" (order.order_id) "/refund" } autocomplete="off" {
                input type="hidden" name="csrf" value=(session.csrf_token);
                input type="hidden" name="refund_id" value=(refund_id);
                label for="refund-amount" { (lang.pick("Amount to refund", "退款金额")) " (" (currency.code()) ")" }
                input.big #refund-amount name="amount" inputmode="decimal" value=(typed) placeholder="0.00" required autofocus;
                fieldset #approval {
                    legend { (lang.pick("Supervisor's approval", "主管批准")) }
                    p.muted { @if limit.minor() == 0 {
                        (lang.pick("Every refund needs a supervisor: they type their operator id and PIN here.",
                            "每笔退款都需主管批准：请主管在此输入收银员编号和 PIN。"))
                    } @else {
                        (match lang {
                            Lang::En => format!("Refunds above {} need a supervisor: they type their operator id and PIN here.", i18n::money(lang, limit)),
                            Lang::Zh => format!("超过 {} 的退款需主管批准：请主管在此输入收银员编号和 PIN。", i18n::money(lang, limit)),
                        })
                    } }
                    label for="supervisor" { (lang.pick("Supervisor's operator id", "主管收银员编号")) }
                    input #supervisor name="supervisor" inputmode="numeric" autocomplete="off";
                    label for="supervisor-pin" { (lang.pick("Supervisor's PIN", "主管 PIN")) }
                    input #supervisor-pin name="supervisor_pin" type="password" inputmode="numeric" autocomplete="off";
                }
                div.actions {
                    button.danger #confirm-refund type="submit" { (lang.pick("Refund", "退款")) }
                    a.button.secondary href="/pos/today" { (lang.pick("Back", "返回")) }
                }
            }
        } @else {
            p.muted #nothing-to-refund { (lang.pick("Nothing is left to refund on this sale.", "此交易已无可退金额。")) }
        }
    };
    Page::new(locale, lang.pick("Refund", "退款"), Some(session))
        .status(status)
        .render(uri, body)
}
