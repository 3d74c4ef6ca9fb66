//! Settlement to merchants: a merchant's day (its own time zone) is settled once its
//! wallets' bills are reconciled without open breaks: each payment and refund posting of the
//! day moves from `merchant_payable` to `merchant_settled`, and the statement (CSV and a
//! printable page, in the merchant's language) and a payout file row record it
//! (docs/RECONCILIATION.md).
//!
//! A settled day never changes: the statement, its lines and postings are written in one
//! transaction, unique per merchant, day and currency, and each posting can be settled once.
//! A refund made later is posted when it happens, so it falls in its own day.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use qrgate_domain::{
    bill_day, settlement_posting, Currency, Merchant, MerchantId, Money, PostingKind, Wallet,
};
use qrgate_store::{RunOutcome, Settlement, StatementLine};

use crate::console::start_of_day;
use crate::{Engine, EngineError, ReconcileSettings};

/// What settling one merchant's day did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Settled now: one statement per currency.
    Settled(Vec<Settlement>),
    /// Settled before (nothing new to settle).
    AlreadySettled,
    /// Nothing was posted for the merchant that day.
    Nothing,
    /// Not settled: the reason (a bill not reconciled yet, open breaks, a day not over).
    Blocked(String),
}

/// A statement's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Zh,
}

impl Language {
    /// The merchant's language: Chinese for merchants in a Chinese-speaking time zone
    /// (Asia/Shanghai, Hong Kong, Macau, Taipei), English otherwise (merchants have no
    /// language setting yet).
    pub fn of(merchant: &Merchant) -> Language {
        match merchant.time_zone.name() {
            "Asia/Shanghai" | "Asia/Hong_Kong" | "Asia/Macau" | "Asia/Taipei"
            | "Asia/Chongqing" | "Asia/Urumqi" | "PRC" => Language::Zh,
            _ => Language::En,
        }
    }
}

impl Engine {
    /// Settles `day` for every merchant (see [`Engine::settle_merchant_day`]).
    pub async fn settle_day(
        &self,
        day: NaiveDate,
        settings: &ReconcileSettings,
        run_by: &str,
    ) -> Result<Vec<(MerchantId, SettleOutcome)>, EngineError> {
        let mut out = Vec::new();
        for m in self.merchants().await? {
            let outcome = self.settle_merchant_day(&m, day, settings, run_by).await?;
            out.push((m.id.clone(), outcome));
        }
        Ok(out)
    }

    /// Settles one merchant's `day` (its time zone) if the day is over, every bill day of the
    /// wallets it was paid through, from its first to `hold_days` after its last, has a run
    /// that matched the bill (or found none), and no open break names one of its orders with
    /// a posting that day. Unsettled postings of earlier days (written late into a settled
    /// day, or carried from a day whose net was negative) are settled with it, under the same
    /// gates; a currency whose net is negative is not settled but carried forward.
    /// Idempotent: a settled day is `AlreadySettled`.
    pub async fn settle_merchant_day(
        &self,
        merchant: &Merchant,
        day: NaiveDate,
        settings: &ReconcileSettings,
        run_by: &str,
    ) -> Result<SettleOutcome, EngineError> {
        let from = start_of_day(merchant, day)?;
        let to = start_of_day(merchant, day + Duration::days(1))?;
        if to > self.now() {
            return Ok(SettleOutcome::Blocked(format!(
                "{day} has not ended in {}",
                merchant.time_zone.name()
            )));
        }
        // Every posting not settled yet that was written before the day's end: the day's own,
        // and earlier ones carried forward — a posting written into a day already settled
        // (a node's clock behind), or a day whose net was negative (below). Each passes the
        // same gates as the day's own (its bills reconciled, no open break on its orders).
        let lines = self
            .store
            .unsettled_lines(&merchant.id, DateTime::<Utc>::UNIX_EPOCH, to)
            .await?;
        let earliest = lines.iter().map(|l| l.at).min().unwrap_or(from).min(from);
        if lines.is_empty() {
            let settled = self
                .store
                .settlements_of(&merchant.id)
                .await?
                .iter()
                .any(|s| s.day == day);
            return Ok(if settled {
                SettleOutcome::AlreadySettled
            } else {
                SettleOutcome::Nothing
            });
        }
        let wallets: std::collections::BTreeSet<Wallet> = lines.iter().map(|l| l.wallet).collect();
        for w in wallets {
            let first_at = lines
                .iter()
                .filter(|l| l.wallet == w)
                .map(|l| l.at)
                .min()
                .unwrap_or(from)
                .min(from);
            let first = bill_day(w, first_at);
            let last = bill_day(w, to - Duration::milliseconds(1))
                + Duration::days(i64::from(settings.hold_days));
            let mut d = first;
            while d <= last {
                let runs = self.store.recon_runs(d, Some(w)).await?;
                if !runs
                    .iter()
                    .any(|r| matches!(r.outcome, RunOutcome::Reconciled | RunOutcome::NoBill))
                {
                    return Ok(SettleOutcome::Blocked(format!(
                        "the {} bill of {d} is not reconciled",
                        w.as_str()
                    )));
                }
                d += Duration::days(1);
            }
        }
        let open = self
            .store
            .open_breaks_of_merchant(&merchant.id, earliest, to)
            .await?;
        if open > 0 {
            return Ok(SettleOutcome::Blocked(format!(
                "{open} open reconciliation break(s) name its orders of that day"
            )));
        }
        let mut by_currency: BTreeMap<Currency, Vec<StatementLine>> = BTreeMap::new();
        for l in lines {
            by_currency.entry(l.net.currency()).or_default().push(l);
        }
        let now = self.now();
        let mut settled = Vec::new();
        let mut carried = Vec::new();
        for (currency, lines) in by_currency {
            let settlement = statement_of(&merchant.id, day, currency, &lines, run_by, now);
            if settlement.net.minor() < 0 {
                // More refunded than sold: nothing to pay, and a negative payout row is one
                // a bank import could misread. The lines stay in merchant_payable and are
                // carried into the next settlement, where the sales they offset are.
                tracing::info!(merchant.id = %merchant.id, day = %day, net = %settlement.net, "day's net is negative: carried forward");
                carried.push(format!("{} {}", settlement.net, currency.code()));
                continue;
            }
            let mut postings = Vec::new();
            for l in &lines {
                if l.net.minor() == 0 {
                    continue;
                }
                let p = settlement_posting(&merchant.id, &l.posting_txn, l.net)
                    .map_err(|e| EngineError::Invalid(e.to_string()))?;
                postings.push((p, l.order_key.clone(), l.refund_key.clone()));
            }
            if self
                .store
                .insert_settlement(&settlement, &lines, &postings, now)
                .await?
            {
                tracing::info!(merchant.id = %merchant.id, day = %day, net = %settlement.net, statement = %settlement.statement_id, "day settled");
                settled.push(settlement);
            }
        }
        Ok(if !settled.is_empty() {
            SettleOutcome::Settled(settled)
        } else if !carried.is_empty() {
            SettleOutcome::Blocked(format!(
                "the net is negative ({}): carried forward to the next settlement",
                carried.join(", ")
            ))
        } else {
            SettleOutcome::AlreadySettled
        })
    }

    /// A merchant's statements, newest day first.
    pub async fn statements(&self, merchant: &MerchantId) -> Result<Vec<Settlement>, EngineError> {
        Ok(self.store.settlements_of(merchant).await?)
    }

    /// Every statement of one day, for the payout file.
    pub async fn statements_on(&self, day: NaiveDate) -> Result<Vec<Settlement>, EngineError> {
        Ok(self.store.settlements_on(day).await?)
    }

    pub async fn statement_lines(
        &self,
        statement_id: &str,
    ) -> Result<Vec<StatementLine>, EngineError> {
        Ok(self.store.statement_lines(statement_id).await?)
    }
}

/// A statement's figures from its lines: sales, refunds (positive), our fees net of fees
/// given back, and the net (`gross - refunds - fees`, the sum of the lines' nets).
pub fn statement_of(
    merchant: &MerchantId,
    day: NaiveDate,
    currency: Currency,
    lines: &[StatementLine],
    run_by: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Settlement {
    let sum = |f: &dyn Fn(&StatementLine) -> i64| lines.iter().map(f).sum::<i64>();
    let gross = sum(&|l| {
        if l.kind == PostingKind::Payment {
            l.gross.minor()
        } else {
            0
        }
    });
    let refunds = sum(&|l| {
        if l.kind == PostingKind::Refund {
            -l.gross.minor()
        } else {
            0
        }
    });
    let fees = sum(&|l| l.fee.minor());
    Settlement {
        statement_id: format!("ST-{merchant}-{}-{}", day.format("%Y%m%d"), currency.code()),
        merchant_id: merchant.clone(),
        day,
        gross: Money::new(gross, currency),
        refunds: Money::new(refunds, currency),
        fees: Money::new(fees, currency),
        net: Money::new(gross - refunds - fees, currency),
        lines: i64::try_from(lines.len()).unwrap_or(i64::MAX),
        run_by: run_by.to_owned(),
        at,
    }
}

/// An amount as a plain decimal (`-12.34`), for files.
fn decimal(m: Money) -> String {
    let minor = m.minor();
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn csv_field(s: &str) -> String {
    // A leading formula character is neutralised for spreadsheets.
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn words(lang: Language) -> [&'static str; 12] {
    match lang {
        Language::En => [
            "Statement",
            "Merchant",
            "Day",
            "Time",
            "Type",
            "Order",
            "Wallet",
            "Amount",
            "Fee",
            "Net",
            "payment",
            "refund",
        ],
        Language::Zh => [
            "结算单",
            "商户",
            "日期",
            "时间",
            "类型",
            "订单号",
            "钱包",
            "金额",
            "手续费",
            "净额",
            "收款",
            "退款",
        ],
    }
}

fn totals_words(lang: Language) -> [&'static str; 4] {
    match lang {
        Language::En => ["Sales", "Refunds", "Fees", "Net payable"],
        Language::Zh => ["销售额", "退款", "手续费", "应结净额"],
    }
}

/// The statement as CSV: one row per payment or refund, then the totals.
pub fn statement_csv(merchant: &Merchant, s: &Settlement, lines: &[StatementLine]) -> String {
    let lang = Language::of(merchant);
    let w = words(lang);
    let t = totals_words(lang);
    let tz = merchant.time_zone.tz();
    let mut out = format!(
        "{},{},{},{},{},{},{},{}\r\n",
        w[0], w[3], w[4], w[5], w[6], w[7], w[8], w[9]
    );
    for l in lines {
        let kind = if l.kind == PostingKind::Payment {
            w[10]
        } else {
            w[11]
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\r\n",
            csv_field(&s.statement_id),
            l.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
            kind,
            csv_field(&l.merchant_order_id),
            l.wallet.as_str(),
            decimal(l.gross),
            decimal(l.fee),
            decimal(l.net)
        ));
    }
    for (name, value) in [
        (t[0], s.gross),
        (t[1], s.refunds),
        (t[2], s.fees),
        (t[3], s.net),
    ] {
        out.push_str(&format!(
            "{},{name},,,,{},,\r\n",
            csv_field(&s.statement_id),
            decimal(value)
        ));
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The statement as a printable HTML page (no script, no external resources).
pub fn statement_html(merchant: &Merchant, s: &Settlement, lines: &[StatementLine]) -> String {
    let lang = Language::of(merchant);
    let w = words(lang);
    let t = totals_words(lang);
    let tz = merchant.time_zone.tz();
    let code = s.net.currency().code();
    let mut rows = String::new();
    for l in lines {
        let kind = if l.kind == PostingKind::Payment {
            w[10]
        } else {
            w[11]
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{kind}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>\n",
            l.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
            html_escape(&l.merchant_order_id),
            l.wallet.as_str(),
            decimal(l.gross),
            decimal(l.fee),
            decimal(l.net)
        ));
    }
    let lang_attr = if lang == Language::Zh { "zh" } else { "en" };
    format!(
        "<!doctype html>\n<html lang={lang_attr}><head><meta charset=utf-8><title>{title} {id}</title>\
<style>body{{font:12pt sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}\
td,th{{border-bottom:1px solid #999;padding:4px;text-align:left}}.n{{text-align:right}}\
@media print{{body{{margin:0}}}}</style></head><body>\n\
<h1>{title} {id}</h1>\n<p>{merchant_word}: {name} ({mid})<br>{day_word}: {day} ({tzname})<br>{code}</p>\n\
<table><tr><th>{th_time}</th><th>{th_type}</th><th>{th_order}</th><th>{th_wallet}</th><th class=n>{th_amount}</th><th class=n>{th_fee}</th><th class=n>{th_net}</th></tr>\n{rows}</table>\n\
<table><tr><th>{t0}</th><td class=n>{gross}</td></tr><tr><th>{t1}</th><td class=n>{refunds}</td></tr>\
<tr><th>{t2}</th><td class=n>{fees}</td></tr><tr><th>{t3}</th><td class=n><b>{net}</b></td></tr></table>\n</body></html>\n",
        title = w[0],
        id = html_escape(&s.statement_id),
        merchant_word = w[1],
        name = html_escape(&merchant.name),
        mid = merchant.id,
        day_word = w[2],
        day = s.day,
        tzname = merchant.time_zone.name(),
        th_time = w[3],
        th_type = w[4],
        th_order = w[5],
        th_wallet = w[6],
        th_amount = w[7],
        th_fee = w[8],
        th_net = w[9],
        t0 = t[0],
        t1 = t[1],
        t2 = t[2],
        t3 = t[3],
        gross = decimal(s.gross),
        refunds = decimal(s.refunds),
        fees = decimal(s.fees),
        net = decimal(s.net),
    )
}

/// The payout file the provider hands to its bank: one row per statement with something to
/// pay (merchant, bank reference to print on the transfer, amount, currency, statement id).
/// A day whose refunds exceed its sales is never settled (its lines are carried into the
/// next settlement), so no statement owes the merchant less than nothing.
pub fn payout_csv(statements: &[(Merchant, Settlement)]) -> String {
    let mut out =
        String::from("merchant_id,merchant_name,bank_reference,amount,currency,statement_id\r\n");
    // Only what the provider pays: a statement of nothing (or, defensively, less) is no row
    // for the bank.
    for (m, s) in statements.iter().filter(|(_, s)| s.net.minor() > 0) {
        out.push_str(&format!(
            "{},{},{},{},{},{}\r\n",
            m.id,
            csv_field(&m.name),
            csv_field(&format!("QRGATE {}", s.statement_id)),
            decimal(s.net),
            s.net.currency().code(),
            csv_field(&s.statement_id)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// For any day of payments and refunds, the statement's net is, to the cent, what the
        /// settlement postings move into `merchant_settled`, and `gross - refunds - fees`.
        #[test]
        fn a_statements_net_is_what_its_postings_move(
            lines in proptest::collection::vec((any::<bool>(), 1i64..5_000_000, 0i64..=10_000), 1..40),
        ) {
            let merchant = MerchantId::parse("ON00000001").unwrap();
            let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
            let lines: Vec<StatementLine> = lines
                .iter()
                .enumerate()
                .map(|(i, (payment, amount, bps))| {
                    let fee = amount * bps / 10_000;
                    let (kind, gross, fee) = if *payment {
                        (PostingKind::Payment, *amount, fee)
                    } else {
                        (PostingKind::Refund, -amount, -fee)
                    };
                    StatementLine {
                        posting_txn: format!("t{i}"),
                        kind,
                        order_key: format!("Q{i}"),
                        refund_key: None,
                        merchant_order_id: format!("{i}"),
                        wallet: Wallet::Alipay,
                        gross: Money::new(gross, Currency::Cad),
                        fee: Money::new(fee, Currency::Cad),
                        net: Money::new(gross - fee, Currency::Cad),
                        at,
                    }
                })
                .collect();
            let day = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
            let s = statement_of(&merchant, day, Currency::Cad, &lines, "t", at);
            let moved: i64 = lines
                .iter()
                .filter(|l| l.net.minor() != 0)
                .map(|l| settlement_posting(&merchant, &l.posting_txn, l.net).unwrap())
                .flat_map(|p| p.entries().to_vec())
                .filter(|e| e.account == qrgate_domain::Account::MerchantSettled(merchant.clone()))
                .map(|e| -e.amount.minor())
                .sum();
            prop_assert_eq!(s.net.minor(), moved);
            prop_assert_eq!(s.net.minor(), s.gross.minor() - s.refunds.minor() - s.fees.minor());
        }
    }

    #[test]
    fn amounts_are_written_as_plain_decimals() {
        assert_eq!(decimal(Money::new(1234, Currency::Cad)), "12.34");
        assert_eq!(decimal(Money::new(-5, Currency::Cad)), "-0.05");
        assert_eq!(decimal(Money::new(0, Currency::Cad)), "0.00");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-12.34"), "-12.34");
    }
}
