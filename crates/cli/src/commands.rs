//! The provider's commands: configuration, merchants, their people and terminals, rates.
//! Each parses its arguments into domain types, calls the engine, and prints the result for a
//! person, or as JSON with `--json`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use qrgate_domain::{
    Currency, FeeRate, FxRate, Merchant, MerchantId, MerchantStatus, MerchantTimeZone, OperatorId,
    OperatorRole, OperatorStatus, ShopId, TerminalNo,
};
use qrgate_engine::{Engine, MerchantRequest};
use qrgate_store::Store;
use serde_json::json;

use crate::config::Config;
use crate::wiring::{open_engine, open_store, read_master_key, sqlite_path};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets hidden) and check that the database and the
    /// master key can be opened.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Onboard a merchant: prints its id, its sign key (shown only this once) and a first
    /// operator id.
    Create {
        /// The merchant's name as shown on receipts.
        #[arg(long)]
        name: String,
        /// The currency its POS prices in: CAD, USD or CNY.
        #[arg(long, value_parser = parse_currency)]
        currency: Currency,
        /// IANA time zone for its receipts and wire times.
        #[arg(long, default_value = "Asia/Shanghai", value_parser = parse_time_zone)]
        time_zone: MerchantTimeZone,
        /// Two upper-case letters that start the merchant id, usually the province.
        #[arg(long, default_value = "ON")]
        prefix: String,
        /// Print one JSON object with merchant_id, sign_key and operator_id (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Take over a merchant from another gateway with the merchant id and sign key its POS
    /// already use, so no POS needs reconfiguring. The key is read from standard input (one
    /// line; typed twice, not shown, at a terminal), never from the command line. With --csv,
    /// many at once, all or none. The merchant gets a first shop and operator, as with create.
    Import(crate::merchant_import::ImportArgs),
    /// List every merchant.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one merchant with its shops, operators and terminals.
    Show {
        /// The merchant's id, e.g. ON00000001.
        #[arg(value_parser = parse_merchant_id)]
        merchant_id: MerchantId,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Give a merchant a new sign key (shown once). The old key stops working at once,
    /// unless --grace keeps it valid for a while so the POS can be updated. Only the key just
    /// replaced can be kept: rotating again ends an earlier grace period.
    RotateKey {
        /// The merchant's id, e.g. ON00000001.
        #[arg(value_parser = parse_merchant_id)]
        merchant_id: MerchantId,
        /// How long the old key keeps working, e.g. 30m, 24h, 7d (at most 30 days).
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<std::time::Duration>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Set the provider's fee on the merchant's payments from now on, in basis points
    /// (60 = 0.6 %). Refunds give back the same share of the fee (docs/LEDGER.md).
    SetFee {
        /// The merchant's id, e.g. ON00000001.
        #[arg(value_parser = parse_merchant_id)]
        merchant_id: MerchantId,
        /// 0 to 10000 basis points.
        #[arg(value_parser = parse_fee)]
        bps: FeeRate,
    },
    /// Refuse the merchant's POS requests from now on.
    Disable {
        /// The merchant's id, e.g. ON00000001.
        #[arg(value_parser = parse_merchant_id)]
        merchant_id: MerchantId,
    },
    /// Accept the merchant's POS requests again.
    Enable {
        /// The merchant's id, e.g. ON00000001.
        #[arg(value_parser = parse_merchant_id)]
        merchant_id: MerchantId,
    },
}

#[derive(Debug, Args)]
pub struct MerchantArg {
    /// The merchant's id, e.g. ON00000001.
    #[arg(long = "merchant", value_parser = parse_merchant_id)]
    merchant_id: MerchantId,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; prints the new 10-digit operator id.
    Add {
        #[command(flatten)]
        merchant: MerchantArg,
        /// The display name.
        #[arg(long)]
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List a merchant's operators.
    List {
        #[command(flatten)]
        merchant: MerchantArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Set (or replace) the PIN an operator signs in to the web till (/pos) with: 6 to 12
    /// digits, stored only as an argon2 hash. Also ends the operator's open till sessions and
    /// lifts any lock after wrong PINs. The PIN is read from standard input (typed twice at a
    /// terminal, not echoed), so it stays out of the shell's history.
    SetPin {
        #[command(flatten)]
        merchant: MerchantArg,
        /// The operator's 10-digit id, e.g. 0000000001.
        #[arg(long = "operator", value_parser = parse_operator_id)]
        operator_id: OperatorId,
        /// The PIN itself, for scripts (it is then visible in the process list and the
        /// shell's history: prefer standard input).
        #[arg(long)]
        pin: Option<String>,
    },
    /// Stop an operator from signing in to the web till; their open till sessions end now.
    Disable {
        #[command(flatten)]
        merchant: MerchantArg,
        /// The operator's 10-digit id, e.g. 0000000001.
        #[arg(long = "operator", value_parser = parse_operator_id)]
        operator_id: OperatorId,
    },
    /// Let a disabled operator sign in to the web till again (with the PIN they had).
    Enable {
        #[command(flatten)]
        merchant: MerchantArg,
        /// The operator's 10-digit id, e.g. 0000000001.
        #[arg(long = "operator", value_parser = parse_operator_id)]
        operator_id: OperatorId,
    },
    /// Set an operator's role on the till: `supervisor` (approves refunds with their PIN) or
    /// `cashier` (the default).
    SetRole {
        #[command(flatten)]
        merchant: MerchantArg,
        /// The operator's 10-digit id, e.g. 0000000001.
        #[arg(long = "operator", value_parser = parse_operator_id)]
        operator_id: OperatorId,
        /// `supervisor` or `cashier`.
        #[arg(long, value_parser = parse_role)]
        role: OperatorRole,
    },
    /// Set the amount above which a refund on the till needs a supervisor's PIN, in the
    /// merchant's currency (e.g. 25.00); 0 (the default): every refund.
    SetRefundApproval {
        #[command(flatten)]
        merchant: MerchantArg,
        /// The amount, like 25.00.
        #[arg(long, value_parser = parse_minor)]
        above: i64,
    },
}

fn parse_role(s: &str) -> Result<OperatorRole, String> {
    OperatorRole::parse(s).ok_or_else(|| format!("{s:?} is no role: supervisor or cashier"))
}

/// An amount like `25`, `25.5` or `25.00` in minor units (at most 1,000,000.00).
fn parse_minor(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not an amount like 25.00");
    let (units, cents) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if units.is_empty()
        || units.len() > 7
        || cents.len() > 2
        || !units
            .chars()
            .chain(cents.chars())
            .all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let units: i64 = units.parse().map_err(|_| bad())?;
    let cents: i64 = format!("{cents:0<2}").parse().map_err(|_| bad())?;
    Ok(units * 100 + cents)
}

#[derive(Debug, Subcommand)]
pub enum ShopCommand {
    /// Add a shop; prints the new shop id (merchant id + 3 digits).
    Add {
        #[command(flatten)]
        merchant: MerchantArg,
        /// The display name.
        #[arg(long)]
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List a merchant's shops.
    List {
        #[command(flatten)]
        merchant: MerchantArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TerminalCommand {
    /// Register a POS terminal by the terminal_no it sends.
    Add {
        #[command(flatten)]
        merchant: MerchantArg,
        /// 1 to 32 letters, digits, '-', '_' or '.'.
        #[arg(long, value_parser = parse_terminal_no)]
        terminal_no: TerminalNo,
        /// The shop it stands in, e.g. ON00000001001.
        #[arg(long, value_parser = parse_shop_id)]
        shop: Option<ShopId>,
        /// A display name (defaults to the terminal number).
        #[arg(long)]
        name: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List a merchant's terminals.
    List {
        #[command(flatten)]
        merchant: MerchantArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CallbacksCommand {
    /// List notifications to merchants (newest first): the gateway's order key, the
    /// merchant's order_id, the delivery state and the last attempt.
    List {
        /// Only this merchant's, e.g. ON00000001.
        #[arg(long = "merchant", value_parser = parse_merchant_id)]
        merchant_id: Option<MerchantId>,
        /// How many, at most.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one order's notification with every delivery attempt and the merchant's answer.
    Show {
        #[command(flatten)]
        order: CallbackOrderArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send an order's notification again from now (after it was given up, or to repeat it).
    Retry {
        #[command(flatten)]
        order: CallbackOrderArgs,
    },
}

/// Which order's notification: by the gateway's order key or the merchant's order_id.
#[derive(Debug, Args)]
pub struct CallbackOrderArgs {
    /// The order: the gateway's order key (as `callbacks list` and the logs show it) or the
    /// merchant's own order_id.
    #[arg(value_parser = parse_order_name)]
    id: String,
    /// The merchant, e.g. ON00000001: needed only when several merchants used that order_id.
    #[arg(long = "merchant", value_parser = parse_merchant_id)]
    merchant_id: Option<MerchantId>,
}

/// An order key or a merchant order_id: both are 1 to 32 letters, digits, '_' or '-'.
fn parse_order_name(s: &str) -> Result<String, String> {
    qrgate_domain::MerchantOrderId::parse(s)
        .map(|id| id.as_str().to_owned())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum FxCommand {
    /// Set the rate to CNY of a currency, e.g. `qrgate fx set CAD 5.1234` (1 CAD = 5.1234 CNY).
    Set {
        /// The currency: CAD or USD (CNY is always 1).
        #[arg(value_parser = parse_currency)]
        currency: Currency,
        /// Yuan per unit, a plain decimal with at most 8 decimals.
        #[arg(value_parser = parse_rate, allow_hyphen_values = true)]
        rate: FxRate,
    },
    /// List the rates the gateway answers EX_RATE_QUERY with.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn parse_currency(s: &str) -> Result<Currency, String> {
    s.to_ascii_uppercase()
        .parse()
        .map_err(|e: qrgate_domain::CurrencyParseError| e.to_string())
}

pub(crate) fn parse_time_zone(s: &str) -> Result<MerchantTimeZone, String> {
    s.parse()
        .map_err(|e: qrgate_domain::TimeZoneParseError| e.to_string())
}

pub(crate) fn parse_merchant_id(s: &str) -> Result<MerchantId, String> {
    MerchantId::parse(s).map_err(|e| e.to_string())
}

fn parse_operator_id(s: &str) -> Result<OperatorId, String> {
    OperatorId::parse(s).map_err(|e| e.to_string())
}

/// Whether standard input is a terminal (a person typing) rather than a pipe or a file.
pub(crate) fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Reads one line of a secret (`what`, for the error) from standard input, surrounding
/// whitespace removed. At a terminal, echo is turned off before `prompt` is shown, so nothing
/// typed after the prompt appears on the screen; from a pipe or a file, the line is read as
/// it is, without a prompt.
pub(crate) fn read_secret_line(prompt: &str, what: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, Write};
    let terminal = stdin_is_terminal();
    // No echo while the secret is typed (stty is on every Unix).
    let stty = |mode: &str| {
        let _ = std::process::Command::new("stty")
            .arg(mode)
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    if terminal {
        stty("-echo");
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if terminal {
        stty("echo");
        eprintln!();
    }
    read.with_context(|| format!("cannot read {what} from standard input"))?;
    Ok(line.trim().to_owned())
}

/// Reads a PIN from standard input: one line; at a terminal, asked for twice without echo.
fn read_pin() -> anyhow::Result<String> {
    let pin = read_secret_line("New PIN (6 to 12 digits): ", "the PIN")?;
    if stdin_is_terminal() {
        let again = read_secret_line("The same PIN again: ", "the PIN")?;
        anyhow::ensure!(pin == again, "the two PINs differ; nothing was changed");
    }
    anyhow::ensure!(
        !pin.is_empty(),
        "no PIN on standard input; nothing was changed"
    );
    Ok(pin)
}

fn parse_fee(s: &str) -> Result<FeeRate, String> {
    let bps: i64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of basis points"))?;
    FeeRate::from_bps(bps).map_err(|e| e.to_string())
}

fn parse_shop_id(s: &str) -> Result<ShopId, String> {
    ShopId::parse(s).map_err(|e| e.to_string())
}

fn parse_terminal_no(s: &str) -> Result<TerminalNo, String> {
    TerminalNo::parse(s).map_err(|e| e.to_string())
}

fn parse_rate(s: &str) -> Result<FxRate, String> {
    s.parse()
        .map_err(|e: qrgate_domain::FxRateParseError| e.to_string())
}

pub(crate) fn print_json(value: &serde_json::Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

fn merchant_json(m: &Merchant) -> serde_json::Value {
    json!({
        "merchant_id": m.id.as_str(),
        "name": m.name,
        "currency": m.currency.code(),
        "time_zone": m.time_zone.name(),
        "status": m.status.as_str(),
        "fee_bps": m.fee_rate.bps(),
        "created_at": m.created_at.to_rfc3339(),
    })
}

pub async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    println!(
        "database schema is up to date ({} version {})",
        store.backend().name(),
        store.schema_version()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn config(config: &Config, cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check => {
            print!("{}", config.redacted()?);
            println!();
            // Read-only: nothing is created, generated or migrated by a check.
            let store = match &config.database_url {
                Some(url) => Some(Store::connect(url, 1).await?),
                None => {
                    let path = sqlite_path(config);
                    if path.exists() {
                        Some(Store::open_sqlite_with(&path, 1).await?)
                    } else {
                        println!(
                            "# note: {} does not exist yet; it is created on first start",
                            path.display()
                        );
                        None
                    }
                }
            };
            if let Some(store) = &store {
                let applied = store.applied_schema_version().await?;
                let expected = store.schema_version();
                match applied {
                    Some(v) if v == expected => println!("# ok: {} database reachable, schema version {v}", store.backend().name()),
                    Some(v) => println!("# note: {} database reachable, schema version {v}; this binary migrates it to {expected} on start", store.backend().name()),
                    None => println!("# note: {} database reachable, not migrated yet (done on first start)", store.backend().name()),
                }
            }
            match read_master_key(config)? {
                None => println!("# note: no master key yet; one is generated in {} on first start", config.data_dir.display()),
                Some((key, source)) => match &store {
                    Some(store) if store.applied_schema_version().await?.is_some() => {
                        match Engine::check_master_key(store, &key).await? {
                            Some(true) => println!("# ok: master key from {source} matches the database"),
                            Some(false) => anyhow::bail!("the master key from {source} does not match the one this database's sign keys were encrypted with"),
                            None => println!("# ok: master key from {source} (the database has recorded none yet)"),
                        }
                    }
                    _ => println!("# ok: master key from {source}"),
                },
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn merchant(config: &Config, cmd: MerchantCommand) -> anyhow::Result<ExitCode> {
    // Read and checked before the database is opened: bad input changes nothing.
    if let MerchantCommand::Import(args) = cmd {
        return crate::merchant_import::run(config, args).await;
    }
    let (engine, _) = open_engine(config).await?;
    match cmd {
        // Returned above, before the database was opened.
        MerchantCommand::Import(_) => {}
        MerchantCommand::Create {
            name,
            currency,
            time_zone,
            prefix,
            json,
        } => {
            let created = engine
                .create_merchant(&MerchantRequest {
                    name,
                    currency,
                    time_zone,
                    id_prefix: prefix,
                })
                .await?;
            if json {
                return print_json(&json!({
                    "merchant_id": created.merchant.id.as_str(),
                    "sign_key": created.sign_key.expose(),
                    "operator_id": created.operator.id.as_str(),
                    "shop_id": created.shop.id.as_str(),
                    "name": created.merchant.name,
                    "currency": created.merchant.currency.code(),
                    "time_zone": created.merchant.time_zone.name(),
                }));
            }
            println!("merchant created: {}", created.merchant.name);
            println!("  merchant id   {}", created.merchant.id);
            println!(
                "  sign key      {}   (shown only now: give it to the merchant's POS)",
                created.sign_key.expose()
            );
            println!("  operator id   {}", created.operator.id);
            println!("  shop id       {}", created.shop.id);
            println!("  currency      {}", created.merchant.currency);
            println!("  time zone     {}", created.merchant.time_zone);
        }
        MerchantCommand::List { json } => {
            let merchants = engine.merchants().await?;
            if json {
                return print_json(&merchants.iter().map(merchant_json).collect());
            }
            if merchants.is_empty() {
                println!("no merchants yet: create one with `qrgate merchant create --name NAME --currency CAD`");
            }
            for m in merchants {
                println!(
                    "{}  {:<8}  {}  {:<20}  {}",
                    m.id, m.status, m.currency, m.time_zone, m.name
                );
            }
        }
        MerchantCommand::Show { merchant_id, json } => {
            let m = engine.merchant(&merchant_id).await?;
            let shops = engine.shops(&merchant_id).await?;
            let operators = engine.operators(&merchant_id).await?;
            let terminals = engine.terminals(&merchant_id).await?;
            if json {
                let mut v = merchant_json(&m);
                v["shops"] = shops
                    .iter()
                    .map(|s| json!({"shop_id": s.id.as_str(), "name": s.name}))
                    .collect();
                v["operators"] = operators
                    .iter()
                    .map(|o| json!({"operator_id": o.id.as_str(), "name": o.name, "status": o.status.as_str()}))
                    .collect();
                v["terminals"] = terminals
                    .iter()
                    .map(|t| json!({"terminal_no": t.terminal_no.as_str(), "shop_id": t.shop_id.as_ref().map(ShopId::as_str), "name": t.name}))
                    .collect();
                return print_json(&v);
            }
            println!("{}  {}", m.id, m.name);
            println!(
                "  status     {}\n  currency   {}\n  time zone  {}\n  fee        {}\n  created    {}",
                m.status,
                m.currency,
                m.time_zone,
                m.fee_rate,
                m.created_at.to_rfc3339()
            );
            println!("shops:");
            shops
                .iter()
                .for_each(|s| println!("  {}  {}", s.id, s.name));
            println!("operators:");
            operators
                .iter()
                .for_each(|o| println!("  {}  {:<8}  {}", o.id, o.status, o.name));
            println!("terminals:");
            terminals.iter().for_each(|t| {
                println!(
                    "  {:<32}  {:<13}  {}",
                    t.terminal_no,
                    t.shop_id.as_ref().map_or("-", ShopId::as_str),
                    t.name
                )
            });
        }
        MerchantCommand::RotateKey {
            merchant_id,
            grace,
            json,
        } => {
            let grace = grace
                .map(chrono::Duration::from_std)
                .transpose()
                .context("grace period too long")?;
            let rotated = engine.rotate_sign_key(&merchant_id, grace).await?;
            if json {
                return print_json(&json!({
                    "merchant_id": rotated.merchant_id.as_str(),
                    "sign_key": rotated.sign_key.expose(),
                    "key_version": rotated.version,
                    "previous_key_valid_until": rotated.previous_valid_until.map(|t| t.to_rfc3339()),
                }));
            }
            println!(
                "new sign key for {}: {}   (shown only now)",
                rotated.merchant_id,
                rotated.sign_key.expose()
            );
            match rotated.previous_valid_until {
                Some(until) => println!(
                    "the previous key keeps working until {}",
                    until.to_rfc3339()
                ),
                None => println!("the previous key no longer works"),
            }
        }
        MerchantCommand::SetFee { merchant_id, bps } => {
            engine.set_merchant_fee_rate(&merchant_id, bps).await?;
            println!("merchant {merchant_id}: fee {bps} on payments from now on");
        }
        MerchantCommand::Disable { merchant_id } => {
            engine
                .set_merchant_status(&merchant_id, MerchantStatus::Disabled)
                .await?;
            println!("merchant {merchant_id} disabled: its POS requests are refused");
        }
        MerchantCommand::Enable { merchant_id } => {
            engine
                .set_merchant_status(&merchant_id, MerchantStatus::Active)
                .await?;
            println!("merchant {merchant_id} enabled");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn operator(config: &Config, cmd: OperatorCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    match cmd {
        OperatorCommand::Add {
            merchant,
            name,
            json,
        } => {
            let op = engine.add_operator(&merchant.merchant_id, &name).await?;
            if json {
                return print_json(
                    &json!({"merchant_id": op.merchant_id.as_str(), "operator_id": op.id.as_str(), "name": op.name}),
                );
            }
            println!(
                "operator {} ({}) added to {}",
                op.id, op.name, op.merchant_id
            );
        }
        OperatorCommand::List { merchant, json } => {
            let ops = engine.operators(&merchant.merchant_id).await?;
            if json {
                return print_json(
                    &ops.iter()
                        .map(|o| json!({"operator_id": o.id.as_str(), "name": o.name, "status": o.status.as_str()}))
                        .collect(),
                );
            }
            ops.iter()
                .for_each(|o| println!("{}  {:<8}  {}", o.id, o.status, o.name));
        }
        OperatorCommand::SetPin {
            merchant,
            operator_id,
            pin,
        } => {
            let pin = match pin {
                Some(pin) => pin,
                None => read_pin()?,
            };
            engine
                .set_operator_pin(&merchant.merchant_id, &operator_id, &pin)
                .await?;
            println!(
                "PIN set for operator {operator_id} of {}: they can sign in at /pos \
                 (their open till sessions have ended)",
                merchant.merchant_id
            );
        }
        OperatorCommand::SetRole {
            merchant,
            operator_id,
            role,
        } => {
            engine
                .set_operator_role(&merchant.merchant_id, &operator_id, role)
                .await?;
            println!(
                "operator {operator_id} of {} is now a {}",
                merchant.merchant_id,
                role.as_str()
            );
        }
        OperatorCommand::SetRefundApproval { merchant, above } => {
            let m = engine.merchant(&merchant.merchant_id).await?;
            engine
                .set_refund_approval_above(
                    &merchant.merchant_id,
                    qrgate_domain::Money::new(above, m.currency),
                )
                .await?;
            println!(
                "refunds of {} above {} now need a supervisor's PIN on the till",
                merchant.merchant_id,
                qrgate_domain::Money::new(above, m.currency)
            );
        }
        OperatorCommand::Disable {
            merchant,
            operator_id,
        } => {
            engine
                .set_operator_status(
                    &merchant.merchant_id,
                    &operator_id,
                    OperatorStatus::Disabled,
                )
                .await?;
            println!(
                "operator {operator_id} of {} disabled: they cannot sign in to the till, and \
                 their open till sessions have ended",
                merchant.merchant_id
            );
        }
        OperatorCommand::Enable {
            merchant,
            operator_id,
        } => {
            engine
                .set_operator_status(&merchant.merchant_id, &operator_id, OperatorStatus::Active)
                .await?;
            println!("operator {operator_id} of {} enabled", merchant.merchant_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn shop(config: &Config, cmd: ShopCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    match cmd {
        ShopCommand::Add {
            merchant,
            name,
            json,
        } => {
            let shop = engine.add_shop(&merchant.merchant_id, &name).await?;
            if json {
                return print_json(&json!({"shop_id": shop.id.as_str(), "name": shop.name}));
            }
            println!("shop {} ({}) added", shop.id, shop.name);
        }
        ShopCommand::List { merchant, json } => {
            let shops = engine.shops(&merchant.merchant_id).await?;
            if json {
                return print_json(
                    &shops
                        .iter()
                        .map(|s| json!({"shop_id": s.id.as_str(), "name": s.name}))
                        .collect(),
                );
            }
            shops.iter().for_each(|s| println!("{}  {}", s.id, s.name));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn terminal(config: &Config, cmd: TerminalCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    match cmd {
        TerminalCommand::Add {
            merchant,
            terminal_no,
            shop,
            name,
            json,
        } => {
            let t = engine
                .add_terminal(
                    &merchant.merchant_id,
                    &terminal_no,
                    shop.as_ref(),
                    name.as_deref(),
                )
                .await?;
            if json {
                return print_json(
                    &json!({"merchant_id": t.merchant_id.as_str(), "terminal_no": t.terminal_no.as_str(), "shop_id": t.shop_id.as_ref().map(ShopId::as_str), "name": t.name}),
                );
            }
            println!("terminal {} added to {}", t.terminal_no, t.merchant_id);
        }
        TerminalCommand::List { merchant, json } => {
            let ts = engine.terminals(&merchant.merchant_id).await?;
            if json {
                return print_json(
                    &ts.iter()
                        .map(|t| json!({"terminal_no": t.terminal_no.as_str(), "shop_id": t.shop_id.as_ref().map(ShopId::as_str), "name": t.name}))
                        .collect(),
                );
            }
            ts.iter().for_each(|t| {
                println!(
                    "{}  {}  {}",
                    t.terminal_no,
                    t.shop_id.as_ref().map_or("-", ShopId::as_str),
                    t.name
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn callbacks(config: &Config, cmd: CallbacksCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    match cmd {
        CallbacksCommand::List {
            merchant_id,
            limit,
            json,
        } => {
            let list = engine
                .callback_records(merchant_id.as_ref(), limit.clamp(1, 1000))
                .await?;
            let mut rows = Vec::new();
            for r in &list {
                let cb = &r.callback;
                let attempts = engine.callback_attempts(&cb.order_key).await?;
                let last = attempts.last();
                rows.push(json!({
                    "order_key": cb.order_key,
                    "order_id": r.order_id.as_str(),
                    "merchant_id": cb.merchant_id.as_str(),
                    "url": cb.url,
                    "status": cb.status.as_str(),
                    "attempts": cb.attempts,
                    "next_attempt_at": cb.next_attempt_at.map(|t| t.to_rfc3339()),
                    "last_http_status": last.and_then(|a| a.http_status),
                    "last_answer": last.map(|a| a.excerpt.clone()),
                }));
            }
            if json {
                return print_json(&serde_json::Value::Array(rows));
            }
            if rows.is_empty() {
                println!("no notifications");
            }
            for r in rows {
                println!(
                    "{}  {}  {:<32}  {:<9}  attempts {:<3}  last {}  {}",
                    r["order_key"].as_str().unwrap_or(""),
                    r["merchant_id"].as_str().unwrap_or(""),
                    r["order_id"].as_str().unwrap_or(""),
                    r["status"].as_str().unwrap_or(""),
                    r["attempts"],
                    r["last_http_status"],
                    r["url"].as_str().unwrap_or(""),
                );
            }
        }
        CallbacksCommand::Show { order, json } => {
            let history = engine
                .callback_history(&order.id, order.merchant_id.as_ref())
                .await?;
            let (r, cb) = (&history.record, &history.record.callback);
            if json {
                return print_json(&json!({
                    "order_key": cb.order_key,
                    "order_id": r.order_id.as_str(),
                    "merchant_id": cb.merchant_id.as_str(),
                    "url": cb.url,
                    "status": cb.status.as_str(),
                    "attempts": history.attempts.iter().map(|a| json!({
                        "at": a.at.to_rfc3339(),
                        "http_status": a.http_status,
                        "latency_ms": a.latency_ms,
                        "answer": a.excerpt,
                    })).collect::<Vec<_>>(),
                    "next_attempt_at": cb.next_attempt_at.map(|t| t.to_rfc3339()),
                    "created_at": cb.created_at.to_rfc3339(),
                }));
            }
            println!("notification of order {} ({})", r.order_id, cb.merchant_id);
            println!("  order key     {}", cb.order_key);
            println!("  url           {}", cb.url);
            println!("  status        {}", cb.status.as_str());
            println!("  queued        {}", cb.created_at.to_rfc3339());
            match cb.next_attempt_at {
                Some(t) => println!("  next attempt  {}", t.to_rfc3339()),
                None => println!("  next attempt  none"),
            }
            println!("attempts ({}):", history.attempts.len());
            for (n, a) in history.attempts.iter().enumerate() {
                let status = a
                    .http_status
                    .map_or("no HTTP answer".to_owned(), |s| format!("HTTP {s}"));
                println!(
                    "  {:>2}. {}  {status}  {} ms  {:?}",
                    n + 1,
                    a.at.to_rfc3339(),
                    a.latency_ms,
                    a.excerpt
                );
            }
        }
        CallbacksCommand::Retry { order } => {
            let r = engine
                .retry_named_callback(&order.id, order.merchant_id.as_ref())
                .await?;
            println!(
                "the notification of order {} ({}, {}) will be sent again now (by a running gateway)",
                r.order_id, r.callback.merchant_id, r.callback.order_key
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn fx(config: &Config, cmd: FxCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    match cmd {
        FxCommand::Set { currency, rate } => {
            let quote = engine.set_fx_rate(currency, rate).await?;
            println!(
                "1 {} = {} CNY (sent as rate {})",
                quote.currency,
                quote.rate,
                quote.rate.scaled()
            );
        }
        FxCommand::List { json } => {
            let rates = engine.fx_rates().await?;
            if json {
                return print_json(
                    &rates
                        .iter()
                        .map(|q| json!({"currency": q.currency.code(), "rate": q.rate.to_string(), "rate_e8": q.rate.scaled(), "source": q.source, "updated_at": q.updated_at.to_rfc3339()}))
                        .collect(),
                );
            }
            if rates.is_empty() {
                println!("no rates set: set one with `qrgate fx set CAD 5.1234`");
            }
            rates.iter().for_each(|q| {
                println!(
                    "1 {} = {} CNY  ({}, {})",
                    q.currency,
                    q.rate,
                    q.source,
                    q.updated_at.to_rfc3339()
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
