//! The gateway's web till and the sandbox's phone side by side, each scene played with two
//! headless browsers: a till's screen (1280×800) and a customer's phone. The gateway (with
//! its closing loop) and the wallet sandbox run in this process on the system clock.
//! Screenshots of every step, from both sides, go to `target/screenshots/<test>/{till,phone}/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use qrgate_browser_tests::{Browser, BrowserOptions};
use qrgate_connectors::{TimeoutSettings, WalletSettings};
use qrgate_domain::{Currency, Wallet};
use qrgate_engine::{ClosingPolicy, Engine, MasterKey, MerchantRequest, SystemClock, Wallets};
use qrgate_http::{AppState, HttpConfig};
use qrgate_sandbox::{wallet_modules, RunningSandbox, Sandbox, SandboxConfig};
use qrgate_testkit::TestDb;
use serde_json::{json, Value};

const PIN: &str = "246810";

struct World {
    running: RunningSandbox,
    _secapi: qrgate_sandbox::wechat::SecapiServer,
    gateway: String,
    merchant_id: String,
    http: reqwest::Client,
    stop: tokio::sync::watch::Sender<bool>,
    loops: Option<tokio::task::JoinHandle<()>>,
    engine: Engine,
    addr: SocketAddr,
    /// Stops the gateway's HTTP server (the network drop), and the server's task.
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    _db: TestDb,
}

/// Serves the gateway on `listener` until told to stop.
fn serve_gateway(
    listener: tokio::net::TcpListener,
    engine: &Engine,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let state = AppState::new(engine.clone(), HttpConfig::default());
        async move {
            let _ = qrgate_http::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await;
        }
    });
    (stop, task)
}

impl World {
    async fn start() -> World {
        let db = TestDb::sqlite().await;
        let sandbox = Sandbox::new(
            SandboxConfig {
                seed: 11,
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
        let policy = ClosingPolicy {
            first_check: Duration::seconds(1),
            interval: Duration::seconds(1),
            confirm_window: Duration::seconds(30),
            reverse_retry: Duration::seconds(1),
        };
        let mut wallets = Wallets::new(settings.build().unwrap());
        for w in Wallet::ALL {
            wallets = wallets.with_policy(w, policy);
        }
        wallets.notify_base_url = format!("http://{addr}");
        let engine = Engine::new(
            db.store.clone(),
            MasterKey::generate(),
            Arc::new(SystemClock),
        )
        .await
        .unwrap()
        .with_wallets(wallets);
        let merchant = engine
            .create_merchant(&MerchantRequest {
                name: "Maple Tea".into(),
                currency: Currency::Cad,
                time_zone: "America/Toronto".parse().unwrap(),
                id_prefix: "ON".into(),
            })
            .await
            .unwrap();
        engine
            .set_operator_pin(&merchant.merchant.id, &merchant.operator.id, PIN)
            .await
            .unwrap();
        let server = serve_gateway(listener, &engine);
        // The closing loop, as `serve` runs it: settles what the wallets' notifications have
        // not (yet).
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let looping = engine.clone();
        let loops = tokio::spawn(async move {
            loop {
                let _ = looping.close_due_orders("browser-test", 16).await;
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = tokio::time::sleep(StdDuration::from_millis(300)) => {}
                }
            }
        });
        World {
            running,
            _secapi: secapi,
            gateway: format!("http://{addr}"),
            merchant_id: merchant.merchant.id.as_str().to_owned(),
            http,
            stop,
            loops: Some(loops),
            engine,
            addr,
            server: Some(server),
            _db: db,
        }
    }

    /// The till loses the gateway: its HTTP server stops and closes its connections (the
    /// engine and its closing loop go on, as they would on the other side of a cut cable).
    async fn drop_gateway(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(StdDuration::from_secs(10), task).await;
        }
    }

    /// The network is back: the gateway answers again on the same address.
    async fn restore_gateway(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.server = Some(serve_gateway(listener, &self.engine));
    }

    fn till_url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    fn phone_url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    async fn customer(&self, name: &str, balance_fen: i64) -> String {
        let r = self
            .http
            .post(self.phone_url("/control/customers"))
            .json(&json!({"name": name, "balance_fen": balance_fen}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn balance(&self, customer: &str) -> i64 {
        let c: Value = self
            .http
            .get(self.phone_url(&format!("/control/customers/{customer}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        c["balance_fen"].as_i64().unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(loops) = self.loops.take() {
            let _ = loops.await;
        }
    }
}

/// A till and a phone for `test`, or `None` when the test is skipped (the harness said why).
async fn till_and_phone(test: &str, accept_language: &str) -> Option<(Browser, Browser)> {
    let mut till = BrowserOptions::desktop(&format!("{test}/till"));
    let mut phone = BrowserOptions::phone(&format!("{test}/phone"));
    till.accept_language = accept_language.to_owned();
    phone.accept_language = accept_language.to_owned();
    Browser::start_pair(till, phone)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Signs in on the till's sign-in screen.
async fn sign_in(till: &mut Browser, w: &World, pin: &str) {
    till.goto(&w.till_url("/pos")).await.unwrap();
    till.fill("#merchant_id", &w.merchant_id).await.unwrap();
    till.fill("#operator_id", "0000000001").await.unwrap();
    till.fill("#pin", pin).await.unwrap();
    till.click("#sign-in").await.unwrap();
}

/// Types an amount with the till's keypad.
async fn key_in(till: &Browser, amount: &str) {
    for key in amount.chars() {
        till.click(&format!("button[data-key='{key}']"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activepay_the_phone_pays_the_qr_the_till_shows() {
    let test = "activepay_the_phone_pays_the_qr_the_till_shows";
    let Some((mut till, mut phone)) = till_and_phone(test, "en-US,en").await else {
        return;
    };
    let w = World::start().await;
    let customer = w.customer("Li Lei", 100_000).await;

    sign_in(&mut till, &w, PIN).await;
    till.find("#amount").await.unwrap();
    till.screenshot("sale").await.unwrap();
    key_in(&till, "12.50").await;
    assert_eq!(till.text("#total-value").await.unwrap(), "CA$12.50");
    till.screenshot("amount-entered").await.unwrap();
    till.click("#qr-wechatpay").await.unwrap();

    let qr = till.find("#qr").await.unwrap();
    let code_url = qr.attr("data-code-url").await.unwrap().unwrap();
    assert!(code_url.starts_with(&w.running.url()), "{code_url}");
    assert_eq!(
        till.text("#result").await.unwrap(),
        "Scan with WeChat Pay to pay"
    );
    assert_eq!(till.text("#amount").await.unwrap(), "CA$12.50");
    assert!(
        till.text("#countdown").await.unwrap().starts_with("14:")
            || till.text("#countdown").await.unwrap().starts_with("15:")
    );
    till.screenshot("qr-shown").await.unwrap();

    // The customer scans it: the phone opens the code_url as this customer.
    phone
        .goto(&w.phone_url(&format!(
            "/phone/{customer}/scan?code_url={}",
            url_encode(&code_url)
        )))
        .await
        .unwrap();
    assert!(phone
        .text("#amount-priced")
        .await
        .unwrap()
        .starts_with("CA$12.50"));
    phone.screenshot("confirm").await.unwrap();
    for digit in ["1", "2", "3", "4", "5", "6"] {
        phone
            .click(&format!("button[data-digit='{digit}']"))
            .await
            .unwrap();
    }
    phone.wait_for_text(".notice", "Paid").await.unwrap();
    phone.screenshot("paid").await.unwrap();

    // The till switches to "Paid" by itself.
    till.wait_for_text("#result", "Paid").await.unwrap();
    assert_eq!(till.text("#amount").await.unwrap(), "CA$12.50");
    till.screenshot("paid").await.unwrap();
    assert_eq!(w.balance(&customer).await, 100_000 - 6500);

    till.click("#receipt-80").await.unwrap();
    let receipt = till.text("#receipt").await.unwrap();
    assert!(
        receipt.contains("Maple Tea") && receipt.contains("CA$12.50"),
        "{receipt}"
    );
    till.screenshot("receipt-80mm").await.unwrap();
    till.goto(&format!(
        "{}?paper=58",
        till.url().await.unwrap().split('?').next().unwrap()
    ))
    .await
    .unwrap();
    till.find("#receipt[data-paper='58']").await.unwrap();
    // The receipt's inline style applies (the page's Content-Security-Policy allows it by its
    // hash): 48 mm printable, about 181 CSS pixels, not the window's width.
    let width = till
        .client()
        .execute(
            "return document.getElementById('receipt').getBoundingClientRect().width;",
            vec![],
        )
        .await
        .unwrap();
    let width = width.as_f64().unwrap();
    assert!((170.0..195.0).contains(&width), "receipt {width} px wide");
    till.screenshot("receipt-58mm").await.unwrap();

    till.click("#print").await.ok();
    till.goto(&w.till_url("/pos/today")).await.unwrap();
    assert!(till.text("#sales").await.unwrap().contains("Paid"));
    till.screenshot("today").await.unwrap();
    till.close().await.unwrap();
    phone.close().await.unwrap();
    w.stop().await;
}

/// The network drops while the QR is on the till's screen: the till says so and keeps
/// asking; the customer pays meanwhile; when the network is back the till shows the payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_drop_during_a_payment_is_shown_and_recovered() {
    let test = "a_network_drop_during_a_payment_is_shown_and_recovered";
    let Some((mut till, mut phone)) = till_and_phone(test, "en-US,en").await else {
        return;
    };
    let mut w = World::start().await;
    let customer = w.customer("Wang Fang", 100_000).await;
    sign_in(&mut till, &w, PIN).await;
    till.find("#amount").await.unwrap();
    key_in(&till, "8.00").await;
    till.click("#qr-alipay").await.unwrap();
    let qr = till.find("#qr").await.unwrap();
    let code_url = qr.attr("data-code-url").await.unwrap().unwrap();

    w.drop_gateway().await;
    till.wait_for_text("#connection", "Connection lost")
        .await
        .unwrap();
    till.screenshot("connection-lost").await.unwrap();

    // The customer pays while the till cannot reach the gateway.
    phone
        .goto(&w.phone_url(&format!(
            "/phone/{customer}/scan?code_url={}",
            url_encode(&code_url)
        )))
        .await
        .unwrap();
    phone.find("button[data-digit='1']").await.unwrap();
    for digit in ["1", "2", "3", "4", "5", "6"] {
        phone
            .click(&format!("button[data-digit='{digit}']"))
            .await
            .unwrap();
    }
    phone.wait_for_text(".notice", "Paid").await.unwrap();
    phone
        .screenshot("paid-while-the-till-is-offline")
        .await
        .unwrap();

    // The network is back: the till shows the sale as it now stands, without a reload by hand.
    w.restore_gateway().await;
    till.wait_for_text("#result", "Paid").await.unwrap();
    till.screenshot("paid-after-the-network-came-back")
        .await
        .unwrap();
    assert_eq!(w.balance(&customer).await, 100_000 - 4160);
    till.close().await.unwrap();
    phone.close().await.unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivepay_the_till_takes_the_code_the_phone_shows() {
    let test = "passivepay_the_till_takes_the_code_the_phone_shows";
    let Some((mut till, mut phone)) = till_and_phone(test, "en-US,en").await else {
        return;
    };
    let w = World::start().await;
    let customer = w.customer("Han Meimei", 100_000).await;

    phone
        .goto(&w.phone_url(&format!("/phone/{customer}?wallet=alipay")))
        .await
        .unwrap();
    phone.click("#pay-by-code").await.unwrap();
    let digits = phone.text("#code-digits").await.unwrap().replace(' ', "");
    phone.screenshot("pay-by-code").await.unwrap();

    sign_in(&mut till, &w, PIN).await;
    till.fill("#amount", "8.80").await.unwrap();
    till.fill("#tip", "1").await.unwrap();
    till.screenshot("amount-typed").await.unwrap();
    // A USB scanner types the digits into the focused code field and presses Enter.
    till.fill("#code", &format!("{digits}\u{E007}"))
        .await
        .unwrap();
    till.wait_for_text("#result", "Paid").await.unwrap();
    assert_eq!(till.text("#amount").await.unwrap(), "CA$9.80");
    assert_eq!(till.text("#wallet").await.unwrap(), "Alipay");
    till.screenshot("paid").await.unwrap();

    // The phone notices its code was charged and goes back to the balance.
    let movements = phone
        .wait_for_text("#movements", "Maple Tea")
        .await
        .unwrap();
    assert!(movements.contains("-¥50.96"), "{movements}");
    phone.screenshot("after-the-till-charged").await.unwrap();
    assert_eq!(w.balance(&customer).await, 100_000 - 5096);

    // A code typed wrongly is refused on the spot, nothing sent.
    till.click("#new-sale").await.unwrap();
    till.fill("#amount", "3").await.unwrap();
    till.fill("#code", "12345\u{E007}").await.unwrap();
    till.wait_for_text("#sale-error", "This is not a payment code")
        .await
        .unwrap();
    till.screenshot("code-typed-wrongly").await.unwrap();
    till.close().await.unwrap();
    phone.close().await.unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_is_shown_as_failed_on_the_till() {
    let test = "a_declined_payment_is_shown_as_failed_on_the_till";
    let Some((mut till, mut phone)) = till_and_phone(test, "en-US,en").await else {
        return;
    };
    let w = World::start().await;
    // ¥20.00 cannot pay CA$50.00.
    let customer = w.customer("Wang Wu", 2_000).await;
    phone
        .goto(&w.phone_url(&format!("/phone/{customer}/code?wallet=wechat")))
        .await
        .unwrap();
    let digits = phone.text("#code-digits").await.unwrap().replace(' ', "");
    phone.screenshot("pay-by-code").await.unwrap();

    sign_in(&mut till, &w, PIN).await;
    till.fill("#amount", "50").await.unwrap();
    till.fill("#code", &format!("{digits}\u{E007}"))
        .await
        .unwrap();
    till.wait_for_text("#result", "Payment failed")
        .await
        .unwrap();
    let reason = till.text("#reason").await.unwrap();
    assert!(reason.starts_with("Insufficient balance"), "{reason}");
    till.screenshot("failed").await.unwrap();
    phone
        .goto(&w.phone_url(&format!("/phone/{customer}?wallet=wechat")))
        .await
        .unwrap();
    assert_eq!(phone.text("#balance").await.unwrap(), "¥20.00");
    phone.screenshot("balance-unchanged").await.unwrap();
    assert_eq!(w.balance(&customer).await, 2_000);
    till.close().await.unwrap();
    phone.close().await.unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_till_and_the_phone_in_chinese() {
    let test = "the_till_and_the_phone_in_chinese";
    let Some((mut till, mut phone)) = till_and_phone(test, "zh-CN,zh;q=0.9").await else {
        return;
    };
    let w = World::start().await;
    let customer = w.customer("李雷", 100_000).await;

    till.goto(&w.till_url("/pos")).await.unwrap();
    assert_eq!(till.text("h1").await.unwrap(), "登录收银台");
    till.screenshot("sign-in").await.unwrap();
    sign_in(&mut till, &w, PIN).await;
    till.find("#amount").await.unwrap();
    key_in(&till, "20").await;
    assert_eq!(till.text("#qr-alipay").await.unwrap(), "支付宝");
    till.screenshot("sale").await.unwrap();
    till.click("#qr-alipay").await.unwrap();
    let code_url = till
        .find("#qr")
        .await
        .unwrap()
        .attr("data-code-url")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(till.text("#result").await.unwrap(), "请用支付宝扫码支付");
    till.screenshot("qr-shown").await.unwrap();

    phone
        .goto(&w.phone_url(&format!(
            "/phone/{customer}/scan?code_url={}",
            url_encode(&code_url)
        )))
        .await
        .unwrap();
    phone.screenshot("confirm").await.unwrap();
    for digit in ["1", "2", "3", "4", "5", "6"] {
        phone
            .click(&format!("button[data-digit='{digit}']"))
            .await
            .unwrap();
    }
    phone.wait_for_text(".notice", "支付成功").await.unwrap();
    phone.screenshot("paid").await.unwrap();
    till.wait_for_text("#result", "支付成功").await.unwrap();
    till.screenshot("paid").await.unwrap();
    till.click("#nav-today").await.unwrap();
    assert!(till.text("#sales").await.unwrap().contains("已支付"));
    till.screenshot("today").await.unwrap();
    // The switch goes back to English, and says so in English.
    till.click("header a.lang").await.unwrap();
    till.wait_for_text("h1", "Today's sales").await.unwrap();
    till.close().await.unwrap();
    phone.close().await.unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_refused_on_the_sign_in_screen() {
    let Some(mut till) = Browser::start(BrowserOptions::desktop(
        "a_wrong_pin_is_refused_on_the_sign_in_screen/till",
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}")) else {
        return;
    };
    let w = World::start().await;
    sign_in(&mut till, &w, "000000").await;
    let error = till.text("#sign-in-error").await.unwrap();
    assert!(
        error.contains("Merchant id, operator id or PIN is wrong."),
        "{error}"
    );
    till.screenshot("wrong-pin").await.unwrap();
    // The ids stay filled in; the right PIN signs in.
    till.fill("#pin", &format!("{PIN}\u{E007}")).await.unwrap();
    till.find("#amount").await.unwrap();
    till.screenshot("signed-in").await.unwrap();
    till.close().await.unwrap();
    w.stop().await;
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The customer's phone opens the QR (a scan) and types the payment password.
async fn phone_scans(phone: &Browser, w: &World, customer: &str, code_url: &str) {
    phone
        .goto(&w.phone_url(&format!(
            "/phone/{customer}/scan?code_url={}",
            url_encode(code_url)
        )))
        .await
        .unwrap();
}

async fn phone_types_password(phone: &Browser) {
    for digit in ["1", "2", "3", "4", "5", "6"] {
        phone
            .click(&format!("button[data-digit='{digit}']"))
            .await
            .unwrap();
    }
}

/// A QR cancelled on the till is closed at the wallet before the till says so: the customer
/// who scanned it can no longer pay, and nothing is charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_cancelled_on_the_till_is_closed_at_the_wallet() {
    let test = "a_qr_cancelled_on_the_till_is_closed_at_the_wallet";
    let Some((mut till, mut phone)) = till_and_phone(test, "en-US,en").await else {
        return;
    };
    let w = World::start().await;
    let customer = w.customer("Zhao Lei", 100_000).await;
    sign_in(&mut till, &w, PIN).await;
    till.find("#amount").await.unwrap();
    key_in(&till, "9.00").await;
    till.click("#qr-alipay").await.unwrap();
    let code_url = till
        .find("#qr")
        .await
        .unwrap()
        .attr("data-code-url")
        .await
        .unwrap()
        .unwrap();
    // The customer scans: the phone shows the amount and waits for the password.
    phone_scans(&phone, &w, &customer, &code_url).await;
    phone.find("button[data-digit='1']").await.unwrap();
    phone.screenshot("scanned").await.unwrap();
    till.screenshot("qr-shown").await.unwrap();

    till.click("#cancel").await.unwrap();
    till.wait_for_text("#result", "Cancelled, nothing was charged")
        .await
        .unwrap();
    let reason = till.text("#reason").await.unwrap();
    assert!(reason.contains("closed at the wallet"), "{reason}");
    till.screenshot("cancelled").await.unwrap();

    // The customer types the password: the wallet refuses, the order is closed.
    phone_types_password(&phone).await;
    phone
        .wait_for_text("body", "This order is closed")
        .await
        .unwrap();
    phone.screenshot("closed-at-the-wallet").await.unwrap();
    assert_eq!(w.balance(&customer).await, 100_000);
    till.close().await.unwrap();
    phone.close().await.unwrap();
    w.stop().await;
}

/// A QR left with "New sale" is cancelled; paid from the phone before WeChat Pay allows the
/// close (its first 5 minutes), it raises a notice on the till that is refunded from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_left_with_new_sale_and_paid_raises_a_notice_refunded_from_it() {
    let test = "a_qr_left_with_new_sale_and_paid_raises_a_notice_refunded_from_it";
    let Some((mut till, mut phone)) = till_and_phone(test, "en-US,en").await else {
        return;
    };
    let w = World::start().await;
    let customer = w.customer("Qian Li", 100_000).await;
    sign_in(&mut till, &w, PIN).await;
    till.find("#amount").await.unwrap();
    key_in(&till, "10").await;
    till.click("#qr-wechatpay").await.unwrap();
    let code_url = till
        .find("#qr")
        .await
        .unwrap()
        .attr("data-code-url")
        .await
        .unwrap()
        .unwrap();
    phone_scans(&phone, &w, &customer, &code_url).await;
    phone.find("button[data-digit='1']").await.unwrap();

    // The cashier starts a new sale: the QR is cancelled (WeChat closes it only after
    // 5 minutes), and the sale screen comes back empty.
    till.click("#new-sale").await.unwrap();
    till.find("#amount").await.unwrap();
    assert_eq!(till.text("#late-payments").await.unwrap(), "");
    till.screenshot("new-sale").await.unwrap();

    // The customer pays the QR all the same.
    phone_types_password(&phone).await;
    phone.wait_for_text(".notice", "Paid").await.unwrap();
    phone.screenshot("paid-after-all").await.unwrap();
    assert_eq!(w.balance(&customer).await, 100_000 - 5200);

    // The till says so on the screen it shows, without a reload.
    let notice = till
        .wait_for_text(
            "#late-payments",
            "A cancelled sale was paid after all: CA$10.00.",
        )
        .await
        .unwrap();
    assert!(notice.contains("WeChat Pay"), "{notice}");
    till.screenshot("late-payment-notice").await.unwrap();
    till.click("#late-payments .late-refund").await.unwrap();
    till.wait_for_text("#late-result", "CA$10.00")
        .await
        .unwrap();
    till.screenshot("refunded-from-the-notice").await.unwrap();
    assert_eq!(till.text("#late-payments").await.unwrap(), "");
    // The money is back on the customer's wallet.
    let mut balance = 0;
    for _ in 0..40 {
        balance = w.balance(&customer).await;
        if balance == 100_000 {
            break;
        }
        let _ = w.engine.settle_due_refunds("browser-test", 4).await;
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    assert_eq!(balance, 100_000);
    phone
        .goto(&w.phone_url(&format!("/phone/{customer}?wallet=wechat")))
        .await
        .unwrap();
    phone.screenshot("money-back").await.unwrap();
    till.close().await.unwrap();
    phone.close().await.unwrap();
    w.stop().await;
}

/// A code payment waiting for the customer's password is cancelled from the till: reversed at
/// the wallet, the customer's balance untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_code_payment_is_cancelled_and_reversed() {
    let test = "a_waiting_code_payment_is_cancelled_and_reversed";
    let Some(mut till) = Browser::start(BrowserOptions::desktop(&format!("{test}/till")))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let w = World::start().await;
    let customer = w.customer("Sun Mei", 100_000).await;
    let code: Value = w
        .http
        .post(w.phone_url("/control/codes"))
        .json(&json!({"customer_id": customer, "wallet": "wechat",
            "behaviour": {"kind": "never_confirm"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let digits = code["code"].as_str().unwrap();
    sign_in(&mut till, &w, PIN).await;
    till.fill("#amount", "6").await.unwrap();
    till.fill("#code", &format!("{digits}\u{E007}"))
        .await
        .unwrap();
    till.wait_for_text("#result", "Waiting for the customer to confirm")
        .await
        .unwrap();
    till.screenshot("waiting-for-the-password").await.unwrap();
    till.click("#cancel").await.unwrap();
    till.wait_for_text("#result", "Cancelled, nothing was charged")
        .await
        .unwrap();
    let reason = till.text("#reason").await.unwrap();
    assert!(reason.contains("reversed at the wallet"), "{reason}");
    till.screenshot("reversed").await.unwrap();
    assert_eq!(w.balance(&customer).await, 100_000);
    till.close().await.unwrap();
    w.stop().await;
}

/// Leaving a QR's page any other way than its buttons (here a link to Today; closing the tab
/// is the same `pagehide`) cancels the QR: the page's beacon, then the wallet's close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_left_by_a_link_is_closed_at_the_wallet() {
    let test = "a_qr_left_by_a_link_is_closed_at_the_wallet";
    let Some((mut till, phone)) = till_and_phone(test, "en-US,en").await else {
        return;
    };
    let w = World::start().await;
    let customer = w.customer("Zhou Yu", 100_000).await;
    sign_in(&mut till, &w, PIN).await;
    till.find("#amount").await.unwrap();
    key_in(&till, "7").await;
    till.click("#qr-alipay").await.unwrap();
    let qr = till.find("#qr").await.unwrap();
    let code_url = qr.attr("data-code-url").await.unwrap().unwrap();
    let order_id = till.text("#order-id").await.unwrap();
    phone_scans(&phone, &w, &customer, &code_url).await;
    phone.find("button[data-digit='1']").await.unwrap();
    till.click("#nav-today").await.unwrap();
    till.find("#sales").await.unwrap();
    let order_id = qrgate_domain::MerchantOrderId::parse(&order_id).unwrap();
    let merchant = w
        .engine
        .merchant(&qrgate_domain::MerchantId::parse(&w.merchant_id).unwrap())
        .await
        .unwrap();
    let mut status = None;
    for _ in 0..40 {
        let order = w
            .engine
            .find_order(&merchant, &order_id)
            .await
            .unwrap()
            .unwrap();
        status = Some(order.status);
        if order.status == qrgate_domain::OrderStatus::Closed {
            assert!(order.cancel_requested_at.is_some());
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    assert_eq!(status, Some(qrgate_domain::OrderStatus::Closed));
    till.goto(&w.till_url("/pos/today")).await.unwrap();
    till.screenshot("today-after-leaving").await.unwrap();
    assert_eq!(w.balance(&customer).await, 100_000);
    till.close().await.unwrap();
    phone.close().await.unwrap();
    w.stop().await;
}

/// A refund from the sale's screen: nothing pre-filled; refused with a cashier's PIN (every
/// refund needs a supervisor by default), done with a supervisor's; the receipt names both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_needs_a_supervisors_pin_and_the_receipt_names_both() {
    let test = "a_refund_needs_a_supervisors_pin_and_the_receipt_names_both";
    let Some(mut till) = Browser::start(BrowserOptions::desktop(&format!("{test}/till")))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let w = World::start().await;
    let merchant_id = qrgate_domain::MerchantId::parse(&w.merchant_id).unwrap();
    let supervisor = w
        .engine
        .add_operator(&merchant_id, "Wang Jing")
        .await
        .unwrap();
    w.engine
        .set_operator_pin(&merchant_id, &supervisor.id, "975310")
        .await
        .unwrap();
    w.engine
        .set_operator_role(
            &merchant_id,
            &supervisor.id,
            qrgate_domain::OperatorRole::Supervisor,
        )
        .await
        .unwrap();
    let customer = w.customer("Lin Tao", 100_000).await;
    let code: Value = w
        .http
        .post(w.phone_url("/control/codes"))
        .json(&json!({"customer_id": customer, "wallet": "alipay",
            "behaviour": {"kind": "instant"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sign_in(&mut till, &w, PIN).await;
    till.fill("#amount", "12").await.unwrap();
    till.fill(
        "#code",
        &format!("{}\u{E007}", code["code"].as_str().unwrap()),
    )
    .await
    .unwrap();
    till.wait_for_text("#result", "Paid").await.unwrap();
    let order_id = till.text("#order-id").await.unwrap();

    till.click("#nav-today").await.unwrap();
    till.click(&format!("#refund-{order_id}")).await.unwrap();
    assert_eq!(till.text("#refundable").await.unwrap(), "CA$12.00");
    let typed = till
        .find("#refund-amount")
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(typed.as_deref(), Some(""), "nothing pre-filled");
    till.screenshot("refund-screen").await.unwrap();

    // The cashier types their own id and PIN: refused, nothing refunded.
    till.fill("#refund-amount", "5").await.unwrap();
    till.fill("#supervisor", "0000000001").await.unwrap();
    till.fill("#supervisor-pin", PIN).await.unwrap();
    till.click("#confirm-refund").await.unwrap();
    till.wait_for_text("#refund-error", "cannot approve refunds")
        .await
        .unwrap();
    till.screenshot("refused-with-a-cashiers-pin")
        .await
        .unwrap();
    assert_eq!(w.balance(&customer).await, 100_000 - 6240);

    // The supervisor types theirs on the same screen: refunded.
    till.fill("#supervisor", "0000000002").await.unwrap();
    till.fill("#supervisor-pin", "975310").await.unwrap();
    till.click("#confirm-refund").await.unwrap();
    till.wait_for_text("#refund-result", "Refunded CA$5.00.")
        .await
        .unwrap();
    let people = till.text("#refund-people").await.unwrap();
    assert!(
        people.contains("0000000001") && people.contains("0000000002"),
        "{people}"
    );
    till.screenshot("refunded-with-a-supervisors-pin")
        .await
        .unwrap();
    till.goto(&w.till_url(&format!("/pos/orders/{order_id}/receipt?paper=80")))
        .await
        .unwrap();
    let receipt = till.text("#receipt").await.unwrap();
    assert!(
        receipt.contains("Asked by") && receipt.contains("Approved by"),
        "{receipt}"
    );
    till.screenshot("receipt").await.unwrap();
    till.close().await.unwrap();
    w.stop().await;
}

/// Today follows the day by itself: a sale started and paid elsewhere while the list is on
/// screen appears, then shows paid, without a reload by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn today_updates_by_itself_when_a_sale_is_paid() {
    let test = "today_updates_by_itself_when_a_sale_is_paid";
    let Some(mut till) = Browser::start(BrowserOptions::desktop(&format!("{test}/till")))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let w = World::start().await;
    let customer = w.customer("He Ping", 100_000).await;
    sign_in(&mut till, &w, PIN).await;
    till.find("#amount").await.unwrap();
    till.goto(&w.till_url("/pos/today")).await.unwrap();
    till.find("#no-sales").await.unwrap();
    till.screenshot("empty").await.unwrap();
    // Another till of the shop shows a QR; the customer pays it.
    let merchant = w
        .engine
        .merchant(&qrgate_domain::MerchantId::parse(&w.merchant_id).unwrap())
        .await
        .unwrap();
    let order = w
        .engine
        .create_qr_order(qrgate_engine::QrPayment {
            merchant,
            order_id: None,
            amount: qrgate_domain::Money::new(1500, Currency::Cad),
            tip: qrgate_domain::Money::new(0, Currency::Cad),
            wallet: Wallet::Alipay,
            operator_id: Some("0000000001".into()),
            terminal_no: Some("WEB-TILL".into()),
            call_back_url: None,
            client_ip: "127.0.0.1".into(),
        })
        .await
        .unwrap();
    till.wait_for_text("#sales", order.order_id.as_str())
        .await
        .unwrap();
    till.screenshot("started").await.unwrap();
    let paid = w
        .http
        .post(w.phone_url("/control/qr/pay"))
        .json(&json!({"code_url": order.code_url.unwrap(), "customer_id": customer}))
        .send()
        .await
        .unwrap();
    assert!(paid.status().is_success());
    till.wait_for_text("#sales", "Paid").await.unwrap();
    till.screenshot("paid").await.unwrap();
    till.close().await.unwrap();
    w.stop().await;
}

/// What a screen of the till gets wrong at this size: content wider than the window, touch
/// targets smaller than 44 px, or (`amount_first`) the amount field not visible at the top.
const LAYOUT_PROBLEMS: &str = r#"
const problems = [];
const width = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth > width + 1) {
  problems.push("page " + document.documentElement.scrollWidth + " px wide in " + width);
}
for (const el of document.querySelectorAll("a, button, input, summary")) {
  const r = el.getBoundingClientRect();
  const style = getComputedStyle(el);
  if (r.width === 0 || style.visibility === "hidden" || el.type === "hidden") continue;
  if (el.closest("[hidden]")) continue;
  if (r.right > width + 1) problems.push((el.id || el.textContent.trim()) + " cut off at " + r.right);
  if (r.height < 44) problems.push((el.id || el.textContent.trim() || el.name) + " " + Math.round(r.height) + " px high");
}
const amount = document.getElementById("amount");
if (arguments[0] && amount) {
  const r = amount.getBoundingClientRect();
  if (window.scrollY > 0 || r.top < 0 || r.bottom > window.innerHeight) problems.push("amount not visible first: top " + r.top);
}
return problems;
"#;

async fn layout_problems(till: &Browser, amount_first: bool) -> Vec<String> {
    let v = till
        .client()
        .execute(LAYOUT_PROBLEMS, vec![json!(amount_first)])
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// The till on a phone (390×844) and a small tablet (768×1024): nothing cut off, every touch
/// target at least 44 px high, and the amount first on the sale screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_till_fits_a_phone_and_a_tablet() {
    let test = "the_till_fits_a_phone_and_a_tablet";
    let sizes = [
        ("phone", qrgate_browser_tests::Viewport::PHONE),
        (
            "tablet",
            qrgate_browser_tests::Viewport {
                width: 768,
                height: 1024,
                pixel_ratio: 1,
                mobile: true,
            },
        ),
    ];
    let w = World::start().await;
    for (name, viewport) in sizes {
        let Some(mut till) = Browser::start(BrowserOptions {
            viewport,
            ..BrowserOptions::phone(&format!("{test}/{name}"))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}")) else {
            return;
        };
        sign_in(&mut till, &w, PIN).await;
        till.find("#amount").await.unwrap();
        let mut problems = Vec::new();
        for p in layout_problems(&till, true).await {
            problems.push(format!("sale: {p}"));
        }
        till.screenshot("sale").await.unwrap();
        key_in(&till, "4").await;
        till.click("#qr-unionpay").await.unwrap();
        till.find("#qr").await.unwrap();
        for p in layout_problems(&till, false).await {
            problems.push(format!("qr: {p}"));
        }
        till.screenshot("qr").await.unwrap();
        till.click("#cancel").await.unwrap();
        till.find("#result").await.unwrap();
        till.goto(&w.till_url("/pos/today")).await.unwrap();
        till.find("#sales").await.unwrap();
        for p in layout_problems(&till, false).await {
            problems.push(format!("today: {p}"));
        }
        till.screenshot("today").await.unwrap();
        assert!(problems.is_empty(), "{name}: {problems:#?}");
        till.close().await.unwrap();
    }
    w.stop().await;
}

/// The day's close from Today, on 80 mm and 58 mm paper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_days_close_prints_on_80_and_58_mm_paper() {
    let test = "the_days_close_prints_on_80_and_58_mm_paper";
    let Some(mut till) = Browser::start(BrowserOptions::desktop(&format!("{test}/till")))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let w = World::start().await;
    let customer = w.customer("Ma Li", 100_000).await;
    let code: Value = w
        .http
        .post(w.phone_url("/control/codes"))
        .json(&json!({"customer_id": customer, "wallet": "alipay",
            "behaviour": {"kind": "instant"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sign_in(&mut till, &w, PIN).await;
    till.fill("#amount", "12").await.unwrap();
    till.fill(
        "#code",
        &format!("{}\u{E007}", code["code"].as_str().unwrap()),
    )
    .await
    .unwrap();
    till.wait_for_text("#result", "Paid").await.unwrap();
    till.click("#nav-today").await.unwrap();
    till.click("#z-report-link").await.unwrap();
    assert_eq!(till.text("#z-net").await.unwrap(), "CA$12.00");
    till.screenshot("z-report-80mm").await.unwrap();
    let url = till.url().await.unwrap();
    till.goto(&format!("{}?paper=58", url.split('?').next().unwrap()))
        .await
        .unwrap();
    let width = till
        .client()
        .execute(
            "return document.getElementById('z-report').getBoundingClientRect().width;",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(
        (170.0..195.0).contains(&width),
        "58 mm report {width} px wide"
    );
    till.screenshot("z-report-58mm").await.unwrap();
    till.close().await.unwrap();
    w.stop().await;
}

/// On a 1366×768 till screen, with an error showing, the total stays in view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_stays_in_view_with_an_error_on_a_1366x768_screen() {
    let test = "the_total_stays_in_view_with_an_error_on_a_1366x768_screen";
    let Some(mut till) = Browser::start(BrowserOptions {
        viewport: qrgate_browser_tests::Viewport {
            width: 1366,
            height: 768,
            pixel_ratio: 1,
            mobile: false,
        },
        ..BrowserOptions::desktop(&format!("{test}/till"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}")) else {
        return;
    };
    let w = World::start().await;
    sign_in(&mut till, &w, PIN).await;
    till.find("#amount").await.unwrap();
    key_in(&till, "12.50").await;
    till.click("#charge").await.unwrap();
    till.wait_for_text("#sale-error", "Scan the customer's payment code")
        .await
        .unwrap();
    let bottom = till
        .client()
        .execute(
            "const r = document.getElementById('total-value').getBoundingClientRect();\
             return [r.top, r.bottom, window.innerHeight, window.scrollY];",
            vec![],
        )
        .await
        .unwrap();
    let v: Vec<f64> = bottom
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    till.screenshot("error-and-total").await.unwrap();
    assert!(v[0] >= 0.0 && v[1] <= v[2], "total at {v:?}");
    assert_eq!(till.text("#total-value").await.unwrap(), "CA$12.50");
    till.close().await.unwrap();
    w.stop().await;
}
