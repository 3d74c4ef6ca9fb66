//! `qrgate pos scan`, run as a cashier would (standard input standing in for the barcode
//! scanner): against `serve --demo` and its in-process wallet sandbox, and against a
//! scripted gateway for the answers the sandbox cannot be made to give on cue (a lost
//! answer, a customer who never confirms).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qrgate_ottpay::{Action, Data, RequestEnvelope, ResponseEnvelope, RspCode, SignKey};
use serde_json::{json, Value};

use crate::{Install, Server, BIN};

/// The base URL of the sandbox that `serve --demo` runs in process, from its log line.
fn demo_sandbox_url(server: &mut Server) -> String {
    let url_of = |line: &str| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["fields"]["message"] == "demo sandbox listening")
            .then(|| v["fields"]["url"].as_str().map(str::to_owned))
            .flatten()
    };
    if let Some(url) = server.seen.iter().find_map(|l| url_of(l)) {
        return url.trim_end_matches('/').to_owned();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server.logs.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "no \"demo sandbox listening\" log line; logs so far: {:#?}",
                server.seen
            )
        });
        server.seen.push(line.clone());
        if let Some(url) = url_of(&line) {
            return url.trim_end_matches('/').to_owned();
        }
    }
}

/// POST to the sandbox's control API; the JSON answer.
async fn control(http: &reqwest::Client, sandbox: &str, path: &str, body: Value) -> Value {
    let response = http
        .post(format!("{sandbox}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{path} {body}: {status} {answer}");
    answer
}

/// A fresh payment code of `wallet` for `customer` that behaves as `behaviour` says.
async fn mint(
    http: &reqwest::Client,
    sandbox: &str,
    customer: &str,
    wallet: &str,
    behaviour: Value,
) -> String {
    let minted = control(
        http,
        sandbox,
        "/control/codes",
        json!({"customer_id": customer, "wallet": wallet, "behaviour": behaviour}),
    )
    .await;
    minted["code"].as_str().unwrap().to_owned()
}

/// Runs `qrgate pos scan ARGS` with `input` on standard input (what the cashier types and
/// the scanner sends), with no QRGATE_POS_* variables but those in `env`.
fn pos_scan(install: &Install, args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
    let mut cmd = install.command(&[&["pos", "scan"][..], args].concat());
    for var in [
        "QRGATE_POS_ENDPOINT",
        "QRGATE_POS_MERCHANT_ID",
        "QRGATE_POS_SIGN_KEY",
        "QRGATE_POS_OPERATOR_ID",
        "QRGATE_POS_TERMINAL_NO",
        "QRGATE_POS_PROFILE",
    ] {
        cmd.env_remove(var);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `1345********6789`, as the command masks codes.
fn masked(code: &str) -> String {
    format!("{}********{}", &code[..4], &code[code.len() - 4..])
}

#[tokio::test]
async fn a_cashier_takes_payments_with_a_scanner_against_the_demo() {
    let install = Install::sqlite();
    let created: Value = serde_json::from_str(&install.ok(&[
        "merchant",
        "create",
        "--name",
        "T",
        "--currency",
        "CAD",
        "--json",
    ]))
    .unwrap();
    let merchant = created["merchant_id"].as_str().unwrap().to_owned();
    let key = created["sign_key"].as_str().unwrap().to_owned();
    let operator = created["operator_id"]
        .as_str()
        .unwrap_or("0000000001")
        .to_owned();
    // A free port for the sandbox: other tests and a developer's own sandbox use 8090.
    let mut server = install.serve(&["--demo", "--sandbox-listen", "127.0.0.1:0"]);
    let sandbox = demo_sandbox_url(&mut server);
    let endpoint = server.endpoint();
    let connection = [
        "--endpoint",
        endpoint.as_str(),
        "--merchant",
        merchant.as_str(),
        "--sign-key",
        key.as_str(),
        "--operator",
        operator.as_str(),
    ];

    let http = reqwest::Client::new();
    let customer = control(
        &http,
        &sandbox,
        "/control/customers",
        json!({"name": "Li Lei", "balance_fen": 1_000_000}),
    )
    .await;
    let customer = customer["id"].as_str().unwrap().to_owned();

    // Paid at once: the amount typed at the prompt, a receipt saying PAID.
    let code = mint(
        &http,
        &sandbox,
        &customer,
        "wechat",
        json!({"kind": "instant"}),
    )
    .await;
    let out = pos_scan(&install, &connection, &[], &format!("12.34\n{code}\n"));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("PAID"), "{stdout}");
    assert!(stdout.contains("12.34"), "{stdout}");
    assert!(stdout.contains(&merchant), "{stdout}");
    assert!(stdout.contains("WeChat Pay"), "{stdout}");
    assert!(stderr.contains("Amount:") && stderr.contains("Scan the customer's payment code:"));
    // The code is shown masked, never whole.
    assert!(stdout.contains(&masked(&code)), "{stdout}");
    assert!(!stdout.contains(&code) && !stderr.contains(&code));

    // The customer confirms with a password three seconds later: progress, then paid.
    let code = mint(
        &http,
        &sandbox,
        &customer,
        "alipay",
        json!({"kind": "password", "after_secs": 3}),
    )
    .await;
    let out = pos_scan(&install, &connection, &[], &format!("12.34\n{code}\n"));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("waiting for the customer to confirm"),
        "{stderr}"
    );
    assert!(
        stdout.contains("PAID") && stdout.contains("12.34"),
        "{stdout}"
    );
    assert!(stdout.contains("Alipay"), "{stdout}");

    // Declined: the balance is short.
    let code = mint(
        &http,
        &sandbox,
        &customer,
        "unionpay",
        json!({"kind": "insufficient_balance"}),
    )
    .await;
    let out = pos_scan(&install, &connection, &[], &format!("12.34\n{code}\n"));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("DECLINED"), "{stdout}");
    assert!(!stdout.contains("PAID"), "{stdout}");

    // Not a payment code: refused before anything is sent.
    let out = pos_scan(&install, &connection, &[], "12.34\n999\n");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("not a WeChat Pay, Alipay or UnionPay payment code"));
    assert!(stdout.is_empty(), "{stdout}");

    // Amount and tip as flags, the connection from the environment: only the code is read.
    let code = mint(
        &http,
        &sandbox,
        &customer,
        "wechat",
        json!({"kind": "instant"}),
    )
    .await;
    let out = pos_scan(
        &install,
        &["--amount", "10.00", "--tip", "0.50"],
        &[
            ("QRGATE_POS_ENDPOINT", endpoint.as_str()),
            ("QRGATE_POS_MERCHANT_ID", merchant.as_str()),
            ("QRGATE_POS_SIGN_KEY", key.as_str()),
            ("QRGATE_POS_OPERATOR_ID", operator.as_str()),
        ],
        &format!("{code}\n"),
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("Amount:"), "{stderr}");
    assert!(
        stdout.contains("10.00") && stdout.contains("0.50") && stdout.contains("10.50"),
        "{stdout}"
    );

    // Nothing about the codes reached the gateway's logs either.
    let (_, logs) = server.terminate();
    assert!(!logs.join("\n").contains(&code));
}

#[test]
fn pos_scan_help_explains_the_scanner_and_the_exit_status() {
    let out = std::process::Command::new(BIN)
        .args(["pos", "scan", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(help.contains("Usage: qrgate pos scan"), "{help}");
    assert!(help.contains("scanner") && help.contains("Enter"), "{help}");
    assert!(help.contains("focus"), "{help}");
    assert!(help.contains("type the digits"), "{help}");
    for flag in [
        "--endpoint",
        "--merchant",
        "--sign-key",
        "--operator",
        "--terminal-no",
        "--profile",
        "--amount",
        "--tip",
        "--order-id",
        "--wait-secs",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    assert!(help.contains("Exit status"), "{help}");
    for status in [
        "0  paid",
        "1  declined",
        "2  usage",
        "3  the outcome is still unknown",
    ] {
        assert!(help.contains(status), "{status:?} missing:\n{help}");
    }
}

#[test]
fn pos_scan_refuses_bad_input_before_sending_anything() {
    let install = Install::sqlite();
    // Nothing listens here: anything sent would fail with exit status 1, not 2.
    let connection = [
        "--endpoint",
        "http://127.0.0.1:9/processV2",
        "--merchant",
        "ON00000001",
        "--sign-key",
        "0123456789ABCDEF",
    ];
    for (args, input, message) in [
        (&[][..], "12.34\n999\n", "not a WeChat Pay"),
        (&[][..], "12.345\n", "at most 2 digits"),
        (&[][..], "12,34\n", "digits with an optional decimal point"),
        (&[][..], "0\n", "more than 0.00"),
        (&[][..], "", "no amount"),
        (&[][..], "5\n", "no payment code"),
        (&["--amount=-1"][..], "", "invalid --amount"),
        (
            &["--amount", "1", "--tip", "0.001"][..],
            "",
            "invalid --tip",
        ),
    ] {
        let out = pos_scan(&install, &[&connection[..], args].concat(), &[], input);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?} {input:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?} {input:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
    // No merchant or sign key anywhere.
    let out = pos_scan(&install, &["--amount", "1"], &[], "134567890123456789\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("no merchant id"));
    // The gateway cannot be reached: nothing was charged, exit status 1.
    let out = pos_scan(&install, &connection, &[], "12.34\n134567890123456789\n");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("not charged"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------------
// A scripted gateway: answers each request as the test says, with the OTTPAY codec.

const KEY: &str = "0123456789ABCDEF";
const MERCHANT: &str = "ON00000042";

/// What the scripted gateway does with one request.
enum Reply {
    Answer(ResponseEnvelope),
    /// Reads the request, then says nothing until the client gives up.
    Silence,
}

fn answer(code: RspCode, msg: &str, data: Value) -> Reply {
    let Value::Object(data) = data else {
        panic!("data must be an object")
    };
    Reply::Answer(ResponseEnvelope::sealed(
        code,
        msg,
        &data,
        &SignKey::new(KEY),
    ))
}

/// Every request received: its envelope and opened data.
type Received = Arc<Mutex<Vec<(RequestEnvelope, Data)>>>;

struct Scripted {
    addr: SocketAddr,
    received: Received,
}

impl Scripted {
    fn endpoint(&self) -> String {
        format!("http://{}/processV2", self.addr)
    }

    fn actions(&self) -> Vec<(String, String)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(e, d)| (e.action.clone(), d["order_id"].as_str().unwrap().to_owned()))
            .collect()
    }
}

/// Starts a gateway that answers the `n`th request of each action with `script(action, n,
/// data)` (n from 0). One thread per connection; it lives as long as the test process.
fn scripted(script: impl Fn(Action, usize, &Data) -> Reply + Send + Sync + 'static) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let script = Arc::new(script);
    let log = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (script, log) = (script.clone(), log.clone());
            std::thread::spawn(move || serve_one(stream, &*script, &log));
        }
    });
    Scripted { addr, received }
}

fn serve_one(
    mut stream: TcpStream,
    script: &(dyn Fn(Action, usize, &Data) -> Reply + Send + Sync),
    log: &Received,
) {
    // Head, then a body of Content-Length bytes.
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let envelope = RequestEnvelope::parse(&bytes[head_end..head_end + length]).unwrap();
    let data = envelope.open(&SignKey::new(KEY)).unwrap();
    let action = envelope.action().unwrap();
    let nth = {
        let mut log = log.lock().unwrap();
        let nth = log
            .iter()
            .filter(|(e, _)| e.action() == Some(action))
            .count();
        log.push((envelope, data.clone()));
        nth
    };
    match script(action, nth, &data) {
        Reply::Answer(envelope) => {
            let body = envelope.to_json();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Reply::Silence => std::thread::sleep(Duration::from_secs(30)),
    }
}

fn order_id(data: &Data) -> String {
    data["order_id"].as_str().unwrap().to_owned()
}

fn status(data: &Data, order_status: &str) -> Reply {
    answer(
        RspCode::Success,
        "success",
        json!({
            "rspCode": "SUCCESS", "rspMsg": "success", "order_status": order_status,
            "trade_time": "20240101120000", "order_id": order_id(data),
            "bizpay_order_id": "4200000000000042", "amount": "1234", "total_amount": "1234"
        }),
    )
}

fn scan_against(gateway: &Scripted, args: &[&str], input: &str) -> Output {
    let install = Install::sqlite();
    let endpoint = gateway.endpoint();
    let connection = [
        "--endpoint",
        endpoint.as_str(),
        "--merchant",
        MERCHANT,
        "--sign-key",
        KEY,
        "--operator",
        "0000000001",
    ];
    pos_scan(&install, &[&connection[..], args].concat(), &[], input)
}

const WECHAT_CODE: &str = "134567890123456789";

#[test]
fn processing_is_followed_by_status_queries_until_paid() {
    let gateway = scripted(|action, nth, data| match action {
        Action::PassivePay => answer(
            RspCode::Processing,
            "transaction processing",
            json!({"order_id": order_id(data), "order_status": "notpay"}),
        ),
        _ if nth < 2 => status(data, "notpay"),
        _ => status(data, "success"),
    });
    let out = scan_against(&gateway, &[], &format!("12.34\n{WECHAT_CODE}\n"));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("waiting for the customer to confirm"),
        "{stderr}"
    );
    assert!(
        stdout.contains("PAID") && stdout.contains("4200000000000042"),
        "{stdout}"
    );
    assert!(stdout.contains("2024-01-01 12:00:00"), "{stdout}");

    let actions = gateway.actions();
    assert_eq!(actions[0].0, "PASSIVEPAY");
    assert_eq!(actions.len(), 4, "{actions:?}");
    let order = &actions[0].1;
    // Chosen by the POS: P, yyyyMMddHHmmss, 6 digits.
    assert_eq!(order.len(), 21, "{order}");
    assert!(order.starts_with('P') && order[1..].bytes().all(|b| b.is_ascii_digit()));
    assert!(actions[1..]
        .iter()
        .all(|(a, o)| a == "STATUS_QUERY" && o == order));

    // What the payment carried.
    let received = gateway.received.lock().unwrap();
    let (envelope, data) = &received[0];
    assert_eq!(envelope.merchant_id, MERCHANT);
    assert_eq!(envelope.operator_id.as_deref(), Some("0000000001"));
    assert_eq!(data["operator_id"], "0000000001");
    assert_eq!(data["amount"], "1234");
    assert_eq!(data["biz_type"], "WECHATPAY");
    assert_eq!(data["auth_code"], WECHAT_CODE);
    assert!(!data.contains_key("tip"));
}

#[test]
fn a_lost_answer_is_never_charged_twice() {
    // The payment's answer never comes; the order turns out to be paid.
    let gateway = scripted(|action, _, data| match action {
        Action::PassivePay => Reply::Silence,
        _ => status(data, "success"),
    });
    let out = scan_against(
        &gateway,
        &["--timeout", "1", "--amount", "12.34"],
        &format!("{WECHAT_CODE}\n"),
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("instead of charging again"), "{stderr}");
    assert!(stdout.contains("PAID"), "{stdout}");
    let actions = gateway.actions();
    assert_eq!(
        actions.iter().filter(|(a, _)| a == "PASSIVEPAY").count(),
        1,
        "{actions:?}"
    );
    assert!(
        actions.iter().all(|(_, o)| *o == actions[0].1),
        "{actions:?}"
    );
}

#[test]
fn a_decline_names_the_reason_and_asks_nothing_more() {
    let gateway = scripted(|_, _, data| {
        answer(
            RspCode::Fail,
            "insufficient balance",
            json!({"order_id": order_id(data), "order_status": "failure"}),
        )
    });
    let out = scan_against(
        &gateway,
        &["--amount", "12.34", "--tip", "1.5", "--order-id", "SALE-7"],
        &format!("{WECHAT_CODE}\n"),
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("DECLINED: insufficient balance"),
        "{stdout}"
    );
    assert!(
        stdout.contains("13.84") && stdout.contains("SALE-7"),
        "{stdout}"
    );
    let received = gateway.received.lock().unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].1["order_id"], "SALE-7");
    assert_eq!(received[0].1["tip"], "150");
}

#[test]
fn a_customer_who_never_confirms_leaves_the_outcome_unknown() {
    let gateway = scripted(|action, _, data| match action {
        Action::PassivePay => answer(
            RspCode::Processing,
            "transaction processing",
            json!({"order_id": order_id(data), "order_status": "notpay"}),
        ),
        _ => status(data, "notpay"),
    });
    let started = Instant::now();
    let out = scan_against(
        &gateway,
        &["--wait-secs", "3"],
        &format!("12.34\n{WECHAT_CODE}\n"),
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(stdout.contains("NOT CONFIRMED"), "{stdout}");
    assert!(
        stdout.contains("before charging the customer again"),
        "{stdout}"
    );
}

#[test]
fn a_reversed_order_is_declined() {
    let gateway = scripted(|action, _, data| match action {
        Action::PassivePay => answer(
            RspCode::Processing,
            "transaction processing",
            json!({"order_id": order_id(data), "order_status": "notpay"}),
        ),
        _ => status(data, "orderclosed"),
    });
    let out = scan_against(&gateway, &[], &format!("12.34\n{WECHAT_CODE}\n"));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("DECLINED") && stdout.contains("not charged"),
        "{stdout}"
    );
}

#[test]
fn the_connection_can_come_from_a_profile() {
    let gateway = scripted(|_, _, data| {
        answer(
            RspCode::Success,
            "success",
            json!({
                "order_status": "success", "trade_time": "20240101120000",
                "order_id": order_id(data), "total_amount": "500", "bizpay_order_id": "2024A"
            }),
        )
    });
    let install = Install::sqlite();
    let profile = install.dir.path().join("till.toml");
    std::fs::write(
        &profile,
        format!(
            "endpoint = \"{}\"\nmerchant_id = \"{MERCHANT}\"\nsign_key = \"{KEY}\"\n\
             operator_id = \"0000000007\"\nterminal_no = \"TILL-1\"\n",
            gateway.endpoint()
        ),
    )
    .unwrap();
    let profile = profile.to_str().unwrap();
    // The environment overrides the profile's operator; a flag overrides the environment's
    // terminal.
    let out = pos_scan(
        &install,
        &[
            "--profile",
            profile,
            "--amount",
            "5",
            "--terminal-no",
            "TILL-2",
        ],
        &[
            ("QRGATE_POS_OPERATOR_ID", "0000000008"),
            ("QRGATE_POS_TERMINAL_NO", "TILL-3"),
        ],
        &format!("{WECHAT_CODE}\n"),
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("2024A") && stdout.contains("5.00"),
        "{stdout}"
    );
    let received = gateway.received.lock().unwrap();
    let (envelope, data) = &received[0];
    assert_eq!(envelope.merchant_id, MERCHANT);
    assert_eq!(envelope.operator_id.as_deref(), Some("0000000008"));
    assert_eq!(envelope.terminal_no.as_deref(), Some("TILL-2"));
    assert_eq!(data["operator_id"], "0000000008");
}
