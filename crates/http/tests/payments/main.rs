//! PASSIVEPAY and STATUS_QUERY end to end over real HTTP: a POS written from `ottpay.md`
//! alone, the gateway with its closing loop, and the wallet sandbox, on SQLite and on
//! PostgreSQL. The gateway's clock and the sandbox's move together, by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{Duration, Utc};
use qrgate_connectors::{TimeoutSettings, WalletSettings};
use qrgate_domain::{Currency, MerchantOrderId, OrderStatus, Wallet};
use qrgate_engine::{
    ClosingPolicy, CreatedMerchant, Engine, FixedClock, MasterKey, MerchantRequest, Wallets,
};
use qrgate_http::{AppState, HttpConfig};
use qrgate_sandbox::{wallet_modules, RunningSandbox, Sandbox, SandboxConfig};
use qrgate_testkit::pos::{PosClient, PosResponse};
use qrgate_testkit::{backend_tests, TestDb};
use serde_json::{json, Value};

mod fx;
mod loops;
mod refunds;

const WALLETS: [(&str, &str); 3] = [
    ("wechat", "WECHATPAY"),
    ("alipay", "ALIPAY"),
    ("unionpay", "UNIONPAY"),
];

struct World {
    engine: Engine,
    clock: Arc<FixedClock>,
    sandbox: Sandbox,
    running: RunningSandbox,
    _secapi: qrgate_sandbox::wechat::SecapiServer,
    merchant: CreatedMerchant,
    pos: PosClient,
    http: reqwest::Client,
    _db: TestDb,
}

impl World {
    async fn start(db: TestDb) -> World {
        World::start_with_budget(db, std::time::Duration::from_secs(12)).await
    }

    async fn start_with_budget(db: TestDb, budget: std::time::Duration) -> World {
        World::start_with(db, budget, 1_500, false).await
    }

    /// `request_timeout_ms`: how long one wallet call may take (short by default, so that a
    /// dropped answer is found quickly). `code_notifications`: UnionPay's notifications of
    /// code payments reach the gateway (by default their `backUrl` leads nowhere, so that
    /// tests of lost answers exercise the closing loop's queries).
    async fn start_with(
        db: TestDb,
        budget: std::time::Duration,
        request_timeout_ms: u64,
        code_notifications: bool,
    ) -> World {
        let sandbox = Sandbox::new(
            SandboxConfig {
                seed: 5,
                ..Default::default()
            },
            wallet_modules(),
        )
        .unwrap();
        let running = sandbox
            .clone()
            .spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let secapi = qrgate_sandbox::wechat::serve_secapi(
            sandbox.clone(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let mut creds: Value = http
            .get(format!("{}/control/credentials", running.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        creds["unionpay"]["back_url"] = if code_notifications {
            json!(format!("http://{addr}/notify/unionpay"))
        } else {
            json!("http://127.0.0.1:9/notify/unionpay")
        };
        let settings = WalletSettings {
            wechatpay: Some(serde_json::from_value(creds["wechat"].take()).unwrap()),
            alipay: Some(serde_json::from_value(creds["alipay"].take()).unwrap()),
            unionpay: Some(serde_json::from_value(creds["unionpay"].take()).unwrap()),
            timeouts: TimeoutSettings {
                connect_timeout_ms: 2_000,
                request_timeout_ms,
            },
        };
        // Short windows so that tests need to move the clocks only a little.
        let policy = ClosingPolicy {
            first_check: Duration::seconds(2),
            interval: Duration::seconds(2),
            confirm_window: Duration::seconds(20),
            reverse_retry: Duration::seconds(1),
        };
        let mut wallets = Wallets::new(settings.build().unwrap());
        wallets.pay_budget = budget;
        for w in Wallet::ALL {
            wallets = wallets.with_policy(w, policy);
        }
        wallets.notify_base_url = format!("http://{addr}");
        let clock = Arc::new(FixedClock::new(Utc::now()));
        let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock.clone())
            .await
            .unwrap()
            .with_wallets(wallets)
            .with_callback_settings(qrgate_engine::CallbackSettings {
                allow_private: true,
                timeout: std::time::Duration::from_secs(2),
                format: Some(Arc::new(qrgate_http::OttpayNotificationFormat)),
                ..Default::default()
            })
            .unwrap();
        let merchant = engine
            .create_merchant(&MerchantRequest {
                name: "Maple Tea".into(),
                currency: Currency::Cad,
                time_zone: "America/Toronto".parse().unwrap(),
                id_prefix: "ON".into(),
            })
            .await
            .unwrap();
        tokio::spawn(qrgate_http::serve(
            listener,
            AppState::new(engine.clone(), HttpConfig::default()),
            std::future::pending(),
        ));
        let pos = PosClient::new(
            &format!("http://{addr}/processV2"),
            merchant.merchant.id.as_str(),
            merchant.sign_key.expose(),
        );
        World {
            engine,
            clock,
            sandbox,
            running,
            _secapi: secapi,
            merchant,
            pos,
            http,
            _db: db,
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}/control{path}", self.running.url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn put_faults(&self, wallet: &str, faults: Value) {
        let r = self
            .http
            .put(format!("{}/control/faults/{wallet}", self.running.url()))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{wallet}: {}", r.status());
    }

    async fn customer(&self, balance_fen: i64) -> String {
        self.control(
            "/customers",
            json!({"name": "Li Lei", "balance_fen": balance_fen}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn code(&self, customer: &str, wallet: &str, behaviour: Value) -> String {
        self.control(
            "/codes",
            json!({"customer_id": customer, "wallet": wallet, "behaviour": behaviour}),
        )
        .await["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn balance(&self, customer: &str) -> i64 {
        let c: Value = self
            .http
            .get(format!(
                "{}/control/customers/{customer}",
                self.running.url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        c["balance_fen"].as_i64().unwrap()
    }

    async fn trades(&self) -> usize {
        let t: Value = self
            .http
            .get(format!("{}/control/trades", self.running.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        t.as_array().unwrap().len()
    }

    /// Moves both clocks forward and runs the closing and refund loops until nothing is due.
    async fn advance(&self, seconds: i64) {
        self.clock.advance(Duration::seconds(seconds));
        self.sandbox.clock().advance(Duration::seconds(seconds));
        self.sandbox.tick().await;
        for _ in 0..50 {
            let orders = self.engine.close_due_orders("test", 16).await.unwrap();
            let refunds = self.engine.settle_due_refunds("test", 16).await.unwrap();
            if orders + refunds == 0 {
                return;
            }
        }
        panic!("the closing loop never ran dry");
    }

    async fn pay(&self, order_id: &str, amount: &str, code: &str, biz_type: &str) -> PosResponse {
        self.pos
            .call("PASSIVEPAY", json!({"order_id": order_id, "operator_id": "0000000001", "amount": amount, "tip": "100", "auth_code": code, "biz_type": biz_type}))
            .await
    }

    async fn status(&self, order_id: &str) -> PosResponse {
        self.pos
            .call("STATUS_QUERY", json!({"order_id": order_id}))
            .await
    }

    async fn order(&self, order_id: &str) -> qrgate_domain::Order {
        self.engine
            .find_order(
                &self.merchant.merchant,
                &MerchantOrderId::parse(order_id).unwrap(),
            )
            .await
            .unwrap()
            .unwrap()
    }
}

fn data(r: &PosResponse) -> serde_json::Map<String, Value> {
    r.data
        .clone()
        .unwrap_or_else(|e| panic!("answer does not open: {e}: {r:?}"))
}

async fn instant_payments_with_each_wallet_are_paid_and_recorded(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let code = w.code(&customer, wallet, json!({"kind": "instant"})).await;
        let order_id = format!("INSTANT{i}");
        let r = w.pay(&order_id, "1000", &code, biz).await;
        assert_eq!(r.rsp_code, "SUCCESS", "{wallet}: {r:?}");
        // The gateway tells how long it waited on the wallet (Server-Timing).
        let timing = r.server_timing.as_deref().unwrap_or_default();
        let waited: f64 = timing
            .strip_prefix("wallet;dur=")
            .and_then(|t| t.split(';').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no wallet time: {timing:?}"));
        assert!(waited > 0.0, "{timing}");
        let d = data(&r);
        assert_eq!(d["order_status"], "success");
        assert_eq!(d["order_id"], order_id.as_str());
        assert_eq!(d["total_amount"], "1100", "amount plus tip");
        assert!(d["bizpay_order_id"].as_str().is_some_and(|s| !s.is_empty()));
        // Required on a paid order (`ottpay.md` §5.2), UnionPay's too (issue 14 §6).
        assert!(
            d["buyer_login_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{wallet}: {d:?}"
        );
        let s = data(&w.status(&order_id).await);
        assert_eq!(s["order_status"], "success");
        assert!(
            s["buyer_login_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{wallet}: {s:?}"
        );
        assert_eq!(s["amount"], "1000");
        assert_eq!(s["tip"], "100");
        // 11.00 CAD at the sandbox's 5.2 = 57.20 CNY, taken once.
        let order = w.order(&order_id).await;
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(
            order.cny_amount.map(|m| m.minor()),
            Some(5720),
            "{wallet}: {order:?}"
        );
        assert_eq!(order.operator_id.as_deref(), Some("0000000001"));
        assert_eq!(
            order.wallet.as_str(),
            ["wechatpay", "alipay", "unionpay"][i]
        );
    }
    assert_eq!(w.balance(&customer).await, 100_000 - 3 * 5720);
}

async fn a_password_payment_is_processing_then_success(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let code = w
            .code(
                &customer,
                wallet,
                json!({"kind": "password", "after_secs": 3}),
            )
            .await;
        let order_id = format!("PWD{i}");
        let r = w.pay(&order_id, "500", &code, biz).await;
        assert_eq!(r.rsp_code, "PROCESSING", "{wallet}: {r:?}");
        assert_eq!(data(&r)["order_status"], "notpay");
        assert_eq!(data(&w.status(&order_id).await)["order_status"], "notpay");
        w.advance(4).await;
        assert_eq!(
            data(&w.status(&order_id).await)["order_status"],
            "success",
            "{wallet}"
        );
    }
    assert_eq!(w.balance(&customer).await, 100_000 - 3 * 3120);
}

async fn a_never_confirmed_payment_is_reversed_and_costs_nothing(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let code = w
            .code(&customer, wallet, json!({"kind": "never_confirm"}))
            .await;
        let order_id = format!("NEVER{i}");
        assert_eq!(
            w.pay(&order_id, "800", &code, biz).await.rsp_code,
            "PROCESSING"
        );
        w.advance(10).await;
        assert_eq!(data(&w.status(&order_id).await)["order_status"], "notpay");
        w.advance(12).await;
        w.advance(2).await;
        let s = w.status(&order_id).await;
        assert_eq!(data(&s)["order_status"], "orderclosed", "{wallet}: {s:?}");
        let timeline = w
            .engine
            .order_timeline(&w.order(&order_id).await.key)
            .await
            .unwrap();
        let ops: Vec<&str> = timeline.iter().map(|e| e.operation.as_str()).collect();
        let sent = timeline[0].detail.clone().unwrap_or_default();
        assert!(sent.starts_with("9.00 CAD with a"), "{wallet}: {sent}");
        assert!(
            timeline
                .iter()
                .all(|e| !e.detail.as_deref().unwrap_or("").contains(&code)),
            "never the code"
        );
        assert_eq!(ops.first(), Some(&"pay"));
        assert!(
            ops.contains(&"query") && ops.contains(&"reverse"),
            "{wallet}: {ops:?}"
        );
    }
    assert_eq!(w.balance(&customer).await, 100_000, "nobody was charged");
}

async fn a_system_error_that_was_paid_is_found_and_a_timeout_is_resolved(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut charged = 0;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let code = w
            .code(&customer, wallet, json!({"kind": "system_error"}))
            .await;
        let sys = format!("SYS{i}");
        assert_eq!(
            w.pay(&sys, "300", &code, biz).await.rsp_code,
            "PROCESSING",
            "{wallet}"
        );
        w.advance(3).await;
        assert_eq!(
            data(&w.status(&sys).await)["order_status"],
            "success",
            "{wallet}"
        );
        charged += 2080; // 3.00 + 1.00 tip CAD at 5.2

        // The wallet never answers; it did take the money.
        let code = w
            .code(&customer, wallet, json!({"kind": "timeout", "paid": true}))
            .await;
        let slow = format!("SLOW{i}");
        assert_eq!(
            w.pay(&slow, "300", &code, biz).await.rsp_code,
            "PROCESSING",
            "{wallet}"
        );
        w.advance(3).await;
        assert_eq!(
            data(&w.status(&slow).await)["order_status"],
            "success",
            "{wallet}"
        );
        charged += 2080; // 3.00 + 1.00 tip CAD at 5.2

        // The request never reached the wallet: reversed to be safe, nothing charged.
        let code = w
            .code(&customer, wallet, json!({"kind": "timeout", "paid": false}))
            .await;
        let lost = format!("LOST{i}");
        assert_eq!(
            w.pay(&lost, "300", &code, biz).await.rsp_code,
            "PROCESSING",
            "{wallet}"
        );
        w.advance(22).await;
        w.advance(2).await;
        let s = data(&w.status(&lost).await);
        assert_eq!(s["order_status"], "orderclosed", "{wallet}: {s:?}");
    }
    assert_eq!(w.balance(&customer).await, 100_000 - charged);
}

async fn a_wallet_that_hangs_gets_processing_within_the_budget(db: TestDb) {
    // The budget (0.5 s) runs out before the wallet client's own timeout (1.5 s).
    let w = World::start_with_budget(db, std::time::Duration::from_millis(500)).await;
    let customer = w.customer(100_000).await;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let code = w.code(&customer, wallet, json!({"kind": "instant"})).await;
        w.http
            .put(format!("{}/control/faults/{wallet}", w.running.url()))
            .json(&json!({"drop_next": 1}))
            .send()
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let r = w.pay(&format!("HANG{i}"), "1000", &code, biz).await;
        assert_eq!(r.rsp_code, "PROCESSING", "{wallet}: {r:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_millis(1400),
            "answered within the budget"
        );
        // The wallet did take the money; the closing loop finds it.
        w.advance(16).await;
        assert_eq!(
            data(&w.status(&format!("HANG{i}")).await)["order_status"],
            "success",
            "{wallet}"
        );
    }
    assert_eq!(w.balance(&customer).await, 100_000 - 3 * 5720);
}

async fn a_qr_order_paid_by_the_customer_is_notified_and_settled(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let order_id = format!("QR{i}");
        let request = json!({"order_id": order_id, "amount": "1000", "tip": "100", "biz_type": biz, "call_back_url": "https://merchant.example/notify?code=x"});
        let r = w.pos.call("ACTIVEPAY", request.clone()).await;
        assert_eq!(r.rsp_code, "SUCCESS", "{wallet}: {r:?}");
        let code_url = data(&r)["code_url"].as_str().unwrap().to_owned();
        assert!(
            code_url.starts_with(&format!("{}/pay/", w.running.url())),
            "{code_url}"
        );
        assert_eq!(data(&r)["order_id"], order_id.as_str());
        // The same request again: the same QR.
        let again = w.pos.call("ACTIVEPAY", request).await;
        assert_eq!(data(&again)["code_url"], code_url.as_str());
        assert_eq!(data(&w.status(&order_id).await)["order_status"], "notpay");

        // The customer scans and pays; the wallet's notification settles the order (the
        // closing loop does not run here).
        w.control(
            "/qr/pay",
            json!({"code_url": code_url, "customer_id": customer}),
        )
        .await;
        w.sandbox.tick().await;
        let s = data(&w.status(&order_id).await);
        assert_eq!(s["order_status"], "success", "{wallet}: {s:?}");
        assert_eq!(s["total_amount"], "1100");
        // The wallet's notification is on the order's timeline after the QR's creation.
        let timeline = w
            .engine
            .order_timeline(&w.order(&order_id).await.key)
            .await
            .unwrap();
        let ops: Vec<&str> = timeline.iter().map(|e| e.operation.as_str()).collect();
        assert_eq!(ops, ["create_qr", "notification"], "{wallet}");
        assert_eq!(timeline[1].outcome, "paid");
    }
    assert_eq!(w.balance(&customer).await, 100_000 - 3 * 5720);
    let notes: Value = w
        .http
        .get(format!("{}/control/notifications", w.running.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        notes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["delivered"] == true),
        "every notification acknowledged: {notes}"
    );
}

async fn an_unpaid_qr_order_is_closed_at_the_wallet_when_it_expires(db: TestDb) {
    let w = World::start(db).await;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let order_id = format!("EXPIRE{i}");
        let r = w.pos.call("ACTIVEPAY", json!({"order_id": order_id, "amount": "500", "biz_type": biz, "call_back_url": "https://merchant.example/n"})).await;
        assert_eq!(r.rsp_code, "SUCCESS", "{wallet}: {r:?}");
        w.advance(60).await;
        assert_eq!(
            data(&w.status(&order_id).await)["order_status"],
            "notpay",
            "{wallet}"
        );
    }
    // Past the 15-minute expiry (and WeChat's 5-minute minimum age): closed at the wallet.
    w.advance(15 * 60).await;
    w.advance(40).await;
    for (i, (wallet, _)) in WALLETS.into_iter().enumerate() {
        let s = data(&w.status(&format!("EXPIRE{i}")).await);
        assert_eq!(s["order_status"], "orderclosed", "{wallet}: {s:?}");
        let timeline = w
            .engine
            .order_timeline(&w.order(&format!("EXPIRE{i}")).await.key)
            .await
            .unwrap();
        // Closed by our close call, or already closed by the wallet at the QR's expiry (which
        // the last query reports); either way it was asked.
        assert!(
            timeline
                .iter()
                .any(|e| e.operation == "close" || e.outcome == "closed"),
            "{wallet}: {timeline:?}"
        );
    }
    let trades: Value = w
        .http
        .get(format!("{}/control/trades", w.running.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        trades
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "closed"),
        "{trades}"
    );
}

/// A merchant's notification endpoint: records what it gets, answers what it is told to.
#[derive(Clone, Default)]
struct Merchant {
    got: Arc<std::sync::Mutex<Vec<(String, String, Value)>>>,
    answer: Arc<std::sync::Mutex<(u16, String)>>,
}

impl Merchant {
    async fn start() -> (Merchant, String) {
        let m = Merchant::default();
        *m.answer.lock().unwrap() = (200, "OK".into());
        let state = m.clone();
        let app = axum::Router::new()
            .route(
                "/notify",
                axum::routing::post(
                    |axum::extract::State(m): axum::extract::State<Merchant>,
                     uri: axum::http::Uri,
                     headers: axum::http::HeaderMap,
                     body: String| async move {
                        let ct = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        m.got.lock().unwrap().push((
                            uri.query().unwrap_or("").to_owned(),
                            ct,
                            serde_json::from_str(&body).unwrap_or(Value::Null),
                        ));
                        let (status, text) = m.answer.lock().unwrap().clone();
                        (axum::http::StatusCode::from_u16(status).unwrap(), text)
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (m, format!("http://{addr}/notify?code=wechatpay"))
    }

    fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

async fn merchants_get_their_notification_even_after_being_down(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let (merchant, url) = Merchant::start().await;
    merchant.answer(500, "down for maintenance");
    // Wallet notifications delivered twice change nothing.
    w.http
        .put(format!("{}/control/faults/alipay", w.running.url()))
        .json(&json!({"duplicate_notifications": true}))
        .send()
        .await
        .unwrap();
    let r = w.pos.call("ACTIVEPAY", json!({"order_id": "CB1", "amount": "1000", "tip": "100", "biz_type": "ALIPAY", "call_back_url": url})).await;
    assert_eq!(r.rsp_code, "SUCCESS", "{r:?}");
    let code_url = data(&r)["code_url"].as_str().unwrap().to_owned();
    w.control(
        "/qr/pay",
        json!({"code_url": code_url, "customer_id": customer}),
    )
    .await;
    w.sandbox.tick().await;
    assert_eq!(data(&w.status("CB1").await)["order_status"], "success");

    // The merchant is down for an hour: every attempt is recorded and retried.
    for _ in 0..8 {
        w.engine.deliver_due_callbacks("t", 8).await.unwrap();
        w.clock.advance(Duration::minutes(8));
    }
    let failed = merchant.count();
    assert!(failed >= 4, "retried while down: {failed}");
    merchant.answer(200, "fail");
    w.engine.deliver_due_callbacks("t", 8).await.unwrap();
    w.clock.advance(Duration::hours(1));
    merchant.answer(200, "");
    for _ in 0..3 {
        w.engine.deliver_due_callbacks("t", 8).await.unwrap();
        w.clock.advance(Duration::hours(1));
    }
    let callbacks = w
        .engine
        .callbacks(Some(&w.merchant.merchant.id), 10)
        .await
        .unwrap();
    assert_eq!(callbacks.len(), 1, "one notification for one paid order");
    assert_eq!(callbacks[0].status, qrgate_store::CallbackStatus::Delivered);
    let attempts = w
        .engine
        .callback_attempts(&callbacks[0].order_key)
        .await
        .unwrap();
    assert_eq!(attempts.len(), merchant.count());
    assert_eq!(attempts[0].http_status, Some(500));
    assert!(attempts[0].excerpt.contains("down for maintenance"));
    let delivered = merchant.count();
    w.engine.deliver_due_callbacks("t", 8).await.unwrap();
    assert_eq!(merchant.count(), delivered, "nothing more once delivered");

    // What the merchant got: §6 fields, decryptable and verifiable with its key, as JSON, to
    // the URL exactly as given.
    let (query, content_type, envelope) = merchant.got.lock().unwrap().last().cloned().unwrap();
    assert_eq!(query, "code=wechatpay");
    assert_eq!(content_type, "application/json");
    assert_eq!(envelope["rsp_code"], "SUCCESS");
    assert_eq!(envelope["merchant_id"], w.merchant.merchant.id.as_str());
    let opened = qrgate_testkit::pos::open(
        envelope["data"].as_str().unwrap(),
        envelope["md5"].as_str().unwrap(),
        w.merchant.sign_key.expose(),
    )
    .unwrap();
    assert_eq!(opened["order_id"], "CB1");
    assert_eq!(opened["amount"], "1000");
    assert_eq!(opened["tip"], "100");
    assert_eq!(opened["order_status"], "success");
    assert_eq!(opened["merchant_id"], w.merchant.merchant.id.as_str());
    assert!(opened["bizpay_order_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(opened["finish_time"].as_str().map(str::len), Some(14));
}

async fn a_payment_after_the_qr_was_closed_is_recorded_and_notified(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let (merchant, url) = Merchant::start().await;
    let r = w.pos.call("ACTIVEPAY", json!({"order_id": "LATE", "amount": "1000", "biz_type": "ALIPAY", "call_back_url": url})).await;
    let code_url = data(&r)["code_url"].as_str().unwrap().to_owned();
    // The gateway's expiry passes and it closes the order; Alipay answers TRADE_NOT_EXIST for a
    // QR nobody scanned, and the QR itself stays payable (wallets.md §2.4, open point 7).
    w.clock.advance(Duration::minutes(16));
    while w.engine.close_due_orders("t", 8).await.unwrap() > 0 {}
    assert_eq!(data(&w.status("LATE").await)["order_status"], "orderclosed");
    // The customer pays it anyway: the money moved, so the order is paid, flagged, notified.
    w.control(
        "/qr/pay",
        json!({"code_url": code_url, "customer_id": customer}),
    )
    .await;
    w.sandbox.tick().await;
    assert_eq!(data(&w.status("LATE").await)["order_status"], "success");
    assert_eq!(
        w.order("LATE").await.wallet_code.as_deref(),
        Some("LATE_PAYMENT")
    );
    w.engine.deliver_due_callbacks("t", 8).await.unwrap();
    assert_eq!(
        merchant.count(),
        1,
        "the merchant hears of the late payment"
    );
}

async fn out_of_order_wallet_notifications_change_nothing(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let (merchant, url) = Merchant::start().await;
    for wallet in ["wechat", "alipay", "unionpay"] {
        w.http
            .put(format!("{}/control/faults/{wallet}", w.running.url()))
            .json(&json!({"out_of_order_notifications": true, "duplicate_notifications": true}))
            .send()
            .await
            .unwrap();
    }
    let mut urls = Vec::new();
    for (i, (_, biz)) in WALLETS.into_iter().enumerate() {
        for j in 0..2 {
            let r = w.pos.call("ACTIVEPAY", json!({"order_id": format!("OOO{i}{j}"), "amount": "100", "biz_type": biz, "call_back_url": url})).await;
            urls.push(data(&r)["code_url"].as_str().unwrap().to_owned());
        }
    }
    for code_url in &urls {
        w.control(
            "/qr/pay",
            json!({"code_url": code_url, "customer_id": customer}),
        )
        .await;
    }
    // All notifications due together, delivered newest first and twice each.
    w.sandbox.tick().await;
    for i in 0..3 {
        for j in 0..2 {
            assert_eq!(
                data(&w.status(&format!("OOO{i}{j}")).await)["order_status"],
                "success"
            );
        }
    }
    w.engine.deliver_due_callbacks("t", 16).await.unwrap();
    assert_eq!(
        merchant.count(),
        6,
        "one merchant notification per paid order"
    );
    assert_eq!(w.balance(&customer).await, 100_000 - 6 * 520);
    // Each one carries the §6 fields, opens with the merchant's key and verifies.
    let mut seen: Vec<String> = merchant
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, content_type, envelope)| {
            assert_eq!(content_type, "application/json");
            let data = qrgate_testkit::pos::open(
                envelope["data"].as_str().unwrap(),
                envelope["md5"].as_str().unwrap(),
                w.merchant.sign_key.expose(),
            )
            .unwrap();
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            for field in [
                "finish_time",
                "order_id",
                "amount",
                "bizpay_order_id",
                "merchant_id",
                "order_status",
            ] {
                assert!(keys.contains(&field), "{field} in {keys:?}");
            }
            assert!(data.values().all(Value::is_string));
            data["order_id"].as_str().unwrap().to_owned()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["OOO00", "OOO01", "OOO10", "OOO11", "OOO20", "OOO21"]);
}

async fn forged_wallet_notifications_change_nothing(db: TestDb) {
    let w = World::start(db).await;
    let r = w.pos.call("ACTIVEPAY", json!({"order_id": "FORGE", "amount": "500", "biz_type": "ALIPAY", "call_back_url": "https://merchant.example/n"})).await;
    assert_eq!(r.rsp_code, "SUCCESS");
    let key = w.order("FORGE").await.key;
    let gateway = w.pos.endpoint.trim_end_matches("/processV2").to_owned();
    let forged = format!(
        "out_trade_no={key}&trade_status=TRADE_SUCCESS&total_amount=5.00&sign_type=RSA2&sign=AAAA"
    );
    for wallet in ["alipay", "wechatpay", "unionpay"] {
        let r = w
            .http
            .post(format!("{gateway}/notify/{wallet}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(forged.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{wallet}");
    }
    assert_eq!(
        w.http
            .post(format!("{gateway}/notify/paypal"))
            .body("x")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert_eq!(data(&w.status("FORGE").await)["order_status"], "notpay");
}

/// The sandbox merchant's own certificate: issued by the same root as UnionPay's signing
/// certificate, as a real merchant's is (by the same CA). Its key is in the credentials.
const UNIONPAY_MERCHANT_CERT: &str =
    include_str!("../../../sandbox/src/unionpay/pki/merchant_cert.pem");

/// Signs UnionPay fields the 5.1.0 way (`wallets.md` §3.1), written here from the spec: the
/// sorted non-empty `k=v` pairs without `signature`, their lower-hex SHA-256, RSA-SHA256.
fn unionpay_sign(fields: &mut Vec<(String, String)>, key_pem: &str) {
    use base64::Engine as _;
    let der: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let mut sorted: Vec<&(String, String)> = fields.iter().filter(|(_, v)| !v.is_empty()).collect();
    sorted.sort();
    let content = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let hex: String = ring::digest::digest(&ring::digest::SHA256, content.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        hex.as_bytes(),
        &mut signature,
    )
    .unwrap();
    fields.push((
        "signature".into(),
        base64::engine::general_purpose::STANDARD.encode(signature),
    ));
}

/// Issue 13 §1: a merchant's key and certificate, issued under UnionPay's root, cannot sign
/// a "paid" notification for an unpaid UnionPay order.
async fn a_unionpay_notification_signed_by_a_merchant_certificate_pays_nothing(db: TestDb) {
    let w = World::start(db).await;
    let r = w.pos.call("ACTIVEPAY", json!({"order_id": "UPFORGE", "amount": "500", "biz_type": "UNIONPAY", "call_back_url": "https://merchant.example/n"})).await;
    assert_eq!(r.rsp_code, "SUCCESS", "{r:?}");
    let order = w.order("UPFORGE").await;
    let creds: Value = w
        .http
        .get(format!("{}/control/credentials", w.running.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let merchant_key = creds["unionpay"]["merchant_private_key_pem"]
        .as_str()
        .unwrap();
    let mer_id = creds["unionpay"]["mer_id"].as_str().unwrap();
    let txn_time = order
        .wallet_created_at
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y%m%d%H%M%S")
        .to_string();
    let mut fields: Vec<(String, String)> = [
        ("version", "5.1.0"),
        ("encoding", "utf-8"),
        ("signMethod", "01"),
        ("certId", "73840215968"),
        ("bizType", "000000"),
        ("accessType", "0"),
        ("txnType", "01"),
        ("txnSubType", "07"),
        ("merId", mer_id),
        ("orderId", order.key.as_str()),
        ("txnTime", txn_time.as_str()),
        ("txnAmt", "500"),
        ("currencyCode", "124"),
        ("queryId", "782612031200000000018"),
        ("traceTime", "1203120000"),
        ("respCode", "00"),
        ("respMsg", "success"),
        ("signPubKeyCert", UNIONPAY_MERCHANT_CERT),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    unionpay_sign(&mut fields, merchant_key);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let gateway = w.pos.endpoint.trim_end_matches("/processV2").to_owned();
    let r = w
        .http
        .post(format!("{gateway}/notify/unionpay"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "the forged notification was accepted"
    );
    assert_eq!(data(&w.status("UPFORGE").await)["order_status"], "notpay");
    let stored = w.order("UPFORGE").await;
    assert_eq!(stored.status, OrderStatus::Pending, "{stored:?}");
    assert!(
        w.engine.store().check_ledger().await.unwrap().is_empty(),
        "ledger"
    );
}

/// Issue 13 §2: a "paid" that does not say what was paid (WeChat Pay without `total_fee`,
/// Alipay without `total_amount`, UnionPay with `txnAmt` but no `currencyCode`), correctly
/// signed, settles nothing; a query that carries the amount does.
async fn a_paid_without_its_amount_settles_nothing(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let faults = |n: u32| json!({"amountless_next": n});
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        // A QR paid by the customer: its notification comes without the amount.
        let order_id = format!("AMT{i}");
        let r = w.pos.call("ACTIVEPAY", json!({"order_id": order_id, "amount": "1000", "biz_type": biz, "call_back_url": "https://merchant.example/n"})).await;
        assert_eq!(r.rsp_code, "SUCCESS", "{wallet}: {r:?}");
        let code_url = data(&r)["code_url"].as_str().unwrap().to_owned();
        w.put_faults(wallet, faults(1)).await;
        w.control(
            "/qr/pay",
            json!({"code_url": code_url, "customer_id": customer}),
        )
        .await;
        w.sandbox.tick().await;
        let order = w.order(&order_id).await;
        assert_eq!(order.status, OrderStatus::Pending, "{wallet}: {order:?}");
        assert_eq!(
            order.wallet_code.as_deref(),
            Some("AMOUNT_MISMATCH"),
            "{wallet}"
        );
        assert_eq!(data(&w.status(&order_id).await)["order_status"], "notpay");
        assert!(
            order
                .next_check_at
                .is_some_and(|t| t <= qrgate_engine::Clock::now(w.clock.as_ref())),
            "{wallet}: the loop asks the wallet at once: {order:?}"
        );
        // The query carries the amount: paid.
        w.advance(1).await;
        assert_eq!(
            data(&w.status(&order_id).await)["order_status"],
            "success",
            "{wallet}"
        );

        // A code payment whose every answer leaves the amount out is never recorded paid:
        // it ends reversed and the customer gets the money back.
        let before = w.balance(&customer).await;
        w.put_faults(wallet, faults(1000)).await;
        let code = w.code(&customer, wallet, json!({"kind": "instant"})).await;
        let r = w.pay(&format!("AMTC{i}"), "300", &code, biz).await;
        assert_ne!(r.rsp_code, "SUCCESS", "{wallet}: {r:?}");
        w.advance(25).await;
        let order = w.order(&format!("AMTC{i}")).await;
        assert!(
            matches!(order.status, OrderStatus::Reversing | OrderStatus::Reversed),
            "{wallet}: past its window, never recorded paid: {order:?}"
        );
        // (UnionPay's cancel needs the amount its query leaves out: it reverses once the
        // wallet says it again.)
        w.put_faults(wallet, faults(0)).await;
        w.advance(25).await;
        let order = w.order(&format!("AMTC{i}")).await;
        assert_eq!(order.status, OrderStatus::Reversed, "{wallet}: {order:?}");
        assert_eq!(
            w.balance(&customer).await,
            before,
            "{wallet}: refunded by the reversal"
        );
    }
    assert!(w.engine.store().check_ledger().await.unwrap().is_empty());
}

async fn declines_get_clear_failure_messages(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let expired = w.code(&customer, wallet, json!({"kind": "expired"})).await;
        let r = w.pay(&format!("EXP{i}"), "100", &expired, biz).await;
        assert_eq!(r.rsp_code, "FAIL", "{wallet}: {r:?}");
        assert!(
            r.rsp_msg.contains("expired") || r.rsp_msg.contains("invalid"),
            "{wallet}: {}",
            r.rsp_msg
        );
        assert_eq!(data(&r)["order_status"], "failure");

        let short = w
            .code(&customer, wallet, json!({"kind": "insufficient_balance"}))
            .await;
        let r = w.pay(&format!("POOR{i}"), "100", &short, biz).await;
        assert_eq!(r.rsp_code, "FAIL");
        assert!(
            r.rsp_msg.starts_with("insufficient balance"),
            "{wallet}: {}",
            r.rsp_msg
        );
        assert_eq!(
            data(&w.status(&format!("POOR{i}")).await)["order_status"],
            "failure"
        );
    }
    assert_eq!(w.balance(&customer).await, 100_000);
}

async fn a_code_sent_with_another_wallets_biz_type_never_reaches_a_wallet(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let code = w
        .code(&customer, "wechat", json!({"kind": "instant"}))
        .await;
    let r = w.pay("MISMATCH", "100", &code, "ALIPAY").await;
    assert_eq!(r.rsp_code, "PARAM_INVALID");
    assert!(
        r.rsp_msg.contains("WECHATPAY code but biz_type is ALIPAY"),
        "{}",
        r.rsp_msg
    );
    let r = w.pay("NOFORMAT", "100", "999888777", "ALIPAY").await;
    assert_eq!(r.rsp_code, "PARAM_INVALID");
    assert!(
        r.rsp_msg.contains("no known wallet format"),
        "{}",
        r.rsp_msg
    );
    assert_eq!(w.trades().await, 0, "no wallet was called");
    assert_eq!(
        w.status("MISMATCH").await.rsp_code,
        "PARAM_INVALID",
        "nothing was stored"
    );
}

async fn a_repeated_order_id_charges_once(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let code = w
        .code(&customer, "wechat", json!({"kind": "instant"}))
        .await;
    let first = w.pay("DUP1", "1000", &code, "WECHATPAY").await;
    assert_eq!(first.rsp_code, "SUCCESS");
    // The very same request again (a POS retry, or a replayed envelope): the same answer.
    let again = w.pay("DUP1", "1000", &code, "WECHATPAY").await;
    assert_eq!(again.rsp_code, "SUCCESS");
    assert_eq!(
        data(&again)["bizpay_order_id"],
        data(&first)["bizpay_order_id"]
    );
    // The same order_id for another sale: refused.
    let other = w
        .code(&customer, "wechat", json!({"kind": "instant"}))
        .await;
    let r = w.pay("DUP1", "2000", &other, "WECHATPAY").await;
    assert_eq!(r.rsp_code, "ORDER_USED", "{r:?}");
    assert_eq!(w.balance(&customer).await, 100_000 - 5720);
    // Without an order_id, one is generated and returned; the same request again (its answer
    // was lost, or the envelope is replayed) finds that order instead of charging again.
    let request = json!({"amount": "100", "auth_code": other, "biz_type": "WECHATPAY"});
    let r = w.pos.call("PASSIVEPAY", request.clone()).await;
    assert_eq!(r.rsp_code, "SUCCESS");
    let generated = data(&r)["order_id"].as_str().unwrap().to_owned();
    assert!(generated.len() >= 20, "{generated}");
    assert_eq!(data(&w.status(&generated).await)["order_status"], "success");
    let replay = w.pos.call("PASSIVEPAY", request).await;
    assert_eq!(replay.rsp_code, "SUCCESS", "{replay:?}");
    assert_eq!(data(&replay)["order_id"], generated.as_str());
    // The same code for another sale is refused: by the gateway when the request is the same
    // in all but its order_id (naming the order the code paid), by the wallet otherwise.
    let same =
        json!({"order_id": "DUP2", "amount": "100", "auth_code": other, "biz_type": "WECHATPAY"});
    let r = w.pos.call("PASSIVEPAY", same).await;
    assert_eq!(r.rsp_code, "FAIL");
    assert!(r.rsp_msg.contains(&generated), "{}", r.rsp_msg);
    let r = w.pay("DUP3", "100", &other, "WECHATPAY").await;
    assert_eq!(r.rsp_code, "FAIL");
    assert!(r.rsp_msg.contains("already used"), "{}", r.rsp_msg);
    assert_eq!(
        w.balance(&customer).await,
        100_000 - 5720 - 520,
        "each sale charged once"
    );
}

/// Issue 14 §1: two customers buying the same thing at the same till get two sales. Without
/// an `order_id`, every ACTIVEPAY is a new order with its own QR, even when the requests are
/// byte-identical and concurrent; a paid first sale never answers for the second.
async fn identical_qr_sales_without_an_order_id_are_separate_sales(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    for (wallet, biz) in WALLETS {
        let request = json!({"amount": "450", "biz_type": biz, "call_back_url": "https://merchant.example/n"});
        let first = w.pos.call("ACTIVEPAY", request.clone()).await;
        assert_eq!(first.rsp_code, "SUCCESS", "{wallet}: {first:?}");
        let first_id = data(&first)["order_id"].as_str().unwrap().to_owned();
        let first_qr = data(&first)["code_url"].as_str().unwrap().to_owned();
        w.control(
            "/qr/pay",
            json!({"code_url": first_qr, "customer_id": customer}),
        )
        .await;
        w.sandbox.tick().await;
        assert_eq!(data(&w.status(&first_id).await)["order_status"], "success");

        // The next customer, the same request: a new, unpaid order with its own QR.
        let second = w.pos.call("ACTIVEPAY", request.clone()).await;
        assert_eq!(second.rsp_code, "SUCCESS", "{wallet}: {second:?}");
        let second_id = data(&second)["order_id"].as_str().unwrap().to_owned();
        assert_ne!(second_id, first_id, "{wallet}");
        assert_ne!(data(&second)["code_url"], first_qr.as_str(), "{wallet}");
        assert_eq!(
            data(&w.status(&second_id).await)["order_status"],
            "notpay",
            "{wallet}: the second sale is not paid by the first"
        );

        // A wallet error while creating one QR does not spoil the next identical sale.
        w.put_faults(wallet, json!({"fail_next": 1})).await;
        let failed = w.pos.call("ACTIVEPAY", request.clone()).await;
        assert_ne!(failed.rsp_code, "SUCCESS", "{wallet}: {failed:?}");
        let after = w.pos.call("ACTIVEPAY", request.clone()).await;
        assert_eq!(after.rsp_code, "SUCCESS", "{wallet}: {after:?}");

        // Identical requests at once: as many orders and QRs as requests.
        let calls = (0..6).map(|_| w.pos.call("ACTIVEPAY", request.clone()));
        let answers = futures_util::future::join_all(calls).await;
        let mut ids: Vec<String> = answers
            .iter()
            .map(|r| {
                assert_eq!(r.rsp_code, "SUCCESS", "{wallet}: {r:?}");
                data(r)["order_id"].as_str().unwrap().to_owned()
            })
            .collect();
        let mut qrs: Vec<String> = answers
            .iter()
            .map(|r| data(r)["code_url"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        qrs.sort();
        qrs.dedup();
        assert_eq!((ids.len(), qrs.len()), (6, 6), "{wallet}");
    }
}

/// The other side of the same rule: a PASSIVEPAY resent without an `order_id` (same payment
/// code) finds its order, even when the copies arrive at once, and charges once.
async fn identical_code_payments_sent_at_once_charge_once(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    for (wallet, biz) in WALLETS {
        let before = w.balance(&customer).await;
        let code = w.code(&customer, wallet, json!({"kind": "instant"})).await;
        let request = json!({"amount": "100", "auth_code": code, "biz_type": biz});
        let calls = (0..5).map(|_| w.pos.call("PASSIVEPAY", request.clone()));
        let answers = futures_util::future::join_all(calls).await;
        let mut ids: Vec<String> = answers
            .iter()
            .map(|r| {
                assert!(
                    matches!(r.rsp_code.as_str(), "SUCCESS" | "PROCESSING"),
                    "{wallet}: {r:?}"
                );
                data(r)["order_id"].as_str().unwrap().to_owned()
            })
            .collect();
        ids.dedup();
        assert_eq!(ids.len(), 1, "{wallet}: one order for the copies: {ids:?}");
        w.advance(3).await;
        assert_eq!(data(&w.status(&ids[0]).await)["order_status"], "success");
        assert_eq!(
            w.balance(&customer).await,
            before - 520,
            "{wallet}: charged once"
        );
    }
}

/// Issue 14 §4: a code payment whose wallet answer is lost is answered as soon as the order is
/// settled another way (the wallet's notification, or a query by the closing loop on another
/// node), not when its 12 s budget runs out. Wallet calls may take 10 s here, as in
/// production, so only the other path can end the wait early.
async fn a_code_payment_is_answered_once_settled_by_any_path(db: TestDb) {
    let w = World::start_with(db, std::time::Duration::from_secs(12), 10_000, true).await;
    let customer = w.customer(100_000).await;
    let quick = std::time::Duration::from_secs(6);
    // UnionPay notifies code payments (the consume's backUrl): the notification settles it.
    w.put_faults("unionpay", json!({"drop_next": 1})).await;
    let code = w
        .code(&customer, "unionpay", json!({"kind": "instant"}))
        .await;
    let started = std::time::Instant::now();
    let pay = w.pay("LOSTN", "100", &code, "UNIONPAY");
    let deliver = async {
        // Notifications go out on the sandbox's ticks.
        for _ in 0..30 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            w.sandbox.tick().await;
        }
    };
    let (r, ()) = tokio::join!(pay, deliver);
    let waited = started.elapsed();
    assert_eq!(r.rsp_code, "SUCCESS", "unionpay: {r:?}");
    assert!(waited < quick, "unionpay: answered after {waited:?}");
    // WeChat Pay and Alipay are not asked to notify a code payment: another node's closing
    // loop finds it paid by a query, and the waiting request answers.
    for (i, (wallet, biz)) in [("wechat", "WECHATPAY"), ("alipay", "ALIPAY")]
        .into_iter()
        .enumerate()
    {
        let code = w.code(&customer, wallet, json!({"kind": "instant"})).await;
        w.put_faults(wallet, json!({"drop_next": 1})).await;
        let order_id = format!("LOSTQ{i}");
        let started = std::time::Instant::now();
        let pay = w.pay(&order_id, "100", &code, biz);
        let other_node = async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            // Past the order's own check time (the budget + 3 s), as the other node sees it.
            w.clock.advance(Duration::seconds(16));
            w.engine.close_due_orders("other-node", 16).await.unwrap();
        };
        let (r, ()) = tokio::join!(pay, other_node);
        let waited = started.elapsed();
        assert_eq!(r.rsp_code, "SUCCESS", "{wallet}: {r:?}");
        assert!(waited < quick, "{wallet}: answered after {waited:?}");
    }
}

async fn bad_requests_are_refused_before_anything_happens(db: TestDb) {
    let w = World::start(db).await;
    let r = w
        .pos
        .call(
            "PASSIVEPAY",
            json!({"amount": "12.5", "auth_code": "134567890123456789", "biz_type": "WECHATPAY"}),
        )
        .await;
    assert_eq!(r.rsp_code, "PARAM_INVALID");
    let r = w
        .pos
        .call(
            "PASSIVEPAY",
            json!({"amount": "100", "biz_type": "WECHATPAY"}),
        )
        .await;
    assert_eq!(
        (r.rsp_code.as_str(), r.rsp_msg.as_str()),
        ("PARAM_INVALID", "missing field auth_code")
    );
    let r = w
        .pos
        .call(
            "PASSIVEPAY",
            json!({"amount": "100", "auth_code": "134567890123456789", "biz_type": "PAYPAL"}),
        )
        .await;
    assert_eq!(r.rsp_code, "PARAM_INVALID");
    let r = w.pos.call("PASSIVEPAY", json!({"order_id": "has space", "amount": "100", "auth_code": "134567890123456789", "biz_type": "WECHATPAY"})).await;
    assert_eq!(r.rsp_code, "PARAM_INVALID");
    let r = w.status("NOSUCHORDER").await;
    assert_eq!(
        (r.rsp_code.as_str(), r.rsp_msg.as_str()),
        ("PARAM_INVALID", "unknown order_id")
    );
    assert_eq!(w.trades().await, 0);
}

backend_tests!(
    instant_payments_with_each_wallet_are_paid_and_recorded,
    a_password_payment_is_processing_then_success,
    a_never_confirmed_payment_is_reversed_and_costs_nothing,
    a_system_error_that_was_paid_is_found_and_a_timeout_is_resolved,
    declines_get_clear_failure_messages,
    a_qr_order_paid_by_the_customer_is_notified_and_settled,
    an_unpaid_qr_order_is_closed_at_the_wallet_when_it_expires,
    forged_wallet_notifications_change_nothing,
    a_unionpay_notification_signed_by_a_merchant_certificate_pays_nothing,
    a_paid_without_its_amount_settles_nothing,
    merchants_get_their_notification_even_after_being_down,
    a_payment_after_the_qr_was_closed_is_recorded_and_notified,
    out_of_order_wallet_notifications_change_nothing,
    a_wallet_that_hangs_gets_processing_within_the_budget,
    a_code_sent_with_another_wallets_biz_type_never_reaches_a_wallet,
    a_repeated_order_id_charges_once,
    identical_qr_sales_without_an_order_id_are_separate_sales,
    identical_code_payments_sent_at_once_charge_once,
    a_code_payment_is_answered_once_settled_by_any_path,
    bad_requests_are_refused_before_anything_happens,
);
