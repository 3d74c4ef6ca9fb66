//! UnionPay ACP 5.1.0 wire format (`wallets.md` §3.1 and the project's UnionPay profile):
//! request building and answer mapping as pure functions, with no IO and no clock of their
//! own (callers pass `now`).
//!
//! Both directions are `application/x-www-form-urlencoded` `key=value&…` bodies. Every answer
//! and notification is checked by [`open_answer`] / [`notification_order`] (HTTP status, form
//! shape, `signPubKeyCert` chain and signature, our `merId`, the `orderId` we asked about)
//! before any field is read; the per-operation functions then map `respCode` /
//! `origRespCode` onto the normalised outcomes of `qrgate_connector_api`.
//!
//! Codes (profile table): `00` (and `A6`, "success with defects", `wallets.md` §3.1) success;
//! `03`/`04`/`05` in process (`05` = waiting for the customer); `10`/`11`/`13`/`30` our request
//! was wrong; `12` duplicate `orderId` with different content; `31` cancelled; `34` original
//! not found; `35` state does not allow it; `36` amount too large; `61`/`64`/`65` final
//! payment-code declines.

use std::str::FromStr as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use qrgate_connector_api::{
    CallbackError, ChannelOrder, ChannelRefund, ChannelStatus, CodePaymentRequest, ConnectorError,
    QrOrder, QrOrderRequest, RefundRequest, RefundStatus, ReverseOutcome,
};
use qrgate_domain::{Currency, Money};

use super::sign::{self, UnionPaySignatureError, UnionPayTrust};

/// Both directions; the profile fixes UTF-8.
pub(super) const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=UTF-8";

const VERSION: &str = "5.1.0";
const ENCODING: &str = "utf-8";
/// `01` = RSA with a certificate, the only method 5.1.0 merchants use.
const SIGN_METHOD_RSA: &str = "01";
/// `000000` = QR code payments.
const BIZ_TYPE_QR: &str = "000000";
/// `0` = merchant direct access.
const ACCESS_TYPE_MERCHANT: &str = "0";
/// `08` = mobile.
const CHANNEL_TYPE_MOBILE: &str = "08";
/// `07` = internet, what UnionPay's file-transfer demo sends.
const CHANNEL_TYPE_INTERNET: &str = "07";
/// `fileType=00`: the merchant reconciliation file.
const FILE_TYPE_MERCHANT: &str = "00";

/// `txnTime` and `payTimeout` are `yyyyMMddHHmmss` in Beijing time (UTC+8, no DST).
const TIME_FORMAT: &str = "%Y%m%d%H%M%S";
const BEIJING_OFFSET: TimeDelta = TimeDelta::hours(8);

/// `orderId`: 8 to 32 ASCII letters and digits (no `-` or `_`).
const ORDER_ID_MIN_LEN: usize = 8;
const ORDER_ID_MAX_LEN: usize = 32;
/// A cancel needs an `orderId` of its own: `C`, the cancel's `txnTime`, then this many random
/// alphanumerics, which fills the 32 characters exactly.
pub(super) const CANCEL_ORDER_ID_SUFFIX_LEN: usize = 17;
const CANCEL_ORDER_ID_PREFIX: &str = "C";

/// Integer amounts longer than this could overflow an `i64`; UnionPay's limit is 12 digits.
const AMOUNT_MAX_DIGITS: usize = 15;

/// The `wallet_message` of a refund query that found no refund under our number.
pub(super) const REFUND_NOT_FOUND_NOTE: &str =
    "no such refund at UnionPay; retry the refund with the same orderId and txnTime";

// Answer field names read in more than one place.
const MER_ID: &str = "merId";
const ORDER_ID: &str = "orderId";
const RESP_CODE: &str = "respCode";
const RESP_MSG: &str = "respMsg";
const ORIG_RESP_CODE: &str = "origRespCode";
const ORIG_RESP_MSG: &str = "origRespMsg";
const QUERY_ID: &str = "queryId";
const TXN_AMT: &str = "txnAmt";
const CURRENCY_CODE: &str = "currencyCode";
const SETTLE_AMT: &str = "settleAmt";
const SETTLE_CURRENCY_CODE: &str = "settleCurrencyCode";
const EXCHANGE_RATE: &str = "exchangeRate";
const TRACE_TIME: &str = "traceTime";
const TXN_TYPE: &str = "txnType";
const TXN_SUB_TYPE: &str = "txnSubType";
const SIGN_METHOD: &str = "signMethod";
const QR_CODE: &str = "qrCode";

// ---------------------------------------------------------------------------------------------
// Transactions

/// The ACP transactions this connector sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnionPayTxn {
    /// 01/06: charge the customer's payment code (`qrNo`).
    Consume,
    /// 01/07: apply for a consumption QR code.
    ApplyQr,
    /// 00/00: query an order (or a refund) by `orderId` + `txnTime`.
    Query,
    /// 31/00: cancel (void) a consume by its `queryId`.
    Cancel,
    /// 04/00: refund by the original `queryId`.
    Refund,
    /// 76/01: file transfer (the day's reconciliation file, `bills.md` §3).
    FileTransfer,
}

impl UnionPayTxn {
    pub(super) fn txn_type(self) -> &'static str {
        match self {
            UnionPayTxn::Consume | UnionPayTxn::ApplyQr => "01",
            UnionPayTxn::Query => "00",
            UnionPayTxn::Cancel => "31",
            UnionPayTxn::Refund => "04",
            UnionPayTxn::FileTransfer => "76",
        }
    }

    pub(super) fn txn_sub_type(self) -> &'static str {
        match self {
            UnionPayTxn::Consume => "06",
            UnionPayTxn::ApplyQr => "07",
            UnionPayTxn::Query | UnionPayTxn::Cancel | UnionPayTxn::Refund => "00",
            UnionPayTxn::FileTransfer => "01",
        }
    }

    /// Appended to the configured base URL. The file transfer goes to its own URL
    /// (`file_base_url`) as it is, so it has no path of its own.
    pub(super) fn path(self) -> &'static str {
        match self {
            UnionPayTxn::FileTransfer => "",
            UnionPayTxn::Query => "/gateway/api/queryTrans.do",
            UnionPayTxn::Consume
            | UnionPayTxn::ApplyQr
            | UnionPayTxn::Cancel
            | UnionPayTxn::Refund => "/gateway/api/backTransReq.do",
        }
    }

    /// The operation name in logs.
    pub(super) fn name(self) -> &'static str {
        match self {
            UnionPayTxn::Consume => "unionpay.consume",
            UnionPayTxn::ApplyQr => "unionpay.apply_qr",
            UnionPayTxn::Query => "unionpay.query",
            UnionPayTxn::Cancel => "unionpay.cancel",
            UnionPayTxn::Refund => "unionpay.refund",
            UnionPayTxn::FileTransfer => "unionpay.file_transfer",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Codes

/// `respCode` / `origRespCode` values this connector acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnionPayRespCode {
    /// 00
    Success,
    /// A6: succeeded "with defects"; still a success (`wallets.md` §3.1).
    SuccessWithDefects,
    /// 03
    InProcess,
    /// 04
    StatusUnknown,
    /// 05: waiting for the customer (password entry, or a QR not paid yet).
    AwaitingCustomer,
    /// 10
    FormatError,
    /// 11
    SignatureFailed,
    /// 12: duplicate `orderId` with different content.
    DuplicateOrder,
    /// 13
    MissingField,
    /// 30
    NotSupported,
    /// 31: cancelled (a consume voided by cancel or by the wallet after its window; a QR
    /// order closed).
    Cancelled,
    /// 34
    OriginalNotFound,
    /// 35
    StateForbids,
    /// 36
    AmountExceeds,
    /// 61: payment code invalid or already used.
    CodeInvalid,
    /// 64: payment code expired.
    CodeExpired,
    /// 65: insufficient balance.
    InsufficientBalance,
    /// Anything else, including an absent code.
    Unrecognised,
}

impl UnionPayRespCode {
    pub(super) fn parse(code: &str) -> Self {
        match code {
            "00" => UnionPayRespCode::Success,
            "A6" => UnionPayRespCode::SuccessWithDefects,
            "03" => UnionPayRespCode::InProcess,
            "04" => UnionPayRespCode::StatusUnknown,
            "05" => UnionPayRespCode::AwaitingCustomer,
            "10" => UnionPayRespCode::FormatError,
            "11" => UnionPayRespCode::SignatureFailed,
            "12" => UnionPayRespCode::DuplicateOrder,
            "13" => UnionPayRespCode::MissingField,
            "30" => UnionPayRespCode::NotSupported,
            "31" => UnionPayRespCode::Cancelled,
            "34" => UnionPayRespCode::OriginalNotFound,
            "35" => UnionPayRespCode::StateForbids,
            "36" => UnionPayRespCode::AmountExceeds,
            "61" => UnionPayRespCode::CodeInvalid,
            "64" => UnionPayRespCode::CodeExpired,
            "65" => UnionPayRespCode::InsufficientBalance,
            _ => UnionPayRespCode::Unrecognised,
        }
    }

    /// The request itself was refused: our bug or our configuration.
    fn is_request_error(self) -> bool {
        matches!(
            self,
            UnionPayRespCode::FormatError
                | UnionPayRespCode::SignatureFailed
                | UnionPayRespCode::MissingField
                | UnionPayRespCode::NotSupported
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Who we are at UnionPay, and where notifications go by default.
#[derive(Debug, Clone, Copy)]
pub(super) struct UnionPayMerchant<'a> {
    pub(super) mer_id: &'a str,
    pub(super) cert_id: &'a str,
    pub(super) back_url: &'a str,
}

/// An unsigned request: fields in the order they are built, `signature` not yet added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnionPayRequest {
    pub(super) txn: UnionPayTxn,
    /// The `orderId` sent, which the answer must echo if it names one (the file transfer
    /// sends none).
    pub(super) order_id: Option<String>,
    fields: Vec<(&'static str, String)>,
}

impl UnionPayRequest {
    /// The common fields of the profile, in the order of its table.
    fn new(
        merchant: &UnionPayMerchant<'_>,
        txn: UnionPayTxn,
        order_id: &str,
        txn_time: DateTime<Utc>,
    ) -> Result<Self, ConnectorError> {
        check_order_id(order_id)?;
        let txn_time = beijing_time(txn_time)?;
        let fields = vec![
            ("version", VERSION.to_owned()),
            ("encoding", ENCODING.to_owned()),
            ("signMethod", SIGN_METHOD_RSA.to_owned()),
            ("certId", merchant.cert_id.to_owned()),
            ("txnType", txn.txn_type().to_owned()),
            ("txnSubType", txn.txn_sub_type().to_owned()),
            ("bizType", BIZ_TYPE_QR.to_owned()),
            ("accessType", ACCESS_TYPE_MERCHANT.to_owned()),
            ("channelType", CHANNEL_TYPE_MOBILE.to_owned()),
            ("merId", merchant.mer_id.to_owned()),
            ("orderId", order_id.to_owned()),
            ("txnTime", txn_time),
        ];
        Ok(UnionPayRequest {
            txn,
            order_id: Some(order_id.to_owned()),
            fields,
        })
    }

    /// 76/01 file transfer of the merchant reconciliation file (`fileType=00`) of the settle
    /// date `settle_date`, sent at `now` (`bills.md` §3.1). No `orderId`: the request names the
    /// file by `settleDate` (MMDD) alone. `channelType` is `07` as in UnionPay's demo.
    pub(super) fn file_transfer(
        merchant: &UnionPayMerchant<'_>,
        settle_date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Self, ConnectorError> {
        let txn = UnionPayTxn::FileTransfer;
        let fields = vec![
            ("version", VERSION.to_owned()),
            ("encoding", ENCODING.to_owned()),
            ("signMethod", SIGN_METHOD_RSA.to_owned()),
            ("certId", merchant.cert_id.to_owned()),
            ("txnType", txn.txn_type().to_owned()),
            ("txnSubType", txn.txn_sub_type().to_owned()),
            ("bizType", BIZ_TYPE_QR.to_owned()),
            ("accessType", ACCESS_TYPE_MERCHANT.to_owned()),
            ("channelType", CHANNEL_TYPE_INTERNET.to_owned()),
            ("merId", merchant.mer_id.to_owned()),
            ("txnTime", beijing_time(now)?),
            ("settleDate", settle_date.format("%m%d").to_string()),
            ("fileType", FILE_TYPE_MERCHANT.to_owned()),
        ];
        Ok(UnionPayRequest {
            txn,
            order_id: None,
            fields,
        })
    }

    fn push(&mut self, name: &'static str, value: impl Into<String>) {
        self.fields.push((name, value.into()));
    }

    /// `txnAmt` in integer minor units and `currencyCode` as the numeric ISO 4217 code.
    fn push_amount(&mut self, amount: Money) -> Result<(), ConnectorError> {
        if amount.minor() <= 0 {
            return Err(ConnectorError::Rejected {
                code: "LOCAL_AMOUNT".into(),
                message: format!("{amount} is not a positive amount"),
            });
        }
        self.push("txnAmt", amount.minor().to_string());
        self.push("currencyCode", currency_code(amount.currency()));
        Ok(())
    }

    /// `termId` when the POS told us one.
    fn push_terminal(&mut self, terminal_id: Option<&str>) {
        if let Some(terminal_id) = terminal_id.filter(|t| !t.is_empty()) {
            self.push("termId", terminal_id);
        }
    }

    /// The fields as signed and sent (without `signature`).
    pub(super) fn fields(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.fields.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// The URL-encoded body with `signature` appended. Empty values are left out, as they
    /// are left out of the signature.
    pub(super) fn form_body(&self, signature: &str) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.fields().filter(|(_, v)| !v.is_empty()) {
            form.append_pair(k, v);
        }
        form.append_pair(sign::SIGNATURE, signature);
        form.finish()
    }
}

/// 01/06 consume with the scanned code in `qrNo`. The code's format is not checked here: the
/// wallet decides (`61` if it is not a valid code). `backUrl` is required on a consume; the
/// request has none of its own, so the configured default is sent.
pub(super) fn consume_request(
    merchant: &UnionPayMerchant<'_>,
    req: &CodePaymentRequest,
) -> Result<UnionPayRequest, ConnectorError> {
    let mut request = UnionPayRequest::new(
        merchant,
        UnionPayTxn::Consume,
        &req.out_trade_no,
        req.created_at,
    )?;
    request.push_amount(req.amount)?;
    request.push("backUrl", merchant.back_url);
    request.push("qrNo", req.auth_code.as_str());
    request.push_terminal(req.terminal_id.as_deref());
    Ok(request)
}

/// 01/07 apply for a consumption QR. `payTimeout` is `expires_at` in Beijing time, rounded
/// down to the second, so the QR is never payable after the engine's deadline.
pub(super) fn apply_qr_request(
    merchant: &UnionPayMerchant<'_>,
    req: &QrOrderRequest,
) -> Result<UnionPayRequest, ConnectorError> {
    if req.expires_at <= req.created_at {
        return Err(ConnectorError::Rejected {
            code: "LOCAL_EXPIRES_AT".into(),
            message: "the QR order's expires_at is not after its created_at".into(),
        });
    }
    let mut request = UnionPayRequest::new(
        merchant,
        UnionPayTxn::ApplyQr,
        &req.out_trade_no,
        req.created_at,
    )?;
    request.push_amount(req.amount)?;
    let back_url = if req.notify_url.is_empty() {
        merchant.back_url
    } else {
        req.notify_url.as_str()
    };
    request.push("backUrl", back_url);
    request.push("payTimeout", beijing_time(req.expires_at)?);
    request.push_terminal(req.terminal_id.as_deref());
    Ok(request)
}

/// 00/00 query of the transaction sent as `order_id` at `txn_time` (an order, or a refund
/// under its own `orderId`).
pub(super) fn query_request(
    merchant: &UnionPayMerchant<'_>,
    order_id: &str,
    txn_time: DateTime<Utc>,
) -> Result<UnionPayRequest, ConnectorError> {
    UnionPayRequest::new(merchant, UnionPayTxn::Query, order_id, txn_time)
}

/// The `orderId` of a cancel sent at `now`: `C` + `txnTime` + 17 random alphanumerics (the
/// caller's `suffix`), 32 characters in all. A cancel is a transaction of its own and needs a
/// new number; the engine's `OrderRef` has none to offer, and the cancel is traced in logs
/// next to the original `out_trade_no`.
pub(super) fn cancel_order_id(now: DateTime<Utc>, suffix: &str) -> Result<String, ConnectorError> {
    let order_id = format!("{CANCEL_ORDER_ID_PREFIX}{}{suffix}", beijing_time(now)?);
    check_order_id(&order_id)?;
    Ok(order_id)
}

/// 31/00 cancel of the consume `orig_qry_id`, for its full `amount` (the profile: `txnAmt` =
/// the original amount). No `backUrl`: a cancel notification is not a payment event, so we
/// do not ask for one.
pub(super) fn cancel_request(
    merchant: &UnionPayMerchant<'_>,
    cancel_order_id: &str,
    now: DateTime<Utc>,
    orig_qry_id: &str,
    amount: Money,
) -> Result<UnionPayRequest, ConnectorError> {
    let mut request = UnionPayRequest::new(merchant, UnionPayTxn::Cancel, cancel_order_id, now)?;
    request.push("origQryId", orig_qry_id);
    request.push_amount(amount)?;
    Ok(request)
}

/// 04/00 refund: `orderId` = `out_refund_no`, `txnTime` = the refund's `created_at` (so a
/// retry is the same transaction), `origQryId` = the paid order's `queryId`. The refund is in
/// the order's currency; anything else is refused before sending. No `backUrl`, as for a
/// cancel: refunds are settled by query.
pub(super) fn refund_request(
    merchant: &UnionPayMerchant<'_>,
    req: &RefundRequest,
    orig_qry_id: &str,
) -> Result<UnionPayRequest, ConnectorError> {
    if req.refund_amount.currency() != req.order_amount.currency() {
        return Err(ConnectorError::Rejected {
            code: "LOCAL_CURRENCY_MISMATCH".into(),
            message: format!(
                "refund in {} of an order in {}",
                req.refund_amount.currency(),
                req.order_amount.currency()
            ),
        });
    }
    let mut request = UnionPayRequest::new(
        merchant,
        UnionPayTxn::Refund,
        &req.out_refund_no,
        req.created_at,
    )?;
    request.push("origQryId", orig_qry_id);
    request.push_amount(req.refund_amount)?;
    Ok(request)
}

/// `orderId` must be 8–32 ASCII alphanumerics; UnionPay answers a format error otherwise,
/// and saying so before sending gives a clearer error (and nothing to settle).
pub(super) fn check_order_id(order_id: &str) -> Result<(), ConnectorError> {
    let length_ok = (ORDER_ID_MIN_LEN..=ORDER_ID_MAX_LEN).contains(&order_id.len());
    if length_ok && order_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(());
    }
    Err(ConnectorError::Rejected {
        code: "LOCAL_ORDER_ID".into(),
        message: format!(
            "UnionPay orderId must be {ORDER_ID_MIN_LEN} to {ORDER_ID_MAX_LEN} letters or digits, got {order_id:?}"
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Units

/// The numeric ISO 4217 code UnionPay uses for `currencyCode`.
pub(super) fn currency_code(currency: Currency) -> &'static str {
    match currency {
        Currency::Cny => "156",
        Currency::Cad => "124",
        Currency::Usd => "840",
    }
}

pub(super) fn currency_from_code(code: &str) -> Option<Currency> {
    Currency::ALL
        .into_iter()
        .find(|c| currency_code(*c) == code)
}

/// A UTC instant as UnionPay's Beijing `yyyyMMddHHmmss`; sub-seconds are dropped (rounded
/// down).
pub(super) fn beijing_time(t: DateTime<Utc>) -> Result<String, ConnectorError> {
    let local = t
        .naive_utc()
        .checked_add_signed(BEIJING_OFFSET)
        .ok_or_else(|| ConnectorError::Rejected {
            code: "LOCAL_TIME".into(),
            message: "time out of range".into(),
        })?;
    Ok(local.format(TIME_FORMAT).to_string())
}

/// Parses a Beijing `yyyyMMddHHmmss` (exactly 14 digits).
pub(super) fn parse_beijing_time(text: &str) -> Option<DateTime<Utc>> {
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let local = NaiveDateTime::parse_from_str(text, TIME_FORMAT).ok()?;
    Some(local.checked_sub_signed(BEIJING_OFFSET)?.and_utc())
}

/// Parses an unsigned integer field (`txnAmt`, `settleAmt`, `exchangeRate`): ASCII digits
/// only, no sign, no leading zeros (except `0` itself), no more than 15 digits.
pub(super) fn parse_integer(text: &str) -> Option<i64> {
    let well_formed = !text.is_empty()
        && text.len() <= AMOUNT_MAX_DIGITS
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !well_formed {
        return None;
    }
    i64::from_str(text).ok()
}

// ---------------------------------------------------------------------------------------------
// Answers

/// An answer whose signature, certificate, `merId` and `orderId` were checked.
#[derive(Debug, Clone)]
pub(super) struct UnionPayAnswer {
    fields: Vec<(String, String)>,
}

impl UnionPayAnswer {
    /// A field's value; an empty value counts as absent (it was not signed either).
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        field(&self.fields, name)
    }

    /// `respCode` as this connector reads it.
    pub(super) fn code(&self) -> UnionPayRespCode {
        self.resp_code()
    }

    /// `respCode` and `respMsg` verbatim.
    pub(super) fn code_and_message(&self) -> (String, String) {
        (self.resp_code_text().to_owned(), self.resp_msg())
    }

    /// The answer as a refusal of our request (`Rejected`) or an unknown outcome.
    pub(super) fn failure(&self, txn: UnionPayTxn) -> ConnectorError {
        if self.resp_code().is_request_error() {
            self.rejected()
        } else {
            self.warn_unexpected(txn);
            self.unknown(txn)
        }
    }

    fn resp_code_text(&self) -> &str {
        self.get(RESP_CODE).unwrap_or("")
    }

    fn resp_code(&self) -> UnionPayRespCode {
        UnionPayRespCode::parse(self.resp_code_text())
    }

    fn resp_msg(&self) -> String {
        self.get(RESP_MSG).unwrap_or_default().to_owned()
    }

    fn rejected(&self) -> ConnectorError {
        ConnectorError::Rejected {
            code: self.resp_code_text().to_owned(),
            message: self.resp_msg(),
        }
    }

    fn declined(&self) -> ConnectorError {
        ConnectorError::Declined {
            code: self.resp_code_text().to_owned(),
            message: self.resp_msg(),
        }
    }

    fn unknown(&self, txn: UnionPayTxn) -> ConnectorError {
        ConnectorError::OutcomeUnknown(format!(
            "{} answered respCode {:?}: {}",
            txn.name(),
            self.resp_code_text(),
            self.resp_msg()
        ))
    }

    fn warn_unexpected(&self, txn: UnionPayTxn) {
        tracing::warn!(
            wallet = "unionpay",
            operation = txn.name(),
            resp_code = self.resp_code_text(),
            "unexpected respCode"
        );
    }

    /// `txnAmt` in `currencyCode`. Absent → `None`; present but unreadable, or in a currency
    /// we do not know → `BadResponse`, because the engine checks the amount against its order.
    fn amount(&self) -> Result<Option<Money>, ConnectorError> {
        order_amount(&self.fields).map_err(|what| bad(&what))
    }
}

fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Checks an HTTP answer to `request` and opens it.
///
/// Errors: 5xx → `OutcomeUnknown` (the request may have been processed); other non-2xx →
/// `Rejected` (4xx) or `BadResponse`; a body that is not a UTF-8 form, repeats a field, lacks
/// `respCode`, is unsigned, carries a certificate that does not chain to the configured root
/// or a signature that does not verify, uses another `signMethod`, or names another `merId`
/// or `orderId` → `BadResponse`. An unsigned answer is never trusted, whatever it says.
pub(super) fn open_answer(
    request: &UnionPayRequest,
    http_status: u16,
    body: &[u8],
    trust: &UnionPayTrust,
    now: DateTime<Utc>,
    mer_id: &str,
) -> Result<UnionPayAnswer, ConnectorError> {
    let txn = request.txn;
    match http_status {
        200..=299 => {}
        500..=599 => {
            return Err(ConnectorError::OutcomeUnknown(format!(
                "{}: HTTP {http_status}",
                txn.name()
            )))
        }
        400..=499 => {
            return Err(ConnectorError::Rejected {
                code: format!("HTTP_{http_status}"),
                message: format!("{} refused at the HTTP level", txn.name()),
            })
        }
        _ => return Err(bad(&format!("unexpected HTTP status {http_status}"))),
    }
    let fields = parse_form(body).map_err(|what| bad(&what))?;
    trust
        .verify(borrowed(&fields), now)
        .map_err(|e| bad(&format!("{}: {e}", txn.name())))?;
    check_sign_method(&fields).map_err(|what| bad(&what))?;
    if field(&fields, MER_ID).is_some_and(|m| m != mer_id) {
        return Err(bad("the answer names another merId"));
    }
    if field(&fields, ORDER_ID).is_some_and(|o| Some(o) != request.order_id.as_deref()) {
        return Err(bad("the answer is about another orderId"));
    }
    if field(&fields, RESP_CODE).is_none() {
        return Err(bad("the answer has no respCode"));
    }
    Ok(UnionPayAnswer { fields })
}

fn borrowed(fields: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> + Clone {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Decodes a form body, refusing repeated fields (which copy was signed would be ambiguous)
/// and bodies with no fields.
fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if fields.is_empty() {
        return Err("the body has no fields".into());
    }
    let mut names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair.first() == pair.get(1)) {
        return Err("a field is repeated".into());
    }
    Ok(fields)
}

/// A message signed with another method than `01` was not signed the way we verified it.
fn check_sign_method(fields: &[(String, String)]) -> Result<(), String> {
    match field(fields, SIGN_METHOD) {
        None | Some(SIGN_METHOD_RSA) => Ok(()),
        Some(other) => Err(format!("signMethod {other} is not supported")),
    }
}

fn bad(what: &str) -> ConnectorError {
    ConnectorError::BadResponse(format!("unionpay: {what}"))
}

/// `txnAmt` in `currencyCode`, as [`UnionPayAnswer::amount`] describes.
fn order_amount(fields: &[(String, String)]) -> Result<Option<Money>, String> {
    let Some(amount) = field(fields, TXN_AMT) else {
        return Ok(None);
    };
    let minor = parse_integer(amount).ok_or_else(|| format!("malformed txnAmt {amount:?}"))?;
    let Some(code) = field(fields, CURRENCY_CODE) else {
        tracing::warn!(wallet = "unionpay", "txnAmt without currencyCode ignored");
        return Ok(None);
    };
    let currency =
        currency_from_code(code).ok_or_else(|| format!("unsupported currencyCode {code:?}"))?;
    Ok(Some(Money::new(minor, currency)))
}

/// What the customer paid: `settleAmt` in `settleCurrencyCode` (CNY when absent, as the
/// profile fixes). Informative only, so an unreadable value is dropped with a warning.
fn payer_amount(fields: &[(String, String)]) -> Option<Money> {
    let amount = field(fields, SETTLE_AMT)?;
    let currency = match field(fields, SETTLE_CURRENCY_CODE) {
        None => Some(Currency::Cny),
        Some(code) => currency_from_code(code),
    };
    let parsed = currency
        .zip(parse_integer(amount))
        .map(|(c, minor)| Money::new(minor, c));
    if parsed.is_none() {
        tracing::warn!(wallet = "unionpay", "unreadable settleAmt dropped");
    }
    parsed
}

/// What the customer gets back in CNY, as the answer states it: `settleAmt` when its
/// currency (`settleCurrencyCode`, CNY when absent, as for payments) is CNY; without a
/// `settleAmt`, the refund's `txnAmt` when that is in CNY. `None` otherwise.
fn refund_cny(fields: &[(String, String)], amount: Option<Money>) -> Option<Money> {
    if field(fields, SETTLE_AMT).is_none() {
        return amount.filter(|a| a.currency() == Currency::Cny);
    }
    payer_amount(fields).filter(|a| a.currency() == Currency::Cny)
}

/// `exchangeRate`: pricing → CNY ×10^8 as an integer string (the profile's decision).
fn rate_e8(fields: &[(String, String)]) -> Option<i64> {
    let text = field(fields, EXCHANGE_RATE)?;
    let rate = parse_integer(text).filter(|r| *r > 0);
    if rate.is_none() {
        tracing::warn!(
            wallet = "unionpay",
            exchange_rate = text,
            "unreadable exchangeRate dropped"
        );
    }
    rate
}

/// The buyer as UnionPay may name it to a merchant: `accNo`, the payer's card number, taken
/// only when it comes masked (`6216********0018`); a full number is never kept, and an
/// encrypted one (`encryptCertId` present) is not readable here.
fn masked_account(fields: &[(String, String)]) -> Option<String> {
    let acc = field(fields, "accNo")?;
    let masked = acc.contains('*')
        && acc.len() <= 32
        && acc.bytes().all(|b| b.is_ascii_digit() || b == b'*');
    masked.then(|| acc.to_owned())
}

/// The paid order as the answer's fields describe it.
fn paid_order(
    fields: &[(String, String)],
    out_trade_no: &str,
    amount: Option<Money>,
) -> ChannelOrder {
    ChannelOrder {
        out_trade_no: out_trade_no.to_owned(),
        status: ChannelStatus::Paid,
        channel_ref: field(fields, QUERY_ID).map(str::to_owned),
        amount,
        payer_amount: payer_amount(fields),
        rate_e8: rate_e8(fields),
        buyer: masked_account(fields),
        // `traceTime` is read only in the 14-digit form; ACP's 10-digit `MMddHHmmss` has no
        // year, and guessing one is worse than leaving the time to the engine's clock.
        paid_at: field(fields, TRACE_TIME).and_then(parse_beijing_time),
        wallet_code: None,
        wallet_message: None,
    }
}

fn bare_order(
    out_trade_no: &str,
    status: ChannelStatus,
    channel_ref: Option<&str>,
    code: &str,
    message: Option<&str>,
) -> ChannelOrder {
    ChannelOrder {
        out_trade_no: out_trade_no.to_owned(),
        status,
        channel_ref: channel_ref.map(str::to_owned),
        amount: None,
        payer_amount: None,
        rate_e8: None,
        buyer: None,
        paid_at: None,
        wallet_code: (!code.is_empty()).then(|| code.to_owned()),
        wallet_message: message.filter(|m| !m.is_empty()).map(str::to_owned),
    }
}

// ---------------------------------------------------------------------------------------------
// Per-transaction outcomes

/// 01/06 consume: `00`/`A6` → `Paid` (the profile treats a consume's `00` as final,
/// `wallets.md` open point 11); `05` → `PendingUser`; `03`/`04` → `Unknown`; `61`/`64`/`65`
/// and `12` → `Declined` with the code verbatim; `10`/`11`/`13`/`30` → `Rejected`; anything
/// else → `Unknown` with a warning, so the engine queries.
pub(super) fn consume_outcome(
    answer: &UnionPayAnswer,
    out_trade_no: &str,
) -> Result<ChannelOrder, ConnectorError> {
    let code = answer.resp_code();
    let waiting = |status| {
        let mut order = bare_order(
            out_trade_no,
            status,
            answer.get(QUERY_ID),
            answer.resp_code_text(),
            answer.get(RESP_MSG),
        );
        // Echoed for the engine's checks; never trusted without the currency.
        order.amount = answer.amount().ok().flatten();
        order
    };
    match code {
        UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {
            Ok(paid_order(&answer.fields, out_trade_no, answer.amount()?))
        }
        UnionPayRespCode::AwaitingCustomer => Ok(waiting(ChannelStatus::PendingUser)),
        UnionPayRespCode::InProcess | UnionPayRespCode::StatusUnknown => {
            Ok(waiting(ChannelStatus::Unknown))
        }
        UnionPayRespCode::CodeInvalid
        | UnionPayRespCode::CodeExpired
        | UnionPayRespCode::InsufficientBalance
        | UnionPayRespCode::DuplicateOrder => Err(answer.declined()),
        UnionPayRespCode::FormatError
        | UnionPayRespCode::SignatureFailed
        | UnionPayRespCode::MissingField
        | UnionPayRespCode::NotSupported => Err(answer.rejected()),
        UnionPayRespCode::Cancelled
        | UnionPayRespCode::OriginalNotFound
        | UnionPayRespCode::StateForbids
        | UnionPayRespCode::AmountExceeds
        | UnionPayRespCode::Unrecognised => {
            answer.warn_unexpected(UnionPayTxn::Consume);
            Ok(waiting(ChannelStatus::Unknown))
        }
    }
}

/// 01/07 apply-QR: `00`/`A6` with a `qrCode` → the QR; `12` → `Declined`; request errors →
/// `Rejected`; anything else (including `03`/`04`/`05`) → `OutcomeUnknown`: the engine's
/// query tells whether the order exists.
pub(super) fn apply_qr_outcome(
    answer: &UnionPayAnswer,
    out_trade_no: &str,
) -> Result<QrOrder, ConnectorError> {
    let code = answer.resp_code();
    match code {
        UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {
            let code_url = answer
                .get(QR_CODE)
                .ok_or_else(|| bad("apply-QR succeeded without a qrCode"))?;
            Ok(QrOrder {
                out_trade_no: out_trade_no.to_owned(),
                code_url: code_url.to_owned(),
            })
        }
        UnionPayRespCode::DuplicateOrder => Err(answer.declined()),
        c if c.is_request_error() => Err(answer.rejected()),
        UnionPayRespCode::InProcess
        | UnionPayRespCode::StatusUnknown
        | UnionPayRespCode::AwaitingCustomer => Err(answer.unknown(UnionPayTxn::ApplyQr)),
        _ => {
            answer.warn_unexpected(UnionPayTxn::ApplyQr);
            Err(answer.unknown(UnionPayTxn::ApplyQr))
        }
    }
}

/// What a 00/00 query learnt about one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UnionPayQueried {
    /// `respCode=34`: UnionPay has no transaction under that `orderId` + `txnTime`.
    NotFound { message: Option<String> },
    /// `respCode` `03`/`04`/`05`, or a code with no meaning for a query: ask again later.
    Inconclusive {
        code: String,
        message: Option<String>,
    },
    /// `respCode=00`: the query worked; the transaction's own result is in `orig`.
    Found(UnionPayQueriedTxn),
}

/// The queried transaction (`respCode=00`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnionPayQueriedTxn {
    pub(super) orig: UnionPayRespCode,
    /// `origRespCode` verbatim; empty when absent.
    pub(super) orig_code: String,
    pub(super) orig_message: Option<String>,
    pub(super) query_id: Option<String>,
    pub(super) amount: Option<Money>,
    fields: Vec<(String, String)>,
}

/// Reads a query answer. Request errors → `Rejected`; a `txnAmt` we cannot read →
/// `BadResponse`; everything else is one of the [`UnionPayQueried`] cases.
pub(super) fn parse_query(answer: &UnionPayAnswer) -> Result<UnionPayQueried, ConnectorError> {
    let code = answer.resp_code();
    let message = answer.get(RESP_MSG).map(str::to_owned);
    match code {
        UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {
            let orig_code = answer.get(ORIG_RESP_CODE).unwrap_or("").to_owned();
            Ok(UnionPayQueried::Found(UnionPayQueriedTxn {
                orig: UnionPayRespCode::parse(&orig_code),
                orig_code,
                orig_message: answer.get(ORIG_RESP_MSG).map(str::to_owned),
                query_id: answer.get(QUERY_ID).map(str::to_owned),
                amount: answer.amount()?,
                fields: answer.fields.clone(),
            }))
        }
        UnionPayRespCode::OriginalNotFound => Ok(UnionPayQueried::NotFound { message }),
        c if c.is_request_error() => Err(answer.rejected()),
        UnionPayRespCode::InProcess
        | UnionPayRespCode::StatusUnknown
        | UnionPayRespCode::AwaitingCustomer => Ok(UnionPayQueried::Inconclusive {
            code: answer.resp_code_text().to_owned(),
            message,
        }),
        _ => {
            answer.warn_unexpected(UnionPayTxn::Query);
            Ok(UnionPayQueried::Inconclusive {
                code: answer.resp_code_text().to_owned(),
                message,
            })
        }
    }
}

/// The order's state from a query (profile: "00 + 00 = success, 03/04/05 = still processing,
/// 31 = cancelled/closed, anything else = failed").
///
/// * `respCode=34` → `Failed` with wallet code `34`: the order never reached UnionPay. For a
///   QR order that is not paid yet UnionPay may also answer this; the engine, which knows
///   which kind of order it asked about, decides (the trait's contract).
/// * `origRespCode=31` → `Closed` with wallet code `31`. For a consume that is really a
///   reversal (cancelled, or revoked by the wallet after its window); for a QR order it is a
///   close. The answer does not say which; the engine does, from its own order.
/// * `respCode` `03`/`04`/`05` → `Unknown`; `origRespCode` `05` → `PendingUser`, `03`/`04` →
///   `Unknown`; an answer without `origRespCode` → `Unknown` with a warning.
pub(super) fn query_order_outcome(queried: &UnionPayQueried, out_trade_no: &str) -> ChannelOrder {
    match queried {
        UnionPayQueried::NotFound { message } => bare_order(
            out_trade_no,
            ChannelStatus::Failed,
            None,
            "34",
            message.as_deref(),
        ),
        UnionPayQueried::Inconclusive { code, message } => bare_order(
            out_trade_no,
            ChannelStatus::Unknown,
            None,
            code,
            message.as_deref(),
        ),
        UnionPayQueried::Found(txn) => {
            let status = match txn.orig {
                UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {
                    return paid_order(&txn.fields, out_trade_no, txn.amount);
                }
                UnionPayRespCode::AwaitingCustomer => ChannelStatus::PendingUser,
                UnionPayRespCode::InProcess | UnionPayRespCode::StatusUnknown => {
                    ChannelStatus::Unknown
                }
                UnionPayRespCode::Cancelled => ChannelStatus::Closed,
                UnionPayRespCode::Unrecognised if txn.orig_code.is_empty() => {
                    tracing::warn!(wallet = "unionpay", "query answer without origRespCode");
                    ChannelStatus::Unknown
                }
                UnionPayRespCode::Unrecognised => {
                    tracing::warn!(
                        wallet = "unionpay",
                        orig_resp_code = %txn.orig_code,
                        "unrecognised origRespCode read as failed, as the profile says"
                    );
                    ChannelStatus::Failed
                }
                UnionPayRespCode::FormatError
                | UnionPayRespCode::SignatureFailed
                | UnionPayRespCode::DuplicateOrder
                | UnionPayRespCode::MissingField
                | UnionPayRespCode::NotSupported
                | UnionPayRespCode::OriginalNotFound
                | UnionPayRespCode::StateForbids
                | UnionPayRespCode::AmountExceeds
                | UnionPayRespCode::CodeInvalid
                | UnionPayRespCode::CodeExpired
                | UnionPayRespCode::InsufficientBalance => ChannelStatus::Failed,
            };
            let mut order = bare_order(
                out_trade_no,
                status,
                txn.query_id.as_deref(),
                &txn.orig_code,
                txn.orig_message.as_deref(),
            );
            order.amount = txn.amount;
            order
        }
    }
}

/// What `reverse_order` does after querying the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UnionPayReversePlan {
    /// Nothing to send: the order is already where a reversal would put it, or the query
    /// cannot tell yet.
    Settled(ReverseOutcome),
    /// Send a cancel of `orig_qry_id` for `amount`.
    Cancel { orig_qry_id: String, amount: Money },
}

/// Decides the reversal from a query of the order. A cancel needs the original `txnAmt`,
/// which `OrderRef` does not carry, so the connector always queries first.
///
/// * `respCode=34` → `Done`: the consume never reached UnionPay; nothing to reverse.
/// * query `03`/`04`/`05` → `CallAgain`.
/// * `origRespCode=31` → `Done` (already cancelled or revoked).
/// * `origRespCode` `00`/`A6`/`03`/`04`/`05` → cancel (a cancel voids an unconfirmed or a
///   paid consume). `origQryId` is the query's `queryId`, else `channel_ref`.
/// * any other `origRespCode` → `Done`: the consume failed and moved no money.
pub(super) fn reverse_plan(
    queried: &UnionPayQueried,
    channel_ref: Option<&str>,
) -> Result<UnionPayReversePlan, ConnectorError> {
    let txn = match queried {
        UnionPayQueried::NotFound { .. } => {
            return Ok(UnionPayReversePlan::Settled(ReverseOutcome::Done))
        }
        UnionPayQueried::Inconclusive { .. } => {
            return Ok(UnionPayReversePlan::Settled(ReverseOutcome::CallAgain))
        }
        UnionPayQueried::Found(txn) => txn,
    };
    match txn.orig {
        UnionPayRespCode::Success
        | UnionPayRespCode::SuccessWithDefects
        | UnionPayRespCode::InProcess
        | UnionPayRespCode::StatusUnknown
        | UnionPayRespCode::AwaitingCustomer => {}
        UnionPayRespCode::Unrecognised if txn.orig_code.is_empty() => {
            tracing::warn!(wallet = "unionpay", "query answer without origRespCode");
            return Ok(UnionPayReversePlan::Settled(ReverseOutcome::CallAgain));
        }
        UnionPayRespCode::Cancelled
        | UnionPayRespCode::FormatError
        | UnionPayRespCode::SignatureFailed
        | UnionPayRespCode::DuplicateOrder
        | UnionPayRespCode::MissingField
        | UnionPayRespCode::NotSupported
        | UnionPayRespCode::OriginalNotFound
        | UnionPayRespCode::StateForbids
        | UnionPayRespCode::AmountExceeds
        | UnionPayRespCode::CodeInvalid
        | UnionPayRespCode::CodeExpired
        | UnionPayRespCode::InsufficientBalance
        | UnionPayRespCode::Unrecognised => {
            return Ok(UnionPayReversePlan::Settled(ReverseOutcome::Done))
        }
    }
    let orig_qry_id = txn
        .query_id
        .as_deref()
        .or(channel_ref)
        .ok_or_else(|| bad("the order exists but the query gave no queryId to cancel"))?;
    let amount = txn
        .amount
        .ok_or_else(|| bad("the order exists but the query gave no txnAmt to cancel"))?;
    Ok(UnionPayReversePlan::Cancel {
        orig_qry_id: orig_qry_id.to_owned(),
        amount,
    })
}

/// 31/00 cancel: `00`/`A6` → `Done`; `03`/`04`/`05` → `CallAgain`; `34` → `Done` (UnionPay
/// knows no such original: nothing to cancel); `35` (too late, or a state that forbids it),
/// `36` and `12` → `Declined`, after which the engine queries and refunds if needed;
/// request errors → `Rejected`; anything else → `OutcomeUnknown`.
pub(super) fn cancel_outcome(answer: &UnionPayAnswer) -> Result<ReverseOutcome, ConnectorError> {
    match answer.resp_code() {
        UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {
            Ok(ReverseOutcome::Done)
        }
        UnionPayRespCode::InProcess
        | UnionPayRespCode::StatusUnknown
        | UnionPayRespCode::AwaitingCustomer => Ok(ReverseOutcome::CallAgain),
        UnionPayRespCode::OriginalNotFound => Ok(ReverseOutcome::Done),
        UnionPayRespCode::StateForbids
        | UnionPayRespCode::AmountExceeds
        | UnionPayRespCode::DuplicateOrder => Err(answer.declined()),
        c if c.is_request_error() => Err(answer.rejected()),
        _ => {
            answer.warn_unexpected(UnionPayTxn::Cancel);
            Err(answer.unknown(UnionPayTxn::Cancel))
        }
    }
}

/// UnionPay has no close for an unpaid QR order: it simply stops being payable at its
/// `payTimeout`. So "close" is a query: not found (`34`), waiting (`05`), cancelled (`31`) or
/// failed → `Ok` (nothing was or will be taken after `payTimeout`, which `create_qr_order`
/// set to the engine's `expires_at`); paid → `Declined { ORDER_PAID }`; in process
/// (`03`/`04`, or the query itself in process) → `OutcomeUnknown`, to be asked again.
pub(super) fn close_outcome(queried: &UnionPayQueried) -> Result<(), ConnectorError> {
    let txn = match queried {
        UnionPayQueried::NotFound { .. } => return Ok(()),
        UnionPayQueried::Inconclusive { code, .. } => {
            return Err(ConnectorError::OutcomeUnknown(format!(
                "unionpay: the query before close answered respCode {code:?}"
            )))
        }
        UnionPayQueried::Found(txn) => txn,
    };
    match txn.orig {
        UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {
            Err(ConnectorError::Declined {
                code: "ORDER_PAID".into(),
                message: "the UnionPay order is already paid".into(),
            })
        }
        UnionPayRespCode::InProcess | UnionPayRespCode::StatusUnknown => {
            Err(ConnectorError::OutcomeUnknown(format!(
                "unionpay: the order is in process (origRespCode {})",
                txn.orig_code
            )))
        }
        UnionPayRespCode::Unrecognised if txn.orig_code.is_empty() => Err(
            ConnectorError::OutcomeUnknown("unionpay: query answer without origRespCode".into()),
        ),
        UnionPayRespCode::AwaitingCustomer
        | UnionPayRespCode::Cancelled
        | UnionPayRespCode::FormatError
        | UnionPayRespCode::SignatureFailed
        | UnionPayRespCode::DuplicateOrder
        | UnionPayRespCode::MissingField
        | UnionPayRespCode::NotSupported
        | UnionPayRespCode::OriginalNotFound
        | UnionPayRespCode::StateForbids
        | UnionPayRespCode::AmountExceeds
        | UnionPayRespCode::CodeInvalid
        | UnionPayRespCode::CodeExpired
        | UnionPayRespCode::InsufficientBalance
        | UnionPayRespCode::Unrecognised => Ok(()),
    }
}

/// The `origQryId` of a refund when the engine did not know the order's `queryId`: the
/// query's `queryId`. `34` → `Declined { 34 }` (no such order to refund); a query that cannot
/// answer yet → `Unavailable` (nothing was sent; retry); found without a `queryId` →
/// `BadResponse`. Whether the order is refundable is left to UnionPay (`35` if it is not).
pub(super) fn refund_orig_qry_id(queried: &UnionPayQueried) -> Result<String, ConnectorError> {
    match queried {
        UnionPayQueried::NotFound { message } => Err(ConnectorError::Declined {
            code: "34".into(),
            message: message
                .clone()
                .unwrap_or_else(|| "the order to refund is unknown to UnionPay".into()),
        }),
        UnionPayQueried::Inconclusive { code, .. } => Err(ConnectorError::Unavailable(format!(
            "unionpay: the order's queryId is not known yet (query respCode {code:?}); refund not sent"
        ))),
        UnionPayQueried::Found(txn) => txn
            .query_id
            .clone()
            .ok_or_else(|| bad("the order exists but the query gave no queryId to refund")),
    }
}

/// 04/00 refund: `00`/`A6` → `Processing` (accepted; its own query says when it is done);
/// `03`/`04`/`05` → `Unknown`; `34`, `35`, `36` and `12` → `Declined`; request errors →
/// `Rejected`; anything else → `Unknown` with a warning, so the engine queries the refund.
pub(super) fn refund_outcome(
    answer: &UnionPayAnswer,
    out_refund_no: &str,
) -> Result<ChannelRefund, ConnectorError> {
    let refund = |status, wallet_code: Option<&str>| -> Result<ChannelRefund, ConnectorError> {
        Ok(ChannelRefund {
            out_refund_no: out_refund_no.to_owned(),
            status,
            channel_ref: answer.get(QUERY_ID).map(str::to_owned),
            amount: answer.amount()?,
            cny_amount: refund_cny(&answer.fields, answer.amount().ok().flatten()),
            wallet_code: wallet_code.map(str::to_owned),
            wallet_message: wallet_code.and(answer.get(RESP_MSG)).map(str::to_owned),
        })
    };
    match answer.resp_code() {
        UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {
            refund(RefundStatus::Processing, None)
        }
        UnionPayRespCode::InProcess
        | UnionPayRespCode::StatusUnknown
        | UnionPayRespCode::AwaitingCustomer => {
            refund(RefundStatus::Unknown, Some(answer.resp_code_text()))
        }
        UnionPayRespCode::OriginalNotFound
        | UnionPayRespCode::StateForbids
        | UnionPayRespCode::AmountExceeds
        | UnionPayRespCode::DuplicateOrder => Err(answer.declined()),
        c if c.is_request_error() => Err(answer.rejected()),
        _ => {
            answer.warn_unexpected(UnionPayTxn::Refund);
            refund(RefundStatus::Unknown, Some(answer.resp_code_text()))
        }
    }
}

/// A refund's state from a query of its own `orderId` + `txnTime`: `origRespCode` `00`/`A6`
/// → `Succeeded`; `03`/`04`/`05` → `Processing`; anything else → `Failed` with the code;
/// `respCode=34` → `NotFound` with [`REFUND_NOT_FOUND_NOTE`] (UnionPay never took a refund
/// under that number); a query that cannot answer yet → `Unknown`.
pub(super) fn refund_query_outcome(
    queried: &UnionPayQueried,
    out_refund_no: &str,
) -> ChannelRefund {
    let mut refund = ChannelRefund {
        out_refund_no: out_refund_no.to_owned(),
        status: RefundStatus::Unknown,
        channel_ref: None,
        amount: None,
        cny_amount: None,
        wallet_code: None,
        wallet_message: None,
    };
    match queried {
        UnionPayQueried::NotFound { .. } => {
            refund.status = RefundStatus::NotFound;
            refund.wallet_code = Some("34".into());
            refund.wallet_message = Some(REFUND_NOT_FOUND_NOTE.into());
        }
        UnionPayQueried::Inconclusive { code, message } => {
            refund.wallet_code = Some(code.clone()).filter(|c| !c.is_empty());
            refund.wallet_message = message.clone();
        }
        UnionPayQueried::Found(txn) => {
            refund.channel_ref = txn.query_id.clone();
            refund.amount = txn.amount;
            refund.cny_amount = refund_cny(&txn.fields, txn.amount);
            refund.status = match txn.orig {
                UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {
                    RefundStatus::Succeeded
                }
                UnionPayRespCode::InProcess
                | UnionPayRespCode::StatusUnknown
                | UnionPayRespCode::AwaitingCustomer => RefundStatus::Processing,
                UnionPayRespCode::Unrecognised if txn.orig_code.is_empty() => {
                    tracing::warn!(wallet = "unionpay", "refund query without origRespCode");
                    RefundStatus::Unknown
                }
                UnionPayRespCode::FormatError
                | UnionPayRespCode::SignatureFailed
                | UnionPayRespCode::DuplicateOrder
                | UnionPayRespCode::MissingField
                | UnionPayRespCode::NotSupported
                | UnionPayRespCode::Cancelled
                | UnionPayRespCode::OriginalNotFound
                | UnionPayRespCode::StateForbids
                | UnionPayRespCode::AmountExceeds
                | UnionPayRespCode::CodeInvalid
                | UnionPayRespCode::CodeExpired
                | UnionPayRespCode::InsufficientBalance
                | UnionPayRespCode::Unrecognised => RefundStatus::Failed,
            };
            if refund.status != RefundStatus::Succeeded {
                refund.wallet_code = Some(txn.orig_code.clone()).filter(|c| !c.is_empty());
                refund.wallet_message = txn.orig_message.clone();
            }
        }
    }
    refund
}

// ---------------------------------------------------------------------------------------------
// Notifications

/// A verified payment notification, mapped onto the order it reports.
///
/// Steps: form-decode (repeated fields refused), verify `signPubKeyCert` and `signature`
/// exactly as for answers (any failure → `BadSignature`), then require our `merId`, a
/// consume (`txnType=01`, `txnSubType` `06` or `07`; a refund or cancel notification is not
/// a payment event → `Malformed`) and an `orderId`. `respCode` `00`/`A6` → `Paid` with
/// `queryId` and the amounts; any other `respCode` → `Unknown` with that code, so the engine
/// settles the order by query rather than by an unexpected notification.
pub(super) fn notification_order(
    body: &[u8],
    trust: &UnionPayTrust,
    now: DateTime<Utc>,
    mer_id: &str,
) -> Result<ChannelOrder, CallbackError> {
    let fields = parse_form(body).map_err(CallbackError::Malformed)?;
    trust.verify(borrowed(&fields), now).map_err(|e| {
        match e {
            // A certificate of the right CA that is not UnionPay's, or of another CA: somebody
            // signed a notification on purpose. Loud, for whoever watches the logs.
            UnionPaySignatureError::NotUnionPays { .. }
            | UnionPaySignatureError::NotPinned
            | UnionPaySignatureError::UntrustedCertificate => {
                tracing::error!(wallet = "unionpay", error = %e, "forged notification refused: signed with a certificate that is not UnionPay's");
            }
            UnionPaySignatureError::Unsigned
            | UnionPaySignatureError::NoCertificate
            | UnionPaySignatureError::UnreadableCertificate(_)
            | UnionPaySignatureError::CertificateOutOfValidity
            | UnionPaySignatureError::Mismatch => {
                tracing::warn!(wallet = "unionpay", error = %e, "notification refused");
            }
        }
        CallbackError::BadSignature
    })?;
    check_sign_method(&fields).map_err(|_| CallbackError::BadSignature)?;
    if field(&fields, MER_ID) != Some(mer_id) {
        return Err(CallbackError::Malformed(
            "notification for another merId".into(),
        ));
    }
    let is_payment = field(&fields, TXN_TYPE) == Some(UnionPayTxn::Consume.txn_type())
        && matches!(
            field(&fields, TXN_SUB_TYPE),
            Some(sub) if sub == UnionPayTxn::Consume.txn_sub_type()
                || sub == UnionPayTxn::ApplyQr.txn_sub_type()
        );
    if !is_payment {
        return Err(CallbackError::Malformed(
            "not a payment notification (txnType/txnSubType); refunds and cancels are settled by query"
                .into(),
        ));
    }
    let out_trade_no =
        field(&fields, ORDER_ID).ok_or_else(|| CallbackError::Malformed("no orderId".into()))?;
    let amount = order_amount(&fields).map_err(CallbackError::Malformed)?;
    let resp_code = field(&fields, RESP_CODE).unwrap_or("");
    match UnionPayRespCode::parse(resp_code) {
        UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {
            Ok(paid_order(&fields, out_trade_no, amount))
        }
        _ => {
            tracing::warn!(
                wallet = "unionpay",
                resp_code,
                "notification without success; left to a query"
            );
            let mut order = bare_order(
                out_trade_no,
                ChannelStatus::Unknown,
                field(&fields, QUERY_ID),
                resp_code,
                field(&fields, RESP_MSG),
            );
            order.amount = amount;
            Ok(order)
        }
    }
}
