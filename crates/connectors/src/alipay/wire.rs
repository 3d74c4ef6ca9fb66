//! Alipay OpenAPI wire format (`wallets.md` §2): request building and reply parsing as pure
//! functions, with no IO and no clock of their own (the caller passes `now`).
//!
//! Requests are form bodies of common parameters plus a `biz_content` JSON string. Replies are
//! JSON objects whose `<method>_response` (or `error_response`) member is signed as raw text;
//! [`open_reply`] cuts that text out of the body (`raw_json.rs`), verifies it, and only then
//! lets the per-method functions map it onto the normalised outcomes of
//! `qrgate_connector_api`. Nothing in a reply is trusted before its signature is checked, and
//! the fields we act on are parsed from exactly the bytes that were verified.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use qrgate_connector_api::{
    BillError, CallbackError, ChannelOrder, ChannelRefund, ChannelStatus, CodePaymentRequest,
    ConnectorError, QrOrder, QrOrderRequest, RefundRequest, RefundStatus, ReverseOutcome,
};
use qrgate_domain::{Currency, Money};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::raw_json::{top_level_members, AlipayRawMember};
use super::sign::{self, AlipayVerifier};
use super::units::{
    alipay_timestamp, amount_from_alipay, amount_to_alipay, parse_alipay_time, rate_e8_from_alipay,
    timeout_express,
};

/// `subject` is at most 256 characters and must not contain `/`, `=` or `&`.
const SUBJECT_MAX_CHARS: usize = 256;

const PRODUCT_FACE_TO_FACE: &str = "FACE_TO_FACE_PAYMENT";
const SCENE_BAR_CODE: &str = "bar_code";
const ERROR_RESPONSE: &str = "error_response";
const SIGN_MEMBER: &str = "sign";

const SUB_SYSTEM_ERROR: &str = "ACQ.SYSTEM_ERROR";
const SUB_TRADE_NOT_EXIST: &str = "ACQ.TRADE_NOT_EXIST";
const SUB_TRADE_HAS_SUCCESS: &str = "ACQ.TRADE_HAS_SUCCESS";

/// What `alipay.trade.fastpay.refund.query` means when it returns no refund data.
pub(super) const REFUND_NOT_FOUND_NOTE: &str =
    "not refunded; retry the refund with the same out_request_no";

// ---------------------------------------------------------------------------------------------
// Methods

/// The OpenAPI methods this connector calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AlipayMethod {
    Pay,
    Precreate,
    Query,
    Cancel,
    Close,
    Refund,
    RefundQuery,
    BillDownloadUrl,
}

impl AlipayMethod {
    /// The `method` parameter; also used as the operation name in logs.
    pub(super) fn name(self) -> &'static str {
        match self {
            AlipayMethod::Pay => "alipay.trade.pay",
            AlipayMethod::Precreate => "alipay.trade.precreate",
            AlipayMethod::Query => "alipay.trade.query",
            AlipayMethod::Cancel => "alipay.trade.cancel",
            AlipayMethod::Close => "alipay.trade.close",
            AlipayMethod::Refund => "alipay.trade.refund",
            AlipayMethod::RefundQuery => "alipay.trade.fastpay.refund.query",
            AlipayMethod::BillDownloadUrl => "alipay.data.dataservice.bill.downloadurl.query",
        }
    }

    /// The reply member: the method name with dots turned into underscores, plus `_response`.
    pub(super) fn response_member(self) -> &'static str {
        match self {
            AlipayMethod::Pay => "alipay_trade_pay_response",
            AlipayMethod::Precreate => "alipay_trade_precreate_response",
            AlipayMethod::Query => "alipay_trade_query_response",
            AlipayMethod::Cancel => "alipay_trade_cancel_response",
            AlipayMethod::Close => "alipay_trade_close_response",
            AlipayMethod::Refund => "alipay_trade_refund_response",
            AlipayMethod::RefundQuery => "alipay_trade_fastpay_refund_query_response",
            AlipayMethod::BillDownloadUrl => {
                "alipay_data_dataservice_bill_downloadurl_query_response"
            }
        }
    }
}

/// `subject` without the characters Alipay forbids in it, cut to its maximum length. It is
/// display text, so replacing a character is better than failing the sale over "A&W".
fn alipay_subject(subject: &str) -> String {
    subject
        .chars()
        .map(|c| if matches!(c, '/' | '=' | '&') { ' ' } else { c })
        .take(SUBJECT_MAX_CHARS)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Requests

/// What every request needs besides its business content.
#[derive(Debug, Clone, Copy)]
pub(super) struct AlipayCallContext<'a> {
    pub(super) app_id: &'a str,
    pub(super) seller_id: Option<&'a str>,
    pub(super) cross_border: bool,
    pub(super) now: DateTime<Utc>,
}

/// An unsigned request: the common parameters and `biz_content`, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AlipayRequest {
    pub(super) method: AlipayMethod,
    params: Vec<(&'static str, String)>,
}

impl AlipayRequest {
    fn new<B: Serialize>(
        cx: &AlipayCallContext<'_>,
        method: AlipayMethod,
        notify_url: Option<&str>,
        biz: &B,
    ) -> Result<Self, ConnectorError> {
        let biz_content = serde_json::to_string(biz).map_err(|e| ConnectorError::Rejected {
            code: "BIZ_CONTENT".into(),
            message: e.to_string(),
        })?;
        let mut params = vec![
            ("app_id", cx.app_id.to_owned()),
            ("method", method.name().to_owned()),
            ("format", "JSON".to_owned()),
            ("charset", "utf-8".to_owned()),
            ("sign_type", "RSA2".to_owned()),
            ("timestamp", alipay_timestamp(cx.now)),
            ("version", "1.0".to_owned()),
        ];
        if let Some(url) = notify_url.filter(|u| !u.is_empty()) {
            params.push(("notify_url", url.to_owned()));
        }
        params.push(("biz_content", biz_content));
        Ok(AlipayRequest { method, params })
    }

    /// The parameters as signed and sent (without `sign`).
    pub(super) fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// The string-to-sign of §2.2.
    pub(super) fn sign_content(&self) -> String {
        sign::request_sign_content(self.params())
    }

    /// The URL-encoded form body, with `sign` appended. Empty values are left out, as they
    /// are left out of the signature.
    pub(super) fn form_body(&self, sign: &str) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.params().filter(|(_, v)| !v.is_empty()) {
            form.append_pair(k, v);
        }
        form.append_pair("sign", sign);
        form.finish()
    }
}

/// Amount and currency fields for a priced request.
struct AlipayPricing {
    amount: String,
    /// The pricing currency, sent only for non-CNY pricing on a cross-border account.
    currency: Option<&'static str>,
}

/// Converts the pricing amount. Non-CNY pricing needs a cross-border account, where
/// `total_amount` is in the pricing currency named by `trans_currency`; on a domestic account
/// the amount would silently be read as yuan, so it is refused.
fn alipay_pricing(
    cx: &AlipayCallContext<'_>,
    money: Money,
) -> Result<AlipayPricing, ConnectorError> {
    let amount = amount_to_alipay(money)?;
    match money.currency() {
        Currency::Cny => Ok(AlipayPricing {
            amount,
            currency: None,
        }),
        other if cx.cross_border => Ok(AlipayPricing {
            amount,
            currency: Some(other.code()),
        }),
        _ => Err(ConnectorError::NotSupported(
            "non-CNY pricing needs an Alipay cross-border account (cross_border = true)",
        )),
    }
}

#[derive(Serialize)]
struct AlipayPayBiz<'a> {
    out_trade_no: &'a str,
    scene: &'static str,
    auth_code: &'a str,
    subject: String,
    total_amount: String,
    product_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trans_currency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    settle_currency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seller_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terminal_id: Option<&'a str>,
}

#[derive(Serialize)]
struct AlipayPrecreateBiz<'a> {
    out_trade_no: &'a str,
    total_amount: String,
    subject: String,
    product_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trans_currency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    settle_currency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seller_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terminal_id: Option<&'a str>,
    timeout_express: String,
    qr_code_timeout_express: String,
}

#[derive(Serialize)]
struct AlipayTradeRefBiz<'a> {
    out_trade_no: &'a str,
}

#[derive(Serialize)]
struct AlipayRefundBiz<'a> {
    out_trade_no: &'a str,
    refund_amount: String,
    out_request_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_currency: Option<&'static str>,
}

#[derive(Serialize)]
struct AlipayRefundQueryBiz<'a> {
    out_trade_no: &'a str,
    out_request_no: &'a str,
}

/// `alipay.trade.pay` with scene `bar_code`: charge a scanned payment code.
pub(super) fn pay_request(
    cx: &AlipayCallContext<'_>,
    req: &CodePaymentRequest,
) -> Result<AlipayRequest, ConnectorError> {
    let pricing = alipay_pricing(cx, req.amount)?;
    let biz = AlipayPayBiz {
        out_trade_no: &req.out_trade_no,
        scene: SCENE_BAR_CODE,
        auth_code: &req.auth_code,
        subject: alipay_subject(&req.subject),
        total_amount: pricing.amount,
        product_code: PRODUCT_FACE_TO_FACE,
        trans_currency: pricing.currency,
        settle_currency: pricing.currency,
        seller_id: cx.seller_id,
        terminal_id: req.terminal_id.as_deref(),
    };
    AlipayRequest::new(cx, AlipayMethod::Pay, None, &biz)
}

/// `alipay.trade.precreate`: create a QR order that expires at `req.expires_at`.
pub(super) fn precreate_request(
    cx: &AlipayCallContext<'_>,
    req: &QrOrderRequest,
) -> Result<AlipayRequest, ConnectorError> {
    let pricing = alipay_pricing(cx, req.amount)?;
    // Both timeouts: the QR stops being scannable and a scanned trade stops being payable at
    // the same moment, so nothing can be paid after the engine gave up on the order.
    let timeout = timeout_express(cx.now, req.expires_at)?;
    let biz = AlipayPrecreateBiz {
        out_trade_no: &req.out_trade_no,
        total_amount: pricing.amount,
        subject: alipay_subject(&req.subject),
        product_code: PRODUCT_FACE_TO_FACE,
        trans_currency: pricing.currency,
        settle_currency: pricing.currency,
        seller_id: cx.seller_id,
        terminal_id: req.terminal_id.as_deref(),
        timeout_express: timeout.clone(),
        qr_code_timeout_express: timeout,
    };
    AlipayRequest::new(cx, AlipayMethod::Precreate, Some(&req.notify_url), &biz)
}

/// `alipay.trade.query`, `alipay.trade.cancel` or `alipay.trade.close` by `out_trade_no`.
pub(super) fn trade_request(
    cx: &AlipayCallContext<'_>,
    method: AlipayMethod,
    out_trade_no: &str,
) -> Result<AlipayRequest, ConnectorError> {
    AlipayRequest::new(cx, method, None, &AlipayTradeRefBiz { out_trade_no })
}

/// `alipay.trade.refund`. `out_request_no` is always sent, even for a full refund, so every
/// refund (and its retry) is identified the same way and can be queried the same way.
pub(super) fn refund_request(
    cx: &AlipayCallContext<'_>,
    req: &RefundRequest,
) -> Result<AlipayRequest, ConnectorError> {
    let pricing = alipay_pricing(cx, req.refund_amount)?;
    let biz = AlipayRefundBiz {
        out_trade_no: &req.out_trade_no,
        refund_amount: pricing.amount,
        out_request_no: &req.out_refund_no,
        refund_reason: req.reason.as_deref().filter(|r| !r.is_empty()),
        refund_currency: pricing.currency,
    };
    AlipayRequest::new(cx, AlipayMethod::Refund, None, &biz)
}

/// `alipay.trade.fastpay.refund.query` for one refund.
pub(super) fn refund_query_request(
    cx: &AlipayCallContext<'_>,
    out_trade_no: &str,
    out_request_no: &str,
) -> Result<AlipayRequest, ConnectorError> {
    let biz = AlipayRefundQueryBiz {
        out_trade_no,
        out_request_no,
    };
    AlipayRequest::new(cx, AlipayMethod::RefundQuery, None, &biz)
}

#[derive(Serialize)]
struct AlipayBillUrlBiz {
    bill_type: &'static str,
    bill_date: String,
}

/// `alipay.data.dataservice.bill.downloadurl.query` (`bills.md` §2.1) for the `trade` bill
/// (acquiring: trades and refunds made through the APIs) of `day`, as `yyyy-MM-dd`.
pub(super) fn bill_url_request(
    cx: &AlipayCallContext<'_>,
    day: NaiveDate,
) -> Result<AlipayRequest, ConnectorError> {
    let biz = AlipayBillUrlBiz {
        bill_type: "trade",
        bill_date: day.format("%Y-%m-%d").to_string(),
    };
    AlipayRequest::new(cx, AlipayMethod::BillDownloadUrl, None, &biz)
}

#[derive(Debug, Deserialize)]
struct AlipayBillUrlReply {
    #[serde(flatten)]
    common: AlipayReplyCommon,
    bill_download_url: Option<String>,
}

/// `isp.bill_not_exist` (observed in production) and the spelling some clients also test.
const SUB_BILL_NOT_EXIST: [&str; 2] = ["isp.bill_not_exist", "isv.bill-not-exist"];

/// The verified answer to the download-URL query: `10000` → the URL (absolute http(s));
/// `isp.bill_not_exist` → `NotReady` while the bill may still be in the making, `NoBill` once
/// it is surely due (see [`bill_surely_due`]); anything else → `Call` as
/// [`AlipayReplyCommon::failure`] classes it.
pub(super) fn bill_url_outcome(
    reply: &AlipayReply,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<String, BillError> {
    let r: AlipayBillUrlReply = reply.decode()?;
    match AlipayCode::parse(&r.common.code) {
        AlipayCode::Success => {
            let url = non_empty(r.bill_download_url.as_deref())
                .ok_or_else(|| bad("the bill answer has no bill_download_url"))?;
            match url::Url::parse(&url) {
                Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => Ok(url),
                _ => Err(bad("bill_download_url is not an absolute http(s) URL").into()),
            }
        }
        AlipayCode::BusinessFailed
            if r.common
                .sub_code
                .as_deref()
                .is_some_and(|c| SUB_BILL_NOT_EXIST.contains(&c)) =>
        {
            let code = r.common.sub_code.clone().unwrap_or_default();
            let message = r.common.message();
            if bill_surely_due(day, now) {
                Err(BillError::NoBill { code, message })
            } else {
                Err(BillError::NotReady { code, message })
            }
        }
        _ => Err(r.common.failure().into()),
    }
}

/// Alipay answers `isp.bill_not_exist` both for a day without trades and for a bill not
/// generated yet (`bills.md` §2.1; clients read it either way). Bills are advised from about
/// 10:00 on T+1; we read the answer as "no bill" only once T+1 is over in Beijing (so from
/// 00:00 on T+2), and as "not ready" before, so that a late bill is never taken for an empty
/// day. **[U]**: Alipay documents no cut-off.
pub(super) fn bill_surely_due(day: NaiveDate, now: DateTime<Utc>) -> bool {
    day.checked_add_days(chrono::Days::new(1))
        .and_then(|next| crate::bill_file::beijing_next_day_at(next, 0))
        .is_some_and(|due| now >= due)
}

// ---------------------------------------------------------------------------------------------
// Reply envelope: find the raw member text, verify it

/// A reply whose `*_response` text verified against Alipay's public key.
#[derive(Debug, Clone)]
pub(super) struct AlipayReply {
    text: String,
}

/// Checks the HTTP status, finds the method's reply member (or `error_response`), and
/// verifies `sign` over its raw text.
///
/// Errors: a 5xx is `OutcomeUnknown`, another non-2xx is `Rejected`; a body that is not JSON,
/// lacks the member, repeats it, or whose signature does not verify is `BadResponse`. An
/// unsigned reply is never trusted as a success: it becomes `Rejected` when its code says our
/// request was refused, and `OutcomeUnknown` otherwise (the engine then queries, and that
/// answer is signed).
pub(super) fn open_reply(
    method: AlipayMethod,
    http_status: u16,
    body: &[u8],
    verifier: &AlipayVerifier,
) -> Result<AlipayReply, ConnectorError> {
    // A 5xx, or a proxy's timeout or throttling: the request may have been processed.
    if http_status >= 500 || http_status == 408 || http_status == 429 {
        return Err(ConnectorError::OutcomeUnknown(format!(
            "HTTP {http_status} from Alipay"
        )));
    }
    if !(200..300).contains(&http_status) {
        return Err(ConnectorError::Rejected {
            code: format!("HTTP_{http_status}"),
            message: format!("Alipay's gateway answered HTTP {http_status}"),
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("the reply is not UTF-8"))?;
    // Validate the whole document first, so the scanner below only ever sees valid JSON.
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| bad(&format!("the reply is not JSON: {e}")))?;
    let members = top_level_members(text).ok_or_else(|| bad("the reply is not a JSON object"))?;

    let member = single_member(&members, method.response_member())?
        .or(single_member(&members, ERROR_RESPONSE)?)
        .ok_or_else(|| bad(&format!("the reply has no {}", method.response_member())))?;
    let raw = text
        .get(member.value.clone())
        .ok_or_else(|| bad("reply member out of range"))?;

    match single_member(&members, SIGN_MEMBER)? {
        Some(sign_member) => {
            let sign_json = text
                .get(sign_member.value.clone())
                .ok_or_else(|| bad("reply sign out of range"))?;
            let sign: String = serde_json::from_str(sign_json)
                .map_err(|_| bad("the reply's sign is not a string"))?;
            // An empty `sign` is no signature at all: treat it like a missing one.
            if sign.is_empty() {
                return Err(unsigned_reply_error(raw));
            }
            if !verifier.verify(raw.as_bytes(), &sign) {
                return Err(bad(&format!(
                    "signature of {} does not verify",
                    member.name
                )));
            }
            Ok(AlipayReply {
                text: raw.to_owned(),
            })
        }
        None => Err(unsigned_reply_error(raw)),
    }
}

/// The member called `name`, if present exactly once. A repeated member is refused: JSON
/// parsers disagree on which copy wins, and we must act on the copy that was signed.
fn single_member<'m>(
    members: &'m [AlipayRawMember],
    name: &str,
) -> Result<Option<&'m AlipayRawMember>, ConnectorError> {
    let mut found = members.iter().filter(|m| m.name == name);
    let first = found.next();
    if found.next().is_some() {
        return Err(bad(&format!("the reply repeats {name}")));
    }
    Ok(first)
}

/// Classifies an unsigned reply without ever reading it as a success.
fn unsigned_reply_error(raw: &str) -> ConnectorError {
    let Ok(common) = serde_json::from_str::<AlipayReplyCommon>(raw) else {
        return bad("unsigned reply without a code");
    };
    match AlipayCode::parse(&common.code) {
        AlipayCode::Success | AlipayCode::PayInProcess => {
            tracing::warn!(
                wallet = "alipay",
                code = %common.code,
                "unsigned success reply refused"
            );
            bad("an unsigned reply claims success; refusing to trust it")
        }
        code if code.is_request_refusal() || common.is_isv_sub_code() => common.rejected(),
        _ => ConnectorError::OutcomeUnknown(format!(
            "unsigned Alipay reply {} {}",
            common.code,
            common.sub_code.as_deref().unwrap_or("")
        )),
    }
}

fn bad(message: &str) -> ConnectorError {
    ConnectorError::BadResponse(format!("alipay: {message}"))
}

// ---------------------------------------------------------------------------------------------
// Reply codes and statuses

/// The gateway-level `code` of a reply (§2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AlipayCode {
    /// 10000: the call succeeded; the business result is in the body.
    Success,
    /// 10003: `alipay.trade.pay` is waiting for the buyer.
    PayInProcess,
    /// 20000: the service was unavailable; the outcome is unknown.
    ServiceUnavailable,
    /// 20001: bad or missing auth token.
    InsufficientTokenPermissions,
    /// 40001: a required argument is missing.
    MissingArguments,
    /// 40002: an argument (signature, app id, …) is invalid.
    InvalidArguments,
    /// 40004: business failure, detailed by `sub_code`.
    BusinessFailed,
    /// 40006: the app lacks the permission.
    InsufficientIsvPermissions,
    /// A code this connector does not know.
    Unrecognised,
}

impl AlipayCode {
    pub(super) fn parse(code: &str) -> Self {
        match code {
            "10000" => AlipayCode::Success,
            "10003" => AlipayCode::PayInProcess,
            "20000" => AlipayCode::ServiceUnavailable,
            "20001" => AlipayCode::InsufficientTokenPermissions,
            "40001" => AlipayCode::MissingArguments,
            "40002" => AlipayCode::InvalidArguments,
            "40004" => AlipayCode::BusinessFailed,
            "40006" => AlipayCode::InsufficientIsvPermissions,
            _ => AlipayCode::Unrecognised,
        }
    }

    /// Codes meaning the gateway refused the request itself (our bug or our configuration).
    fn is_request_refusal(&self) -> bool {
        matches!(
            self,
            AlipayCode::InsufficientTokenPermissions
                | AlipayCode::MissingArguments
                | AlipayCode::InvalidArguments
                | AlipayCode::InsufficientIsvPermissions
        )
    }
}

/// `trade_status` of a trade (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AlipayTradeStatus {
    WaitBuyerPay,
    TradeSuccess,
    TradeFinished,
    TradeClosed,
    Unrecognised,
}

impl AlipayTradeStatus {
    pub(super) fn parse(status: &str) -> Self {
        match status {
            "WAIT_BUYER_PAY" => AlipayTradeStatus::WaitBuyerPay,
            "TRADE_SUCCESS" => AlipayTradeStatus::TradeSuccess,
            "TRADE_FINISHED" => AlipayTradeStatus::TradeFinished,
            "TRADE_CLOSED" => AlipayTradeStatus::TradeClosed,
            _ => AlipayTradeStatus::Unrecognised,
        }
    }

    /// `TRADE_CLOSED` is also what a fully refunded or a cancelled trade shows; only the
    /// engine knows whether the order had been paid or reversed, so it reads `Closed` in the
    /// light of its own history.
    pub(super) fn to_channel(self) -> ChannelStatus {
        match self {
            AlipayTradeStatus::WaitBuyerPay => ChannelStatus::PendingUser,
            AlipayTradeStatus::TradeSuccess | AlipayTradeStatus::TradeFinished => {
                ChannelStatus::Paid
            }
            AlipayTradeStatus::TradeClosed => ChannelStatus::Closed,
            AlipayTradeStatus::Unrecognised => ChannelStatus::Unknown,
        }
    }
}

/// `refund_status` of `alipay.trade.fastpay.refund.query` (absent for synchronous refunds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlipayRefundStatus {
    RefundSuccess,
    Unrecognised,
}

impl AlipayRefundStatus {
    fn parse(status: &str) -> Self {
        match status {
            "REFUND_SUCCESS" => AlipayRefundStatus::RefundSuccess,
            _ => AlipayRefundStatus::Unrecognised,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reply bodies

/// The fields every reply carries.
#[derive(Debug, Clone, Deserialize)]
struct AlipayReplyCommon {
    code: String,
    msg: Option<String>,
    sub_code: Option<String>,
    sub_msg: Option<String>,
}

impl AlipayReplyCommon {
    fn sub_code_is(&self, expected: &str) -> bool {
        self.sub_code.as_deref() == Some(expected)
    }

    fn is_isv_sub_code(&self) -> bool {
        self.sub_code
            .as_deref()
            .is_some_and(|s| s.starts_with("isv."))
    }

    /// The most specific message: `sub_msg`, else `msg`.
    fn message(&self) -> String {
        non_empty(self.sub_msg.as_deref())
            .or_else(|| non_empty(self.msg.as_deref()))
            .unwrap_or_default()
    }

    fn rejected(&self) -> ConnectorError {
        let code = non_empty(self.sub_code.as_deref()).unwrap_or_else(|| self.code.clone());
        ConnectorError::Rejected {
            code,
            message: self.message(),
        }
    }

    /// Classifies a reply that is not a success (§2.1, §2.3 tables): unknown outcomes must be
    /// settled by query; business failures keep the `sub_code` verbatim.
    fn failure(&self) -> ConnectorError {
        match AlipayCode::parse(&self.code) {
            AlipayCode::ServiceUnavailable => self.unknown(),
            AlipayCode::BusinessFailed if self.sub_code_is(SUB_SYSTEM_ERROR) => self.unknown(),
            // Only the documented final sub_codes are declines; any other (a new one, or
            // `aop.ACQ.SYSTEM_ERROR`-style variants) must be settled by a query.
            AlipayCode::BusinessFailed
                if !self
                    .sub_code
                    .as_deref()
                    .is_some_and(|c| ALIPAY_FINAL_SUB_CODES.contains(&c)) =>
            {
                tracing::warn!(sub_code = ?self.sub_code, "unlisted Alipay sub_code: treated as an unknown outcome");
                self.unknown()
            }
            AlipayCode::BusinessFailed => ConnectorError::Declined {
                code: non_empty(self.sub_code.as_deref()).unwrap_or_else(|| self.code.clone()),
                message: self.message(),
            },
            code if code.is_request_refusal() => self.rejected(),
            _ if self.is_isv_sub_code() => self.rejected(),
            // 10000/10003 reach here only where a method has no use for them, and any code we
            // do not know must not be read as a definite outcome.
            AlipayCode::Success
            | AlipayCode::PayInProcess
            | AlipayCode::Unrecognised
            | AlipayCode::InsufficientTokenPermissions
            | AlipayCode::MissingArguments
            | AlipayCode::InvalidArguments
            | AlipayCode::InsufficientIsvPermissions => {
                tracing::warn!(wallet = "alipay", code = %self.code, "unexpected reply code");
                self.unknown()
            }
        }
    }

    fn unknown(&self) -> ConnectorError {
        ConnectorError::OutcomeUnknown(format!(
            "Alipay {} {}: {}",
            self.code,
            self.sub_code.as_deref().unwrap_or(""),
            self.message()
        ))
    }
}

/// Trade fields shared by `alipay.trade.pay`, `alipay.trade.query` and notifications.
#[derive(Debug, Clone, Default, Deserialize)]
struct AlipayTradeFields {
    trade_no: Option<String>,
    out_trade_no: Option<String>,
    trade_status: Option<String>,
    buyer_logon_id: Option<String>,
    total_amount: Option<String>,
    buyer_pay_amount: Option<String>,
    trans_currency: Option<String>,
    pay_currency: Option<String>,
    pay_amount: Option<String>,
    trans_pay_rate: Option<String>,
    gmt_payment: Option<String>,
    send_pay_date: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlipayTradeReply {
    #[serde(flatten)]
    common: AlipayReplyCommon,
    #[serde(flatten)]
    trade: AlipayTradeFields,
}

#[derive(Debug, Deserialize)]
struct AlipayPrecreateReply {
    #[serde(flatten)]
    common: AlipayReplyCommon,
    out_trade_no: Option<String>,
    qr_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlipayCancelReply {
    #[serde(flatten)]
    common: AlipayReplyCommon,
    out_trade_no: Option<String>,
    retry_flag: Option<String>,
    action: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlipayCloseReply {
    #[serde(flatten)]
    common: AlipayReplyCommon,
    out_trade_no: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlipayRefundReply {
    #[serde(flatten)]
    common: AlipayReplyCommon,
    trade_no: Option<String>,
    out_trade_no: Option<String>,
    fund_change: Option<String>,
    send_back_fee: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlipayRefundQueryReply {
    #[serde(flatten)]
    common: AlipayReplyCommon,
    trade_no: Option<String>,
    out_trade_no: Option<String>,
    out_request_no: Option<String>,
    refund_amount: Option<String>,
    refund_status: Option<String>,
    refund_currency: Option<String>,
    trans_currency: Option<String>,
    send_back_fee: Option<String>,
}

impl AlipayReply {
    fn decode<T: DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_str(&self.text).map_err(|e| bad(&format!("unexpected reply shape: {e}")))
    }
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(str::to_owned)
}

/// A reply about another order than the one we asked about is a protocol fault, never an
/// answer we can use.
fn check_out_trade_no(echoed: Option<&str>, ours: &str) -> Result<(), ConnectorError> {
    match echoed.filter(|e| !e.is_empty()) {
        Some(echoed) if echoed != ours => Err(bad("the reply is about another out_trade_no")),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Per-method outcomes

/// `alipay.trade.pay`: 10000 → `Paid`, 10003 → `PendingUser`, `ACQ.TRADE_HAS_SUCCESS` →
/// `Unknown` (already paid under this out_trade_no: the engine queries to fetch the trade and
/// must not charge again); 20000 and `ACQ.SYSTEM_ERROR` → `OutcomeUnknown`; other 40004
/// sub_codes → `Declined`; 4000x request errors → `Rejected`.
pub(super) fn pay_outcome(
    reply: &AlipayReply,
    req: &CodePaymentRequest,
) -> Result<ChannelOrder, ConnectorError> {
    let r: AlipayTradeReply = reply.decode()?;
    check_out_trade_no(r.trade.out_trade_no.as_deref(), &req.out_trade_no)?;
    let currency = req.amount.currency();
    match AlipayCode::parse(&r.common.code) {
        AlipayCode::Success => {
            trade_order(&r.trade, &req.out_trade_no, ChannelStatus::Paid, currency)
        }
        AlipayCode::PayInProcess => {
            let order = trade_order(
                &r.trade,
                &req.out_trade_no,
                ChannelStatus::PendingUser,
                currency,
            )?;
            Ok(with_wallet_code(
                order,
                &r.common.code,
                r.common.msg.as_deref(),
            ))
        }
        AlipayCode::BusinessFailed if r.common.sub_code_is(SUB_TRADE_HAS_SUCCESS) => {
            let order = trade_order(
                &r.trade,
                &req.out_trade_no,
                ChannelStatus::Unknown,
                currency,
            )?;
            Ok(with_wallet_code(
                order,
                SUB_TRADE_HAS_SUCCESS,
                r.common.sub_msg.as_deref(),
            ))
        }
        _ => Err(r.common.failure()),
    }
}

/// `alipay.trade.query`: maps `trade_status`. `ACQ.TRADE_NOT_EXIST` becomes `PendingUser`
/// with that wallet code: for a QR order it means "not scanned yet" (the trade only exists
/// after the scan), for a code payment it means the pay call never reached Alipay. The
/// connector cannot tell the two apart; the engine knows which kind of order it queried.
pub(super) fn query_outcome(
    reply: &AlipayReply,
    out_trade_no: &str,
) -> Result<ChannelOrder, ConnectorError> {
    let r: AlipayTradeReply = reply.decode()?;
    check_out_trade_no(r.trade.out_trade_no.as_deref(), out_trade_no)?;
    match AlipayCode::parse(&r.common.code) {
        AlipayCode::Success => {
            let raw_status = r.trade.trade_status.as_deref().unwrap_or("");
            let status = AlipayTradeStatus::parse(raw_status);
            if status == AlipayTradeStatus::Unrecognised {
                tracing::warn!(
                    wallet = "alipay",
                    trade_status = raw_status,
                    "unrecognised trade status"
                );
            }
            // Amounts are in `trans_currency` for cross-border trades, otherwise in yuan.
            let order = trade_order(&r.trade, out_trade_no, status.to_channel(), Currency::Cny)?;
            Ok(status_wallet_code(order, raw_status))
        }
        AlipayCode::BusinessFailed if r.common.sub_code_is(SUB_TRADE_NOT_EXIST) => {
            let order = empty_order(out_trade_no, ChannelStatus::PendingUser);
            Ok(with_wallet_code(
                order,
                SUB_TRADE_NOT_EXIST,
                r.common.sub_msg.as_deref(),
            ))
        }
        _ => Err(r.common.failure()),
    }
}

/// `alipay.trade.precreate`: the `qr_code` to render.
pub(super) fn precreate_outcome(
    reply: &AlipayReply,
    out_trade_no: &str,
) -> Result<QrOrder, ConnectorError> {
    let r: AlipayPrecreateReply = reply.decode()?;
    check_out_trade_no(r.out_trade_no.as_deref(), out_trade_no)?;
    match AlipayCode::parse(&r.common.code) {
        AlipayCode::Success => {
            let code_url = non_empty(r.qr_code.as_deref())
                .ok_or_else(|| bad("precreate succeeded without a qr_code"))?;
            Ok(QrOrder {
                out_trade_no: out_trade_no.to_owned(),
                code_url,
            })
        }
        _ => Err(r.common.failure()),
    }
}

/// `alipay.trade.cancel`: `retry_flag=Y` → `CallAgain` (whatever the code, as Alipay's
/// face-to-face demo does); 10000 otherwise → `Done` (`action` says whether it closed or
/// refunded, which the engine learns from its own state or a query).
pub(super) fn cancel_outcome(
    reply: &AlipayReply,
    out_trade_no: &str,
) -> Result<ReverseOutcome, ConnectorError> {
    let r: AlipayCancelReply = reply.decode()?;
    check_out_trade_no(r.out_trade_no.as_deref(), out_trade_no)?;
    if r.retry_flag.as_deref() == Some("Y") {
        return Ok(ReverseOutcome::CallAgain);
    }
    match AlipayCode::parse(&r.common.code) {
        AlipayCode::Success => {
            let action = r.action.as_deref().unwrap_or("");
            if !matches!(action, "" | "close" | "refund") {
                tracing::warn!(wallet = "alipay", action, "unrecognised cancel action");
            }
            Ok(ReverseOutcome::Done)
        }
        _ => Err(r.common.failure()),
    }
}

/// `alipay.trade.close`: 10000 → done. `ACQ.TRADE_NOT_EXIST` is also `Ok`: a precreate QR
/// not scanned yet has no trade to close, and its `qr_code_timeout_express` ends it
/// (`wallets.md` §2.4, open point 7). `ACQ.TRADE_STATUS_ERROR` (already paid or closed) is
/// `Declined`, after which the engine queries.
pub(super) fn close_outcome(reply: &AlipayReply, out_trade_no: &str) -> Result<(), ConnectorError> {
    let r: AlipayCloseReply = reply.decode()?;
    check_out_trade_no(r.out_trade_no.as_deref(), out_trade_no)?;
    match AlipayCode::parse(&r.common.code) {
        AlipayCode::Success => Ok(()),
        AlipayCode::BusinessFailed if r.common.sub_code_is(SUB_TRADE_NOT_EXIST) => Ok(()),
        _ => Err(r.common.failure()),
    }
}

/// `alipay.trade.refund`: 10000 with `fund_change` `Y` (this call moved the money) →
/// `Succeeded`; `N` (this call moved nothing: a retry of a refund done before, or not done)
/// or no `fund_change` → `Unknown`, settled by `fastpay.refund.query` (`wallets.md` §6).
pub(super) fn refund_outcome(
    reply: &AlipayReply,
    req: &RefundRequest,
) -> Result<ChannelRefund, ConnectorError> {
    let r: AlipayRefundReply = reply.decode()?;
    check_out_trade_no(r.out_trade_no.as_deref(), &req.out_trade_no)?;
    match AlipayCode::parse(&r.common.code) {
        AlipayCode::Success => {
            let status = match r.fund_change.as_deref() {
                Some("Y") => RefundStatus::Succeeded,
                Some("N") => RefundStatus::Unknown,
                other => {
                    tracing::warn!(
                        wallet = "alipay",
                        fund_change = other.unwrap_or(""),
                        "refund without a usable fund_change"
                    );
                    RefundStatus::Unknown
                }
            };
            Ok(ChannelRefund {
                out_refund_no: req.out_refund_no.clone(),
                status,
                channel_ref: non_empty(r.trade_no.as_deref()),
                // The reply only has the cumulative `refund_fee`, not this refund's amount.
                amount: None,
                cny_amount: refund_cny(
                    r.send_back_fee.as_deref(),
                    req.refund_amount.currency(),
                    None,
                ),
                wallet_code: None,
                wallet_message: None,
            })
        }
        _ => Err(r.common.failure()),
    }
}

/// `alipay.trade.fastpay.refund.query`: 10000 only means the query ran. Refund data with our
/// `out_request_no` → `Succeeded` (when `refund_status` is absent or `REFUND_SUCCESS`);
/// no refund data → `NotFound` with [`REFUND_NOT_FOUND_NOTE`], since Alipay never saw a
/// refund it accepted under that number.
///
/// `fallback_currency` is the currency of `refund_amount` when the reply names none: yuan on
/// a domestic account; on a cross-border account it cannot be known, so pass `None`.
pub(super) fn refund_query_outcome(
    reply: &AlipayReply,
    out_trade_no: &str,
    out_request_no: &str,
    fallback_currency: Option<Currency>,
) -> Result<ChannelRefund, ConnectorError> {
    let r: AlipayRefundQueryReply = reply.decode()?;
    check_out_trade_no(r.out_trade_no.as_deref(), out_trade_no)?;
    if AlipayCode::parse(&r.common.code) != AlipayCode::Success {
        return Err(r.common.failure());
    }
    let mut refund = ChannelRefund {
        out_refund_no: out_request_no.to_owned(),
        status: RefundStatus::Unknown,
        channel_ref: non_empty(r.trade_no.as_deref()),
        amount: None,
        cny_amount: None,
        wallet_code: None,
        wallet_message: None,
    };
    let echoed_no = non_empty(r.out_request_no.as_deref());
    let amount_text = non_empty(r.refund_amount.as_deref());
    match (echoed_no.as_deref(), amount_text.as_deref()) {
        (None, None) => {
            refund.status = RefundStatus::NotFound;
            refund.wallet_message = Some(REFUND_NOT_FOUND_NOTE.to_owned());
        }
        (Some(echoed), _) if echoed != out_request_no => {
            return Err(bad(
                "the refund query answered about another out_request_no",
            ));
        }
        (Some(_), Some(amount_text)) => {
            let currency =
                match non_empty(r.refund_currency.as_deref().or(r.trans_currency.as_deref())) {
                    Some(code) => Some(parse_currency(&code)?),
                    None => fallback_currency,
                };
            refund.amount = match currency {
                Some(c) => Some(
                    amount_from_alipay(amount_text, c)
                        .ok_or_else(|| bad("malformed refund_amount"))?,
                ),
                None => None,
            };
            if let Some(currency) = currency {
                refund.cny_amount = refund_cny(r.send_back_fee.as_deref(), currency, refund.amount);
            }
            refund.status = refund_query_status(r.refund_status.as_deref());
            if refund.status != RefundStatus::Succeeded {
                refund.wallet_code = non_empty(r.refund_status.as_deref());
            }
        }
        _ => {
            tracing::warn!(wallet = "alipay", "refund query with partial refund data");
        }
    }
    Ok(refund)
}

/// What the customer gets back in CNY, as Alipay states it: for a refund in yuan, its
/// `send_back_fee` (the amount actually sent back) when present, else the refund amount.
/// For a refund in another currency (cross-border pricing) `None`: Alipay does not say in
/// which currency `send_back_fee` is then (`docs/CONNECTORS.md`), and no CNY is guessed.
/// An unreadable `send_back_fee` is dropped with a warning.
fn refund_cny(
    send_back_fee: Option<&str>,
    refund_currency: Currency,
    amount: Option<Money>,
) -> Option<Money> {
    if refund_currency != Currency::Cny {
        return None;
    }
    match non_empty(send_back_fee) {
        Some(text) => {
            let parsed = amount_from_alipay(&text, Currency::Cny);
            if parsed.is_none() {
                tracing::warn!(wallet = "alipay", "unreadable send_back_fee dropped");
            }
            parsed
        }
        None => amount.filter(|a| a.currency() == Currency::Cny),
    }
}

fn refund_query_status(refund_status: Option<&str>) -> RefundStatus {
    match refund_status
        .filter(|s| !s.is_empty())
        .map(AlipayRefundStatus::parse)
    {
        None | Some(AlipayRefundStatus::RefundSuccess) => RefundStatus::Succeeded,
        Some(AlipayRefundStatus::Unrecognised) => {
            tracing::warn!(
                wallet = "alipay",
                refund_status = refund_status.unwrap_or(""),
                "unrecognised refund status"
            );
            RefundStatus::Unknown
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building `ChannelOrder`s

fn empty_order(out_trade_no: &str, status: ChannelStatus) -> ChannelOrder {
    ChannelOrder {
        out_trade_no: out_trade_no.to_owned(),
        status,
        channel_ref: None,
        amount: None,
        payer_amount: None,
        rate_e8: None,
        buyer: None,
        paid_at: None,
        wallet_code: None,
        wallet_message: None,
    }
}

fn with_wallet_code(mut order: ChannelOrder, code: &str, message: Option<&str>) -> ChannelOrder {
    order.wallet_code = Some(code.to_owned());
    order.wallet_message = non_empty(message);
    order
}

/// Non-paid states keep Alipay's `trade_status` verbatim as the wallet code.
fn status_wallet_code(mut order: ChannelOrder, raw_status: &str) -> ChannelOrder {
    if order.status != ChannelStatus::Paid {
        order.wallet_code = non_empty(Some(raw_status));
    }
    order
}

fn parse_currency(code: &str) -> Result<Currency, ConnectorError> {
    Currency::from_str(code).map_err(|_| bad(&format!("unsupported currency {code}")))
}

/// The order as the trade fields describe it. `total_amount` is in `trans_currency` when the
/// trade has one, else in `fallback_currency`; a malformed amount or currency there is a
/// `BadResponse` because the engine checks it against the order. The payer-side fields are
/// informative only, so a value we cannot read is dropped with a warning instead.
fn trade_order(
    t: &AlipayTradeFields,
    out_trade_no: &str,
    status: ChannelStatus,
    fallback_currency: Currency,
) -> Result<ChannelOrder, ConnectorError> {
    let currency = match non_empty(t.trans_currency.as_deref()) {
        Some(code) => parse_currency(&code)?,
        None => fallback_currency,
    };
    let amount = match non_empty(t.total_amount.as_deref()) {
        Some(text) => {
            Some(amount_from_alipay(&text, currency).ok_or_else(|| bad("malformed total_amount"))?)
        }
        None => None,
    };
    let rate_e8 = non_empty(t.trans_pay_rate.as_deref()).and_then(|text| {
        let rate = rate_e8_from_alipay(&text);
        if rate.is_none() {
            tracing::warn!(
                wallet = "alipay",
                trans_pay_rate = %text,
                "unreadable trans_pay_rate dropped"
            );
        }
        rate
    });
    let paid_at = non_empty(t.gmt_payment.as_deref())
        .or_else(|| non_empty(t.send_pay_date.as_deref()))
        .and_then(|text| parse_alipay_time(&text));
    Ok(ChannelOrder {
        out_trade_no: out_trade_no.to_owned(),
        status,
        channel_ref: non_empty(t.trade_no.as_deref()),
        amount,
        payer_amount: payer_amount(t),
        rate_e8,
        buyer: non_empty(t.buyer_logon_id.as_deref()),
        paid_at,
        wallet_code: None,
        wallet_message: None,
    })
}

/// What the customer paid: `pay_amount` in `pay_currency` on cross-border trades, else
/// `buyer_pay_amount`, which is always yuan.
fn payer_amount(t: &AlipayTradeFields) -> Option<Money> {
    let pay_currency = non_empty(t.pay_currency.as_deref());
    let pay_amount = non_empty(t.pay_amount.as_deref());
    let parsed = match (pay_currency, pay_amount) {
        (Some(code), Some(amount)) => Currency::from_str(&code)
            .ok()
            .and_then(|c| amount_from_alipay(&amount, c)),
        _ => {
            let amount = non_empty(t.buyer_pay_amount.as_deref())?;
            amount_from_alipay(&amount, Currency::Cny)
        }
    };
    if parsed.is_none() {
        tracing::warn!(wallet = "alipay", "unreadable payer amount dropped");
    }
    parsed
}

// ---------------------------------------------------------------------------------------------
// Notifications

/// A verified payment notification, mapped onto the order it reports (§2.7).
///
/// Steps: form-decode (duplicate keys are refused: which copy was signed would be
/// ambiguous), require `sign` (and `sign_type` RSA2 when present), verify over the sorted
/// parameters without `sign`/`sign_type`, then check `app_id` (and `seller_id` when
/// configured) before reading the trade. `TRADE_SUCCESS`/`TRADE_FINISHED` → `Paid`,
/// `TRADE_CLOSED` → `Closed`, `WAIT_BUYER_PAY` → `PendingUser`.
pub(super) fn notification_order(
    body: &[u8],
    verifier: &AlipayVerifier,
    app_id: &str,
    seller_id: Option<&str>,
) -> Result<ChannelOrder, CallbackError> {
    let params = notification_params(body)?;
    let sign = notification_signature(&params)?;
    let content =
        sign::notification_sign_content(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if !verifier.verify(content.as_bytes(), &sign) {
        return Err(CallbackError::BadSignature);
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    if param("app_id") != Some(app_id) {
        return Err(CallbackError::Malformed(
            "notification for another app_id".into(),
        ));
    }
    if let (Some(expected), Some(got)) = (seller_id, param("seller_id")) {
        if expected != got {
            return Err(CallbackError::Malformed(
                "notification for another seller_id".into(),
            ));
        }
    }
    let out_trade_no =
        param("out_trade_no").ok_or_else(|| CallbackError::Malformed("no out_trade_no".into()))?;
    let fields = notification_trade_fields(&params)?;
    let raw_status = fields.trade_status.as_deref().unwrap_or("");
    let status = AlipayTradeStatus::parse(raw_status);
    if status == AlipayTradeStatus::Unrecognised {
        tracing::warn!(
            wallet = "alipay",
            trade_status = raw_status,
            "unrecognised notification status"
        );
    }
    let order = trade_order(&fields, out_trade_no, status.to_channel(), Currency::Cny)
        .map_err(|e| CallbackError::Malformed(e.to_string()))?;
    Ok(status_wallet_code(order, raw_status))
}

fn notification_params(body: &[u8]) -> Result<Vec<(String, String)>, CallbackError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if params.is_empty() {
        return Err(CallbackError::Malformed("empty notification".into()));
    }
    let mut names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair.first() == pair.get(1)) {
        return Err(CallbackError::Malformed(
            "repeated notification parameter".into(),
        ));
    }
    Ok(params)
}

fn notification_signature(params: &[(String, String)]) -> Result<String, CallbackError> {
    let value = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(sign_type) = value("sign_type") {
        if sign_type != "RSA2" {
            return Err(CallbackError::BadSignature);
        }
    }
    let sign = value("sign")
        .filter(|s| !s.is_empty())
        .ok_or(CallbackError::BadSignature)?;
    // A `+` sent unencoded arrives as a space after form decoding; Base64 has no spaces, so
    // mapping them back cannot turn a wrong signature into a right one.
    Ok(sign.replace(' ', "+"))
}

fn notification_trade_fields(
    params: &[(String, String)],
) -> Result<AlipayTradeFields, CallbackError> {
    let object: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| CallbackError::Malformed(format!("notification fields: {e}")))
}

/// `40004` sub_codes that are final business outcomes (`wallets.md` §2.3, §2.5, §2.6): the
/// request was refused and nothing will change by itself.
const ALIPAY_FINAL_SUB_CODES: [&str; 46] = [
    "ACQ.TRADE_HAS_SUCCESS",
    "ACQ.PAYMENT_AUTH_CODE_INVALID",
    "ACQ.AUTH_CODE_INVALID_OR_EXPIRE",
    "ACQ.ILLEGAL_AUTH_CODE",
    "ACQ.BUYER_BALANCE_NOT_ENOUGH",
    "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
    "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
    "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
    "ACQ.BEYOND_PAY_RESTRICTION",
    "ACQ.BEYOND_PER_RECEIPT_RESTRICTION",
    "ACQ.PAYMENT_REQUEST_HAS_RISK",
    "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE",
    "ACQ.PAYMENT_FAIL",
    "ACQ.BUYER_ENABLE_STATUS_FORBID",
    "ACQ.PULL_MOBILE_CASHIER_FAIL",
    "ACQ.MOBILE_PAYMENT_SWITCH_OFF",
    "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT",
    "ACQ.USER_FACE_PAYMENT_SWITCH_OFF",
    "ACQ.TRADE_HAS_CLOSE",
    "ACQ.CONTEXT_INCONSISTENT",
    "ACQ.TRADE_BUYER_NOT_MATCH",
    "ACQ.BUYER_SELLER_EQUAL",
    "ACQ.INVALID_PARAMETER",
    "ACQ.ACCESS_FORBIDDEN",
    "ACQ.EXIST_FORBIDDEN_WORD",
    "ACQ.PARTNER_ERROR",
    "ACQ.TOTAL_FEE_EXCEED",
    "ACQ.INVALID_STORE_ID",
    "ACQ.SELLER_BEEN_BLOCKED",
    "ACQ.SUB_MERCHANT_CREATE_FAIL",
    "ACQ.SUB_MERCHANT_TYPE_INVALID",
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    "ACQ.REASON_TRADE_REFUND_FEE_ERR",
    "ACQ.TRADE_NOT_EXIST",
    "ACQ.TRADE_HAS_FINISHED",
    "ACQ.SELLER_BALANCE_NOT_ENOUGH",
    "ACQ.REASON_TRADE_BEEN_FREEZEN",
    "ACQ.TRADE_STATUS_ERROR",
    "ACQ.TRADE_NOT_ALLOW_REFUND",
    "ACQ.DISCORDANT_REPEAT_REQUEST",
    "ACQ.TRADE_CANCEL_TIME_OUT",
    "ACQ.TRADE_FINISHED",
    "ACQ.REFUND_FEE_ERROR",
    "ACQ.CURRENCY_NOT_SUPPORT",
    "ACQ.NOT_SUPPORT_CURRENCY",
];
