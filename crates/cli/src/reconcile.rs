//! `qrgate reconcile`: match the wallets' bills against our records, and list, show and
//! resolve the breaks found (docs/RECONCILIATION.md).

use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Subcommand;
use qrgate_domain::{BreakStatus, Wallet};
use qrgate_engine::{Engine, ReconBreak, ReconcileError, Wallets};
use serde_json::json;

use crate::config::Config;
use crate::wiring::open_engine;

#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Download each wallet's bill of a day (the wallet's bill day: Beijing calendar,
    /// UnionPay's settle date) and match it against our orders and refunds. Safe to run
    /// again: the same breaks are found, none twice. Exits with 1 when a bill is not ready or
    /// cannot be read (nothing is recorded for that wallet), 0 otherwise.
    Run {
        /// The bill day, yyyy-mm-dd.
        #[arg(long, value_parser = parse_day)]
        date: NaiveDate,
        /// Only this wallet (wechatpay, alipay, unionpay); every enabled wallet by default.
        #[arg(long, value_parser = parse_wallet)]
        wallet: Option<Wallet>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The breaks found by reconciliation, and what was done about them.
    #[command(subcommand)]
    Breaks(BreaksCommand),
}

#[derive(Debug, Subcommand)]
pub enum BreaksCommand {
    /// Breaks, newest first.
    List {
        /// Only breaks found on this bill day, yyyy-mm-dd.
        #[arg(long, value_parser = parse_day)]
        date: Option<NaiveDate>,
        #[arg(long, value_parser = parse_wallet)]
        wallet: Option<Wallet>,
        /// open, worked (settled by the gateway) or resolved (by a person).
        #[arg(long, value_parser = parse_status)]
        status: Option<BreakStatus>,
        /// How many to show (1 to 10000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One break with everything known about it.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Accept an open break, saying why; who resolved it and when are kept.
    Resolve {
        id: i64,
        /// Why the difference is accepted (what was checked, with whom).
        #[arg(long)]
        note: String,
        /// Who resolves it; the login name ($USER) by default.
        #[arg(long)]
        by: Option<String>,
    },
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("not a date yyyy-mm-dd: {s}"))
}

fn parse_wallet(s: &str) -> Result<Wallet, String> {
    Wallet::parse(s).ok_or_else(|| format!("not a wallet (wechatpay, alipay, unionpay): {s}"))
}

fn parse_status(s: &str) -> Result<BreakStatus, String> {
    BreakStatus::parse(s).ok_or_else(|| format!("not a break status (open, worked, resolved): {s}"))
}

fn break_json(b: &ReconBreak) -> serde_json::Value {
    json!({
        "id": b.id,
        "wallet": b.wallet.as_str(),
        "day": b.day.to_string(),
        "kind": b.kind.as_str(),
        "subject": b.subject,
        "order_key": b.order_key,
        "refund_key": b.refund_key,
        "wallet_ref": b.wallet_ref,
        "ours": b.ours,
        "theirs": b.theirs,
        "status": b.status.as_str(),
        "note": b.note,
        "resolved_by": b.resolved_by,
        "resolved_at": b.resolved_at.map(|t| t.to_rfc3339()),
        "found_at": b.created_at.to_rfc3339(),
    })
}

/// The engine with the configured wallets, for commands that call them.
async fn engine_with_wallets(config: &Config) -> anyhow::Result<Engine> {
    let (engine, _) = open_engine(config).await?;
    let connectors = config
        .wallets
        .build()
        .context("invalid wallet settings ([wallets])")?;
    let mut wallets = Wallets::new(connectors);
    for wallet in Wallet::ALL {
        wallets = wallets.with_policy(wallet, config.closing.policy(wallet));
    }
    Ok(engine.with_wallets(wallets))
}

pub async fn run(config: &Config, cmd: ReconcileCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReconcileCommand::Run { date, wallet, json } => {
            let engine = engine_with_wallets(config).await?;
            let wallets = match wallet {
                Some(w) => vec![w],
                None => engine.enabled_wallets(),
            };
            if wallets.is_empty() {
                anyhow::bail!("no wallet is configured ([wallets])");
            }
            let settings = config.reconcile.settings();
            let by = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
            let mut failed = false;
            let mut out = Vec::new();
            for w in wallets {
                match engine
                    .reconcile_day(w, date, &settings, &format!("cli:{by}"))
                    .await
                {
                    Ok(report) => {
                        let r = &report.run;
                        if json {
                            out.push(json!({
                                "wallet": w.as_str(), "day": date.to_string(), "run_id": r.id,
                                "outcome": r.outcome.as_str(), "file": r.file_name,
                                "sha256": r.file_sha256, "bill_lines": r.bill_lines,
                                "bill_totals": r.bill_totals, "our_items": r.our_items,
                                "our_totals": r.our_totals, "matched": r.matched, "held": r.held,
                                "breaks": r.breaks_found, "worked": r.worked,
                                "new_breaks": report.new_breaks.len(),
                            }));
                        } else {
                            println!(
                                "{} {date}: {} — bill {} lines ({}), ours {} ({}); matched {}, held {}, open breaks {} ({} new), worked {}",
                                w.as_str(), r.outcome.as_str(), r.bill_lines, r.bill_totals,
                                r.our_items, r.our_totals, r.matched, r.held, r.breaks_found,
                                report.new_breaks.len(), r.worked
                            );
                        }
                    }
                    Err(e) => {
                        failed = true;
                        let what = match &e {
                            ReconcileError::NotReady { .. } => "not_ready",
                            ReconcileError::WalletNotEnabled(_) => "wallet_not_enabled",
                            ReconcileError::Bill { .. } => "bad_bill",
                            ReconcileError::Invalid(_) => "invalid",
                            ReconcileError::Engine(_) => "error",
                        };
                        if json {
                            out.push(json!({"wallet": w.as_str(), "day": date.to_string(), "error": what, "message": e.to_string()}));
                        } else {
                            eprintln!("{} {date}: {what}: {e}", w.as_str());
                        }
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        ReconcileCommand::Breaks(cmd) => breaks(config, cmd).await,
    }
}

async fn breaks(config: &Config, cmd: BreaksCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    match cmd {
        BreaksCommand::List {
            date,
            wallet,
            status,
            limit,
            json,
        } => {
            let list = engine.recon_breaks(date, wallet, status, limit).await?;
            if json {
                let v: Vec<_> = list.iter().map(break_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.is_empty() {
                println!("no breaks");
            } else {
                for b in &list {
                    println!(
                        "{:>6} {} {} {:<17} {:<8} {} — ours: {}; bill: {}",
                        b.id,
                        b.day,
                        b.wallet.as_str(),
                        b.kind.as_str(),
                        b.status.as_str(),
                        b.subject,
                        b.ours,
                        b.theirs
                    );
                }
            }
        }
        BreaksCommand::Show { id, json } => {
            let b = engine.recon_break(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&break_json(&b))?);
            } else {
                for (k, v) in break_json(&b).as_object().into_iter().flatten() {
                    if !v.is_null() {
                        println!(
                            "{k:<12} {}",
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                        );
                    }
                }
            }
        }
        BreaksCommand::Resolve { id, note, by } => {
            let who = by
                .or_else(|| std::env::var("USER").ok())
                .context("say who resolves it with --by (no $USER)")?;
            let b = engine.resolve_break(id, &who, &note).await?;
            println!(
                "break {} resolved by {} at {}",
                b.id,
                b.resolved_by.as_deref().unwrap_or(""),
                b.resolved_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
