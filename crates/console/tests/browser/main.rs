//! The console in headless Chromium (the workspace's harness), once in English and once in
//! Chinese: each role signs in and goes through its pages — the dashboard, orders filtered
//! and searched, an order's timeline, a refund (through the wallet sandbox), a CSV export
//! downloaded and parsed, a notification sent again, a key rotated, a merchant onboarded, a
//! stuck order under *Attention* — with a screenshot of every step under
//! `target/screenshots/console_<lang>/`. The audit log then holds an entry for each change.
//! Skipped (saying so) without Chromium, unless `QRGATE_TEST_REQUIRE_BROWSER=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Duration;
use qrgate_browser_tests::{Browser, BrowserOptions, Viewport};
use qrgate_connectors::{TimeoutSettings, WalletSettings};
use qrgate_console::{ConsoleConfig, ConsoleState};
use qrgate_domain::{
    ConsoleRole, Currency, Merchant, MerchantOrderId, Money, Order, OrderStatus, PaymentMode,
    Wallet,
};
use qrgate_engine::{Actor, CodePayment, Engine, MasterKey, MerchantRequest, SystemClock, Wallets};
use qrgate_http::{AppState, HttpConfig};
use qrgate_sandbox::{wallet_modules, RunningSandbox, Sandbox, SandboxConfig};
use qrgate_testkit::TestDb;
use serde_json::{json, Value};

const PASSWORD: &str = "browser password 1";

struct World {
    _running: RunningSandbox,
    _secapi: qrgate_sandbox::wechat::SecapiServer,
    gateway: String,
    engine: Engine,
    merchant: Merchant,
    paid_order: MerchantOrderId,
    stuck_order: MerchantOrderId,
    _db: TestDb,
}

async fn user(engine: &Engine, email: &str, role: ConsoleRole, m: Option<&Merchant>) {
    let (_, link) = engine
        .create_console_user(&Actor::cli(), email, role, m.map(|m| &m.id))
        .await
        .unwrap();
    engine
        .set_password_with_link(&link.token, PASSWORD, "test")
        .await
        .unwrap();
}

/// An order inserted as the payment paths leave it (for states the sandbox would take
/// minutes to reach: a notification being retried, an order stuck for ten minutes).
fn order(m: &Merchant, id: &str, status: OrderStatus, age: Duration, engine: &Engine) -> Order {
    let now = engine.now() - age;
    let cad = |minor| Money::new(minor, Currency::Cad);
    Order {
        key: format!("Q{:0>24}", id.replace('-', "")),
        merchant_id: m.id.clone(),
        order_id: MerchantOrderId::parse(id).unwrap(),
        mode: PaymentMode::Active,
        wallet: Wallet::WechatPay,
        amount: cad(4200),
        tip: cad(0),
        cny_amount: None,
        rate: None,
        operator_id: None,
        terminal_no: Some("TILL-2".into()),
        sale_num: None,
        status,
        wallet_code: None,
        wallet_message: None,
        channel_ref: None,
        buyer: None,
        paid_at: None,
        wallet_created_at: now,
        next_check_at: Some(engine.now() + Duration::minutes(5)),
        request_digest: format!("d{id}"),
        code_url: None,
        expires_at: Some(now + Duration::minutes(15)),
        call_back_url: Some("http://127.0.0.1:9/notify".into()),
        refund_reserved: cad(0),
        refunded: cad(0),
        cancel_requested_at: None,
        created_at: now,
        updated_at: now,
    }
}

impl World {
    async fn start() -> World {
        let db = TestDb::sqlite().await;
        let sandbox = Sandbox::new(
            SandboxConfig {
                seed: 21,
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
        creds["unionpay"]["back_url"] = json!(format!("http://{addr}/notify/unionpay"));
        let settings = WalletSettings {
            wechatpay: Some(serde_json::from_value(creds["wechat"].take()).unwrap()),
            alipay: Some(serde_json::from_value(creds["alipay"].take()).unwrap()),
            unionpay: Some(serde_json::from_value(creds["unionpay"].take()).unwrap()),
            timeouts: TimeoutSettings {
                connect_timeout_ms: 2_000,
                request_timeout_ms: 5_000,
            },
        };
        let base_urls = vec![
            (Wallet::WechatPay, running.url()),
            (Wallet::Alipay, running.url()),
            (Wallet::UnionPay, running.url()),
        ];
        let mut wallets = Wallets::new(settings.build().unwrap());
        wallets.notify_base_url = format!("http://{addr}");
        let engine = Engine::new(
            db.store.clone(),
            MasterKey::generate(),
            Arc::new(SystemClock),
        )
        .await
        .unwrap()
        .with_wallets(wallets);
        let created = engine
            .create_merchant(&MerchantRequest {
                name: "Maple Tea".into(),
                currency: Currency::Cad,
                time_zone: "America/Toronto".parse().unwrap(),
                id_prefix: "ON".into(),
            })
            .await
            .unwrap();
        let merchant = created.merchant;
        engine
            .add_terminal(
                &merchant.id,
                &qrgate_domain::TerminalNo::parse("TILL-1").unwrap(),
                Some(&created.shop.id),
                Some("Front counter"),
            )
            .await
            .unwrap();
        // A sale paid through the sandbox's Alipay (a customer's payment code).
        let customer: Value = http
            .post(format!("{}/control/customers", running.url()))
            .json(&json!({"name": "Wang Fang", "balance_fen": 1_000_000}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let code: Value = http
            .post(format!("{}/control/codes", running.url()))
            .json(&json!({"customer_id": customer["id"], "wallet": "alipay"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let paid = engine
            .pay_with_code(CodePayment {
                merchant: merchant.clone(),
                order_id: Some(MerchantOrderId::parse("SALE1001").unwrap()),
                amount: Money::new(2580, Currency::Cad),
                tip: Money::new(0, Currency::Cad),
                auth_code: code["code"].as_str().unwrap().to_owned(),
                wallet: None,
                operator_id: Some(created.operator.id.to_string()),
                terminal_no: Some("TILL-1".into()),
                sale_num: None,
                client_ip: "127.0.0.1".into(),
            })
            .await
            .unwrap();
        assert_eq!(paid.status, OrderStatus::Paid);
        // A paid order whose notification is being retried, and an order stuck for ten
        // minutes in an unknown outcome.
        let store = engine.store();
        let mut notified = order(
            &merchant,
            "QR2002",
            OrderStatus::Pending,
            Duration::zero(),
            &engine,
        );
        store.insert_order(&notified).await.unwrap();
        notified.status = OrderStatus::Paid;
        notified.paid_at = Some(engine.now());
        notified.next_check_at = None;
        store
            .update_order(&notified, OrderStatus::Pending, None, engine.now())
            .await
            .unwrap();
        let stuck = order(
            &merchant,
            "STUCK3003",
            OrderStatus::Unknown,
            Duration::minutes(10),
            &engine,
        );
        store.insert_order(&stuck).await.unwrap();

        user(
            &engine,
            "admin@provider.example",
            ConsoleRole::ProviderAdmin,
            None,
        )
        .await;
        user(
            &engine,
            "support@provider.example",
            ConsoleRole::ProviderSupport,
            None,
        )
        .await;
        user(
            &engine,
            "owner@maple.example",
            ConsoleRole::MerchantOwner,
            Some(&merchant),
        )
        .await;
        user(
            &engine,
            "staff@maple.example",
            ConsoleRole::MerchantStaff,
            Some(&merchant),
        )
        .await;

        let state = AppState::new(engine.clone(), HttpConfig::default());
        let console = qrgate_console::router(ConsoleState::new(
            engine.clone(),
            ConsoleConfig {
                wallet_base_urls: base_urls,
                secure_cookie: false,
            },
        ));
        tokio::spawn(qrgate_http::serve_with(
            listener,
            state,
            console,
            std::future::pending(),
        ));
        World {
            _running: running,
            _secapi: secapi,
            gateway: format!("http://{addr}"),
            engine,
            merchant,
            paid_order: paid.order_id,
            stuck_order: stuck.order_id,
            _db: db,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }
}

async fn sign_in(b: &mut Browser, w: &World, email: &str, shot: &str) {
    b.goto(&w.url("/console/sign-out-first")).await.unwrap();
    b.client().delete_all_cookies().await.unwrap();
    b.goto(&w.url("/console/sign-in")).await.unwrap();
    b.fill("#email", email).await.unwrap();
    b.fill("#password", PASSWORD).await.unwrap();
    b.screenshot(shot).await.unwrap();
    b.click("#sign-in").await.unwrap();
    b.find("#who").await.unwrap();
}

/// The CSV at `path`, downloaded with the browser's session cookie, parsed into rows.
async fn download_csv(b: &Browser, w: &World, path: &str) -> Vec<Vec<String>> {
    let cookie = b.client().get_named_cookie("qrgate_console").await.unwrap();
    let r = reqwest::Client::new()
        .get(w.url(path))
        .header("cookie", format!("qrgate_console={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let text = r.text().await.unwrap();
    text.lines()
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}

async fn walkthrough(lang: &str) {
    let test = format!("console_{lang}");
    let accept = if lang == "zh" { "zh-CN,zh" } else { "en-US,en" };
    let options = BrowserOptions {
        accept_language: accept.to_owned(),
        ..BrowserOptions::desktop(&test)
    };
    let Some(mut b) = Browser::start(options).await.unwrap() else {
        return;
    };
    let w = World::start().await;
    let m = w.merchant.id.to_string();

    // The merchant's owner.
    sign_in(&mut b, &w, "owner@maple.example", "sign-in").await;
    b.find("#today-sales").await.unwrap();
    assert!(
        b.text("#today-sales").await.unwrap().contains("67.80"),
        "25.80 + 42.00"
    );
    b.screenshot("owner-dashboard").await.unwrap();

    b.goto(&w.url(&format!("/console/m/{m}/orders?wallet=alipay")))
        .await
        .unwrap();
    let rows = b.text("#orders tbody").await.unwrap();
    assert!(
        rows.contains("SALE1001") && !rows.contains("QR2002"),
        "{rows}"
    );
    b.screenshot("orders-filtered-alipay").await.unwrap();
    b.goto(&w.url(&format!("/console/m/{m}/orders")))
        .await
        .unwrap();
    b.fill("#f-q", "QR2002").await.unwrap();
    b.click("#filter").await.unwrap();
    b.wait_for_text("#orders tbody", "QR2002").await.unwrap();
    assert!(!b.text("#orders tbody").await.unwrap().contains("SALE1001"));
    b.screenshot("orders-searched").await.unwrap();

    b.goto(&w.url(&format!("/console/m/{m}/orders?q={}", w.paid_order)))
        .await
        .unwrap();
    b.click("#orders tbody a").await.unwrap();
    let timeline = b.text("#timeline").await.unwrap();
    assert!(
        timeline.contains("pay") && timeline.contains("paid"),
        "{timeline}"
    );
    b.find("#ledger").await.unwrap();
    b.screenshot("order-timeline").await.unwrap();

    b.fill("#refund-amount", "5.80").await.unwrap();
    b.fill("#refund-reason", "Wrong size").await.unwrap();
    b.click("#refund-next").await.unwrap();
    b.wait_for_text("#refund-summary", "5.80").await.unwrap();
    b.screenshot("refund-confirm").await.unwrap();
    b.click("#refund-confirm").await.unwrap();
    b.wait_for_text("#refund-result", "5.80").await.unwrap();
    b.screenshot("refund-done").await.unwrap();
    b.click("#back-to-order").await.unwrap();
    assert!(b.text("#order-refunded").await.unwrap().contains("5.80"));
    b.screenshot("order-after-refund").await.unwrap();

    b.goto(&w.url(&format!("/console/m/{m}/exports")))
        .await
        .unwrap();
    b.find("#export-orders").await.unwrap();
    b.screenshot("exports").await.unwrap();
    let today = w
        .engine
        .console_today(&w.merchant)
        .format("%Y-%m-%d")
        .to_string();
    let orders = download_csv(
        &b,
        &w,
        &format!("/console/m/{m}/orders.csv?from={today}&to={today}"),
    )
    .await;
    assert_eq!(orders[0][0], "created_local");
    assert_eq!(orders.len(), 4, "header + 3 orders: {orders:?}");
    let sale = orders.iter().find(|r| r[3] == "SALE1001").unwrap();
    assert_eq!(
        (
            sale[5].as_str(),
            sale[12].as_str(),
            sale[15].as_str(),
            sale[16].as_str()
        ),
        ("paid", "25.80", "5.80", "20.00")
    );
    let refunds = download_csv(
        &b,
        &w,
        &format!("/console/m/{m}/refunds.csv?from={today}&to={today}"),
    )
    .await;
    assert_eq!(refunds.len(), 2, "{refunds:?}");
    assert_eq!(
        (refunds[1][6].as_str(), refunds[1][9].as_str()),
        ("succeeded", "5.80")
    );

    b.goto(&w.url(&format!("/console/m/{m}/callbacks")))
        .await
        .unwrap();
    b.screenshot("callbacks").await.unwrap();
    b.click(".retry").await.unwrap();
    b.find("#no-callbacks, .retry").await.unwrap();
    b.screenshot("callback-sent-again").await.unwrap();

    b.goto(&w.url(&format!("/console/m/{m}/settings")))
        .await
        .unwrap();
    b.screenshot("settings").await.unwrap();
    b.fill("#grace", "24").await.unwrap();
    b.click("#rotate-key").await.unwrap();
    let key = b.text("#new-key").await.unwrap();
    assert!(key.trim().len() >= 14, "{key}");
    b.screenshot("key-rotated").await.unwrap();

    // Staff: sales and refunds, no keys.
    sign_in(&mut b, &w, "staff@maple.example", "staff-sign-in").await;
    b.goto(&w.url(&format!("/console/m/{m}/settings")))
        .await
        .unwrap();
    b.find("#operators").await.unwrap();
    assert!(b
        .client()
        .find(qrgate_browser_tests::Locator::Css("#rotate-key"))
        .await
        .is_err());
    b.screenshot("staff-settings-read-only").await.unwrap();

    // The provider's admin.
    sign_in(&mut b, &w, "admin@provider.example", "admin-sign-in").await;
    let stuck = b.text("#stuck-orders").await.unwrap();
    assert!(stuck.contains(w.stuck_order.as_str()), "{stuck}");
    b.screenshot("attention").await.unwrap();
    b.click("#ledger-check").await.unwrap();
    b.find("#ledger-result").await.unwrap();
    b.screenshot("ledger-check").await.unwrap();
    b.goto(&w.url("/console/provider/merchants")).await.unwrap();
    b.fill("#onboard-name", "Cedar Books").await.unwrap();
    b.click("#onboard").await.unwrap();
    b.find("#onboarded").await.unwrap();
    b.screenshot("merchant-onboarded").await.unwrap();
    b.goto(&w.url("/console/provider/wallets")).await.unwrap();
    b.find("#wallet-health").await.unwrap();
    b.screenshot("wallets").await.unwrap();
    b.goto(&w.url("/console/provider/rates")).await.unwrap();
    b.screenshot("rates").await.unwrap();
    b.goto(&w.url("/console/provider/audit")).await.unwrap();
    let audit = b.text("#audit").await.unwrap();
    b.screenshot("audit-log").await.unwrap();
    for action in ["refund", "callback.retry", "key.rotate", "merchant.create"] {
        assert!(audit.contains(action), "the audit log lacks {action}");
    }

    // Support sees, and changes nothing.
    sign_in(&mut b, &w, "support@provider.example", "support-sign-in").await;
    b.find("#stuck-orders").await.unwrap();
    b.screenshot("support-attention").await.unwrap();

    // The owner's dashboard on a phone.
    b.close().await.unwrap();
    let phone = BrowserOptions {
        accept_language: accept.to_owned(),
        viewport: Viewport::PHONE,
        ..BrowserOptions::phone(&format!("console_{lang}_phone"))
    };
    let mut p = Browser::start(phone).await.unwrap().unwrap();
    sign_in(&mut p, &w, "owner@maple.example", "phone-sign-in").await;
    p.screenshot("phone-dashboard").await.unwrap();
    p.goto(&w.url(&format!("/console/m/{m}/orders")))
        .await
        .unwrap();
    p.screenshot("phone-orders").await.unwrap();
    p.close().await.unwrap();

    // Every change the walk made is in the audit log, with who and from where.
    let entries = w
        .engine
        .store()
        .audit_entries(None, None, 100)
        .await
        .unwrap();
    for (action, actor) in [
        ("refund", "owner@maple.example"),
        ("callback.retry", "owner@maple.example"),
        ("key.rotate", "owner@maple.example"),
        ("merchant.create", "admin@provider.example"),
    ] {
        let e = entries
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("no audit entry {action}"));
        assert_eq!(e.actor, actor);
        assert_eq!(e.ip, "127.0.0.1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_walks_the_console_in_english() {
    walkthrough("en").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_walks_the_console_in_chinese() {
    walkthrough("zh").await;
}
