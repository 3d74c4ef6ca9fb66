//! The sandbox's wallet-agnostic model: customers and their CNY ledgers, payment codes,
//! trades and refunds. Wallet modules translate their wire protocols to and from these.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The wallets the sandbox simulates. The sandbox's own enum: it shares no type with the
/// gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Wallet {
    Wechat,
    Alipay,
    Unionpay,
}

impl Wallet {
    pub const ALL: [Wallet; 3] = [Wallet::Wechat, Wallet::Alipay, Wallet::Unionpay];

    pub fn as_str(self) -> &'static str {
        match self {
            Wallet::Wechat => "wechat",
            Wallet::Alipay => "alipay",
            Wallet::Unionpay => "unionpay",
        }
    }

    pub fn parse(s: &str) -> Option<Wallet> {
        match s {
            "wechat" | "wechatpay" => Some(Wallet::Wechat),
            "alipay" => Some(Wallet::Alipay),
            "unionpay" => Some(Wallet::Unionpay),
            _ => None,
        }
    }
}

/// What happens when a payment code is charged, chosen when it is minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Behaviour {
    /// Paid at once.
    Instant,
    /// The customer must confirm; confirmed `after_secs` seconds after the charge.
    Password { after_secs: u32 },
    /// The customer never confirms; the wallet revokes the payment after its window.
    NeverConfirm,
    /// Refused: the balance is short (whatever the real balance).
    InsufficientBalance,
    /// Refused: the code has expired.
    Expired,
    /// The wallet answers "system error", but the payment was in fact made.
    SystemError,
    /// No answer at all; the payment was made or not, as chosen.
    Timeout { paid: bool },
}

/// A movement of a customer's CNY balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    pub at: DateTime<Utc>,
    /// Fen; negative for money leaving the customer.
    pub amount_fen: i64,
    pub balance_after_fen: i64,
    pub kind: MovementKind,
    pub wallet: Option<Wallet>,
    pub merchant: Option<String>,
    pub out_trade_no: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    TopUp,
    Payment,
    Refund,
    Reversal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub balance_fen: i64,
    pub movements: Vec<Movement>,
    pub created_at: DateTime<Utc>,
    /// What the phone's password pad must be given to pay a QR. Saved states from before
    /// passwords existed load with the default.
    #[serde(default)]
    pub password: PaymentPassword,
}

/// A customer's six-digit payment password. The sandbox's customers are made up, so it is
/// kept and shown in clear by the control API; only `Debug` hides it, to keep it out of logs
/// like a real one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PaymentPassword(String);

impl PaymentPassword {
    /// What every customer's password is unless another is chosen (`docs/SANDBOX.md`).
    pub const DEFAULT: &'static str = "123456";

    /// Exactly six ASCII digits.
    pub fn parse(s: &str) -> Option<PaymentPassword> {
        (s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| PaymentPassword(s.to_owned()))
    }

    pub fn matches(&self, attempt: &str) -> bool {
        self.0 == attempt
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for PaymentPassword {
    fn default() -> Self {
        PaymentPassword(Self::DEFAULT.to_owned())
    }
}

impl std::fmt::Debug for PaymentPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaymentPassword(******)")
    }
}

impl TryFrom<String> for PaymentPassword {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        PaymentPassword::parse(&s).ok_or_else(|| "a payment password is six digits".to_owned())
    }
}

impl From<PaymentPassword> for String {
    fn from(p: PaymentPassword) -> String {
        p.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCode {
    pub code: String,
    pub wallet: Wallet,
    pub customer_id: String,
    pub behaviour: Behaviour,
    pub minted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

/// How the trade was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeKind {
    /// The merchant scanned the customer's payment code.
    Code,
    /// The customer scans the merchant's QR.
    Qr,
}

/// The state of a trade, wallet-agnostic; each wallet module maps it to its own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeStatus {
    /// A QR order not paid yet (for Alipay, not even visible until scanned).
    NotPay,
    /// A code payment waiting for the customer's password.
    UserPaying,
    /// Paid; refunds may exist.
    Success,
    /// Closed unpaid.
    Closed,
    /// A code payment reversed (closed if unpaid, refunded if paid).
    Revoked,
    /// Failed (e.g. balance short at confirmation).
    PayError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Processing,
    Success,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub out_refund_no: String,
    pub refund_id: String,
    /// In the trade's pricing currency's minor units.
    pub amount: i64,
    /// What goes back to the customer: proportional to what they paid.
    pub cny_fen: i64,
    pub status: RefundStatus,
    pub created_at: DateTime<Utc>,
    pub succeeds_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub wallet: Wallet,
    /// The merchant account at the wallet (WeChat mch_id, Alipay app_id, UnionPay merId).
    pub merchant: String,
    pub out_trade_no: String,
    /// The wallet's id for the trade (`transaction_id`, `trade_no`, `queryId`).
    pub transaction_id: String,
    pub kind: TradeKind,
    /// Pricing currency (ISO code) and amount in its minor units.
    pub currency: String,
    pub total: i64,
    /// What the customer pays in CNY fen, and the rate used (×10^8).
    pub cny_fen: i64,
    pub rate_e8: i64,
    pub subject: String,
    pub status: TradeStatus,
    pub customer_id: Option<String>,
    /// For a QR order: has a customer scanned it (Alipay trades exist only from then on)?
    pub scanned: bool,
    /// The token of the sandbox pay page for a QR order.
    pub qr_token: Option<String>,
    pub behaviour: Option<Behaviour>,
    /// When a pending code payment confirms, or is revoked by the wallet.
    pub confirm_at: Option<DateTime<Utc>>,
    pub revoke_at: Option<DateTime<Utc>>,
    pub notify_url: Option<String>,
    /// A digest of the creating request, for idempotency on `out_trade_no`.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub refunds: Vec<Refund>,
    /// The wallet's fee rate in millionths of the amount (6000 = 0.60%), recorded when the
    /// trade was paid so that a later change of the rate does not rewrite earlier bills.
    /// Trades saved before fees existed have none and are billed at the current rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_rate_ppm: Option<u32>,
}

impl Trade {
    /// Whether [`crate::state::State`]'s settling could change this trade at `now`: a
    /// confirmation or revocation due while the customer is paying, an expiry due while
    /// unpaid, or a refund due to succeed.
    pub fn has_transition_due(&self, now: DateTime<Utc>) -> bool {
        let due = |at: Option<DateTime<Utc>>| at.is_some_and(|at| at <= now);
        match self.status {
            TradeStatus::UserPaying if due(self.confirm_at) || due(self.revoke_at) => return true,
            TradeStatus::NotPay if due(self.expires_at) => return true,
            _ => {}
        }
        self.refunds
            .iter()
            .any(|r| r.status == RefundStatus::Processing && r.succeeds_at <= now)
    }

    /// Refunded so far, counting refunds still processing (pricing currency minor units).
    pub fn refunded(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount).sum()
    }

    pub fn refunded_fen(&self) -> i64 {
        self.refunds.iter().map(|r| r.cny_fen).sum()
    }
}

/// A notification the sandbox owes a merchant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: u64,
    pub wallet: Wallet,
    pub merchant: String,
    pub out_trade_no: String,
    pub url: String,
    /// Deliveries made so far.
    pub attempts: u32,
    pub next_at: DateTime<Utc>,
    pub delivered: bool,
    /// The answers received, newest last (status and a short excerpt).
    pub log: Vec<String>,
    /// Sent with a corrupted signature (fault).
    pub forged: bool,
}
