//! The sandbox's state and the wallet-agnostic operations on it: charging codes, QR orders,
//! queries, reversals, closes and refunds. Time only moves forward, and a trade's pending
//! transitions (a password confirmed, a payment revoked, a QR expired, a refund finished) are
//! applied lazily whenever the trade is touched, and by the background tick.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::{
    Behaviour, Customer, Movement, MovementKind, Notification, PaymentCode, PaymentPassword,
    Refund, RefundStatus, Trade, TradeKind, TradeStatus, Wallet,
};

/// Fault knobs of one wallet, set through the control API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every answer of this wallet.
    pub latency_ms: u64,
    /// The next N requests are answered HTTP 500 without being processed.
    pub fail_next: u32,
    /// The next N requests are processed but never answered (the caller times out).
    pub drop_next: u32,
    /// The next N answers carry a wrong signature.
    pub bad_signature_next: u32,
    /// Each notification is delivered twice.
    pub duplicate_notifications: bool,
    /// Notifications are held back and delivered newest first.
    pub out_of_order_notifications: bool,
    /// Notifications carry a wrong signature.
    pub forged_notifications: bool,
    /// The next reversal answers "call again" without doing anything.
    pub reverse_call_again_next: u32,
    /// The next N answers or notifications that would say what a trade is for leave it out,
    /// signed as usual (a wallet's bug, or a message made to mislead): WeChat Pay without
    /// `total_fee`, Alipay without `total_amount`, UnionPay with `txnAmt` but without
    /// `currencyCode`.
    pub amountless_next: u32,
}

/// Per-wallet rules the core applies.
#[derive(Debug, Clone, Copy)]
pub struct WalletRules {
    /// A code payment still unconfirmed this long after the charge is revoked by the wallet.
    pub auto_revoke: Duration,
    /// Reversal is refused after this long.
    pub reverse_window: Duration,
    pub max_refunds: usize,
    pub refund_window: Duration,
    /// How long a refund stays processing before it succeeds (zero: synchronous).
    pub refund_delay: Duration,
    /// Gaps between notification deliveries (the first is immediate).
    pub notify_schedule: &'static [i64],
}

const WECHAT_SCHEDULE: [i64; 15] = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
];
const ALIPAY_SCHEDULE: [i64; 7] = [240, 600, 600, 3600, 7200, 21600, 54000];
const UNIONPAY_SCHEDULE: [i64; 5] = [60, 120, 240, 480, 960];

pub fn rules(wallet: Wallet) -> WalletRules {
    match wallet {
        Wallet::Wechat => WalletRules {
            auto_revoke: Duration::seconds(45),
            reverse_window: Duration::days(7),
            max_refunds: 50,
            refund_window: Duration::days(365),
            refund_delay: Duration::seconds(3),
            notify_schedule: &WECHAT_SCHEDULE,
        },
        Wallet::Alipay => WalletRules {
            auto_revoke: Duration::seconds(180),
            reverse_window: Duration::hours(24),
            max_refunds: 50,
            refund_window: Duration::days(365),
            refund_delay: Duration::zero(),
            notify_schedule: &ALIPAY_SCHEDULE,
        },
        Wallet::Unionpay => WalletRules {
            auto_revoke: Duration::seconds(60),
            reverse_window: Duration::hours(24),
            max_refunds: 50,
            refund_window: Duration::days(365),
            refund_delay: Duration::seconds(3),
            notify_schedule: &UNIONPAY_SCHEDULE,
        },
    }
}

/// The whole sandbox state; serialised to the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub seed: u64,
    pub customers: BTreeMap<String, Customer>,
    pub codes: BTreeMap<String, PaymentCode>,
    /// Keyed by `wallet/merchant/out_trade_no`.
    pub trades: BTreeMap<String, Trade>,
    /// QR token → trade key.
    pub qr_tokens: BTreeMap<String, String>,
    pub notifications: Vec<Notification>,
    /// Rates to CNY ×10^8 by ISO code.
    pub rates: BTreeMap<String, i64>,
    pub faults: BTreeMap<Wallet, Faults>,
    /// Each wallet's merchant accounts, as its module defines them.
    pub accounts: BTreeMap<Wallet, serde_json::Value>,
    pub next_id: u64,
    /// Each wallet's fee rate in millionths of the amount, when set through the control API
    /// (otherwise [`crate::bills::DEFAULT_FEE_RATE_PPM`]).
    #[serde(default)]
    pub fee_rates_ppm: BTreeMap<Wallet, u32>,
    /// Differences planted in bills, by `wallet/yyyy-MM-dd` (`crate::bills`).
    #[serde(default)]
    pub bill_breaks: BTreeMap<String, Vec<crate::bills::PlantedBreak>>,
    /// When old codes were last forgotten (not saved: the first mint after a start prunes).
    #[serde(skip)]
    pub codes_pruned_at: Option<DateTime<Utc>>,
}

fn key(wallet: Wallet, merchant: &str, out_trade_no: &str) -> String {
    format!("{}/{merchant}/{out_trade_no}", wallet.as_str())
}

/// Why a code payment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    CodeInvalid,
    CodeExpired,
    CodeUsed,
    InsufficientBalance,
}

/// What charging a code gave.
#[derive(Debug, Clone)]
pub enum PayCodeOutcome {
    Paid(Trade),
    UserPaying(Trade),
    Declined(Decline),
    /// Answer "system error", although the trade below was paid.
    SystemError(Trade),
    /// Answer nothing at all.
    NoAnswer,
    AlreadyPaid(Trade),
    AlreadyClosed(Trade),
    AlreadyRevoked(Trade),
    /// The same `out_trade_no` with different content.
    Conflict,
}

#[derive(Debug, Clone)]
pub struct PayCodeInput {
    pub wallet: Wallet,
    pub merchant: String,
    pub out_trade_no: String,
    pub currency: String,
    pub total: i64,
    pub auth_code: String,
    pub subject: String,
    pub notify_url: Option<String>,
    /// A digest of the request's business fields, for idempotency.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct QrInput {
    pub wallet: Wallet,
    pub merchant: String,
    pub out_trade_no: String,
    pub currency: String,
    pub total: i64,
    pub subject: String,
    pub notify_url: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub enum QrOutcome {
    Created(Trade),
    /// The same request again: the same order and QR.
    Existing(Trade),
    AlreadyPaid(Trade),
    AlreadyClosed(Trade),
    Conflict,
}

#[derive(Debug, Clone)]
pub enum ReverseOutcome {
    NotFound,
    /// Reversed now or before; `was_paid` tells whether money went back.
    Reversed {
        trade: Trade,
        was_paid: bool,
    },
    CallAgain,
    TooLate(Trade),
}

#[derive(Debug, Clone)]
pub enum CloseOutcome {
    NotFound,
    Closed(Trade),
    AlreadyClosed(Trade),
    Paid(Trade),
}

#[derive(Debug, Clone)]
pub struct RefundInput {
    pub wallet: Wallet,
    pub merchant: String,
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub amount: i64,
}

#[derive(Debug, Clone)]
pub enum RefundOutcome {
    /// `fund_change`: whether this call created the refund (false on a repeat).
    Accepted {
        trade: Trade,
        refund: Refund,
        fund_change: bool,
    },
    NotFound,
    NotPaid(Trade),
    /// The same refund number with another amount.
    Mismatch,
    Exceeds(Trade),
    TooMany,
    WindowPassed,
    InvalidAmount,
}

#[derive(Debug, Clone)]
pub enum PayQrOutcome {
    Paid(Trade),
    NotFound,
    AlreadyPaid(Trade),
    Closed(Trade),
    InsufficientBalance,
    UnknownCustomer,
    /// The password pad was given another password than the customer's; nothing moved.
    WrongPassword(Trade),
}

/// How long a payment code is remembered after it expired: charging it until then says
/// "expired", afterwards "invalid". Bounds the codes an open pay-by-code page keeps minting.
pub const CODE_MEMORY: Duration = Duration::days(1);

impl State {
    pub fn new(seed: u64) -> State {
        let mut rates = BTreeMap::new();
        // The sandbox's own rates to CNY ×10^8: plausible, fixed, and not the gateway's.
        rates.insert("CNY".to_owned(), 100_000_000);
        rates.insert("CAD".to_owned(), 520_000_000);
        rates.insert("USD".to_owned(), 710_000_000);
        State {
            seed,
            customers: BTreeMap::new(),
            codes: BTreeMap::new(),
            trades: BTreeMap::new(),
            qr_tokens: BTreeMap::new(),
            notifications: Vec::new(),
            rates,
            faults: BTreeMap::new(),
            accounts: BTreeMap::new(),
            next_id: 1,
            fee_rates_ppm: BTreeMap::new(),
            bill_breaks: BTreeMap::new(),
            codes_pruned_at: None,
        }
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Converts `total` minor units of `currency` to CNY fen at the sandbox's rate, rounding
    /// half up; `None` for an unknown currency.
    pub fn to_fen(&self, currency: &str, total: i64) -> Option<(i64, i64)> {
        let rate = *self.rates.get(currency)?;
        let fen = (i128::from(total) * i128::from(rate) + 50_000_000) / 100_000_000;
        Some((i64::try_from(fen).ok()?, rate))
    }

    /// The fee rate a trade of `wallet` paid now is charged, in millionths of the amount.
    pub fn fee_rate_ppm(&self, wallet: Wallet) -> u32 {
        self.fee_rates_ppm
            .get(&wallet)
            .copied()
            .unwrap_or(crate::bills::DEFAULT_FEE_RATE_PPM)
    }

    pub fn faults(&mut self, wallet: Wallet) -> &mut Faults {
        self.faults.entry(wallet).or_default()
    }

    pub fn add_customer(&mut self, name: &str, balance_fen: i64, now: DateTime<Utc>) -> Customer {
        let id = format!("c{:04}", self.next_id());
        let mut customer = Customer {
            id: id.clone(),
            name: name.to_owned(),
            balance_fen: 0,
            movements: Vec::new(),
            created_at: now,
            password: PaymentPassword::default(),
        };
        if balance_fen > 0 {
            move_money(&mut customer, balance_fen, MovementKind::TopUp, None, now);
        }
        self.customers.insert(id, customer.clone());
        customer
    }

    /// Mints a payment code in the wallet's real format (`wallets.md` §4).
    pub fn mint_code(
        &mut self,
        rng: &mut ChaCha8Rng,
        wallet: Wallet,
        customer_id: &str,
        behaviour: Behaviour,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Option<PaymentCode> {
        if !self.customers.contains_key(customer_id) {
            return None;
        }
        // Forgetting old codes walks them all: done at most once a minute, not per code.
        if self
            .codes_pruned_at
            .is_none_or(|at| now - at >= Duration::minutes(1))
        {
            self.codes.retain(|_, c| c.expires_at + CODE_MEMORY > now);
            self.codes_pruned_at = Some(now);
        }
        let code = loop {
            let candidate = match wallet {
                // 18 digits starting 10–15.
                Wallet::Wechat => format!("1{}{}", rng.gen_range(0..=5), digits(rng, 16)),
                // 18 digits starting 25–30 (Alipay allows 16–24).
                Wallet::Alipay => {
                    let prefix = rng.gen_range(25..=30);
                    format!("{prefix}{}", digits(rng, 16))
                }
                // 19 digits starting 62.
                Wallet::Unionpay => format!("62{}", digits(rng, 17)),
            };
            if !self.codes.contains_key(&candidate) {
                break candidate;
            }
        };
        let expires_at = if behaviour == Behaviour::Expired {
            now
        } else {
            now + ttl
        };
        let minted = PaymentCode {
            code: code.clone(),
            wallet,
            customer_id: customer_id.to_owned(),
            behaviour,
            minted_at: now,
            expires_at,
            used: false,
        };
        self.codes.insert(code, minted.clone());
        Some(minted)
    }

    fn new_transaction_id(
        &mut self,
        rng: &mut ChaCha8Rng,
        wallet: Wallet,
        now: DateTime<Utc>,
    ) -> String {
        // The wallets date their ids in Beijing time, as they date their bills: a trade paid
        // at 00:30 Beijing carries that day's date, not UTC's day before.
        let local = now + Duration::hours(8);
        let stamp = local.format("%Y%m%d").to_string();
        match wallet {
            Wallet::Wechat => format!("4200{}{}", stamp, digits(rng, 16)),
            Wallet::Alipay => format!("{}22{}", stamp, digits(rng, 18)),
            Wallet::Unionpay => format!("{}{}", local.format("%m%d%H%M%S"), digits(rng, 11)),
        }
    }

    /// Applies every pending transition that is due by `now`; tells whether anything changed.
    pub fn settle_all(&mut self, now: DateTime<Utc>) -> bool {
        // Only trades with a transition due are looked at: the others would not change, and
        // cloning every trade on every tick grew with the sandbox's history (it was most of
        // the sandbox's CPU under the load bench).
        let keys: Vec<String> = self
            .trades
            .iter()
            .filter(|(_, t)| t.has_transition_due(now))
            .map(|(k, _)| k.clone())
            .collect();
        let before = self.notifications.len();
        let mut changed = false;
        for k in keys {
            let old = self.trades.get(&k).cloned();
            self.settle(&k, now);
            changed |= self.trades.get(&k) != old.as_ref();
        }
        changed || self.notifications.len() != before
    }

    fn settle(&mut self, key: &str, now: DateTime<Utc>) {
        let Some(trade) = self.trades.get(key).cloned() else {
            return;
        };
        let mut trade = trade;
        let mut paid_now = false;
        if trade.status == TradeStatus::UserPaying {
            let confirm = trade
                .confirm_at
                .filter(|c| *c <= now && trade.revoke_at.is_none_or(|r| *c < r));
            if let Some(at) = confirm {
                let customer_id = trade.customer_id.clone().unwrap_or_default();
                if self.debit(&customer_id, &trade, at) {
                    trade.status = TradeStatus::Success;
                    trade.paid_at = Some(at);
                    trade.fee_rate_ppm = Some(self.fee_rate_ppm(trade.wallet));
                    paid_now = true;
                } else {
                    trade.status = TradeStatus::PayError;
                    trade.ended_at = Some(at);
                }
            } else if let Some(at) = trade.revoke_at.filter(|r| *r <= now) {
                trade.status = TradeStatus::Revoked;
                trade.ended_at = Some(at);
            }
        }
        if trade.status == TradeStatus::NotPay {
            if let Some(at) = trade.expires_at.filter(|e| *e <= now) {
                trade.status = TradeStatus::Closed;
                trade.ended_at = Some(at);
            }
        }
        let customer = trade.customer_id.clone();
        for refund in trade.refunds.iter_mut() {
            if refund.status == RefundStatus::Processing && refund.succeeds_at <= now {
                refund.status = RefundStatus::Success;
                refund.succeeded_at = Some(refund.succeeds_at);
                if let Some(c) = customer.as_deref().and_then(|c| self.customers.get_mut(c)) {
                    let at = refund.succeeds_at;
                    let mut r = Movement {
                        at,
                        amount_fen: refund.cny_fen,
                        balance_after_fen: 0,
                        kind: MovementKind::Refund,
                        wallet: Some(trade.wallet),
                        merchant: Some(trade.merchant.clone()),
                        out_trade_no: Some(trade.out_trade_no.clone()),
                        reference: Some(refund.out_refund_no.clone()),
                    };
                    c.balance_fen += refund.cny_fen;
                    r.balance_after_fen = c.balance_fen;
                    c.movements.push(r);
                }
            }
        }
        if paid_now {
            self.queue_notification(&trade, now);
        }
        self.trades.insert(key.to_owned(), trade);
    }

    /// Takes the trade's CNY amount from the customer; false when the balance is short.
    fn debit(&mut self, customer_id: &str, trade: &Trade, at: DateTime<Utc>) -> bool {
        let Some(customer) = self.customers.get_mut(customer_id) else {
            return false;
        };
        if customer.balance_fen < trade.cny_fen {
            return false;
        }
        let mut m = Movement {
            at,
            amount_fen: -trade.cny_fen,
            balance_after_fen: 0,
            kind: MovementKind::Payment,
            wallet: Some(trade.wallet),
            merchant: Some(trade.merchant.clone()),
            out_trade_no: Some(trade.out_trade_no.clone()),
            reference: Some(trade.transaction_id.clone()),
        };
        customer.balance_fen -= trade.cny_fen;
        m.balance_after_fen = customer.balance_fen;
        customer.movements.push(m);
        true
    }

    fn queue_notification(&mut self, trade: &Trade, now: DateTime<Utc>) {
        let Some(url) = trade.notify_url.clone() else {
            return;
        };
        let id = self.next_id();
        self.notifications.push(Notification {
            id,
            wallet: trade.wallet,
            merchant: trade.merchant.clone(),
            out_trade_no: trade.out_trade_no.clone(),
            url,
            attempts: 0,
            next_at: now,
            delivered: false,
            log: Vec::new(),
            forged: false,
        });
    }

    /// The trade, with due transitions applied.
    pub fn trade(
        &mut self,
        wallet: Wallet,
        merchant: &str,
        out_trade_no: &str,
        now: DateTime<Utc>,
    ) -> Option<Trade> {
        let k = key(wallet, merchant, out_trade_no);
        self.settle(&k, now);
        self.trades.get(&k).cloned()
    }

    /// Finds a trade by the wallet's own id.
    pub fn trade_by_transaction_id(
        &mut self,
        wallet: Wallet,
        merchant: &str,
        transaction_id: &str,
        now: DateTime<Utc>,
    ) -> Option<Trade> {
        let out_trade_no = self
            .trades
            .values()
            .find(|t| {
                t.wallet == wallet && t.merchant == merchant && t.transaction_id == transaction_id
            })
            .map(|t| t.out_trade_no.clone())?;
        self.trade(wallet, merchant, &out_trade_no, now)
    }

    pub fn pay_code(
        &mut self,
        rng: &mut ChaCha8Rng,
        input: PayCodeInput,
        now: DateTime<Utc>,
    ) -> PayCodeOutcome {
        let k = key(input.wallet, &input.merchant, &input.out_trade_no);
        if let Some(existing) = self.trade(input.wallet, &input.merchant, &input.out_trade_no, now)
        {
            if existing.fingerprint != input.fingerprint || existing.kind != TradeKind::Code {
                return PayCodeOutcome::Conflict;
            }
            return match existing.status {
                TradeStatus::Success => PayCodeOutcome::AlreadyPaid(existing),
                TradeStatus::Closed => PayCodeOutcome::AlreadyClosed(existing),
                TradeStatus::Revoked => PayCodeOutcome::AlreadyRevoked(existing),
                TradeStatus::UserPaying | TradeStatus::NotPay => {
                    PayCodeOutcome::UserPaying(existing)
                }
                TradeStatus::PayError => PayCodeOutcome::Declined(Decline::InsufficientBalance),
            };
        }
        let Some(code) = self.codes.get(&input.auth_code).cloned() else {
            return PayCodeOutcome::Declined(Decline::CodeInvalid);
        };
        if code.wallet != input.wallet {
            return PayCodeOutcome::Declined(Decline::CodeInvalid);
        }
        if code.used {
            return PayCodeOutcome::Declined(Decline::CodeUsed);
        }
        if code.expires_at <= now {
            return PayCodeOutcome::Declined(Decline::CodeExpired);
        }
        if code.behaviour == (Behaviour::Timeout { paid: false }) {
            // The request is lost before the wallet: nothing is created, the code stays unused.
            return PayCodeOutcome::NoAnswer;
        }
        let Some((cny_fen, rate_e8)) = self.to_fen(&input.currency, input.total) else {
            return PayCodeOutcome::Declined(Decline::CodeInvalid);
        };
        if let Some(c) = self.codes.get_mut(&input.auth_code) {
            c.used = true;
        }
        let rules = rules(input.wallet);
        let transaction_id = self.new_transaction_id(rng, input.wallet, now);
        let mut trade = Trade {
            wallet: input.wallet,
            merchant: input.merchant,
            out_trade_no: input.out_trade_no,
            transaction_id,
            kind: TradeKind::Code,
            currency: input.currency,
            total: input.total,
            cny_fen,
            rate_e8,
            subject: input.subject,
            status: TradeStatus::UserPaying,
            customer_id: Some(code.customer_id.clone()),
            scanned: true,
            qr_token: None,
            behaviour: Some(code.behaviour),
            confirm_at: None,
            revoke_at: Some(now + rules.auto_revoke),
            notify_url: input.notify_url,
            fingerprint: input.fingerprint,
            created_at: now,
            expires_at: None,
            paid_at: None,
            ended_at: None,
            refunds: Vec::new(),
            fee_rate_ppm: None,
        };
        let outcome = match code.behaviour {
            Behaviour::Password { after_secs } => {
                trade.confirm_at = Some(now + Duration::seconds(i64::from(after_secs)));
                self.trades.insert(k.clone(), trade);
                // A confirmation due at once (0 s) is applied now.
                self.settle(&k, now);
                let t = self.trades.get(&k).cloned();
                return match t {
                    Some(t) if t.status == TradeStatus::Success => PayCodeOutcome::Paid(t),
                    Some(t) => PayCodeOutcome::UserPaying(t),
                    None => PayCodeOutcome::NoAnswer,
                };
            }
            Behaviour::NeverConfirm => {
                self.trades.insert(k.clone(), trade.clone());
                return PayCodeOutcome::UserPaying(trade);
            }
            Behaviour::InsufficientBalance => {
                trade.status = TradeStatus::PayError;
                trade.revoke_at = None;
                trade.ended_at = Some(now);
                PayCodeOutcome::Declined(Decline::InsufficientBalance)
            }
            Behaviour::Expired => PayCodeOutcome::Declined(Decline::CodeExpired),
            Behaviour::Instant | Behaviour::SystemError | Behaviour::Timeout { .. } => {
                let customer = code.customer_id.clone();
                if self.debit(&customer, &trade, now) {
                    trade.status = TradeStatus::Success;
                    trade.paid_at = Some(now);
                    trade.fee_rate_ppm = Some(self.fee_rate_ppm(trade.wallet));
                    trade.revoke_at = None;
                    match code.behaviour {
                        Behaviour::SystemError => PayCodeOutcome::SystemError(trade.clone()),
                        Behaviour::Timeout { .. } => PayCodeOutcome::NoAnswer,
                        _ => PayCodeOutcome::Paid(trade.clone()),
                    }
                } else {
                    trade.status = TradeStatus::PayError;
                    trade.revoke_at = None;
                    trade.ended_at = Some(now);
                    PayCodeOutcome::Declined(Decline::InsufficientBalance)
                }
            }
        };
        if code.behaviour != Behaviour::Expired {
            if trade.status == TradeStatus::Success {
                self.queue_notification(&trade, now);
            }
            self.trades.insert(k, trade);
        }
        outcome
    }

    pub fn create_qr(
        &mut self,
        rng: &mut ChaCha8Rng,
        input: QrInput,
        now: DateTime<Utc>,
    ) -> QrOutcome {
        let k = key(input.wallet, &input.merchant, &input.out_trade_no);
        if let Some(existing) = self.trade(input.wallet, &input.merchant, &input.out_trade_no, now)
        {
            if existing.fingerprint != input.fingerprint || existing.kind != TradeKind::Qr {
                return QrOutcome::Conflict;
            }
            return match existing.status {
                TradeStatus::Success => QrOutcome::AlreadyPaid(existing),
                TradeStatus::NotPay => QrOutcome::Existing(existing),
                _ => QrOutcome::AlreadyClosed(existing),
            };
        }
        let Some((cny_fen, rate_e8)) = self.to_fen(&input.currency, input.total) else {
            return QrOutcome::Conflict;
        };
        let token = loop {
            let t: String = (0..20)
                .map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[rng.gen_range(0..32)]))
                .collect();
            if !self.qr_tokens.contains_key(&t) {
                break t;
            }
        };
        let transaction_id = self.new_transaction_id(rng, input.wallet, now);
        let trade = Trade {
            wallet: input.wallet,
            merchant: input.merchant,
            out_trade_no: input.out_trade_no,
            transaction_id,
            kind: TradeKind::Qr,
            currency: input.currency,
            total: input.total,
            cny_fen,
            rate_e8,
            subject: input.subject,
            status: TradeStatus::NotPay,
            customer_id: None,
            scanned: false,
            qr_token: Some(token.clone()),
            behaviour: None,
            confirm_at: None,
            revoke_at: None,
            notify_url: input.notify_url,
            fingerprint: input.fingerprint,
            created_at: now,
            expires_at: Some(input.expires_at),
            paid_at: None,
            ended_at: None,
            refunds: Vec::new(),
            fee_rate_ppm: None,
        };
        self.qr_tokens.insert(token, k.clone());
        self.trades.insert(k, trade.clone());
        QrOutcome::Created(trade)
    }

    pub fn trade_by_token(&mut self, token: &str, now: DateTime<Utc>) -> Option<Trade> {
        let k = self.qr_tokens.get(token)?.clone();
        self.settle(&k, now);
        self.trades.get(&k).cloned()
    }

    /// A customer scans the QR: the trade becomes visible (Alipay creates it only now).
    pub fn scan_qr(&mut self, token: &str, now: DateTime<Utc>) -> Option<Trade> {
        let k = self.qr_tokens.get(token)?.clone();
        self.settle(&k, now);
        let trade = self.trades.get_mut(&k)?;
        trade.scanned = true;
        Some(trade.clone())
    }

    pub fn pay_qr(&mut self, token: &str, customer_id: &str, now: DateTime<Utc>) -> PayQrOutcome {
        let Some(k) = self.qr_tokens.get(token).cloned() else {
            return PayQrOutcome::NotFound;
        };
        if !self.customers.contains_key(customer_id) {
            return PayQrOutcome::UnknownCustomer;
        }
        self.settle(&k, now);
        let Some(mut trade) = self.trades.get(&k).cloned() else {
            return PayQrOutcome::NotFound;
        };
        match trade.status {
            TradeStatus::Success => return PayQrOutcome::AlreadyPaid(trade),
            TradeStatus::NotPay => {}
            _ => return PayQrOutcome::Closed(trade),
        }
        trade.customer_id = Some(customer_id.to_owned());
        trade.scanned = true;
        if !self.debit(customer_id, &trade, now) {
            return PayQrOutcome::InsufficientBalance;
        }
        trade.status = TradeStatus::Success;
        trade.paid_at = Some(now);
        trade.fee_rate_ppm = Some(self.fee_rate_ppm(trade.wallet));
        self.queue_notification(&trade, now);
        self.trades.insert(k, trade.clone());
        PayQrOutcome::Paid(trade)
    }

    /// Pays a QR order as the customer's phone does: the password pad's `password` must be the
    /// customer's. A QR that can no longer be paid says so before any password is checked,
    /// as the wallets' apps do; a wrong password moves nothing.
    pub fn pay_qr_with_password(
        &mut self,
        token: &str,
        customer_id: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> PayQrOutcome {
        let Some(k) = self.qr_tokens.get(token).cloned() else {
            return PayQrOutcome::NotFound;
        };
        let Some(customer) = self.customers.get(customer_id) else {
            return PayQrOutcome::UnknownCustomer;
        };
        let right = customer.password.matches(password);
        self.settle(&k, now);
        let Some(trade) = self.trades.get(&k).cloned() else {
            return PayQrOutcome::NotFound;
        };
        match trade.status {
            TradeStatus::Success => PayQrOutcome::AlreadyPaid(trade),
            TradeStatus::NotPay if !right => PayQrOutcome::WrongPassword(trade),
            TradeStatus::NotPay => self.pay_qr(token, customer_id, now),
            TradeStatus::UserPaying
            | TradeStatus::Closed
            | TradeStatus::Revoked
            | TradeStatus::PayError => PayQrOutcome::Closed(trade),
        }
    }

    /// Sets a customer's payment password; false for an unknown customer.
    pub fn set_password(&mut self, customer_id: &str, password: PaymentPassword) -> bool {
        match self.customers.get_mut(customer_id) {
            Some(c) => {
                c.password = password;
                true
            }
            None => false,
        }
    }

    /// The trade as it is stored, without applying due transitions (for display).
    pub fn peek_trade(&self, wallet: Wallet, merchant: &str, out_trade_no: &str) -> Option<&Trade> {
        self.trades.get(&key(wallet, merchant, out_trade_no))
    }

    pub fn reverse(
        &mut self,
        wallet: Wallet,
        merchant: &str,
        out_trade_no: &str,
        now: DateTime<Utc>,
    ) -> ReverseOutcome {
        {
            let faults = self.faults(wallet);
            if faults.reverse_call_again_next > 0 {
                faults.reverse_call_again_next -= 1;
                return ReverseOutcome::CallAgain;
            }
        }
        let k = key(wallet, merchant, out_trade_no);
        let Some(mut trade) = self.trade(wallet, merchant, out_trade_no, now) else {
            return ReverseOutcome::NotFound;
        };
        // Repeating a reversal that is done always succeeds, even after the window.
        if matches!(trade.status, TradeStatus::Revoked | TradeStatus::Closed) {
            let was_paid = trade.paid_at.is_some();
            return ReverseOutcome::Reversed { trade, was_paid };
        }
        if now - trade.created_at > rules(wallet).reverse_window {
            return ReverseOutcome::TooLate(trade);
        }
        let was_paid = match trade.status {
            TradeStatus::Revoked | TradeStatus::Closed => {
                return ReverseOutcome::Reversed {
                    was_paid: trade.paid_at.is_some(),
                    trade,
                }
            }
            TradeStatus::Success => {
                let back = trade.cny_fen - trade.refunded_fen();
                if let Some(c) = trade
                    .customer_id
                    .as_deref()
                    .and_then(|c| self.customers.get_mut(c))
                {
                    c.balance_fen += back;
                    let balance_after_fen = c.balance_fen;
                    c.movements.push(Movement {
                        at: now,
                        amount_fen: back,
                        balance_after_fen,
                        kind: MovementKind::Reversal,
                        wallet: Some(wallet),
                        merchant: Some(merchant.to_owned()),
                        out_trade_no: Some(out_trade_no.to_owned()),
                        reference: Some(trade.transaction_id.clone()),
                    });
                }
                true
            }
            TradeStatus::UserPaying | TradeStatus::NotPay | TradeStatus::PayError => false,
        };
        trade.status = TradeStatus::Revoked;
        trade.ended_at = Some(now);
        trade.confirm_at = None;
        self.trades.insert(k, trade.clone());
        ReverseOutcome::Reversed { trade, was_paid }
    }

    pub fn close(
        &mut self,
        wallet: Wallet,
        merchant: &str,
        out_trade_no: &str,
        now: DateTime<Utc>,
    ) -> CloseOutcome {
        let k = key(wallet, merchant, out_trade_no);
        let Some(mut trade) = self.trade(wallet, merchant, out_trade_no, now) else {
            return CloseOutcome::NotFound;
        };
        match trade.status {
            TradeStatus::Success => CloseOutcome::Paid(trade),
            TradeStatus::Closed | TradeStatus::Revoked | TradeStatus::PayError => {
                CloseOutcome::AlreadyClosed(trade)
            }
            TradeStatus::NotPay | TradeStatus::UserPaying => {
                trade.status = TradeStatus::Closed;
                trade.ended_at = Some(now);
                trade.confirm_at = None;
                self.trades.insert(k, trade.clone());
                CloseOutcome::Closed(trade)
            }
        }
    }

    pub fn refund(
        &mut self,
        rng: &mut ChaCha8Rng,
        input: RefundInput,
        now: DateTime<Utc>,
    ) -> RefundOutcome {
        let k = key(input.wallet, &input.merchant, &input.out_trade_no);
        let Some(mut trade) = self.trade(input.wallet, &input.merchant, &input.out_trade_no, now)
        else {
            return RefundOutcome::NotFound;
        };
        if let Some(existing) = trade
            .refunds
            .iter()
            .find(|r| r.out_refund_no == input.out_refund_no)
        {
            if existing.amount != input.amount {
                return RefundOutcome::Mismatch;
            }
            let refund = existing.clone();
            return RefundOutcome::Accepted {
                trade,
                refund,
                fund_change: false,
            };
        }
        if trade.status != TradeStatus::Success {
            return RefundOutcome::NotPaid(trade);
        }
        if input.amount <= 0 {
            return RefundOutcome::InvalidAmount;
        }
        let rules = rules(input.wallet);
        if trade.paid_at.is_some_and(|p| now - p > rules.refund_window) {
            return RefundOutcome::WindowPassed;
        }
        if trade.refunds.len() >= rules.max_refunds {
            return RefundOutcome::TooMany;
        }
        let already = trade.refunded();
        if already + input.amount > trade.total {
            return RefundOutcome::Exceeds(trade);
        }
        // The customer gets back the same share of what they paid; the last refund takes the
        // remainder, so a full refund returns exactly what was paid.
        let cny_fen = if already + input.amount == trade.total {
            trade.cny_fen - trade.refunded_fen()
        } else {
            let share = i128::from(trade.cny_fen) * i128::from(input.amount)
                / i128::from(trade.total.max(1));
            i64::try_from(share).unwrap_or(0)
        };
        let refund_id = match input.wallet {
            // A UnionPay refund's id is its `queryId`: 21 characters like every `queryId`
            // (Beijing `MMddHHmmss` and 11 digits), which the bill's fixed-width field holds.
            Wallet::Unionpay => format!(
                "{}{}",
                (now + Duration::hours(8)).format("%m%d%H%M%S"),
                digits(rng, 11)
            ),
            Wallet::Wechat | Wallet::Alipay => {
                let local = now + Duration::hours(8);
                format!("50{}{}", local.format("%Y%m%d"), digits(rng, 14))
            }
        };
        let refund = Refund {
            out_refund_no: input.out_refund_no,
            refund_id,
            amount: input.amount,
            cny_fen,
            status: RefundStatus::Processing,
            created_at: now,
            succeeds_at: now + rules.refund_delay,
            succeeded_at: None,
        };
        trade.refunds.push(refund);
        self.trades.insert(k.clone(), trade);
        // A synchronous wallet's refund completes at once.
        self.settle(&k, now);
        let trade = self.trades.get(&k).cloned();
        match trade {
            Some(trade) => {
                let refund = trade.refunds.last().cloned();
                match refund {
                    Some(refund) => RefundOutcome::Accepted {
                        trade,
                        refund,
                        fund_change: true,
                    },
                    None => RefundOutcome::NotFound,
                }
            }
            None => RefundOutcome::NotFound,
        }
    }
}

fn move_money(
    customer: &mut Customer,
    amount_fen: i64,
    kind: MovementKind,
    wallet: Option<Wallet>,
    now: DateTime<Utc>,
) {
    customer.balance_fen += amount_fen;
    customer.movements.push(Movement {
        at: now,
        amount_fen,
        balance_after_fen: customer.balance_fen,
        kind,
        wallet,
        merchant: None,
        out_trade_no: None,
        reference: None,
    });
}

pub fn top_up(customer: &mut Customer, amount_fen: i64, now: DateTime<Utc>) {
    move_money(customer, amount_fen, MovementKind::TopUp, None, now);
}

/// `n` random decimal digits.
pub fn digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}
