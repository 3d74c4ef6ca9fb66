//! Cancelling an open order, for the till's *Cancel* and for any POS or API that gives up on
//! a sale (docs/TILL.md, "Cancel"): a QR order is closed at its wallet, a code payment waiting
//! for the customer is reversed, each by its wallet's rules, and the answer says what the
//! wallet said: cancelled, paid after all, or cancelling (the wallet takes the close later).
//!
//! The cancel is written on the order first (`cancel_requested_at`, in one statement that
//! also makes the order due), then carried out as one step of the closing loop under a claim
//! of the order. So a crash anywhere, or a wallet that does not answer, leaves a cancelled
//! order that the closing loop closes or reverses as soon as its wallet allows; and the
//! cancel and the loop never call the wallet for one order at once.

use chrono::{DateTime, Utc};
use qrgate_domain::{Merchant, MerchantOrderId, Order, OrderStatus, PaymentMode, RefundStatus};
use qrgate_store::LatePayment;

use crate::loops::{Lease, CLAIM_LEASE};
use crate::qr_orders::payable_until;
use crate::{Engine, EngineError, RefundError, RefundOrder, RefundView};

/// How many times a cancel tries to claim an order that the closing loop holds, and how
/// long it waits between tries: the loop's step is one or two wallet calls.
const CLAIM_TRIES: u32 = 6;
const CLAIM_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);
/// The most late payments one list shows.
pub const MAX_LATE_PAYMENTS: i64 = 50;

/// What a cancel came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The wallet says the order is paid (before or during the cancel): the sale stands, and
    /// it is a late payment to refund or keep ([`Engine::late_payments`]).
    Paid,
    /// Closed or reversed at the wallet: nothing was charged.
    Cancelled,
    /// Asked, and not finished yet: the wallet takes the close later (WeChat Pay's first 5
    /// minutes, UnionPay's expiry), asked to be called again, or did not answer. The closing
    /// loop finishes it; `closes_at` is until when a QR may still be paid at the latest
    /// ([`crate::payable_until`]): a payment before then shows as a late payment.
    Cancelling { closes_at: Option<DateTime<Utc>> },
    /// The order had ended before (failed, closed or reversed): nothing to cancel.
    AlreadyEnded,
}

/// The order after a cancel, and what the cancel came to.
#[derive(Debug, Clone)]
pub struct Cancelled {
    pub order: Order,
    pub outcome: CancelOutcome,
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such order")]
    NotFound,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<qrgate_store::StoreError> for CancelError {
    fn from(e: qrgate_store::StoreError) -> Self {
        CancelError::Engine(EngineError::from(e))
    }
}

/// What to do with a late payment.
#[derive(Debug, Clone)]
pub enum LatePaymentAction {
    /// Refund what is left of it, under this refund's order id (drawn with the page, so that
    /// pressing twice refunds once).
    Refund {
        refund_order_id: MerchantOrderId,
    },
    Keep,
}

#[derive(Debug, thiserror::Error)]
pub enum LatePaymentError {
    #[error("no such late payment")]
    NotFound,
    #[error(transparent)]
    Refund(#[from] RefundError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<qrgate_store::StoreError> for LatePaymentError {
    fn from(e: qrgate_store::StoreError) -> Self {
        LatePaymentError::Engine(EngineError::from(e))
    }
}

fn outcome_of(order: &Order, asked: bool) -> CancelOutcome {
    match order.status {
        OrderStatus::Paid => CancelOutcome::Paid,
        OrderStatus::Closed | OrderStatus::Reversed | OrderStatus::Failed if asked => {
            CancelOutcome::Cancelled
        }
        OrderStatus::Closed | OrderStatus::Reversed | OrderStatus::Failed => {
            CancelOutcome::AlreadyEnded
        }
        OrderStatus::Paying
        | OrderStatus::Pending
        | OrderStatus::Unknown
        | OrderStatus::Reversing => CancelOutcome::Cancelling {
            closes_at: (order.mode == PaymentMode::Active).then(|| payable_until(order)),
        },
    }
}

impl Engine {
    /// Cancels the merchant's open order `order_id` for `by` (an operator's id, or who else
    /// asked): written on the order first, then one closing step (query; then close or
    /// reverse when the wallet allows). Idempotent: cancelling again, or cancelling an order
    /// that ended, changes nothing and says how it stands. A code payment whose wallet call is
    /// still in flight is reversed once the call has answered or its budget has passed.
    pub async fn cancel_order(
        &self,
        merchant: &Merchant,
        order_id: &MerchantOrderId,
        by: &str,
    ) -> Result<Cancelled, CancelError> {
        let order = self
            .find_order(merchant, order_id)
            .await?
            .ok_or(CancelError::NotFound)?;
        if order.status.is_final() {
            let outcome = outcome_of(&order, false);
            return Ok(Cancelled { order, outcome });
        }
        let asked = self
            .store
            .request_order_cancel(&order.key, by, self.now())
            .await?;
        tracing::info!(order.key = %order.key, merchant.id = %merchant.id, by, asked, "order cancel asked");
        if order.status != OrderStatus::Paying {
            for attempt in 0..CLAIM_TRIES {
                let now = self.now();
                let mut lease = Lease::new(&self.worker, now + CLAIM_LEASE);
                match self
                    .store
                    .claim_order(&order.key, &lease.holder, now, lease.until)
                    .await?
                {
                    Some(claimed) => {
                        let key = claimed.key.clone();
                        if let Err(e) = self.settle_step(claimed, &mut lease).await {
                            tracing::warn!(order.key = %key, error = %e, "cancel step failed; the closing loop finishes it");
                        }
                        break;
                    }
                    None => {
                        // Final, or the closing loop holds it: wait for its step.
                        let now_order = self.store.order(&order.key).await?;
                        if now_order.as_ref().is_none_or(|o| o.status.is_final()) {
                            break;
                        }
                        if attempt + 1 < CLAIM_TRIES {
                            tokio::time::sleep(CLAIM_PAUSE).await;
                        }
                    }
                }
            }
        }
        let order = self
            .store
            .order(&order.key)
            .await?
            .ok_or(CancelError::NotFound)?;
        let outcome = outcome_of(&order, asked);
        Ok(Cancelled { order, outcome })
    }

    /// The merchant's late payments: orders someone asked to cancel that the customer paid
    /// all the same (a QR paid before its wallet closed it), not yet refunded or kept; oldest
    /// first, at most [`MAX_LATE_PAYMENTS`]. The till shows them until someone decides.
    pub async fn late_payments(&self, merchant: &Merchant) -> Result<Vec<Order>, EngineError> {
        Ok(self
            .store
            .late_payments(&merchant.id, MAX_LATE_PAYMENTS)
            .await?)
    }

    /// Refunds or keeps a late payment, recorded with `operator_id`. A refund refunds what is
    /// left of the sale under the given refund order id (sent twice, it refunds once); if
    /// nothing is left to refund (refunded meanwhile), the late payment is recorded refunded.
    /// Returns the refund when one was sent.
    pub async fn resolve_late_payment(
        &self,
        merchant: &Merchant,
        order_id: &MerchantOrderId,
        action: LatePaymentAction,
        operator_id: &str,
    ) -> Result<Option<RefundView>, LatePaymentError> {
        let order = self
            .find_order(merchant, order_id)
            .await?
            .filter(|o| o.status == OrderStatus::Paid && o.cancel_requested_at.is_some())
            .ok_or(LatePaymentError::NotFound)?;
        let (outcome, refund) = match action {
            LatePaymentAction::Keep => (LatePayment::Kept, None),
            LatePaymentAction::Refund { refund_order_id } => {
                let refundable = order.refundable();
                let refund = if refundable.minor() > 0 {
                    Some(
                        self.refund(RefundOrder {
                            merchant: merchant.clone(),
                            refund_order_id: Some(refund_order_id),
                            ori_order_id: order.order_id.clone(),
                            amount: refundable,
                            operator_id: Some(operator_id.to_owned()),
                            approved_by: None,
                        })
                        .await?,
                    )
                } else {
                    None
                };
                if let Some(view) = refund
                    .as_ref()
                    .filter(|v| v.refund.status == RefundStatus::Failed)
                {
                    // Refused by the wallet: nothing refunded, the late payment stays open.
                    tracing::warn!(order.key = %order.key, refund.key = %view.refund.key, "refund of a late payment failed");
                    return Ok(refund);
                }
                (LatePayment::Refunded, refund)
            }
        };
        let recorded = self
            .store
            .resolve_late_payment(&order.key, outcome, operator_id, self.now())
            .await?;
        if !recorded && refund.is_none() {
            // Decided before (by another till, or this form sent again).
            return Err(LatePaymentError::NotFound);
        }
        tracing::info!(order.key = %order.key, outcome = outcome.as_str(), operator.id = operator_id, recorded, "late payment decided");
        Ok(refund)
    }
}
