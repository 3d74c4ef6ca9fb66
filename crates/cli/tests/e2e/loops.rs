//! The background loops, with the built binary and the wallet sandbox in its own process over
//! real HTTP: one wallet made slow does not delay another wallet's orders (nor its own orders
//! each other's), and an order whose process was killed during a slow wallet call is worked
//! again at once by the restarted process, never by two workers at once.
//!
//! Time is real here (the sandbox's latency fault is real time): the margins are generous
//! and the bounds are against the confirmation window, not against tight timings.

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use qrgate_domain::{MerchantId, MerchantOrderId};
use qrgate_store::{OrderEvent, Store};
use serde_json::{json, Value};

use crate::crash::{send, start_sandbox, write_config, SandboxProcess};
use crate::Install;

/// The test config, with the wallets' request timeout above the latency the tests set and
/// Alipay's confirmation window as given.
async fn config(install: &Install, sandbox: &SandboxProcess, alipay_window_secs: i64) -> String {
    let path = write_config(install, sandbox).await;
    let mut config: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["wallets"]["timeouts"]["request_timeout_ms"] = toml::Value::Integer(15_000);
    config["closing"]["alipay_window_secs"] = toml::Value::Integer(alipay_window_secs);
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The store the gateway writes, opened beside it to read timelines and claims.
async fn open_store(install: &Install) -> Store {
    match &install.database_url {
        Some(url) => Store::connect(url, 2).await.unwrap(),
        None => Store::open_sqlite_with(&install.data_dir().join("qrgate.db"), 2)
            .await
            .unwrap(),
    }
}

struct Scene {
    sandbox: SandboxProcess,
    config: String,
    merchant: String,
    key: String,
    http: reqwest::Client,
}

impl Scene {
    async fn start(install: &Install, alipay_window_secs: i64) -> Scene {
        let sandbox = start_sandbox(install).await;
        let config = config(install, &sandbox, alipay_window_secs).await;
        let created: Value = serde_json::from_str(&install.ok(&[
            "merchant",
            "create",
            "--name",
            "Loops",
            "--currency",
            "CAD",
            "--json",
            "--config",
            &config,
        ]))
        .unwrap();
        Scene {
            sandbox,
            config,
            merchant: created["merchant_id"].as_str().unwrap().to_owned(),
            key: created["sign_key"].as_str().unwrap().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}/control{path}", self.sandbox.url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn customer(&self) -> String {
        self.control("/customers", json!({"name": "c", "balance_fen": 100_000}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn balance(&self, customer: &str) -> i64 {
        let c: Value = self
            .http
            .get(format!("{}/control/customers/{customer}", self.sandbox.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        c["balance_fen"].as_i64().unwrap()
    }

    async fn code(&self, customer: &str, wallet: &str, behaviour: Value) -> String {
        self.control(
            "/codes",
            json!({"customer_id": customer, "wallet": wallet, "behaviour": behaviour, "ttl_secs": 600}),
        )
        .await["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Every answer of `wallet` takes `latency_ms`.
    async fn latency(&self, wallet: &str, latency_ms: u64) {
        let r = self
            .http
            .put(format!("{}/control/faults/{wallet}", self.sandbox.url))
            .json(&json!({"latency_ms": latency_ms}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    async fn pay(&self, endpoint: &str, order_id: &str, code: &str, biz: &str) {
        let data =
            json!({"order_id": order_id, "amount": "1000", "auth_code": code, "biz_type": biz});
        let (rsp, answer) = send(endpoint, &self.merchant, &self.key, "PASSIVEPAY", data)
            .await
            .unwrap();
        assert_eq!(rsp, "PROCESSING", "{order_id}: {answer}");
    }

    /// STATUS_QUERY's `order_status`, if the gateway answered.
    async fn status(&self, endpoint: &str, order_id: &str) -> Option<String> {
        let (_, data) = send(
            endpoint,
            &self.merchant,
            &self.key,
            "STATUS_QUERY",
            json!({"order_id": order_id}),
        )
        .await?;
        data["order_status"].as_str().map(str::to_owned)
    }

    async fn order_key(&self, store: &Store, order_id: &str) -> String {
        store
            .order_by_merchant_order_id(
                &MerchantId::parse(&self.merchant).unwrap(),
                &MerchantOrderId::parse(order_id).unwrap(),
            )
            .await
            .unwrap()
            .unwrap()
            .key
    }
}

fn kill_now(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// When a wallet call on the timeline started and ended.
fn span(e: &OrderEvent) -> (chrono::DateTime<Utc>, chrono::DateTime<Utc>) {
    (e.at - chrono::Duration::milliseconds(e.latency_ms), e.at)
}

async fn a_slow_wallet_does_not_delay_another_wallets_orders(install: Install) {
    // Alipay's window is long: its orders stay open, and slow, for the whole test.
    let scene = Scene::start(&install, 600).await;
    let server = install.serve(&["--config", &scene.config]);
    let endpoint = server.endpoint();
    let store = open_store(&install).await;

    // Six Alipay payments waiting for their customers.
    let ali = scene.customer().await;
    let mut slow_orders = Vec::new();
    for i in 0..6 {
        let code = scene
            .code(&ali, "alipay", json!({"kind": "never_confirm"}))
            .await;
        let order_id = format!("ALI{i}");
        scene.pay(&endpoint, &order_id, &code, "ALIPAY").await;
        slow_orders.push(scene.order_key(&store, &order_id).await);
    }
    // A partial outage: every Alipay answer now takes 8 s. Let the loop get into those calls.
    scene.latency("alipay", 8_000).await;
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // WeChat Pay: one customer confirms after 3 s, one never does (window 20 s).
    let wx = scene.customer().await;
    let confirming = scene
        .code(&wx, "wechat", json!({"kind": "password", "after_secs": 3}))
        .await;
    let never = scene
        .code(&wx, "wechat", json!({"kind": "never_confirm"}))
        .await;
    let paid_sent = Instant::now();
    scene
        .pay(&endpoint, "WXPAID", &confirming, "WECHATPAY")
        .await;
    let never_sent = Instant::now();
    scene.pay(&endpoint, "WXNEVER", &never, "WECHATPAY").await;

    let (mut paid_after, mut closed_after) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while paid_after.is_none() || closed_after.is_none() {
        assert!(
            Instant::now() < deadline,
            "WeChat Pay orders not settled: paid after {paid_after:?}, closed after {closed_after:?}"
        );
        if paid_after.is_none()
            && scene.status(&endpoint, "WXPAID").await.as_deref() == Some("success")
        {
            paid_after = Some(paid_sent.elapsed());
        }
        if closed_after.is_none() {
            match scene.status(&endpoint, "WXNEVER").await.as_deref() {
                Some("orderclosed") => closed_after = Some(never_sent.elapsed()),
                Some("notpay" | "canceling") | None => {}
                other => panic!("WXNEVER is {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (paid_after, closed_after) = (paid_after.unwrap(), closed_after.unwrap());
    eprintln!("WeChat Pay while Alipay answers in 8 s: confirmed at 3 s, reported paid at {paid_after:?}; never confirmed, reversed at {closed_after:?} (window 20 s)");
    // Confirmed at 3 s, checked every second: paid within a few seconds of it, not after a
    // round of slow Alipay calls (45 s and more before the loops ran concurrently).
    assert!(
        paid_after < Duration::from_secs(3 + 12),
        "reported paid only {paid_after:?} after the payment"
    );
    // Reversed near its window (20 s), never before it.
    assert!(
        closed_after > Duration::from_secs(18),
        "reversed before its window: {closed_after:?}"
    );
    assert!(
        closed_after < Duration::from_secs(20 + 15),
        "reversed {closed_after:?} after the payment, against a 20 s window"
    );
    assert_eq!(
        scene.balance(&wx).await,
        100_000 - 5200,
        "charged once, for WXPAID"
    );

    // Alipay's own orders did not queue behind each other either: each was asked again and
    // again during the outage (one after the other, the six would take 48 s per round).
    let deadline = outage + Duration::from_secs(45);
    for key in &slow_orders {
        loop {
            let events = store.order_events(key).await.unwrap();
            let slow_queries = events
                .iter()
                .filter(|e| e.operation == "query" && e.latency_ms >= 7_000)
                .count();
            if slow_queries >= 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{key}: {slow_queries} slow queries {:?} into the outage: {events:?}",
                outage.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    scene.latency("alipay", 0).await;
    let (status, _) = server.terminate();
    assert!(status.success());
}

async fn an_order_killed_during_a_slow_wallet_call_is_worked_again_at_once(install: Install) {
    let scene = Scene::start(&install, 20).await;
    let server = install.serve(&["--config", &scene.config]);
    let endpoint = server.endpoint();
    let store = open_store(&install).await;
    let customer = scene.customer().await;
    let code = scene
        .code(&customer, "alipay", json!({"kind": "never_confirm"}))
        .await;
    let paid_sent = Instant::now();
    scene.pay(&endpoint, "KILLED", &code, "ALIPAY").await;
    let key = scene.order_key(&store, "KILLED").await;
    // Every Alipay answer takes 5 s from now: the closing loop's queries are slow.
    scene.latency("alipay", 5_000).await;

    // Wait until the loop holds the order, and is a second into the call it holds it for.
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        assert!(
            Instant::now() < deadline,
            "the closing loop never took the order"
        );
        if let Some(claim) = store.order_claim(&key).await.unwrap() {
            if claim.until > Utc::now() {
                break claim;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store.order_claim(&key).await.unwrap().as_ref(),
        Some(&held),
        "still in the same call"
    );
    kill_now(server.child.id());
    let killed = Utc::now();
    drop(server);
    // The dead process's claim is still on the order: left alone, it would park it until
    // its lease runs out.
    let left = store.order_claim(&key).await.unwrap().unwrap();
    assert_eq!(left, held);
    assert!(left.until > Utc::now(), "{left:?}");
    let old_worker = held.holder.rsplit_once('.').unwrap().0.to_owned();

    // Restarted at once, on the same data directory: the same node, a new run.
    let server = install.serve(&["--config", &scene.config]);
    let endpoint = server.endpoint();
    let deadline = Instant::now() + Duration::from_secs(60);
    let first_again = loop {
        let events = store.order_events(&key).await.unwrap();
        if let Some(e) = events
            .iter()
            .find(|e| e.worker.as_deref() != Some(old_worker.as_str()))
        {
            break e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "not worked again since the kill: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let new_worker = first_again.worker.clone().unwrap();
    assert_eq!(
        new_worker.split_once('#').unwrap().0,
        old_worker.split_once('#').unwrap().0,
        "the restarted process is the same node"
    );
    let again_after = span(&first_again).0 - killed;
    eprintln!("killed during a 5 s call; its lease ran until {} s after the kill; worked again {} ms after the kill", (left.until - killed).num_seconds(), again_after.num_milliseconds());
    // Well before the old 90 s lease, and before the 30 s one too: the restart released it.
    assert!(
        again_after < chrono::Duration::seconds(15),
        "worked again only {again_after} after the kill"
    );

    // Then settled as if nothing happened: reversed after its window, nobody charged.
    let deadline = paid_sent + Duration::from_secs(90);
    loop {
        match scene.status(&endpoint, "KILLED").await.as_deref() {
            Some("orderclosed") => break,
            // Being reversed.
            Some("notpay" | "canceling") | None => {}
            other => panic!("KILLED is {other:?}"),
        }
        assert!(Instant::now() < deadline, "not reversed after 90 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let closed_after = paid_sent.elapsed();
    eprintln!("reversed {closed_after:?} after the payment (window 20 s, calls of 5 s)");
    assert!(
        closed_after < Duration::from_secs(20 + 40),
        "reversed {closed_after:?} after the payment, against a 20 s window"
    );
    assert_eq!(scene.balance(&customer).await, 100_000);

    // The timeline: each call by one worker, the dead one's all before the kill, the new
    // one's all after it, and no two calls at once.
    let events = store.order_events(&key).await.unwrap();
    assert!(
        events.iter().any(|e| e.operation == "reverse"),
        "{events:?}"
    );
    for e in &events {
        let (start, end) = span(e);
        match e.worker.as_deref() {
            Some(w) if w == old_worker => assert!(end <= killed, "{e:?}"),
            Some(w) if w == new_worker => assert!(start >= killed, "{e:?}"),
            other => panic!("a call by {other:?}: {events:?}"),
        }
    }
    for pair in events.windows(2) {
        assert!(
            span(&pair[0]).1 <= span(&pair[1]).0,
            "two calls at once: {pair:?}"
        );
    }
    scene.latency("alipay", 0).await;
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_wallet_does_not_delay_another_wallets_orders_on_sqlite() {
    a_slow_wallet_does_not_delay_another_wallets_orders(Install::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_wallet_does_not_delay_another_wallets_orders_on_postgres() {
    if let Some(install) = Install::postgres(
        "e2e::loops::a_slow_wallet_does_not_delay_another_wallets_orders_on_postgres",
    )
    .await
    {
        a_slow_wallet_does_not_delay_another_wallets_orders(install).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_killed_during_a_slow_wallet_call_is_worked_again_at_once_on_sqlite() {
    an_order_killed_during_a_slow_wallet_call_is_worked_again_at_once(Install::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_killed_during_a_slow_wallet_call_is_worked_again_at_once_on_postgres() {
    if let Some(install) = Install::postgres(
        "e2e::loops::an_order_killed_during_a_slow_wallet_call_is_worked_again_at_once_on_postgres",
    )
    .await
    {
        an_order_killed_during_a_slow_wallet_call_is_worked_again_at_once(install).await;
    }
}
