//! PASSIVEPAY and STATUS_QUERY (`ottpay.md` §5.2, §5.3, §7) over the engine's payments.

use qrgate_domain::{
    Currency, DeclineReason, MerchantOrderId, Money, Order, OrderStatus, RefundState, Wallet,
};
use qrgate_engine::{CodePayment, EngineError, PaymentError, QrPayment};
use qrgate_ottpay::{
    ActivePayRequest, ActivePayResponse, BizType, Cents, OrderStatus as WireStatus,
    PassivePayRequest, PassivePayResponse, RspCode, StatusQueryRequest, StatusQueryResponse,
};

use crate::ottpay::{Answer, Authenticated, Refusal};
use crate::AppState;

fn wallet_of(biz: BizType) -> Wallet {
    match biz {
        BizType::WechatPay => Wallet::WechatPay,
        BizType::Alipay => Wallet::Alipay,
        BizType::UnionPay => Wallet::UnionPay,
    }
}

fn biz_name(w: Wallet) -> &'static str {
    match w {
        Wallet::WechatPay => "WECHATPAY",
        Wallet::Alipay => "ALIPAY",
        Wallet::UnionPay => "UNIONPAY",
    }
}

pub(crate) fn cents(m: Money) -> Cents {
    Cents(u64::try_from(m.minor()).unwrap_or(0))
}

/// The §7 status a POS understands.
fn wire_status(s: OrderStatus) -> WireStatus {
    match s {
        OrderStatus::Paying | OrderStatus::Pending | OrderStatus::Unknown => WireStatus::NotPay,
        OrderStatus::Reversing => WireStatus::Canceling,
        OrderStatus::Paid => WireStatus::Success,
        OrderStatus::Failed => WireStatus::Failure,
        OrderStatus::Reversed | OrderStatus::Closed => WireStatus::OrderClosed,
    }
}

/// The §7 status of an order, refunds included: a paid order shows `partial_refunded` or
/// `fully_refunded` once refunds are done.
pub(crate) fn wire_status_of(order: &Order) -> WireStatus {
    match order.refund_state() {
        RefundState::None => wire_status(order.status),
        RefundState::Partial => WireStatus::PartialRefunded,
        RefundState::Full => WireStatus::FullyRefunded,
    }
}

/// What a cashier should read for a declined payment; the wallet's code follows in brackets.
fn decline_message(order: &Order) -> String {
    let code = order.wallet_code.as_deref().unwrap_or("");
    let reason = match order.decline_reason() {
        DeclineReason::CodeExpired => "payment code expired: ask the customer to refresh it",
        DeclineReason::CodeInvalid => {
            "payment code invalid or already used: ask the customer to refresh it and scan again"
        }
        DeclineReason::InsufficientBalance => {
            "insufficient balance: ask the customer to choose another card or pay another way"
        }
        DeclineReason::WalletUnavailable => "the wallet could not be reached; nothing was charged",
        DeclineReason::Credentials => {
            "the gateway's wallet credentials were refused; nothing was charged"
        }
        DeclineReason::Other => "payment declined by the wallet",
    };
    let safe: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    if safe.is_empty() {
        reason.to_owned()
    } else {
        format!("{reason} ({safe})")
    }
}

fn trade_time(state: &AppState, request: &Authenticated, order: &Order) -> Option<String> {
    let _ = state;
    order
        .paid_at
        .map(|t| request.merchant.time_zone.wire_time(t))
}

/// What `buyer_login_id` holds when the wallet named no buyer (UnionPay identifies the
/// buyer to the merchant only by a masked card number, and not always): `ottpay.md` §5.2 makes
/// the field required on a paid order, so a paid order always carries one (docs/API.md).
pub(crate) const BUYER_NOT_NAMED: &str = "****";

/// The wallet's masked buyer, or [`BUYER_NOT_NAMED`] on a paid order whose wallet named none.
fn buyer_login_id(order: &Order) -> Option<String> {
    order
        .buyer
        .clone()
        .or_else(|| (order.status == OrderStatus::Paid).then(|| BUYER_NOT_NAMED.to_owned()))
}

fn passive_response(
    state: &AppState,
    request: &Authenticated,
    order: &Order,
) -> PassivePayResponse {
    let paid = order.status == OrderStatus::Paid;
    PassivePayResponse {
        order_status: wire_status(order.status),
        trade_time: trade_time(state, request, order),
        order_id: order.order_id.as_str().to_owned(),
        buyer_login_id: buyer_login_id(order),
        total_amount: cents(order.total()),
        receipt_amount: paid.then(|| cents(order.total())),
        buyer_pay_amount: paid.then(|| cents(order.total())),
        tip: Some(cents(order.tip)),
        bizpay_order_id: order.channel_ref.clone(),
    }
}

pub(crate) fn engine_failure(request: &Authenticated, e: &EngineError) -> Answer {
    tracing::error!(error = %e, "payment could not be processed");
    let code = match e {
        EngineError::Store(_) => RspCode::DbError,
        _ => RspCode::SystemError,
    };
    Answer::Refused(Refusal::new(code, code.default_message(), &request.key))
}

/// PASSIVEPAY: charge the scanned code.
pub(crate) async fn passive_pay(
    state: &AppState,
    request: &Authenticated,
    client_ip: String,
) -> Answer {
    let refuse = |code, msg: String| Answer::Refused(Refusal::new(code, msg, &request.key));
    let req = match PassivePayRequest::from_data(&request.data) {
        Ok(r) => r,
        Err(e) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    let order_id = match req
        .order_id
        .as_deref()
        .map(MerchantOrderId::parse)
        .transpose()
    {
        Ok(id) => id,
        Err(e) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    let currency: Currency = request.merchant.currency;
    let amount = i64::try_from(req.amount.0).unwrap_or(i64::MAX);
    let tip = req
        .tip
        .map_or(0, |t| i64::try_from(t.0).unwrap_or(i64::MAX));
    let operator_id = req
        .operator_id
        .clone()
        .or_else(|| request.envelope.operator_id.clone());
    let payment = CodePayment {
        merchant: request.merchant.clone(),
        order_id,
        amount: Money::new(amount, currency),
        tip: Money::new(tip, currency),
        auth_code: req.auth_code.clone(),
        wallet: Some(wallet_of(req.biz_type)),
        operator_id,
        terminal_no: request.envelope.terminal_no.clone(),
        sale_num: req.sale_num.clone(),
        client_ip,
    };
    let order = match state.engine.pay_with_code(payment).await {
        Ok(o) => o,
        Err(PaymentError::UnknownCodeFormat) => {
            return refuse(
                RspCode::ParamInvalid,
                format!("invalid auth_code: {}", PaymentError::UnknownCodeFormat),
            )
        }
        Err(PaymentError::WalletMismatch { code, asked }) => {
            return refuse(
                RspCode::ParamInvalid,
                format!(
                    "auth_code is a {} code but biz_type is {}",
                    biz_name(code),
                    biz_name(asked)
                ),
            )
        }
        Err(PaymentError::WalletNotEnabled(w)) => {
            return refuse(
                RspCode::Fail,
                format!("{} is not enabled on this gateway", biz_name(w)),
            )
        }
        Err(PaymentError::CodeAlreadyUsed(other)) => {
            return refuse(
                RspCode::Fail,
                format!("this payment code was already used for order {other}: ask the customer to refresh it"),
            )
        }
        Err(PaymentError::OrderUsed) => {
            return refuse(
                RspCode::OrderUsed,
                "order_id is already used by a different order".into(),
            )
        }
        Err(PaymentError::Invalid(msg)) => return refuse(RspCode::ParamInvalid, msg),
        Err(
            e @ (PaymentError::AmountOutOfRange { .. } | PaymentError::TipOutOfRange { .. }),
        ) => return refuse(RspCode::ParamInvalid, e.to_string()),
        Err(PaymentError::Engine(e)) => return engine_failure(request, &e),
    };
    let data = passive_response(state, request, &order).to_data();
    match order.status {
        OrderStatus::Paid => Answer::Success {
            data,
            key: request.key.clone(),
        },
        OrderStatus::Paying
        | OrderStatus::Pending
        | OrderStatus::Unknown
        | OrderStatus::Reversing => Answer::Data {
            code: RspCode::Processing,
            message:
                "transaction processing: the customer must confirm; ask again with STATUS_QUERY"
                    .into(),
            data,
            key: request.key.clone(),
        },
        OrderStatus::Failed => Answer::Data {
            code: RspCode::Fail,
            message: decline_message(&order),
            data,
            key: request.key.clone(),
        },
        OrderStatus::Reversed | OrderStatus::Closed => Answer::Data {
            code: RspCode::Fail,
            message: "the payment was not completed and was reversed: the customer was not charged"
                .into(),
            data,
            key: request.key.clone(),
        },
    }
}

/// STATUS_QUERY: where an order stands (§5.3, §7).
pub(crate) async fn status_query(state: &AppState, request: &Authenticated) -> Answer {
    let refuse = |code, msg: String| Answer::Refused(Refusal::new(code, msg, &request.key));
    let req = match StatusQueryRequest::from_data(&request.data) {
        Ok(r) => r,
        Err(e) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    let Ok(order_id) = MerchantOrderId::parse(&req.order_id) else {
        return refuse(RspCode::ParamInvalid, "unknown order_id".into());
    };
    let order = match state.engine.find_order(&request.merchant, &order_id).await {
        Ok(Some(o)) => o,
        Ok(None) => return refuse(RspCode::ParamInvalid, "unknown order_id".into()),
        Err(e) => return engine_failure(request, &e),
    };
    let paid = order.status == OrderStatus::Paid;
    let message = match order.status {
        OrderStatus::Failed => decline_message(&order),
        OrderStatus::Paid => "success".to_owned(),
        OrderStatus::Reversed | OrderStatus::Closed => {
            "closed: the customer was not charged".to_owned()
        }
        OrderStatus::Reversing => "being reversed".to_owned(),
        _ => "waiting for the customer or the wallet".to_owned(),
    };
    let response = StatusQueryResponse {
        rsp_code: Some("SUCCESS".into()),
        rsp_msg: Some(message),
        order_status: wire_status_of(&order),
        trade_time: trade_time(state, request, &order),
        order_id: order.order_id.as_str().to_owned(),
        bizpay_order_id: order.channel_ref.clone(),
        amount: cents(order.amount),
        total_amount: cents(order.total()),
        receipt_amount: paid.then(|| cents(order.total())),
        buyer_pay_amount: paid.then(|| cents(order.total())),
        tip: Some(cents(order.tip)),
        refund_amount: crate::refunds::refunded_amount(&order),
        buyer_login_id: buyer_login_id(&order),
    };
    Answer::Success {
        data: response.to_data(),
        key: request.key.clone(),
    }
}

/// ACTIVEPAY (§5.1): a QR for the customer to scan.
pub(crate) async fn active_pay(
    state: &AppState,
    request: &Authenticated,
    client_ip: String,
) -> Answer {
    let refuse = |code, msg: String| Answer::Refused(Refusal::new(code, msg, &request.key));
    let req = match ActivePayRequest::from_data(&request.data) {
        Ok(r) => r,
        Err(e) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    let order_id = match req
        .order_id
        .as_deref()
        .map(MerchantOrderId::parse)
        .transpose()
    {
        Ok(id) => id,
        Err(e) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    let call_back_url = Some(req.call_back_url.trim().to_owned()).filter(|u| !u.is_empty());
    if let Some(url) = &call_back_url {
        let allow_private = state.engine.callback_settings().allow_private;
        if let Err(msg) = qrgate_engine::check_callback_url(url, allow_private) {
            return refuse(RspCode::ParamInvalid, msg);
        }
    }
    let currency = request.merchant.currency;
    let payment = QrPayment {
        merchant: request.merchant.clone(),
        order_id,
        amount: Money::new(i64::try_from(req.amount.0).unwrap_or(i64::MAX), currency),
        tip: Money::new(
            req.tip
                .map_or(0, |t| i64::try_from(t.0).unwrap_or(i64::MAX)),
            currency,
        ),
        wallet: wallet_of(req.biz_type),
        operator_id: req
            .operator_id
            .clone()
            .or_else(|| request.envelope.operator_id.clone()),
        terminal_no: request.envelope.terminal_no.clone(),
        call_back_url,
        client_ip,
    };
    let order = match state.engine.create_qr_order(payment).await {
        Ok(o) => o,
        Err(PaymentError::WalletNotEnabled(w)) => {
            return refuse(
                RspCode::Fail,
                format!("{} is not enabled on this gateway", biz_name(w)),
            )
        }
        Err(PaymentError::OrderUsed) => {
            return refuse(
                RspCode::OrderUsed,
                "order_id is already used by a different order".into(),
            )
        }
        Err(PaymentError::Invalid(msg)) => return refuse(RspCode::ParamInvalid, msg),
        Err(PaymentError::Engine(e)) => return engine_failure(request, &e),
        Err(e) => return refuse(RspCode::ParamInvalid, e.to_string()),
    };
    match (&order.code_url, order.status) {
        (
            Some(code_url),
            OrderStatus::Pending | OrderStatus::Paid | OrderStatus::Paying | OrderStatus::Unknown,
        ) => {
            let response = ActivePayResponse {
                code_url: code_url.clone(),
                order_id: order.order_id.as_str().to_owned(),
                bizpay_order_id: order.channel_ref.clone(),
            };
            Answer::Success {
                data: response.to_data(),
                key: request.key.clone(),
            }
        }
        _ => refuse(
            RspCode::Fail,
            format!(
                "the wallet could not create the QR order; nothing can be paid on it ({})",
                order.wallet_code.as_deref().unwrap_or("no answer")
            )
            .chars()
            .filter(|c| c.is_ascii() && !matches!(c, '+' | '%'))
            .collect(),
        ),
    }
}

/// Merchant notifications as OTTPAY sends them (§3.3, §6, §13.3): the envelope with
/// `rsp_code` SUCCESS, sealed with the merchant's sign key.
#[derive(Debug, Clone, Copy, Default)]
pub struct OttpayNotificationFormat;

impl qrgate_engine::NotificationFormat for OttpayNotificationFormat {
    fn body(&self, order: &Order, merchant: &qrgate_domain::Merchant, sign_key: &str) -> String {
        let data = qrgate_ottpay::CallbackData {
            finish_time: order
                .paid_at
                .map(|t| merchant.time_zone.wire_time(t))
                .unwrap_or_default(),
            order_id: order.order_id.as_str().to_owned(),
            amount: cents(order.amount),
            tip: Some(cents(order.tip)),
            bizpay_order_id: order.channel_ref.clone().unwrap_or_default(),
            merchant_id: order.merchant_id.as_str().to_owned(),
            order_status: WireStatus::Success,
        };
        qrgate_ottpay::CallbackEnvelope::success(
            order.merchant_id.as_str(),
            &data.to_data(),
            &qrgate_ottpay::SignKey::new(sign_key),
        )
        .to_json()
    }
}
