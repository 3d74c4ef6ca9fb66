//! `qrgate pos charge`, run as a cashier would, against `serve --demo`: the customer scans
//! the QR it shows (the sandbox's control API stands in for their phone).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{Install, Server};

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

/// `qrgate pos charge ARGS` with no QRGATE_POS_* variables from the environment.
fn pos_charge(install: &Install, args: &[&str]) -> Command {
    let mut cmd = install.command(&[&["pos", "charge"][..], args].concat());
    for var in [
        "QRGATE_POS_ENDPOINT",
        "QRGATE_POS_MERCHANT_ID",
        "QRGATE_POS_SIGN_KEY",
        "QRGATE_POS_OPERATOR_ID",
        "QRGATE_POS_TERMINAL_NO",
        "QRGATE_POS_PROFILE",
        "QRGATE_POS_CALL_BACK_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A running `pos charge`: its standard error line by line, as it comes.
struct Running {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            stderr: rx,
            seen: Vec::new(),
        }
    }

    /// Reads standard error until the `code_url: ...` line; the code_url.
    fn code_url(&mut self) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no code_url line; stderr so far: {:#?}", self.seen));
            self.seen.push(line.clone());
            if let Some(url) = line.strip_prefix("code_url: ") {
                return url.trim().to_owned();
            }
        }
    }

    /// Waits for the exit (at most `limit`); the exit code, stdout and all of stderr.
    fn finish(mut self, limit: Duration) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("pos charge did not exit in {limit:?}: {:#?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status.code(), stdout, self.seen.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_customer_scans_the_qr_and_pays() {
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
    ];
    let http = reqwest::Client::new();
    let customer = control(
        &http,
        &sandbox,
        "/control/customers",
        json!({"name": "Han Meimei", "balance_fen": 1_000_000}),
    )
    .await;
    let customer = customer["id"].as_str().unwrap().to_owned();

    // Shown, scanned, paid: exit 0, a PAID receipt, and the SVG written.
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("qr.svg");
    let svg_arg = svg.to_str().unwrap();
    let png = dir.path().join("qr.png");
    let png_arg = png.to_str().unwrap().to_owned();
    let mut run = Running::start(pos_charge(
        &install,
        &[
            &[
                "12.34", "--wallet", "alipay", "--svg", svg_arg, "--png", &png_arg,
            ][..],
            &connection[..],
        ]
        .concat(),
    ));
    let code_url = run.code_url();
    assert!(!code_url.is_empty());
    // The QR was drawn above it, with half blocks.
    assert!(
        run.seen
            .iter()
            .any(|l| l.contains('█') || l.contains('▀') || l.contains('▄')),
        "{:#?}",
        run.seen
    );
    control(
        &http,
        &sandbox,
        "/control/qr/pay",
        json!({"code_url": code_url, "customer_id": customer}),
    )
    .await;
    let (code, stdout, stderr) = run.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("\nPAID\n"), "{stdout}");
    assert!(
        stdout.contains("12.34") && stdout.contains(&merchant),
        "{stdout}"
    );
    assert!(stdout.contains("Alipay"), "{stdout}");
    assert!(
        stderr.contains("waiting for the customer to pay…") && stderr.contains(" left"),
        "{stderr}"
    );
    let image = std::fs::read_to_string(&svg).unwrap();
    assert!(image.contains("<svg"), "{image}");
    let png_bytes = std::fs::read(&png).unwrap();
    assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");

    // Nobody pays: the wait ends, exit 3, check the order later.
    let mut run = Running::start(pos_charge(
        &install,
        &[
            &["1.00", "--wallet", "wechat", "--wait-secs", "3"][..],
            &connection[..],
        ]
        .concat(),
    ));
    let unpaid = run.code_url();
    assert_ne!(unpaid, code_url);
    let (code, stdout, stderr) = run.finish(Duration::from_secs(30));
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("NOT CONFIRMED"), "{stdout}");
    assert!(stdout.contains("later"), "{stdout}");

    // Usage errors: exit 2, nothing sent.
    let out = pos_charge(
        &install,
        &[&["0", "--wallet", "alipay"][..], &connection[..]].concat(),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = pos_charge(
        &install,
        &[
            &["1.00", "--wallet", "alipay", "--call-back-url", "nope"][..],
            &connection[..],
        ]
        .concat(),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--call-back-url"));
}

#[test]
fn pos_charge_help_explains_the_countdown() {
    let install = Install::sqlite();
    let out = install.run(&["pos", "charge", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for text in [
        "ACTIVEPAY",
        "countdown",
        "left",
        "every 2 seconds",
        "--wait-secs",
        "--svg",
        "--call-back-url",
        "https://pos.invalid/notify",
        "Exit status:",
        "check the order",
    ] {
        assert!(help.contains(text), "{text:?} missing from\n{help}");
    }
}
