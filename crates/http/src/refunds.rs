//! REFUND and REFUND_QUERY (`ottpay.md` §5.4, §5.5, §11.15; shape provisional, documented in
//! docs/API.md) over the engine's refunds.

use qrgate_domain::{Merchant, MerchantOrderId, Money, RefundState, RefundStatus};
use qrgate_engine::{RefundError, RefundOrder, RefundView};
use qrgate_ottpay::{Cents, RefundQueryRequest, RefundRequest, RefundResponse, RspCode};
use serde_json::Value;

use crate::ottpay::{Answer, Authenticated, Refusal};
use crate::payments::{cents, engine_failure, wire_status_of};
use crate::AppState;

/// The refund's own `order_status`: `success` (money returned), `processing` (accepted, the
/// wallet is finishing it) or `failure` (nothing refunded).
fn refund_status_text(s: RefundStatus) -> &'static str {
    match s {
        RefundStatus::Succeeded => "success",
        RefundStatus::Processing => "processing",
        RefundStatus::Failed => "failure",
    }
}

/// The response data: the §11.15 shape, plus the original order's status, what is refunded
/// on it in all, and when this refund finished.
fn refund_data(view: &RefundView, merchant: &Merchant) -> qrgate_ottpay::Data {
    let RefundView { refund, order } = view;
    let mut data = RefundResponse {
        order_id: refund.refund_order_id.as_str().to_owned(),
        ori_order_id: order.order_id.as_str().to_owned(),
        refund_amt: cents(refund.amount),
        order_status: refund_status_text(refund.status).to_owned(),
    }
    .to_data();
    let mut put = |k: &str, v: String| {
        data.insert(k.to_owned(), Value::String(v));
    };
    put(
        "ori_order_status",
        wire_status_of(order).as_str().to_owned(),
    );
    put("refund_amount", cents(order.refunded).0.to_string());
    put(
        "refundable_amt",
        Cents(u64::try_from(order.refundable().minor()).unwrap_or(0))
            .0
            .to_string(),
    );
    if let Some(at) = refund
        .finished_at
        .filter(|_| refund.status == RefundStatus::Succeeded)
    {
        put("refund_time", merchant.time_zone.wire_time(at));
    }
    data
}

/// What a cashier should read about a refund that is not done.
fn refund_message(view: &RefundView) -> String {
    let r = &view.refund;
    match r.status {
        RefundStatus::Succeeded => "success".to_owned(),
        RefundStatus::Processing => {
            "refund accepted; the wallet is finishing it: ask again with REFUND_QUERY".to_owned()
        }
        RefundStatus::Failed => {
            let code: String = r
                .wallet_code
                .as_deref()
                .unwrap_or("")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .collect();
            let reason = match code.as_str() {
                "NOTENOUGH" | "ACQ.SELLER_BALANCE_NOT_ENOUGH" => {
                    "refund refused: the merchant's wallet balance is too low"
                }
                "TRADE_OVERDUE" | "ACQ.TRADE_HAS_FINISHED" => {
                    "refund refused: the payment is too old to refund"
                }
                _ => "refund refused by the wallet; nothing was refunded",
            };
            if code.is_empty() {
                reason.to_owned()
            } else {
                format!("{reason} ({code})")
            }
        }
    }
}

fn answer(view: &RefundView, request: &Authenticated) -> Answer {
    let data = refund_data(view, &request.merchant);
    let message = refund_message(view);
    match view.refund.status {
        RefundStatus::Succeeded => Answer::Success {
            data,
            key: request.key.clone(),
        },
        RefundStatus::Processing => Answer::Data {
            code: RspCode::Processing,
            message,
            data,
            key: request.key.clone(),
        },
        RefundStatus::Failed => Answer::Data {
            code: RspCode::Fail,
            message,
            data,
            key: request.key.clone(),
        },
    }
}

/// REFUND: refund some or all of a paid order.
pub(crate) async fn refund(state: &AppState, request: &Authenticated) -> Answer {
    let refuse = |code, msg: String| Answer::Refused(Refusal::new(code, msg, &request.key));
    let req = match RefundRequest::from_data(&request.data) {
        Ok(r) => r,
        Err(e) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    let refund_order_id = match req.order_id.as_deref().map(MerchantOrderId::parse) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    let Ok(ori_order_id) = MerchantOrderId::parse(&req.ori_order_id) else {
        return refuse(RspCode::ParamInvalid, "unknown ori_order_id".into());
    };
    let Ok(minor) = i64::try_from(req.refund_amt.0) else {
        return refuse(RspCode::ParamInvalid, "refund_amt is too large".into());
    };
    let order = RefundOrder {
        merchant: request.merchant.clone(),
        refund_order_id,
        ori_order_id,
        amount: Money::new(minor, request.merchant.currency),
        operator_id: None,
        approved_by: None,
    };
    match state.engine.refund(order).await {
        Ok(view) => answer(&view, request),
        Err(RefundError::OrderNotFound(id)) => {
            refuse(RspCode::ParamInvalid, format!("unknown ori_order_id {id}"))
        }
        Err(e @ RefundError::NotPaid { .. }) => refuse(RspCode::Fail, e.to_string()),
        Err(RefundError::Exceeds { asked, refundable }) => refuse(
            RspCode::ParamInvalid,
            format!(
                "refund_amt {} exceeds the refundable amount {} (the payment less refunds done or in progress)",
                asked.minor(),
                refundable.minor()
            ),
        ),
        Err(e @ RefundError::OrderUsed(_)) => refuse(RspCode::OrderUsed, e.to_string()),
        Err(e @ RefundError::NotEnabled(_)) => refuse(RspCode::Fail, e.to_string()),
        Err(RefundError::Invalid(msg)) => refuse(RspCode::ParamInvalid, msg),
        Err(e @ (RefundError::WrongCurrency(_) | RefundError::AmountOutOfRange { .. })) => {
            refuse(RspCode::ParamInvalid, e.to_string())
        }
        Err(RefundError::Engine(e)) => engine_failure(request, &e),
    }
}

/// REFUND_QUERY: where a refund stands, by its refund order id.
pub(crate) async fn refund_query(state: &AppState, request: &Authenticated) -> Answer {
    let refuse = |code, msg: String| Answer::Refused(Refusal::new(code, msg, &request.key));
    let req = match RefundQueryRequest::from_data(&request.data) {
        Ok(r) => r,
        Err(e) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    let Ok(id) = MerchantOrderId::parse(&req.order_id) else {
        return refuse(RspCode::ParamInvalid, "unknown refund order_id".into());
    };
    match state.engine.find_refund(&request.merchant, &id).await {
        // The query itself succeeded; the refund's state is in `order_status`.
        Ok(Some(view)) => Answer::Success {
            data: refund_data(&view, &request.merchant),
            key: request.key.clone(),
        },
        Ok(None) => refuse(
            RspCode::ParamInvalid,
            format!("unknown refund order_id {id}"),
        ),
        Err(RefundError::Engine(e)) => engine_failure(request, &e),
        Err(e) => refuse(RspCode::Fail, e.to_string()),
    }
}

/// Whether the order shows refunds (for STATUS_QUERY's `refund_amount`).
pub(crate) fn refunded_amount(order: &qrgate_domain::Order) -> Option<Cents> {
    (order.refund_state() != RefundState::None).then(|| cents(order.refunded))
}
