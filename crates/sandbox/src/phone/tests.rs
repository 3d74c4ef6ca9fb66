//! The phone and pay pages over real HTTP, in process: each page, each error, and what each
//! did or did not change in the state. The browser tests (`crates/browser-tests`) drive the
//! same pages in Chromium.

use chrono::Duration;
use reqwest::header::{ACCEPT_LANGUAGE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};

use crate::model::{Behaviour, MovementKind, TradeStatus, Wallet};
use crate::state::{PayCodeInput, PayCodeOutcome, RefundInput, RefundOutcome};
use crate::{wallet_modules, RunningSandbox, Sandbox, SandboxConfig};

struct Phone {
    running: RunningSandbox,
    sandbox: Sandbox,
    http: reqwest::Client,
}

async fn start() -> Phone {
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
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    Phone {
        running,
        sandbox,
        http,
    }
}

impl Phone {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    fn customer(&self, name: &str, balance_fen: i64) -> String {
        self.sandbox
            .with(|s, _, now| s.add_customer(name, balance_fen, now).id)
    }

    fn balance(&self, id: &str) -> i64 {
        self.sandbox.with(|s, _, _| s.customers[id].balance_fen)
    }

    fn movements(&self, id: &str) -> usize {
        self.sandbox.with(|s, _, _| s.customers[id].movements.len())
    }

    /// A QR order made through the control API, as a demo would: its `code_url` and token.
    async fn qr(
        &self,
        wallet: &str,
        currency: &str,
        total: i64,
        subject: &str,
    ) -> (String, String) {
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
        let code_url = body["code_url"].as_str().unwrap().to_owned();
        let token = code_url.rsplit('/').next().unwrap().to_owned();
        (code_url, token)
    }

    fn trade_status(&self, token: &str) -> TradeStatus {
        self.sandbox
            .with(|s, _, now| s.trade_by_token(token, now).unwrap().status)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn pay(&self, token: &str, customer: &str, password: &str) -> (u16, String) {
        let r = self
            .http
            .post(self.url(&format!("/pay/{token}")))
            .form(&[("customer_id", customer), ("password", password)])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

#[tokio::test]
async fn the_customer_list_shows_everyone_and_its_form_creates_a_customer() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let (status, page) = p.get("/phone").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Li Lei") && page.contains("¥1,000.00"),
        "{page}"
    );
    assert!(page.contains(&format!("/phone/{li}?wallet=alipay")));
    assert!(page.contains("name=\"viewport\""));
    assert!(page.contains("<label for=\"password\">"));

    let r = p
        .http
        .post(p.url("/phone"))
        .form(&[
            ("name", "Han Meimei"),
            ("balance", "52.5"),
            ("password", "654321"),
            ("wallet", "alipay"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let id = location
        .strip_prefix("/phone/")
        .and_then(|l| l.strip_suffix("?wallet=alipay"))
        .unwrap()
        .to_owned();
    let customer = p.sandbox.with(|s, _, _| s.customers[&id].clone());
    assert_eq!(customer.name, "Han Meimei");
    assert_eq!(customer.balance_fen, 5250);
    assert!(customer.password.matches("654321"));
}

#[tokio::test]
async fn a_customer_form_with_a_bad_password_balance_or_name_creates_nobody() {
    let p = start().await;
    for (name, balance, password) in [
        ("A", "10", "12345"),
        ("A", "10", "abcdef"),
        ("A", "-1", "123456"),
        ("A", "1.234", "123456"),
        ("A", "99999999999", "123456"),
        ("", "10", "123456"),
    ] {
        let r = p
            .http
            .post(p.url("/phone"))
            .form(&[("name", name), ("balance", balance), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name} {balance} {password}");
        assert!(r.text().await.unwrap().contains("role=\"alert\""));
    }
    let r = p
        .http
        .post(p.url("/phone"))
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(p.sandbox.with(|s, _, _| s.customers.len()), 0);
}

#[tokio::test]
async fn a_new_customer_without_a_password_gets_the_documented_default() {
    let p = start().await;
    let r = p
        .http
        .post(p.url("/phone"))
        .form(&[("name", "Wang"), ("balance", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = p
        .http
        .post(p.url("/control/customers"))
        .json(&json!({"name": "Zhao", "balance_fen": 100}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["password"], "123456");
    p.sandbox.with(|s, _, _| {
        assert!(s.customers.values().all(|c| c.password.matches("123456")));
    });
    let r = p
        .http
        .post(p.url("/control/customers"))
        .json(&json!({"name": "Qian", "balance_fen": 100, "password": "12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(p.sandbox.with(|s, _, _| s.customers.len()), 2);
}

#[tokio::test]
async fn the_phone_shows_the_balance_and_movements_with_shanghai_times_in_the_wallets_colours() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let (_, token) = p.qr("alipay", "CAD", 1000, "Maple Café").await;
    let paid = p
        .sandbox
        .with(|s, _, now| s.pay_qr_with_password(&token, &li, "123456", now));
    let crate::state::PayQrOutcome::Paid(trade) = paid else {
        panic!("{paid:?}")
    };
    let refunded = p.sandbox.with(|s, rng, now| {
        s.refund(
            rng,
            RefundInput {
                wallet: Wallet::Alipay,
                merchant: trade.merchant.clone(),
                out_trade_no: trade.out_trade_no.clone(),
                out_refund_no: "R1".to_owned(),
                amount: 250,
            },
            now,
        )
    });
    assert!(matches!(refunded, RefundOutcome::Accepted { .. }));

    let (status, page) = p.get(&format!("/phone/{li}?wallet=alipay")).await;
    assert_eq!(status, 200);
    // 100000 - 5200 + 1300 fen.
    assert!(page.contains("¥961.00"), "{page}");
    assert!(page.contains("Payment · Maple Café"));
    assert!(page.contains("-¥52.00"));
    assert!(page.contains("Refund · Maple Café"));
    assert!(page.contains("+¥13.00"));
    assert!(page.contains("Top-up"));
    assert!(page.contains("+08:00\""), "times are Asia/Shanghai: {page}");
    assert!(page.contains("#0f62d6"), "Alipay blue");
    assert!(page.contains("aria-current=\"page\""));
    let (_, wechat) = p.get(&format!("/phone/{li}")).await;
    assert!(wechat.contains("#07c160"), "WeChat green by default");
    let (_, unionpay) = p.get(&format!("/phone/{li}?wallet=unionpay")).await;
    assert!(unionpay.contains("#d7000f") && unionpay.contains("#00747a"));
    let kinds: Vec<MovementKind> = p
        .sandbox
        .with(|s, _, _| s.customers[&li].movements.iter().map(|m| m.kind).collect());
    assert_eq!(
        kinds,
        [
            MovementKind::TopUp,
            MovementKind::Payment,
            MovementKind::Refund
        ]
    );
}

#[tokio::test]
async fn an_unknown_customer_gets_not_found_and_no_code_is_minted() {
    let p = start().await;
    for path in [
        "/phone/c9999",
        "/phone/c9999/scan",
        "/phone/c9999/code",
        "/phone/c9999/code?wallet=alipay",
    ] {
        let (status, page) = p.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(page.contains("Unknown customer"), "{path}");
    }
    let (status, _) = p.get("/phone/c9999/code/status?code=1").await;
    assert_eq!(status, 404);
    assert_eq!(p.sandbox.with(|s, _, _| s.codes.len()), 0);
}

#[tokio::test]
async fn the_language_comes_from_the_query_then_the_cookie_then_the_browser() {
    let p = start().await;
    let li = p.customer("Li Lei", 100);
    let path = p.url(&format!("/phone/{li}"));

    let english = p
        .http
        .get(&path)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(english.contains("Balance") && english.contains("lang=\"en\""));
    assert!(english.contains(">中文</a>"), "the switch offers Chinese");

    let r = p
        .http
        .get(&path)
        .header(ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9,en;q=0.8")
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("qrgate_lang")));
    let chinese = r.text().await.unwrap();
    assert!(chinese.contains("余额") && chinese.contains("lang=\"zh-CN\""));
    assert!(chinese.contains("扫一扫") && chinese.contains("付款码"));
    assert!(chinese.contains(">English</a>"));

    let r = p
        .http
        .get(format!("{path}?wallet=alipay&lang=zh"))
        .header(ACCEPT_LANGUAGE, "en")
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("qrgate_lang=zh;"))
        .unwrap();
    assert!(cookie.contains("Path=/"));
    let page = r.text().await.unwrap();
    assert!(page.contains("支付宝") && page.contains("余额"));
    assert!(
        page.contains("?wallet=alipay&amp;lang=en"),
        "the switch keeps the wallet"
    );

    let page = p
        .http
        .get(&path)
        .header(ACCEPT_LANGUAGE, "en")
        .header(COOKIE, "qrgate_lang=zh")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("余额"), "the cookie beats the browser");
}

#[tokio::test]
async fn scanning_a_code_url_opens_the_pay_page_as_that_customer() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let (code_url, token) = p.qr("wechat", "CNY", 5200, "Tea House").await;

    let (status, page) = p.get(&format!("/phone/{li}/scan?wallet=wechat")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<label for=\"code_url\">"));

    for scanned in [code_url.clone(), token.clone(), format!(" {code_url}/ ")] {
        let r = p
            .http
            .get(p.url(&format!("/phone/{li}/scan")))
            .query(&[("code_url", scanned.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{scanned}");
        assert_eq!(
            r.headers()[LOCATION],
            format!("/pay/{token}?customer={li}").as_str()
        );
    }
    let r = p
        .http
        .get(p.url(&format!("/phone/{li}/scan")))
        .query(&[("code_url", "http://example.test/pay/nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("Unknown QR code"));
    assert_eq!(p.trade_status(&token), TradeStatus::NotPay);
}

#[tokio::test]
async fn the_pay_page_shows_the_merchant_both_amounts_and_the_password_pad() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let (_, token) = p.qr("alipay", "CAD", 1000, "Maple Café").await;
    let (status, page) = p.get(&format!("/pay/{token}?customer={li}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Maple Café"), "{page}");
    assert!(page.contains("¥52.00") && page.contains("CA$10.00"));
    assert!(page.contains("1 CAD = ¥5.2000"));
    assert!(page.contains("type=\"password\"") && page.contains("inputmode=\"numeric\""));
    assert!(page.contains("<label for=\"password\">"));
    assert!(page.contains("data-digit=\"0\""));
    assert!(page.contains("#0f62d6"), "in the QR's wallet colours");
    // Opening it is scanning it: an Alipay trade exists from now on.
    assert!(p
        .sandbox
        .with(|s, _, now| s.trade_by_token(&token, now).unwrap().scanned));

    let (_, zh) = p.get(&format!("/pay/{token}?customer={li}&lang=zh")).await;
    assert!(zh.contains("支付密码") && zh.contains("付款给"));

    // Without a customer, the page asks who pays; the phone's cookie answers it.
    let (_, picker) = p.get(&format!("/pay/{token}")).await;
    assert!(picker.contains("<select id=\"customer\" name=\"customer\">"));
    let page = p
        .http
        .get(p.url(&format!("/pay/{token}")))
        .header(COOKIE, format!("qrgate_phone_customer={li}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Paying as") && page.contains("Li Lei"));
}

#[tokio::test]
async fn the_right_password_pays_and_the_balance_drops() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let (_, token) = p.qr("wechat", "CAD", 1000, "Maple Café").await;
    let (status, page) = p.pay(&token, &li, "123456").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Paid") && page.contains("¥948.00"), "{page}");
    assert_eq!(p.balance(&li), 100_000 - 5200);
    assert_eq!(p.trade_status(&token), TradeStatus::Success);

    // Paying again is refused and takes nothing more.
    let (status, page) = p.pay(&token, &li, "123456").await;
    assert_eq!(status, 409);
    assert!(page.contains("Already paid"));
    assert_eq!(p.balance(&li), 100_000 - 5200);
    let (status, _) = p.get(&format!("/pay/{token}?customer={li}")).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_wrong_password_shows_an_error_and_pays_nothing() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let (_, token) = p.qr("unionpay", "CNY", 5200, "Noodle Bar").await;
    for wrong in ["654321", "", "12345", "1234567", "abcdef"] {
        let (status, page) = p.pay(&token, &li, wrong).await;
        assert_eq!(status, 403, "{wrong:?}");
        assert!(page.contains("Wrong password") && page.contains("Nothing was paid"));
        assert!(page.contains("role=\"alert\""));
        assert!(page.contains("id=\"password\""), "the pad is shown again");
    }
    assert_eq!(p.balance(&li), 100_000);
    assert_eq!(p.movements(&li), 1);
    assert_eq!(p.trade_status(&token), TradeStatus::NotPay);
    let (status, _) = p.pay(&token, &li, "123456").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_short_balance_declines_and_pays_nothing() {
    let p = start().await;
    let li = p.customer("Li Lei", 5199);
    let (_, token) = p.qr("wechat", "CNY", 5200, "Tea House").await;
    let (status, page) = p.pay(&token, &li, "123456").await;
    assert_eq!(status, 402);
    assert!(
        page.contains("balance too low") && page.contains("¥51.99"),
        "{page}"
    );
    assert_eq!(p.balance(&li), 5199);
    assert_eq!(p.trade_status(&token), TradeStatus::NotPay);
}

#[tokio::test]
async fn an_expired_qr_says_so_and_pays_nothing() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let (_, token) = p.qr("wechat", "CNY", 5200, "Tea House").await;
    p.sandbox.clock().advance(Duration::seconds(901));
    let (status, page) = p.get(&format!("/pay/{token}?customer={li}")).await;
    assert_eq!(status, 410);
    assert!(page.contains("This QR code has expired"), "{page}");
    assert!(!page.contains("id=\"password\""));
    let (status, page) = p.pay(&token, &li, "123456").await;
    assert_eq!(status, 410);
    assert!(page.contains("expired"));
    // The wrong password is not even asked about on a dead QR.
    let (status, _) = p.pay(&token, &li, "000000").await;
    assert_eq!(status, 410);
    assert_eq!(p.balance(&li), 100_000);
    assert_eq!(p.trade_status(&token), TradeStatus::Closed);
}

#[tokio::test]
async fn an_unknown_qr_or_customer_is_not_found_and_pays_nothing() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let (status, page) = p.get("/pay/nosuchtoken").await;
    assert_eq!(status, 404);
    assert!(page.contains("Unknown QR code"));
    let (status, _) = p.pay("nosuchtoken", &li, "123456").await;
    assert_eq!(status, 404);

    let (_, token) = p.qr("wechat", "CNY", 5200, "Tea House").await;
    let (status, page) = p.pay(&token, "c9999", "123456").await;
    assert_eq!(status, 404);
    assert!(page.contains("Unknown customer"));
    let r = p
        .http
        .post(p.url(&format!("/pay/{token}")))
        .body("not a form")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(p.balance(&li), 100_000);
    assert_eq!(p.trade_status(&token), TradeStatus::NotPay);
}

#[tokio::test]
async fn pay_by_code_shows_a_new_code_of_the_wallet_as_barcode_qr_and_digits() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let r = p
        .http
        .get(p.url(&format!("/phone/{li}/code?wallet=unionpay")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("<svg class=\"barcode\"") && page.contains("<svg class=\"qr\""));
    assert!(page.contains("http-equiv=\"refresh\" content=\"60\""));
    let digits = between(&page, "id=\"code-digits\">", "<").replace(' ', "");
    assert_eq!(digits.len(), 19, "{digits}");
    assert!(digits.starts_with("62"));
    let code = p.sandbox.with(|s, _, _| s.codes[&digits].clone());
    assert_eq!(code.customer_id, li);
    assert_eq!(code.wallet, Wallet::Unionpay);
    assert_eq!(code.behaviour, Behaviour::Instant);
    assert_eq!((code.expires_at - code.minted_at).num_seconds(), 60);

    // A reload is a new code; a chosen behaviour applies to it.
    let (_, again) = p
        .get(&format!(
            "/phone/{li}/code?wallet=wechat&behaviour=password"
        ))
        .await;
    let second = between(&again, "id=\"code-digits\">", "<").replace(' ', "");
    assert_ne!(second, digits);
    assert_eq!(second.len(), 18);
    let behaviour = p.sandbox.with(|s, _, _| s.codes[&second].behaviour);
    assert_eq!(behaviour, Behaviour::Password { after_secs: 10 });

    // The page learns when the cashier charged the code.
    let status = |code: String| {
        let p = &p;
        let li = li.clone();
        async move {
            let v: Value = p
                .http
                .get(p.url(&format!("/phone/{li}/code/status?code={code}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["state"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(status(digits.clone()).await, "unused");
    let merchant = p.sandbox.accounts(Wallet::Unionpay)["mer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let charged = p.sandbox.with(|s, rng, now| {
        s.pay_code(
            rng,
            PayCodeInput {
                wallet: Wallet::Unionpay,
                merchant,
                out_trade_no: "T1".to_owned(),
                currency: "CNY".to_owned(),
                total: 1000,
                auth_code: digits.clone(),
                subject: "Till".to_owned(),
                notify_url: None,
                fingerprint: "f".to_owned(),
            },
            now,
        )
    });
    assert!(matches!(charged, PayCodeOutcome::Paid(_)), "{charged:?}");
    assert_eq!(status(digits.clone()).await, "used");
    p.sandbox.clock().advance(Duration::seconds(61));
    assert_eq!(status(second).await, "expired");
    let (status, _) = p
        .get(&format!("/phone/c9999/code/status?code={digits}"))
        .await;
    assert_eq!(status, 404, "another customer's code is not shown");
}

#[tokio::test]
async fn codes_long_expired_are_forgotten_so_an_open_code_page_stays_bounded() {
    let p = start().await;
    let li = p.customer("Li Lei", 100);
    p.get(&format!("/phone/{li}/code")).await;
    p.sandbox
        .clock()
        .advance(Duration::days(1) + Duration::seconds(61));
    p.get(&format!("/phone/{li}/code")).await;
    assert_eq!(p.sandbox.with(|s, _, _| s.codes.len()), 1);
}

#[tokio::test]
async fn the_control_api_makes_qr_orders_and_checks_a_password_when_given() {
    let p = start().await;
    let li = p.customer("Li Lei", 100_000);
    let (code_url, token) = p.qr("wechat", "USD", 100, "Corner Shop").await;
    assert!(code_url.starts_with(&format!("{}/pay/", p.running.url())));
    let trade = p
        .sandbox
        .with(|s, _, now| s.trade_by_token(&token, now).unwrap());
    assert_eq!(trade.cny_fen, 710);
    assert_eq!(
        trade.merchant,
        p.sandbox.accounts(Wallet::Wechat)["mch_id"]
            .as_str()
            .unwrap()
    );

    for (body, status) in [
        (json!({"wallet": "wechat", "total": 0}), 400),
        (
            json!({"wallet": "wechat", "total": 1, "currency": "XXX"}),
            400,
        ),
        (json!({"wallet": "paypal", "total": 1}), 404),
    ] {
        let r = p
            .http
            .post(p.url("/control/qr/orders"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
    }

    let pay = |password: &'static str| {
        let p = &p;
        let body = json!({"code_url": code_url, "customer_id": li, "password": password});
        async move {
            p.http
                .post(p.url("/control/qr/pay"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(pay("111111").await, 403);
    assert_eq!(p.balance(&li), 100_000);
    assert_eq!(pay("123456").await, 200);
    assert_eq!(p.balance(&li), 100_000 - 710);
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {text}"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    &text[from..from + len]
}
