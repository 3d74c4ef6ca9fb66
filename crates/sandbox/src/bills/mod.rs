//! The wallet-agnostic side of daily bills (`shared/protocol/bills.md`): which bill day a
//! moment belongs to for each wallet, when a day's bill is created, fees and their rounding,
//! the entries of a day's bill computed from the sandbox's own trades and refunds, and the
//! differences ("breaks") the control API plants in them so that reconciliation can be tested.
//!
//! Each wallet module writes the entries in its own format and serves them through its own
//! download call (`wechat/bill.rs`, `alipay/bill.rs`, `unionpay/bill.rs`). Nothing here reads
//! the gateway's records: a bill is what the simulated wallet saw.
//!
//! A day's entries only look at events dated within that day, and are computed whenever the
//! bill is asked for: a reversal or refund on a later day lands in that later day's bill and
//! never changes an earlier one.

mod breaks;
pub(crate) mod gbk;
pub(crate) mod zip;

#[cfg(test)]
pub(crate) mod tests;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use crate::model::{RefundStatus, Trade, TradeKind, TradeStatus, Wallet};
use crate::state::State;

pub(crate) use breaks::{check_break, BreakError};
pub use breaks::{BillBreak, PlantedBreak};

/// The fee rate of a wallet until the control API sets another: 0.60%.
pub const DEFAULT_FEE_RATE_PPM: u32 = 6_000;

/// Beijing time (UTC+8, no daylight saving), in which every wallet dates its bills.
fn beijing_naive(at: DateTime<Utc>) -> chrono::NaiveDateTime {
    at.naive_utc() + Duration::hours(8)
}

fn from_beijing(naive: chrono::NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&(naive - Duration::hours(8)))
}

/// The bill day `at` belongs to: its Beijing date, except for UnionPay whose settlement day
/// closes at 23:00 Beijing (a trade at 23:30 belongs to the next `settleDate`).
pub fn bill_day(wallet: Wallet, at: DateTime<Utc>) -> NaiveDate {
    let local = beijing_naive(at);
    match wallet {
        Wallet::Unionpay => (local + Duration::hours(1)).date(),
        Wallet::Wechat | Wallet::Alipay => local.date(),
    }
}

/// The first instant of bill day `day`: 00:00 Beijing, or 23:00 Beijing of the day before for
/// UnionPay.
pub fn day_start(wallet: Wallet, day: NaiveDate) -> DateTime<Utc> {
    let midnight = from_beijing(day.and_time(NaiveTime::MIN));
    match wallet {
        Wallet::Unionpay => midnight - Duration::hours(1),
        Wallet::Wechat | Wallet::Alipay => midnight,
    }
}

/// When the bill of `day` is created: 09:00 Beijing the next day, for every wallet. WeChat
/// documents 09:00 (download advised after 10:00); Alipay advises downloading after about
/// 10:00; UnionPay's time is not documented. Before it, the download calls answer "not yet".
pub fn ready_at(day: NaiveDate) -> DateTime<Utc> {
    let next = day.succ_opt().unwrap_or(day);
    from_beijing(next.and_time(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN)))
}

/// `amount × rate`, rounded half up to the minor unit (every wallet charges whole fen).
pub fn fee_of(amount_minor: i64, rate_ppm: u32) -> i64 {
    let product = i128::from(amount_minor) * i128::from(rate_ppm);
    let rounded = if product >= 0 {
        (product + 500_000) / 1_000_000
    } else {
        (product - 500_000) / 1_000_000
    };
    i64::try_from(rounded).unwrap_or(0)
}

/// `part / whole` of `value`, rounded half up (a refund's share of a fee).
fn share(value: i64, part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 0;
    }
    let product = i128::from(value) * i128::from(part);
    let whole = i128::from(whole);
    let rounded = (2 * product + whole) / (2 * whole);
    i64::try_from(rounded).unwrap_or(0)
}

/// Parses a rate written as a percentage (`0.60`, `0.6`, `1`, `0.385`) into millionths of the
/// amount, with integer arithmetic only; at most four decimals, at most 100%.
pub fn parse_rate_percent(text: &str) -> Option<u32> {
    let text = text.trim().trim_end_matches('%');
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 3 || !digits(whole) || fraction.len() > 4 {
        return None;
    }
    if !digits(fraction) {
        return None;
    }
    let mut padded = fraction.to_owned();
    while padded.len() < 4 {
        padded.push('0');
    }
    let ppm = whole.parse::<u32>().ok()? * 10_000 + padded.parse::<u32>().ok()?;
    (ppm <= 1_000_000).then_some(ppm)
}

/// A rate in millionths as a percentage with at least two decimals (`6000` → `0.60`,
/// `3850` → `0.385`), as WeChat's bill writes it (with `%`).
pub fn format_rate_percent(rate_ppm: u32) -> String {
    let whole = rate_ppm / 10_000;
    let mut fraction = format!("{:04}", rate_ppm % 10_000);
    while fraction.len() > 2 && fraction.ends_with('0') {
        fraction.pop();
    }
    format!("{whole}.{fraction}")
}

/// Minor units as a decimal with two places and a sign when negative (`-2.34`).
pub fn format_major(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The currency a wallet's bill states amounts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillCurrency {
    /// The trade's pricing currency (WeChat's `fee_type`, Alipay's `trans_currency`): both
    /// settle with the merchant in it in the sandbox.
    Pricing,
    /// CNY, the currency UnionPay settles with the merchant in (`settleAmt`).
    Settlement,
}

pub fn bill_currency(wallet: Wallet) -> BillCurrency {
    match wallet {
        Wallet::Wechat | Wallet::Alipay => BillCurrency::Pricing,
        Wallet::Unionpay => BillCurrency::Settlement,
    }
}

/// Whether a refund gives back its share of the payment's fee. WeChat Pay and Alipay do;
/// for UnionPay the sandbox keeps the fee of a refunded (`S30`) consume (docs/SANDBOX.md,
/// "Bills"). A reversal (void) gives the whole remaining fee back everywhere.
pub fn refund_returns_fee(wallet: Wallet) -> bool {
    !matches!(wallet, Wallet::Unionpay)
}

/// What a bill entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A payment (WeChat `SUCCESS`, Alipay `交易`, UnionPay `S22`).
    Payment,
    /// A refund (WeChat `REFUND`, Alipay `退款`, UnionPay `S30`).
    Refund,
    /// A paid trade reversed (cancelled) later: its money went back (WeChat `REVOKED`,
    /// Alipay `退款` without a request number, UnionPay `S31`).
    Reversal,
}

/// The facts of a trade a bill row shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryTrade {
    pub out_trade_no: String,
    pub transaction_id: String,
    pub kind: TradeKind,
    pub subject: String,
    pub customer_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    /// The pricing currency and amount, and what the customer paid in CNY.
    pub pricing_currency: String,
    pub pricing_total: i64,
    pub cny_fen: i64,
    pub rate_e8: i64,
}

/// The facts of a refund a bill row shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryRefund {
    pub out_refund_no: String,
    pub refund_id: String,
    pub succeeded: bool,
    pub created_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
}

/// One row of a day's bill, in the wallet's bill currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillEntry {
    pub kind: EntryKind,
    /// The moment that dates the row (the payment, the refund, the reversal).
    pub at: DateTime<Utc>,
    pub trade: EntryTrade,
    pub refund: Option<EntryRefund>,
    /// ISO code of `amount`'s and `fee`'s currency.
    pub currency: String,
    /// The row's amount in minor units, positive: the payment, the refund, the reversed rest.
    pub amount: i64,
    /// The order's whole amount in the same currency.
    pub order_total: i64,
    /// The fee in minor units: charged (positive) on a payment, given back (positive too) on a
    /// refund or reversal. Each writer applies its wallet's sign convention.
    pub fee: i64,
    pub fee_rate_ppm: u32,
    /// A planted `status_closed` break: the bill says the trade was closed (WeChat
    /// `REVOKED`); wallets without such a status leave the row out instead.
    pub closed: bool,
    /// A row the sandbox never made (planted `extra_*` break).
    pub invented: bool,
}

fn entry_trade(trade: &Trade) -> EntryTrade {
    EntryTrade {
        out_trade_no: trade.out_trade_no.clone(),
        transaction_id: trade.transaction_id.clone(),
        kind: trade.kind,
        subject: trade.subject.clone(),
        customer_id: trade.customer_id.clone(),
        created_at: trade.created_at,
        paid_at: trade.paid_at,
        pricing_currency: trade.currency.clone(),
        pricing_total: trade.total,
        cny_fen: trade.cny_fen,
        rate_e8: trade.rate_e8,
    }
}

/// The moment that dates a refund in the bill: when it was asked for (WeChat counts refunds
/// still processing; Alipay's are immediate), but for UnionPay when it succeeded, the time its
/// `settleDate` is taken from.
pub fn refund_time(wallet: Wallet, refund: &crate::model::Refund) -> DateTime<Utc> {
    match wallet {
        Wallet::Unionpay => refund.succeeded_at.unwrap_or(refund.succeeds_at),
        Wallet::Wechat | Wallet::Alipay => refund.created_at,
    }
}

/// A trade's amount, and its refunds' amounts, in the wallet's bill currency.
fn bill_amounts(wallet: Wallet, trade: &Trade) -> (String, i64, Vec<i64>) {
    match bill_currency(wallet) {
        BillCurrency::Pricing => (
            trade.currency.clone(),
            trade.total,
            trade.refunds.iter().map(|r| r.amount).collect(),
        ),
        BillCurrency::Settlement => (
            "CNY".to_owned(),
            trade.cny_fen,
            trade.refunds.iter().map(|r| r.cny_fen).collect(),
        ),
    }
}

/// The rate a trade is billed at: the one recorded when it was paid, else the current one.
fn trade_rate(state: &State, trade: &Trade) -> u32 {
    trade
        .fee_rate_ppm
        .unwrap_or_else(|| state.fee_rate_ppm(trade.wallet))
}

/// The entries `trade` puts in the bill of `day` (before breaks).
fn trade_entries(state: &State, trade: &Trade, day: NaiveDate, out: &mut Vec<BillEntry>) {
    let wallet = trade.wallet;
    let Some(paid_at) = trade.paid_at else {
        return;
    };
    let (currency, total, refund_amounts) = bill_amounts(wallet, trade);
    let rate = trade_rate(state, trade);
    let fee = fee_of(total, rate);
    let base = |kind, at, amount, fee, refund| BillEntry {
        kind,
        at,
        trade: entry_trade(trade),
        refund,
        currency: currency.clone(),
        amount,
        order_total: total,
        fee,
        fee_rate_ppm: rate,
        closed: false,
        invented: false,
    };
    if bill_day(wallet, paid_at) == day {
        out.push(base(EntryKind::Payment, paid_at, total, fee, None));
    }
    // Refunds in the order they were made; the one that completes the total gives back the
    // rest of the fee, so a fully refunded trade costs no fee.
    let mut refunded = 0;
    let mut returned = 0;
    for (refund, amount) in trade.refunds.iter().zip(refund_amounts) {
        refunded += amount;
        let back = if !refund_returns_fee(wallet) {
            0
        } else if refunded >= total {
            fee - returned
        } else {
            share(fee, amount, total)
        };
        returned += back;
        let at = refund_time(wallet, refund);
        if bill_day(wallet, at) == day {
            let facts = EntryRefund {
                out_refund_no: refund.out_refund_no.clone(),
                refund_id: refund.refund_id.clone(),
                succeeded: refund.status == RefundStatus::Success,
                created_at: refund.created_at,
                succeeded_at: refund.succeeded_at,
            };
            out.push(base(EntryKind::Refund, at, amount, back, Some(facts)));
        }
    }
    if trade.status == TradeStatus::Revoked {
        if let Some(at) = trade.ended_at.filter(|e| bill_day(wallet, *e) == day) {
            let rest = total - refunded;
            if rest > 0 {
                out.push(base(EntryKind::Reversal, at, rest, fee - returned, None));
            }
        }
    }
}

/// The entries of `wallet`'s bill of `day` as the wallet recorded them, without breaks,
/// ordered by time then by order number.
pub fn natural_entries(state: &State, wallet: Wallet, day: NaiveDate) -> Vec<BillEntry> {
    let prefix = format!("{}/", wallet.as_str());
    let mut out = Vec::new();
    for (_, trade) in state
        .trades
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
    {
        trade_entries(state, trade, day, &mut out);
    }
    sort(&mut out);
    out
}

fn sort(entries: &mut [BillEntry]) {
    entries.sort_by(|a, b| {
        (a.at, &a.trade.out_trade_no, a.kind == EntryKind::Payment).cmp(&(
            b.at,
            &b.trade.out_trade_no,
            b.kind == EntryKind::Payment,
        ))
    });
}

/// The key breaks are stored under.
pub fn breaks_key(wallet: Wallet, day: NaiveDate) -> String {
    format!("{}/{}", wallet.as_str(), day.format("%Y-%m-%d"))
}

/// The entries of `wallet`'s bill of `day` with the planted breaks applied: those planted
/// for `day`, and the `next_day` ones planted for the day before (whose trades move here).
pub fn bill_entries(state: &State, wallet: Wallet, day: NaiveDate) -> Vec<BillEntry> {
    let mut entries = natural_entries(state, wallet, day);
    let empty = Vec::new();
    let planted = state
        .bill_breaks
        .get(&breaks_key(wallet, day))
        .unwrap_or(&empty);
    for planted in planted {
        breaks::apply(state, wallet, day, &planted.kind, &mut entries);
    }
    if let Some(before) = day.pred_opt() {
        if let Some(moved) = state.bill_breaks.get(&breaks_key(wallet, before)) {
            for planted in moved {
                if let BillBreak::NextDay { out_trade_no } = &planted.kind {
                    breaks::arrive_next_day(state, wallet, before, out_trade_no, &mut entries);
                }
            }
        }
    }
    sort(&mut entries);
    entries
}

/// Parses a bill day written `yyyy-MM-dd`.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time.
pub fn beijing_text(at: DateTime<Utc>) -> String {
    beijing_naive(at).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A Beijing wall-clock rendering of `at` in a `chrono` format.
pub fn beijing_format(at: DateTime<Utc>, format: &str) -> String {
    beijing_naive(at).format(format).to_string()
}

/// The current bill day of `wallet` (the one still open).
pub fn today(wallet: Wallet, now: DateTime<Utc>) -> NaiveDate {
    bill_day(wallet, now)
}
