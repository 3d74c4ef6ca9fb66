//! Planted breaks: differences between a bill and the sandbox's own record of the day, one
//! kind for each difference a real bill can carry (`docs/SANDBOX.md`, "Planted breaks").
//! A break is planted for a wallet and a bill day, names its target by the merchant's numbers
//! (`out_trade_no`, `out_refund_no`), and changes only what that day's bill says: the trades
//! and refunds themselves, their queries and notifications are untouched.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    bill_amounts, bill_currency, bill_day, day_start, entry_trade, fee_of, from_beijing,
    natural_entries, refund_returns_fee, share, BillCurrency, BillEntry, EntryKind, EntryRefund,
    EntryTrade,
};
use crate::model::{Trade, TradeKind, Wallet};
use crate::state::State;

/// One kind of difference, with its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BillBreak {
    /// The trade's payment is left out of the bill.
    MissingTrade { out_trade_no: String },
    /// The bill has a payment the sandbox never made, under an invented order number;
    /// `amount` in minor units of the bill's currency (`currency`: WeChat and Alipay bills
    /// are in the pricing currency, CNY by default; UnionPay's are always CNY).
    ExtraTrade {
        out_trade_no: String,
        amount: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currency: Option<String>,
    },
    /// The payment's amount in the bill is `amount` (minor units) instead of the real one.
    Amount { out_trade_no: String, amount: i64 },
    /// The bill shows paid a trade the sandbox closed, reversed or never saw paid: a payment
    /// row for an unpaid trade of that day, or no reversal row for one reversed that day.
    StatusPaid { out_trade_no: String },
    /// The bill says a paid trade was closed: WeChat shows it `REVOKED`; Alipay and UnionPay,
    /// which have no such status, leave it out.
    StatusClosed { out_trade_no: String },
    /// The payment's fee in the bill is `fee` (minor units) instead of the real one.
    Fee { out_trade_no: String, fee: i64 },
    /// The refund is left out of the bill.
    MissingRefund { out_refund_no: String },
    /// The bill has a refund of a real trade that the sandbox never made.
    ExtraRefund {
        out_trade_no: String,
        out_refund_no: String,
        amount: i64,
    },
    /// The payment is dated just after the day's end: it leaves this day's bill and appears
    /// in the next day's.
    NextDay { out_trade_no: String },
}

/// A break as stored and listed: its id (for `DELETE`) and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlantedBreak {
    pub id: u64,
    #[serde(flatten)]
    pub kind: BillBreak,
}

/// Why a break cannot be planted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BreakError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotInBill(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

fn find_trade<'a>(state: &'a State, wallet: Wallet, out_trade_no: &str) -> Option<&'a Trade> {
    let prefix = format!("{}/", wallet.as_str());
    state
        .trades
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, t)| t)
        .find(|t| t.out_trade_no == out_trade_no)
}

fn refund_exists(state: &State, wallet: Wallet, out_refund_no: &str) -> bool {
    state
        .trades
        .values()
        .any(|t| t.wallet == wallet && t.refunds.iter().any(|r| r.out_refund_no == out_refund_no))
}

fn has(entries: &[BillEntry], kind: EntryKind, out_trade_no: &str) -> bool {
    entries
        .iter()
        .any(|e| e.kind == kind && e.trade.out_trade_no == out_trade_no)
}

/// Checks that `b` makes sense for `wallet`'s bill of `day`: its target exists and is (or,
/// for invented rows, is not) in that bill.
pub(crate) fn check_break(
    state: &State,
    wallet: Wallet,
    day: NaiveDate,
    b: &BillBreak,
) -> Result<(), BreakError> {
    let natural = natural_entries(state, wallet, day);
    let day_text = day.format("%Y-%m-%d");
    let trade = |no: &str| {
        find_trade(state, wallet, no)
            .ok_or_else(|| BreakError::NotFound(format!("no {} trade {no}", wallet.as_str())))
    };
    let paid_in_bill = |no: &str| -> Result<(), BreakError> {
        trade(no)?;
        if has(&natural, EntryKind::Payment, no) {
            Ok(())
        } else {
            Err(BreakError::NotInBill(format!(
                "trade {no} was not paid on bill day {day_text}"
            )))
        }
    };
    match b {
        BillBreak::MissingTrade { out_trade_no }
        | BillBreak::StatusClosed { out_trade_no }
        | BillBreak::NextDay { out_trade_no } => paid_in_bill(out_trade_no),
        BillBreak::Amount {
            out_trade_no,
            amount,
        } => {
            if *amount <= 0 {
                return Err(BreakError::Invalid("amount must be positive".to_owned()));
            }
            paid_in_bill(out_trade_no)
        }
        BillBreak::Fee { out_trade_no, fee } => {
            if *fee < 0 {
                return Err(BreakError::Invalid("fee must not be negative".to_owned()));
            }
            paid_in_bill(out_trade_no)
        }
        BillBreak::StatusPaid { out_trade_no } => {
            let t = trade(out_trade_no)?;
            let unpaid_that_day = t.paid_at.is_none() && bill_day(wallet, t.created_at) == day;
            if unpaid_that_day || has(&natural, EntryKind::Reversal, out_trade_no) {
                Ok(())
            } else {
                Err(BreakError::NotInBill(format!(
                    "status_paid needs a trade made and not paid on {day_text}, or one reversed that day; {out_trade_no} is neither"
                )))
            }
        }
        BillBreak::ExtraTrade {
            out_trade_no,
            amount,
            currency,
        } => {
            if *amount <= 0 {
                return Err(BreakError::Invalid("amount must be positive".to_owned()));
            }
            if let Some(c) = currency {
                let known = state.rates.contains_key(c);
                let fits = bill_currency(wallet) == BillCurrency::Pricing || c == "CNY";
                if !known || !fits {
                    return Err(BreakError::Invalid(format!(
                        "currency {c} cannot appear in this wallet's bill"
                    )));
                }
            }
            if find_trade(state, wallet, out_trade_no).is_some() {
                return Err(BreakError::Conflict(format!(
                    "{out_trade_no} is a real trade; an extra trade needs an invented number"
                )));
            }
            Ok(())
        }
        BillBreak::MissingRefund { out_refund_no } => {
            let in_bill = natural.iter().any(|e| {
                e.refund
                    .as_ref()
                    .is_some_and(|r| &r.out_refund_no == out_refund_no)
            });
            if in_bill {
                Ok(())
            } else if refund_exists(state, wallet, out_refund_no) {
                Err(BreakError::NotInBill(format!(
                    "refund {out_refund_no} is not in the bill of {day_text}"
                )))
            } else {
                Err(BreakError::NotFound(format!("no refund {out_refund_no}")))
            }
        }
        BillBreak::ExtraRefund {
            out_trade_no,
            out_refund_no,
            amount,
        } => {
            if *amount <= 0 {
                return Err(BreakError::Invalid("amount must be positive".to_owned()));
            }
            trade(out_trade_no)?;
            if refund_exists(state, wallet, out_refund_no) {
                return Err(BreakError::Conflict(format!(
                    "{out_refund_no} is a real refund; an extra refund needs an invented number"
                )));
            }
            Ok(())
        }
    }
}

/// Noon (Beijing) of `day`: when invented rows are dated. Inside the bill day for every
/// wallet, UnionPay's 23:00 cut-off included.
fn noon(day: NaiveDate) -> DateTime<Utc> {
    from_beijing(day.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN)))
}

/// `n` digits derived from `seed`: invented ids that stay the same on every download.
fn digits_from(seed: &str, n: usize) -> String {
    let mut out = String::new();
    let mut round = 0u32;
    while out.len() < n {
        let digest = Sha256::digest(format!("{round}/{seed}").as_bytes());
        out.extend(digest.iter().map(|b| char::from(b'0' + b % 10)));
        round += 1;
    }
    out.truncate(n);
    out
}

/// A wallet id in the shape of that wallet's own (transaction or refund id).
fn invented_id(wallet: Wallet, seed: &str, at: DateTime<Utc>, refund: bool) -> String {
    let stamp = super::beijing_format(at, "%Y%m%d");
    match (wallet, refund) {
        (Wallet::Wechat, false) => format!("4200{stamp}{}", digits_from(seed, 16)),
        (Wallet::Alipay, false) => format!("{stamp}22{}", digits_from(seed, 18)),
        (Wallet::Unionpay, _) => format!(
            "{}{}",
            super::beijing_format(at, "%m%d%H%M%S"),
            digits_from(seed, 11)
        ),
        (Wallet::Wechat | Wallet::Alipay, true) => format!("50{stamp}{}", digits_from(seed, 14)),
    }
}

/// Applies one break planted for `day` to that day's entries.
pub(super) fn apply(
    state: &State,
    wallet: Wallet,
    day: NaiveDate,
    b: &BillBreak,
    entries: &mut Vec<BillEntry>,
) {
    let payment_of =
        |e: &BillEntry, no: &str| e.kind == EntryKind::Payment && e.trade.out_trade_no == no;
    match b {
        BillBreak::MissingTrade { out_trade_no } | BillBreak::NextDay { out_trade_no } => {
            entries.retain(|e| !payment_of(e, out_trade_no));
        }
        BillBreak::Amount {
            out_trade_no,
            amount,
        } => {
            for e in entries.iter_mut().filter(|e| payment_of(e, out_trade_no)) {
                e.amount = *amount;
            }
        }
        BillBreak::Fee { out_trade_no, fee } => {
            for e in entries.iter_mut().filter(|e| payment_of(e, out_trade_no)) {
                e.fee = *fee;
            }
        }
        BillBreak::StatusClosed { out_trade_no } => {
            for e in entries.iter_mut().filter(|e| payment_of(e, out_trade_no)) {
                e.closed = true;
            }
        }
        BillBreak::StatusPaid { out_trade_no } => {
            let reversed = entries
                .iter()
                .any(|e| e.kind == EntryKind::Reversal && e.trade.out_trade_no == *out_trade_no);
            if reversed {
                entries.retain(|e| {
                    !(e.kind == EntryKind::Reversal && e.trade.out_trade_no == *out_trade_no)
                });
                return;
            }
            let Some(trade) = find_trade(state, wallet, out_trade_no) else {
                return;
            };
            if entries.iter().any(|e| payment_of(e, out_trade_no)) {
                return;
            }
            let (currency, total, _) = bill_amounts(wallet, trade);
            let rate = state.fee_rate_ppm(wallet);
            let at = trade.ended_at.unwrap_or(trade.created_at);
            let at = if bill_day(wallet, at) == day {
                at
            } else {
                trade.created_at
            };
            let mut facts = entry_trade(trade);
            facts.paid_at = Some(at);
            entries.push(BillEntry {
                kind: EntryKind::Payment,
                at,
                trade: facts,
                refund: None,
                currency,
                amount: total,
                order_total: total,
                fee: fee_of(total, rate),
                fee_rate_ppm: rate,
                closed: false,
                invented: false,
            });
        }
        BillBreak::ExtraTrade {
            out_trade_no,
            amount,
            currency,
        } => {
            let at = noon(day);
            let currency = match bill_currency(wallet) {
                BillCurrency::Pricing => currency.clone().unwrap_or_else(|| "CNY".to_owned()),
                BillCurrency::Settlement => "CNY".to_owned(),
            };
            let rate = state.fee_rate_ppm(wallet);
            let rate_e8 = state.rates.get(&currency).copied().unwrap_or(100_000_000);
            let cny_fen = i64::try_from(
                (i128::from(*amount) * i128::from(rate_e8) + 50_000_000) / 100_000_000,
            )
            .unwrap_or(*amount);
            entries.push(BillEntry {
                kind: EntryKind::Payment,
                at,
                trade: EntryTrade {
                    out_trade_no: out_trade_no.clone(),
                    transaction_id: invented_id(wallet, out_trade_no, at, false),
                    kind: TradeKind::Code,
                    subject: "sandbox: invented trade".to_owned(),
                    customer_id: None,
                    created_at: at,
                    paid_at: Some(at),
                    pricing_currency: currency.clone(),
                    pricing_total: *amount,
                    cny_fen,
                    rate_e8,
                },
                refund: None,
                currency,
                amount: *amount,
                order_total: *amount,
                fee: fee_of(*amount, rate),
                fee_rate_ppm: rate,
                closed: false,
                invented: true,
            });
        }
        BillBreak::MissingRefund { out_refund_no } => {
            entries.retain(|e| {
                e.refund
                    .as_ref()
                    .is_none_or(|r| &r.out_refund_no != out_refund_no)
            });
        }
        BillBreak::ExtraRefund {
            out_trade_no,
            out_refund_no,
            amount,
        } => {
            let Some(trade) = find_trade(state, wallet, out_trade_no) else {
                return;
            };
            let (currency, total, _) = bill_amounts(wallet, trade);
            let rate = trade
                .fee_rate_ppm
                .unwrap_or_else(|| state.fee_rate_ppm(wallet));
            let back = if refund_returns_fee(wallet) {
                share(fee_of(total, rate), *amount, total)
            } else {
                0
            };
            let at = noon(day);
            entries.push(BillEntry {
                kind: EntryKind::Refund,
                at,
                trade: entry_trade(trade),
                refund: Some(EntryRefund {
                    out_refund_no: out_refund_no.clone(),
                    refund_id: invented_id(wallet, out_refund_no, at, true),
                    succeeded: true,
                    created_at: at,
                    succeeded_at: Some(at),
                }),
                currency,
                amount: *amount,
                order_total: total,
                fee: back,
                fee_rate_ppm: rate,
                closed: false,
                invented: true,
            });
        }
    }
}

/// Adds to the bill after `from_day` the payment a `next_day` break moved out of
/// `from_day`'s, dated one second into the new day.
pub(super) fn arrive_next_day(
    state: &State,
    wallet: Wallet,
    from_day: NaiveDate,
    out_trade_no: &str,
    entries: &mut Vec<BillEntry>,
) {
    let Some(next) = from_day.succ_opt() else {
        return;
    };
    let moved = natural_entries(state, wallet, from_day)
        .into_iter()
        .find(|e| e.kind == EntryKind::Payment && e.trade.out_trade_no == out_trade_no);
    if let Some(mut e) = moved {
        e.at = day_start(wallet, next) + Duration::seconds(1);
        e.trade.paid_at = Some(e.at);
        entries.push(e);
    }
}
