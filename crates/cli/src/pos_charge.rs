//! `qrgate pos charge`: take a payment with a QR code the customer scans (ACTIVEPAY), on
//! `qrgate-client` as an integrator would use it, with a live countdown while the customer
//! pays in their wallet app.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use qrcode::render::{svg, unicode};
use qrcode::QrCode;
use qrgate_client::{
    format_amount, new_order_id, parse_amount, ActivePayRequest, BizType, Cents, OrderStatus,
    PosClient, PosConfig, RspCode, StatusQueryResponse,
};

use crate::pos::Connection;

/// Where notifications go when neither --call-back-url nor QRGATE_POS_CALL_BACK_URL is set:
/// the gateway stores it, nothing can be delivered there.
const PLACEHOLDER_CALL_BACK_URL: &str = "https://pos.invalid/notify";

pub const CHARGE_ABOUT: &str = "\
Take a payment with a QR code the customer scans (ACTIVEPAY).

The command creates the order at the gateway for AMOUNT (plus --tip) in the chosen --wallet, and \
shows the order's QR code on standard error, drawn with Unicode half blocks (dark on light, with a \
quiet zone, so that a phone camera can read it from the screen). The QR's content (the answer's \
code_url) is printed as text too, and written as an image with --svg FILE and/or --png FILE.

The customer opens WeChat Pay, Alipay or UnionPay, scans the QR and pays. Meanwhile the command \
shows a live countdown (\"waiting for the customer to pay… 4:12 left\") and asks the gateway for \
the order's status (STATUS_QUERY) every 2 seconds, until the order is paid (receipt PAID), closed \
or failed (receipt NOT PAID), or --wait-secs have passed (the order may still be paid later: \
check it before charging again). Ctrl-C stops waiting the same way. The receipt goes to standard \
output; the QR code and the progress go to standard error.

The order id is chosen by this command (P, the local time as yyyyMMddHHmmss and 6 random digits) \
unless --order-id is given. If the gateway's answer to ACTIVEPAY is lost, the order is never \
created again: the command asks for that order's status instead.

Call-back URL: the gateway sends a notification to --call-back-url (or QRGATE_POS_CALL_BACK_URL) \
when the order is paid. Without either, https://pos.invalid/notify is sent: the gateway stores \
it, but nothing can be delivered there; this command does not need the notification, since it \
asks for the status itself.

Connection: flags override the QRGATE_POS_* environment variables, which override the \
--profile file (TOML with the keys endpoint, merchant_id, sign_key, operator_id, terminal_no).";

pub const CHARGE_EXIT_STATUS: &str = "\
Exit status:
  0  paid
  1  not paid: the gateway or the wallet refused the order, or it was closed or failed
  2  usage or configuration error (nothing was sent)
  3  the order was not paid when the wait ended, or the outcome is unknown: check the order
     later, e.g. qrgate pos call STATUS_QUERY '{\"order_id\":\"...\"}', before charging again";

const EXIT_PAID: u8 = 0;
const EXIT_NOT_PAID: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNKNOWN: u8 = 3;

/// How often the order's status is asked while waiting.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The longest a single status query may take while waiting.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Without a terminal, one progress line per this many seconds.
const PLAIN_PROGRESS_EVERY: u64 = 10;

/// The wallet the customer pays with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Wallet {
    /// WeChat Pay.
    Wechat,
    /// Alipay.
    Alipay,
    /// UnionPay.
    Unionpay,
}

impl Wallet {
    fn biz_type(self) -> BizType {
        match self {
            Wallet::Wechat => BizType::WechatPay,
            Wallet::Alipay => BizType::Alipay,
            Wallet::Unionpay => BizType::UnionPay,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Wallet::Wechat => "WeChat Pay",
            Wallet::Alipay => "Alipay",
            Wallet::Unionpay => "UnionPay",
        }
    }
}

#[derive(Debug, Args)]
pub struct ChargeArgs {
    /// The amount to charge, in the merchant's currency, e.g. 12.34 (at most 2 decimals).
    #[arg(value_name = "AMOUNT")]
    amount: String,
    /// The wallet the customer pays with.
    #[arg(long, value_enum, value_name = "WALLET")]
    wallet: Wallet,
    #[command(flatten)]
    connection: Connection,
    /// A tip on top of the amount, e.g. 0.50.
    #[arg(long, value_name = "AMOUNT")]
    tip: Option<String>,
    /// The order id. Default: P, the local time as yyyyMMddHHmmss and 6 random digits.
    #[arg(long, value_name = "ID")]
    order_id: Option<String>,
    /// The http(s) URL the gateway notifies when the order is paid. Default:
    /// https://pos.invalid/notify, which the gateway stores but cannot deliver to.
    #[arg(long, env = "QRGATE_POS_CALL_BACK_URL", value_name = "URL")]
    call_back_url: Option<String>,
    /// How long to wait for the customer to pay, in seconds (the countdown).
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    wait_secs: u64,
    /// Also write the QR code as an SVG image to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Also write the QR code as a PNG image to FILE.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// How long one request to the gateway may take, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
}

/// A usage or configuration problem: reported, exit status 2, nothing sent.
struct Usage(String);

impl<E: std::fmt::Display> From<E> for Usage {
    fn from(e: E) -> Self {
        Usage(e.to_string())
    }
}

/// What the wallet's side of a paid order said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Settlement {
    trade_time: Option<String>,
    bizpay_order_id: Option<String>,
}

/// How the charge ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Paid(Settlement),
    /// Refused, closed or failed; the message says why.
    NotPaid(String),
    /// Not paid yet, or unknown; the message says what is known.
    Unknown(String),
}

impl Outcome {
    fn exit_status(&self) -> u8 {
        match self {
            Outcome::Paid(_) => EXIT_PAID,
            Outcome::NotPaid(_) => EXIT_NOT_PAID,
            Outcome::Unknown(_) => EXIT_UNKNOWN,
        }
    }
}

/// Everything about the sale, for the receipt.
struct Sale {
    merchant_id: String,
    order_id: String,
    wallet: Wallet,
    amount: Cents,
    tip: Option<Cents>,
}

impl Sale {
    fn total(&self) -> Cents {
        Cents(self.amount.0.saturating_add(self.tip.map_or(0, |t| t.0)))
    }
}

pub async fn run(args: ChargeArgs) -> ExitCode {
    match prepare_and_charge(args).await {
        Ok(status) => ExitCode::from(status),
        Err(Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn amount_arg(what: &str, text: &str) -> Result<Cents, Usage> {
    parse_amount(text).map_err(|e| Usage(format!("invalid {what} {:?}: {e}", text.trim())))
}

/// The call-back URL to send: the flag (or its environment variable), else the placeholder.
fn call_back_url(given: Option<&str>) -> Result<String, Usage> {
    let Some(text) = given.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(PLACEHOLDER_CALL_BACK_URL.to_owned());
    };
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(text.to_owned())
        }
        _ => Err(Usage(format!(
            "invalid --call-back-url {text:?}: it must be an http(s) URL"
        ))),
    }
}

/// Refuses an --svg/--png path whose directory does not exist, before anything is sent.
fn check_output(path: &Path) -> Result<(), Usage> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Usage(format!(
            "cannot write {}: the directory {} does not exist",
            path.display(),
            dir.display()
        )))
    }
}

async fn prepare_and_charge(args: ChargeArgs) -> Result<u8, Usage> {
    let connection = args
        .connection
        .resolve()
        .map_err(|e| Usage(format!("{e:#}")))?;
    let amount = amount_arg("AMOUNT", &args.amount)?;
    if amount == Cents(0) {
        return Err(Usage("the amount must be more than 0.00".into()));
    }
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
    let call_back_url = call_back_url(args.call_back_url.as_deref())?;
    for path in [&args.svg, &args.png].into_iter().flatten() {
        check_output(path)?;
    }
    let client = PosClient::new(PosConfig {
        endpoint: connection.endpoint.clone(),
        merchant_id: connection.merchant_id.clone(),
        sign_key: connection.sign_key.clone(),
        terminal_no: connection.terminal_no.clone(),
        operator_id: connection.operator_id.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
    })?;

    let sale = Sale {
        merchant_id: connection.merchant_id.clone(),
        order_id: args.order_id.clone().unwrap_or_else(new_order_id),
        wallet: args.wallet,
        amount,
        tip,
    };
    eprintln!(
        "{}: creating order {} for {}",
        sale.wallet.name(),
        sale.order_id,
        format_amount(sale.total())
    );
    let request = ActivePayRequest {
        order_id: Some(sale.order_id.clone()),
        operator_id: None,
        amount,
        tip,
        biz_type: sale.wallet.biz_type(),
        call_back_url,
    };
    let wait = Duration::from_secs(args.wait_secs);
    let outcome = charge(
        &client,
        &request,
        &sale,
        wait,
        Images {
            svg: args.svg.as_deref(),
            png: args.png.as_deref(),
        },
        args.order_id.is_some(),
    )
    .await;
    println!("{}", receipt(&sale, &outcome));
    Ok(outcome.exit_status())
}

/// Sends ACTIVEPAY once, shows the QR, and follows the order to an outcome.
async fn charge(
    client: &PosClient,
    request: &ActivePayRequest,
    sale: &Sale,
    wait: Duration,
    images: Images<'_>,
    order_id_given: bool,
) -> Outcome {
    let answer = match client.active_pay(request).await {
        Ok(answer) => answer,
        Err(e) if !e.may_have_been_processed() => {
            return Outcome::NotPaid(format!("{e}; no order was created"))
        }
        Err(e) => {
            // Sent, but the answer is lost: never create it again; ask instead.
            eprintln!("{e}");
            eprintln!(
                "asking the gateway about order {} instead of sending it again",
                sale.order_id
            );
            return wait_for_outcome(client, sale, wait, Waiting::Unknown, order_id_given).await;
        }
    };
    match (answer.rsp_code.known(), answer.data) {
        (Some(RspCode::Success), Some(data)) => {
            show_qr(&data.code_url, images);
            wait_for_outcome(client, sale, wait, Waiting::Customer, false).await
        }
        (Some(RspCode::Fail), _) => Outcome::NotPaid(answer.rsp_msg),
        // A timeout between the gateway and the wallet, or a code this POS does not know:
        // the order may exist.
        (Some(RspCode::Timeout | RspCode::Processing) | None, _) => {
            eprintln!(
                "the gateway answered {}: {}",
                answer.rsp_code, answer.rsp_msg
            );
            wait_for_outcome(client, sale, wait, Waiting::Unknown, order_id_given).await
        }
        (Some(code), _) => Outcome::NotPaid(format!("{} ({code})", answer.rsp_msg)),
    }
}

/// The QR as Unicode half blocks, dark modules drawn, with the quiet zone.
fn terminal_qr(code: &QrCode) -> String {
    code.render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Dark)
        .light_color(unicode::Dense1x2::Light)
        .quiet_zone(true)
        .build()
}

fn svg_qr(code: &QrCode) -> String {
    code.render::<svg::Color>()
        .min_dimensions(320, 320)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .build()
}

/// Where to write the QR as image files, if anywhere.
#[derive(Clone, Copy)]
struct Images<'a> {
    svg: Option<&'a Path>,
    png: Option<&'a Path>,
}

/// The QR as a PNG: black modules on white, 8 pixels each, with the quiet zone.
fn png_qr(code: &QrCode, path: &Path) -> Result<(), String> {
    code.render::<image::Luma<u8>>()
        .module_dimensions(8, 8)
        .build()
        .save(path)
        .map_err(|e| e.to_string())
}

/// Shows the QR on standard error (and writes the image files); a QR that cannot be drawn
/// still leaves its content printed as text.
fn show_qr(code_url: &str, images: Images<'_>) {
    let mut err = std::io::stderr();
    match QrCode::new(code_url.as_bytes()) {
        Ok(code) => {
            let tty = err.is_terminal();
            let _ = writeln!(err);
            for line in terminal_qr(&code).lines() {
                // On a terminal, black on white whatever its theme: phones read dark on light.
                let _ = if tty {
                    writeln!(err, "  \x1b[30;47m{line}\x1b[0m")
                } else {
                    writeln!(err, "  {line}")
                };
            }
            let _ = writeln!(err);
            if let Some(path) = images.png {
                match png_qr(&code, path) {
                    Ok(()) => {
                        let _ = writeln!(err, "QR code written to {}", path.display());
                    }
                    Err(e) => {
                        let _ = writeln!(err, "cannot write {}: {e}", path.display());
                    }
                }
            }
            if let Some(path) = images.svg {
                match std::fs::write(path, svg_qr(&code)) {
                    Ok(()) => {
                        let _ = writeln!(err, "QR code written to {}", path.display());
                    }
                    Err(e) => {
                        let _ = writeln!(err, "cannot write {}: {e}", path.display());
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(
                err,
                "cannot draw the QR code ({e}); show its content instead"
            );
        }
    }
    let _ = writeln!(err, "code_url: {code_url}");
    let _ = writeln!(
        err,
        "Ask the customer to scan the QR code with their wallet app."
    );
}

/// Why the POS is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The customer has the QR.
    Customer,
    /// The answer to ACTIVEPAY was lost.
    Unknown,
}

impl Waiting {
    fn label(self) -> &'static str {
        match self {
            Waiting::Customer => "waiting for the customer to pay…",
            Waiting::Unknown => "checking the order…",
        }
    }
}

/// `m:ss`.
fn clock(d: Duration) -> String {
    let secs = d.as_secs();
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// One line of progress on standard error: rewritten in place on a terminal, a new line
/// every [`PLAIN_PROGRESS_EVERY`] seconds otherwise.
struct Progress {
    tty: bool,
    shown: bool,
    last_plain: Option<u64>,
}

impl Progress {
    fn show(&mut self, label: &str, left: Duration) {
        let mut err = std::io::stderr();
        let line = format!("{label} {} left", clock(left));
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            self.shown = true;
        } else {
            let bucket = left.as_secs() / PLAIN_PROGRESS_EVERY;
            if self.last_plain != Some(bucket) {
                self.last_plain = Some(bucket);
                let _ = writeln!(err, "{line}");
            }
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

fn judge(sale: &Sale, status: &StatusQueryResponse, check_amount: bool) -> Polled {
    if check_amount && status.amount != sale.amount && status.total_amount != sale.total() {
        // An order given with --order-id that is not this sale (e.g. an id used before).
        return Polled::Final(Outcome::Unknown(format!(
            "order {} exists for another amount ({}): it is not this sale",
            sale.order_id,
            format_amount(status.total_amount)
        )));
    }
    match status.order_status {
        OrderStatus::Success | OrderStatus::PartialRefunded | OrderStatus::FullyRefunded => {
            Polled::Final(Outcome::Paid(Settlement {
                trade_time: status.trade_time.clone(),
                bizpay_order_id: status.bizpay_order_id.clone(),
            }))
        }
        OrderStatus::Failure => Polled::Final(Outcome::NotPaid(
            status
                .rsp_msg
                .clone()
                .filter(|_| status.rsp_code.as_deref().is_some_and(|c| c != "SUCCESS"))
                .unwrap_or_else(|| "the order failed at the wallet".into()),
        )),
        OrderStatus::OrderClosed => Polled::Final(Outcome::NotPaid(
            "the order was closed (expired or cancelled): the customer was not charged".into(),
        )),
        OrderStatus::Init
        | OrderStatus::NotPay
        | OrderStatus::Canceling
        | OrderStatus::AuthFinish => Polled::Pending(None),
    }
}

async fn poll_once(client: &PosClient, sale: &Sale, check_amount: bool) -> Polled {
    let answer =
        match tokio::time::timeout(QUERY_TIMEOUT, client.status_query(&sale.order_id)).await {
            Err(_) => return Polled::Pending(Some("the status query timed out".into())),
            Ok(Err(e)) => return Polled::Pending(Some(e.to_string())),
            Ok(Ok(answer)) => answer,
        };
    match answer.data.as_ref().filter(|_| answer.is_success()) {
        Some(status) => judge(sale, status, check_amount),
        // E.g. the order is not known (yet).
        None => Polled::Pending(Some(format!(
            "the gateway answered {}: {}",
            answer.rsp_code, answer.rsp_msg
        ))),
    }
}

/// Asks for the order's status every [`POLL_INTERVAL`] until it is final or `wait` has
/// passed (or the cashier presses Ctrl-C), with a countdown.
async fn wait_for_outcome(
    client: &PosClient,
    sale: &Sale,
    wait: Duration,
    why: Waiting,
    check_amount: bool,
) -> Outcome {
    let started = Instant::now();
    let deadline = started + wait;
    let mut progress = Progress {
        tty: std::io::stderr().is_terminal(),
        shown: false,
        last_plain: None,
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
        let out_of_time = now >= deadline;
        // Ticks come every second; a little slack keeps queries on the 2 s beat.
        let query = now + Duration::from_millis(200) >= next_query || out_of_time;
        progress.show(why.label(), deadline.saturating_duration_since(now));
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
            let secs = wait.as_secs();
            return Outcome::Unknown(match (why, last_problem) {
                (_, Some(problem)) => format!("no final answer after {secs}s ({problem})"),
                (Waiting::Customer, None) => {
                    format!("the customer had not paid after {secs}s")
                }
                (Waiting::Unknown, None) => format!("the order was still open after {secs}s"),
            });
        }
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
    row("Wallet", &format!("{} (QR)", sale.wallet.name()));
    row("Amount", &format_amount(sale.amount));
    row("Tip", &format_amount(sale.tip.unwrap_or_default()));
    row("Total", &format_amount(sale.total()));
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
        Outcome::NotPaid(why) => {
            lines.push(format!("NOT PAID: {why}"));
            lines.push("The customer was not charged.".into());
        }
        Outcome::Unknown(why) => {
            lines.push(format!("NOT CONFIRMED: {why}"));
            lines.push(format!(
                "The customer may still pay. Check order {} later, before charging the \
                 customer again.",
                sale.order_id
            ));
        }
    }
    lines.push(rule);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale() -> Sale {
        Sale {
            merchant_id: "ON00000001".into(),
            order_id: "P20240101120000123456".into(),
            wallet: Wallet::Alipay,
            amount: Cents(1234),
            tip: Some(Cents(50)),
        }
    }

    #[test]
    fn call_back_urls() {
        assert_eq!(
            call_back_url(None).ok(),
            Some(PLACEHOLDER_CALL_BACK_URL.into())
        );
        assert_eq!(
            call_back_url(Some("  ")).ok(),
            Some(PLACEHOLDER_CALL_BACK_URL.into())
        );
        assert_eq!(
            call_back_url(Some("https://shop.example/n?x=1")).ok(),
            Some("https://shop.example/n?x=1".into())
        );
        assert!(call_back_url(Some("ftp://shop.example/")).is_err());
        assert!(call_back_url(Some("not a url")).is_err());
    }

    #[test]
    fn the_qr_has_a_quiet_zone_and_half_blocks() {
        let code = QrCode::new(b"https://qr.example/pay/123").unwrap();
        let text = terminal_qr(&code);
        let first = text.lines().next().unwrap();
        // The quiet zone: the first rows are light (spaces).
        assert!(first.chars().all(|c| c == ' '), "{first:?}");
        assert!(text.contains('█') || text.contains('▀') || text.contains('▄'));
        assert!(svg_qr(&code).contains("<svg"));
    }

    #[test]
    fn countdown_and_receipts() {
        assert_eq!(clock(Duration::from_secs(252)), "4:12");
        assert_eq!(clock(Duration::from_secs(5)), "0:05");
        let paid = receipt(
            &sale(),
            &Outcome::Paid(Settlement {
                trade_time: Some("20240101120000".into()),
                bizpay_order_id: Some("2024T1".into()),
            }),
        );
        for text in ["12.34", "0.50", "12.84", "Alipay", "2024T1", "\nPAID\n"] {
            assert!(paid.contains(text), "{text:?} missing from\n{paid}");
        }
        let closed = receipt(&sale(), &Outcome::NotPaid("closed".into()));
        assert!(closed.contains("NOT PAID: closed"));
        let later = Outcome::Unknown("no".into());
        assert!(receipt(&sale(), &later).contains("Check order P20240101120000123456 later"));
        assert_eq!(later.exit_status(), 3);
        assert_eq!(Outcome::NotPaid(String::new()).exit_status(), 1);
    }

    #[test]
    fn a_status_for_another_amount_is_not_this_sale() {
        let status = StatusQueryResponse {
            rsp_code: None,
            rsp_msg: None,
            order_status: OrderStatus::Success,
            trade_time: None,
            order_id: "P20240101120000123456".into(),
            bizpay_order_id: None,
            amount: Cents(999),
            total_amount: Cents(999),
            receipt_amount: None,
            buyer_pay_amount: None,
            tip: None,
            refund_amount: None,
            buyer_login_id: None,
        };
        assert!(matches!(
            judge(&sale(), &status, true),
            Polled::Final(Outcome::Unknown(_))
        ));
        assert!(matches!(
            judge(&sale(), &status, false),
            Polled::Final(Outcome::Paid(_))
        ));
    }
}
