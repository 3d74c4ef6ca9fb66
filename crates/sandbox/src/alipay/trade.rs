//! The trade methods (`wallets.md` §2.3–§2.6): each reads its `biz_content`, runs the core's
//! wallet-agnostic operation, and writes Alipay's fields and codes for the outcome.
//!
//! Alipay-specific rules live here rather than in the core: a precreated trade exists for
//! Alipay only once it is scanned, so until then query, close, cancel and refund say
//! `ACQ.TRADE_NOT_EXIST`; a fully refunded trade reads `TRADE_CLOSED`; a refund without
//! `out_request_no` must be for the whole amount and is then keyed by `out_trade_no`.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use super::gateway::{AlipayMethod, AlipayRequest};
use super::wire::{self, AlipayBiz, AlipayError, PAYING, SUCCESS};
use super::AlipayContext;
use crate::model::{Trade, TradeKind, TradeStatus, Wallet};
use crate::state::{
    self, CloseOutcome, Decline, PayCodeInput, PayCodeOutcome, QrInput, QrOutcome, RefundInput,
    RefundOutcome, ReverseOutcome, State,
};

/// A method's answer body, or the error to answer instead.
pub(crate) type AlipayAnswer = Result<Map<String, Value>, AlipayError>;

pub(crate) enum AlipayReply {
    Answer(AlipayAnswer),
    /// Answer nothing (a payment code minted to time out).
    Silence,
}

/// How long a precreated QR stays payable when the request does not say.
const DEFAULT_QR_VALIDITY: Duration = Duration::hours(2);

pub(crate) fn dispatch(ctx: &AlipayContext, request: &AlipayRequest) -> AlipayReply {
    let biz = match AlipayBiz::parse(&request.biz_content) {
        Ok(biz) => biz,
        Err(e) => return AlipayReply::Answer(Err(e)),
    };
    let answer = match request.method {
        AlipayMethod::Pay => return pay(ctx, request, &biz),
        AlipayMethod::Precreate => precreate(ctx, request, &biz),
        AlipayMethod::Query => query(ctx, request, &biz),
        AlipayMethod::Cancel => cancel(ctx, request, &biz),
        AlipayMethod::Close => close(ctx, request, &biz),
        AlipayMethod::Refund => refund(ctx, request, &biz),
        AlipayMethod::RefundQuery => refund_query(ctx, request, &biz),
        AlipayMethod::BillDownloadUrl => super::bill::download_url_query(ctx, request, &biz),
    };
    AlipayReply::Answer(answer)
}

fn put(out: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    out.insert(key.to_owned(), value.into());
}

/// Alipay's `trade_status` for a trade it knows about.
fn trade_status(trade: &Trade, now: DateTime<Utc>) -> &'static str {
    match trade.status {
        TradeStatus::NotPay | TradeStatus::UserPaying => "WAIT_BUYER_PAY",
        TradeStatus::Success if trade.refunded() >= trade.total => "TRADE_CLOSED",
        TradeStatus::Success => {
            let window = state::rules(Wallet::Alipay).refund_window;
            if trade.paid_at.is_some_and(|p| now - p > window) {
                // Paid and past the refund window: Alipay's "finished".
                "TRADE_FINISHED"
            } else {
                "TRADE_SUCCESS"
            }
        }
        TradeStatus::Closed | TradeStatus::Revoked | TradeStatus::PayError => "TRADE_CLOSED",
    }
}

/// Whether Alipay has the trade at all: a precreated QR exists only once scanned.
fn visible(trade: &Trade) -> bool {
    trade.kind != TradeKind::Qr || trade.scanned
}

fn not_exist() -> AlipayError {
    AlipayError::business("ACQ.TRADE_NOT_EXIST", "the trade does not exist")
}

/// The trade a query-like call names: by `trade_no` if given (it wins), else `out_trade_no`.
fn locate(
    state: &mut State,
    app_id: &str,
    biz: &AlipayBiz,
    now: DateTime<Utc>,
) -> Result<Trade, AlipayError> {
    let found = match (biz.optional("trade_no")?, biz.optional("out_trade_no")?) {
        (Some(trade_no), _) => state.trade_by_transaction_id(Wallet::Alipay, app_id, trade_no, now),
        (None, Some(out_trade_no)) => state.trade(Wallet::Alipay, app_id, out_trade_no, now),
        (None, None) => {
            return Err(AlipayError::parameter(
                "out_trade_no or trade_no is required",
            ))
        }
    };
    found.filter(visible).ok_or_else(not_exist)
}

fn ids(out: &mut Map<String, Value>, trade: &Trade) {
    put(out, "trade_no", trade.transaction_id.clone());
    put(out, "out_trade_no", trade.out_trade_no.clone());
}

fn buyer(out: &mut Map<String, Value>, trade: &Trade) {
    if let Some(customer) = &trade.customer_id {
        put(out, "buyer_logon_id", wire::buyer_logon_id(customer));
        put(out, "buyer_user_id", wire::buyer_id(customer));
    }
}

/// The amount fields. Every `*_amount` is in the pricing currency (`trans_currency`), except
/// `pay_amount` (CNY, what the buyer paid) and the funding list (CNY from the balance).
fn amounts(out: &mut Map<String, Value>, trade: &Trade) {
    let paid = if trade.paid_at.is_some() {
        trade.total
    } else {
        0
    };
    put(out, "total_amount", wire::format_amount(trade.total));
    put(out, "receipt_amount", wire::format_amount(paid));
    put(out, "buyer_pay_amount", wire::format_amount(paid));
    put(out, "point_amount", "0.00");
    put(out, "invoice_amount", wire::format_amount(paid));
}

fn fund_bills(out: &mut Map<String, Value>, trade: &Trade) {
    if trade.paid_at.is_some() {
        put(
            out,
            "fund_bill_list",
            json!([{"fund_channel": "ALIPAYACCOUNT", "amount": wire::format_amount(trade.cny_fen)}]),
        );
    }
}

/// The cross-border fields, for a trade priced in another currency than CNY. The sandbox
/// settles in the pricing currency.
fn cross_border(out: &mut Map<String, Value>, trade: &Trade) {
    if trade.currency == "CNY" {
        return;
    }
    put(out, "trans_currency", trade.currency.clone());
    put(out, "settle_currency", trade.currency.clone());
    put(out, "settle_amount", wire::format_amount(trade.total));
    put(out, "pay_currency", "CNY");
    put(out, "pay_amount", wire::format_amount(trade.cny_fen));
    put(out, "trans_pay_rate", wire::format_rate(trade.rate_e8));
}

/// The pricing currency of a new trade: `trans_currency`, or CNY. The sandbox settles in the
/// pricing currency, so a different `settle_currency` is refused rather than ignored.
fn pricing_currency(ctx: &AlipayContext, biz: &AlipayBiz) -> Result<String, AlipayError> {
    let currency = biz.optional("trans_currency")?.unwrap_or("CNY").to_owned();
    let known = ctx.sandbox.with(|s, _, _| s.rates.contains_key(&currency));
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) || !known {
        return Err(AlipayError::parameter(format!(
            "trans_currency {currency} is not supported"
        )));
    }
    if let Some(settle) = biz.optional("settle_currency")? {
        if settle != currency {
            return Err(AlipayError::parameter("the sandbox settles in the pricing currency: settle_currency must equal trans_currency"));
        }
    }
    Ok(currency)
}

fn out_trade_no(biz: &AlipayBiz) -> Result<String, AlipayError> {
    let value = biz.required("out_trade_no")?;
    if !wire::is_merchant_no(value) {
        return Err(AlipayError::parameter(
            "out_trade_no must be 1-64 letters, digits or underscores",
        ));
    }
    Ok(value.to_owned())
}

fn subject(biz: &AlipayBiz) -> Result<String, AlipayError> {
    let value = biz.required("subject")?;
    if value.chars().count() > 256 || value.contains(['/', '=', '&']) {
        return Err(AlipayError::parameter(
            "subject must be at most 256 characters without / = &",
        ));
    }
    Ok(value.to_owned())
}

/// A `seller_id` in the request must be the merchant's own.
fn check_seller(request: &AlipayRequest, biz: &AlipayBiz) -> Result<(), AlipayError> {
    match biz.optional("seller_id")? {
        Some(seller) if seller != request.account.seller_id => Err(AlipayError::business(
            "ACQ.PARTNER_ERROR",
            "seller_id does not belong to this app",
        )),
        _ => Ok(()),
    }
}

fn timeout(
    biz: &AlipayBiz,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, AlipayError> {
    match biz.optional(name)? {
        None => Ok(None),
        Some(text) => wire::parse_timeout(text, now).map(Some).ok_or_else(|| {
            AlipayError::parameter(format!(
                "{name} must be like 5m, 2h, 1d or 1c, within 1m-15d"
            ))
        }),
    }
}

// ---------------------------------------------------------------------------------------
// alipay.trade.pay

fn pay(ctx: &AlipayContext, request: &AlipayRequest, biz: &AlipayBiz) -> AlipayReply {
    match pay_inner(ctx, request, biz) {
        Ok(Some(body)) => AlipayReply::Answer(Ok(body)),
        Ok(None) => AlipayReply::Silence,
        Err(e) => AlipayReply::Answer(Err(e)),
    }
}

fn pay_inner(
    ctx: &AlipayContext,
    request: &AlipayRequest,
    biz: &AlipayBiz,
) -> Result<Option<Map<String, Value>>, AlipayError> {
    let out_trade_no = out_trade_no(biz)?;
    let scene = biz.required("scene")?;
    if scene != "bar_code" {
        return Err(AlipayError::parameter(
            "the sandbox supports scene=bar_code only",
        ));
    }
    let auth_code = biz.required("auth_code")?;
    if !wire::is_auth_code(auth_code) {
        return Err(AlipayError::business(
            "ACQ.PAYMENT_AUTH_CODE_INVALID",
            "the payment code is not an Alipay code",
        )
        .with("out_trade_no", out_trade_no));
    }
    let subject = subject(biz)?;
    let total = biz.amount("total_amount")?;
    let currency = pricing_currency(ctx, biz)?;
    check_seller(request, biz)?;
    // Checked for its format only: the core revokes unconfirmed code payments on the
    // wallet's own schedule (3 minutes for Alipay).
    timeout(biz, "timeout_express", ctx.sandbox.now())?;
    let fingerprint =
        wire::fingerprint(&["pay", &currency, &total.to_string(), auth_code, &subject]);
    let input = PayCodeInput {
        wallet: Wallet::Alipay,
        merchant: request.account.app_id.clone(),
        out_trade_no: out_trade_no.clone(),
        currency,
        total,
        auth_code: auth_code.to_owned(),
        subject,
        notify_url: request.notify_url.clone(),
        fingerprint,
    };
    let outcome = ctx.sandbox.with(|s, rng, now| s.pay_code(rng, input, now));
    let failed = |sub_code: &str, sub_msg: &str| {
        Err(AlipayError::business(sub_code, sub_msg).with("out_trade_no", out_trade_no.clone()))
    };
    match outcome {
        PayCodeOutcome::Paid(trade) => {
            let mut out = wire::success(SUCCESS);
            ids(&mut out, &trade);
            buyer(&mut out, &trade);
            amounts(&mut out, &trade);
            if let Some(paid_at) = trade.paid_at {
                put(&mut out, "gmt_payment", wire::format_time(paid_at));
            }
            fund_bills(&mut out, &trade);
            cross_border(&mut out, &trade);
            Ok(Some(out))
        }
        PayCodeOutcome::UserPaying(trade) => {
            let mut out = wire::success(PAYING);
            ids(&mut out, &trade);
            buyer(&mut out, &trade);
            amounts(&mut out, &trade);
            cross_border(&mut out, &trade);
            Ok(Some(out))
        }
        PayCodeOutcome::Declined(
            Decline::CodeExpired | Decline::CodeUsed | Decline::CodeInvalid,
        ) => failed(
            "ACQ.PAYMENT_AUTH_CODE_INVALID",
            "the payment code is invalid, expired or already used",
        ),
        PayCodeOutcome::Declined(Decline::InsufficientBalance) => failed(
            "ACQ.BUYER_BALANCE_NOT_ENOUGH",
            "the buyer's balance is not enough",
        ),
        // The payment was in fact made; the gateway must query to find out.
        PayCodeOutcome::SystemError(_) => {
            failed("ACQ.SYSTEM_ERROR", "system error, please query the trade")
        }
        PayCodeOutcome::NoAnswer => Ok(None),
        PayCodeOutcome::AlreadyPaid(trade) => Err(AlipayError::business(
            "ACQ.TRADE_HAS_SUCCESS",
            "the trade has already been paid",
        )
        .with("trade_no", trade.transaction_id)
        .with("out_trade_no", trade.out_trade_no)),
        PayCodeOutcome::AlreadyClosed(_) | PayCodeOutcome::AlreadyRevoked(_) => failed(
            "ACQ.TRADE_HAS_CLOSE",
            "the trade has been closed; use a new out_trade_no",
        ),
        PayCodeOutcome::Conflict => failed(
            "ACQ.CONTEXT_INCONSISTENT",
            "this out_trade_no was used with different parameters",
        ),
    }
}

// ---------------------------------------------------------------------------------------
// alipay.trade.precreate

fn precreate(ctx: &AlipayContext, request: &AlipayRequest, biz: &AlipayBiz) -> AlipayAnswer {
    let out_trade_no = out_trade_no(biz)?;
    let total = biz.amount("total_amount")?;
    let subject = subject(biz)?;
    let currency = pricing_currency(ctx, biz)?;
    check_seller(request, biz)?;
    let now = ctx.sandbox.now();
    // The QR is payable until its own validity (2 h unless told) and never past the trade's
    // `timeout_express`, whichever ends first.
    let qr_until =
        timeout(biz, "qr_code_timeout_express", now)?.unwrap_or(now + DEFAULT_QR_VALIDITY);
    let expires_at = match timeout(biz, "timeout_express", now)? {
        Some(trade_until) => qr_until.min(trade_until),
        None => qr_until,
    };
    let fingerprint = wire::fingerprint(&["precreate", &currency, &total.to_string(), &subject]);
    let input = QrInput {
        wallet: Wallet::Alipay,
        merchant: request.account.app_id.clone(),
        out_trade_no: out_trade_no.clone(),
        currency,
        total,
        subject,
        notify_url: request.notify_url.clone(),
        expires_at,
        fingerprint,
    };
    let outcome = ctx.sandbox.with(|s, rng, now| s.create_qr(rng, input, now));
    let failed = |sub_code: &str, sub_msg: &str| {
        Err(AlipayError::business(sub_code, sub_msg).with("out_trade_no", out_trade_no.clone()))
    };
    match outcome {
        QrOutcome::Created(trade) | QrOutcome::Existing(trade) => {
            let mut out = wire::success(SUCCESS);
            put(&mut out, "out_trade_no", trade.out_trade_no.clone());
            let token = trade.qr_token.unwrap_or_default();
            put(
                &mut out,
                "qr_code",
                format!("{}/pay/{token}", ctx.sandbox.base_url()),
            );
            Ok(out)
        }
        QrOutcome::AlreadyPaid(_) => {
            failed("ACQ.TRADE_HAS_SUCCESS", "the trade has already been paid")
        }
        QrOutcome::AlreadyClosed(_) => failed(
            "ACQ.TRADE_HAS_CLOSE",
            "the trade has been closed; use a new out_trade_no",
        ),
        QrOutcome::Conflict => failed(
            "ACQ.CONTEXT_INCONSISTENT",
            "this out_trade_no was used with different parameters",
        ),
    }
}

// ---------------------------------------------------------------------------------------
// alipay.trade.query

fn query(ctx: &AlipayContext, request: &AlipayRequest, biz: &AlipayBiz) -> AlipayAnswer {
    let (trade, now) = ctx
        .sandbox
        .with(|s, _, now| locate(s, &request.account.app_id, biz, now).map(|t| (t, now)))?;
    let mut out = wire::success(SUCCESS);
    ids(&mut out, &trade);
    buyer(&mut out, &trade);
    put(&mut out, "trade_status", trade_status(&trade, now));
    amounts(&mut out, &trade);
    if let Some(paid_at) = trade.paid_at {
        put(&mut out, "send_pay_date", wire::format_time(paid_at));
    }
    fund_bills(&mut out, &trade);
    cross_border(&mut out, &trade);
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// alipay.trade.cancel

fn cancel(ctx: &AlipayContext, request: &AlipayRequest, biz: &AlipayBiz) -> AlipayAnswer {
    let app_id = &request.account.app_id;
    let outcome = ctx
        .sandbox
        .with(|s, _, now| -> Result<ReverseOutcome, AlipayError> {
            let out_trade_no = match (biz.optional("trade_no")?, biz.optional("out_trade_no")?) {
                (Some(_), _) => locate(s, app_id, biz, now)?.out_trade_no,
                (None, Some(out_trade_no)) => {
                    // An unscanned QR does not exist for Alipay: nothing to cancel (and the QR
                    // stays payable, which the gateway must reconcile).
                    if s.trade(Wallet::Alipay, app_id, out_trade_no, now)
                        .is_some_and(|t| !visible(&t))
                    {
                        return Ok(ReverseOutcome::NotFound);
                    }
                    out_trade_no.to_owned()
                }
                (None, None) => {
                    return Err(AlipayError::parameter(
                        "out_trade_no or trade_no is required",
                    ))
                }
            };
            Ok(s.reverse(Wallet::Alipay, app_id, &out_trade_no, now))
        });
    let outcome = outcome.map_err(|e| e.with("retry_flag", "N"))?;
    let named = biz
        .optional("out_trade_no")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned();
    match outcome {
        ReverseOutcome::Reversed { trade, was_paid } => {
            let mut out = wire::success(SUCCESS);
            ids(&mut out, &trade);
            put(&mut out, "retry_flag", "N");
            put(
                &mut out,
                "action",
                if was_paid { "refund" } else { "close" },
            );
            if was_paid {
                if let Some(at) = trade.ended_at {
                    put(&mut out, "gmt_refund_pay", wire::format_time(at));
                }
            }
            Ok(out)
        }
        ReverseOutcome::CallAgain => Err(AlipayError::business(
            "ACQ.SYSTEM_ERROR",
            "system busy, call cancel again",
        )
        .with("out_trade_no", named)
        .with("retry_flag", "Y")),
        ReverseOutcome::TooLate(trade) => Err(AlipayError::business(
            "ACQ.TRADE_CANCEL_TIME_OUT",
            "the cancel window has passed; refund the trade instead",
        )
        .with("trade_no", trade.transaction_id)
        .with("out_trade_no", trade.out_trade_no)
        .with("retry_flag", "N")),
        ReverseOutcome::NotFound => Err(not_exist()
            .with("out_trade_no", named)
            .with("retry_flag", "N")),
    }
}

// ---------------------------------------------------------------------------------------
// alipay.trade.close

fn close(ctx: &AlipayContext, request: &AlipayRequest, biz: &AlipayBiz) -> AlipayAnswer {
    let app_id = &request.account.app_id;
    let outcome = ctx.sandbox.with(|s, _, now| {
        let trade = locate(s, app_id, biz, now)?;
        Ok::<_, AlipayError>(s.close(Wallet::Alipay, app_id, &trade.out_trade_no, now))
    })?;
    match outcome {
        CloseOutcome::Closed(trade) => {
            let mut out = wire::success(SUCCESS);
            ids(&mut out, &trade);
            Ok(out)
        }
        CloseOutcome::NotFound => Err(not_exist()),
        CloseOutcome::Paid(trade) | CloseOutcome::AlreadyClosed(trade) => {
            Err(AlipayError::business(
                "ACQ.TRADE_STATUS_ERROR",
                "only a trade waiting for payment can be closed",
            )
            .with("trade_no", trade.transaction_id)
            .with("out_trade_no", trade.out_trade_no))
        }
    }
}

// ---------------------------------------------------------------------------------------
// alipay.trade.refund

fn refund(ctx: &AlipayContext, request: &AlipayRequest, biz: &AlipayBiz) -> AlipayAnswer {
    let app_id = &request.account.app_id;
    let amount = biz.amount("refund_amount")?;
    let out_request_no = biz.optional("out_request_no")?;
    if let Some(no) = out_request_no {
        if !wire::is_merchant_no(no) {
            return Err(AlipayError::parameter(
                "out_request_no must be 1-64 letters, digits or underscores",
            ));
        }
    }
    let refund_currency = biz.optional("refund_currency")?;
    let outcome = ctx.sandbox.with(
        |s, rng, now| -> Result<(RefundOutcome, Trade), AlipayError> {
            let trade = locate(s, app_id, biz, now)?;
            if refund_currency.is_some_and(|c| c != trade.currency) {
                return Err(AlipayError::parameter(
                    "refund_currency must be the trade's trans_currency",
                ));
            }
            let out_refund_no = match out_request_no {
                Some(no) => no.to_owned(),
                // Without a request number only a full refund is possible, and the trade's own
                // number identifies it (as refund query expects).
                None if amount == trade.total => trade.out_trade_no.clone(),
                None => {
                    return Err(AlipayError::business(
                        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                        "a partial refund needs out_request_no",
                    ))
                }
            };
            let input = RefundInput {
                wallet: Wallet::Alipay,
                merchant: app_id.clone(),
                out_trade_no: trade.out_trade_no.clone(),
                out_refund_no,
                amount,
            };
            Ok((s.refund(rng, input, now), trade))
        },
    )?;
    let (outcome, before) = outcome;
    let with_ids = |e: AlipayError| {
        e.with("trade_no", before.transaction_id.clone())
            .with("out_trade_no", before.out_trade_no.clone())
    };
    match outcome {
        RefundOutcome::Accepted {
            trade,
            refund,
            fund_change,
        } => {
            let mut out = wire::success(SUCCESS);
            ids(&mut out, &trade);
            buyer(&mut out, &trade);
            put(&mut out, "fund_change", if fund_change { "Y" } else { "N" });
            put(
                &mut out,
                "refund_fee",
                wire::format_amount(trade.refunded()),
            );
            put(
                &mut out,
                "send_back_fee",
                wire::format_amount(refund.amount),
            );
            put(
                &mut out,
                "gmt_refund_pay",
                wire::format_time(refund.succeeded_at.unwrap_or(refund.created_at)),
            );
            if trade.currency != "CNY" {
                put(&mut out, "refund_currency", trade.currency.clone());
            }
            Ok(out)
        }
        RefundOutcome::NotFound => Err(not_exist()),
        RefundOutcome::NotPaid(trade) => match trade.status {
            TradeStatus::NotPay | TradeStatus::UserPaying => Err(with_ids(AlipayError::business(
                "ACQ.TRADE_STATUS_ERROR",
                "the trade is not paid",
            ))),
            _ => Err(with_ids(AlipayError::business(
                "ACQ.TRADE_HAS_CLOSE",
                "the trade is closed",
            ))),
        },
        RefundOutcome::Mismatch => Err(with_ids(AlipayError::business(
            "ACQ.DISCORDANT_REPEAT_REQUEST",
            "this out_request_no was used with a different refund_amount",
        ))),
        // Nothing is left once everything was refunded: the trade is closed for Alipay.
        RefundOutcome::Exceeds(trade) if trade.refunded() >= trade.total => {
            Err(with_ids(AlipayError::business(
                "ACQ.TRADE_HAS_CLOSE",
                "the trade is closed (fully refunded)",
            )))
        }
        RefundOutcome::Exceeds(_) => Err(with_ids(AlipayError::business(
            "ACQ.REASON_TRADE_REFUND_FEE_ERR",
            "refund_amount exceeds what is left to refund",
        ))),
        RefundOutcome::TooMany => Err(with_ids(AlipayError::business(
            "ACQ.TRADE_NOT_ALLOW_REFUND",
            "the trade has reached the maximum number of refunds",
        ))),
        RefundOutcome::WindowPassed => Err(with_ids(AlipayError::business(
            "ACQ.TRADE_HAS_FINISHED",
            "the trade is finished: the refund window has passed",
        ))),
        RefundOutcome::InvalidAmount => {
            Err(AlipayError::parameter("refund_amount must be positive"))
        }
    }
}

// ---------------------------------------------------------------------------------------
// alipay.trade.fastpay.refund.query

fn refund_query(ctx: &AlipayContext, request: &AlipayRequest, biz: &AlipayBiz) -> AlipayAnswer {
    let out_request_no = biz.required("out_request_no")?;
    let trade = ctx
        .sandbox
        .with(|s, _, now| locate(s, &request.account.app_id, biz, now))?;
    let mut out = wire::success(SUCCESS);
    // `10000` only says the query ran; the refund is there iff its fields are.
    let found = trade.refunds.iter().find(|r| {
        r.out_refund_no == out_request_no && r.status == crate::model::RefundStatus::Success
    });
    if let Some(refund) = found {
        ids(&mut out, &trade);
        put(&mut out, "out_request_no", refund.out_refund_no.clone());
        put(&mut out, "total_amount", wire::format_amount(trade.total));
        put(
            &mut out,
            "refund_amount",
            wire::format_amount(refund.amount),
        );
        put(&mut out, "refund_status", "REFUND_SUCCESS");
        put(
            &mut out,
            "gmt_refund_pay",
            wire::format_time(refund.succeeded_at.unwrap_or(refund.created_at)),
        );
    }
    Ok(out)
}
