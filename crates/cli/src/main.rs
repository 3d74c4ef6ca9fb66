//! `qrgate`: the one binary. Parses the command line, loads the configuration, wires the
//! concrete store and engine, and runs a command. No business rules and no SQL live here.

mod bench;
mod books;
mod commands;
mod config;
mod merchant_import;
mod node;
mod pos;
mod pos_charge;
mod reconcile;
mod sandbox_cmd;
mod serve;
mod settle;
mod users;
mod wiring;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::LogFormat;

/// qrgate — an in-store QR payment gateway (WeChat Pay, Alipay, UnionPay) that speaks the
/// OTTPAY POS protocol.
///
/// Every command reads the same configuration: defaults, then a TOML file (--config), then
/// QRGATE_* environment variables, then flags. By default data lives in SQLite under
/// ./qrgate-data; use --database-url postgres://… for PostgreSQL.
#[derive(Debug, Parser)]
#[command(
    name = "qrgate",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// A TOML configuration file (keys as in `qrgate config check`).
    #[arg(long, global = true, env = "QRGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the SQLite database and the master key (created on first start).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Use this database instead of SQLite in the data directory, e.g.
    /// postgres://user@host/qrgate.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Log as human-readable lines (pretty) or one JSON object per line (json).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: the OTTPAY endpoint (POST /processV2, /process), the web till (/pos),
    /// the web console (/console),
    /// /healthz, /metrics.
    Serve(serve::ServeArgs),
    /// Bring the database schema up to date (serve and every command also do this).
    Migrate,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(commands::ConfigCommand),
    /// Onboard and manage merchants and their sign keys.
    #[command(subcommand)]
    Merchant(commands::MerchantCommand),
    /// The web console's users (/console): create the first provider admin, print a new
    /// sign-in link, turn off two-factor sign-in, disable.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Manage a merchant's operators (the people at the till, 10-digit ids).
    #[command(subcommand)]
    Operator(commands::OperatorCommand),
    /// Manage a merchant's shops.
    #[command(subcommand)]
    Shop(commands::ShopCommand),
    /// Manage a merchant's POS terminals (the envelope's terminal_no).
    #[command(subcommand)]
    Terminal(commands::TerminalCommand),
    /// Notifications to merchants' call_back_url: list them with their attempts, or send one
    /// again.
    #[command(subcommand)]
    Callbacks(commands::CallbacksCommand),
    /// The provider's books: account balances and the ledger's invariant checks.
    #[command(subcommand)]
    Ledger(books::LedgerCommand),
    /// Refunds: list them with their state.
    #[command(subcommand)]
    Refunds(books::RefundsCommand),
    /// Reconciliation: match the wallets' bills against our records; list, show and resolve
    /// the breaks (docs/RECONCILIATION.md).
    #[command(subcommand)]
    Reconcile(reconcile::ReconcileCommand),
    /// Settlement to merchants: settle reconciled days, write statements and payout files.
    #[command(subcommand)]
    Settle(settle::SettleCommand),
    /// Manage the exchange rates to CNY that the gateway answers with.
    #[command(subcommand)]
    Fx(commands::FxCommand),
    /// Run the wallet sandbox: simulated WeChat Pay, Alipay and UnionPay with customers,
    /// payment codes, pay pages and a control API (docs/SANDBOX.md).
    Sandbox(sandbox_cmd::SandboxArgs),
    /// Load benchmark: simulated terminals against a gateway and a sandbox, each in its own
    /// process, with throughput, latency percentiles, errors by code and the gateway's CPU
    /// and memory (docs/BENCHMARKS.md); or, with --storage, the database's own limit.
    Bench(bench::BenchArgs),
    /// Act as a POS: call a gateway with the OTTPAY protocol.
    #[command(subcommand)]
    Pos(pos::PosCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = config::Overrides {
        listen: match &cli.command {
            Command::Serve(args) => args.listen,
            _ => None,
        },
        data_dir: cli.global.data_dir.clone(),
        database_url: cli.global.database_url.clone(),
        log_format: cli.global.log_format,
    };
    // The POS client and the sandbox need no configuration of the gateway's own.
    if let Command::Pos(cmd) = cli.command {
        wiring::init_logging(
            cli.global.log_format.unwrap_or(LogFormat::Pretty),
            None,
            "warn",
        );
        return pos::run(cmd).await;
    }
    if let Command::Sandbox(args) = &cli.command {
        let format = cli.global.log_format.unwrap_or(LogFormat::Pretty);
        wiring::init_logging(format, None, "info");
        return sandbox_cmd::run(args).await;
    }
    let config = config::Config::load(cli.global.config.as_deref(), &overrides)?;
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        // The report is the output; the database's slow-statement warnings under load are not.
        Command::Bench(_) => "error",
        _ => "warn",
    };
    wiring::init_logging(
        config.log_format,
        config.log_level.as_deref(),
        default_level,
    );
    match cli.command {
        Command::Serve(args) => serve::run(&config, &args).await,
        Command::Migrate => commands::migrate(&config).await,
        Command::Config(cmd) => commands::config(&config, cmd).await,
        Command::Merchant(cmd) => commands::merchant(&config, cmd).await,
        Command::Operator(cmd) => commands::operator(&config, cmd).await,
        Command::User(cmd) => users::run(&config, cmd).await,
        Command::Shop(cmd) => commands::shop(&config, cmd).await,
        Command::Terminal(cmd) => commands::terminal(&config, cmd).await,
        Command::Fx(cmd) => commands::fx(&config, cmd).await,
        Command::Ledger(cmd) => books::ledger(&config, cmd).await,
        Command::Bench(args) => bench::run(&config, &args).await,
        Command::Refunds(cmd) => books::refunds(&config, cmd).await,
        Command::Reconcile(cmd) => reconcile::run(&config, cmd).await,
        Command::Settle(cmd) => settle::run(&config, cmd).await,
        Command::Callbacks(cmd) => commands::callbacks(&config, cmd).await,
        Command::Pos(_) | Command::Sandbox(_) => Ok(ExitCode::SUCCESS),
    }
}
