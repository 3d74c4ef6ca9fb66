//! `qrgate ledger` and `qrgate refunds`: the provider's books (docs/LEDGER.md).

use std::process::ExitCode;

use clap::Subcommand;
use qrgate_domain::{MerchantId, Money};
use serde_json::json;

use crate::config::Config;
use crate::wiring::open_engine;

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Every account's balance (debits minus credits): what each wallet owes, what each
    /// merchant is owed (negative: a credit), the provider's fees.
    Balances {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check the ledger's invariants against the orders and refunds: every posting balances,
    /// refunds never exceed payments, unpaid orders moved no money, every paid order and
    /// succeeded refund is posted, wallet fees sit between a wallet's fees and clearing
    /// accounts and each has its bill line. Exits with 1 when one breaks.
    Check,
    /// The provider's margin per merchant on one day (the merchant's time zone): our fees,
    /// the wallets' fees on the same payments and refunds (as their bills state, once
    /// reconciled), and the difference, per currency.
    Margin {
        /// The day, yyyy-mm-dd.
        #[arg(long, value_parser = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("not a date yyyy-mm-dd: {s}")))]
        date: chrono::NaiveDate,
        /// Only this merchant; every merchant by default.
        #[arg(long = "merchant", value_parser = |s: &str| MerchantId::parse(s).map_err(|e| e.to_string()))]
        merchant_id: Option<MerchantId>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RefundsCommand {
    /// The latest refunds, newest first, with their state and the wallet's last word.
    List {
        /// Only this merchant's refunds.
        #[arg(long = "merchant", value_parser = |s: &str| MerchantId::parse(s).map_err(|e| e.to_string()))]
        merchant_id: Option<MerchantId>,
        /// How many to show (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put a refund still in progress back in the refund loop now: one more query of the
    /// wallet (and a resend if the wallet never got it). For a refund flagged "needs
    /// attention" after 72 h without a final answer, once checked with the wallet.
    Retry {
        /// The refund's key (`R…`, as `refunds list --json` shows it).
        refund_key: String,
    },
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

pub async fn ledger(config: &Config, cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    match cmd {
        LedgerCommand::Balances { json } => {
            let balances = engine.store().ledger_balances().await?;
            if json {
                return print_json(
                    &balances
                        .iter()
                        .map(|b| {
                            json!({
                                "account": b.account.to_string(),
                                "currency": b.balance.currency().code(),
                                "balance": b.balance.minor(),
                                "payer_balance_cny": b.payer_balance.map(Money::minor),
                                "entries": b.entries,
                            })
                        })
                        .collect(),
                );
            }
            if balances.is_empty() {
                println!("the ledger is empty: no payment has been made yet");
            }
            for b in balances {
                let payer = b
                    .payer_balance
                    .map(|p| format!("   (customers paid {p} net)"))
                    .unwrap_or_default();
                println!(
                    "{:<30} {:>18}   {} entries{payer}",
                    b.account.to_string(),
                    b.balance.to_string(),
                    b.entries
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Check => {
            let broken = engine.store().check_ledger().await?;
            if broken.is_empty() {
                println!("ok: every invariant holds");
                return Ok(ExitCode::SUCCESS);
            }
            for line in &broken {
                println!("broken: {line}");
            }
            Ok(ExitCode::from(1))
        }
        LedgerCommand::Margin {
            date,
            merchant_id,
            json,
        } => {
            let merchants = match merchant_id {
                Some(id) => vec![engine.merchant(&id).await?],
                None => engine.merchants().await?,
            };
            let mut rows = Vec::new();
            for m in merchants {
                for f in engine.fee_margin(&m.id, date).await? {
                    rows.push((m.id.clone(), f));
                }
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(m, f)| {
                        json!({
                            "merchant_id": m.as_str(), "day": date.to_string(),
                            "currency": f.ours.currency().code(),
                            "our_fees": f.ours.minor(), "wallet_fees": f.wallets.minor(),
                            "margin": f.margin.minor(),
                        })
                    })
                    .collect();
                return print_json(&serde_json::Value::Array(v));
            }
            if rows.is_empty() {
                println!("no fees on {date}");
            }
            for (m, f) in rows {
                println!(
                    "{m} {date} {}: our fees {}, wallet fees {}, margin {}",
                    f.ours.currency().code(),
                    f.ours,
                    f.wallets,
                    f.margin
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn refunds(config: &Config, cmd: RefundsCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    match cmd {
        RefundsCommand::List {
            merchant_id,
            limit,
            json,
        } => {
            let list = engine
                .store()
                .recent_refunds(merchant_id.as_ref(), limit.clamp(1, 1000))
                .await?;
            if json {
                return print_json(
                    &list
                        .iter()
                        .map(|r| {
                            json!({
                                "refund_key": r.key,
                                "merchant_id": r.merchant_id.as_str(),
                                "refund_order_id": r.refund_order_id.as_str(),
                                "order_key": r.order_key,
                                "wallet": r.wallet.as_str(),
                                "amount": r.amount.minor(),
                                "currency": r.amount.currency().code(),
                                "cny_amount": r.cny_amount.map(Money::minor),
                                "status": r.status.as_str(),
                                "sends": r.sends,
                                "wallet_code": r.wallet_code,
                                "wallet_message": r.wallet_message,
                                "next_check_at": r.next_check_at.map(|t| t.to_rfc3339()),
                                "created_at": r.created_at.to_rfc3339(),
                                "finished_at": r.finished_at.map(|t| t.to_rfc3339()),
                            })
                        })
                        .collect(),
                );
            }
            if list.is_empty() {
                println!("no refunds");
            }
            for r in list {
                let attention = if r.status.is_final() || r.next_check_at.is_some() {
                    ""
                } else {
                    "   NEEDS ATTENTION: no final answer from the wallet"
                };
                println!(
                    "{}  {}  {:<32}  {:>14}  {:<10}  {}{}{attention}",
                    r.created_at.format("%Y-%m-%d %H:%M:%S"),
                    r.merchant_id,
                    r.refund_order_id,
                    r.amount.to_string(),
                    r.status,
                    r.wallet,
                    r.wallet_code
                        .as_deref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default(),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RefundsCommand::Retry { refund_key } => {
            let r = engine.requeue_refund(&refund_key).await?;
            println!(
                "refund {} ({} of order {}) is due for the refund loop now; `qrgate refunds list` shows what the wallet says",
                r.key, r.amount, r.order_key
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
