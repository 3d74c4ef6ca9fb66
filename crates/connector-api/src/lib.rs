//! The contract between the engine and the wallet connectors (WeChat Pay, Alipay, UnionPay).
//!
//! A connector turns one normalised request into one wallet call and the wallet's answer into
//! one normalised outcome. It is stateless (it never touches the database) and never guesses:
//! success and failure come only from explicit wallet statements; anything else, including a
//! timeout after the request may have landed, is [`ChannelStatus::Unknown`] or
//! [`ConnectorError::OutcomeUnknown`], which the engine settles by querying, closing or
//! reversing.
//!
//! Amounts cross this boundary as [`Money`] in the merchant's pricing currency; each connector
//! converts to its wallet's units (fen integers, yuan decimals) inside its own module.

mod bill;
mod client;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use qrgate_domain::{Currency, Money};

pub use bill::{
    BillError, BillFee, BillFigure, BillFile, BillLine, BillLineKind, BillLineStatus, BillMismatch,
    BillTotals, WalletBill,
};
pub use client::{
    BoundedCallError, HttpClient, HttpClientConfig, HttpError, HttpResponse, ResponseLimit,
};

/// Which wallet a connector speaks to (the domain's type).
pub use qrgate_domain::Wallet;

/// What a connector can do, checked by the engine before calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub code_payment: bool,
    pub qr_order: bool,
    pub close: bool,
    pub reverse: bool,
    pub refund: bool,
    /// Pricing currencies the wallet accepts from this merchant account.
    pub currencies: Vec<Currency>,
}

/// Charge a customer's payment code (passive mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePaymentRequest {
    /// Our order number at the wallet (`out_trade_no`): unique per merchant account, reused
    /// on retries of the same attempt.
    pub out_trade_no: String,
    pub amount: Money,
    /// The scanned payment code. Never logged.
    pub auth_code: String,
    /// What the customer sees on the statement.
    pub subject: String,
    pub terminal_id: Option<String>,
    /// The caller's IP as the wallet wants it (WeChat `spbill_create_ip`).
    pub client_ip: String,
    /// When the order was sent, as recorded by the engine: UnionPay needs it (`txnTime`) to
    /// find the order again.
    pub created_at: DateTime<Utc>,
}

/// Create a merchant-presented QR order (active mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrOrderRequest {
    pub out_trade_no: String,
    pub amount: Money,
    pub subject: String,
    /// Where the wallet posts its payment callback.
    pub notify_url: String,
    /// When the QR stops being payable.
    pub expires_at: DateTime<Utc>,
    pub terminal_id: Option<String>,
    pub client_ip: String,
    /// When the order was sent (UnionPay `txnTime`).
    pub created_at: DateTime<Utc>,
}

/// Which wallet order a call is about: our number, when we created it, and the wallet's own
/// id once known. Wallets differ in what they need (UnionPay: `orderId` with its `txnTime`,
/// and `origQryId` to cancel or refund).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRef {
    pub out_trade_no: String,
    pub created_at: DateTime<Utc>,
    pub channel_ref: Option<String>,
}

/// Which refund a query is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRef {
    pub out_refund_no: String,
    pub created_at: DateTime<Utc>,
}

/// Refund some or all of a paid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub out_trade_no: String,
    /// Our refund number (`out_refund_no` / `out_request_no`): one per refund, reused on
    /// retries of the same refund.
    pub out_refund_no: String,
    /// The order's total, which some wallets want repeated.
    pub order_amount: Money,
    pub refund_amount: Money,
    pub reason: Option<String>,
    /// The order being refunded, with its time and wallet id (UnionPay needs both).
    pub order: OrderRef,
    /// When this refund was first sent (UnionPay `txnTime` of the refund).
    pub created_at: DateTime<Utc>,
}

/// The normalised state of a wallet order (`wallets.md` §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelStatus {
    /// Waiting for the customer: password entry, or a QR not scanned or not paid yet.
    PendingUser,
    /// The wallet did not say; query again.
    Unknown,
    /// Paid (also when refunds exist).
    Paid,
    /// Failed for good; no money moved.
    Failed,
    /// Closed unpaid (timeout, close).
    Closed,
    /// Reversed: closed if unpaid, money returned if paid.
    Reversed,
}

impl ChannelStatus {
    /// Whether the state can no longer change by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ChannelStatus::Paid
                | ChannelStatus::Failed
                | ChannelStatus::Closed
                | ChannelStatus::Reversed
        )
    }
}

/// What the wallet says about one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelOrder {
    pub out_trade_no: String,
    pub status: ChannelStatus,
    /// The wallet's own id for the payment (`transaction_id`, `trade_no`, `queryId`).
    pub channel_ref: Option<String>,
    /// The order amount in the pricing currency, as the wallet echoes it.
    pub amount: Option<Money>,
    /// What the customer paid, usually in CNY.
    pub payer_amount: Option<Money>,
    /// Pricing currency → payer currency rate ×10^8, when the wallet says.
    pub rate_e8: Option<i64>,
    /// Masked buyer identity (openid, logon id).
    pub buyer: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    /// For a non-final or failed state: the wallet's own code and message, verbatim.
    pub wallet_code: Option<String>,
    pub wallet_message: Option<String>,
}

/// A created QR order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrOrder {
    pub out_trade_no: String,
    /// The string to render as the QR code.
    pub code_url: String,
}

/// The outcome of a reversal call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReverseOutcome {
    /// The order is reversed (closed, or refunded if it had been paid).
    Done,
    /// The wallet asks to call again (`recall=Y`, `retry_flag=Y`).
    CallAgain,
}

/// The state of one refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Processing,
    Succeeded,
    Failed,
    /// The wallet did not say; query again.
    Unknown,
    /// The wallet has no refund under this number (WeChat `REFUNDNOTEXIST`, an empty Alipay
    /// refund query, UnionPay `34`): it never arrived, and may be sent again under the same
    /// number. Only a refund query says this.
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRefund {
    pub out_refund_no: String,
    pub status: RefundStatus,
    pub channel_ref: Option<String>,
    pub amount: Option<Money>,
    /// What the customer gets back in CNY, as the wallet states it for this refund (WeChat
    /// `cash_refund_fee`, Alipay `send_back_fee`, UnionPay `settleAmt` in CNY; for a refund
    /// priced in CNY, its amount). Always in CNY; `None` when the wallet does not say, and
    /// never computed from a rate. The ledger's CNY for the refund should come from here, so
    /// that it matches the wallet's bill.
    pub cny_amount: Option<Money>,
    pub wallet_code: Option<String>,
    pub wallet_message: Option<String>,
}

/// A wallet's callback (payment notification) after its signature was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEvent {
    pub order: ChannelOrder,
    /// The exact body the wallet expects back to stop retrying.
    pub ack_body: String,
    pub ack_content_type: &'static str,
}

/// A wallet's own exchange rate for one currency, as it quotes it for a given day.
///
/// This is what the wallet converts prices at (WeChat refreshes it daily at 10:00 Beijing
/// time, `wallets.md` §1.9), not the provider's table; the engine decides which one a POS is
/// told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRate {
    /// The currency the rate prices; the one asked for.
    pub currency: Currency,
    /// Units of CNY per one unit of `currency`, ×10^8: 5.2 CNY per CAD is `520_000_000`.
    /// Always positive.
    pub rate_e8: i64,
    /// When the rate took effect, verbatim as the wallet states it (its format varies by
    /// wallet and is not parsed); `None` when the wallet does not say.
    pub rate_time: Option<String>,
}

/// What went wrong, classed by what the engine may do next (HOUSE-STYLE §4).
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A business outcome: the wallet said no. The code is the wallet's, verbatim.
    #[error("declined by the wallet: {code} {message}")]
    Declined { code: String, message: String },
    /// The request may have landed (timeout, reset, 5xx, wallet "system error"): never retry
    /// blindly; query, then close or reverse.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The wallet refused the request itself (signature, parameters): our bug or our config.
    #[error("rejected by the wallet: {code} {message}")]
    Rejected { code: String, message: String },
    /// We know nothing was sent (connection refused, DNS): safe to retry.
    #[error("wallet unavailable, nothing sent: {0}")]
    Unavailable(String),
    /// The answer could not be parsed or its signature did not verify.
    #[error("bad response from the wallet: {0}")]
    BadResponse(String),
    #[error("not supported by this wallet: {0}")]
    NotSupported(&'static str),
    /// Credentials are missing or unusable (bad key, bad certificate).
    #[error("wallet credentials: {0}")]
    Credentials(String),
}

/// Why a callback was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("callback signature does not verify")]
    BadSignature,
    #[error("malformed callback: {0}")]
    Malformed(String),
}

/// One wallet, as the engine sees it. Object safe; held as `Arc<dyn Connector>`.
#[async_trait]
pub trait Connector: Send + Sync {
    fn wallet(&self) -> Wallet;
    fn capabilities(&self) -> &Capabilities;

    /// Charges a payment code. `Ok` carries the order's state: `Paid`, `PendingUser` (the
    /// customer must confirm) or `Unknown`; a final refusal is `Err(Declined)`.
    async fn pay_with_code(&self, req: &CodePaymentRequest)
        -> Result<ChannelOrder, ConnectorError>;
    async fn create_qr_order(&self, req: &QrOrderRequest) -> Result<QrOrder, ConnectorError>;
    /// The order's current state; an order the wallet does not know is `PendingUser` for a QR
    /// order not scanned yet, and `Failed` with the wallet's code otherwise — the engine
    /// decides what "not found" means for its order.
    async fn query_order(&self, order: &OrderRef) -> Result<ChannelOrder, ConnectorError>;
    async fn close_order(&self, order: &OrderRef) -> Result<(), ConnectorError>;
    async fn reverse_order(&self, order: &OrderRef) -> Result<ReverseOutcome, ConnectorError>;
    async fn refund(&self, req: &RefundRequest) -> Result<ChannelRefund, ConnectorError>;
    async fn query_refund(
        &self,
        order: &OrderRef,
        refund: &RefundRef,
    ) -> Result<ChannelRefund, ConnectorError>;
    /// Verifies and parses a callback body (pure: no IO).
    fn verify_callback(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<ChannelEvent, CallbackError>;
    /// The wallet's rate for `currency` on `date` (the wallet's calendar day). Read-only: a
    /// failed call changed nothing and may simply be repeated. A currency the wallet does not
    /// quote is an error (`Rejected` or `Declined` with the wallet's code), never a made-up
    /// rate.
    ///
    /// The default answers [`ConnectorError::NotSupported`], for connectors without a rate
    /// query (Alipay and UnionPay here: `wallets.md` documents their rates only on each
    /// payment); the caller then falls back to another source, such as the provider's table.
    async fn exchange_rate(
        &self,
        currency: Currency,
        date: NaiveDate,
    ) -> Result<WalletRate, ConnectorError> {
        let _ = (currency, date);
        Err(ConnectorError::NotSupported("exchange rate query"))
    }
    /// Downloads and parses the wallet's bill of `day`: WeChat Pay's and Alipay's Beijing
    /// calendar day, UnionPay's settle date. Read-only: a failed call may be repeated.
    ///
    /// The file's own summary is checked against its lines; a disagreement is
    /// [`BillError::TotalsMismatch`] with the parsed bill inside. "No bill because nothing
    /// was traded" ([`BillError::NoBill`]) and "not generated yet" ([`BillError::NotReady`])
    /// are told apart; [`BillError`] says what the caller should do on each.
    async fn download_bill(&self, day: NaiveDate) -> Result<WalletBill, BillError>;
}
