//! `qrgate pos`: a POS in the terminal. `pos call` sends one request with the OTTPAY codec;
//! `pos scan` takes a payment at the till with a barcode scanner, on `qrgate-client` as an
//! integrator would use it.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use qrgate_client::{
    detect_wallet, format_amount, mask_code, new_order_id, parse_amount, BizType, Cents,
    OrderStatus, PassivePayRequest, PassivePayResponse, PosClient, PosConfig, RspCode,
    StatusQueryResponse,
};
use qrgate_ottpay::{Action, Data, RequestEnvelope, ResponseEnvelope, SignKey};
use serde::Deserialize;

/// Where `qrgate serve` listens by default.
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080/processV2";

/// How the POS reaches the gateway and who it is. Flags override the environment, which
/// overrides the profile file.
#[derive(Debug, Args)]
pub struct Connection {
    /// The gateway's OTTPAY endpoint [default: http://127.0.0.1:8080/processV2].
    #[arg(long, env = "QRGATE_POS_ENDPOINT", value_name = "URL")]
    endpoint: Option<String>,
    /// The merchant id the POS calls as.
    #[arg(
        long = "merchant",
        alias = "merchant-id",
        env = "QRGATE_POS_MERCHANT_ID",
        value_name = "ID"
    )]
    merchant_id: Option<String>,
    /// The merchant's sign key (prefer the environment variable or the profile: a command
    /// line is visible to other users of the machine).
    #[arg(
        long,
        env = "QRGATE_POS_SIGN_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    sign_key: Option<String>,
    /// The operator (cashier) id, 10 digits, sent with every request.
    #[arg(
        long = "operator",
        alias = "operator-id",
        env = "QRGATE_POS_OPERATOR_ID",
        value_name = "ID"
    )]
    operator_id: Option<String>,
    /// The terminal number sent in the envelope.
    #[arg(long, env = "QRGATE_POS_TERMINAL_NO", value_name = "NO")]
    terminal_no: Option<String>,
    /// A TOML file with any of the keys endpoint, merchant_id, sign_key, operator_id and
    /// terminal_no (flags and environment variables override it).
    #[arg(long, env = "QRGATE_POS_PROFILE", value_name = "FILE")]
    profile: Option<PathBuf>,
}

/// The `--profile` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    endpoint: Option<String>,
    merchant_id: Option<String>,
    sign_key: Option<String>,
    operator_id: Option<String>,
    terminal_no: Option<String>,
}

/// The connection after flags, environment and profile were merged.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) endpoint: String,
    pub(crate) merchant_id: String,
    pub(crate) sign_key: String,
    pub(crate) operator_id: Option<String>,
    pub(crate) terminal_no: Option<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("endpoint", &self.endpoint)
            .field("merchant_id", &self.merchant_id)
            .field("sign_key", &"***")
            .field("operator_id", &self.operator_id)
            .field("terminal_no", &self.terminal_no)
            .finish()
    }
}

fn load_profile(path: &Path) -> anyhow::Result<Profile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the profile {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "the profile {} is not valid (TOML with the keys endpoint, merchant_id, sign_key, \
             operator_id, terminal_no)",
            path.display()
        )
    })
}

impl Connection {
    pub(crate) fn resolve(&self) -> anyhow::Result<Resolved> {
        let profile = match &self.profile {
            Some(path) => load_profile(path)?,
            None => Profile::default(),
        };
        merge(self, profile)
    }
}

/// Flags (clap has already put environment variables in their place) over the profile;
/// an empty value counts as absent.
fn merge(flags: &Connection, profile: Profile) -> anyhow::Result<Resolved> {
    fn pick(flag: &Option<String>, profile: Option<String>) -> Option<String> {
        let present = |s: &String| !s.trim().is_empty();
        flag.clone()
            .filter(present)
            .or_else(|| profile.filter(present))
    }
    let Some(merchant_id) = pick(&flags.merchant_id, profile.merchant_id) else {
        bail!(
            "no merchant id: give --merchant, set QRGATE_POS_MERCHANT_ID, or put merchant_id in \
             the --profile file"
        );
    };
    let Some(sign_key) = pick(&flags.sign_key, profile.sign_key) else {
        bail!(
            "no sign key: set QRGATE_POS_SIGN_KEY, put sign_key in the --profile file, or give \
             --sign-key"
        );
    };
    Ok(Resolved {
        endpoint: pick(&flags.endpoint, profile.endpoint)
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
        merchant_id,
        sign_key,
        operator_id: pick(&flags.operator_id, profile.operator_id),
        terminal_no: pick(&flags.terminal_no, profile.terminal_no),
    })
}

const SCAN_ABOUT: &str = "\
Take a payment at the till: scan the customer's payment code and charge it (PASSIVEPAY).

The amount comes from --amount, or is asked for on the terminal (\"Amount: \"). Then the command \
asks \"Scan the customer's payment code:\" and reads one line.

Using a barcode scanner: a USB (or Bluetooth) scanner works like a keyboard: it types the code \
it reads and presses Enter. Click into this terminal window so that it has the focus, then scan \
the payment code on the customer's phone (the \"Pay\" / \"Money\" screen of WeChat Pay, Alipay or \
UnionPay). Without a scanner, type the digits printed under the barcode and press Enter. qrgate \
never prints the code whole: it shows it masked, like 1345********6789.

The wallet is recognised from the code: WeChat Pay 18 digits starting 10 to 15, Alipay 16 to 24 \
digits starting 25 to 30, UnionPay 19 digits starting 62. Anything else is refused before \
anything is sent. When the wallet asks the customer to confirm (e.g. with their password), the \
command shows how long it has been waiting and asks the gateway every 2 seconds, for up to \
--wait-secs. If the gateway's answer is lost, the payment is never sent again: the command asks \
for the order's status instead (which is why it chooses the order id itself). At the end it \
prints a receipt on standard output; prompts and progress go to standard error.

Connection: flags override the QRGATE_POS_* environment variables, which override the \
--profile file (TOML with the keys endpoint, merchant_id, sign_key, operator_id, terminal_no).";

const SCAN_EXIT_STATUS: &str = "\
Exit status:
  0  paid
  1  declined, or failed (the customer was not charged)
  2  usage or configuration error, or not a payment code (nothing was sent)
  3  the outcome is still unknown when the wait ended: check the order later, e.g.
     qrgate pos call STATUS_QUERY '{\"order_id\":\"...\"}', before charging again";

#[derive(Debug, Subcommand)]
pub enum PosCommand {
    /// Send one OTTPAY request and print the decrypted, verified answer.
    ///
    /// Exit status: 0 when rsp_code is SUCCESS, 2 for any other rsp_code (or a missing merchant
    /// id or sign key), 1 when the gateway cannot be reached or its answer cannot be verified.
    Call {
        /// The action, e.g. EX_RATE_QUERY.
        action: String,
        /// The request data as a JSON object of strings, e.g. '{"fee_type":"CAD"}'.
        #[arg(default_value = "{}")]
        data: String,
        #[command(flatten)]
        connection: Connection,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Take a payment at the till with a barcode scanner: scan the customer's payment code,
    /// charge it, wait for their confirmation, print a receipt.
    #[command(long_about = SCAN_ABOUT, after_help = SCAN_EXIT_STATUS)]
    Scan(ScanArgs),
    /// Take a payment with a QR code the customer scans: show the order's QR, wait for the
    /// customer to pay in their wallet app, print a receipt.
    #[command(
        long_about = crate::pos_charge::CHARGE_ABOUT,
        after_help = crate::pos_charge::CHARGE_EXIT_STATUS
    )]
    Charge(crate::pos_charge::ChargeArgs),
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    connection: Connection,
    /// The amount to charge, in the merchant's currency, e.g. 12.34 (at most 2 decimals).
    /// Without it, the amount is asked for on the terminal.
    #[arg(long, value_name = "AMOUNT")]
    amount: Option<String>,
    /// A tip on top of the amount, e.g. 0.50.
    #[arg(long, value_name = "AMOUNT")]
    tip: Option<String>,
    /// The order id. Default: P, the local time as yyyyMMddHHmmss and 6 random digits.
    #[arg(long, value_name = "ID")]
    order_id: Option<String>,
    /// How long to wait for the customer to confirm the payment, in seconds.
    #[arg(long, default_value_t = 90, value_name = "SECS")]
    wait_secs: u64,
    /// How long one request to the gateway may take, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
}

pub async fn run(cmd: PosCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PosCommand::Call {
            action,
            data,
            connection,
            timeout,
        } => call(&action, &data, &connection, timeout).await,
        PosCommand::Scan(args) => Ok(scan(args).await),
        PosCommand::Charge(args) => Ok(crate::pos_charge::run(args).await),
    }
}

async fn call(
    action: &str,
    data: &str,
    connection: &Connection,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    let Some(action) = Action::parse(action) else {
        bail!(
            "unknown action {action:?}: expected one of {}",
            Action::ALL.map(Action::as_str).join(", ")
        );
    };
    let data: Data = serde_json::from_str(data).context("data must be a JSON object")?;
    let connection = match connection.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let key = SignKey::new(connection.sign_key.clone());
    let envelope = RequestEnvelope::seal(
        action,
        &connection.merchant_id,
        connection.terminal_no.as_deref(),
        connection.operator_id.as_deref(),
        &data,
        &key,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout))
        .build()
        .context("cannot build the HTTP client")?;
    let body = http
        .post(&connection.endpoint)
        .header("content-type", "application/json")
        .body(envelope.to_json())
        .send()
        .await
        .with_context(|| format!("cannot reach {}", connection.endpoint))?
        .bytes()
        .await
        .context("the gateway's answer was cut off")?;
    let response = ResponseEnvelope::parse(&body)
        .map_err(|e| anyhow::anyhow!("the gateway's answer is not an OTTPAY envelope: {e}"))?;
    println!("rsp_code  {}", response.rsp_code);
    println!("rsp_msg   {}", response.rsp_msg);
    let success = response.rsp_code == "SUCCESS";
    match response.open(&key) {
        Ok(opened) => println!("data      {}", serde_json::to_string_pretty(&opened)?),
        // A refusal for an unknown merchant cannot be sealed with its key.
        Err(e) if !success => {
            println!("data      (not verifiable with this sign key: {e})")
        }
        Err(e) => bail!("the answer's data does not verify with this sign key: {e}"),
    }
    Ok(if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

// ---------------------------------------------------------------------------------------
// pos scan

/// `pos scan` exit statuses (documented in SCAN_EXIT_STATUS).
const EXIT_PAID: u8 = 0;
const EXIT_DECLINED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNKNOWN: u8 = 3;

/// How often the order's status is asked while waiting.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The longest a single status query may take while waiting.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A usage or configuration problem: reported, exit status 2, nothing sent.
struct Usage(String);

impl<E: std::fmt::Display> From<E> for Usage {
    fn from(e: E) -> Self {
        Usage(e.to_string())
    }
}

/// What the wallet's side of a settled payment said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Settlement {
    trade_time: Option<String>,
    bizpay_order_id: Option<String>,
}

impl From<&PassivePayResponse> for Settlement {
    fn from(r: &PassivePayResponse) -> Self {
        Self {
            trade_time: r.trade_time.clone(),
            bizpay_order_id: r.bizpay_order_id.clone(),
        }
    }
}

impl From<&StatusQueryResponse> for Settlement {
    fn from(r: &StatusQueryResponse) -> Self {
        Self {
            trade_time: r.trade_time.clone(),
            bizpay_order_id: r.bizpay_order_id.clone(),
        }
    }
}

/// How a payment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Paid(Settlement),
    /// Refused by the gateway or the wallet; the message says why.
    Declined(String),
    /// Never reached the gateway: nothing was charged.
    Failed(String),
    /// Still unknown; the message says what is known.
    Unknown(String),
}

impl Outcome {
    fn exit_status(&self) -> u8 {
        match self {
            Outcome::Paid(_) => EXIT_PAID,
            Outcome::Declined(_) | Outcome::Failed(_) => EXIT_DECLINED,
            Outcome::Unknown(_) => EXIT_UNKNOWN,
        }
    }
}

/// Everything about the sale, for the receipt.
struct Sale {
    merchant_id: String,
    order_id: String,
    wallet: BizType,
    masked_code: String,
    amount: Cents,
    tip: Option<Cents>,
}

async fn scan(args: ScanArgs) -> ExitCode {
    match prepare_and_charge(args).await {
        Ok(status) => ExitCode::from(status),
        Err(Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Shows `prompt` on standard error and reads one line from standard input; `None` at the
/// end of the input.
fn ask(prompt: &str) -> Result<Option<String>, Usage> {
    let mut err = std::io::stderr();
    // A prompt that cannot be shown does not stop a scanner from typing.
    let _ = write!(err, "{prompt} ");
    let _ = err.flush();
    let mut line = String::new();
    let n = std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Usage(format!("cannot read standard input: {e}")))?;
    if !std::io::stdin().is_terminal() {
        // The typed line was not echoed: end the prompt's line.
        let _ = writeln!(err);
    }
    Ok((n > 0).then_some(line))
}

fn amount_arg(what: &str, text: &str) -> Result<Cents, Usage> {
    parse_amount(text).map_err(|e| Usage(format!("invalid {what} {:?}: {e}", text.trim())))
}

async fn prepare_and_charge(args: ScanArgs) -> Result<u8, Usage> {
    let connection = args
        .connection
        .resolve()
        .map_err(|e| Usage(format!("{e:#}")))?;
    let tip = args
        .tip
        .as_deref()
        .map(|t| amount_arg("--tip", t))
        .transpose()?;
    if let Some(order_id) = &args.order_id {
        if order_id.is_empty()
            || order_id
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Usage(format!(
                "invalid --order-id {order_id:?}: it must be non-empty, without spaces"
            )));
        }
    }
    let client = PosClient::new(PosConfig {
        endpoint: connection.endpoint.clone(),
        merchant_id: connection.merchant_id.clone(),
        sign_key: connection.sign_key.clone(),
        terminal_no: connection.terminal_no.clone(),
        operator_id: connection.operator_id.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
    })?;

    let amount = match &args.amount {
        Some(text) => amount_arg("--amount", text)?,
        None => {
            let Some(line) = ask("Amount:")? else {
                return Err(Usage("no amount was entered (end of input)".into()));
            };
            amount_arg("amount", &line)?
        }
    };
    if amount == Cents(0) {
        return Err(Usage("the amount must be more than 0.00".into()));
    }

    let prompt = "Scan the customer's payment code:";
    let Some(line) = ask(prompt)? else {
        return Err(Usage("no payment code was scanned (end of input)".into()));
    };
    let code = line.trim();
    let masked = mask_code(code);
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        // The terminal echoed what the scanner typed: write the line again, masked.
        eprint!("\x1b[1A\r\x1b[2K{prompt} {masked}\n");
    }
    let Some(wallet) = detect_wallet(code) else {
        return Err(Usage(format!(
            "{masked} ({} characters) is not a WeChat Pay, Alipay or UnionPay payment code; \
             nothing was sent. Ask the customer to open the payment screen of their wallet \
             app and scan again.",
            code.chars().count()
        )));
    };

    let sale = Sale {
        merchant_id: connection.merchant_id.clone(),
        order_id: args.order_id.clone().unwrap_or_else(new_order_id),
        wallet,
        masked_code: masked,
        amount,
        tip,
    };
    eprintln!(
        "{} {}: charging {} for order {}",
        wallet_name(wallet),
        sale.masked_code,
        format_amount(total(&sale)),
        sale.order_id
    );
    let request = PassivePayRequest {
        order_id: Some(sale.order_id.clone()),
        operator_id: None,
        amount,
        tip,
        sale_num: None,
        auth_code: code.to_owned(),
        biz_type: wallet,
    };
    let wait = Duration::from_secs(args.wait_secs);
    let outcome = charge(&client, &request, &sale, wait, args.order_id.is_some()).await;
    print_receipt(&sale, &outcome);
    Ok(outcome.exit_status())
}

fn total(sale: &Sale) -> Cents {
    Cents(sale.amount.0.saturating_add(sale.tip.map_or(0, |t| t.0)))
}

/// Sends the payment once, and follows it to an outcome.
async fn charge(
    client: &PosClient,
    request: &PassivePayRequest,
    sale: &Sale,
    wait: Duration,
    order_id_given: bool,
) -> Outcome {
    let answer = match client.passive_pay(request).await {
        Ok(answer) => answer,
        Err(e) if !e.may_have_been_processed() => return Outcome::Failed(e.to_string()),
        Err(e) => {
            // Sent, but the answer is lost or unusable: never send it again; ask instead.
            eprintln!("{e}");
            eprintln!(
                "asking the gateway about order {} instead of charging again",
                sale.order_id
            );
            return wait_for_outcome(client, sale, wait, Waiting::Unknown, order_id_given).await;
        }
    };
    match answer.rsp_code.known() {
        Some(RspCode::Success) => match &answer.data {
            Some(data) if data.order_status == OrderStatus::Success => {
                Outcome::Paid(Settlement::from(data))
            }
            Some(data)
                if matches!(
                    data.order_status,
                    OrderStatus::Failure | OrderStatus::OrderClosed
                ) =>
            {
                Outcome::Declined(format!("the payment was not made ({})", data.order_status))
            }
            _ => wait_for_outcome(client, sale, wait, Waiting::Customer, order_id_given).await,
        },
        Some(RspCode::Processing) => {
            wait_for_outcome(client, sale, wait, Waiting::Customer, order_id_given).await
        }
        // A timeout between the gateway and the wallet, or a code this POS does not know:
        // the payment may or may not have been made.
        Some(RspCode::Timeout) | None => {
            eprintln!(
                "the gateway answered {}: {}",
                answer.rsp_code, answer.rsp_msg
            );
            wait_for_outcome(client, sale, wait, Waiting::Unknown, order_id_given).await
        }
        Some(RspCode::Fail) => Outcome::Declined(answer.rsp_msg),
        Some(code) => Outcome::Declined(format!("{} ({code})", answer.rsp_msg)),
    }
}

/// Why the POS is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The wallet asked the customer to confirm.
    Customer,
    /// The payment's answer was lost.
    Unknown,
}

impl Waiting {
    fn label(self) -> &'static str {
        match self {
            Waiting::Customer => "waiting for the customer to confirm…",
            Waiting::Unknown => "checking whether the payment went through…",
        }
    }
}

/// One line of progress on standard error: rewritten in place on a terminal, a new line
/// per status query otherwise.
struct Progress {
    tty: bool,
    shown: bool,
}

impl Progress {
    fn show(&mut self, label: &str, elapsed: Duration, queried: bool) {
        let mut err = std::io::stderr();
        let secs = elapsed.as_secs();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{label} {secs}s");
            let _ = err.flush();
            self.shown = true;
        } else if queried {
            let _ = writeln!(err, "{label} {secs}s");
        }
    }

    fn finish(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

/// What one status query said.
enum Polled {
    Final(Outcome),
    /// Not final yet; why, when there is something to say.
    Pending(Option<String>),
}

async fn poll_once(client: &PosClient, sale: &Sale, check_amount: bool) -> Polled {
    let answer =
        match tokio::time::timeout(QUERY_TIMEOUT, client.status_query(&sale.order_id)).await {
            Err(_) => return Polled::Pending(Some("the status query timed out".into())),
            Ok(Err(e)) => return Polled::Pending(Some(e.to_string())),
            Ok(Ok(answer)) => answer,
        };
    let Some(status) = answer.data.as_ref().filter(|_| answer.is_success()) else {
        // E.g. the order is not known (yet): the payment's request may still be on its way.
        return Polled::Pending(Some(format!(
            "the gateway answered {}: {}",
            answer.rsp_code, answer.rsp_msg
        )));
    };
    if check_amount
        && ![status.amount, status.total_amount]
            .iter()
            .any(|a| *a == sale.amount || *a == total(sale))
    {
        // An order given with --order-id that is not this sale (e.g. an id used before).
        return Polled::Final(Outcome::Unknown(format!(
            "order {} exists for another amount ({}): it is not this sale",
            sale.order_id,
            format_amount(status.total_amount)
        )));
    }
    match status.order_status {
        OrderStatus::Success | OrderStatus::PartialRefunded | OrderStatus::FullyRefunded => {
            Polled::Final(Outcome::Paid(Settlement::from(status)))
        }
        OrderStatus::Failure => {
            let reason = status
                .rsp_msg
                .clone()
                .filter(|_| status.rsp_code.as_deref().is_some_and(|c| c != "SUCCESS"))
                .unwrap_or_else(|| "the wallet did not take the payment".into());
            Polled::Final(Outcome::Declined(reason))
        }
        OrderStatus::OrderClosed => Polled::Final(Outcome::Declined(
            "the payment was cancelled or reversed: the customer was not charged".into(),
        )),
        OrderStatus::Init
        | OrderStatus::NotPay
        | OrderStatus::Canceling
        | OrderStatus::AuthFinish => Polled::Pending(None),
    }
}

/// Asks for the order's status every [`POLL_INTERVAL`] until it is final or `wait` has
/// passed (or the cashier presses Ctrl-C).
async fn wait_for_outcome(
    client: &PosClient,
    sale: &Sale,
    wait: Duration,
    why: Waiting,
    order_id_given: bool,
) -> Outcome {
    let check_amount = order_id_given && why == Waiting::Unknown;
    let started = Instant::now();
    let mut progress = Progress {
        tty: std::io::stderr().is_terminal(),
        shown: false,
    };
    let mut last_problem: Option<String> = None;
    let mut next_query = started + POLL_INTERVAL;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut interrupted => {
                progress.finish();
                return Outcome::Unknown("interrupted while waiting".into());
            }
        }
        let now = Instant::now();
        let out_of_time = now.duration_since(started) >= wait;
        // Ticks come every second; a little slack keeps queries on the 2 s beat.
        let query = now + Duration::from_millis(200) >= next_query || out_of_time;
        progress.show(why.label(), now.duration_since(started), query);
        if !query {
            continue;
        }
        let polled = tokio::select! {
            p = poll_once(client, sale, check_amount) => p,
            _ = &mut interrupted => {
                progress.finish();
                return Outcome::Unknown("interrupted while waiting".into());
            }
        };
        // On the beat, unless the query itself took longer than the interval.
        next_query = (next_query + POLL_INTERVAL).max(Instant::now());
        match polled {
            Polled::Final(outcome) => {
                progress.finish();
                return outcome;
            }
            Polled::Pending(problem) => {
                if let Some(p) = &problem {
                    if last_problem.as_ref() != Some(p) {
                        progress.finish();
                        eprintln!("{p}");
                    }
                }
                last_problem = problem;
            }
        }
        if out_of_time {
            progress.finish();
            let why_unknown = match (why, last_problem) {
                (_, Some(problem)) => {
                    format!("no final answer after {}s ({problem})", wait.as_secs())
                }
                (Waiting::Customer, None) => {
                    format!("the customer had not confirmed after {}s", wait.as_secs())
                }
                (Waiting::Unknown, None) => {
                    format!("the payment was still pending after {}s", wait.as_secs())
                }
            };
            return Outcome::Unknown(why_unknown);
        }
    }
}

fn wallet_name(wallet: BizType) -> &'static str {
    match wallet {
        BizType::WechatPay => "WeChat Pay",
        BizType::Alipay => "Alipay",
        BizType::UnionPay => "UnionPay",
    }
}

/// `yyyyMMddHHmmss` as `yyyy-MM-dd HH:mm:ss`; anything else as it is.
fn wire_time(text: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%S")
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| text.to_owned())
}

fn receipt(sale: &Sale, outcome: &Outcome) -> String {
    let rule = "=".repeat(44);
    let mut lines = vec![rule.clone()];
    let mut row = |label: &str, value: &str| lines.push(format!("{label:<14}{value:>30}"));
    row("Merchant", &sale.merchant_id);
    row("Order", &sale.order_id);
    row(
        "Wallet",
        &format!("{} {}", wallet_name(sale.wallet), sale.masked_code),
    );
    row("Amount", &format_amount(sale.amount));
    row("Tip", &format_amount(sale.tip.unwrap_or_default()));
    row("Total", &format_amount(total(sale)));
    let settlement = match outcome {
        Outcome::Paid(s) => Some(s),
        _ => None,
    };
    row(
        "Transaction",
        settlement
            .and_then(|s| s.bizpay_order_id.as_deref())
            .unwrap_or("-"),
    );
    let time = settlement
        .and_then(|s| s.trade_time.as_deref())
        .map(wire_time)
        .unwrap_or_else(|| chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string());
    row("Time", &time);
    lines.push("-".repeat(44));
    match outcome {
        Outcome::Paid(_) => lines.push("PAID".into()),
        Outcome::Declined(why) => {
            lines.push(format!("DECLINED: {why}"));
            lines.push("The customer was not charged.".into());
        }
        Outcome::Failed(why) => {
            lines.push(format!("FAILED: {why}"));
            lines.push("The customer was not charged.".into());
        }
        Outcome::Unknown(why) => {
            lines.push(format!("NOT CONFIRMED: {why}"));
            lines.push(format!(
                "The payment may still complete. Check order {} before charging the \
                 customer again.",
                sale.order_id
            ));
        }
    }
    lines.push(rule);
    lines.join("\n")
}

fn print_receipt(sale: &Sale, outcome: &Outcome) {
    println!("{}", receipt(sale, outcome));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Connection {
        Connection {
            endpoint: None,
            merchant_id: None,
            sign_key: None,
            operator_id: None,
            terminal_no: None,
            profile: None,
        }
    }

    fn profile(text: &str) -> Profile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flags_override_the_profile() {
        let p = || {
            profile(
                r#"
                endpoint = "http://gw.example/processV2"
                merchant_id = "ON00000001"
                sign_key = "AAAA"
                operator_id = "0000000001"
                terminal_no = "T1"
                "#,
            )
        };
        let from_profile = merge(&flags(), p()).unwrap();
        assert_eq!(
            from_profile,
            Resolved {
                endpoint: "http://gw.example/processV2".into(),
                merchant_id: "ON00000001".into(),
                sign_key: "AAAA".into(),
                operator_id: Some("0000000001".into()),
                terminal_no: Some("T1".into()),
            }
        );
        let mut f = flags();
        f.merchant_id = Some("ON00000002".into());
        f.operator_id = Some("0000000002".into());
        f.terminal_no = Some(String::new()); // empty: absent
        let merged = merge(&f, p()).unwrap();
        assert_eq!(merged.merchant_id, "ON00000002");
        assert_eq!(merged.operator_id.as_deref(), Some("0000000002"));
        assert_eq!(merged.terminal_no.as_deref(), Some("T1"));
        assert_eq!(merged.sign_key, "AAAA");
        assert!(!format!("{merged:?}").contains("AAAA"));
    }

    #[test]
    fn merchant_and_key_are_required_and_the_endpoint_has_a_default() {
        let err = merge(&flags(), Profile::default()).unwrap_err();
        assert!(err.to_string().contains("--merchant"), "{err}");
        let err = merge(&flags(), profile(r#"merchant_id = "ON00000001""#)).unwrap_err();
        assert!(err.to_string().contains("QRGATE_POS_SIGN_KEY"), "{err}");
        let ok = merge(
            &flags(),
            profile("merchant_id = \"ON00000001\"\nsign_key = \"K\""),
        )
        .unwrap();
        assert_eq!(ok.endpoint, DEFAULT_ENDPOINT);
        assert_eq!((ok.operator_id, ok.terminal_no), (None, None));
    }

    #[test]
    fn a_profile_with_an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("till.toml");
        std::fs::write(&path, "merchant = \"ON00000001\"\n").unwrap();
        let err = load_profile(&path).unwrap_err();
        assert!(format!("{err:#}").contains("merchant_id"), "{err:#}");
        assert!(load_profile(&dir.path().join("missing.toml")).is_err());
    }

    fn sale(tip: Option<Cents>) -> Sale {
        Sale {
            merchant_id: "ON00000001".into(),
            order_id: "P20240101120000123456".into(),
            wallet: BizType::WechatPay,
            masked_code: "1345********6789".into(),
            amount: Cents(1234),
            tip,
        }
    }

    #[test]
    fn receipts() {
        let paid = receipt(
            &sale(Some(Cents(50))),
            &Outcome::Paid(Settlement {
                trade_time: Some("20240101120000".into()),
                bizpay_order_id: Some("4200000001".into()),
            }),
        );
        for text in [
            "ON00000001",
            "P20240101120000123456",
            "WeChat Pay 1345********6789",
            "12.34",
            "0.50",
            "12.84",
            "4200000001",
            "2024-01-01 12:00:00",
            "\nPAID\n",
        ] {
            assert!(paid.contains(text), "{text:?} missing from\n{paid}");
        }
        let declined = receipt(
            &sale(None),
            &Outcome::Declined("insufficient balance (FAIL)".into()),
        );
        assert!(declined.contains("DECLINED: insufficient balance (FAIL)"));
        assert!(declined.contains("0.00"));
        let unknown = receipt(&sale(None), &Outcome::Unknown("no answer".into()));
        assert!(unknown.contains("NOT CONFIRMED: no answer"));
        assert!(unknown.contains("Check order P20240101120000123456"));
        assert_eq!(Outcome::Unknown(String::new()).exit_status(), 3);
        assert_eq!(Outcome::Failed(String::new()).exit_status(), 1);
    }

    #[test]
    fn wire_times() {
        assert_eq!(wire_time("20240102030405"), "2024-01-02 03:04:05");
        assert_eq!(wire_time("soon"), "soon");
    }
}
