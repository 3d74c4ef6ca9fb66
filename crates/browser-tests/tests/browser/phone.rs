//! The sandbox's phone in a headless Chromium with a phone's viewport: what a customer sees
//! and taps, checked against the sandbox's state. Screenshots of every step go to
//! `target/screenshots/<test>/`.

use qrgate_browser_tests::{Browser, BrowserOptions};
use qrgate_sandbox::model::{TradeStatus, Wallet};
use qrgate_sandbox::state::{PayCodeInput, PayCodeOutcome};
use qrgate_sandbox::{wallet_modules, RunningSandbox, Sandbox, SandboxConfig};
use serde_json::{json, Value};

struct World {
    running: RunningSandbox,
    http: reqwest::Client,
    customer: String,
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    fn sandbox(&self) -> &Sandbox {
        &self.running.sandbox
    }

    fn balance(&self) -> i64 {
        self.sandbox()
            .with(|s, _, _| s.customers[&self.customer].balance_fen)
    }

    /// A QR order made through the control API, as a merchant's till would have it: its
    /// `code_url`.
    async fn qr_order(&self, wallet: &str, currency: &str, total: i64, subject: &str) -> String {
        let r = self
            .http
            .post(self.url("/control/qr/orders"))
            .json(&json!({
                "wallet": wallet,
                "currency": currency,
                "total": total,
                "subject": subject,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        body["code_url"].as_str().unwrap().to_owned()
    }

    fn trade_status(&self, code_url: &str) -> TradeStatus {
        let token = code_url.rsplit('/').next().unwrap().to_owned();
        self.sandbox()
            .with(|s, _, now| s.trade_by_token(&token, now).unwrap().status)
    }
}

/// A sandbox with one customer, Li Lei, holding ¥1,000.00, made through the control API.
async fn world() -> World {
    let sandbox = Sandbox::new(
        SandboxConfig {
            seed: 5,
            ..Default::default()
        },
        wallet_modules(),
    )
    .unwrap();
    let running = sandbox.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/control/customers", running.url()))
        .json(&json!({"name": "Li Lei", "balance_fen": 100_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let customer = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    World {
        running,
        http,
        customer,
    }
}

/// The browser, or `None` when the test is skipped (the harness said why).
async fn phone(test: &str) -> Option<Browser> {
    Browser::start(BrowserOptions::phone(test))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_customer_opens_the_phone_and_switches_to_chinese() {
    let Some(mut b) = phone("a_customer_opens_the_phone_and_switches_to_chinese").await else {
        return;
    };
    let w = world().await;
    b.goto(&w.url("/phone")).await.unwrap();
    assert_eq!(b.text("h1").await.unwrap(), "Sandbox customers");
    b.screenshot("customers").await.unwrap();

    b.click(&format!("a[href='/phone/{}?wallet=wechat']", w.customer))
        .await
        .unwrap();
    assert_eq!(b.text("#balance").await.unwrap(), "¥1,000.00");
    assert_eq!(b.text("h1").await.unwrap(), "Li Lei");
    assert_eq!(b.text("header .app").await.unwrap(), "WeChat Pay");
    b.screenshot("home-english").await.unwrap();

    b.click("header a.lang").await.unwrap();
    b.wait_for_text("#balance-label", "余额").await.unwrap();
    assert_eq!(b.text("#scan").await.unwrap(), "扫一扫");
    assert_eq!(b.text("#pay-by-code").await.unwrap(), "付款码");
    assert_eq!(b.text("header .app").await.unwrap(), "微信支付");
    assert!(b.text("#movements").await.unwrap().contains("充值"));
    b.screenshot("home-chinese").await.unwrap();

    // The choice is kept: the phone opened again, without `?lang=`, is still Chinese.
    b.goto(&w.url(&format!("/phone/{}?wallet=unionpay", w.customer)))
        .await
        .unwrap();
    b.wait_for_text("#balance-label", "余额").await.unwrap();
    assert_eq!(b.text("header .app").await.unwrap(), "云闪付");
    b.screenshot("unionpay-chinese").await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn pay_by_code_shows_digits_that_the_sandbox_knows_and_a_till_can_charge() {
    let Some(mut b) =
        phone("pay_by_code_shows_digits_that_the_sandbox_knows_and_a_till_can_charge").await
    else {
        return;
    };
    let w = world().await;
    b.goto(&w.url(&format!("/phone/{}?wallet=alipay", w.customer)))
        .await
        .unwrap();
    b.click("#pay-by-code").await.unwrap();
    let digits = b.text("#code-digits").await.unwrap().replace(' ', "");
    b.find("svg.barcode").await.unwrap();
    b.find("svg.qr").await.unwrap();
    assert!(b.text("#countdown").await.unwrap().contains("New code in"));
    b.screenshot("pay-by-code").await.unwrap();

    let code = w
        .sandbox()
        .with(|s, _, _| s.codes.get(&digits).cloned())
        .unwrap_or_else(|| panic!("the sandbox does not know the code {digits}"));
    assert_eq!(code.customer_id, w.customer);
    assert_eq!(code.wallet, Wallet::Alipay);
    assert!(!code.used);
    assert_eq!(digits.len(), 18);

    // A till charges the code the customer shows; the page notices and goes back to the
    // balance, where the payment is listed.
    let merchant = w.sandbox().accounts(Wallet::Alipay)["app_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let charged = w.sandbox().with(|s, rng, now| {
        s.pay_code(
            rng,
            PayCodeInput {
                wallet: Wallet::Alipay,
                merchant,
                out_trade_no: "TILL1".to_owned(),
                currency: "CNY".to_owned(),
                total: 1234,
                auth_code: digits.clone(),
                subject: "Dumpling House".to_owned(),
                notify_url: None,
                fingerprint: "till".to_owned(),
            },
            now,
        )
    });
    assert!(matches!(charged, PayCodeOutcome::Paid(_)), "{charged:?}");
    let movements = b
        .wait_for_text("#movements", "Dumpling House")
        .await
        .unwrap();
    assert!(movements.contains("-¥12.34"), "{movements}");
    assert_eq!(b.text("#balance").await.unwrap(), "¥987.66");
    b.screenshot("after-the-till-charged").await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn a_scanned_qr_order_is_paid_with_the_password_pad() {
    let Some(mut b) = phone("a_scanned_qr_order_is_paid_with_the_password_pad").await else {
        return;
    };
    let w = world().await;
    let code_url = w.qr_order("wechat", "CAD", 1000, "Maple Café").await;
    b.goto(&w.url(&format!("/phone/{}?wallet=wechat", w.customer)))
        .await
        .unwrap();
    b.click("#scan").await.unwrap();
    b.fill("#code_url", &code_url).await.unwrap();
    b.screenshot("scan").await.unwrap();
    b.click("#open").await.unwrap();

    assert_eq!(b.text("#merchant").await.unwrap(), "Maple Café");
    assert_eq!(b.text("#amount-cny").await.unwrap(), "¥52.00");
    assert!(b
        .text("#amount-priced")
        .await
        .unwrap()
        .starts_with("CA$10.00"));
    b.screenshot("confirm").await.unwrap();

    for digit in ["1", "2", "3", "4", "5", "6"] {
        b.click(&format!("button[data-digit='{digit}']"))
            .await
            .unwrap();
    }
    // The sixth digit sends the form.
    b.wait_for_text(".notice", "Paid").await.unwrap();
    assert_eq!(b.text("#payer-balance").await.unwrap(), "¥948.00");
    b.screenshot("paid").await.unwrap();
    assert_eq!(w.balance(), 100_000 - 5200);
    assert_eq!(w.trade_status(&code_url), TradeStatus::Success);

    b.click("#done").await.unwrap();
    let movements = b.wait_for_text("#movements", "Maple Café").await.unwrap();
    assert!(movements.contains("-¥52.00"), "{movements}");
    b.screenshot("home-after-paying").await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_shows_the_error_and_pays_nothing() {
    let Some(mut b) = phone("a_wrong_password_shows_the_error_and_pays_nothing").await else {
        return;
    };
    let w = world().await;
    let code_url = w.qr_order("alipay", "CNY", 8800, "Tea House").await;
    // The phone was opened once in this browser: a code_url opened next (as a camera would)
    // is paid as this customer.
    b.goto(&w.url(&format!("/phone/{}", w.customer)))
        .await
        .unwrap();
    b.find("#balance").await.unwrap();
    b.goto(&code_url).await.unwrap();
    assert_eq!(b.text("#amount-cny").await.unwrap(), "¥88.00");
    assert!(b.text("main").await.unwrap().contains("Paying as Li Lei"));
    b.screenshot("confirm").await.unwrap();

    for digit in ["6", "5", "4", "3", "2", "1"] {
        b.click(&format!("button[data-digit='{digit}']"))
            .await
            .unwrap();
    }
    let notice = b.wait_for_text(".notice", "Wrong password").await.unwrap();
    assert!(notice.contains("Nothing was paid"), "{notice}");
    b.screenshot("wrong-password").await.unwrap();
    assert_eq!(w.balance(), 100_000);
    assert_eq!(w.trade_status(&code_url), TradeStatus::NotPay);

    // With the keyboard: the field takes typed digits and Enter sends it.
    b.fill("#password", "123456\u{E007}").await.unwrap();
    b.wait_for_text(".notice", "Paid").await.unwrap();
    b.screenshot("paid-with-the-keyboard").await.unwrap();
    assert_eq!(w.balance(), 100_000 - 8800);
    b.close().await.unwrap();
}
