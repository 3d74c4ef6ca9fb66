//! Refunds (`ottpay.md` §5.4, §5.5, §11.15): stored and reserved against the order before the
//! wallet is called, sent with the same refund number on every retry, finished by the wallet's
//! word alone, and posted to the ledger in the same transaction as their success.
//!
//! The rules: a refund never exceeds what is left of the payment, counting refunds still in
//! progress (one conditional update in the store); the same request (a resend, or a replayed
//! envelope with the same bytes) finds its refund and never refunds again; a refund the wallet
//! has not finished is settled in the background by the refund loop (query, and resend under
//! the same number while the wallet says it never got it), within bounds, on the order's
//! timeline.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use qrgate_connector_api::{
    ChannelRefund, Connector, ConnectorError, OrderRef, RefundRef, RefundRequest,
    RefundStatus as WalletRefundStatus,
};
use qrgate_domain::{Merchant, MerchantOrderId, Money, Order, OrderStatus, Refund, RefundStatus};
use qrgate_store::{RefundReservation, StoreError};

use crate::loops::{InFlight, Lease, Leased, CLAIM_LEASE};
use crate::payments::{describe, keyed_digest, new_key, CALL_TIMEOUT, MAX_AMOUNT_MINOR};
use crate::{Engine, EngineError};

/// How long a POS waits for the wallet's answer to a refund before it gets "processing".
const REFUND_BUDGET: StdDuration = StdDuration::from_secs(10);
/// How many times one refund is sent (the first send and resends after the wallet said it
/// never got it). Every send carries the same refund number, so the wallet refunds once.
pub const MAX_REFUND_SENDS: i64 = 5;
/// How long the refund loop keeps asking about a refund the wallet has not finished. After
/// that it stays `processing`, out of the loop, and is reported for a person to look at.
pub const REFUND_FOLLOW_UP: Duration = Duration::hours(72);

/// A refund as the POS asks for it.
#[derive(Debug, Clone)]
pub struct RefundOrder {
    pub merchant: Merchant,
    /// The merchant's id for the refund; generated when absent.
    pub refund_order_id: Option<MerchantOrderId>,
    /// The payment to refund.
    pub ori_order_id: MerchantOrderId,
    /// In the merchant's currency.
    pub amount: Money,
    /// Who asked for it.
    pub operator_id: Option<String>,
    /// The supervisor who approved it, when it needed approval ([`Engine::approve_refund`]).
    pub approved_by: Option<String>,
}

/// Why a refund was refused before any wallet call. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no order {0} to refund")]
    OrderNotFound(MerchantOrderId),
    #[error("order {order_id} is {status}, not paid: there is nothing to refund")]
    NotPaid {
        order_id: MerchantOrderId,
        status: OrderStatus,
    },
    #[error("refund_amt {asked} exceeds what is left to refund on the order: {refundable}")]
    Exceeds { asked: Money, refundable: Money },
    #[error("order_id {0} is already used by another refund or payment")]
    OrderUsed(MerchantOrderId),
    #[error("{0} refunds are not enabled on this gateway")]
    NotEnabled(qrgate_domain::Wallet),
    #[error("refund_amt must be in the merchant's currency, {0}")]
    WrongCurrency(qrgate_domain::Currency),
    #[error("refund_amt must be 1 to {} cents", max.minor())]
    AmountOutOfRange { max: Money },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for RefundError {
    fn from(e: StoreError) -> Self {
        RefundError::Engine(EngineError::from(e))
    }
}

/// A refund and the order it refunds, as they stand.
#[derive(Debug, Clone)]
pub struct RefundView {
    pub refund: Refund,
    pub order: Order,
}

/// When to look at an unfinished refund again, by its age: often at first (most wallets
/// finish within seconds), then less often, up to hourly.
fn next_check(created_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let age = now - created_at;
    if age > REFUND_FOLLOW_UP {
        return None;
    }
    let wait = if age < Duration::minutes(1) {
        Duration::seconds(10)
    } else if age < Duration::minutes(10) {
        Duration::minutes(1)
    } else if age < Duration::hours(1) {
        Duration::minutes(5)
    } else {
        Duration::hours(1)
    };
    Some(now + wait)
}

fn refund_status_name(r: &ChannelRefund) -> (&'static str, Option<String>) {
    let s = match r.status {
        WalletRefundStatus::Processing => "refund_processing",
        WalletRefundStatus::Succeeded => "refunded",
        WalletRefundStatus::Failed => "refund_failed",
        WalletRefundStatus::Unknown => "unknown",
        WalletRefundStatus::NotFound => "refund_not_found",
    };
    (s, r.wallet_code.clone())
}

fn order_ref(order: &Order) -> OrderRef {
    OrderRef {
        out_trade_no: order.key.clone(),
        created_at: order.wallet_created_at,
        channel_ref: order.channel_ref.clone(),
    }
}

/// Copies what the wallet said onto the refund (its id for it, its code and message).
fn noted(refund: &Refund, r: &ChannelRefund, now: DateTime<Utc>) -> Refund {
    let mut next = refund.clone();
    next.updated_at = now;
    next.channel_ref = r.channel_ref.clone().or(next.channel_ref.take());
    next.wallet_code = r.wallet_code.clone();
    next.wallet_message = r.wallet_message.clone();
    next
}

/// Keeps the refund in progress, with the wallet's last word, for the next check.
fn waiting(mut next: Refund, note: Option<String>, now: DateTime<Utc>) -> Refund {
    if let Some(note) = note {
        next.wallet_message = Some(note);
    }
    next.status = RefundStatus::Processing;
    next.next_check_at = next_check(next.created_at, now);
    next
}

/// A success is taken only for the amount we asked: a wallet reporting another amount for
/// our refund number is a bug somewhere, for a person to look at, not money to post.
fn succeeded(refund: &Refund, r: &ChannelRefund, now: DateTime<Utc>) -> Refund {
    let next = noted(refund, r, now);
    match r.amount {
        Some(a) if a.currency() == refund.amount.currency() && a != refund.amount => {
            tracing::error!(refund.key = %refund.key, asked = %refund.amount, reported = %a, "the wallet reports another amount for this refund; it stays processing for a person to check");
            waiting(
                next,
                Some(format!(
                    "the wallet reported {a} for a refund of {}",
                    refund.amount
                )),
                now,
            )
        }
        _ => {
            let mut next = next;
            next.status = RefundStatus::Succeeded;
            // The CNY the wallet says it gave back, for the ledger (matches its bill); the
            // store caps it at what is left of what was paid.
            next.cny_amount = r
                .cny_amount
                .filter(|c| c.currency() == qrgate_domain::Currency::Cny && c.minor() >= 0);
            next
        }
    }
}

/// What the answer to a refund *send* means. Only the first send of a refund can fail it for
/// good: a later send may follow one that landed, and wallets refuse a repeated number in
/// ways that look like declines (UnionPay `12`, Alipay `ACQ.TRADE_HAS_CLOSE` once fully
/// refunded), so a refusal then only means "ask the wallet".
fn after_send(
    refund: &Refund,
    result: Result<ChannelRefund, ConnectorError>,
    first: bool,
    now: DateTime<Utc>,
) -> Refund {
    let failed = |code: Option<String>, message: String| {
        let mut next = refund.clone();
        next.updated_at = now;
        next.status = RefundStatus::Failed;
        next.wallet_code = code;
        next.wallet_message = Some(message);
        next
    };
    match result {
        Ok(r) => match r.status {
            WalletRefundStatus::Succeeded => succeeded(refund, &r, now),
            WalletRefundStatus::Failed if first => {
                let mut next = noted(refund, &r, now);
                next.status = RefundStatus::Failed;
                next
            }
            _ => waiting(noted(refund, &r, now), None, now),
        },
        // The wallet said no, or refused the request, to the first send: no refund exists.
        Err(ConnectorError::Declined { code, message })
        | Err(ConnectorError::Rejected { code, message })
            if first =>
        {
            failed(Some(code), message)
        }
        Err(e @ (ConnectorError::NotSupported(_) | ConnectorError::Credentials(_))) if first => {
            failed(None, e.to_string())
        }
        // It may or may not have landed, or this was a repeat: the next query finds out.
        Err(e) => {
            let mut next = refund.clone();
            next.updated_at = now;
            next.wallet_code = None;
            waiting(next, Some(e.to_string()), now)
        }
    }
}

/// What to do after a refund query.
enum AfterQuery {
    Write(Box<Refund>),
    /// The wallet has no refund under our number: send it (again) under the same number.
    Resend,
}

/// How long after a refund's creation the wallet's "no such refund" may end it, once it has
/// been sent [`MAX_REFUND_SENDS`] times: a wallet may take a moment to show a refund.
const NOT_FOUND_GRACE: Duration = Duration::minutes(10);

fn after_query(
    refund: &Refund,
    result: Result<ChannelRefund, ConnectorError>,
    now: DateTime<Utc>,
) -> AfterQuery {
    match result {
        Ok(r) => match r.status {
            WalletRefundStatus::Succeeded => {
                AfterQuery::Write(Box::new(succeeded(refund, &r, now)))
            }
            // The wallet says the refund it took failed (WeChat REFUNDCLOSE, a UnionPay
            // failure code): no money moved.
            WalletRefundStatus::Failed => {
                let mut next = noted(refund, &r, now);
                next.status = RefundStatus::Failed;
                AfterQuery::Write(Box::new(next))
            }
            WalletRefundStatus::NotFound if refund.sends < MAX_REFUND_SENDS => AfterQuery::Resend,
            WalletRefundStatus::NotFound if now - refund.created_at >= NOT_FOUND_GRACE => {
                let mut next = noted(refund, &r, now);
                next.status = RefundStatus::Failed;
                next.wallet_message = Some(format!(
                    "the wallet never received the refund after {} sends; nothing was refunded",
                    refund.sends
                ));
                AfterQuery::Write(Box::new(next))
            }
            _ => AfterQuery::Write(Box::new(waiting(noted(refund, &r, now), None, now))),
        },
        // A query that fails is not a refund that failed, whatever the reason.
        Err(e) => {
            let mut next = refund.clone();
            next.updated_at = now;
            AfterQuery::Write(Box::new(waiting(
                next,
                Some(format!("refund query: {e}")),
                now,
            )))
        }
    }
}

impl Engine {
    /// Refunds some or all of a paid order. Returns the refund as it stands when the wallet
    /// answered or the budget ran out: `succeeded`, `failed` (nothing moved), or `processing`
    /// (the refund loop finishes it; REFUND_QUERY tells).
    pub async fn refund(&self, req: RefundOrder) -> Result<RefundView, RefundError> {
        let merchant = &req.merchant;
        if req.amount.currency() != merchant.currency {
            return Err(RefundError::WrongCurrency(merchant.currency));
        }
        if req.amount.minor() <= 0 || req.amount.minor() > MAX_AMOUNT_MINOR {
            return Err(RefundError::AmountOutOfRange {
                max: Money::new(MAX_AMOUNT_MINOR, merchant.currency),
            });
        }
        let digest = keyed_digest(
            &self.master.digest_key(),
            &[
                "refund",
                req.ori_order_id.as_str(),
                &req.amount.minor().to_string(),
                req.amount.currency().code(),
                req.refund_order_id
                    .as_ref()
                    .map_or("", MerchantOrderId::as_str),
            ],
        );
        // The same request again (a POS retry, a replayed envelope): its refund as it stands.
        if let Some(existing) = self
            .store
            .refund_by_request_digest(&merchant.id, &digest)
            .await?
        {
            return self.view(existing).await;
        }
        if let Some(id) = &req.refund_order_id {
            let taken = self
                .store
                .refund_by_order_id(&merchant.id, id)
                .await?
                .is_some()
                || self
                    .store
                    .order_by_merchant_order_id(&merchant.id, id)
                    .await?
                    .is_some();
            if taken {
                return Err(RefundError::OrderUsed(id.clone()));
            }
        }
        let order = self
            .store
            .order_by_merchant_order_id(&merchant.id, &req.ori_order_id)
            .await?
            .ok_or_else(|| RefundError::OrderNotFound(req.ori_order_id.clone()))?;
        self.refundable(&order, req.amount)?;
        let connector = self
            .wallets
            .connector(order.wallet)
            .cloned()
            .filter(|c| c.capabilities().refund)
            .ok_or(RefundError::NotEnabled(order.wallet))?;

        let now = self.now();
        let key = format!("R{}", &new_key(now)[1..]);
        let refund_order_id = match &req.refund_order_id {
            Some(id) => id.clone(),
            None => {
                MerchantOrderId::parse(&key).map_err(|e| RefundError::Invalid(e.to_string()))?
            }
        };
        let refund = Refund {
            key,
            merchant_id: merchant.id.clone(),
            refund_order_id,
            order_key: order.key.clone(),
            wallet: order.wallet,
            amount: req.amount,
            cny_amount: None,
            status: RefundStatus::Processing,
            wallet_code: None,
            wallet_message: None,
            channel_ref: None,
            sends: 0,
            operator_id: req.operator_id.clone(),
            approved_by: req.approved_by.clone(),
            request_digest: digest.clone(),
            wallet_created_at: now,
            // If this process dies during the wallet call, the refund loop takes over once
            // the call's budget has surely passed.
            next_check_at: Some(
                now + Duration::from_std(REFUND_BUDGET).unwrap_or_default() + Duration::seconds(3),
            ),
            finished_at: None,
            created_at: now,
            updated_at: now,
        };
        // The request path holds the refund while it calls the wallet, as the loop would: the
        // loop cannot take it before the lease runs out, and a late write from here fails.
        // The holder carries this process's worker name, so that a restart of the same node
        // releases it at once (`Engine::release_earlier_claims`) instead of waiting out the
        // lease.
        let holder = format!("{}.request-{}", self.worker(), refund.key);
        let lease_until =
            now + Duration::from_std(REFUND_BUDGET).unwrap_or_default() + Duration::seconds(20);
        match self
            .store
            .insert_refund(&refund, &holder, lease_until, now)
            .await
        {
            Ok(RefundReservation::Reserved) => {}
            Ok(RefundReservation::NotRefundable(order)) => {
                self.refundable(&order, req.amount)?;
                // Between the check and the write the order moved; report it as it is now.
                return Err(RefundError::Exceeds {
                    asked: req.amount,
                    refundable: order.refundable(),
                });
            }
            // The same request at the same moment, or the id taken meanwhile.
            Err(StoreError::Conflict { .. }) => {
                if let Some(existing) = self
                    .store
                    .refund_by_request_digest(&merchant.id, &digest)
                    .await?
                {
                    return self.view(existing).await;
                }
                return Err(RefundError::OrderUsed(refund.refund_order_id));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(refund.key = %refund.key, order.key = %order.key, refund.amount = %refund.amount, "refund stored; sending it to the wallet");
        let refund = match self
            .send_refund(&refund, &order, connector.as_ref(), &holder, REFUND_BUDGET)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Stored and reserved: the refund loop finishes it. The POS sees "processing".
                tracing::warn!(refund.key = %refund.key, error = %e, "cannot record the refund's send; the refund loop takes over");
                refund
            }
        };
        // The refund is stored: whatever happens now, the POS must hear "processing" rather
        // than a database error that reads as "nothing was done".
        match self.view(refund.clone()).await {
            Ok(v) => Ok(v),
            Err(e) => {
                tracing::warn!(refund.key = %refund.key, error = %e, "cannot read the refund's order back; answering with the refund as sent");
                let mut order = order;
                order.refund_reserved = Money::new(
                    order.refund_reserved.minor() + refund.amount.minor(),
                    order.amount.currency(),
                );
                Ok(RefundView { refund, order })
            }
        }
    }

    /// Refuses a refund that the order cannot take.
    fn refundable(&self, order: &Order, amount: Money) -> Result<(), RefundError> {
        if order.status != OrderStatus::Paid {
            return Err(RefundError::NotPaid {
                order_id: order.order_id.clone(),
                status: order.status,
            });
        }
        if amount.minor() > order.refundable().minor() {
            return Err(RefundError::Exceeds {
                asked: amount,
                refundable: order.refundable(),
            });
        }
        Ok(())
    }

    async fn view(&self, refund: Refund) -> Result<RefundView, RefundError> {
        let order = self
            .store
            .order(&refund.order_key)
            .await?
            .ok_or(RefundError::Engine(EngineError::NotFound("order")))?;
        Ok(RefundView { refund, order })
    }

    /// The merchant's refund by its refund order id, for REFUND_QUERY.
    pub async fn find_refund(
        &self,
        merchant: &Merchant,
        refund_order_id: &MerchantOrderId,
    ) -> Result<Option<RefundView>, RefundError> {
        match self
            .store
            .refund_by_order_id(&merchant.id, refund_order_id)
            .await?
        {
            Some(r) => self.view(r).await.map(Some),
            None => Ok(None),
        }
    }

    /// The refunds of an order, oldest first.
    pub async fn refunds_of_order(&self, order_key: &str) -> Result<Vec<Refund>, EngineError> {
        Ok(self.store.refunds_of_order(order_key).await?)
    }

    /// Sends the refund (again, under the same number) and writes what the wallet said. The
    /// send is counted in the database before the call, so after a crash the loop knows a
    /// send may have landed and asks the wallet before anything else.
    async fn send_refund(
        &self,
        refund: &Refund,
        order: &Order,
        connector: &dyn Connector,
        holder: &str,
        budget: StdDuration,
    ) -> Result<Refund, EngineError> {
        // Counting the send renews the claim, so that its lease covers the call.
        let now = self.now();
        if !self
            .store
            .count_refund_send(&refund.key, holder, now, now + CLAIM_LEASE)
            .await?
        {
            // The claim ran out and someone else holds the refund now.
            return Ok(self
                .store
                .refund(&refund.key)
                .await?
                .unwrap_or_else(|| refund.clone()));
        }
        let first = refund.sends == 0;
        let mut sending = refund.clone();
        sending.sends += 1;
        let request = RefundRequest {
            out_trade_no: order.key.clone(),
            out_refund_no: refund.key.clone(),
            order_amount: order.total(),
            refund_amount: refund.amount,
            reason: None,
            order: order_ref(order),
            created_at: refund.wallet_created_at,
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(budget, connector.refund(&request)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectorError::OutcomeUnknown(
                "no answer to the refund within its budget".into(),
            )),
        };
        let (outcome, code) = describe(&result, refund_status_name);
        self.event_with(
            &order.key,
            "refund",
            outcome,
            code,
            Some(format!(
                "refund {} of {} (order total {}), send {}",
                refund.key,
                refund.amount,
                order.total(),
                sending.sends
            )),
            started.elapsed(),
        )
        .await;
        let next = after_send(&sending, result, first, self.now());
        self.write_refund(&sending, next, holder).await
    }

    /// Writes `next` (an update or the end of a refund in progress), then returns the refund
    /// as it stands.
    async fn write_refund(
        &self,
        current: &Refund,
        next: Refund,
        holder: &str,
    ) -> Result<Refund, EngineError> {
        let now = self.now();
        if next.status.is_final() {
            if let Some(done) = self.store.finish_refund(&next, Some(holder), now).await? {
                tracing::info!(refund.key = %done.key, refund.status = %done.status, wallet.code = ?done.wallet_code, "refund finished");
                return Ok(done);
            }
        } else {
            if next.next_check_at.is_none() {
                tracing::error!(refund.key = %next.key, order.key = %next.order_key, "refund still unfinished after {} hours; it needs a person to check it with the wallet", REFUND_FOLLOW_UP.num_hours());
            }
            if self
                .store
                .update_processing_refund(&next, Some(holder), now)
                .await?
            {
                return Ok(next);
            }
        }
        Ok(self.store.refund(&current.key).await?.unwrap_or(next))
    }

    /// One round of the refund loop, to drain it in tests and tools: claims up to `limit` due
    /// refunds, moves each one step concurrently, and waits for them. Returns how many it
    /// handled. `serve` runs [`Engine::run_refund_loop`] instead, which never waits for a
    /// round.
    pub async fn settle_due_refunds(
        &self,
        worker: &str,
        limit: usize,
    ) -> Result<usize, EngineError> {
        let mut in_flight = InFlight::new(crate::LoopBounds {
            per_lane: limit,
            total: limit,
        });
        let started = self.start_due_refunds(worker, &mut in_flight).await;
        in_flight.all_finished().await;
        started
    }

    /// Moves an unfinished refund one step: a refund never sent is sent; otherwise the wallet
    /// is asked, and the refund finished if it says, or sent again under the same number if
    /// it has none (up to [`MAX_REFUND_SENDS`]).
    pub(crate) async fn refund_step(
        &self,
        refund: Refund,
        lease: &mut Lease,
    ) -> Result<(), EngineError> {
        let holder = lease.holder.clone();
        let holder = holder.as_str();
        let order = self
            .store
            .order(&refund.order_key)
            .await?
            .ok_or(EngineError::NotFound("order"))?;
        let Some(connector) = self.wallets.connector(refund.wallet).cloned() else {
            tracing::error!(refund.key = %refund.key, wallet = %refund.wallet, "an open refund's wallet is not configured; retrying later");
            let next = waiting(refund.clone(), None, self.now());
            self.write_refund(&refund, next, holder).await?;
            return Ok(());
        };
        if refund.sends == 0 {
            self.send_refund(&refund, &order, connector.as_ref(), holder, CALL_TIMEOUT)
                .await?;
            return Ok(());
        }
        if !self.cover_call(Leased::Refund, &refund.key, lease).await? {
            return Ok(());
        }
        let started = Instant::now();
        let reference = RefundRef {
            out_refund_no: refund.key.clone(),
            created_at: refund.wallet_created_at,
        };
        let result = match tokio::time::timeout(
            CALL_TIMEOUT,
            connector.query_refund(&order_ref(&order), &reference),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ConnectorError::OutcomeUnknown(
                "no answer to the refund query".into(),
            )),
        };
        let (outcome, code) = describe(&result, refund_status_name);
        self.event_with(
            &order.key,
            "refund_query",
            outcome,
            code,
            Some(format!("refund {}", refund.key)),
            started.elapsed(),
        )
        .await;
        match after_query(&refund, result, self.now()) {
            AfterQuery::Resend => {
                self.send_refund(&refund, &order, connector.as_ref(), holder, CALL_TIMEOUT)
                    .await?;
            }
            AfterQuery::Write(next) => {
                self.write_refund(&refund, *next, holder).await?;
            }
        }
        Ok(())
    }

    /// Puts an unfinished refund back in the refund loop now (`qrgate refunds retry`), for
    /// one that ran out of its follow-up or one a person has checked with the wallet.
    pub async fn requeue_refund(&self, key: &str) -> Result<Refund, EngineError> {
        self.store.requeue_refund(key, self.now()).await?;
        self.store
            .refund(key)
            .await?
            .ok_or(EngineError::NotFound("refund"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_thin_out_and_stop_after_the_follow_up() {
        let t0 = DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        assert_eq!(next_check(t0, t0), Some(t0 + Duration::seconds(10)));
        let t = t0 + Duration::minutes(5);
        assert_eq!(next_check(t0, t), Some(t + Duration::minutes(1)));
        let t = t0 + Duration::hours(5);
        assert_eq!(next_check(t0, t), Some(t + Duration::hours(1)));
        assert_eq!(
            next_check(t0, t0 + REFUND_FOLLOW_UP + Duration::seconds(1)),
            None
        );
    }
}
