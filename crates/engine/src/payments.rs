//! Passive-mode payments (the cashier scans the customer's code) and the closing loop that
//! drives every order the wallet left open to a final state.
//!
//! The rules, in order: the order is stored before the wallet is called, with a check time,
//! so a crash during the call leaves it for the closing loop, never forgotten; the wallet call
//! has a budget, after which the answer is "processing", never a guess; an unknown outcome is
//! settled only by the wallet (query, then reverse), never by assumption; every wallet call
//! is written on the order's timeline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use qrgate_connector_api::{
    ChannelOrder, ChannelStatus, CodePaymentRequest, Connector, ConnectorError, OrderRef,
    ReverseOutcome,
};
use qrgate_domain::{
    Currency, FxRate, Merchant, MerchantOrderId, Money, Order, OrderStatus, PaymentMode, Wallet,
};
use qrgate_store::{OrderEvent, StoreError};
use rand::Rng;
use sha2::Sha256;

use crate::loops::{InFlight, Lease, Leased, CLAIM_LEASE};
use crate::{Engine, EngineError};

/// When and how the gateway settles a code payment the wallet left open (`wallets.md` §1.11,
/// §2.8, §5): query after `first_check`, then every `interval`; once `confirm_window` has
/// passed since the order was sent, reverse it, repeating while the wallet asks.
#[derive(Debug, Clone, Copy)]
pub struct ClosingPolicy {
    pub first_check: Duration,
    pub interval: Duration,
    pub confirm_window: Duration,
    /// Between reversal attempts the wallet asked to repeat, growing to `interval` × 12.
    pub reverse_retry: Duration,
}

impl ClosingPolicy {
    /// The wallets' own guidance: WeChat revokes by itself ~45 s after the charge (so the
    /// gateway reverses at 40 s), Alipay's demo gives up after about a minute, UnionPay's
    /// window is open (open point 11) and is given a minute too.
    pub fn default_for(wallet: Wallet) -> ClosingPolicy {
        let window = match wallet {
            Wallet::WechatPay => 40,
            Wallet::Alipay => 60,
            Wallet::UnionPay => 60,
        };
        ClosingPolicy {
            first_check: Duration::seconds(5),
            interval: Duration::seconds(5),
            confirm_window: Duration::seconds(window),
            reverse_retry: Duration::seconds(2),
        }
    }
}

/// The wallets the engine can charge, with their settling policies.
#[derive(Clone)]
pub struct Wallets {
    connectors: HashMap<Wallet, Arc<dyn Connector>>,
    policies: HashMap<Wallet, ClosingPolicy>,
    /// How long a PASSIVEPAY waits for the wallet before answering "processing".
    pub pay_budget: StdDuration,
    /// How long a QR stays payable.
    pub qr_ttl: Duration,
    /// The gateway's public base URL, where wallets post their notifications
    /// (`<base>/notify/<wallet>`).
    pub notify_base_url: String,
    /// How old a wallet's published exchange rate may be before EX_RATE_QUERY stops using it
    /// and falls back to the provider's rate.
    pub fx_max_age: Duration,
}

impl std::fmt::Debug for Wallets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallets")
            .field("enabled", &self.enabled())
            .finish_non_exhaustive()
    }
}

impl Default for Wallets {
    /// No wallet enabled: every payment is refused with [`PaymentError::WalletNotEnabled`].
    fn default() -> Self {
        Wallets::new(Vec::new())
    }
}

impl Wallets {
    pub fn new(connectors: Vec<Arc<dyn Connector>>) -> Wallets {
        let connectors: HashMap<Wallet, Arc<dyn Connector>> =
            connectors.into_iter().map(|c| (c.wallet(), c)).collect();
        let policies = Wallet::ALL
            .into_iter()
            .map(|w| (w, ClosingPolicy::default_for(w)))
            .collect();
        Wallets {
            connectors,
            policies,
            pay_budget: StdDuration::from_secs(12),
            qr_ttl: Duration::minutes(15),
            notify_base_url: "http://127.0.0.1:8080".into(),
            fx_max_age: crate::fx::DEFAULT_WALLET_RATE_MAX_AGE,
        }
    }

    pub fn with_policy(mut self, wallet: Wallet, policy: ClosingPolicy) -> Wallets {
        self.policies.insert(wallet, policy);
        self
    }

    pub fn enabled(&self) -> Vec<Wallet> {
        let mut w: Vec<Wallet> = self.connectors.keys().copied().collect();
        w.sort();
        w
    }

    pub(crate) fn connector(&self, wallet: Wallet) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(&wallet)
    }

    /// Where `wallet` posts its notifications for our orders.
    pub fn notify_url(&self, wallet: Wallet) -> String {
        format!(
            "{}/notify/{}",
            self.notify_base_url.trim_end_matches('/'),
            wallet.as_str()
        )
    }

    pub(crate) fn policy(&self, wallet: Wallet) -> ClosingPolicy {
        self.policies
            .get(&wallet)
            .copied()
            .unwrap_or_else(|| ClosingPolicy::default_for(wallet))
    }
}

/// A payment-code charge as the POS asks for it.
#[derive(Clone)]
pub struct CodePayment {
    pub merchant: Merchant,
    /// The merchant's order number; generated when absent.
    pub order_id: Option<MerchantOrderId>,
    /// In the merchant's currency.
    pub amount: Money,
    pub tip: Money,
    /// The scanned code. Never stored or logged: only a digest of the request is kept.
    pub auth_code: String,
    /// The wallet the POS says it is (`biz_type`); must agree with the code's format.
    pub wallet: Option<Wallet>,
    pub operator_id: Option<String>,
    pub terminal_no: Option<String>,
    pub sale_num: Option<String>,
    pub client_ip: String,
}

impl std::fmt::Debug for CodePayment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodePayment")
            .field("merchant", &self.merchant.id)
            .field("order_id", &self.order_id)
            .field("amount", &self.amount)
            .field("tip", &self.tip)
            .field("auth_code", &"***")
            .field("wallet", &self.wallet)
            .finish_non_exhaustive()
    }
}

/// Why a payment was refused before any wallet call.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("the payment code has no known wallet format (WeChat Pay 18 digits from 10, Alipay 16 to 24 digits from 25 to 30, UnionPay 19 digits from 62)")]
    UnknownCodeFormat,
    #[error("the payment code is a {code} code but biz_type says {asked}")]
    WalletMismatch { code: Wallet, asked: Wallet },
    #[error("{0} is not enabled on this gateway")]
    WalletNotEnabled(Wallet),
    #[error("order_id is already used by another order")]
    OrderUsed,
    #[error("this payment code was already used for order {0}")]
    CodeAlreadyUsed(MerchantOrderId),
    /// The amount is not between one minor unit and `max`.
    #[error("invalid amount: must be between 1 cent and 1,000,000.00")]
    AmountOutOfRange { max: Money },
    /// The tip is negative or above `max`.
    #[error("invalid tip")]
    TipOutOfRange { max: Money },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for PaymentError {
    fn from(e: StoreError) -> Self {
        PaymentError::Engine(EngineError::from(e))
    }
}

/// The longest the closing loop waits for one wallet call. A claim's lease covers one such
/// call and is renewed before the next (`loops.rs`).
pub(crate) const CALL_TIMEOUT: StdDuration = StdDuration::from_secs(20);

/// The largest amount accepted, in minor units (1,000,000.00): a fat-finger guard.
pub const MAX_AMOUNT_MINOR: i64 = 100_000_000;

pub(crate) fn new_key(now: DateTime<Utc>) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..12)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("Q{}{tail}", now.format("%y%m%d%H%M%S"))
}

/// A keyed digest (HMAC-SHA256) of what makes a request this request. Keyed, because it is
/// stored beside the order and the payment code is in it: an unkeyed hash of a code with a
/// few billion possible values could be reversed.
fn digest(key: &[u8; 32], req: &CodePayment, wallet: Wallet) -> String {
    keyed_digest(
        key,
        &[
            "passive",
            &req.amount.minor().to_string(),
            &req.tip.minor().to_string(),
            req.amount.currency().code(),
            req.auth_code.trim(),
            wallet.as_str(),
            req.operator_id.as_deref().unwrap_or(""),
            req.terminal_no.as_deref().unwrap_or(""),
            req.sale_num.as_deref().unwrap_or(""),
        ],
    )
}

/// HMAC-SHA256 over the parts, each followed by a zero byte, as lower-case hex.
pub(crate) fn keyed_digest(key: &[u8; 32], parts: &[&str]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; a 32-byte key cannot be refused.
        Err(_) => return String::new(),
    };
    for part in parts {
        mac.update(part.as_bytes());
        mac.update(&[0u8]);
    }
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) fn ms(d: StdDuration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What one wallet call said, for the timeline: a short outcome name and the wallet's code.
pub(crate) fn describe<T>(
    result: &Result<T, ConnectorError>,
    status: impl Fn(&T) -> (&'static str, Option<String>),
) -> (String, Option<String>) {
    match result {
        Ok(v) => {
            let (s, c) = status(v);
            (s.to_owned(), c)
        }
        Err(ConnectorError::Declined { code, .. }) => ("declined".into(), Some(code.clone())),
        Err(ConnectorError::Rejected { code, .. }) => ("rejected".into(), Some(code.clone())),
        Err(ConnectorError::OutcomeUnknown(_)) => ("outcome_unknown".into(), None),
        Err(ConnectorError::Unavailable(_)) => ("unavailable".into(), None),
        Err(ConnectorError::BadResponse(_)) => ("bad_response".into(), None),
        Err(ConnectorError::NotSupported(_)) => ("not_supported".into(), None),
        Err(ConnectorError::Credentials(_)) => ("credentials".into(), None),
    }
}

pub(crate) fn channel_status_name(o: &ChannelOrder) -> (&'static str, Option<String>) {
    let s = match o.status {
        ChannelStatus::PendingUser => "pending_user",
        ChannelStatus::Unknown => "unknown",
        ChannelStatus::Paid => "paid",
        ChannelStatus::Failed => "failed",
        ChannelStatus::Closed => "closed",
        ChannelStatus::Reversed => "reversed",
    };
    (s, o.wallet_code.clone())
}

/// The wallets' "no such order" codes (WeChat, Alipay, UnionPay). For a payment-code order
/// past its window whose reversal was refused, it means the charge never reached the wallet:
/// nothing to reverse, nothing charged.
// A normalised "not found" status in connector-api would make this list unnecessary.
const NOT_FOUND_CODES: [&str; 3] = ["ORDERNOTEXIST", "ACQ.TRADE_NOT_EXIST", "34"];

fn unknown_to_the_wallet(w: &ChannelOrder) -> bool {
    w.status != ChannelStatus::Paid
        && w.wallet_code
            .as_deref()
            .is_some_and(|c| NOT_FOUND_CODES.contains(&c))
}

/// How often a code payment waiting on its wallet call looks for a settlement written by
/// another node (this node's wake it at once).
const SETTLED_ELSEWHERE_POLL: StdDuration = StdDuration::from_secs(1);

/// The wallet code an order carries while a wallet says it is paid with another amount or
/// currency than ours, or without saying what was paid: it is not settled from such a word.
pub(crate) const AMOUNT_MISMATCH: &str = "AMOUNT_MISMATCH";

/// Whether a wallet's "paid" may settle `order`: it must say what was paid, in the order's
/// currency, and that must be the order's total. Anything else is refused and logged loudly
/// (`source` says which answer it was): the order is then settled only by a query that
/// carries the right amount, or reversed/closed by its rules (docs/API.md, "Amounts").
pub(crate) fn paid_as_asked(order: &Order, w: &ChannelOrder, source: &str) -> bool {
    match w.amount {
        Some(amount) if amount == order.total() => true,
        reported => {
            tracing::error!(
                order.key = %order.key,
                wallet = %order.wallet,
                expected = %order.total(),
                reported = %reported.map_or_else(|| "nothing".to_owned(), |a| a.to_string()),
                source,
                "a wallet says an order is paid without its amount and currency: not settled from it; needs attention"
            );
            false
        }
    }
}

/// Copies what the wallet said about a paid order onto ours. Callers check
/// [`paid_as_asked`] first.
pub(crate) fn record_paid(order: &mut Order, w: &ChannelOrder, now: DateTime<Utc>) {
    order.status = OrderStatus::Paid;
    order.channel_ref = w.channel_ref.clone().or(order.channel_ref.take());
    order.buyer = w.buyer.clone().or(order.buyer.take());
    order.paid_at = Some(w.paid_at.unwrap_or(now));
    order.cny_amount = w
        .payer_amount
        .filter(|m| m.currency() == Currency::Cny)
        .or(order.cny_amount);
    order.rate = w.rate_e8.and_then(FxRate::from_scaled).or(order.rate);
    order.wallet_code = None;
    order.wallet_message = None;
    order.next_check_at = None;
}

impl Engine {
    /// Charges a customer's payment code. Returns the order as it stands when the wallet
    /// answered or the budget ran out: `Paid`, `Failed` (declined, nothing moved), or
    /// `Pending`/`Unknown`/`Paying` (the closing loop settles it; the POS polls).
    ///
    /// A request resent with the same `order_id` and the same content gets the order's current
    /// state and never charges again; the same `order_id` with other content is
    /// [`PaymentError::OrderUsed`].
    pub async fn pay_with_code(&self, req: CodePayment) -> Result<Order, PaymentError> {
        let auth_code = req.auth_code.trim().to_owned();
        let code_wallet =
            Wallet::of_payment_code(&auth_code).ok_or(PaymentError::UnknownCodeFormat)?;
        if let Some(asked) = req.wallet {
            if asked != code_wallet {
                return Err(PaymentError::WalletMismatch {
                    code: code_wallet,
                    asked,
                });
            }
        }
        if req.amount.minor() <= 0 || req.amount.minor() > MAX_AMOUNT_MINOR {
            return Err(PaymentError::AmountOutOfRange {
                max: Money::new(MAX_AMOUNT_MINOR, req.amount.currency()),
            });
        }
        if req.tip.minor() < 0 || req.tip.minor() > MAX_AMOUNT_MINOR {
            return Err(PaymentError::TipOutOfRange {
                max: Money::new(MAX_AMOUNT_MINOR, req.tip.currency()),
            });
        }
        let connector = self
            .wallets
            .connector(code_wallet)
            .cloned()
            .ok_or(PaymentError::WalletNotEnabled(code_wallet))?;
        let now = self.now();
        let key = new_key(now);
        let order_id = match &req.order_id {
            Some(id) => id.clone(),
            None => {
                MerchantOrderId::parse(&key).map_err(|e| PaymentError::Invalid(e.to_string()))?
            }
        };
        let request_digest = digest(&self.master.digest_key(), &req, code_wallet);
        let budget = self.wallets.pay_budget;
        let order = Order {
            key,
            merchant_id: req.merchant.id.clone(),
            order_id,
            mode: PaymentMode::Passive,
            wallet: code_wallet,
            amount: req.amount,
            tip: req.tip,
            cny_amount: (req.amount.currency() == Currency::Cny).then_some(Money::new(
                req.amount.minor() + req.tip.minor(),
                Currency::Cny,
            )),
            rate: None,
            operator_id: req.operator_id.clone(),
            terminal_no: req.terminal_no.clone(),
            sale_num: req.sale_num.clone(),
            status: OrderStatus::Paying,
            wallet_code: None,
            wallet_message: None,
            channel_ref: None,
            buyer: None,
            paid_at: None,
            wallet_created_at: now,
            // If this process dies during the wallet call, the closing loop takes over once
            // the call's budget has surely passed.
            next_check_at: Some(now + Duration::milliseconds(ms(budget)) + Duration::seconds(3)),
            request_digest,
            code_url: None,
            expires_at: None,
            call_back_url: None,
            refund_reserved: Money::new(0, req.amount.currency()),
            refunded: Money::new(0, req.amount.currency()),
            cancel_requested_at: None,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_order(&order).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return self.resent(&req, &order).await,
            Err(e) => return Err(e.into()),
        }
        tracing::info!(order.key = %order.key, merchant.id = %order.merchant_id, wallet = %code_wallet, "code payment started");

        let wallet_req = CodePaymentRequest {
            out_trade_no: order.key.clone(),
            amount: order.total(),
            auth_code,
            subject: req.merchant.name.clone(),
            terminal_id: req.terminal_no.clone(),
            client_ip: req.client_ip.clone(),
            created_at: order.wallet_created_at,
        };
        let started = Instant::now();
        // The POS is answered as soon as the order is settled by any path: the wallet's
        // answer, or its notification or a query (here or on another node) while the answer
        // is late or lost. Then the call is abandoned: the order is final, so its answer could
        // change nothing.
        let watching = self.settle_watch.watch(&order.key);
        let result = tokio::select! {
            biased;
            answered = tokio::time::timeout(budget, connector.pay_with_code(&wallet_req)) => {
                match answered {
                    Ok(r) => r,
                    Err(_) => Err(ConnectorError::OutcomeUnknown(format!(
                        "no answer within {budget:?}"
                    ))),
                }
            }
            settled = self.settled_meanwhile(&order.key, &watching.notify) => {
                self.event(&order.key, "pay", "settled_meanwhile".into(), None, started.elapsed())
                    .await;
                tracing::info!(order.key = %order.key, order.status = %settled.status, "code payment answered from its order, settled before the wallet's answer");
                return Ok(settled);
            }
        };
        drop(watching);
        let (outcome, wallet_code) = describe(&result, channel_status_name);
        let sent = format!("{} with a {} payment code", order.total(), code_wallet);
        // Written with the outcome, in one transaction.
        let event = self.wallet_event("pay", outcome, wallet_code, Some(sent), started.elapsed());

        let now = self.now();
        let policy = self.wallets.policy(code_wallet);
        let mut next = order.clone();
        next.updated_at = now;
        match &result {
            Ok(w) if w.status == ChannelStatus::Paid && paid_as_asked(&order, w, "pay answer") => {
                record_paid(&mut next, w, now)
            }
            Ok(w) => {
                next.status = match w.status {
                    ChannelStatus::PendingUser => OrderStatus::Pending,
                    _ => OrderStatus::Unknown,
                };
                next.channel_ref = w.channel_ref.clone();
                next.wallet_code = w.wallet_code.clone();
                next.wallet_message = w.wallet_message.clone();
                if w.status == ChannelStatus::Paid {
                    next.wallet_code = Some(AMOUNT_MISMATCH.into());
                }
                next.next_check_at = Some(now + policy.first_check);
            }
            Err(ConnectorError::Declined { code, message })
            | Err(ConnectorError::Rejected { code, message }) => {
                next.status = OrderStatus::Failed;
                next.wallet_code = Some(code.clone());
                next.wallet_message = Some(message.clone());
                next.next_check_at = None;
            }
            Err(ConnectorError::Unavailable(message)) => {
                // Nothing reached the wallet: the sale simply failed.
                next.status = OrderStatus::Failed;
                next.wallet_code = Some("UNAVAILABLE".into());
                next.wallet_message = Some(message.clone());
                next.next_check_at = None;
            }
            Err(ConnectorError::NotSupported(what)) => {
                next.status = OrderStatus::Failed;
                next.wallet_code = Some("NOT_SUPPORTED".into());
                next.wallet_message = Some((*what).to_owned());
                next.next_check_at = None;
            }
            Err(ConnectorError::Credentials(message)) => {
                tracing::error!(wallet = %code_wallet, error = %message, "wallet credentials refused");
                next.status = OrderStatus::Failed;
                next.wallet_code = Some("CREDENTIALS".into());
                next.wallet_message = Some("the gateway's wallet credentials were refused".into());
                next.next_check_at = None;
            }
            Err(ConnectorError::OutcomeUnknown(_)) | Err(ConnectorError::BadResponse(_)) => {
                next.status = OrderStatus::Unknown;
                next.next_check_at = Some(now + policy.first_check);
            }
        }
        // The wallet has been called: from here on, no error may reach the POS (it would read
        // "nothing was done" and take another code). If the outcome cannot be written, the
        // stored order is still `paying` and due for the closing loop: answer "processing".
        for attempt in 0..3u64 {
            match self
                .save_recorded(&order, next.clone(), None, Some(&event))
                .await
            {
                Ok(saved) => return Ok(saved),
                Err(e) => {
                    tracing::error!(order.key = %order.key, attempt, error = %e, "cannot record the wallet's answer; retrying");
                    tokio::time::sleep(StdDuration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
        Ok(order)
    }

    /// Resolves with the order once it is final in the store: woken at once when this node
    /// settles it, and polling every second for a settlement written by another node.
    async fn settled_meanwhile(&self, key: &str, woken: &tokio::sync::Notify) -> Order {
        loop {
            tokio::select! {
                () = woken.notified() => {}
                () = tokio::time::sleep(SETTLED_ELSEWHERE_POLL) => {}
            }
            if let Ok(Some(order)) = self.store.order(key).await {
                if order.status.is_final() {
                    return order;
                }
            }
        }
    }

    /// A request that clashes with a stored order: the same request again (a POS retry, a
    /// replayed envelope) gets its order's current state and never a second charge; another
    /// request with the same `order_id`, or the same payment code for another order, is refused.
    async fn resent(&self, req: &CodePayment, order: &Order) -> Result<Order, PaymentError> {
        if req.order_id.is_some() {
            if let Some(existing) = self
                .store
                .order_by_merchant_order_id(&order.merchant_id, &order.order_id)
                .await?
            {
                if existing.request_digest == order.request_digest {
                    return Ok(existing);
                }
                return Err(PaymentError::OrderUsed);
            }
        }
        match self
            .store
            .order_by_request_digest(&order.merchant_id, &order.request_digest)
            .await?
        {
            Some(existing) if req.order_id.is_none() || existing.order_id == order.order_id => {
                Ok(existing)
            }
            Some(existing) => Err(PaymentError::CodeAlreadyUsed(existing.order_id)),
            None => Err(PaymentError::OrderUsed),
        }
    }

    /// Writes `next` over `current` if nobody moved the order meanwhile (and, for the closing
    /// loop, only while `holder`'s claim runs); otherwise returns the order as it now stands.
    pub(crate) async fn save(
        &self,
        current: &Order,
        next: Order,
        holder: Option<&str>,
    ) -> Result<Order, PaymentError> {
        self.save_recorded(current, next, holder, None).await
    }

    /// [`Engine::save`], writing `event` (the wallet call behind the change) in the same
    /// transaction.
    pub(crate) async fn save_recorded(
        &self,
        current: &Order,
        next: Order,
        holder: Option<&str>,
        event: Option<&OrderEvent>,
    ) -> Result<Order, PaymentError> {
        current
            .status
            .transition(next.status)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        if self
            .store
            .update_order_recorded(&next, current.status, holder, self.now(), event)
            .await?
        {
            if next.status.is_final() {
                tracing::info!(order.key = %next.key, order.status = %next.status, wallet.code = ?next.wallet_code, "order settled");
                self.settle_watch.settled(&next.key);
            }
            return Ok(next);
        }
        Ok(self.store.order(&current.key).await?.unwrap_or(next))
    }

    pub(crate) async fn event(
        &self,
        key: &str,
        operation: &str,
        outcome: String,
        wallet_code: Option<String>,
        latency: StdDuration,
    ) {
        self.event_with(key, operation, outcome, wallet_code, None, latency)
            .await;
    }

    /// A wallet call for the timeline, counted in the request's wallet time; the caller
    /// writes it (with the state it led to, in one transaction).
    pub(crate) fn wallet_event(
        &self,
        operation: &str,
        outcome: String,
        wallet_code: Option<String>,
        detail: Option<String>,
        latency: StdDuration,
    ) -> OrderEvent {
        crate::timing::add(latency);
        OrderEvent {
            at: self.now(),
            operation: operation.to_owned(),
            outcome,
            wallet_code,
            detail,
            latency_ms: ms(latency),
            worker: Some(self.worker.to_string()),
        }
    }

    /// Records a wallet call with what was sent (`detail`: amounts, never a code or a key).
    pub(crate) async fn event_with(
        &self,
        key: &str,
        operation: &str,
        outcome: String,
        wallet_code: Option<String>,
        detail: Option<String>,
        latency: StdDuration,
    ) {
        crate::timing::add(latency);
        let event = OrderEvent {
            at: self.now(),
            operation: operation.to_owned(),
            outcome,
            wallet_code,
            detail,
            latency_ms: ms(latency),
            worker: Some(self.worker.to_string()),
        };
        if let Err(e) = self.store.add_order_event(key, &event).await {
            tracing::warn!(order.key = key, error = %e, "cannot record the wallet call on the order's timeline");
        }
    }

    /// The merchant's order, for STATUS_QUERY.
    pub async fn find_order(
        &self,
        merchant: &Merchant,
        order_id: &MerchantOrderId,
    ) -> Result<Option<Order>, EngineError> {
        Ok(self
            .store
            .order_by_merchant_order_id(&merchant.id, order_id)
            .await?)
    }

    /// An order's timeline of wallet calls.
    pub async fn order_timeline(&self, key: &str) -> Result<Vec<OrderEvent>, EngineError> {
        Ok(self.store.order_events(key).await?)
    }

    /// One round of the closing loop, to drain it in tests and tools: claims up to `limit`
    /// due orders, moves each one step (query, or reverse once its window has passed)
    /// concurrently, and waits for them. Returns how many it handled. Safe on several nodes at
    /// once: each order is claimed in the database with a lease that covers its next wallet
    /// call, and only the claim's holder may write it. `serve` runs
    /// [`Engine::run_closing_loop`] instead, which never waits for a round.
    pub async fn close_due_orders(&self, worker: &str, limit: usize) -> Result<usize, EngineError> {
        let mut in_flight = InFlight::new(crate::LoopBounds {
            per_lane: limit,
            total: limit,
        });
        let started = self.start_due_orders(worker, &mut in_flight).await;
        in_flight.all_finished().await;
        started
    }

    /// Asks the wallet what the order is, on the timeline.
    pub(crate) async fn query_logged(
        &self,
        order: &Order,
        connector: &dyn Connector,
        reference: &OrderRef,
    ) -> Result<ChannelOrder, ConnectorError> {
        let started = Instant::now();
        let result =
            match tokio::time::timeout(CALL_TIMEOUT, connector.query_order(reference)).await {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::OutcomeUnknown(
                    "no answer to the query".into(),
                )),
            };
        let (outcome, code) = describe(&result, channel_status_name);
        self.event(&order.key, "query", outcome, code, started.elapsed())
            .await;
        result
    }

    /// One closing-loop step on an order claimed under `lease`.
    pub(crate) async fn settle_step(
        &self,
        order: Order,
        lease: &mut Lease,
    ) -> Result<(), PaymentError> {
        let Some(connector) = self.wallets.connector(order.wallet).cloned() else {
            tracing::error!(order.key = %order.key, wallet = %order.wallet, "an open order's wallet is not configured; retrying in a minute");
            let mut next = order.clone();
            next.next_check_at = Some(self.now() + Duration::minutes(1));
            next.updated_at = self.now();
            self.save(&order, next, Some(&lease.holder)).await?;
            return Ok(());
        };
        let policy = self.wallets.policy(order.wallet);
        let reference = OrderRef {
            out_trade_no: order.key.clone(),
            created_at: order.wallet_created_at,
            channel_ref: order.channel_ref.clone(),
        };
        if order.mode == PaymentMode::Active {
            return self
                .settle_qr_step(order, lease, connector.as_ref(), policy, &reference)
                .await;
        }
        // Someone asked to cancel it: reversed now, as at the window's end.
        let window_over = self.now() >= order.wallet_created_at + policy.confirm_window
            || order.cancel_requested_at.is_some();
        if order.status == OrderStatus::Reversing {
            return self
                .reverse_step(&order, connector.as_ref(), &reference, policy, lease)
                .await;
        }

        // A query first, always: the customer may have just confirmed.
        if !self.cover_call(Leased::Order, &order.key, lease).await? {
            return Ok(());
        }
        let result = self
            .query_logged(&order, connector.as_ref(), &reference)
            .await;
        let now = self.now();
        let mut next = order.clone();
        next.updated_at = now;
        next.next_check_at = Some(now + policy.interval);
        match result {
            Ok(w) => match w.status {
                ChannelStatus::Paid if paid_as_asked(&order, &w, "query") => {
                    record_paid(&mut next, &w, now)
                }
                // Paid, says the wallet, but not what we asked: unknown to us; the window's
                // end reverses it like any order never confirmed as asked.
                ChannelStatus::Paid => {
                    next.status = OrderStatus::Unknown;
                    next.wallet_code = Some(AMOUNT_MISMATCH.into());
                }
                ChannelStatus::PendingUser => {
                    next.status = OrderStatus::Pending;
                    next.channel_ref = w.channel_ref.or(next.channel_ref);
                }
                ChannelStatus::Closed | ChannelStatus::Reversed => {
                    next.status = OrderStatus::Reversed;
                    next.wallet_code = w.wallet_code;
                    next.next_check_at = None;
                }
                // Not found, or failed: stay unknown until the window ends, then reverse to
                // be safe (`wallets.md` §1.4: "still reverse to be safe").
                ChannelStatus::Failed | ChannelStatus::Unknown => {
                    next.status = OrderStatus::Unknown;
                    next.wallet_code = w.wallet_code;
                }
            },
            Err(_) => next.status = OrderStatus::Unknown,
        }
        if window_over && !next.status.is_final() {
            // Write the decision first: from now on nobody may record this order as anything
            // but reversed (or paid, if the wallet refuses to reverse a paid order). If another
            // node or the request path moved it meanwhile, the write fails and nothing is sent.
            // The claim is kept (with a fresh lease) for the reversal; should this worker die
            // during it, the order is due again as soon as the claim is released or runs out.
            next.status = OrderStatus::Reversing;
            next.next_check_at = Some(now);
            order
                .status
                .transition(next.status)
                .map_err(|e| EngineError::Invalid(e.to_string()))?;
            let until = now + CLAIM_LEASE;
            if !self
                .store
                .update_order_held(&next, order.status, &lease.holder, now, until)
                .await?
            {
                return Ok(());
            }
            lease.until = until;
            return self
                .reverse_step(&next, connector.as_ref(), &reference, policy, lease)
                .await;
        }
        self.save(&order, next, Some(&lease.holder)).await?;
        Ok(())
    }

    /// Sends one reversal of an order claimed under `lease`.
    async fn reverse_step(
        &self,
        order: &Order,
        connector: &dyn Connector,
        reference: &OrderRef,
        policy: ClosingPolicy,
        lease: &mut Lease,
    ) -> Result<(), PaymentError> {
        if !self.cover_call(Leased::Order, &order.key, lease).await? {
            return Ok(());
        }
        let started = Instant::now();
        let result =
            match tokio::time::timeout(CALL_TIMEOUT, connector.reverse_order(reference)).await {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::OutcomeUnknown(
                    "no answer to the reversal".into(),
                )),
            };
        let (outcome, code) = describe(&result, |r: &ReverseOutcome| match r {
            ReverseOutcome::Done => ("reversed", None),
            ReverseOutcome::CallAgain => ("call_again", None),
        });
        self.event(&order.key, "reverse", outcome, code, started.elapsed())
            .await;
        let now = self.now();
        let mut next = order.clone();
        next.updated_at = now;
        let overdue = (now - order.wallet_created_at - policy.confirm_window)
            .num_seconds()
            .max(0);
        // Back off from `reverse_retry` towards a minute as the reversal drags on.
        let retry =
            (policy.reverse_retry + Duration::seconds(overdue / 10)).min(Duration::minutes(1));
        match result {
            Ok(ReverseOutcome::Done) => {
                next.status = OrderStatus::Reversed;
                next.next_check_at = None;
                tracing::info!(order.key = %order.key, "order reversed");
            }
            Ok(ReverseOutcome::CallAgain) => {
                next.status = OrderStatus::Reversing;
                next.next_check_at = Some(now + retry);
            }
            Err(e) => {
                // Refused, or no clear answer: ask the wallet what the order is now.
                let refused = match &e {
                    ConnectorError::Declined { code, .. } => Some(code.clone()),
                    _ => None,
                };
                if !self.cover_call(Leased::Order, &order.key, lease).await? {
                    return Ok(());
                }
                let q = self.query_logged(order, connector, reference).await;
                match q {
                    Ok(w)
                        if w.status == ChannelStatus::Paid && paid_as_asked(order, &w, "query") =>
                    {
                        // The customer paid and the wallet will not take it back: the sale
                        // stands, flagged, and the POS sees it paid.
                        tracing::error!(order.key = %order.key, error = %e, "the wallet did not reverse a paid order; it stays paid and is flagged");
                        record_paid(&mut next, &w, now);
                        next.wallet_code = Some(format!(
                            "PAID_NOT_REVERSED:{}",
                            refused.unwrap_or_else(|| "ERROR".into())
                        ));
                    }
                    Ok(w)
                        if matches!(w.status, ChannelStatus::Closed | ChannelStatus::Reversed)
                            || (refused.is_some()
                                && (w.status == ChannelStatus::Failed
                                    || unknown_to_the_wallet(&w))) =>
                    {
                        next.status = OrderStatus::Reversed;
                        next.wallet_code = refused.or(w.wallet_code);
                        next.next_check_at = None;
                    }
                    _ => {
                        tracing::warn!(order.key = %order.key, error = %e, "reversal not settled; retrying");
                        next.status = OrderStatus::Reversing;
                        next.next_check_at = Some(now + retry);
                    }
                }
            }
        }
        self.save(order, next, Some(&lease.holder)).await?;
        Ok(())
    }
}
