//! `qrgate settle`: settle merchants' days once their bills are reconciled, and write the
//! statements and the payout file (docs/RECONCILIATION.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Subcommand;
use qrgate_domain::MerchantId;
use qrgate_engine::{payout_csv, statement_csv, statement_html, Engine, SettleOutcome, Settlement};

use crate::config::Config;
use crate::wiring::open_engine;

#[derive(Debug, Subcommand)]
pub enum SettleCommand {
    /// Settle every merchant's day (its own time zone) whose bills are reconciled without
    /// open breaks: moves the day's net from merchant_payable to merchant_settled and writes
    /// each statement (CSV and printable HTML) and the day's payout file into --out. A settled
    /// day never changes; running again settles nothing twice. Exits with 1 when a merchant
    /// with postings that day could not be settled (the reason is printed).
    Run {
        /// The merchants' day, yyyy-mm-dd.
        #[arg(long, value_parser = parse_day)]
        date: NaiveDate,
        /// Where to write statements and the payout file.
        #[arg(long, default_value = "statements")]
        out: PathBuf,
    },
    /// A merchant's statements, newest first; with --out, writes their files again.
    Statements {
        #[arg(long = "merchant", value_parser = |s: &str| MerchantId::parse(s).map_err(|e| e.to_string()))]
        merchant_id: MerchantId,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("not a date yyyy-mm-dd: {s}"))
}

/// Writes `name` in `dir` through a temporary file and a rename, so that a file is never
/// seen half written.
fn write_file(dir: &Path, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

async fn write_statement(engine: &Engine, s: &Settlement, out: &Path) -> anyhow::Result<()> {
    let merchant = engine.merchant(&s.merchant_id).await?;
    let lines = engine.statement_lines(&s.statement_id).await?;
    write_file(
        out,
        &format!("{}.csv", s.statement_id),
        &statement_csv(&merchant, s, &lines),
    )?;
    write_file(
        out,
        &format!("{}.html", s.statement_id),
        &statement_html(&merchant, s, &lines),
    )?;
    Ok(())
}

pub async fn run(config: &Config, cmd: SettleCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    match cmd {
        SettleCommand::Run { date, out } => {
            let by = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
            let outcomes = engine
                .settle_day(date, &config.reconcile.settings(), &format!("cli:{by}"))
                .await?;
            let mut blocked = false;
            for (merchant, outcome) in &outcomes {
                match outcome {
                    SettleOutcome::Settled(statements) => {
                        for s in statements {
                            write_statement(&engine, s, &out).await?;
                            println!(
                                "{merchant} {date}: settled {} (sales {}, refunds {}, fees {}, net {})",
                                s.statement_id, s.gross, s.refunds, s.fees, s.net
                            );
                        }
                    }
                    SettleOutcome::AlreadySettled => println!("{merchant} {date}: already settled"),
                    SettleOutcome::Nothing => {}
                    SettleOutcome::Blocked(why) => {
                        blocked = true;
                        println!("{merchant} {date}: not settled: {why}");
                    }
                }
            }
            // The payout file holds every statement of the day, written again whole.
            let mut rows = Vec::new();
            for s in engine.statements_on(date).await? {
                rows.push((engine.merchant(&s.merchant_id).await?, s));
            }
            if !rows.is_empty() {
                let path = write_file(
                    &out,
                    &format!("payout-{}.csv", date.format("%Y%m%d")),
                    &payout_csv(&rows),
                )?;
                println!("payout file: {}", path.display());
            }
            Ok(if blocked {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        SettleCommand::Statements { merchant_id, out } => {
            let list = engine.statements(&merchant_id).await?;
            if list.is_empty() {
                println!("no statements");
            }
            for s in &list {
                println!(
                    "{} {} {} lines: sales {}, refunds {}, fees {}, net {} (settled {} by {})",
                    s.statement_id,
                    s.day,
                    s.lines,
                    s.gross,
                    s.refunds,
                    s.fees,
                    s.net,
                    s.at.to_rfc3339(),
                    s.run_by
                );
                if let Some(out) = &out {
                    write_statement(&engine, s, out).await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
