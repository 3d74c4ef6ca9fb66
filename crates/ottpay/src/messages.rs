//! Typed transaction data of the retail actions (§5, §6, §13).
//!
//! Every type has `from_data(&Data) -> Result<Self, FieldError>` and
//! `to_data(&self) -> Data` (also available through the [`Message`] trait).
//!
//! Reading rules shared by every `from_data`:
//! - only the keys the type knows are read; other keys are ignored (§13.9);
//! - a JSON string is used as-is; a JSON number is accepted and converted to its text
//!   (integral floats such as `100.0` become `"100"`); any other JSON type is
//!   [`FieldError::Invalid`];
//! - absent and `null` are the same; for optional fields `""` is also treated as absent;
//! - a required field that is absent is [`FieldError::Missing`], one that is `""` is
//!   [`FieldError::Invalid`].
//!
//! Every `to_data` emits JSON strings only (§13.5), omits `None` fields and writes keys in
//! the order of the spec tables.

use std::fmt;
use std::str::FromStr;

use serde_json::{Number, Value};

use crate::codes::wire_enum;
use crate::crypto::Data;

/// Why typed data could not be read from a [`Data`] object.
///
/// The `Display` texts are one line of plain ASCII without `+` or `%`, e.g.
/// `missing field amount` or `invalid amount: must be a whole number of cents`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// A required key is absent (or `null`).
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A key is present but its value is not acceptable.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The key, e.g. `"amount"`.
        field: &'static str,
        /// Why, e.g. `"must be a whole number of cents"`.
        reason: String,
    },
}

impl FieldError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Why a string is not a valid [`Cents`] amount.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum CentsError {
    /// `""`.
    #[error("must not be empty")]
    Empty,
    /// Starts with `-`.
    #[error("must not be negative")]
    Negative,
    /// Has a decimal point.
    #[error("must be a whole number of cents")]
    NotWhole,
    /// Has a character other than `0`-`9` (including a sign or whitespace).
    #[error("must contain only digits")]
    NotDigits,
    /// More than 18 digits.
    #[error("must have at most 18 digits")]
    TooLong,
}

/// An amount in minor units (cents): `"100"` is 1.00 (§2).
///
/// Wire form: 1 to 18 ASCII digits, no sign, no decimal point, no whitespace (leading zeros
/// are accepted). `Display` prints the plain digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cents(pub u64);

impl Cents {
    /// Parses the wire form; see the type documentation.
    pub fn parse(s: &str) -> Result<Self, CentsError> {
        if s.is_empty() {
            return Err(CentsError::Empty);
        }
        if s.starts_with('-') {
            return Err(CentsError::Negative);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(if s.contains('.') {
                CentsError::NotWhole
            } else {
                CentsError::NotDigits
            });
        }
        if s.len() > 18 {
            return Err(CentsError::TooLong);
        }
        s.parse().map(Cents).map_err(|_| CentsError::NotDigits)
    }
}

impl FromStr for Cents {
    type Err = CentsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Cents {
    fn from(v: u64) -> Self {
        Self(v)
    }
}

wire_enum! {
    /// Retail wallet (`biz_type`, §2).
    pub enum BizType ("biz_type") {
        /// `ALIPAY`
        Alipay => "ALIPAY",
        /// `WECHATPAY`
        WechatPay => "WECHATPAY",
        /// `UNIONPAY`
        UnionPay => "UNIONPAY",
    }
}

wire_enum! {
    /// Order status (`order_status`, §7), lower case on the wire.
    pub enum OrderStatus ("order_status") {
        /// `init`: created, customer has not acted yet.
        Init => "init",
        /// `notpay`: not paid / payment in progress.
        NotPay => "notpay",
        /// `success`: paid.
        Success => "success",
        /// `canceling`: being revoked.
        Canceling => "canceling",
        /// `failure`: failed.
        Failure => "failure",
        /// `orderclosed`: closed.
        OrderClosed => "orderclosed",
        /// `authfinish`: pre-authorisation completed.
        AuthFinish => "authfinish",
        /// `partial_refunded`
        PartialRefunded => "partial_refunded",
        /// `fully_refunded`
        FullyRefunded => "fully_refunded",
    }
}

/// Common interface of the typed messages, for generic code. Each type also has the same
/// two functions as inherent methods.
pub trait Message: Sized {
    /// Reads the type from transaction data; see the module rules.
    fn from_data(data: &Data) -> Result<Self, FieldError>;
    /// Writes the type as transaction data of JSON strings.
    fn to_data(&self) -> Data;
}

// ---------------------------------------------------------------------------------------
// Reading helpers

/// Text of a JSON number; integral floats lose their fraction.
fn number_text(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e17 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

/// The text of `key`: `None` when absent or `null`.
fn text(data: &Data, key: &'static str) -> Result<Option<String>, FieldError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(number_text(n))),
        Some(_) => Err(FieldError::invalid(key, "must be a string")),
    }
}

fn opt_string(data: &Data, key: &'static str) -> Result<Option<String>, FieldError> {
    Ok(text(data, key)?.filter(|s| !s.is_empty()))
}

fn req_string(data: &Data, key: &'static str) -> Result<String, FieldError> {
    match text(data, key)? {
        None => Err(FieldError::Missing(key)),
        Some(s) if s.is_empty() => Err(FieldError::invalid(key, "must not be empty")),
        Some(s) => Ok(s),
    }
}

fn cents_of(key: &'static str, s: &str) -> Result<Cents, FieldError> {
    Cents::parse(s).map_err(|e| FieldError::invalid(key, e.to_string()))
}

fn opt_cents(data: &Data, key: &'static str) -> Result<Option<Cents>, FieldError> {
    opt_string(data, key)?
        .map(|s| cents_of(key, &s))
        .transpose()
}

fn req_cents(data: &Data, key: &'static str) -> Result<Cents, FieldError> {
    match text(data, key)? {
        None => Err(FieldError::Missing(key)),
        Some(s) => cents_of(key, &s),
    }
}

fn req_enum<T>(
    data: &Data,
    key: &'static str,
    parse: fn(&str) -> Option<T>,
    expected: &'static str,
) -> Result<T, FieldError> {
    let s = req_string(data, key)?;
    parse(&s).ok_or_else(|| FieldError::invalid(key, format!("must be one of {expected}")))
}

fn biz_type(data: &Data) -> Result<BizType, FieldError> {
    req_enum(
        data,
        "biz_type",
        BizType::parse,
        "ALIPAY, WECHATPAY, UNIONPAY",
    )
}

const ORDER_STATUS_VALUES: &str = "init, notpay, success, canceling, failure, orderclosed, \
                                   authfinish, partial_refunded, fully_refunded";

fn order_status(data: &Data) -> Result<OrderStatus, FieldError> {
    req_enum(
        data,
        "order_status",
        OrderStatus::parse,
        ORDER_STATUS_VALUES,
    )
}

/// `tip`, or its alias `Tip` (§11.5) when `tip` is absent or empty.
fn tip_with_alias(data: &Data) -> Result<Option<Cents>, FieldError> {
    match opt_cents(data, "tip")? {
        Some(t) => Ok(Some(t)),
        None => opt_cents(data, "Tip"),
    }
}

// ---------------------------------------------------------------------------------------
// Writing helpers

fn set(d: &mut Data, key: &str, value: impl fmt::Display) {
    d.insert(key.to_owned(), Value::String(value.to_string()));
}

fn set_opt<T: fmt::Display>(d: &mut Data, key: &str, value: Option<&T>) {
    if let Some(v) = value {
        set(d, key, v);
    }
}

macro_rules! impl_message {
    ($($t:ty),+ $(,)?) => {
        $(
            impl Message for $t {
                fn from_data(data: &Data) -> Result<Self, FieldError> {
                    <$t>::from_data(data)
                }
                fn to_data(&self) -> Data {
                    <$t>::to_data(self)
                }
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------
// ACTIVEPAY

/// `ACTIVEPAY` request data (§5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePayRequest {
    /// Merchant order id; generated by the gateway when `None`.
    pub order_id: Option<String>,
    /// Operator id; optional in practice (§13.8).
    pub operator_id: Option<String>,
    /// Amount in cents.
    pub amount: Cents,
    /// Tip in cents; read from `tip` or its alias `Tip` (§11.5); written as `tip`.
    pub tip: Option<Cents>,
    /// Wallet.
    pub biz_type: BizType,
    /// Notify URL for the call-back, used verbatim (§13.2).
    pub call_back_url: String,
}

impl ActivePayRequest {
    /// Reads the request; see the module rules.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        Ok(Self {
            order_id: opt_string(data, "order_id")?,
            operator_id: opt_string(data, "operator_id")?,
            amount: req_cents(data, "amount")?,
            tip: tip_with_alias(data)?,
            biz_type: biz_type(data)?,
            call_back_url: req_string(data, "call_back_url")?,
        })
    }

    /// Keys `order_id`, `operator_id`, `amount`, `tip`, `biz_type`, `call_back_url`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set_opt(&mut d, "order_id", self.order_id.as_ref());
        set_opt(&mut d, "operator_id", self.operator_id.as_ref());
        set(&mut d, "amount", self.amount);
        set_opt(&mut d, "tip", self.tip.as_ref());
        set(&mut d, "biz_type", self.biz_type);
        set(&mut d, "call_back_url", &self.call_back_url);
        d
    }
}

/// `ACTIVEPAY` response data (§5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePayResponse {
    /// Content of the QR code to show.
    pub code_url: String,
    /// The merchant's or the generated order id.
    pub order_id: String,
    /// Wallet-side id, when known.
    pub bizpay_order_id: Option<String>,
}

impl ActivePayResponse {
    /// Reads the response; see the module rules.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        Ok(Self {
            code_url: req_string(data, "code_url")?,
            order_id: req_string(data, "order_id")?,
            bizpay_order_id: opt_string(data, "bizpay_order_id")?,
        })
    }

    /// Keys `code_url`, `order_id`, `bizpay_order_id`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set(&mut d, "code_url", &self.code_url);
        set(&mut d, "order_id", &self.order_id);
        set_opt(&mut d, "bizpay_order_id", self.bizpay_order_id.as_ref());
        d
    }
}

// ---------------------------------------------------------------------------------------
// PASSIVEPAY

/// `PASSIVEPAY` request data (§5.2). Its `Debug` hides the customer's payment code.
#[derive(Clone, PartialEq, Eq)]
pub struct PassivePayRequest {
    /// Merchant order id; generated by the gateway when `None`.
    pub order_id: Option<String>,
    /// Operator id (optional in practice, §13.8).
    pub operator_id: Option<String>,
    /// Amount in cents.
    pub amount: Cents,
    /// Tip in cents; read from `tip` or its alias `Tip`; written as `tip`.
    pub tip: Option<Cents>,
    /// Merchant sale/invoice number.
    pub sale_num: Option<String>,
    /// Scanned wallet code content.
    pub auth_code: String,
    /// Wallet.
    pub biz_type: BizType,
}

impl std::fmt::Debug for PassivePayRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A payment code is a bearer credential for the customer's money until it expires.
        f.debug_struct("PassivePayRequest")
            .field("order_id", &self.order_id)
            .field("operator_id", &self.operator_id)
            .field("amount", &self.amount)
            .field("tip", &self.tip)
            .field("sale_num", &self.sale_num)
            .field("auth_code", &"***")
            .field("biz_type", &self.biz_type)
            .finish()
    }
}

impl PassivePayRequest {
    /// Reads the request; see the module rules.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        Ok(Self {
            order_id: opt_string(data, "order_id")?,
            operator_id: opt_string(data, "operator_id")?,
            amount: req_cents(data, "amount")?,
            tip: tip_with_alias(data)?,
            sale_num: opt_string(data, "sale_num")?,
            auth_code: req_string(data, "auth_code")?,
            biz_type: biz_type(data)?,
        })
    }

    /// Keys `order_id`, `operator_id`, `amount`, `tip`, `sale_num`, `auth_code`, `biz_type`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set_opt(&mut d, "order_id", self.order_id.as_ref());
        set_opt(&mut d, "operator_id", self.operator_id.as_ref());
        set(&mut d, "amount", self.amount);
        set_opt(&mut d, "tip", self.tip.as_ref());
        set_opt(&mut d, "sale_num", self.sale_num.as_ref());
        set(&mut d, "auth_code", &self.auth_code);
        set(&mut d, "biz_type", self.biz_type);
        d
    }
}

/// `PASSIVEPAY` response data (§5.2, §11.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassivePayResponse {
    /// Order status.
    pub order_status: OrderStatus,
    /// `yyyyMMddHHmmss`.
    pub trade_time: Option<String>,
    /// Order id.
    pub order_id: String,
    /// Wallet-side buyer identifier.
    pub buyer_login_id: Option<String>,
    /// Order total in cents.
    pub total_amount: Cents,
    /// Amount on the receipt.
    pub receipt_amount: Option<Cents>,
    /// Amount paid by the buyer.
    pub buyer_pay_amount: Option<Cents>,
    /// Tip.
    pub tip: Option<Cents>,
    /// Wallet/acquirer transaction id.
    pub bizpay_order_id: Option<String>,
}

impl PassivePayResponse {
    /// Reads the response; see the module rules.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        Ok(Self {
            order_status: order_status(data)?,
            trade_time: opt_string(data, "trade_time")?,
            order_id: req_string(data, "order_id")?,
            buyer_login_id: opt_string(data, "buyer_login_id")?,
            total_amount: req_cents(data, "total_amount")?,
            receipt_amount: opt_cents(data, "receipt_amount")?,
            buyer_pay_amount: opt_cents(data, "buyer_pay_amount")?,
            tip: opt_cents(data, "tip")?,
            bizpay_order_id: opt_string(data, "bizpay_order_id")?,
        })
    }

    /// Keys `order_status`, `trade_time`, `order_id`, `buyer_login_id`, `total_amount`,
    /// `receipt_amount`, `buyer_pay_amount`, `tip`, `bizpay_order_id`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set(&mut d, "order_status", self.order_status);
        set_opt(&mut d, "trade_time", self.trade_time.as_ref());
        set(&mut d, "order_id", &self.order_id);
        set_opt(&mut d, "buyer_login_id", self.buyer_login_id.as_ref());
        set(&mut d, "total_amount", self.total_amount);
        set_opt(&mut d, "receipt_amount", self.receipt_amount.as_ref());
        set_opt(&mut d, "buyer_pay_amount", self.buyer_pay_amount.as_ref());
        set_opt(&mut d, "tip", self.tip.as_ref());
        set_opt(&mut d, "bizpay_order_id", self.bizpay_order_id.as_ref());
        d
    }
}

// ---------------------------------------------------------------------------------------
// STATUS_QUERY

/// `STATUS_QUERY` request data (§5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusQueryRequest {
    /// The order to query.
    pub order_id: String,
}

impl StatusQueryRequest {
    /// Reads the request; see the module rules.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        Ok(Self {
            order_id: req_string(data, "order_id")?,
        })
    }

    /// Key `order_id`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set(&mut d, "order_id", &self.order_id);
        d
    }
}

/// `STATUS_QUERY` response data (§5.3, §11.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusQueryResponse {
    /// Inner result code, key `rspCode`.
    pub rsp_code: Option<String>,
    /// Inner result message, key `rspMsg`.
    pub rsp_msg: Option<String>,
    /// Order status.
    pub order_status: OrderStatus,
    /// `yyyyMMddHHmmss`.
    pub trade_time: Option<String>,
    /// Order id.
    pub order_id: String,
    /// Wallet/acquirer transaction id.
    pub bizpay_order_id: Option<String>,
    /// Order total in cents (`amount`).
    pub amount: Cents,
    /// Order total in cents (`total_amount`).
    pub total_amount: Cents,
    /// Amount on the receipt.
    pub receipt_amount: Option<Cents>,
    /// Amount paid by the buyer.
    pub buyer_pay_amount: Option<Cents>,
    /// Tip.
    pub tip: Option<Cents>,
    /// Refunded amount, for refunded orders.
    pub refund_amount: Option<Cents>,
    /// Wallet-side buyer identifier.
    pub buyer_login_id: Option<String>,
}

impl StatusQueryResponse {
    /// Reads the response; see the module rules. `amount` and `total_amount` stand in for
    /// each other when only one is present; with neither, `Missing("amount")`.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        let amount = opt_cents(data, "amount")?;
        let total_amount = opt_cents(data, "total_amount")?;
        let (amount, total_amount) = match (amount, total_amount) {
            (Some(a), Some(t)) => (a, t),
            (Some(a), None) => (a, a),
            (None, Some(t)) => (t, t),
            (None, None) => return Err(FieldError::Missing("amount")),
        };
        Ok(Self {
            rsp_code: opt_string(data, "rspCode")?,
            rsp_msg: opt_string(data, "rspMsg")?,
            order_status: order_status(data)?,
            trade_time: opt_string(data, "trade_time")?,
            order_id: req_string(data, "order_id")?,
            bizpay_order_id: opt_string(data, "bizpay_order_id")?,
            amount,
            total_amount,
            receipt_amount: opt_cents(data, "receipt_amount")?,
            buyer_pay_amount: opt_cents(data, "buyer_pay_amount")?,
            tip: opt_cents(data, "tip")?,
            refund_amount: opt_cents(data, "refund_amount")?,
            buyer_login_id: opt_string(data, "buyer_login_id")?,
        })
    }

    /// Keys `rspCode`, `rspMsg`, `order_status`, `trade_time`, `order_id`,
    /// `bizpay_order_id`, `amount`, `total_amount`, `receipt_amount`, `buyer_pay_amount`,
    /// `tip`, `refund_amount`, `buyer_login_id`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set_opt(&mut d, "rspCode", self.rsp_code.as_ref());
        set_opt(&mut d, "rspMsg", self.rsp_msg.as_ref());
        set(&mut d, "order_status", self.order_status);
        set_opt(&mut d, "trade_time", self.trade_time.as_ref());
        set(&mut d, "order_id", &self.order_id);
        set_opt(&mut d, "bizpay_order_id", self.bizpay_order_id.as_ref());
        set(&mut d, "amount", self.amount);
        set(&mut d, "total_amount", self.total_amount);
        set_opt(&mut d, "receipt_amount", self.receipt_amount.as_ref());
        set_opt(&mut d, "buyer_pay_amount", self.buyer_pay_amount.as_ref());
        set_opt(&mut d, "tip", self.tip.as_ref());
        set_opt(&mut d, "refund_amount", self.refund_amount.as_ref());
        set_opt(&mut d, "buyer_login_id", self.buyer_login_id.as_ref());
        d
    }
}

// ---------------------------------------------------------------------------------------
// REFUND / REFUND_QUERY

/// `REFUND` request data (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// Id of the new refund order; generated by the gateway when `None`.
    pub order_id: Option<String>,
    /// Id of the original payment.
    pub ori_order_id: String,
    /// Amount to refund, in cents.
    pub refund_amt: Cents,
}

impl RefundRequest {
    /// Reads the request; see the module rules.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        Ok(Self {
            order_id: opt_string(data, "order_id")?,
            ori_order_id: req_string(data, "ori_order_id")?,
            refund_amt: req_cents(data, "refund_amt")?,
        })
    }

    /// Keys `order_id`, `ori_order_id`, `refund_amt`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set_opt(&mut d, "order_id", self.order_id.as_ref());
        set(&mut d, "ori_order_id", &self.ori_order_id);
        set(&mut d, "refund_amt", self.refund_amt);
        d
    }
}

/// `REFUND` and `REFUND_QUERY` response data. Provisional shape (§11.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResponse {
    /// Id of the refund order.
    pub order_id: String,
    /// Id of the original payment.
    pub ori_order_id: String,
    /// Refunded amount, in cents.
    pub refund_amt: Cents,
    /// Status of the refund, free text (e.g. an [`OrderStatus`] value).
    pub order_status: String,
}

impl RefundResponse {
    /// Reads the response; see the module rules.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        Ok(Self {
            order_id: req_string(data, "order_id")?,
            ori_order_id: req_string(data, "ori_order_id")?,
            refund_amt: req_cents(data, "refund_amt")?,
            order_status: req_string(data, "order_status")?,
        })
    }

    /// Keys `order_id`, `ori_order_id`, `refund_amt`, `order_status`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set(&mut d, "order_id", &self.order_id);
        set(&mut d, "ori_order_id", &self.ori_order_id);
        set(&mut d, "refund_amt", self.refund_amt);
        set(&mut d, "order_status", &self.order_status);
        d
    }
}

/// `REFUND_QUERY` request data (§11.15): the refund order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundQueryRequest {
    /// Id of the refund order.
    pub order_id: String,
}

impl RefundQueryRequest {
    /// Reads the request; see the module rules.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        Ok(Self {
            order_id: req_string(data, "order_id")?,
        })
    }

    /// Key `order_id`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set(&mut d, "order_id", &self.order_id);
        d
    }
}

// ---------------------------------------------------------------------------------------
// EX_RATE_QUERY

/// `EX_RATE_QUERY` request data (§5.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExRateQueryRequest {
    /// ISO 4217 code, e.g. `CAD`. `None` when absent or empty; what that means is the
    /// gateway's decision (§13.9).
    pub fee_type: Option<String>,
}

impl ExRateQueryRequest {
    /// Reads the request; see the module rules.
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        Ok(Self {
            fee_type: opt_string(data, "fee_type")?,
        })
    }

    /// Key `fee_type` (omitted when `None`).
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set_opt(&mut d, "fee_type", self.fee_type.as_ref());
        d
    }
}

/// `EX_RATE_QUERY` response data (§5.6, §11.17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExRateQueryResponse {
    /// ISO 4217 code, key `feeType`.
    pub fee_type: String,
    /// Rate to CNY times 10^8 (6.5 is `650000000`), key `rate`, a decimal string on the wire.
    pub rate: i64,
    /// Rate timestamp `yyyyMMddHHmmss`, key `rate_time`.
    pub rate_time: Option<String>,
}

/// An optional `-` then 1 to 18 digits.
fn parse_rate(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl ExRateQueryResponse {
    /// Reads the response; see the module rules. `rate` must be an integer (optional `-`,
    /// at most 18 digits).
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        let rate = req_string(data, "rate")?;
        Ok(Self {
            fee_type: req_string(data, "feeType")?,
            rate: parse_rate(&rate)
                .ok_or_else(|| FieldError::invalid("rate", "must be a whole number"))?,
            rate_time: opt_string(data, "rate_time")?,
        })
    }

    /// Keys `feeType`, `rate`, `rate_time`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set(&mut d, "feeType", &self.fee_type);
        set(&mut d, "rate", self.rate);
        set_opt(&mut d, "rate_time", self.rate_time.as_ref());
        d
    }
}

// ---------------------------------------------------------------------------------------
// Call-back

/// Call-back transaction data (§6, §13.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackData {
    /// Payment time `yyyyMMddHHmmss`.
    pub finish_time: String,
    /// The merchant's order id, as sent in the request.
    pub order_id: String,
    /// Amount in cents.
    pub amount: Cents,
    /// Tip in cents.
    pub tip: Option<Cents>,
    /// Wallet/acquirer transaction id.
    pub bizpay_order_id: String,
    /// Merchant id.
    pub merchant_id: String,
    /// Order status, `success` for a paid order.
    pub order_status: OrderStatus,
}

impl CallbackData {
    /// Reads the call-back data; see the module rules. An absent `order_status` is read as
    /// [`OrderStatus::Success`] (older gateways omit it and only notify paid orders, §6).
    pub fn from_data(data: &Data) -> Result<Self, FieldError> {
        let order_status = if opt_string(data, "order_status")?.is_some() {
            order_status(data)?
        } else {
            OrderStatus::Success
        };
        Ok(Self {
            finish_time: req_string(data, "finish_time")?,
            order_id: req_string(data, "order_id")?,
            amount: req_cents(data, "amount")?,
            tip: opt_cents(data, "tip")?,
            bizpay_order_id: req_string(data, "bizpay_order_id")?,
            merchant_id: req_string(data, "merchant_id")?,
            order_status,
        })
    }

    /// Keys `finish_time`, `order_id`, `amount`, `tip`, `bizpay_order_id`, `merchant_id`,
    /// `order_status`.
    pub fn to_data(&self) -> Data {
        let mut d = Data::new();
        set(&mut d, "finish_time", &self.finish_time);
        set(&mut d, "order_id", &self.order_id);
        set(&mut d, "amount", self.amount);
        set_opt(&mut d, "tip", self.tip.as_ref());
        set(&mut d, "bizpay_order_id", &self.bizpay_order_id);
        set(&mut d, "merchant_id", &self.merchant_id);
        set(&mut d, "order_status", self.order_status);
        d
    }
}

impl_message!(
    ActivePayRequest,
    ActivePayResponse,
    PassivePayRequest,
    PassivePayResponse,
    StatusQueryRequest,
    StatusQueryResponse,
    RefundRequest,
    RefundResponse,
    RefundQueryRequest,
    ExRateQueryRequest,
    ExRateQueryResponse,
    CallbackData,
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Data {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn cents_parse() {
        assert_eq!(Cents::parse("100"), Ok(Cents(100)));
        assert_eq!(Cents::parse("0"), Ok(Cents(0)));
        assert_eq!(Cents::parse("007"), Ok(Cents(7)));
        assert_eq!(
            Cents::parse("999999999999999999"),
            Ok(Cents(999_999_999_999_999_999))
        );
        assert_eq!(Cents::parse(""), Err(CentsError::Empty));
        assert_eq!(Cents::parse("-1"), Err(CentsError::Negative));
        assert_eq!(Cents::parse("1.5"), Err(CentsError::NotWhole));
        assert_eq!(Cents::parse("+1"), Err(CentsError::NotDigits));
        assert_eq!(Cents::parse(" 1"), Err(CentsError::NotDigits));
        assert_eq!(Cents::parse("abc"), Err(CentsError::NotDigits));
        assert_eq!(
            Cents::parse("1000000000000000000"),
            Err(CentsError::TooLong)
        );
        assert_eq!(Cents(1234).to_string(), "1234");
    }

    #[test]
    fn numbers_are_accepted() {
        let d = obj(json!({"amount": 100, "tip": 5.0, "biz_type": "ALIPAY", "call_back_url": "u"}));
        let r = ActivePayRequest::from_data(&d).unwrap();
        assert_eq!(r.amount, Cents(100));
        assert_eq!(r.tip, Some(Cents(5)));
        let d = obj(json!({"amount": 1.5, "biz_type": "ALIPAY", "call_back_url": "u"}));
        assert_eq!(
            ActivePayRequest::from_data(&d),
            Err(FieldError::Invalid {
                field: "amount",
                reason: "must be a whole number of cents".into()
            })
        );
    }

    #[test]
    fn enum_errors() {
        let d = obj(json!({"amount": "1", "biz_type": "PAYPAL", "call_back_url": "u"}));
        let e = ActivePayRequest::from_data(&d).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid biz_type: must be one of ALIPAY, WECHATPAY, UNIONPAY"
        );
        let d = obj(json!({"amount": "1", "biz_type": true, "call_back_url": "u"}));
        assert_eq!(
            ActivePayRequest::from_data(&d).unwrap_err().to_string(),
            "invalid biz_type: must be a string"
        );
    }

    #[test]
    fn status_query_amount_fallback() {
        let d = obj(json!({"order_status": "success", "order_id": "A", "total_amount": "7"}));
        let r = StatusQueryResponse::from_data(&d).unwrap();
        assert_eq!((r.amount, r.total_amount), (Cents(7), Cents(7)));
        let d = obj(json!({"order_status": "success", "order_id": "A"}));
        assert_eq!(
            StatusQueryResponse::from_data(&d),
            Err(FieldError::Missing("amount"))
        );
    }

    #[test]
    fn callback_default_status() {
        let d = obj(
            json!({"finish_time": "20240101120000", "order_id": "A", "amount": "1",
            "bizpay_order_id": "B", "merchant_id": "ON00004652"}),
        );
        assert_eq!(
            CallbackData::from_data(&d).unwrap().order_status,
            OrderStatus::Success
        );
        let mut d = d;
        d.insert("order_status".into(), "weird".into());
        assert!(CallbackData::from_data(&d).is_err());
    }

    #[test]
    fn rate_parse() {
        assert_eq!(parse_rate("650000000"), Some(650_000_000));
        assert_eq!(parse_rate("-5"), Some(-5));
        assert_eq!(parse_rate("+5"), None);
        assert_eq!(parse_rate("-"), None);
        assert_eq!(parse_rate("6.5"), None);
    }
}
