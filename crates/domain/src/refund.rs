//! Refunds of paid orders (`ottpay.md` §5.4, §5.5).

use std::fmt;

use chrono::{DateTime, Utc};

use crate::{MerchantId, MerchantOrderId, Money, Wallet};

/// Where a refund stands. A refund is `processing` from the moment it is stored until the
/// wallet says it succeeded or failed; only `succeeded` moved money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    Processing,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 3] = [
        RefundStatus::Processing,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "processing",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RefundStatus> {
        RefundStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        self != RefundStatus::Processing
    }
}

impl fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refund as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// Our number for it at the wallet (`out_refund_no` / `out_request_no`): 25 letters and
    /// digits, reused on every retry of this refund.
    pub key: String,
    pub merchant_id: MerchantId,
    /// The merchant's id for the refund order (given or generated).
    pub refund_order_id: MerchantOrderId,
    /// The order refunded.
    pub order_key: String,
    pub wallet: Wallet,
    /// In the order's currency.
    pub amount: Money,
    /// What goes back to the customer in CNY, once the refund is posted.
    pub cny_amount: Option<Money>,
    pub status: RefundStatus,
    /// The wallet's code and message when it refused or has not finished, verbatim.
    pub wallet_code: Option<String>,
    pub wallet_message: Option<String>,
    /// The wallet's id of the refund.
    pub channel_ref: Option<String>,
    /// How many times the refund was sent to the wallet (bounded).
    pub sends: i64,
    pub operator_id: Option<String>,
    /// The supervisor who approved the refund on the till, when it needed approval.
    pub approved_by: Option<String>,
    pub request_digest: String,
    /// The time sent with the refund (UnionPay finds it by it).
    pub wallet_created_at: DateTime<Utc>,
    /// When the refund loop should look at it next; `None` once final.
    pub next_check_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
