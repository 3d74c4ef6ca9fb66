//! Active-mode payments: the customer scans the merchant's QR (ACTIVEPAY). The order is
//! stored, the wallet's QR order created, and then the wallet's notification or the closing
//! loop's queries settle it; at its expiry it is closed at the wallet, respecting each
//! wallet's rules (WeChat refuses to close an order younger than 5 minutes; an Alipay trade
//! does not exist until scanned, so closing it then is a no-op the wallet accepts).

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use qrgate_connector_api::{ChannelStatus, Connector, ConnectorError, OrderRef, QrOrderRequest};
use qrgate_domain::{
    Currency, Merchant, MerchantOrderId, Money, Order, OrderStatus, PaymentMode, Wallet,
};
use qrgate_store::StoreError;

use crate::loops::{Lease, Leased};
use crate::payments::{
    describe, keyed_digest, new_key, paid_as_asked, record_paid, ClosingPolicy, AMOUNT_MISMATCH,
    CALL_TIMEOUT,
};
use crate::{Engine, EngineError, PaymentError};

/// WeChat Pay refuses to close an order younger than this (`wallets.md` §1.6).
const WECHAT_MIN_AGE_BEFORE_CLOSE: Duration = Duration::seconds(5 * 60 + 10);

/// A QR order as the POS asks for it.
#[derive(Debug, Clone)]
pub struct QrPayment {
    pub merchant: Merchant,
    pub order_id: Option<MerchantOrderId>,
    pub amount: Money,
    pub tip: Money,
    pub wallet: Wallet,
    pub operator_id: Option<String>,
    pub terminal_no: Option<String>,
    /// Where the merchant wants to hear that the order was paid.
    pub call_back_url: Option<String>,
    pub client_ip: String,
}

/// Why a wallet notification was refused.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("{0} is not enabled on this gateway")]
    WalletNotEnabled(Wallet),
    #[error("the notification does not verify: {0}")]
    Unverified(String),
    #[error("the notification names no order of ours")]
    UnknownOrder,
    #[error("the notification's amount or wallet does not match the order")]
    Mismatch,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for NotificationError {
    fn from(e: StoreError) -> Self {
        NotificationError::Engine(EngineError::from(e))
    }
}

/// When a QR order may be closed at its wallet: at its expiry, or, once someone asked to
/// cancel it, as soon as its wallet allows (docs/TILL.md, "Cancel"): WeChat Pay refuses a
/// close in the first 5 minutes; UnionPay has no close at all (its QR stays payable until its
/// `payTimeout`, which is our expiry), so a cancelled UnionPay QR is closed at its expiry.
pub(crate) fn close_due(order: &Order) -> DateTime<Utc> {
    let expiry = order.expires_at.unwrap_or(order.created_at);
    let asked = order
        .cancel_requested_at
        .map_or(expiry, |at| at.min(expiry));
    match order.wallet {
        Wallet::WechatPay => asked.max(order.wallet_created_at + WECHAT_MIN_AGE_BEFORE_CLOSE),
        Wallet::Alipay => asked,
        Wallet::UnionPay => expiry,
    }
}

/// Until when a QR someone asked to cancel may still be paid, at the latest: WeChat Pay's
/// close is due 5 minutes after creation; an Alipay QR nobody has scanned cannot be closed,
/// nor can any UnionPay QR: their expiry.
pub fn payable_until(order: &Order) -> DateTime<Utc> {
    match order.wallet {
        Wallet::WechatPay => close_due(order),
        Wallet::Alipay | Wallet::UnionPay => order.expires_at.unwrap_or(order.created_at),
    }
}

impl Engine {
    /// Creates a QR order: stored first, then created at the wallet. The order comes back
    /// `Pending` with its `code_url`, or `Failed` (the wallet refused; nothing to pay), or
    /// `Unknown` (the wallet's answer was lost: no QR to show; the closing loop closes it).
    /// A request resent with the same `order_id` and content gets the same order and QR.
    /// Without an `order_id`, every request is a new sale with a QR of its own: an OTTPAY
    /// envelope has no nonce, so two identical sales and a resent request are the same bytes,
    /// and handing a second customer the first one's (perhaps paid) order would cost a sale,
    /// while an extra QR nobody scans costs nothing (it closes unpaid).
    pub async fn create_qr_order(&self, req: QrPayment) -> Result<Order, PaymentError> {
        let max = crate::payments::MAX_AMOUNT_MINOR;
        if req.amount.minor() <= 0 || req.amount.minor() > max {
            return Err(PaymentError::AmountOutOfRange {
                max: Money::new(max, req.amount.currency()),
            });
        }
        if req.tip.minor() < 0 || req.tip.minor() > max {
            return Err(PaymentError::TipOutOfRange {
                max: Money::new(max, req.tip.currency()),
            });
        }
        let connector = self
            .wallets
            .connector(req.wallet)
            .cloned()
            .ok_or(PaymentError::WalletNotEnabled(req.wallet))?;
        let now = self.now();
        let key = new_key(now);
        let order_id = match &req.order_id {
            Some(id) => id.clone(),
            None => {
                MerchantOrderId::parse(&key).map_err(|e| PaymentError::Invalid(e.to_string()))?
            }
        };
        let amount = req.amount.minor().to_string();
        let tip = req.tip.minor().to_string();
        let digest = keyed_digest(
            &self.master.digest_key(),
            &[
                "active",
                &amount,
                &tip,
                req.amount.currency().code(),
                req.wallet.as_str(),
                req.operator_id.as_deref().unwrap_or(""),
                req.terminal_no.as_deref().unwrap_or(""),
                req.call_back_url.as_deref().unwrap_or(""),
                // The generated id when there is none: no two requests without an
                // `order_id` ever share a digest, so none finds another's order.
                order_id.as_str(),
            ],
        );
        let budget = self.wallets.pay_budget;
        let order = Order {
            key,
            merchant_id: req.merchant.id.clone(),
            order_id,
            mode: PaymentMode::Active,
            wallet: req.wallet,
            amount: req.amount,
            tip: req.tip,
            cny_amount: (req.amount.currency() == Currency::Cny).then_some(Money::new(
                req.amount.minor() + req.tip.minor(),
                Currency::Cny,
            )),
            rate: None,
            operator_id: req.operator_id.clone(),
            terminal_no: req.terminal_no.clone(),
            sale_num: None,
            status: OrderStatus::Paying,
            wallet_code: None,
            wallet_message: None,
            channel_ref: None,
            buyer: None,
            paid_at: None,
            wallet_created_at: now,
            next_check_at: Some(
                now + Duration::milliseconds(crate::payments::ms(budget)) + Duration::seconds(3),
            ),
            request_digest: digest,
            code_url: None,
            expires_at: Some(now + self.wallets.qr_ttl),
            call_back_url: req.call_back_url.clone(),
            refund_reserved: Money::new(0, req.amount.currency()),
            refunded: Money::new(0, req.amount.currency()),
            cancel_requested_at: None,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_order(&order).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => {
                let existing = self
                    .store
                    .order_by_merchant_order_id(&order.merchant_id, &order.order_id)
                    .await?;
                return match existing {
                    Some(o) if o.request_digest == order.request_digest => Ok(o),
                    Some(_) => Err(PaymentError::OrderUsed),
                    None => match self
                        .store
                        .order_by_request_digest(&order.merchant_id, &order.request_digest)
                        .await?
                    {
                        Some(o) => Ok(o),
                        None => Err(PaymentError::OrderUsed),
                    },
                };
            }
            Err(e) => return Err(e.into()),
        }
        let wallet_req = QrOrderRequest {
            out_trade_no: order.key.clone(),
            amount: order.total(),
            subject: req.merchant.name.clone(),
            notify_url: self.wallets.notify_url(req.wallet),
            expires_at: order.expires_at.unwrap_or(now),
            terminal_id: req.terminal_no.clone(),
            client_ip: req.client_ip.clone(),
            created_at: order.wallet_created_at,
        };
        let started = Instant::now();
        let result =
            match tokio::time::timeout(budget, connector.create_qr_order(&wallet_req)).await {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::OutcomeUnknown(format!(
                    "no answer within {budget:?}"
                ))),
            };
        let (outcome, code) = describe(&result, |q: &qrgate_connector_api::QrOrder| {
            let _ = q;
            ("qr_created", None)
        });
        let sent = format!(
            "{} for a QR payable until {}",
            order.total(),
            wallet_req.expires_at.to_rfc3339()
        );
        // Written with the outcome, in one transaction.
        let event = self.wallet_event("create_qr", outcome, code, Some(sent), started.elapsed());
        let now = self.now();
        let policy = self.wallets.policy(req.wallet);
        let mut next = order.clone();
        next.updated_at = now;
        match result {
            Ok(qr) => {
                next.status = OrderStatus::Pending;
                next.code_url = Some(qr.code_url);
                next.next_check_at = Some(now + policy.first_check);
            }
            Err(ConnectorError::OutcomeUnknown(_)) | Err(ConnectorError::BadResponse(_)) => {
                // The wallet may hold an order nobody can pay (no QR was shown): close it.
                next.status = OrderStatus::Unknown;
                next.next_check_at = Some(now + policy.first_check);
            }
            Err(e) => {
                next.status = OrderStatus::Failed;
                next.wallet_code = Some(match &e {
                    ConnectorError::Declined { code, .. }
                    | ConnectorError::Rejected { code, .. } => code.clone(),
                    ConnectorError::Unavailable(_) => "UNAVAILABLE".into(),
                    _ => "ERROR".into(),
                });
                next.wallet_message = Some(e.to_string());
                next.next_check_at = None;
            }
        }
        for attempt in 0..3u64 {
            match self
                .save_recorded(&order, next.clone(), None, Some(&event))
                .await
            {
                Ok(saved) => return Ok(saved),
                Err(e) => {
                    tracing::error!(order.key = %order.key, attempt, error = %e, "cannot record the QR order; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
        Ok(order)
    }

    /// One closing-loop step for a QR order: query; once it is due, close it at the wallet.
    pub(crate) async fn settle_qr_step(
        &self,
        order: Order,
        lease: &mut Lease,
        connector: &dyn Connector,
        policy: ClosingPolicy,
        reference: &OrderRef,
    ) -> Result<(), PaymentError> {
        if !self.cover_call(Leased::Order, &order.key, lease).await? {
            return Ok(());
        }
        let result = self.query_logged(&order, connector, reference).await;
        let now = self.now();
        let mut next = order.clone();
        next.updated_at = now;
        let due = close_due(&order);
        next.next_check_at = Some(
            (now + policy.interval)
                .min(due)
                .max(now + Duration::seconds(1)),
        );
        match result {
            Ok(w) if w.status == ChannelStatus::Paid && paid_as_asked(&order, &w, "query") => {
                record_paid(&mut next, &w, now)
            }
            Ok(w) if w.status == ChannelStatus::Paid => {
                // Not settled from it; asked again at the next check, flagged meanwhile.
                next.status = OrderStatus::Pending;
                next.wallet_code = Some(AMOUNT_MISMATCH.into());
            }
            Ok(w) if matches!(w.status, ChannelStatus::Closed | ChannelStatus::Reversed) => {
                next.status = OrderStatus::Closed;
                next.next_check_at = None;
            }
            _ if now >= due => {
                return self
                    .close_qr(order, lease, connector, policy, reference)
                    .await
            }
            Ok(_) => next.status = OrderStatus::Pending,
            Err(_) => {}
        }
        self.save(&order, next, Some(&lease.holder)).await?;
        Ok(())
    }

    async fn close_qr(
        &self,
        order: Order,
        lease: &mut Lease,
        connector: &dyn Connector,
        policy: ClosingPolicy,
        reference: &OrderRef,
    ) -> Result<(), PaymentError> {
        if !self.cover_call(Leased::Order, &order.key, lease).await? {
            return Ok(());
        }
        let expiry = order.expires_at.unwrap_or(order.created_at);
        let started = Instant::now();
        let result =
            match tokio::time::timeout(CALL_TIMEOUT, connector.close_order(reference)).await {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::OutcomeUnknown(
                    "no answer to the close".into(),
                )),
            };
        let (outcome, code) = describe(&result, |_: &()| ("closed", None));
        self.event(&order.key, "close", outcome, code, started.elapsed())
            .await;
        let now = self.now();
        let mut next = order.clone();
        next.updated_at = now;
        // The close's answer is followed by a query below, for which the lease must last.
        if !self.cover_call(Leased::Order, &order.key, lease).await? {
            return Ok(());
        }
        match result {
            Ok(()) => {
                // Paid at the last moment? A last query decides.
                match self.query_logged(&order, connector, reference).await {
                    Ok(w)
                        if w.status == ChannelStatus::Paid
                            && paid_as_asked(&order, &w, "query") =>
                    {
                        record_paid(&mut next, &w, now)
                    }
                    Ok(w) if w.status == ChannelStatus::Paid => {
                        next.wallet_code = Some(AMOUNT_MISMATCH.into());
                        next.next_check_at = Some(now + Duration::seconds(30));
                    }
                    // Cancelled before its expiry, and the wallet has nothing closed to show:
                    // an Alipay QR nobody has scanned has no trade to close, and stays
                    // payable until its expiry. The order stays open and the close is tried
                    // again at each check (it closes the trade as soon as one is scanned);
                    // at the expiry it is closed as any QR.
                    Ok(w)
                        if w.status == ChannelStatus::PendingUser
                            && order.cancel_requested_at.is_some()
                            && now < expiry =>
                    {
                        next.status = OrderStatus::Pending;
                        next.wallet_code = w.wallet_code;
                        next.next_check_at = Some((now + policy.interval).min(expiry));
                    }
                    _ => {
                        next.status = OrderStatus::Closed;
                        next.next_check_at = None;
                    }
                }
            }
            Err(ConnectorError::Declined { code, .. }) if code.contains("PAID") => {
                match self.query_logged(&order, connector, reference).await {
                    Ok(w)
                        if w.status == ChannelStatus::Paid
                            && paid_as_asked(&order, &w, "query") =>
                    {
                        record_paid(&mut next, &w, now)
                    }
                    Ok(w) if w.status == ChannelStatus::Paid => {
                        next.wallet_code = Some(AMOUNT_MISMATCH.into());
                        next.next_check_at = Some(now + Duration::seconds(30));
                    }
                    _ => next.next_check_at = Some(now + Duration::seconds(30)),
                }
            }
            Err(e) => {
                tracing::warn!(order.key = %order.key, error = %e, "closing the QR order failed; retrying");
                next.next_check_at = Some(now + Duration::seconds(30));
            }
        }
        self.save(&order, next, Some(&lease.holder)).await?;
        Ok(())
    }

    /// A wallet's asynchronous notification (its "callback"): verified by the wallet's
    /// connector, matched to our order, and recorded. Returns the exact answer the wallet
    /// expects, so it stops retrying. Idempotent: a repeated or late notification changes
    /// nothing once the order is final.
    pub async fn handle_wallet_notification(
        &self,
        wallet: Wallet,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(String, &'static str), NotificationError> {
        let connector = self
            .wallets
            .connector(wallet)
            .cloned()
            .ok_or(NotificationError::WalletNotEnabled(wallet))?;
        let event = connector
            .verify_callback(content_type, body)
            .map_err(|e| NotificationError::Unverified(e.to_string()))?;
        let ack = (event.ack_body.clone(), event.ack_content_type);
        let Some(order) = self.store.order(&event.order.out_trade_no).await? else {
            return Err(NotificationError::UnknownOrder);
        };
        if order.wallet != wallet {
            tracing::error!(order.key = %order.key, "a verified notification of another wallet names this order");
            return Err(NotificationError::Mismatch);
        }
        if event.order.status == ChannelStatus::Paid
            && !paid_as_asked(&order, &event.order, "notification")
        {
            // Not settled from it: the closing loop asks the wallet at once instead.
            if !order.status.is_final() {
                let mut next = order.clone();
                next.wallet_code = Some(AMOUNT_MISMATCH.into());
                next.next_check_at = Some(self.now());
                next.updated_at = self.now();
                let _ = self.save(&order, next, None).await;
            }
            return Err(NotificationError::Mismatch);
        }
        if event.order.status == ChannelStatus::Paid && !order.status.is_final() {
            let mut next = order.clone();
            record_paid(&mut next, &event.order, self.now());
            next.updated_at = self.now();
            // The wallet's notification goes on the order's timeline with the change it made
            // (the console shows notifications in beside the calls out).
            let received = self.wallet_event(
                "notification",
                "paid".into(),
                event.order.wallet_code.clone(),
                Some("received from the wallet".into()),
                std::time::Duration::ZERO,
            );
            // If the closing loop holds the order right now, it will find it paid itself.
            let _ = self
                .save_recorded(&order, next, None, Some(&received))
                .await;
        } else if event.order.status == ChannelStatus::Paid && order.status == OrderStatus::Closed {
            // The customer paid a QR we had closed (an Alipay QR closed before its scan can
            // still be paid, `wallets.md` §2.4): the money moved, so the order is paid, flagged,
            // and the merchant is notified like any payment.
            tracing::warn!(order.key = %order.key, "payment after the order was closed: recorded as a late payment");
            let mut next = order.clone();
            record_paid(&mut next, &event.order, self.now());
            next.wallet_code = Some("LATE_PAYMENT".into());
            next.updated_at = self.now();
            self.save(&order, next, None).await.map_err(|e| match e {
                PaymentError::Engine(e) => NotificationError::Engine(e),
                other => NotificationError::Engine(EngineError::Invalid(other.to_string())),
            })?;
        } else if event.order.status == ChannelStatus::Paid && order.status != OrderStatus::Paid {
            tracing::error!(order.key = %order.key, order.status = %order.status, "the wallet reports a payment for an order already {}: needs attention", order.status);
        }
        Ok(ack)
    }
}
