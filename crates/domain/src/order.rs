use std::fmt;

use chrono::{DateTime, Utc};

use crate::{FxRate, MerchantId, Money, Wallet};

/// How the customer pays: by showing a code the cashier scans (passive, PASSIVEPAY) or by
/// scanning the merchant's QR (active, ACTIVEPAY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentMode {
    Passive,
    Active,
}

impl PaymentMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMode::Passive => "passive",
            PaymentMode::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passive" => Some(PaymentMode::Passive),
            "active" => Some(PaymentMode::Active),
            _ => None,
        }
    }
}

/// Where an order stands. Every order ends paid, failed, reversed or closed; the states in
/// between are honest about what the gateway knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Stored; the wallet call is in flight (or the process died during it).
    Paying,
    /// The customer must still confirm (password, or a QR not paid yet).
    Pending,
    /// The wallet's answer is unknown (timeout, system error): query before anything else.
    Unknown,
    /// Being reversed because the confirmation window ended.
    Reversing,
    Paid,
    /// Declined; no money moved.
    Failed,
    /// Reversed at the wallet: the customer was not charged (or was refunded in full by it).
    Reversed,
    /// Closed unpaid (a QR order that expired or was abandoned).
    Closed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Paying,
        OrderStatus::Pending,
        OrderStatus::Unknown,
        OrderStatus::Reversing,
        OrderStatus::Paid,
        OrderStatus::Failed,
        OrderStatus::Reversed,
        OrderStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Paying => "paying",
            OrderStatus::Pending => "pending",
            OrderStatus::Unknown => "unknown",
            OrderStatus::Reversing => "reversing",
            OrderStatus::Paid => "paid",
            OrderStatus::Failed => "failed",
            OrderStatus::Reversed => "reversed",
            OrderStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        OrderStatus::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether the state can no longer change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::Failed | OrderStatus::Reversed | OrderStatus::Closed
        )
    }

    /// The one place state changes are checked: a final state never changes (moving to the
    /// same state is allowed, so repeating an update is harmless), with one exception: a
    /// closed QR order the wallet reports paid after all becomes paid, because the record
    /// must follow the money; nothing goes back to `Paying`; a reversal in progress only ends
    /// reversed, paid (the wallet refused to reverse a paid order) or failed.
    pub fn transition(self, to: OrderStatus) -> Result<OrderStatus, InvalidTransition> {
        let allowed = self == to
            || (self == OrderStatus::Closed && to == OrderStatus::Paid)
            || (!self.is_final()
                && to != OrderStatus::Paying
                && !(self == OrderStatus::Reversing
                    && matches!(
                        to,
                        OrderStatus::Pending | OrderStatus::Unknown | OrderStatus::Closed
                    )));
        if allowed {
            Ok(to)
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// The merchant's order number: 1–32 letters, digits, `_` or `-` (`ottpay.md` §11.19).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MerchantOrderId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid order_id: expected 1 to 32 letters, digits, '_' or '-'")]
pub struct OrderIdError;

impl MerchantOrderId {
    pub fn parse(s: &str) -> Result<Self, OrderIdError> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(MerchantOrderId(s.to_owned()))
        } else {
            Err(OrderIdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MerchantOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An order as stored: what was asked, what the wallet said, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Our number for it at the wallet (`out_trade_no`): 25 letters and digits, unique.
    pub key: String,
    pub merchant_id: MerchantId,
    pub order_id: MerchantOrderId,
    pub mode: PaymentMode,
    pub wallet: Wallet,
    /// The price before tip, and the tip, in the merchant's currency.
    pub amount: Money,
    pub tip: Money,
    /// What the customer paid in CNY, and the rate, as the wallet reported them.
    pub cny_amount: Option<Money>,
    pub rate: Option<FxRate>,
    pub operator_id: Option<String>,
    pub terminal_no: Option<String>,
    pub sale_num: Option<String>,
    pub status: OrderStatus,
    /// The wallet's code and message when declined or not settled, verbatim.
    pub wallet_code: Option<String>,
    pub wallet_message: Option<String>,
    /// The wallet's id of the payment.
    pub channel_ref: Option<String>,
    pub buyer: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    /// The time sent to the wallet with the order (UnionPay finds orders by it).
    pub wallet_created_at: DateTime<Utc>,
    /// When the closing loop should look at it next; `None` once final.
    pub next_check_at: Option<DateTime<Utc>>,
    /// A digest of the request, to tell a resent request from a different one.
    pub request_digest: String,
    /// Active mode: the QR content the POS shows, when it stops being payable, and the
    /// merchant's notification URL.
    pub code_url: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub call_back_url: Option<String>,
    /// Refunds in progress or done, and refunds done, in the order's currency: a refund is
    /// accepted only while `refund_reserved` stays within [`Order::total`].
    pub refund_reserved: Money,
    pub refunded: Money,
    /// When someone asked to cancel the order while it was open (the till's *Cancel*, leaving
    /// a QR): the closing loop then closes or reverses it as soon as its wallet allows.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// Amount plus tip: what the wallet charges.
    pub fn total(&self) -> Money {
        Money::new(
            self.amount.minor().saturating_add(self.tip.minor()),
            self.amount.currency(),
        )
    }

    /// What can still be refunded: the total less refunds in progress or done.
    pub fn refundable(&self) -> Money {
        Money::new(
            self.total().minor() - self.refund_reserved.minor(),
            self.amount.currency(),
        )
    }

    /// Why the wallet declined this order (meaningful when it is `Failed`).
    pub fn decline_reason(&self) -> DeclineReason {
        DeclineReason::of_wallet_code(self.wallet_code.as_deref().unwrap_or(""))
    }

    /// How a paid order stands with refunds, as `STATUS_QUERY` reports it.
    pub fn refund_state(&self) -> RefundState {
        let refunded = self.refunded.minor();
        if self.status != OrderStatus::Paid || refunded <= 0 {
            RefundState::None
        } else if refunded >= self.total().minor() {
            RefundState::Full
        } else {
            RefundState::Partial
        }
    }
}

/// Why a wallet declined a payment, in the terms a cashier acts on. Read from the wallet's
/// code (WeChat Pay, Alipay and UnionPay codes, and the gateway's own `UNAVAILABLE` and
/// `CREDENTIALS`), so that every screen and every protocol answer words it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineReason {
    /// The customer's payment code expired: they refresh it.
    CodeExpired,
    /// The code is invalid or was already used: they refresh it and it is scanned again.
    CodeInvalid,
    /// Not enough money: another card or another way to pay.
    InsufficientBalance,
    /// The wallet could not be reached; nothing was charged.
    WalletUnavailable,
    /// The gateway's wallet credentials were refused; nothing was charged.
    Credentials,
    /// Any other refusal.
    Other,
}

impl DeclineReason {
    pub fn of_wallet_code(code: &str) -> DeclineReason {
        match code {
            "AUTHCODEEXPIRE" | "64" => DeclineReason::CodeExpired,
            "AUTH_CODE_ERROR" | "AUTH_CODE_INVALID" | "ACQ.PAYMENT_AUTH_CODE_INVALID" | "61" => {
                DeclineReason::CodeInvalid
            }
            "NOTENOUGH"
            | "ACQ.BUYER_BALANCE_NOT_ENOUGH"
            | "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH"
            | "65" => DeclineReason::InsufficientBalance,
            "UNAVAILABLE" => DeclineReason::WalletUnavailable,
            "CREDENTIALS" => DeclineReason::Credentials,
            _ => DeclineReason::Other,
        }
    }
}

/// How much of a paid order was refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    None,
    Partial,
    Full,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A paid order of `total` (no tip), for other modules' tests.
    pub(crate) fn sample_order(total: Money, cny: Option<Money>) -> Order {
        let at = DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        Order {
            key: "Q261126090000ABCDEFGHJKLM".into(),
            merchant_id: MerchantId::parse("ON00000001").unwrap(),
            order_id: MerchantOrderId::parse("A1").unwrap(),
            mode: PaymentMode::Passive,
            wallet: Wallet::WechatPay,
            amount: total,
            tip: Money::new(0, total.currency()),
            cny_amount: cny,
            rate: None,
            operator_id: None,
            terminal_no: None,
            sale_num: None,
            status: OrderStatus::Paid,
            wallet_code: None,
            wallet_message: None,
            channel_ref: None,
            buyer: None,
            paid_at: Some(at),
            wallet_created_at: at,
            next_check_at: None,
            request_digest: String::new(),
            code_url: None,
            expires_at: None,
            call_back_url: None,
            refund_reserved: Money::new(0, total.currency()),
            refunded: Money::new(0, total.currency()),
            cancel_requested_at: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn final_states_never_change_but_a_late_payment_is_recorded() {
        for from in OrderStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for to in OrderStatus::ALL {
                let late_payment = from == OrderStatus::Closed && to == OrderStatus::Paid;
                assert_eq!(
                    from.transition(to).is_ok(),
                    from == to || late_payment,
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn nothing_returns_to_paying_and_reversals_only_end() {
        for from in OrderStatus::ALL
            .into_iter()
            .filter(|s| *s != OrderStatus::Paying)
        {
            assert!(from.transition(OrderStatus::Paying).is_err());
        }
        assert!(OrderStatus::Reversing
            .transition(OrderStatus::Pending)
            .is_err());
        assert!(OrderStatus::Reversing
            .transition(OrderStatus::Reversed)
            .is_ok());
        assert!(OrderStatus::Reversing.transition(OrderStatus::Paid).is_ok());
        assert!(OrderStatus::Pending
            .transition(OrderStatus::Reversing)
            .is_ok());
        assert!(OrderStatus::Paying.transition(OrderStatus::Unknown).is_ok());
    }

    #[test]
    fn wallet_codes_are_read_as_reasons_a_cashier_acts_on() {
        assert_eq!(
            DeclineReason::of_wallet_code("AUTHCODEEXPIRE"),
            DeclineReason::CodeExpired
        );
        assert_eq!(
            DeclineReason::of_wallet_code("ACQ.BUYER_BALANCE_NOT_ENOUGH"),
            DeclineReason::InsufficientBalance
        );
        assert_eq!(
            DeclineReason::of_wallet_code("61"),
            DeclineReason::CodeInvalid
        );
        assert_eq!(
            DeclineReason::of_wallet_code("WHATEVER"),
            DeclineReason::Other
        );
    }

    #[test]
    fn merchant_order_ids_are_short_and_plain() {
        assert!(MerchantOrderId::parse("POS-2024_01").is_ok());
        assert!(MerchantOrderId::parse("").is_err());
        assert!(MerchantOrderId::parse(&"a".repeat(33)).is_err());
        assert!(MerchantOrderId::parse("a b").is_err());
        assert!(MerchantOrderId::parse("订单").is_err());
    }
}
