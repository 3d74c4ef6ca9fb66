//! The WeChat Pay API v2 wire format as pure functions: requests built from our normalised
//! requests, XML written and read, and the wallet's answers mapped onto [`ChannelStatus`],
//! [`RefundStatus`], [`WalletRate`] and [`ConnectorError`] as `wallets.md` §1.3–§1.9 classify
//! them.
//!
//! Nothing here does IO or reads a clock (it only logs warnings); callers pass the nonce in, so
//! every function can be tested byte for byte. No request or response body, payment code or
//! API key is ever logged: warnings name the operation, our order number and the wallet's code.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use qrgate_connector_api::{
    CallbackError, ChannelOrder, ChannelRefund, ChannelStatus, CodePaymentRequest, ConnectorError,
    HttpResponse, QrOrder, QrOrderRequest, RefundRequest, RefundStatus, ReverseOutcome, WalletRate,
};
use qrgate_domain::{Currency, Money};
use quick_xml::events::Event;
use quick_xml::Reader;
use secrecy::SecretString;

use super::sign::{self, WechatPaySignType};

/// Fields of a received message by name. Sorted by bytes, which is the order §1.2 signs in.
pub(super) type WechatPayFields = BTreeMap<String, String>;

/// The acknowledgement WeChat expects from a notification endpoint (§1.7).
pub(super) const WECHAT_PAY_ACK_BODY: &str =
    "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>";
pub(super) const WECHAT_PAY_ACK_CONTENT_TYPE: &str = "application/xml";

/// Upper bound on the fields of one message: a refund query with 50 refunds and their coupon
/// lists stays far below it, and it keeps a hostile body from growing the map without end.
const MAX_FIELDS: usize = 4096;

/// WeChat's times are Beijing time (UTC+8, no daylight saving).
const BEIJING_OFFSET_SECONDS: i32 = 8 * 3600;
const WECHAT_PAY_TIME_FORMAT: &str = "%Y%m%d%H%M%S";
/// The `date` of an exchange-rate query (§1.9).
const WECHAT_PAY_DATE_FORMAT: &str = "%Y%m%d";

/// Names payment notifications in logs and errors, as [`WechatPayOperation::name`] names calls.
const NOTIFICATION_CONTEXT: &str = "wechatpay.notification";

// ---------------------------------------------------------------------------------------------
// Operations and requests

/// One v2 API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WechatPayOperation {
    Micropay,
    OrderQuery,
    Reverse,
    UnifiedOrder,
    CloseOrder,
    Refund,
    RefundQuery,
    ExchangeRate,
    DownloadBill,
}

impl WechatPayOperation {
    pub(super) fn path(self) -> &'static str {
        match self {
            WechatPayOperation::Micropay => "/pay/micropay",
            WechatPayOperation::OrderQuery => "/pay/orderquery",
            WechatPayOperation::Reverse => "/secapi/pay/reverse",
            WechatPayOperation::UnifiedOrder => "/pay/unifiedorder",
            WechatPayOperation::CloseOrder => "/pay/closeorder",
            WechatPayOperation::Refund => "/secapi/pay/refund",
            WechatPayOperation::RefundQuery => "/pay/refundquery",
            // Sic: the path is spelled so in WeChat's API (§1.9).
            WechatPayOperation::ExchangeRate => "/pay/queryexchagerate",
            WechatPayOperation::DownloadBill => "/pay/downloadbill",
        }
    }

    /// The name used in logs and error messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            WechatPayOperation::Micropay => "wechatpay.micropay",
            WechatPayOperation::OrderQuery => "wechatpay.orderquery",
            WechatPayOperation::Reverse => "wechatpay.reverse",
            WechatPayOperation::UnifiedOrder => "wechatpay.unifiedorder",
            WechatPayOperation::CloseOrder => "wechatpay.closeorder",
            WechatPayOperation::Refund => "wechatpay.refund",
            WechatPayOperation::RefundQuery => "wechatpay.refundquery",
            WechatPayOperation::ExchangeRate => "wechatpay.queryexchagerate",
            WechatPayOperation::DownloadBill => "wechatpay.downloadbill",
        }
    }

    /// `/secapi/` calls need the merchant's client certificate (mutual TLS, §1.1).
    pub(super) fn needs_client_certificate(self) -> bool {
        self.path().starts_with("/secapi/")
    }
}

/// Who is calling: the ids every request carries and how it is signed.
#[derive(Debug, Clone, Copy)]
pub(super) struct WechatPayMerchant<'a> {
    pub(super) appid: &'a str,
    pub(super) mch_id: &'a str,
    /// Institution (cross-border acquirer) or service-provider mode only.
    pub(super) sub_mch_id: Option<&'a str>,
    pub(super) sign_type: WechatPaySignType,
}

/// A request's fields before signing.
#[derive(Debug, Clone)]
pub(super) struct WechatPayRequest {
    pub(super) operation: WechatPayOperation,
    pub(super) fields: BTreeMap<&'static str, String>,
    sign_type: WechatPaySignType,
}

impl WechatPayRequest {
    /// The fields every v2 request carries.
    fn new(operation: WechatPayOperation, merchant: &WechatPayMerchant<'_>, nonce: &str) -> Self {
        let mut request = WechatPayRequest {
            operation,
            fields: BTreeMap::new(),
            sign_type: merchant.sign_type,
        };
        request.set("appid", merchant.appid);
        request.set("mch_id", merchant.mch_id);
        request.set_opt("sub_mch_id", merchant.sub_mch_id);
        request.set("nonce_str", nonce);
        // MD5 is the default and is sent without `sign_type`, as in the official example
        // (§7 vector 1); HMAC-SHA256 must be announced, and is then part of the signed set.
        if merchant.sign_type == WechatPaySignType::HmacSha256 {
            request.set("sign_type", merchant.sign_type.wire_name());
        }
        request
    }

    fn set(&mut self, name: &'static str, value: impl Into<String>) {
        self.fields.insert(name, value.into());
    }

    fn set_opt(&mut self, name: &'static str, value: Option<&str>) {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.set(name, value);
        }
    }

    /// The signature over the current fields.
    pub(super) fn sign(&self, api_key: &SecretString) -> Result<String, ConnectorError> {
        let sorted = self
            .fields
            .iter()
            .map(|(name, value)| (*name, value.as_str()));
        sign::sign_fields(sorted, api_key, self.sign_type)
            .ok_or_else(|| ConnectorError::Credentials("the API key cannot key HMAC-SHA256".into()))
    }

    /// Signs the request and writes the XML body.
    ///
    /// A value that XML 1.0 cannot carry is refused here rather than silently altered, since
    /// the wallet would then sign something other than what we meant.
    pub(super) fn into_signed_xml(
        mut self,
        api_key: &SecretString,
    ) -> Result<String, ConnectorError> {
        if let Some((name, _)) = self.fields.iter().find(|(_, value)| !is_xml_text(value)) {
            return Err(local_rejection(
                "LOCAL_INVALID_FIELD",
                format!("field {name} holds a character XML cannot carry"),
            ));
        }
        let signature = self.sign(api_key)?;
        self.set("sign", signature);
        Ok(write_xml(&self.fields))
    }
}

/// `POST /pay/micropay` (§1.3): charge a scanned payment code.
pub(super) fn build_micropay(
    merchant: &WechatPayMerchant<'_>,
    req: &CodePaymentRequest,
    nonce: &str,
) -> Result<WechatPayRequest, ConnectorError> {
    let mut request = WechatPayRequest::new(WechatPayOperation::Micropay, merchant, nonce);
    request.set_opt("device_info", req.terminal_id.as_deref());
    request.set("body", clean_free_text(&req.subject));
    request.set("out_trade_no", req.out_trade_no.as_str());
    request.set("total_fee", positive_minor_units(req.amount)?);
    request.set("fee_type", req.amount.currency().code());
    request.set("spbill_create_ip", req.client_ip.as_str());
    request.set("auth_code", req.auth_code.as_str());
    Ok(request)
}

/// `POST /pay/orderquery` (§1.4), by our order number.
pub(super) fn build_orderquery(
    merchant: &WechatPayMerchant<'_>,
    out_trade_no: &str,
    nonce: &str,
) -> WechatPayRequest {
    by_out_trade_no(
        WechatPayOperation::OrderQuery,
        merchant,
        out_trade_no,
        nonce,
    )
}

/// `POST /secapi/pay/reverse` (§1.5), by our order number.
pub(super) fn build_reverse(
    merchant: &WechatPayMerchant<'_>,
    out_trade_no: &str,
    nonce: &str,
) -> WechatPayRequest {
    by_out_trade_no(WechatPayOperation::Reverse, merchant, out_trade_no, nonce)
}

/// `POST /pay/closeorder` (§1.6), by our order number.
pub(super) fn build_closeorder(
    merchant: &WechatPayMerchant<'_>,
    out_trade_no: &str,
    nonce: &str,
) -> WechatPayRequest {
    by_out_trade_no(
        WechatPayOperation::CloseOrder,
        merchant,
        out_trade_no,
        nonce,
    )
}

fn by_out_trade_no(
    operation: WechatPayOperation,
    merchant: &WechatPayMerchant<'_>,
    out_trade_no: &str,
    nonce: &str,
) -> WechatPayRequest {
    let mut request = WechatPayRequest::new(operation, merchant, nonce);
    request.set("out_trade_no", out_trade_no);
    request
}

/// `POST /pay/unifiedorder` with `trade_type=NATIVE` (§1.6): a merchant-presented QR order.
///
/// `product_id` is required for NATIVE and is merchant-defined; in-store orders have no product
/// catalogue, so the order number (≤ 32 chars, like `product_id`) stands in for it.
pub(super) fn build_unifiedorder(
    merchant: &WechatPayMerchant<'_>,
    req: &QrOrderRequest,
    nonce: &str,
) -> Result<WechatPayRequest, ConnectorError> {
    let mut request = WechatPayRequest::new(WechatPayOperation::UnifiedOrder, merchant, nonce);
    request.set_opt("device_info", req.terminal_id.as_deref());
    request.set("body", clean_free_text(&req.subject));
    request.set("out_trade_no", req.out_trade_no.as_str());
    request.set("total_fee", positive_minor_units(req.amount)?);
    request.set("fee_type", req.amount.currency().code());
    request.set("spbill_create_ip", req.client_ip.as_str());
    request.set("notify_url", req.notify_url.as_str());
    request.set("trade_type", "NATIVE");
    request.set("product_id", req.out_trade_no.as_str());
    request.set("time_expire", format_beijing_time(req.expires_at));
    Ok(request)
}

/// `POST /secapi/pay/refund` (§1.8). `refund_fee_type` must equal the order's `fee_type`
/// (§1.9), so a refund in another currency is refused before it is sent.
pub(super) fn build_refund(
    merchant: &WechatPayMerchant<'_>,
    req: &RefundRequest,
    nonce: &str,
) -> Result<WechatPayRequest, ConnectorError> {
    if req.refund_amount.currency() != req.order_amount.currency() {
        return Err(local_rejection(
            "LOCAL_CURRENCY_MISMATCH",
            "the refund must be in the order's currency".to_owned(),
        ));
    }
    if req.refund_amount.minor() > req.order_amount.minor() {
        return Err(local_rejection(
            "LOCAL_INVALID_AMOUNT",
            "the refund exceeds the order amount".to_owned(),
        ));
    }
    let mut request = WechatPayRequest::new(WechatPayOperation::Refund, merchant, nonce);
    request.set("out_trade_no", req.out_trade_no.as_str());
    request.set("out_refund_no", req.out_refund_no.as_str());
    request.set("total_fee", positive_minor_units(req.order_amount)?);
    request.set("refund_fee", positive_minor_units(req.refund_amount)?);
    request.set("refund_fee_type", req.refund_amount.currency().code());
    if let Some(reason) = req.reason.as_deref() {
        request.set_opt("refund_desc", Some(clean_free_text(reason).as_str()));
    }
    Ok(request)
}

/// `POST /pay/refundquery` (§1.8), by our refund number: the answer then lists that refund.
pub(super) fn build_refundquery(
    merchant: &WechatPayMerchant<'_>,
    out_refund_no: &str,
    nonce: &str,
) -> WechatPayRequest {
    let mut request = WechatPayRequest::new(WechatPayOperation::RefundQuery, merchant, nonce);
    request.set("out_refund_no", out_refund_no);
    request
}

/// `POST /pay/queryexchagerate` (§1.9): the wallet's rate for `currency` on `date`, a
/// Beijing calendar day.
pub(super) fn build_queryexchagerate(
    merchant: &WechatPayMerchant<'_>,
    currency: Currency,
    date: NaiveDate,
    nonce: &str,
) -> WechatPayRequest {
    let mut request = WechatPayRequest::new(WechatPayOperation::ExchangeRate, merchant, nonce);
    request.set("fee_type", currency.code());
    request.set("date", date.format(WECHAT_PAY_DATE_FORMAT).to_string());
    request
}

/// `POST /pay/downloadbill` (`bills.md` §1.1): the ALL bill (payments, refunds and revoked
/// orders) of `day`, a Beijing calendar day, gzipped. In institution mode `sub_mch_id` is sent
/// (by [`WechatPayRequest::new`]), so the bill is the sub-merchant's alone.
pub(super) fn build_downloadbill(
    merchant: &WechatPayMerchant<'_>,
    day: NaiveDate,
    nonce: &str,
) -> WechatPayRequest {
    let mut request = WechatPayRequest::new(WechatPayOperation::DownloadBill, merchant, nonce);
    request.set("bill_date", day.format(WECHAT_PAY_DATE_FORMAT).to_string());
    request.set("bill_type", "ALL");
    request.set("tar_type", "GZIP");
    request
}

/// Total and refund amounts must be positive integers of minor units (§1.1).
fn positive_minor_units(amount: Money) -> Result<String, ConnectorError> {
    if amount.minor() <= 0 {
        return Err(local_rejection(
            "LOCAL_INVALID_AMOUNT",
            format!("amount must be positive, got {amount}"),
        ));
    }
    Ok(amount.minor().to_string())
}

/// A request we refuse to send: our own bug or configuration, like a wallet's PARAM_ERROR.
/// The `LOCAL_` prefix tells it apart from a code the wallet returned.
fn local_rejection(code: &str, message: String) -> ConnectorError {
    ConnectorError::Rejected {
        code: code.to_owned(),
        message,
    }
}

/// Descriptions come from POS input; control characters would make the XML invalid, so they
/// are dropped (the value is cleaned before it is signed, so signature and body agree).
fn clean_free_text(text: &str) -> String {
    text.chars().filter(|c| is_xml_char(*c)).collect()
}

fn is_xml_text(value: &str) -> bool {
    value.chars().all(is_xml_char)
}

/// XML 1.0's `Char` production (Rust `char`s are never surrogates).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

// ---------------------------------------------------------------------------------------------
// XML

/// `<xml><name><![CDATA[value]]></name>…</xml>`, fields in byte order of their names.
pub(super) fn write_xml(fields: &BTreeMap<&'static str, String>) -> String {
    let mut xml = String::from("<xml>");
    for (name, value) in fields {
        xml.push('<');
        xml.push_str(name);
        xml.push('>');
        push_cdata(&mut xml, value);
        xml.push_str("</");
        xml.push_str(name);
        xml.push('>');
    }
    xml.push_str("</xml>");
    xml
}

/// A CDATA section cannot contain `]]>`; such a value is split across two sections, which a
/// reader joins back into the original text.
fn push_cdata(xml: &mut String, value: &str) {
    xml.push_str("<![CDATA[");
    xml.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
    xml.push_str("]]>");
}

/// Why a body is not a v2 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum WechatPayXmlError {
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("XML syntax: {0}")]
    Syntax(String),
    /// WeChat never sends a DTD; one in a message can only be an entity-expansion or XXE
    /// attempt, so it is refused outright rather than skipped.
    #[error("a document type declaration is not allowed")]
    DocType,
    #[error("unexpected root element")]
    WrongRoot,
    #[error("field <{0}> is nested, but v2 fields are flat")]
    Nested(String),
    #[error("field <{0}> appears twice")]
    Duplicate(String),
    #[error("text outside a field")]
    StrayText,
    #[error("more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("document ends before </xml>")]
    Truncated,
    #[error("content after </xml>")]
    TrailingContent,
}

/// Where the reader is in `<xml><field>value</field>…</xml>`.
enum XmlPosition {
    BeforeRoot,
    InRoot,
    InField { name: String, value: String },
    AfterRoot,
}

/// Reads a v2 message into its flat field map.
///
/// Text and CDATA inside a field are joined and kept verbatim (no trimming: the signature
/// covers the exact value). Only the five predefined entities and character references are
/// resolved; any other entity reference is an error, and quick-xml never fetches anything.
/// Attributes, comments and processing instructions are ignored.
pub(super) fn parse_xml(body: &[u8]) -> Result<WechatPayFields, WechatPayXmlError> {
    parse_flat_xml(body, &[b"xml"])
}

/// The plaintext of a refund notification's `req_info` has the same flat shape; WeChat's
/// documentation shows it under `<root>`, so that root is accepted there as well.
fn parse_req_info_xml(body: &[u8]) -> Result<WechatPayFields, WechatPayXmlError> {
    parse_flat_xml(body, &[b"root", b"xml"])
}

fn parse_flat_xml(body: &[u8], roots: &[&[u8]]) -> Result<WechatPayFields, WechatPayXmlError> {
    let text = std::str::from_utf8(body).map_err(|_| WechatPayXmlError::NotUtf8)?;
    // A UTF-8 byte order mark is legal before the prolog; some servers write one.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let mut fields = WechatPayFields::new();
    let mut position = XmlPosition::BeforeRoot;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| WechatPayXmlError::Syntax(e.to_string()))?;
        if matches!(event, Event::Eof) {
            return match position {
                XmlPosition::AfterRoot => Ok(fields),
                _ => Err(WechatPayXmlError::Truncated),
            };
        }
        position = next_position(position, event, roots, &mut fields)?;
    }
}

fn next_position(
    position: XmlPosition,
    event: Event<'_>,
    roots: &[&[u8]],
    fields: &mut WechatPayFields,
) -> Result<XmlPosition, WechatPayXmlError> {
    match (position, event) {
        (_, Event::DocType(_)) => Err(WechatPayXmlError::DocType),
        (position, Event::Comment(_) | Event::PI(_) | Event::Decl(_)) => Ok(position),
        (XmlPosition::InField { name, mut value }, Event::Text(text)) => {
            value.push_str(
                &text
                    .unescape()
                    .map_err(|e| WechatPayXmlError::Syntax(e.to_string()))?,
            );
            Ok(XmlPosition::InField { name, value })
        }
        (XmlPosition::InField { name, mut value }, Event::CData(cdata)) => {
            value.push_str(
                &cdata
                    .decode()
                    .map_err(|e| WechatPayXmlError::Syntax(e.to_string()))?,
            );
            Ok(XmlPosition::InField { name, value })
        }
        (XmlPosition::InField { name, value }, Event::End(_)) => {
            // quick-xml has already checked that the end tag matches the start tag.
            insert_field(fields, name, value)?;
            Ok(XmlPosition::InRoot)
        }
        (XmlPosition::InField { name, .. }, Event::Start(_) | Event::Empty(_)) => {
            Err(WechatPayXmlError::Nested(name))
        }
        (position, Event::Text(text)) if is_blank(&text) => Ok(position),
        (_, Event::Text(_) | Event::CData(_)) => Err(WechatPayXmlError::StrayText),
        (XmlPosition::BeforeRoot, Event::Start(start))
            if roots.contains(&start.name().as_ref()) =>
        {
            Ok(XmlPosition::InRoot)
        }
        (XmlPosition::BeforeRoot, Event::Empty(start))
            if roots.contains(&start.name().as_ref()) =>
        {
            Ok(XmlPosition::AfterRoot)
        }
        (XmlPosition::BeforeRoot, _) => Err(WechatPayXmlError::WrongRoot),
        (XmlPosition::InRoot, Event::Start(start)) => Ok(XmlPosition::InField {
            name: element_name(start.name().as_ref())?,
            value: String::new(),
        }),
        (XmlPosition::InRoot, Event::Empty(start)) => {
            insert_field(fields, element_name(start.name().as_ref())?, String::new())?;
            Ok(XmlPosition::InRoot)
        }
        (XmlPosition::InRoot, Event::End(_)) => Ok(XmlPosition::AfterRoot),
        (XmlPosition::AfterRoot, _) => Err(WechatPayXmlError::TrailingContent),
        // End of input is handled by the caller; reaching here means the reader's own
        // bookkeeping disagrees with ours, which is no message we can trust.
        (_, Event::Eof) => Err(WechatPayXmlError::Truncated),
    }
}

fn insert_field(
    fields: &mut WechatPayFields,
    name: String,
    value: String,
) -> Result<(), WechatPayXmlError> {
    if fields.len() >= MAX_FIELDS {
        return Err(WechatPayXmlError::TooManyFields);
    }
    if fields.contains_key(&name) {
        // Two values for one name would let the signed value and the used value differ.
        return Err(WechatPayXmlError::Duplicate(name));
    }
    fields.insert(name, value);
    Ok(())
}

fn element_name(raw: &[u8]) -> Result<String, WechatPayXmlError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| WechatPayXmlError::NotUtf8)
}

fn is_blank(text: &quick_xml::events::BytesText<'_>) -> bool {
    text.iter().all(u8::is_ascii_whitespace)
}

/// The non-empty value of a field.
pub(super) fn field<'a>(fields: &'a WechatPayFields, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The entries of an indexed list (`refund_status_0`, `refund_status_1`, …), by index.
/// Only a plain decimal suffix counts, so `coupon_refund_fee_0_1` is not an entry of
/// `coupon_refund_fee_`.
pub(super) fn indexed<'a>(
    fields: &'a WechatPayFields,
    prefix: &'a str,
) -> impl Iterator<Item = (u32, &'a str)> + 'a {
    fields.iter().filter_map(move |(name, value)| {
        let index = name.strip_prefix(prefix)?;
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((index.parse().ok()?, value.as_str()))
    })
}

// ---------------------------------------------------------------------------------------------
// Responses: envelope, signature, classification

/// A verified answer whose `return_code` was SUCCESS.
#[derive(Debug, Clone)]
pub(super) struct WechatPayReply {
    pub(super) fields: WechatPayFields,
    pub(super) result: WechatPayResult,
}

/// The business result (`result_code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WechatPayResult {
    Success,
    Fail {
        err_code: String,
        err_code_des: String,
    },
}

/// Checks an HTTP answer and opens its envelope (§1.2, §1.3).
///
/// 5xx → `OutcomeUnknown`; 4xx → `Rejected`; `return_code=FAIL` → `Rejected` (refused before
/// business processing; such answers are usually unsigned, so no signature is asked for);
/// otherwise the signature must verify over every field received, and the merchant ids must
/// be ours, or the answer is a `BadResponse`.
pub(super) fn open_response(
    operation: WechatPayOperation,
    response: &HttpResponse,
    merchant: &WechatPayMerchant<'_>,
    api_key: &SecretString,
) -> Result<WechatPayReply, ConnectorError> {
    let context = operation.name();
    check_http_status(context, response.status)?;
    let fields = parse_xml(&response.body)
        .map_err(|e| ConnectorError::BadResponse(format!("{context}: {e}")))?;
    match field(&fields, "return_code") {
        Some("SUCCESS") => {}
        Some("FAIL") => {
            return Err(ConnectorError::Rejected {
                code: "FAIL".to_owned(),
                message: field(&fields, "return_msg").unwrap_or_default().to_owned(),
            })
        }
        _ => {
            return Err(bad_response(
                context,
                "return_code is neither SUCCESS nor FAIL",
            ))
        }
    }
    let Some(received_sign) = field(&fields, "sign") else {
        return Err(bad_response(context, "unsigned answer"));
    };
    let sorted = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()));
    if !sign::verify_fields(sorted, received_sign, api_key, merchant.sign_type) {
        return Err(bad_response(context, "answer signature does not verify"));
    }
    check_merchant(&fields, merchant).map_err(|what| bad_response(context, what))?;
    let result = match field(&fields, "result_code") {
        Some("SUCCESS") => WechatPayResult::Success,
        Some("FAIL") => WechatPayResult::Fail {
            err_code: field(&fields, "err_code").unwrap_or_default().to_owned(),
            err_code_des: field(&fields, "err_code_des")
                .unwrap_or_default()
                .to_owned(),
        },
        // WeChat's page for the rate query lists no `result_code` in its answer, only the rate
        // fields after `return_code` (§1.9). A signed answer without one is that answer; the
        // rate itself is still required by `exchange_rate_outcome`.
        None if operation == WechatPayOperation::ExchangeRate => WechatPayResult::Success,
        _ => {
            return Err(bad_response(
                context,
                "result_code is neither SUCCESS nor FAIL",
            ))
        }
    };
    Ok(WechatPayReply { fields, result })
}

pub(super) fn check_http_status(context: &'static str, status: u16) -> Result<(), ConnectorError> {
    match status {
        200..=299 => Ok(()),
        // The request reached the wallet and may have been processed; a proxy's timeout or
        // throttling says nothing about the wallet either.
        500..=599 | 408 | 429 => Err(ConnectorError::OutcomeUnknown(format!(
            "{context}: HTTP {status}"
        ))),
        400..=499 => Err(ConnectorError::Rejected {
            code: format!("HTTP_{status}"),
            message: format!("{context} refused at the HTTP level"),
        }),
        _ => Err(bad_response(
            context,
            &format!("unexpected HTTP status {status}"),
        )),
    }
}

/// A signed message must name our appid and mch_id where it names them at all.
fn check_merchant(
    fields: &WechatPayFields,
    merchant: &WechatPayMerchant<'_>,
) -> Result<(), &'static str> {
    if field(fields, "appid").is_some_and(|appid| appid != merchant.appid) {
        return Err("appid is not ours");
    }
    if field(fields, "mch_id").is_some_and(|mch_id| mch_id != merchant.mch_id) {
        return Err("mch_id is not ours");
    }
    Ok(())
}

fn bad_response(context: &'static str, what: &str) -> ConnectorError {
    ConnectorError::BadResponse(format!("{context}: {what}"))
}

/// How an `err_code` must be handled (§1.3–§1.8). Each operation decides what a class means
/// for it; the class only records what the wallet's documentation says the code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WechatPayErrClass {
    /// The wallet could not tell: SYSTEMERROR, BANKERROR, BIZERR_NEED_RETRY.
    Indeterminate,
    /// USERPAYING: the customer must confirm in the app.
    UserPaying,
    /// ORDERPAID: this order number is already paid; query to learn the payment.
    OrderPaid,
    /// ORDERNOTEXIST, REFUNDNOTEXIST.
    NotFound,
    /// ORDERCLOSED.
    OrderClosed,
    /// A documented, final business refusal (code expired, balance, reverse window passed…).
    Business,
    /// Our request or configuration is wrong (signature, parameters, permissions).
    Request,
    /// Not in the documentation: never read as success or failure.
    Unrecognised,
}

pub(super) fn classify_err_code(err_code: &str) -> WechatPayErrClass {
    match err_code {
        "SYSTEMERROR" | "BANKERROR" | "BIZERR_NEED_RETRY" => WechatPayErrClass::Indeterminate,
        "USERPAYING" => WechatPayErrClass::UserPaying,
        "ORDERPAID" => WechatPayErrClass::OrderPaid,
        "ORDERNOTEXIST" | "REFUNDNOTEXIST" => WechatPayErrClass::NotFound,
        "ORDERCLOSED" => WechatPayErrClass::OrderClosed,
        "AUTHCODEEXPIRE"
        | "AUTH_CODE_ERROR"
        | "AUTH_CODE_INVALID"
        | "NOTENOUGH"
        | "NOTSUPORTCARD"
        | "BUYER_MISMATCH"
        | "ORDERREVERSED"
        | "OUT_TRADE_NO_USED"
        | "TRADE_ERROR"
        | "REVERSE_EXPIRE"
        | "TRADE_OVERDUE"
        | "ERROR"
        | "USER_ACCOUNT_ABNORMAL"
        | "INVALID_REQ_TOO_MUCH"
        | "FREQUENCY_LIMITED"
        | "ORDER_NOT_READY"
        | "REFUND_FEE_MISMATCH" => WechatPayErrClass::Business,
        "PARAM_ERROR"
        | "INVALID_REQUEST"
        | "LACK_PARAMS"
        | "XML_FORMAT_ERROR"
        | "REQUIRE_POST_METHOD"
        | "POST_DATA_EMPTY"
        | "NOT_UTF8"
        | "SIGNERROR"
        | "APPID_NOT_EXIST"
        | "MCHID_NOT_EXIST"
        | "APPID_MCHID_NOT_MATCH"
        | "NOAUTH"
        | "INVALID_TRANSACTIONID" => WechatPayErrClass::Request,
        _ => WechatPayErrClass::Unrecognised,
    }
}

fn declined(err_code: &str, err_code_des: &str) -> ConnectorError {
    ConnectorError::Declined {
        code: err_code.to_owned(),
        message: err_code_des.to_owned(),
    }
}

fn rejected(err_code: &str, err_code_des: &str) -> ConnectorError {
    ConnectorError::Rejected {
        code: err_code.to_owned(),
        message: err_code_des.to_owned(),
    }
}

fn warn_unrecognised(context: &'static str, what: &str, value: &str, out_trade_no: &str) {
    tracing::warn!(
        wallet = "wechatpay",
        operation = context,
        order.out_trade_no = out_trade_no,
        wallet.code = value,
        "unrecognised {what}; treating the outcome as unknown"
    );
}

// ---------------------------------------------------------------------------------------------
// Orders: micropay, orderquery, notifications

/// `trade_state` of orderquery (§1.4), with a catch-all so a new state is never an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WechatPayTradeState {
    Success,
    Refund,
    NotPay,
    UserPaying,
    Closed,
    Revoked,
    PayError,
    Accept,
    Unrecognised(String),
}

impl WechatPayTradeState {
    pub(super) fn parse(value: &str) -> Self {
        match value {
            "SUCCESS" => WechatPayTradeState::Success,
            "REFUND" => WechatPayTradeState::Refund,
            "NOTPAY" => WechatPayTradeState::NotPay,
            "USERPAYING" => WechatPayTradeState::UserPaying,
            "CLOSED" => WechatPayTradeState::Closed,
            "REVOKED" => WechatPayTradeState::Revoked,
            "PAYERROR" => WechatPayTradeState::PayError,
            "ACCEPT" => WechatPayTradeState::Accept,
            other => WechatPayTradeState::Unrecognised(other.to_owned()),
        }
    }

    /// §0 and §1.4. ACCEPT ("accepted, deduction pending") is not waiting for the customer but
    /// for the wallet, so it is `Unknown`, like any state we do not know.
    pub(super) fn channel_status(&self) -> ChannelStatus {
        match self {
            WechatPayTradeState::Success | WechatPayTradeState::Refund => ChannelStatus::Paid,
            WechatPayTradeState::NotPay | WechatPayTradeState::UserPaying => {
                ChannelStatus::PendingUser
            }
            WechatPayTradeState::Closed => ChannelStatus::Closed,
            WechatPayTradeState::Revoked => ChannelStatus::Reversed,
            WechatPayTradeState::PayError => ChannelStatus::Failed,
            WechatPayTradeState::Accept | WechatPayTradeState::Unrecognised(_) => {
                ChannelStatus::Unknown
            }
        }
    }
}

/// The answer to micropay (§1.3): `Paid`, `PendingUser` or `Unknown`, or a final refusal.
///
/// SYSTEMERROR/BANKERROR, ORDERPAID (the payment exists but this answer does not describe it)
/// and codes the documentation does not list are `Unknown`: the engine queries.
pub(super) fn micropay_outcome(
    reply: &WechatPayReply,
    out_trade_no: &str,
) -> Result<ChannelOrder, ConnectorError> {
    let context = WechatPayOperation::Micropay.name();
    let (err_code, err_code_des) = match &reply.result {
        WechatPayResult::Success => return paid_order(context, &reply.fields, out_trade_no),
        WechatPayResult::Fail {
            err_code,
            err_code_des,
        } => (err_code.as_str(), err_code_des.as_str()),
    };
    let status = match classify_err_code(err_code) {
        WechatPayErrClass::UserPaying => ChannelStatus::PendingUser,
        WechatPayErrClass::Indeterminate | WechatPayErrClass::OrderPaid => ChannelStatus::Unknown,
        WechatPayErrClass::Business | WechatPayErrClass::OrderClosed => {
            return Err(declined(err_code, err_code_des))
        }
        WechatPayErrClass::Request => return Err(rejected(err_code, err_code_des)),
        WechatPayErrClass::NotFound | WechatPayErrClass::Unrecognised => {
            warn_unrecognised(context, "err_code", err_code, out_trade_no);
            ChannelStatus::Unknown
        }
    };
    Ok(unsettled_order(
        out_trade_no,
        status,
        err_code,
        err_code_des,
    ))
}

/// The answer to orderquery (§1.4). ORDERNOTEXIST is `Failed` with that code (the engine
/// decides what it means for its order); SYSTEMERROR and unlisted codes are `Unknown`.
pub(super) fn orderquery_outcome(
    reply: &WechatPayReply,
    out_trade_no: &str,
) -> Result<ChannelOrder, ConnectorError> {
    let context = WechatPayOperation::OrderQuery.name();
    match &reply.result {
        WechatPayResult::Success => queried_order(context, &reply.fields, out_trade_no),
        WechatPayResult::Fail {
            err_code,
            err_code_des,
        } => {
            let status = match classify_err_code(err_code) {
                WechatPayErrClass::NotFound => ChannelStatus::Failed,
                WechatPayErrClass::Indeterminate => ChannelStatus::Unknown,
                WechatPayErrClass::Request => return Err(rejected(err_code, err_code_des)),
                WechatPayErrClass::UserPaying
                | WechatPayErrClass::OrderPaid
                | WechatPayErrClass::OrderClosed
                | WechatPayErrClass::Business
                | WechatPayErrClass::Unrecognised => {
                    warn_unrecognised(context, "err_code", err_code, out_trade_no);
                    ChannelStatus::Unknown
                }
            };
            Ok(unsettled_order(
                out_trade_no,
                status,
                err_code,
                err_code_des,
            ))
        }
    }
}

fn queried_order(
    context: &'static str,
    fields: &WechatPayFields,
    out_trade_no: &str,
) -> Result<ChannelOrder, ConnectorError> {
    let raw_state = field(fields, "trade_state").unwrap_or_default();
    let state = WechatPayTradeState::parse(raw_state);
    if let WechatPayTradeState::Unrecognised(value) = &state {
        warn_unrecognised(context, "trade_state", value, out_trade_no);
    }
    let status = state.channel_status();
    let mut order = order_from_fields(context, fields, out_trade_no, status)?;
    if status != ChannelStatus::Paid {
        order.wallet_code = Some(raw_state.to_owned());
        order.wallet_message = field(fields, "trade_state_desc").map(str::to_owned);
    }
    Ok(order)
}

/// A paid order as micropay and notifications describe it; the wallet's payment id is
/// required, since without it the payment cannot be refunded or reconciled.
fn paid_order(
    context: &'static str,
    fields: &WechatPayFields,
    out_trade_no: &str,
) -> Result<ChannelOrder, ConnectorError> {
    let order = order_from_fields(context, fields, out_trade_no, ChannelStatus::Paid)?;
    if order.channel_ref.is_none() {
        return Err(bad_response(context, "paid without transaction_id"));
    }
    Ok(order)
}

fn unsettled_order(
    out_trade_no: &str,
    status: ChannelStatus,
    err_code: &str,
    err_code_des: &str,
) -> ChannelOrder {
    ChannelOrder {
        out_trade_no: out_trade_no.to_owned(),
        status,
        channel_ref: None,
        amount: None,
        payer_amount: None,
        rate_e8: None,
        buyer: None,
        paid_at: None,
        wallet_code: Some(err_code.to_owned()).filter(|c| !c.is_empty()),
        wallet_message: Some(err_code_des.to_owned()).filter(|m| !m.is_empty()),
    }
}

/// Reads the order details shared by micropay, orderquery and notifications (§1.3, §1.9).
///
/// `total_fee` is in `fee_type` (default CNY); `cash_fee` in `cash_fee_type` (default CNY) is
/// what the customer paid; `rate` is read as an integer scaled by 10^8 (§10 open point 2).
/// An order number that differs from ours, or an amount that is not an integer, makes the
/// answer unusable.
fn order_from_fields(
    context: &'static str,
    fields: &WechatPayFields,
    out_trade_no: &str,
    status: ChannelStatus,
) -> Result<ChannelOrder, ConnectorError> {
    if field(fields, "out_trade_no").is_some_and(|echoed| echoed != out_trade_no) {
        return Err(bad_response(
            context,
            "out_trade_no is not the one asked for",
        ));
    }
    let amount = match field(fields, "total_fee") {
        Some(total_fee) => {
            let currency = field(fields, "fee_type").unwrap_or("CNY");
            let currency = currency
                .parse::<Currency>()
                .map_err(|_| bad_response(context, "fee_type is not a currency we price in"))?;
            Some(
                parse_money(total_fee, currency)
                    .ok_or_else(|| bad_response(context, "total_fee is not an integer"))?,
            )
        }
        None => None,
    };
    Ok(ChannelOrder {
        out_trade_no: out_trade_no.to_owned(),
        status,
        channel_ref: field(fields, "transaction_id").map(str::to_owned),
        amount,
        payer_amount: payer_amount(context, fields, out_trade_no),
        rate_e8: rate_e8(context, fields, out_trade_no),
        buyer: field(fields, "openid").map(str::to_owned),
        paid_at: paid_at(context, fields, out_trade_no),
        wallet_code: None,
        wallet_message: None,
    })
}

/// The payer's side is informative only: a payer currency we do not model (HKD from a Hong
/// Kong wallet, say) leaves it empty instead of failing the whole answer.
fn payer_amount(
    context: &'static str,
    fields: &WechatPayFields,
    out_trade_no: &str,
) -> Option<Money> {
    let cash_fee = field(fields, "cash_fee")?;
    let cash_fee_type = field(fields, "cash_fee_type").unwrap_or("CNY");
    let money = cash_fee_type
        .parse::<Currency>()
        .ok()
        .and_then(|c| parse_money(cash_fee, c));
    if money.is_none() {
        warn_ignored(context, "cash_fee/cash_fee_type", out_trade_no);
    }
    money
}

fn rate_e8(context: &'static str, fields: &WechatPayFields, out_trade_no: &str) -> Option<i64> {
    let rate = field(fields, "rate")?;
    let parsed = parse_unsigned(rate);
    if parsed.is_none() {
        warn_ignored(context, "rate", out_trade_no);
    }
    parsed
}

fn paid_at(
    context: &'static str,
    fields: &WechatPayFields,
    out_trade_no: &str,
) -> Option<DateTime<Utc>> {
    let time_end = field(fields, "time_end")?;
    let parsed = parse_beijing_time(time_end);
    if parsed.is_none() {
        warn_ignored(context, "time_end", out_trade_no);
    }
    parsed
}

fn warn_ignored(context: &'static str, what: &str, out_trade_no: &str) {
    tracing::warn!(
        wallet = "wechatpay",
        operation = context,
        order.out_trade_no = out_trade_no,
        "ignoring unreadable {what}"
    );
}

fn parse_money(minor: &str, currency: Currency) -> Option<Money> {
    parse_unsigned(minor).map(|minor| Money::new(minor, currency))
}

/// Digits only: `str::parse` would also accept a sign, which no v2 amount carries.
fn parse_unsigned(value: &str) -> Option<i64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn beijing() -> Option<FixedOffset> {
    FixedOffset::east_opt(BEIJING_OFFSET_SECONDS)
}

/// `yyyyMMddHHmmss` in Beijing time → UTC.
pub(super) fn parse_beijing_time(value: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(value, WECHAT_PAY_TIME_FORMAT).ok()?;
    let local = naive.and_local_timezone(beijing()?).single()?;
    Some(local.with_timezone(&Utc))
}

/// UTC → `yyyyMMddHHmmss` in Beijing time.
pub(super) fn format_beijing_time(at: DateTime<Utc>) -> String {
    match beijing() {
        Some(offset) => at
            .with_timezone(&offset)
            .format(WECHAT_PAY_TIME_FORMAT)
            .to_string(),
        // A constant offset of +8 h is always in range; this arm only satisfies the type.
        None => at.format(WECHAT_PAY_TIME_FORMAT).to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reverse, unifiedorder, closeorder

/// The answer to reverse (§1.5): `recall=Y`, SYSTEMERROR or BANKERROR → call again;
/// REVERSE_EXPIRE and the other listed codes → `Declined` verbatim (ORDERNOTEXIST included:
/// the engine applies open point 6); an unlisted code → `OutcomeUnknown`, since we cannot
/// tell whether the order was reversed.
pub(super) fn reverse_outcome(
    reply: &WechatPayReply,
    out_trade_no: &str,
) -> Result<ReverseOutcome, ConnectorError> {
    let context = WechatPayOperation::Reverse.name();
    if field(&reply.fields, "recall") == Some("Y") {
        return Ok(ReverseOutcome::CallAgain);
    }
    let (err_code, err_code_des) = match &reply.result {
        WechatPayResult::Success => return Ok(ReverseOutcome::Done),
        WechatPayResult::Fail {
            err_code,
            err_code_des,
        } => (err_code.as_str(), err_code_des.as_str()),
    };
    match classify_err_code(err_code) {
        WechatPayErrClass::Indeterminate | WechatPayErrClass::UserPaying => {
            Ok(ReverseOutcome::CallAgain)
        }
        WechatPayErrClass::Request => Err(rejected(err_code, err_code_des)),
        WechatPayErrClass::Business
        | WechatPayErrClass::NotFound
        | WechatPayErrClass::OrderPaid
        | WechatPayErrClass::OrderClosed => Err(declined(err_code, err_code_des)),
        WechatPayErrClass::Unrecognised => {
            warn_unrecognised(context, "err_code", err_code, out_trade_no);
            Err(ConnectorError::OutcomeUnknown(format!(
                "{context}: unrecognised err_code {err_code}"
            )))
        }
    }
}

/// The answer to unifiedorder (§1.6): the `code_url` to render.
///
/// ORDERPAID cannot yield a QR code, but the order is paid: `OutcomeUnknown` sends the engine
/// to query, which reports the payment. Other refusals carry no QR code, so nobody can pay
/// them: `Declined` verbatim is safe even for codes the documentation does not list.
pub(super) fn unifiedorder_outcome(
    reply: &WechatPayReply,
    out_trade_no: &str,
) -> Result<QrOrder, ConnectorError> {
    let context = WechatPayOperation::UnifiedOrder.name();
    match &reply.result {
        WechatPayResult::Success => {
            if field(&reply.fields, "out_trade_no").is_some_and(|echoed| echoed != out_trade_no) {
                return Err(bad_response(
                    context,
                    "out_trade_no is not the one asked for",
                ));
            }
            let code_url = field(&reply.fields, "code_url")
                .ok_or_else(|| bad_response(context, "no code_url"))?;
            Ok(QrOrder {
                out_trade_no: out_trade_no.to_owned(),
                code_url: code_url.to_owned(),
            })
        }
        WechatPayResult::Fail {
            err_code,
            err_code_des,
        } => Err(match classify_err_code(err_code) {
            WechatPayErrClass::Indeterminate | WechatPayErrClass::OrderPaid => {
                ConnectorError::OutcomeUnknown(format!("{context}: {err_code} {err_code_des}"))
            }
            WechatPayErrClass::Request => rejected(err_code, err_code_des),
            WechatPayErrClass::UserPaying
            | WechatPayErrClass::NotFound
            | WechatPayErrClass::OrderClosed
            | WechatPayErrClass::Business
            | WechatPayErrClass::Unrecognised => declined(err_code, err_code_des),
        }),
    }
}

/// The answer to closeorder (§1.6): ORDERCLOSED is success (closing is idempotent); ORDERPAID
/// is `Declined` with that code, so the engine queries and records the payment.
pub(super) fn closeorder_outcome(reply: &WechatPayReply) -> Result<(), ConnectorError> {
    let context = WechatPayOperation::CloseOrder.name();
    match &reply.result {
        WechatPayResult::Success => Ok(()),
        WechatPayResult::Fail {
            err_code,
            err_code_des,
        } => match classify_err_code(err_code) {
            WechatPayErrClass::OrderClosed => Ok(()),
            WechatPayErrClass::Indeterminate => Err(ConnectorError::OutcomeUnknown(format!(
                "{context}: {err_code} {err_code_des}"
            ))),
            WechatPayErrClass::Request => Err(rejected(err_code, err_code_des)),
            WechatPayErrClass::OrderPaid
            | WechatPayErrClass::UserPaying
            | WechatPayErrClass::NotFound
            | WechatPayErrClass::Business
            | WechatPayErrClass::Unrecognised => Err(declined(err_code, err_code_des)),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Refunds

/// `refund_status` of refundquery (§1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WechatPayRefundStatus {
    Success,
    RefundClose,
    Processing,
    /// The card could not take the money back; it is parked for manual handling.
    Change,
    Unrecognised(String),
}

impl WechatPayRefundStatus {
    pub(super) fn parse(value: &str) -> Self {
        match value {
            "SUCCESS" => WechatPayRefundStatus::Success,
            "REFUNDCLOSE" => WechatPayRefundStatus::RefundClose,
            "PROCESSING" => WechatPayRefundStatus::Processing,
            "CHANGE" => WechatPayRefundStatus::Change,
            other => WechatPayRefundStatus::Unrecognised(other.to_owned()),
        }
    }

    /// CHANGE is `Processing`, not `Failed`: the money has left the merchant and waits for a
    /// manual re-route in the merchant portal, so treating it as failed could lead to a second
    /// refund of the same money. The code is kept for operators to see.
    pub(super) fn refund_status(&self) -> RefundStatus {
        match self {
            WechatPayRefundStatus::Success => RefundStatus::Succeeded,
            WechatPayRefundStatus::RefundClose => RefundStatus::Failed,
            WechatPayRefundStatus::Processing | WechatPayRefundStatus::Change => {
                RefundStatus::Processing
            }
            WechatPayRefundStatus::Unrecognised(_) => RefundStatus::Unknown,
        }
    }
}

/// The answer to refund (§1.8): SUCCESS means accepted (`Processing`), unless the answer
/// carries a `refund_status` that says more. SYSTEMERROR/BIZERR_NEED_RETRY and unlisted codes
/// are `Unknown` (retry with the same out_refund_no, or query).
pub(super) fn refund_outcome(
    reply: &WechatPayReply,
    out_trade_no: &str,
    out_refund_no: &str,
) -> Result<ChannelRefund, ConnectorError> {
    let context = WechatPayOperation::Refund.name();
    let (err_code, err_code_des) = match &reply.result {
        WechatPayResult::Success => {
            return accepted_refund(context, &reply.fields, out_trade_no, out_refund_no)
        }
        WechatPayResult::Fail {
            err_code,
            err_code_des,
        } => (err_code.as_str(), err_code_des.as_str()),
    };
    match classify_err_code(err_code) {
        WechatPayErrClass::Indeterminate => Ok(unsettled_refund(
            out_refund_no,
            RefundStatus::Unknown,
            err_code,
            err_code_des,
        )),
        WechatPayErrClass::Request => Err(rejected(err_code, err_code_des)),
        WechatPayErrClass::Business
        | WechatPayErrClass::NotFound
        | WechatPayErrClass::OrderClosed
        | WechatPayErrClass::OrderPaid => Err(declined(err_code, err_code_des)),
        WechatPayErrClass::UserPaying | WechatPayErrClass::Unrecognised => {
            warn_unrecognised(context, "err_code", err_code, out_trade_no);
            Ok(unsettled_refund(
                out_refund_no,
                RefundStatus::Unknown,
                err_code,
                err_code_des,
            ))
        }
    }
}

fn accepted_refund(
    context: &'static str,
    fields: &WechatPayFields,
    out_trade_no: &str,
    out_refund_no: &str,
) -> Result<ChannelRefund, ConnectorError> {
    check_echo(context, fields, "out_trade_no", out_trade_no)?;
    check_echo(context, fields, "out_refund_no", out_refund_no)?;
    let (status, wallet_code) = match field(fields, "refund_status") {
        Some(raw) => (
            refund_status(context, raw, out_trade_no),
            Some(raw.to_owned()),
        ),
        None => (RefundStatus::Processing, None),
    };
    let amount = refund_amount(context, fields, "refund_fee")?;
    Ok(ChannelRefund {
        out_refund_no: out_refund_no.to_owned(),
        status,
        channel_ref: field(fields, "refund_id").map(str::to_owned),
        amount,
        cny_amount: refund_cny(
            context,
            fields,
            "cash_refund_fee",
            &["cash_refund_fee_type", "cash_fee_type"],
            amount,
            out_trade_no,
        ),
        wallet_code: wallet_code.filter(|_| status != RefundStatus::Succeeded),
        wallet_message: None,
    })
}

/// The answer to refundquery (§1.8): the entry `n` whose `out_refund_no_$n` is ours, read
/// from `refund_status_$n`, `refund_id_$n` and `refund_fee_$n`. REFUNDNOTEXIST is `Failed`
/// (nothing was refunded); SYSTEMERROR, unlisted codes and an answer that does not list our
/// refund are `Unknown`.
pub(super) fn refundquery_outcome(
    reply: &WechatPayReply,
    out_trade_no: &str,
    out_refund_no: &str,
) -> Result<ChannelRefund, ConnectorError> {
    let context = WechatPayOperation::RefundQuery.name();
    let (err_code, err_code_des) = match &reply.result {
        WechatPayResult::Success => {
            return listed_refund(context, &reply.fields, out_trade_no, out_refund_no)
        }
        WechatPayResult::Fail {
            err_code,
            err_code_des,
        } => (err_code.as_str(), err_code_des.as_str()),
    };
    let status = match classify_err_code(err_code) {
        WechatPayErrClass::NotFound => RefundStatus::NotFound,
        WechatPayErrClass::Indeterminate => RefundStatus::Unknown,
        WechatPayErrClass::Request => return Err(rejected(err_code, err_code_des)),
        WechatPayErrClass::UserPaying
        | WechatPayErrClass::OrderPaid
        | WechatPayErrClass::OrderClosed
        | WechatPayErrClass::Business
        | WechatPayErrClass::Unrecognised => {
            warn_unrecognised(context, "err_code", err_code, out_trade_no);
            RefundStatus::Unknown
        }
    };
    Ok(unsettled_refund(
        out_refund_no,
        status,
        err_code,
        err_code_des,
    ))
}

fn listed_refund(
    context: &'static str,
    fields: &WechatPayFields,
    out_trade_no: &str,
    out_refund_no: &str,
) -> Result<ChannelRefund, ConnectorError> {
    check_echo(context, fields, "out_trade_no", out_trade_no)?;
    let Some(index) = indexed(fields, "out_refund_no_")
        .find(|(_, no)| *no == out_refund_no)
        .map(|(n, _)| n)
    else {
        warn_unrecognised(
            context,
            "refund list without our out_refund_no",
            out_refund_no,
            out_trade_no,
        );
        return Ok(unsettled_refund(
            out_refund_no,
            RefundStatus::Unknown,
            "",
            "",
        ));
    };
    let raw_status = field(fields, &format!("refund_status_{index}")).unwrap_or_default();
    let status = refund_status(context, raw_status, out_trade_no);
    let amount = refund_amount(context, fields, &format!("refund_fee_{index}"))?;
    // `cash_refund_fee_$n` is this refund's; the plain `cash_refund_fee` is read only when
    // the answer lists this refund alone, since it may sum several.
    let indexed_cash = format!("cash_refund_fee_{index}");
    let only_refund = indexed(fields, "out_refund_no_").count() == 1;
    let cash_field = if field(fields, &indexed_cash).is_some() || !only_refund {
        indexed_cash.as_str()
    } else {
        "cash_refund_fee"
    };
    let indexed_cash_type = format!("cash_refund_fee_type_{index}");
    let cny_amount = refund_cny(
        context,
        fields,
        cash_field,
        &[
            indexed_cash_type.as_str(),
            "cash_refund_fee_type",
            "cash_fee_type",
        ],
        amount,
        out_trade_no,
    );
    Ok(ChannelRefund {
        out_refund_no: out_refund_no.to_owned(),
        status,
        channel_ref: field(fields, &format!("refund_id_{index}")).map(str::to_owned),
        amount,
        cny_amount,
        wallet_code: Some(raw_status.to_owned())
            .filter(|c| !c.is_empty() && status != RefundStatus::Succeeded),
        wallet_message: None,
    })
}

fn refund_status(context: &'static str, raw: &str, out_trade_no: &str) -> RefundStatus {
    let parsed = WechatPayRefundStatus::parse(raw);
    match &parsed {
        WechatPayRefundStatus::Unrecognised(value) => {
            warn_unrecognised(context, "refund_status", value, out_trade_no)
        }
        WechatPayRefundStatus::Change => tracing::warn!(
            wallet = "wechatpay",
            order.out_trade_no = out_trade_no,
            "refund parked (CHANGE): needs manual handling in the merchant portal"
        ),
        _ => {}
    }
    parsed.refund_status()
}

/// A refund amount is in `refund_fee_type`, else the order's `fee_type`, else CNY (§1.9).
fn refund_amount(
    context: &'static str,
    fields: &WechatPayFields,
    amount_field: &str,
) -> Result<Option<Money>, ConnectorError> {
    let Some(minor) = field(fields, amount_field) else {
        return Ok(None);
    };
    let currency = field(fields, "refund_fee_type")
        .or_else(|| field(fields, "fee_type"))
        .unwrap_or("CNY");
    let currency = currency
        .parse::<Currency>()
        .map_err(|_| bad_response(context, "refund currency is not one we price in"))?;
    parse_money(minor, currency)
        .map(Some)
        .ok_or_else(|| bad_response(context, "refund amount is not an integer"))
}

/// What the customer gets back in CNY, as the answer states it (§1.9): the cash refund in
/// its currency (the first of `currency_fields` present, else CNY) when that is CNY; without
/// a cash refund, the refund amount itself when it is in CNY. `None` otherwise: a cash refund
/// in another currency (HKD from a Hong Kong wallet) is no CNY figure. Informative, so an
/// unreadable value is dropped with a warning rather than failing the answer.
fn refund_cny(
    context: &'static str,
    fields: &WechatPayFields,
    cash_field: &str,
    currency_fields: &[&str],
    amount: Option<Money>,
    out_trade_no: &str,
) -> Option<Money> {
    let Some(cash) = field(fields, cash_field) else {
        return amount.filter(|a| a.currency() == Currency::Cny);
    };
    let currency = currency_fields
        .iter()
        .find_map(|name| field(fields, name))
        .unwrap_or("CNY");
    if currency != Currency::Cny.code() {
        return None;
    }
    let parsed = parse_money(cash, Currency::Cny);
    if parsed.is_none() {
        warn_ignored(context, cash_field, out_trade_no);
    }
    parsed
}

fn check_echo(
    context: &'static str,
    fields: &WechatPayFields,
    name: &str,
    ours: &str,
) -> Result<(), ConnectorError> {
    if field(fields, name).is_some_and(|echoed| echoed != ours) {
        return Err(bad_response(
            context,
            &format!("{name} is not the one asked for"),
        ));
    }
    Ok(())
}

fn unsettled_refund(
    out_refund_no: &str,
    status: RefundStatus,
    err_code: &str,
    err_code_des: &str,
) -> ChannelRefund {
    ChannelRefund {
        out_refund_no: out_refund_no.to_owned(),
        status,
        channel_ref: None,
        amount: None,
        cny_amount: None,
        wallet_code: Some(err_code.to_owned()).filter(|c| !c.is_empty()),
        wallet_message: Some(err_code_des.to_owned()).filter(|m| !m.is_empty()),
    }
}

// ---------------------------------------------------------------------------------------------
// Exchange rates (§1.9)

/// The answer to queryexchagerate (§1.9): `rate` is CNY per unit of `fee_type` as an integer
/// scaled by 10^8 (the v3 representation; §10 open point 2), `rate_time` is kept verbatim.
///
/// A missing, unreadable or non-positive rate, or a rate for another currency than asked, is
/// a `BadResponse`: a rate is never guessed. Refusals: SYSTEMERROR and the like are
/// `OutcomeUnknown` (the wallet could not answer; asking again is harmless, the call changes
/// nothing); request errors, including PARAM_ERROR for a currency the wallet does not quote,
/// are `Rejected`; any other code is `Declined` verbatim.
pub(super) fn exchange_rate_outcome(
    reply: &WechatPayReply,
    currency: Currency,
) -> Result<WalletRate, ConnectorError> {
    let context = WechatPayOperation::ExchangeRate.name();
    let (err_code, err_code_des) = match &reply.result {
        WechatPayResult::Success => return quoted_rate(context, &reply.fields, currency),
        WechatPayResult::Fail {
            err_code,
            err_code_des,
        } => (err_code.as_str(), err_code_des.as_str()),
    };
    Err(match classify_err_code(err_code) {
        WechatPayErrClass::Indeterminate => {
            ConnectorError::OutcomeUnknown(format!("{context}: {err_code} {err_code_des}"))
        }
        WechatPayErrClass::Request => rejected(err_code, err_code_des),
        WechatPayErrClass::UserPaying
        | WechatPayErrClass::OrderPaid
        | WechatPayErrClass::NotFound
        | WechatPayErrClass::OrderClosed
        | WechatPayErrClass::Business
        | WechatPayErrClass::Unrecognised => declined(err_code, err_code_des),
    })
}

fn quoted_rate(
    context: &'static str,
    fields: &WechatPayFields,
    currency: Currency,
) -> Result<WalletRate, ConnectorError> {
    if field(fields, "fee_type").is_some_and(|echoed| echoed != currency.code()) {
        return Err(bad_response(context, "fee_type is not the one asked for"));
    }
    let raw = field(fields, "rate").ok_or_else(|| bad_response(context, "no rate"))?;
    let rate_e8 = parse_unsigned(raw)
        .filter(|rate| *rate > 0)
        .ok_or_else(|| bad_response(context, "rate is not a positive integer"))?;
    Ok(WalletRate {
        currency,
        rate_e8,
        rate_time: field(fields, "rate_time").map(str::to_owned),
    })
}

// ---------------------------------------------------------------------------------------------
// Notifications (§1.7)

/// A notification whose authenticity was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WechatPayNotification {
    /// A payment result, signed per §1.2.
    Payment(ChannelOrder),
    /// A refund result; authenticated by decrypting `req_info` under the merchant's key.
    Refund(WechatPayRefundNotice),
}

/// What a refund notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WechatPayRefundNotice {
    pub(super) out_trade_no: String,
    pub(super) out_refund_no: String,
    pub(super) refund_status: String,
}

/// Parses and authenticates a notification body.
///
/// A payment notification must carry a `sign` that verifies: with the algorithm its
/// `sign_type` names, or, when it names none, with the configured one first and then the
/// other (open point 1: which one WeChat uses is not settled; both need the API key, so
/// accepting either weakens nothing). Anything unsigned, forged or tampered with is
/// `BadSignature`; a verified message that is not a successful payment is `Malformed`.
pub(super) fn open_notification(
    body: &[u8],
    merchant: &WechatPayMerchant<'_>,
    api_key: &SecretString,
) -> Result<WechatPayNotification, CallbackError> {
    let fields = parse_xml(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    if field(&fields, "return_code") != Some("SUCCESS") {
        return Err(CallbackError::Malformed(
            "return_code is not SUCCESS".into(),
        ));
    }
    if field(&fields, "sign").is_none() {
        if let Some(req_info) = field(&fields, "req_info") {
            return open_refund_notice(&fields, req_info, merchant, api_key)
                .map(WechatPayNotification::Refund);
        }
        return Err(CallbackError::BadSignature);
    }
    verify_notification_sign(&fields, merchant, api_key)?;
    check_merchant(&fields, merchant).map_err(|what| CallbackError::Malformed(what.into()))?;
    if field(&fields, "result_code") != Some("SUCCESS") {
        return Err(CallbackError::Malformed(
            "result_code is not SUCCESS".into(),
        ));
    }
    let out_trade_no = field(&fields, "out_trade_no")
        .ok_or_else(|| CallbackError::Malformed("no out_trade_no".into()))?;
    paid_order(NOTIFICATION_CONTEXT, &fields, out_trade_no)
        .map(WechatPayNotification::Payment)
        .map_err(|e| CallbackError::Malformed(e.to_string()))
}

fn verify_notification_sign(
    fields: &WechatPayFields,
    merchant: &WechatPayMerchant<'_>,
    api_key: &SecretString,
) -> Result<(), CallbackError> {
    let received_sign = field(fields, "sign").ok_or(CallbackError::BadSignature)?;
    let verifies = |sign_type| {
        let sorted = fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()));
        sign::verify_fields(sorted, received_sign, api_key, sign_type)
    };
    let used = match field(fields, "sign_type") {
        Some(named) => {
            let sign_type = WechatPaySignType::from_wire_name(named)
                .ok_or_else(|| CallbackError::Malformed("unknown sign_type".into()))?;
            Some(sign_type).filter(|t| verifies(*t))
        }
        None => [merchant.sign_type, merchant.sign_type.other()]
            .into_iter()
            .find(|t| verifies(*t)),
    };
    match used {
        Some(sign_type) if sign_type != merchant.sign_type => {
            tracing::warn!(
                wallet = "wechatpay",
                configured = merchant.sign_type.wire_name(),
                used = sign_type.wire_name(),
                "payment notification signed with another sign type than configured"
            );
            Ok(())
        }
        Some(_) => Ok(()),
        None => Err(CallbackError::BadSignature),
    }
}

/// Opens a refund notification (§1.7): the outer message names our merchant and carries the
/// inner XML encrypted under MD5(API key). A ciphertext that does not decrypt to a v2 message
/// with both order numbers is taken as forged.
fn open_refund_notice(
    fields: &WechatPayFields,
    req_info: &str,
    merchant: &WechatPayMerchant<'_>,
    api_key: &SecretString,
) -> Result<WechatPayRefundNotice, CallbackError> {
    check_merchant(fields, merchant).map_err(|what| CallbackError::Malformed(what.into()))?;
    let inner =
        sign::decrypt_req_info(req_info, api_key).map_err(|_| CallbackError::BadSignature)?;
    let inner = parse_req_info_xml(inner.as_bytes()).map_err(|_| CallbackError::BadSignature)?;
    let (Some(out_trade_no), Some(out_refund_no)) = (
        field(&inner, "out_trade_no"),
        field(&inner, "out_refund_no"),
    ) else {
        return Err(CallbackError::BadSignature);
    };
    Ok(WechatPayRefundNotice {
        out_trade_no: out_trade_no.to_owned(),
        out_refund_no: out_refund_no.to_owned(),
        refund_status: field(&inner, "refund_status")
            .unwrap_or_default()
            .to_owned(),
    })
}
