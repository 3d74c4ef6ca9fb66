//! The five ACP transactions, translated onto the core's wallet-agnostic operations: consume
//! (`pay_code`), apply-QR (`create_qr`), query, cancel (`reverse`) and refund (`refund`).
//!
//! Each transaction validates its own fields first (13 missing, 10 malformed, 30 not
//! supported), then does all its reads and writes of the state — the core's trades and this
//! module's order ledger — inside one `Sandbox::with`, so that concurrent requests with the
//! same `orderId` cannot interleave.

use chrono::{DateTime, Duration, Utc};
use rand_chacha::ChaCha8Rng;

use super::orders::{self, UnionpayOrder, UnionpayOrderKind};
use super::sign::digest_hex;
use super::wire::{self, UnionpayCode, UnionpayFields};
use super::UnionpayAccount;
use crate::model::{RefundStatus, Trade, TradeKind, TradeStatus, Wallet};
use crate::state::{
    digits, Decline, PayCodeInput, PayCodeOutcome, QrInput, QrOutcome, RefundInput, RefundOutcome,
    ReverseOutcome, State,
};
use crate::Sandbox;

const WALLET: Wallet = Wallet::Unionpay;

/// How long an apply-QR order stays payable without `payTimeout` (`wallets.md` §5: 2 h).
const DEFAULT_QR_VALIDITY_HOURS: i64 = 2;

/// What a transaction makes of a request.
#[derive(Debug)]
pub(crate) enum UnionpayReply {
    /// The transaction's own answer fields (`respCode`, `respMsg`, …); the endpoint adds the
    /// echoed and protocol fields and signs.
    Answer(UnionpayFields),
    /// Processed, but the answer never comes (the code's `timeout` behaviour).
    NoAnswer,
}

/// A transaction step: an early refusal carries its answer fields.
type Step<T> = Result<T, UnionpayFields>;

/// `respCode` and the default `respMsg`.
pub(crate) fn fields_of(code: UnionpayCode) -> UnionpayFields {
    let mut out = UnionpayFields::new();
    out.insert("respCode".to_owned(), code.as_str().to_owned());
    out.insert("respMsg".to_owned(), code.message().to_owned());
    out
}

/// `respCode` with a `respMsg` that says what exactly was wrong.
pub(crate) fn refuse(code: UnionpayCode, detail: impl std::fmt::Display) -> UnionpayFields {
    let mut out = fields_of(code);
    out.insert(
        "respMsg".to_owned(),
        format!("{}: {detail}", code.message()),
    );
    out
}

/// A required, non-empty field.
pub(crate) fn need<'a>(fields: &'a UnionpayFields, key: &str) -> Step<&'a str> {
    fields
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| refuse(UnionpayCode::FieldMissing, key))
}

fn optional<'a>(fields: &'a UnionpayFields, key: &str) -> Option<&'a str> {
    fields
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn amount(fields: &UnionpayFields, key: &str) -> Step<i64> {
    let raw = need(fields, key)?;
    wire::parse_amount(raw).ok_or_else(|| {
        refuse(
            UnionpayCode::FormatError,
            format!("{key} must be an integer amount in minor units"),
        )
    })
}

/// A `currencyCode`: three digits (else 10), one of the profile's three (else 30).
fn currency(raw: &str) -> Step<&'static str> {
    if raw.len() != 3 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse(
            UnionpayCode::FormatError,
            "currencyCode must be a numeric ISO 4217 code",
        ));
    }
    wire::currency_from_numeric(raw).ok_or_else(|| {
        refuse(
            UnionpayCode::NotSupported,
            format!("currencyCode {raw} is not supported (156, 124, 840)"),
        )
    })
}

fn back_url(fields: &UnionpayFields) -> Step<&str> {
    let url = need(fields, "backUrl")?;
    if !wire::valid_back_url(url) {
        return Err(refuse(
            UnionpayCode::FormatError,
            "backUrl must be an absolute http(s) URL",
        ));
    }
    Ok(url)
}

/// `^62\d{17}$` (`wallets.md` §4).
fn is_unionpay_code(code: &str) -> bool {
    code.len() == 19 && code.starts_with("62") && code.bytes().all(|b| b.is_ascii_digit())
}

fn decline_code(decline: Decline) -> UnionpayCode {
    match decline {
        Decline::CodeInvalid | Decline::CodeUsed => UnionpayCode::CodeInvalid,
        Decline::CodeExpired => UnionpayCode::CodeExpired,
        Decline::InsufficientBalance => UnionpayCode::InsufficientBalance,
    }
}

/// A trade's state as a query's `origRespCode`.
fn status_code(status: TradeStatus) -> UnionpayCode {
    match status {
        TradeStatus::Success => UnionpayCode::Success,
        TradeStatus::UserPaying | TradeStatus::NotPay => UnionpayCode::Processing,
        TradeStatus::Closed | TradeStatus::Revoked => UnionpayCode::Cancelled,
        TradeStatus::PayError => UnionpayCode::InsufficientBalance,
    }
}

fn recorded(order: &UnionpayOrder) -> Option<UnionpayCode> {
    order.result.as_deref().and_then(UnionpayCode::parse)
}

/// A new UnionPay `queryId`: Beijing `MMddHHmmss` and 11 digits (21 in all), like the core's.
fn new_query_id(rng: &mut ChaCha8Rng, now: DateTime<Utc>) -> String {
    format!("{}{}", wire::beijing(now, "%m%d%H%M%S"), digits(rng, 11))
}

fn set(out: &mut UnionpayFields, key: &str, value: impl Into<String>) {
    out.insert(key.to_owned(), value.into());
}

/// The `settleDate` (`MMDD`) of a transaction at `at`: UnionPay's day closes at 23:00
/// Beijing, so later transactions settle on the next day (the bill's rule, `crate::bills`).
pub(crate) fn settle_date(at: DateTime<Utc>) -> String {
    crate::bills::bill_day(WALLET, at)
        .format("%m%d")
        .to_string()
}

/// A trade's `queryId` and amounts and, once paid, its settlement in CNY.
pub(crate) fn add_trade_fields(out: &mut UnionpayFields, trade: &Trade, paid: bool) {
    set(out, "queryId", trade.transaction_id.clone());
    set(out, "txnAmt", trade.total.to_string());
    if let Some(numeric) = wire::currency_to_numeric(&trade.currency) {
        set(out, "currencyCode", numeric);
    }
    if paid {
        let at = trade.paid_at.unwrap_or(trade.created_at);
        set(out, "settleAmt", trade.cny_fen.to_string());
        set(out, "settleCurrencyCode", wire::SETTLE_CURRENCY);
        set(out, "exchangeRate", trade.rate_e8.to_string());
        set(out, "traceTime", wire::beijing(at, "%m%d%H%M%S"));
        set(out, "settleDate", settle_date(at));
        let id = &trade.transaction_id;
        let trace_no = id.get(id.len().saturating_sub(6)..).unwrap_or_default();
        set(out, "traceNo", trace_no);
    }
}

/// A new ledger entry.
fn new_order(
    kind: UnionpayOrderKind,
    txn_time: &str,
    fingerprint: &str,
    txn_amt: i64,
    now: DateTime<Utc>,
) -> UnionpayOrder {
    UnionpayOrder {
        kind,
        txn_time: txn_time.to_owned(),
        fingerprint: fingerprint.to_owned(),
        txn_amt,
        orig_order_id: None,
        orig_query_id: None,
        query_id: None,
        result: None,
        recorded_at: now,
    }
}

/// C2B consume (01/06): the merchant scanned the customer's code.
pub(crate) fn consume(
    sandbox: &Sandbox,
    account: &UnionpayAccount,
    fields: &UnionpayFields,
) -> Step<UnionpayReply> {
    let order_id = need(fields, "orderId")?;
    let txn_time = need(fields, "txnTime")?;
    let qr_no = need(fields, "qrNo")?;
    let total = amount(fields, "txnAmt")?;
    let numeric = need(fields, "currencyCode")?;
    let currency = currency(numeric)?;
    let notify_url = back_url(fields)?;
    if total == 0 {
        return Err(refuse(UnionpayCode::FormatError, "txnAmt must be positive"));
    }
    let fingerprint = digest_hex(&format!("consume&{total}&{numeric}&{qr_no}"));
    let mer_id = account.mer_id.as_str();
    sandbox.with(|state, rng, now| {
        let existing = orders::get(state, order_id);
        if let Some(order) = &existing {
            if !order.same_request(UnionpayOrderKind::Consume, txn_time, &fingerprint) {
                return Err(refuse(UnionpayCode::DuplicateOrder, order_id));
            }
            // A resend of a consume that was declined before any trade existed: the same
            // answer again (the core would see a used code, not the original reason).
            if state.trade(WALLET, mer_id, order_id, now).is_none() {
                if let Some(code) = recorded(order) {
                    return Ok(UnionpayReply::Answer(fields_of(code)));
                }
            }
        }
        let record = |state: &mut State, result: Option<UnionpayCode>| {
            if existing.is_none() {
                let mut order = new_order(
                    UnionpayOrderKind::Consume,
                    txn_time,
                    &fingerprint,
                    total,
                    now,
                );
                order.result = result.map(|c| c.as_str().to_owned());
                orders::put(state, order_id, &order);
            }
        };
        if !is_unionpay_code(qr_no) {
            record(state, Some(UnionpayCode::CodeInvalid));
            return Ok(UnionpayReply::Answer(refuse(
                UnionpayCode::CodeInvalid,
                "qrNo is not a UnionPay payment code",
            )));
        }
        let input = PayCodeInput {
            wallet: WALLET,
            merchant: mer_id.to_owned(),
            out_trade_no: order_id.to_owned(),
            currency: currency.to_owned(),
            total,
            auth_code: qr_no.to_owned(),
            subject: "UnionPay QR consume".to_owned(),
            notify_url: Some(notify_url.to_owned()),
            fingerprint: fingerprint.clone(),
        };
        let (code, trade) = match state.pay_code(rng, input, now) {
            PayCodeOutcome::Paid(t) | PayCodeOutcome::AlreadyPaid(t) => {
                (UnionpayCode::Success, Some(t))
            }
            PayCodeOutcome::UserPaying(t) => (UnionpayCode::Processing, Some(t)),
            // "System error" although paid: status unknown, the merchant must query.
            PayCodeOutcome::SystemError(t) => (UnionpayCode::Unknown, Some(t)),
            PayCodeOutcome::Declined(d) => (decline_code(d), None),
            PayCodeOutcome::AlreadyClosed(t) | PayCodeOutcome::AlreadyRevoked(t) => {
                (UnionpayCode::StateForbids, Some(t))
            }
            PayCodeOutcome::Conflict => {
                return Err(refuse(UnionpayCode::DuplicateOrder, order_id));
            }
            PayCodeOutcome::NoAnswer => {
                // Recorded only if the request reached "UnionPay" (a trade exists); a
                // request lost on the way leaves nothing a query could find.
                if state.trade(WALLET, mer_id, order_id, now).is_some() {
                    record(state, None);
                }
                return Ok(UnionpayReply::NoAnswer);
            }
        };
        // A decline at confirmation leaves a failed trade: it has a queryId.
        let trade = trade.or_else(|| state.trade(WALLET, mer_id, order_id, now));
        let declined = matches!(
            code,
            UnionpayCode::CodeInvalid
                | UnionpayCode::CodeExpired
                | UnionpayCode::InsufficientBalance
        );
        record(state, declined.then_some(code));
        let mut out = fields_of(code);
        if let Some(t) = &trade {
            add_trade_fields(&mut out, t, code == UnionpayCode::Success);
        }
        Ok(UnionpayReply::Answer(out))
    })
}

/// Apply for a consumption QR (01/07): the customer scans the merchant's QR.
pub(crate) fn apply_qr(
    sandbox: &Sandbox,
    account: &UnionpayAccount,
    fields: &UnionpayFields,
) -> Step<UnionpayReply> {
    let order_id = need(fields, "orderId")?;
    let txn_time = need(fields, "txnTime")?;
    let total = amount(fields, "txnAmt")?;
    let numeric = need(fields, "currencyCode")?;
    let currency = currency(numeric)?;
    let notify_url = back_url(fields)?;
    if total == 0 {
        return Err(refuse(UnionpayCode::FormatError, "txnAmt must be positive"));
    }
    let pay_timeout = optional(fields, "payTimeout");
    let validity = match pay_timeout {
        None => Duration::hours(DEFAULT_QR_VALIDITY_HOURS),
        Some(raw) => {
            let (Some(end), Some(start)) = (wire::parse_time(raw), wire::parse_time(txn_time))
            else {
                return Err(refuse(
                    UnionpayCode::FormatError,
                    "payTimeout must be yyyyMMddHHmmss",
                ));
            };
            // Relative to txnTime, never to the sandbox clock (see the module docs).
            let validity = end - start;
            if validity <= Duration::zero() {
                return Err(refuse(
                    UnionpayCode::FormatError,
                    "payTimeout must be later than txnTime",
                ));
            }
            validity
        }
    };
    let fingerprint = digest_hex(&format!(
        "apply_qr&{total}&{numeric}&{}",
        pay_timeout.unwrap_or_default()
    ));
    let base_url = sandbox.base_url();
    let mer_id = account.mer_id.as_str();
    sandbox.with(|state, rng, now| {
        let existing = orders::get(state, order_id);
        if existing
            .as_ref()
            .is_some_and(|o| !o.same_request(UnionpayOrderKind::ApplyQr, txn_time, &fingerprint))
        {
            return Err(refuse(UnionpayCode::DuplicateOrder, order_id));
        }
        let Some(expires_at) = now.checked_add_signed(validity) else {
            return Err(refuse(
                UnionpayCode::FormatError,
                "payTimeout is out of range",
            ));
        };
        let input = QrInput {
            wallet: WALLET,
            merchant: mer_id.to_owned(),
            out_trade_no: order_id.to_owned(),
            currency: currency.to_owned(),
            total,
            subject: "UnionPay QR order".to_owned(),
            notify_url: Some(notify_url.to_owned()),
            expires_at,
            fingerprint: fingerprint.clone(),
        };
        match state.create_qr(rng, input, now) {
            // A resend gets the same QR, even once paid: paying it again is refused by the
            // pay page, and a query tells the merchant it is paid.
            QrOutcome::Created(t) | QrOutcome::Existing(t) | QrOutcome::AlreadyPaid(t) => {
                if existing.is_none() {
                    let order = new_order(
                        UnionpayOrderKind::ApplyQr,
                        txn_time,
                        &fingerprint,
                        total,
                        now,
                    );
                    orders::put(state, order_id, &order);
                }
                let mut out = fields_of(UnionpayCode::Success);
                let token = t.qr_token.clone().unwrap_or_default();
                set(&mut out, "qrCode", format!("{base_url}/pay/{token}"));
                set(&mut out, "txnAmt", total.to_string());
                set(&mut out, "currencyCode", numeric);
                Ok(UnionpayReply::Answer(out))
            }
            QrOutcome::AlreadyClosed(_) => Ok(UnionpayReply::Answer(refuse(
                UnionpayCode::StateForbids,
                "the QR order is closed",
            ))),
            QrOutcome::Conflict => Err(refuse(UnionpayCode::DuplicateOrder, order_id)),
        }
    })
}

/// Query (00/00) of any order by `orderId` + `txnTime`.
pub(crate) fn query(
    sandbox: &Sandbox,
    account: &UnionpayAccount,
    fields: &UnionpayFields,
) -> Step<UnionpayReply> {
    let order_id = need(fields, "orderId")?;
    let txn_time = need(fields, "txnTime")?;
    let mer_id = account.mer_id.as_str();
    sandbox.with(|state, _, now| {
        let Some(order) = orders::get(state, order_id).filter(|o| o.txn_time == txn_time) else {
            return Ok(UnionpayReply::Answer(refuse(
                UnionpayCode::OriginalNotFound,
                format!("no order {order_id} at {txn_time}"),
            )));
        };
        let mut out = fields_of(UnionpayCode::Success);
        let (txn_type, txn_sub_type) = order.kind.txn_type();
        set(&mut out, "txnType", txn_type);
        set(&mut out, "txnSubType", txn_sub_type);
        let original = match order.kind {
            UnionpayOrderKind::Consume | UnionpayOrderKind::ApplyQr => {
                match state.trade(WALLET, mer_id, order_id, now) {
                    Some(t) => {
                        let code = status_code(t.status);
                        add_trade_fields(&mut out, &t, code == UnionpayCode::Success);
                        code
                    }
                    None => match recorded(&order) {
                        Some(code) => {
                            set(&mut out, "txnAmt", order.txn_amt.to_string());
                            code
                        }
                        None => {
                            return Ok(UnionpayReply::Answer(refuse(
                                UnionpayCode::OriginalNotFound,
                                order_id,
                            )))
                        }
                    },
                }
            }
            UnionpayOrderKind::Cancel => {
                let code = recorded(&order).unwrap_or(UnionpayCode::Success);
                add_cancel_fields(&mut out, &order, code);
                code
            }
            UnionpayOrderKind::Refund => match recorded(&order) {
                Some(code) => {
                    add_order_refs(&mut out, &order);
                    code
                }
                None => {
                    let trade = order
                        .orig_order_id
                        .as_deref()
                        .and_then(|o| state.trade(WALLET, mer_id, o, now));
                    let found = trade.and_then(|t| {
                        let refund = t.refunds.iter().find(|r| r.out_refund_no == order_id)?;
                        Some((t.clone(), refund.clone()))
                    });
                    let Some((trade, refund)) = found else {
                        return Ok(UnionpayReply::Answer(refuse(
                            UnionpayCode::OriginalNotFound,
                            order_id,
                        )));
                    };
                    set(&mut out, "queryId", refund.refund_id.clone());
                    set(&mut out, "origQryId", trade.transaction_id.clone());
                    set(&mut out, "txnAmt", refund.amount.to_string());
                    if let Some(numeric) = wire::currency_to_numeric(&trade.currency) {
                        set(&mut out, "currencyCode", numeric);
                    }
                    match refund.status {
                        RefundStatus::Processing => UnionpayCode::Processing,
                        RefundStatus::Success => {
                            let at = refund.succeeded_at.unwrap_or(refund.succeeds_at);
                            set(&mut out, "settleAmt", refund.cny_fen.to_string());
                            set(&mut out, "settleCurrencyCode", wire::SETTLE_CURRENCY);
                            set(&mut out, "exchangeRate", trade.rate_e8.to_string());
                            set(&mut out, "traceTime", wire::beijing(at, "%m%d%H%M%S"));
                            set(&mut out, "settleDate", settle_date(at));
                            UnionpayCode::Success
                        }
                    }
                }
            },
        };
        set(&mut out, "origRespCode", original.as_str());
        set(&mut out, "origRespMsg", original.message());
        Ok(UnionpayReply::Answer(out))
    })
}

/// `origQryId` and `txnAmt` of a cancel or refund order, and its own `queryId` if any.
fn add_order_refs(out: &mut UnionpayFields, order: &UnionpayOrder) {
    if let Some(q) = &order.query_id {
        set(out, "queryId", q.clone());
    }
    if let Some(q) = &order.orig_query_id {
        set(out, "origQryId", q.clone());
    }
    set(out, "txnAmt", order.txn_amt.to_string());
}

fn add_cancel_fields(out: &mut UnionpayFields, order: &UnionpayOrder, code: UnionpayCode) {
    add_order_refs(out, order);
    if code == UnionpayCode::Success {
        set(
            out,
            "traceTime",
            wire::beijing(order.recorded_at, "%m%d%H%M%S"),
        );
    }
}

/// The answer to a cancel that was already decided.
fn cancel_answer(order: &UnionpayOrder) -> UnionpayFields {
    let code = recorded(order).unwrap_or(UnionpayCode::Success);
    let mut out = fields_of(code);
    add_cancel_fields(&mut out, order, code);
    out
}

/// A cancel's or a refund's optional `currencyCode`, which must be the original's.
fn check_original_currency(numeric: Option<&str>, trade: &Trade) -> Step<()> {
    let Some(raw) = numeric else {
        return Ok(());
    };
    if currency(raw)? != trade.currency {
        return Err(refuse(
            UnionpayCode::NotSupported,
            "currencyCode must be the original transaction's",
        ));
    }
    Ok(())
}

/// Cancel (31/00): voids a consume, paid or still pending.
pub(crate) fn cancel(
    sandbox: &Sandbox,
    account: &UnionpayAccount,
    fields: &UnionpayFields,
) -> Step<UnionpayReply> {
    let order_id = need(fields, "orderId")?;
    let txn_time = need(fields, "txnTime")?;
    let orig_qry_id = need(fields, "origQryId")?;
    let total = amount(fields, "txnAmt")?;
    let numeric = optional(fields, "currencyCode");
    if let Some(raw) = numeric {
        currency(raw)?;
    }
    let fingerprint = digest_hex(&format!(
        "cancel&{orig_qry_id}&{total}&{}",
        numeric.unwrap_or_default()
    ));
    let mer_id = account.mer_id.as_str();
    sandbox.with(|state, rng, now| {
        if let Some(order) = orders::get(state, order_id) {
            if !order.same_request(UnionpayOrderKind::Cancel, txn_time, &fingerprint) {
                return Err(refuse(UnionpayCode::DuplicateOrder, order_id));
            }
            return Ok(UnionpayReply::Answer(cancel_answer(&order)));
        }
        let mut order = new_order(
            UnionpayOrderKind::Cancel,
            txn_time,
            &fingerprint,
            total,
            now,
        );
        order.orig_query_id = Some(orig_qry_id.to_owned());
        let decided = |state: &mut State, mut order: UnionpayOrder, code: UnionpayCode| {
            order.result = Some(code.as_str().to_owned());
            orders::put(state, order_id, &order);
            UnionpayReply::Answer(cancel_answer(&order))
        };
        let Some(trade) = state.trade_by_transaction_id(WALLET, mer_id, orig_qry_id, now) else {
            return Ok(decided(state, order, UnionpayCode::OriginalNotFound));
        };
        check_original_currency(numeric, &trade)?;
        order.orig_order_id = Some(trade.out_trade_no.clone());
        if total != trade.total {
            return Ok(decided(state, order, UnionpayCode::AmountExceeds));
        }
        match state.reverse(WALLET, mer_id, &trade.out_trade_no, now) {
            ReverseOutcome::Reversed { .. } => {
                order.query_id = Some(new_query_id(rng, now));
                Ok(decided(state, order, UnionpayCode::Success))
            }
            // Nothing happened: not recorded, so the same cancel can be sent again.
            ReverseOutcome::CallAgain => {
                Ok(UnionpayReply::Answer(fields_of(UnionpayCode::Processing)))
            }
            ReverseOutcome::TooLate(_) => Ok(decided(state, order, UnionpayCode::StateForbids)),
            ReverseOutcome::NotFound => Ok(decided(state, order, UnionpayCode::OriginalNotFound)),
        }
    })
}

/// Refund (04/00): a new order returning part or all of a paid consume.
pub(crate) fn refund(
    sandbox: &Sandbox,
    account: &UnionpayAccount,
    fields: &UnionpayFields,
) -> Step<UnionpayReply> {
    let order_id = need(fields, "orderId")?;
    let txn_time = need(fields, "txnTime")?;
    let orig_qry_id = need(fields, "origQryId")?;
    let total = amount(fields, "txnAmt")?;
    let numeric = optional(fields, "currencyCode");
    if let Some(raw) = numeric {
        currency(raw)?;
    }
    let fingerprint = digest_hex(&format!(
        "refund&{orig_qry_id}&{total}&{}",
        numeric.unwrap_or_default()
    ));
    let mer_id = account.mer_id.as_str();
    sandbox.with(|state, rng, now| {
        let existing = orders::get(state, order_id);
        if let Some(order) = &existing {
            if !order.same_request(UnionpayOrderKind::Refund, txn_time, &fingerprint) {
                return Err(refuse(UnionpayCode::DuplicateOrder, order_id));
            }
            if let Some(code) = recorded(order) {
                let mut out = fields_of(code);
                add_order_refs(&mut out, order);
                return Ok(UnionpayReply::Answer(out));
            }
        }
        let mut order = new_order(
            UnionpayOrderKind::Refund,
            txn_time,
            &fingerprint,
            total,
            now,
        );
        order.orig_query_id = Some(orig_qry_id.to_owned());
        let refused = |state: &mut State, mut order: UnionpayOrder, code: UnionpayCode| {
            if existing.is_none() {
                order.result = Some(code.as_str().to_owned());
                orders::put(state, order_id, &order);
            }
            let mut out = fields_of(code);
            add_order_refs(&mut out, &order);
            UnionpayReply::Answer(out)
        };
        let Some(trade) = state.trade_by_transaction_id(WALLET, mer_id, orig_qry_id, now) else {
            return Ok(refused(state, order, UnionpayCode::OriginalNotFound));
        };
        check_original_currency(numeric, &trade)?;
        order.orig_order_id = Some(trade.out_trade_no.clone());
        let input = RefundInput {
            wallet: WALLET,
            merchant: mer_id.to_owned(),
            out_trade_no: trade.out_trade_no.clone(),
            out_refund_no: order_id.to_owned(),
            amount: total,
        };
        match state.refund(rng, input, now) {
            RefundOutcome::Accepted { trade, refund, .. } => {
                order.query_id = Some(refund.refund_id.clone());
                if existing.is_none() {
                    orders::put(state, order_id, &order);
                }
                let mut out = fields_of(UnionpayCode::Success);
                add_order_refs(&mut out, &order);
                if let Some(numeric) = wire::currency_to_numeric(&trade.currency) {
                    set(&mut out, "currencyCode", numeric);
                }
                Ok(UnionpayReply::Answer(out))
            }
            RefundOutcome::Mismatch => Err(refuse(UnionpayCode::DuplicateOrder, order_id)),
            RefundOutcome::Exceeds(_) | RefundOutcome::InvalidAmount => {
                Ok(refused(state, order, UnionpayCode::AmountExceeds))
            }
            RefundOutcome::NotPaid(_) | RefundOutcome::TooMany | RefundOutcome::WindowPassed => {
                Ok(refused(state, order, UnionpayCode::StateForbids))
            }
            RefundOutcome::NotFound => Ok(refused(state, order, UnionpayCode::OriginalNotFound)),
        }
    })
}

/// `txnType`/`txnSubType` of a trade's creating order.
pub(crate) fn trade_txn_type(trade: &Trade) -> (&'static str, &'static str) {
    match trade.kind {
        TradeKind::Code => UnionpayOrderKind::Consume.txn_type(),
        TradeKind::Qr => UnionpayOrderKind::ApplyQr.txn_type(),
    }
}
