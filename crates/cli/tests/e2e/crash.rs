//! The gateway is killed with SIGKILL while payments are in flight, then restarted: every
//! order must reach a final state, nobody is charged twice, and the sandbox's balances match
//! the orders. The sandbox runs as its own process, so it lives through the crash.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qrgate_testkit::pos;
use serde_json::{json, Value};

use crate::{Install, BIN};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct SandboxProcess {
    child: Child,
    pub(crate) url: String,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_sandbox(install: &Install) -> SandboxProcess {
    let (port, secapi) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args([
            "sandbox",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--secapi-listen",
            &format!("127.0.0.1:{secapi}"),
        ])
        .arg("--state-dir")
        .arg(install.dir.path().join("sandbox"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned at once, so the process is killed and reaped even if it never comes up.
    let sandbox = SandboxProcess {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{}/control/clock", sandbox.url))
            .send()
            .await
            .is_ok()
        {
            return sandbox;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sandbox did not start");
}

/// A config file pointing the gateway at the sandbox, with short confirmation windows.
pub(crate) async fn write_config(
    install: &Install,
    sandbox: &SandboxProcess,
) -> std::path::PathBuf {
    let mut creds: Value = reqwest::get(format!("{}/control/credentials", sandbox.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    creds["unionpay"]["back_url"] = json!("http://127.0.0.1:9/notify/unionpay");
    let strip_nulls = |v: &mut Value| {
        if let Value::Object(m) = v {
            m.retain(|_, x| !x.is_null());
        }
    };
    let mut wallets = json!({
        "wechatpay": creds["wechat"].take(),
        "alipay": creds["alipay"].take(),
        "unionpay": creds["unionpay"].take(),
        "timeouts": {"connect_timeout_ms": 1000, "request_timeout_ms": 2000},
    });
    for w in ["wechatpay", "alipay", "unionpay"] {
        strip_nulls(&mut wallets[w]);
    }
    let config = json!({
        "wallets": wallets,
        "closing": {"first_check_secs": 1, "interval_secs": 1, "wechatpay_window_secs": 20, "alipay_window_secs": 20, "unionpay_window_secs": 20},
    });
    let path = install.dir.path().join("qrgate.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

/// Sends a request and returns the answer's rsp_code and opened data; `None` when the
/// gateway is gone.
pub(crate) async fn send(
    endpoint: &str,
    merchant: &str,
    key: &str,
    action: &str,
    data: Value,
) -> Option<(String, Value)> {
    let (sealed, md5) = pos::seal(data.as_object().unwrap(), key);
    let envelope = json!({"action": action, "version": "1.0", "merchant_id": merchant, "data": sealed, "md5": md5});
    let response = reqwest::Client::new()
        .post(endpoint)
        .timeout(Duration::from_secs(20))
        .json(&envelope)
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    let opened = pos::open(body["data"].as_str()?, body["md5"].as_str()?, key)
        .map(Value::Object)
        .unwrap_or(Value::Null);
    Some((body["rsp_code"].as_str()?.to_owned(), opened))
}

async fn killed_mid_payment_then_restarted(install: Install) {
    let sandbox = start_sandbox(&install).await;
    let config = write_config(&install, &sandbox).await;
    let config = config.to_str().unwrap().to_owned();
    let created: Value = serde_json::from_str(&install.ok(&[
        "merchant",
        "create",
        "--name",
        "Crash",
        "--currency",
        "CAD",
        "--json",
        "--config",
        &config,
    ]))
    .unwrap();
    let (merchant, key) = (
        created["merchant_id"].as_str().unwrap().to_owned(),
        created["sign_key"].as_str().unwrap().to_owned(),
    );
    let control = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let url = format!("{}/control{path}", sandbox.url);
        let control = control.clone();
        async move {
            control
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    // One customer per wallet; a mix of codes that pay at once, after a password, never,
    // with a system error, or with no answer at all.
    let behaviours = [
        json!({"kind": "instant"}),
        json!({"kind": "instant"}),
        json!({"kind": "password", "after_secs": 2}),
        json!({"kind": "password", "after_secs": 2}),
        json!({"kind": "never_confirm"}),
        json!({"kind": "system_error"}),
        json!({"kind": "timeout", "paid": true}),
    ];
    let mut customers = BTreeMap::new();
    let mut orders = Vec::new();
    for (wallet, biz) in [
        ("wechat", "WECHATPAY"),
        ("alipay", "ALIPAY"),
        ("unionpay", "UNIONPAY"),
    ] {
        let customer = post(
            "/customers",
            json!({"name": wallet, "balance_fen": 100_000}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        customers.insert(customer.clone(), wallet);
        for (i, b) in behaviours.iter().enumerate() {
            let code = post(
                "/codes",
                json!({"customer_id": customer, "wallet": wallet, "behaviour": b, "ttl_secs": 600}),
            )
            .await["code"]
                .as_str()
                .unwrap()
                .to_owned();
            orders.push((
                format!("CR{}{i}", &wallet[..2].to_uppercase()),
                customer.clone(),
                biz,
                code,
            ));
        }
    }

    let server = install.serve(&["--config", &config]);
    let endpoint = server.endpoint();
    let mut inflight = Vec::new();
    for (order_id, _, biz, code) in &orders {
        let data =
            json!({"order_id": order_id, "amount": "1000", "auth_code": code, "biz_type": biz});
        let (endpoint, merchant, key) = (endpoint.clone(), merchant.clone(), key.clone());
        inflight.push(tokio::spawn(async move {
            send(&endpoint, &merchant, &key, "PASSIVEPAY", data).await
        }));
    }
    // Kill it while answers are still coming: the no-answer payments are certainly in flight.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    for task in inflight {
        let _ = task.await;
    }
    drop(server);

    // Restart on the same database: the closing loop takes over.
    let server = install.serve(&["--config", &config]);
    let endpoint = server.endpoint();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut finals: BTreeMap<String, String> = BTreeMap::new();
    while finals.len() < orders.len() {
        assert!(
            Instant::now() < deadline,
            "orders still open after 90 s: {finals:?}"
        );
        for (order_id, ..) in &orders {
            if finals.contains_key(order_id) {
                continue;
            }
            let Some((code, data)) = send(
                &endpoint,
                &merchant,
                &key,
                "STATUS_QUERY",
                json!({"order_id": order_id}),
            )
            .await
            else {
                continue;
            };
            match (code.as_str(), data["order_status"].as_str()) {
                ("SUCCESS", Some(s @ ("success" | "failure" | "orderclosed"))) => {
                    finals.insert(order_id.clone(), s.to_owned());
                }
                // Never stored: the request died before the order was written, so no wallet
                // was called either (checked below against the sandbox's trades).
                ("PARAM_INVALID", _) => {
                    finals.insert(order_id.clone(), "never_stored".to_owned());
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 10.00 CAD at the sandbox's 5.2 = 52.00 CNY for each paid order, and for nothing else.
    for (customer, wallet) in &customers {
        let paid = orders
            .iter()
            .filter(|(id, c, ..)| c == customer && finals[id] == "success")
            .count();
        let c: Value = reqwest::get(format!("{}/control/customers/{customer}", sandbox.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let balance = c["balance_fen"].as_i64().unwrap();
        assert_eq!(
            100_000 - balance,
            5200 * i64::try_from(paid).unwrap(),
            "{wallet}: {finals:?}"
        );
    }
    let trades: Value = reqwest::get(format!("{}/control/trades", sandbox.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paid_trades = trades
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "success")
        .count();
    let paid_orders = finals.values().filter(|s| *s == "success").count();
    assert_eq!(
        paid_trades, paid_orders,
        "every paid trade at the wallet is a paid order: {finals:?}"
    );
    // A code the customer never confirms can never be paid: those orders are reversed (or,
    // killed before the wallet call, never stored). Orders hit by the kill may end closed
    // whatever their code; the balances and trades above prove nobody paid for them.
    for (order_id, ..) in orders.iter().filter(|(id, ..)| id.ends_with('4')) {
        assert!(
            matches!(finals[order_id].as_str(), "orderclosed" | "never_stored"),
            "{order_id}: {finals:?}"
        );
    }
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_mid_payment_settles_every_order_after_restart_on_sqlite() {
    killed_mid_payment_then_restarted(Install::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_mid_payment_settles_every_order_after_restart_on_postgres() {
    if let Some(install) = Install::postgres(
        "e2e::crash::a_gateway_killed_mid_payment_settles_every_order_after_restart_on_postgres",
    )
    .await
    {
        killed_mid_payment_then_restarted(install).await;
    }
}

/// Two gateway processes share one PostgreSQL; one is killed with SIGKILL while merchant
/// notifications are being delivered, then restarted. Every paid order's notification arrives
/// (at least once; a delivery cut by the kill may be repeated), none is lost.
async fn notifications_survive_a_kill_with_two_nodes(install: Install) {
    use std::sync::{Arc, Mutex};

    let sandbox = start_sandbox(&install).await;
    let config = write_config(&install, &sandbox).await;
    let mut toml_text = std::fs::read_to_string(&config).unwrap();
    toml_text = format!("allow_private_callbacks = true\n{toml_text}");
    std::fs::write(&config, toml_text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let created: Value = serde_json::from_str(&install.ok(&[
        "merchant",
        "create",
        "--name",
        "Two",
        "--currency",
        "CAD",
        "--json",
        "--config",
        &config,
    ]))
    .unwrap();
    let (merchant, key) = (
        created["merchant_id"].as_str().unwrap().to_owned(),
        created["sign_key"].as_str().unwrap().to_owned(),
    );

    // The merchant's endpoint: slow (so deliveries are in flight at the kill), records order ids.
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = got.clone();
    let receiver_key = key.clone();
    let arrivals = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |body: String| {
            let seen = seen.clone();
            let receiver_key = receiver_key.clone();
            let arrivals = arrivals.clone();
            async move {
                // Each request takes longer than the one before, so when the first answer is
                // out, others are still in flight (and get cut by the kill).
                let n = arrivals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300 + 400 * n.min(12))).await;
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if let (Some(d), Some(m)) = (v["data"].as_str(), v["md5"].as_str()) {
                    if let Ok(data) = pos::open(d, m, &receiver_key) {
                        seen.lock()
                            .unwrap()
                            .push(data["order_id"].as_str().unwrap_or("").to_owned());
                    }
                }
                "OK"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let a = install.serve(&["--config", &config]);
    let b = install.serve(&["--config", &config]);
    let customer = reqwest::Client::new()
        .post(format!("{}/control/customers", sandbox.url))
        .json(&json!({"name": "c", "balance_fen": 1_000_000}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut order_ids = Vec::new();
    for i in 0..10 {
        let order_id = format!("TWO{i}");
        let data = json!({"order_id": order_id, "amount": "100", "biz_type": "ALIPAY", "call_back_url": receiver});
        let (code, answer) = send(&a.endpoint(), &merchant, &key, "ACTIVEPAY", data)
            .await
            .unwrap();
        assert_eq!(code, "SUCCESS");
        reqwest::Client::new()
            .post(format!("{}/control/qr/pay", sandbox.url))
            .json(&json!({"code_url": answer["code_url"], "customer_id": customer}))
            .send()
            .await
            .unwrap();
        order_ids.push(order_id);
    }
    // Deliveries start (wallet notifications, or the closing loops' queries); kill one node
    // while some are in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no notification delivered at all"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = a.child.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    drop(a);
    let a = install.serve(&["--config", &config]);

    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let received = got.lock().unwrap().clone();
        if order_ids.iter().all(|id| received.contains(id)) {
            // Normally once each; a delivery cut by the kill may come twice, never more than
            // the few that were in flight.
            assert!(received.len() <= order_ids.len() + 8, "{received:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "notifications lost: got {received:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = a.terminate();
    let _ = b.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_survive_a_kill_with_two_gateways_on_postgres() {
    if let Some(install) =
        Install::postgres("e2e::crash::notifications_survive_a_kill_with_two_gateways_on_postgres")
            .await
    {
        notifications_survive_a_kill_with_two_nodes(install).await;
    }
}
