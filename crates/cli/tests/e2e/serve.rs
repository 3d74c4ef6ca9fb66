//! `qrgate serve`, started as a process: a POS from `ottpay.md` alone, the demo, shutdown,
//! and the start-up failures a person meets.

use std::time::Duration;

use qrgate_testkit::pos::PosClient;
use serde_json::{json, Value};

use crate::Install;

/// Creates a merchant and a rate with the CLI, serves, and calls EX_RATE_QUERY with the
/// independent POS client; then a wrong key and an unknown merchant.
async fn a_pos_written_from_the_spec_gets_a_verified_rate(install: Install) {
    let created: Value = serde_json::from_str(&install.ok(&[
        "merchant",
        "create",
        "--name",
        "Maple",
        "--currency",
        "CAD",
        "--json",
    ]))
    .unwrap();
    install.ok(&["fx", "set", "CAD", "5.1234"]);
    let server = install.serve(&[]);
    let pos = PosClient::new(
        &server.endpoint(),
        created["merchant_id"].as_str().unwrap(),
        created["sign_key"].as_str().unwrap(),
    );
    let r = pos.call("EX_RATE_QUERY", json!({"fee_type": "CAD"})).await;
    assert_eq!(r.rsp_code, "SUCCESS", "{r:?}");
    let data = r.data.unwrap();
    assert_eq!(
        (data["feeType"].as_str(), data["rate"].as_str()),
        (Some("CAD"), Some("512340000"))
    );

    let wrong = PosClient::new(&pos.endpoint, &pos.merchant_id, "FFFFFFFFFFFFFFFF");
    assert_eq!(
        wrong
            .call("EX_RATE_QUERY", json!({"fee_type": "CAD"}))
            .await
            .rsp_code,
        "FAIL"
    );
    let stranger = PosClient::new(&pos.endpoint, "ON12345678", &pos.sign_key);
    assert_eq!(
        stranger
            .call("EX_RATE_QUERY", json!({"fee_type": "CAD"}))
            .await
            .rsp_code,
        "PARAM_INVALID"
    );

    // Disabling takes effect on the running server.
    install.ok(&[
        "merchant",
        "disable",
        created["merchant_id"].as_str().unwrap(),
    ]);
    let r = pos.call("EX_RATE_QUERY", json!({"fee_type": "CAD"})).await;
    assert_eq!(
        (r.rsp_code.as_str(), r.rsp_msg.as_str()),
        ("PARAM_INVALID", "merchant is disabled")
    );

    // Keys never reach the logs.
    let (status, logs) = server.terminate();
    assert!(status.success(), "exit {status:?}");
    let all = logs.join("\n");
    assert!(!all.contains(created["sign_key"].as_str().unwrap()));
    assert!(all.contains("ottpay request answered"));
    assert!(logs
        .iter()
        .filter(|l| l.contains("ottpay request answered"))
        .all(|l| l.contains("request_id")));
}

#[tokio::test]
async fn a_pos_written_from_the_spec_gets_a_verified_rate_on_sqlite() {
    a_pos_written_from_the_spec_gets_a_verified_rate(Install::sqlite()).await;
}

#[tokio::test]
async fn a_pos_written_from_the_spec_gets_a_verified_rate_on_postgres() {
    if let Some(install) =
        Install::postgres("e2e::a_pos_written_from_the_spec_gets_a_verified_rate_on_postgres").await
    {
        a_pos_written_from_the_spec_gets_a_verified_rate(install).await;
    }
}

fn banner_value(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {banner}"))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_demo_is_created_once_and_its_example_works() {
    let install = Install::sqlite();
    let mut first = install.serve(&["--demo", "--sandbox-listen", "127.0.0.1:0"]);
    let endpoint = first.endpoint();
    // The banner is printed before serving; read it after stopping.
    let r = reqwest::get(format!("http://{}/healthz", first.addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pid = first.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    first.child.wait().unwrap();
    let banner = first.stdout_after_exit();
    assert!(banner.contains("created demo merchant"), "{banner}");
    let merchant = banner_value(&banner, "merchant id");
    let key = banner_value(&banner, "sign key");
    assert!(banner.contains("pos call EX_RATE_QUERY"));
    drop(first);

    let mut second = install.serve(&["--demo", "--sandbox-listen", "127.0.0.1:0"]);
    assert_ne!(second.endpoint(), endpoint, "a new port each start");
    let pos = PosClient::new(&second.endpoint(), &merchant, &key);
    let r = pos.call("EX_RATE_QUERY", json!({"fee_type": "CAD"})).await;
    assert_eq!(r.rsp_code, "SUCCESS");
    let example_body = banner
        .lines()
        .filter(|l| l.contains("\"action\""))
        .find_map(|l| {
            l.trim()
                .strip_prefix("curl -s -H 'content-type: application/json' -d '")
        })
        .and_then(|rest| rest.split("' ").next())
        .unwrap()
        .to_owned();
    // The banner's curl body is a complete, valid request.
    let r = pos.post(example_body.into_bytes()).await;
    assert_eq!(r.rsp_code, "SUCCESS", "the printed example works: {r:?}");
    assert_eq!(r.data.unwrap()["feeType"], "CAD");

    let pid = second.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    second.child.wait().unwrap();
    let banner2 = second.stdout_after_exit();
    assert!(banner2.contains("reused demo merchant"), "{banner2}");
    assert_eq!(banner_value(&banner2, "merchant id"), merchant);
    assert_eq!(banner_value(&banner2, "sign key"), key);
    let list: Value = serde_json::from_str(&install.ok(&["merchant", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_port_in_use_is_reported_with_what_to_do() {
    let install = Install::sqlite();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = install
        .command(&["serve", "--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already in use") && stderr.contains("--listen"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_unusable_data_directory_is_reported_with_what_to_do() {
    let install = Install::sqlite();
    std::fs::write(install.data_dir(), b"not a directory").unwrap();
    let out = install
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not a directory") && stderr.contains("--data-dir"),
        "{stderr}"
    );

    // A data directory inside a file cannot be created either.
    let nested = install.data_dir().join("inner");
    let out = std::process::Command::new(crate::BIN)
        .args(["merchant", "list", "--data-dir"])
        .arg(&nested)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("data directory") && stderr.contains("--data-dir"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish() {
    use std::io::{Read, Write};

    let install = Install::sqlite();
    let created: Value = serde_json::from_str(&install.ok(&[
        "merchant",
        "create",
        "--name",
        "M",
        "--currency",
        "CAD",
        "--json",
    ]))
    .unwrap();
    install.ok(&["fx", "set", "CAD", "5.2"]);
    let server = install.serve(&[]);
    let pos = PosClient::new(
        &server.endpoint(),
        created["merchant_id"].as_str().unwrap(),
        created["sign_key"].as_str().unwrap(),
    );
    let body = serde_json::to_vec(&pos.envelope(
        "EX_RATE_QUERY",
        json!({"fee_type": "CAD"}).as_object().unwrap(),
    ))
    .unwrap();

    // Send the headers and half the body, then ask the server to stop.
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "POST /processV2 HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // The request in flight is still answered, in full.
    stream.write_all(rest).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"rsp_code\":\"SUCCESS\""), "{answer}");

    let started = std::time::Instant::now();
    let (status, logs) = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        logs.iter().any(|l| l.contains("shutdown requested")),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("qrgate stopped")),
        "{logs:#?}"
    );
}

/// A SIGTERM sent the moment the gateway says it is listening is a graceful shutdown, not
/// the default action of the signal (the handlers are taken before that line is logged; they
/// used to be taken only when the server task first ran, and a loaded machine killed the
/// process outright, failing `the_connection_limits_come_from_the_configuration` in CI).
#[tokio::test]
async fn a_sigterm_right_after_listening_shuts_down_gracefully() {
    for _ in 0..3 {
        let install = Install::sqlite();
        let server = install.serve(&[]);
        let (status, logs) = server.terminate();
        assert!(status.success(), "{status:?} {logs:#?}");
        assert!(
            logs.iter().any(|l| l.contains("qrgate stopped")),
            "{logs:#?}"
        );
    }
}

/// Drops the `null`s TOML cannot hold (a value the sandbox does not have yet).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The README's promise: each `[wallets.*]` table takes exactly what the sandbox lists at
/// `GET /control/credentials`. Pasted untouched (UnionPay's `back_url` is not in it), the
/// gateway starts and takes a payment with each wallet; a misspelt key is refused at start.
#[tokio::test]
async fn the_sandboxs_credentials_pasted_into_the_config_take_payments() {
    let sandbox = qrgate_sandbox::Sandbox::new(
        qrgate_sandbox::SandboxConfig {
            seed: 11,
            ..Default::default()
        },
        qrgate_sandbox::wallet_modules(),
    )
    .unwrap();
    let running = sandbox
        .clone()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let _secapi =
        qrgate_sandbox::wechat::serve_secapi(sandbox.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let http = reqwest::Client::new();
    let control = |path: &str| format!("{}/control{path}", running.url());
    let creds: Value = http
        .get(control("/credentials"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The shortest QR life allowed: every wallet must accept it (WeChat Pay refuses a
    // `time_expire` less than a minute ahead).
    let config = json!({"closing": {"qr_expiry_secs": 120}, "wallets": {
        "wechatpay": without_nulls(creds["wechat"].clone()),
        "alipay": without_nulls(creds["alipay"].clone()),
        "unionpay": without_nulls(creds["unionpay"].clone()),
    }});
    let install = Install::sqlite();
    let config_file = install.dir.path().join("qrgate.toml");
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
    let config_arg = config_file.to_str().unwrap();

    let created: Value = serde_json::from_str(&install.ok(&[
        "merchant",
        "create",
        "--name",
        "Paste",
        "--currency",
        "CNY",
        "--json",
    ]))
    .unwrap();
    let server = install.serve(&["--config", config_arg]);
    let pos = PosClient::new(
        &server.endpoint(),
        created["merchant_id"].as_str().unwrap(),
        created["sign_key"].as_str().unwrap(),
    );
    let customer: Value = http
        .post(control("/customers"))
        .json(&json!({"name": "Li Lei", "balance_fen": 100_000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (i, (wallet, biz_type)) in [
        ("wechat", "WECHATPAY"),
        ("alipay", "ALIPAY"),
        ("unionpay", "UNIONPAY"),
    ]
    .into_iter()
    .enumerate()
    {
        let code: Value = http
            .post(control("/codes"))
            .json(&json!({"customer_id": customer["id"], "wallet": wallet, "behaviour": {"kind": "instant"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = pos
            .call(
                "PASSIVEPAY",
                json!({"order_id": format!("PASTE{i}"), "amount": "100", "auth_code": code["code"], "biz_type": biz_type}),
            )
            .await;
        assert_eq!(r.rsp_code, "SUCCESS", "{wallet}: {r:?}");
        assert_eq!(r.data.unwrap()["order_status"], "success", "{wallet}");
        let r = pos
            .call(
                "ACTIVEPAY",
                json!({"amount": "100", "biz_type": biz_type, "call_back_url": "https://shop.example/n"}),
            )
            .await;
        assert_eq!(r.rsp_code, "SUCCESS", "{wallet} QR living 120 s: {r:?}");
    }
    drop(server);

    // A misspelt key fails the start, naming it.
    let mut wrong = config.clone();
    wrong["wallets"]["unionpay"]["signing_cert_ownr"] = json!("00040000:SIGN");
    std::fs::write(&config_file, toml::to_string(&wrong).unwrap()).unwrap();
    let out = install.run(&["serve", "--listen", "127.0.0.1:0", "--config", config_arg]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signing_cert_ownr"), "{stderr}");
}

/// The `[http]` limits reach the served gateway from the file, and from `QRGATE_HTTP__*`;
/// a value that would leave the POS endpoint no slot is refused, naming the key.
#[tokio::test]
async fn the_connection_limits_come_from_the_configuration() {
    use std::io::{Read, Write};

    let install = Install::sqlite();
    let config = install.dir.path().join("qrgate.toml");
    std::fs::write(
        &config,
        "[http]\nmax_connections_per_ip = 2\nheader_read_timeout_secs = 60\n",
    )
    .unwrap();
    let server = install.serve(&["--config", config.to_str().unwrap()]);
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(server.addr).unwrap())
        .collect();
    let mut third = std::net::TcpStream::connect(server.addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nhost: qrgate\r\n\r\n");
    let mut answer = Vec::new();
    let read = third.read_to_end(&mut answer);
    assert!(
        answer.is_empty() && !matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a third connection from one address was served: {read:?} {}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    let (status, _) = server.terminate();
    assert!(status.success(), "{status:?}");

    let shown = install
        .command(&["config", "check"])
        .env("QRGATE_HTTP__MAX_PUBLIC_REQUESTS", "100")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{stdout}");
    assert!(stdout.contains("max_public_requests = 100"), "{stdout}");
    let refused = install
        .command(&["config", "check"])
        .env("QRGATE_HTTP__MAX_PUBLIC_REQUESTS", "5000")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("http.max_public_requests"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
