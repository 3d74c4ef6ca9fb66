//! Tests of the simulated Alipay gateway over real HTTP, in process: a sandbox on
//! 127.0.0.1:0, customers and codes made through the core, and a small test-side Alipay
//! client (its own string-to-sign, request signing and response verification, deliberately
//! not the module's) speaking to it. Plus unit tests of the wire helpers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::Duration;
use serde_json::{json, Value};

use super::{module, sign, wire};
use crate::model::{Behaviour, Wallet};
use crate::test_rsa::{TestKey, TestPublicKey};
use crate::{RunningSandbox, Sandbox, SandboxConfig};

// ---------------------------------------------------------------------------------------
// The test-side client

/// `k=v&…` over the sorted non-empty parameters except `sign` (and `extra_exclude`).
fn client_string_to_sign(params: &[(String, String)], extra_exclude: &[&str]) -> String {
    let mut kept: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k != "sign" && !extra_exclude.contains(&k.as_str()) && !v.is_empty())
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn client_sign(key: &TestKey, text: &str) -> String {
    BASE64.encode(key.sign(text.as_bytes()))
}

fn client_verify(key: &TestPublicKey, text: &str, signature: &str) -> bool {
    let Ok(bytes) = BASE64.decode(signature) else {
        return false;
    };
    key.verify(text.as_bytes(), &bytes)
}

/// One answer: the raw text, the member it came under, its value, and whether it carried
/// a signature that verifies over the raw `*_response` text.
#[derive(Debug)]
struct Reply {
    raw: String,
    key: String,
    body: Value,
    signed: bool,
    verified: bool,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    fn sub_code(&self) -> &str {
        self.body["sub_code"].as_str().unwrap_or_default()
    }

    fn field(&self, name: &str) -> &str {
        self.body[name].as_str().unwrap_or_default()
    }

    #[track_caller]
    fn assert_business(&self, sub_code: &str) {
        assert_eq!(self.code(), "40004", "{}", self.raw);
        assert_eq!(self.sub_code(), sub_code, "{}", self.raw);
        assert!(self.verified, "business errors are signed: {}", self.raw);
    }
}

struct Harness {
    running: RunningSandbox,
    sandbox: Sandbox,
    http: reqwest::Client,
    gateway_url: String,
    app_id: String,
    seller_id: String,
    app_key: TestKey,
    alipay_key: TestPublicKey,
}

async fn start() -> Harness {
    let sandbox = Sandbox::new(
        SandboxConfig {
            seed: 7,
            ..Default::default()
        },
        vec![module()],
    )
    .unwrap();
    let running = sandbox
        .clone()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let credentials = sandbox
        .module(Wallet::Alipay)
        .unwrap()
        .credentials(&sandbox);
    let text = |k: &str| credentials[k].as_str().unwrap().to_owned();
    Harness {
        gateway_url: text("gateway_url"),
        app_id: text("app_id"),
        seller_id: text("seller_id"),
        app_key: TestKey::from_pkcs8_pem(&text("app_private_key_pem")),
        alipay_key: TestPublicKey::from_spki_pem(&text("alipay_public_key_pem")),
        http: reqwest::Client::builder()
            .timeout(StdDuration::from_secs(30))
            .build()
            .unwrap(),
        sandbox,
        running,
    }
}

impl Harness {
    /// The signed common parameters plus `biz_content` for a call.
    fn params(&self, method: &str, biz: &Value, notify_url: Option<&str>) -> Vec<(String, String)> {
        let mut params: Vec<(String, String)> = [
            ("app_id", self.app_id.as_str()),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", "2024-05-01 12:00:00"),
            ("version", "1.0"),
            ("notify_url", notify_url.unwrap_or("")),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        params.push(("biz_content".to_owned(), biz.to_string()));
        let signature = client_sign(&self.app_key, &client_string_to_sign(&params, &[]));
        params.push(("sign".to_owned(), signature));
        params
    }

    async fn post_raw(&self, query: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, String) {
        let url = match query {
            Some(q) => format!("{}?{q}", self.gateway_url),
            None => self.gateway_url.clone(),
        };
        let response = self
            .http
            .post(url)
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Parses an answer the way a careful client does: the signature is checked over the
    /// raw text between `"<key>":` and `,"sign":`, never over re-serialised JSON.
    fn reply(&self, raw: String) -> Reply {
        let parsed: Value =
            serde_json::from_str(&raw).unwrap_or_else(|e| panic!("not JSON ({e}): {raw}"));
        let key = parsed
            .as_object()
            .unwrap()
            .keys()
            .find(|k| k.ends_with("_response"))
            .unwrap_or_else(|| panic!("no *_response member: {raw}"))
            .clone();
        let start = raw.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
        let signature = parsed["sign"].as_str().map(str::to_owned);
        let (signed, verified) = match (&signature, raw.rfind(",\"sign\":")) {
            (Some(signature), Some(end)) => (
                true,
                client_verify(&self.alipay_key, &raw[start..end], signature),
            ),
            _ => (false, false),
        };
        Reply {
            body: parsed[&key].clone(),
            key,
            raw,
            signed,
            verified,
        }
    }

    /// Posts `params` form-encoded, as given.
    async fn send(&self, params: Vec<(String, String)>) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        self.reply(self.post_raw(None, body).await.1)
    }

    async fn call_with(&self, method: &str, biz: Value, notify_url: Option<&str>) -> Reply {
        let params = self.params(method, &biz, notify_url);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let (status, raw) = self.post_raw(None, body).await;
        assert_eq!(status, 200, "{raw}");
        let reply = self.reply(raw);
        assert_eq!(
            reply.key,
            format!("{}_response", method.replace('.', "_")),
            "{}",
            reply.raw
        );
        reply
    }

    async fn call(&self, method: &str, biz: Value) -> Reply {
        self.call_with(method, biz, None).await
    }

    fn customer(&self, balance_fen: i64) -> String {
        self.sandbox
            .with(|s, _, now| s.add_customer("Test buyer", balance_fen, now).id)
    }

    fn code(&self, customer: &str, behaviour: Behaviour) -> String {
        self.sandbox.with(|s, rng, now| {
            s.mint_code(
                rng,
                Wallet::Alipay,
                customer,
                behaviour,
                Duration::seconds(60),
                now,
            )
            .unwrap()
            .code
        })
    }

    fn balance(&self, customer: &str) -> i64 {
        self.sandbox
            .with(|s, _, _| s.customers[customer].balance_fen)
    }

    fn advance(&self, seconds: i64) {
        self.sandbox.clock().advance(Duration::seconds(seconds));
    }

    async fn pay(&self, out_trade_no: &str, auth_code: &str, amount: &str) -> Reply {
        self.call(
            "alipay.trade.pay",
            json!({"out_trade_no": out_trade_no, "scene": "bar_code", "auth_code": auth_code,
                   "subject": "Coffee", "total_amount": amount}),
        )
        .await
    }

    async fn query(&self, out_trade_no: &str) -> Reply {
        self.call("alipay.trade.query", json!({"out_trade_no": out_trade_no}))
            .await
    }

    async fn refund(
        &self,
        out_trade_no: &str,
        amount: &str,
        out_request_no: Option<&str>,
    ) -> Reply {
        let mut biz = json!({"out_trade_no": out_trade_no, "refund_amount": amount});
        if let Some(no) = out_request_no {
            biz["out_request_no"] = json!(no);
        }
        self.call("alipay.trade.refund", biz).await
    }

    /// A paid trade of `amount` from a fresh customer with 1000.00 CNY; returns the customer.
    async fn paid(&self, out_trade_no: &str, amount: &str) -> String {
        let customer = self.customer(100_000);
        let code = self.code(&customer, Behaviour::Instant);
        let reply = self.pay(out_trade_no, &code, amount).await;
        assert_eq!(reply.code(), "10000", "{}", reply.raw);
        customer
    }
}

/// A local merchant endpoint for notifications: records each body and answers `success`
/// once told to accept, `fail` before.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    accept: Arc<AtomicBool>,
}

async fn receiver(accept: bool) -> Receiver {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let accept = Arc::new(AtomicBool::new(accept));
    let (seen, accepting) = (bodies.clone(), accept.clone());
    let app = Router::new().route(
        "/notify",
        post(move |body: String| {
            let (seen, accepting) = (seen.clone(), accepting.clone());
            async move {
                seen.lock().unwrap().push(body);
                if accepting.load(Ordering::SeqCst) {
                    "success"
                } else {
                    "fail"
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url,
        bodies,
        accept,
    }
}

impl Receiver {
    fn count(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    fn body(&self, n: usize) -> Vec<(String, String)> {
        let body = self.bodies.lock().unwrap()[n].clone();
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect()
    }

    /// Waits until `n` bodies arrived (or 10 s passed). The sandbox's own background tick
    /// delivers them; the test does not tick as well, since two concurrent ticks may send
    /// the same notification twice.
    async fn wait_for(&self, n: usize) {
        for _ in 0..100 {
            if self.count() >= n {
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        panic!("expected {n} notifications, got {}", self.count());
    }
}

/// Waits until the sandbox has recorded every notification as acknowledged.
async fn wait_all_delivered(sandbox: &Sandbox) {
    for _ in 0..100 {
        if sandbox.with(|s, _, _| s.notifications.iter().all(|n| n.delivered)) {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    panic!(
        "notifications still pending: {:?}",
        sandbox.with(|s, _, _| s.notifications.clone())
    );
}

fn field(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Signing

/// `wallets.md` §7 vector 6: the string-to-sign layout, with the empty `notify_url` dropped.
#[test]
fn vector_6_string_to_sign() {
    let biz = r#"{"out_trade_no":"20150320010101001","scene":"bar_code","auth_code":"28763443825664394","subject":"Iphone6 16G","total_amount":"88.88"}"#;
    let params = [
        ("app_id", "2014072300007148"),
        ("method", "alipay.trade.pay"),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", "2014-07-24 03:07:50"),
        ("version", "1.0"),
        ("notify_url", ""),
        ("biz_content", biz),
        ("sign", "ignored"),
    ];
    let expected = format!(
        "app_id=2014072300007148&biz_content={biz}&charset=utf-8&format=JSON&method=alipay.trade.pay\
         &sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0"
    );
    assert_eq!(
        sign::string_to_sign(params.iter().copied(), &["sign"]),
        expected
    );
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(client_string_to_sign(&owned, &[]), expected);

    // PKCS#1 v1.5 is deterministic: the module's signature equals the test client's and
    // verifies with the public key.
    let key = sign::private_key_from_pem(super::APP_PRIVATE_KEY_PEM).unwrap();
    let public = sign::public_key_from_pem(super::APP_PUBLIC_KEY_PEM).unwrap();
    let signature = sign::sign(&key, &expected).unwrap();
    assert_eq!(
        signature,
        client_sign(
            &TestKey::from_pkcs8_pem(super::APP_PRIVATE_KEY_PEM),
            &expected
        )
    );
    assert!(sign::verify(&public, &expected, &signature));
    assert!(!sign::verify(&public, &expected, &sign::forge(&signature)));
    assert!(!sign::verify(&public, &format!("{expected} "), &signature));
    assert!(!sign::verify(&public, &expected, "not base64!"));
}

#[test]
fn keys_are_read_from_pkcs8_pkcs1_and_spki_pem_and_nothing_else() {
    let pkcs1_private = include_str!("../rsa_sha256/fixtures/app_private_pkcs1.pem");
    let pkcs1_public = include_str!("../rsa_sha256/fixtures/app_public_pkcs1.pem");
    let text = "app_id=1&method=alipay.trade.query";
    let signature = sign::sign(&sign::private_key_from_pem(pkcs1_private).unwrap(), text).unwrap();
    assert_eq!(
        signature,
        client_sign(&TestKey::from_pkcs8_pem(super::APP_PRIVATE_KEY_PEM), text)
    );
    for public in [super::APP_PUBLIC_KEY_PEM, pkcs1_public] {
        let public = sign::public_key_from_pem(public).unwrap();
        assert!(sign::verify(&public, text, &signature));
    }
    // Swapped, relabelled, or not PEM at all.
    let relabelled = super::APP_PRIVATE_KEY_PEM.replace("PRIVATE KEY", "RSA PRIVATE KEY");
    for bad in [
        super::APP_PUBLIC_KEY_PEM,
        relabelled.as_str(),
        "not a key",
        "",
    ] {
        assert!(
            matches!(
                sign::private_key_from_pem(bad),
                Err(sign::AlipayKeyError::BadPrivateKey(_))
            ),
            "{bad}"
        );
    }
    for bad in [super::APP_PRIVATE_KEY_PEM, pkcs1_private, "not a key"] {
        assert!(
            matches!(
                sign::public_key_from_pem(bad),
                Err(sign::AlipayKeyError::BadPublicKey(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn fixture_key_pairs_match() {
    for (private, public) in [
        (super::APP_PRIVATE_KEY_PEM, super::APP_PUBLIC_KEY_PEM),
        (super::ALIPAY_PRIVATE_KEY_PEM, super::ALIPAY_PUBLIC_KEY_PEM),
    ] {
        assert_eq!(
            TestKey::from_pkcs8_pem(private).public_pkcs1(),
            TestPublicKey::from_spki_pem(public).0
        );
        // The module reads both, and they belong together.
        let signature = sign::sign(&sign::private_key_from_pem(private).unwrap(), "x").unwrap();
        let public = sign::public_key_from_pem(public).unwrap();
        assert!(sign::verify(&public, "x", &signature));
    }
    assert_ne!(super::APP_PRIVATE_KEY_PEM, super::ALIPAY_PRIVATE_KEY_PEM);
}

// ---------------------------------------------------------------------------------------
// Wire helpers

#[test]
fn amounts_are_parsed_strictly() {
    assert_eq!(wire::parse_amount("88.88"), Some(8888));
    assert_eq!(wire::parse_amount("88.8"), Some(8880));
    assert_eq!(wire::parse_amount("88"), Some(8800));
    assert_eq!(wire::parse_amount("0.01"), Some(1));
    assert_eq!(wire::parse_amount("0.29"), Some(29));
    assert_eq!(wire::parse_amount("100000000"), Some(10_000_000_000));
    assert_eq!(wire::parse_amount("100000000.00"), Some(10_000_000_000));
    for bad in [
        "",
        "0",
        "0.00",
        "0.001",
        "1.234",
        "-1.00",
        "+1.00",
        "1e2",
        "01.00",
        ".5",
        "5.",
        " 5.00",
        "5.00 ",
        "1,00",
        "100000000.01",
        "999999999999",
        "NaN",
        "１.00",
    ] {
        assert_eq!(wire::parse_amount(bad), None, "{bad:?}");
    }
    assert_eq!(wire::format_amount(8880), "88.80");
    assert_eq!(wire::format_amount(5), "0.05");
    assert_eq!(wire::format_rate(520_000_000), "5.20000000");
    assert_eq!(wire::format_rate(12_345), "0.00012345");
}

#[test]
fn timeouts_codes_and_times() {
    let now = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:30:00Z")
        .unwrap()
        .to_utc();
    assert_eq!(
        wire::parse_timeout("5m", now),
        Some(now + Duration::minutes(5))
    );
    assert_eq!(
        wire::parse_timeout("2h", now),
        Some(now + Duration::hours(2))
    );
    assert_eq!(
        wire::parse_timeout("15d", now),
        Some(now + Duration::days(15))
    );
    // 18:30 in Beijing: "1c" ends at Beijing midnight, 16:00 UTC.
    assert_eq!(
        wire::parse_timeout("1c", now),
        Some(now + Duration::minutes(330))
    );
    for bad in ["", "m", "0m", "16d", "5s", "5", "-5m", "2c", "1.5h"] {
        assert_eq!(wire::parse_timeout(bad, now), None, "{bad:?}");
    }
    assert_eq!(wire::format_time(now), "2024-05-01 18:30:00");
    assert!(wire::is_timestamp("2024-05-01 18:30:00"));
    assert!(!wire::is_timestamp("2024-05-01T18:30:00"));
    assert!(wire::is_auth_code("28763443825664394"));
    assert!(wire::is_auth_code("300000000000000000000000"));
    assert!(
        wire::is_auth_code("2876344382566439"),
        "16 digits is the minimum"
    );
    for bad in [
        "287634438256643",
        "24763443825664394",
        "31763443825664394",
        "2876344382566439a",
        "3000000000000000000000000",
        "",
    ] {
        assert!(!wire::is_auth_code(bad), "{bad}");
    }
    assert!(wire::buyer_logon_id("c0001").contains("****"));
    assert!(wire::buyer_id("c0001").starts_with("2088"));
    assert_eq!(wire::buyer_id("c0001").len(), 16);
}

#[test]
fn acknowledgement_is_the_word_success() {
    let m = module();
    assert!(m.acknowledged(200, "success"));
    assert!(m.acknowledged(200, " success\r\n"));
    assert!(!m.acknowledged(200, "SUCCESS"));
    assert!(!m.acknowledged(200, "fail"));
    assert!(!m.acknowledged(200, "<xml>success</xml>"));
    assert!(!m.acknowledged(500, "success"));
    assert!(!m.acknowledged(302, "success"));
}

#[tokio::test]
async fn accounts_and_credentials() {
    let h = start().await;
    assert!(
        h.app_id.starts_with("2021") && h.app_id.len() == 16,
        "{}",
        h.app_id
    );
    assert!(
        h.seller_id.starts_with("2088") && h.seller_id.len() == 16,
        "{}",
        h.seller_id
    );
    assert_eq!(
        h.gateway_url,
        format!("{}/alipay/gateway.do", h.running.url())
    );
    let credentials = module().credentials(&h.sandbox);
    assert_eq!(credentials["sign_type"], "RSA2");
    // The same seed gives the same merchant app.
    let again = Sandbox::new(
        SandboxConfig {
            seed: 7,
            ..Default::default()
        },
        vec![module()],
    )
    .unwrap();
    assert_eq!(
        again.accounts(Wallet::Alipay),
        h.sandbox.accounts(Wallet::Alipay)
    );
}

// ---------------------------------------------------------------------------------------
// alipay.trade.pay

#[tokio::test]
async fn pay_instant_debits_the_balance() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Instant);
    let reply = h.pay("T1", &code, "88.88").await;
    assert!(reply.verified, "{}", reply.raw);
    assert_eq!(reply.code(), "10000", "{}", reply.raw);
    assert_eq!(reply.field("msg"), "Success");
    assert_eq!(reply.field("out_trade_no"), "T1");
    assert!(reply.field("trade_no").len() >= 16);
    assert_eq!(reply.field("total_amount"), "88.88");
    assert_eq!(reply.field("receipt_amount"), "88.88");
    assert_eq!(reply.field("buyer_pay_amount"), "88.88");
    assert!(reply.field("buyer_logon_id").contains('*'));
    assert!(wire::is_timestamp(reply.field("gmt_payment")));
    assert_eq!(
        reply.body["fund_bill_list"][0]["fund_channel"],
        "ALIPAYACCOUNT"
    );
    assert!(reply.body.get("trans_currency").is_none());
    assert_eq!(h.balance(&customer), 10_000 - 8_888);

    let query = h
        .call(
            "alipay.trade.query",
            json!({"trade_no": reply.field("trade_no")}),
        )
        .await;
    assert_eq!(
        query.field("trade_status"),
        "TRADE_SUCCESS",
        "{}",
        query.raw
    );
    assert_eq!(query.field("out_trade_no"), "T1");
    assert_eq!(query.field("buyer_user_id"), reply.field("buyer_user_id"));
}

#[tokio::test]
async fn pay_waits_for_the_password_then_succeeds() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Password { after_secs: 10 });
    let reply = h.pay("T2", &code, "10.00").await;
    assert_eq!(reply.code(), "10003", "{}", reply.raw);
    assert_eq!(reply.field("msg"), "order success pay inprocess");
    assert!(reply.verified);
    assert_eq!(h.query("T2").await.field("trade_status"), "WAIT_BUYER_PAY");
    // The same request again while waiting: still in process.
    assert_eq!(h.pay("T2", &code, "10.00").await.code(), "10003");
    h.advance(11);
    let query = h.query("T2").await;
    assert_eq!(
        query.field("trade_status"),
        "TRADE_SUCCESS",
        "{}",
        query.raw
    );
    assert_eq!(query.field("receipt_amount"), "10.00");
    assert!(wire::is_timestamp(query.field("send_pay_date")));
    assert_eq!(h.balance(&customer), 9_000);
}

#[tokio::test]
async fn pay_never_confirmed_is_closed_after_three_minutes() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::NeverConfirm);
    assert_eq!(h.pay("T3", &code, "10.00").await.code(), "10003");
    h.advance(170);
    assert_eq!(h.query("T3").await.field("trade_status"), "WAIT_BUYER_PAY");
    h.advance(11);
    let query = h.query("T3").await;
    assert_eq!(query.field("trade_status"), "TRADE_CLOSED", "{}", query.raw);
    assert_eq!(query.field("receipt_amount"), "0.00");
    assert_eq!(h.balance(&customer), 10_000);
    // Resubmitting the closed trade is refused.
    h.pay("T3", &code, "10.00")
        .await
        .assert_business("ACQ.TRADE_HAS_CLOSE");
}

#[tokio::test]
async fn pay_system_error_but_paid() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::SystemError);
    let reply = h.pay("T4", &code, "12.34").await;
    reply.assert_business("ACQ.SYSTEM_ERROR");
    assert_eq!(reply.field("out_trade_no"), "T4");
    assert_eq!(h.query("T4").await.field("trade_status"), "TRADE_SUCCESS");
    assert_eq!(h.balance(&customer), 10_000 - 1_234);
}

#[tokio::test]
async fn pay_with_no_answer_still_pays() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Timeout { paid: true });
    let params = h.params(
        "alipay.trade.pay",
        &json!({"out_trade_no": "T5", "scene": "bar_code", "auth_code": code, "subject": "Tea", "total_amount": "5.00"}),
        None,
    );
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let sent = h
        .http
        .post(&h.gateway_url)
        .timeout(StdDuration::from_millis(800))
        .body(body)
        .send()
        .await;
    assert!(sent.is_err(), "no answer was expected");
    assert_eq!(h.query("T5").await.field("trade_status"), "TRADE_SUCCESS");
    assert_eq!(h.balance(&customer), 9_500);
}

#[tokio::test]
async fn pay_refuses_bad_expired_and_used_codes() {
    let h = start().await;
    let customer = h.customer(10_000);
    let expired = h.code(&customer, Behaviour::Expired);
    h.pay("T6", &expired, "1.00")
        .await
        .assert_business("ACQ.PAYMENT_AUTH_CODE_INVALID");
    let code = h.code(&customer, Behaviour::Instant);
    assert_eq!(h.pay("T7", &code, "1.00").await.code(), "10000");
    h.pay("T8", &code, "1.00")
        .await
        .assert_business("ACQ.PAYMENT_AUTH_CODE_INVALID");
    // Not an Alipay code at all (a WeChat one), and an Alipay-shaped code never issued.
    h.pay("T9", "134567890123456789", "1.00")
        .await
        .assert_business("ACQ.PAYMENT_AUTH_CODE_INVALID");
    h.pay("T10", "28000000000000000", "1.00")
        .await
        .assert_business("ACQ.PAYMENT_AUTH_CODE_INVALID");
    // A code that lapsed after minting.
    let late = h.code(&customer, Behaviour::Instant);
    h.advance(61);
    h.pay("T11", &late, "1.00")
        .await
        .assert_business("ACQ.PAYMENT_AUTH_CODE_INVALID");
    assert_eq!(h.balance(&customer), 9_900);
}

#[tokio::test]
async fn pay_with_a_short_balance() {
    let h = start().await;
    let poor = h.customer(10);
    let code = h.code(&poor, Behaviour::Instant);
    h.pay("T12", &code, "88.88")
        .await
        .assert_business("ACQ.BUYER_BALANCE_NOT_ENOUGH");
    assert_eq!(h.balance(&poor), 10);
    let rich = h.customer(100_000);
    let code = h.code(&rich, Behaviour::InsufficientBalance);
    h.pay("T13", &code, "1.00")
        .await
        .assert_business("ACQ.BUYER_BALANCE_NOT_ENOUGH");
    assert_eq!(h.query("T13").await.field("trade_status"), "TRADE_CLOSED");
}

#[tokio::test]
async fn pay_resubmission_is_idempotent_and_changes_conflict() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Instant);
    let first = h.pay("T14", &code, "20.00").await;
    assert_eq!(first.code(), "10000");
    let again = h.pay("T14", &code, "20.00").await;
    again.assert_business("ACQ.TRADE_HAS_SUCCESS");
    assert_eq!(again.field("trade_no"), first.field("trade_no"));
    // "20" is the same amount as "20.00".
    h.pay("T14", &code, "20")
        .await
        .assert_business("ACQ.TRADE_HAS_SUCCESS");
    h.pay("T14", &code, "21.00")
        .await
        .assert_business("ACQ.CONTEXT_INCONSISTENT");
    assert_eq!(h.balance(&customer), 8_000, "charged once");
}

#[tokio::test]
async fn pay_validates_business_parameters() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Instant);
    for (biz, why) in [
        (
            json!({"scene": "bar_code", "auth_code": code, "subject": "S", "total_amount": "1.00"}),
            "no out_trade_no",
        ),
        (
            json!({"out_trade_no": "T15", "auth_code": code, "subject": "S", "total_amount": "1.00"}),
            "no scene",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "wave", "auth_code": code, "subject": "S", "total_amount": "1.00"}),
            "scene",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "total_amount": "1.00"}),
            "no subject",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "a/b", "total_amount": "1.00"}),
            "subject /",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "S"}),
            "no amount",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "S", "total_amount": 1.0}),
            "number",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "S", "total_amount": "1.001"}),
            "3 dp",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "S", "total_amount": "0.00"}),
            "zero",
        ),
        (
            json!({"out_trade_no": "T-15", "scene": "bar_code", "auth_code": code, "subject": "S", "total_amount": "1.00"}),
            "dash",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "S", "total_amount": "1.00", "trans_currency": "XYZ"}),
            "currency",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "S", "total_amount": "1.00", "trans_currency": "CAD", "settle_currency": "USD"}),
            "settle",
        ),
        (
            json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "S", "total_amount": "1.00", "timeout_express": "5s"}),
            "timeout",
        ),
    ] {
        let reply = h.call("alipay.trade.pay", biz).await;
        assert_eq!(
            (reply.code(), reply.sub_code()),
            ("40002", "ACQ.INVALID_PARAMETER"),
            "{why}: {}",
            reply.raw
        );
        assert!(reply.verified, "{why}");
    }
    let wrong_seller = json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "S",
                              "total_amount": "1.00", "seller_id": "2088000000000000"});
    h.call("alipay.trade.pay", wrong_seller)
        .await
        .assert_business("ACQ.PARTNER_ERROR");
    let right_seller = json!({"out_trade_no": "T15", "scene": "bar_code", "auth_code": code, "subject": "S",
                              "total_amount": "1.00", "seller_id": h.seller_id});
    assert_eq!(
        h.call("alipay.trade.pay", right_seller).await.code(),
        "10000"
    );
    assert_eq!(
        h.balance(&customer),
        9_900,
        "nothing charged by the refused calls"
    );
}

#[tokio::test]
async fn pay_cross_border_in_cad() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let reply = h
        .call(
            "alipay.trade.pay",
            json!({"out_trade_no": "T16", "scene": "bar_code", "auth_code": code, "subject": "Maple syrup",
                   "total_amount": "10.00", "trans_currency": "CAD", "settle_currency": "CAD"}),
        )
        .await;
    assert_eq!(reply.code(), "10000", "{}", reply.raw);
    assert_eq!(reply.field("total_amount"), "10.00");
    assert_eq!(reply.field("trans_currency"), "CAD");
    assert_eq!(reply.field("settle_currency"), "CAD");
    assert_eq!(reply.field("pay_currency"), "CNY");
    assert_eq!(reply.field("pay_amount"), "52.00");
    assert_eq!(reply.field("trans_pay_rate"), "5.20000000");
    assert_eq!(h.balance(&customer), 100_000 - 5_200);
    let query = h.query("T16").await;
    assert_eq!(query.field("pay_amount"), "52.00");
    assert_eq!(query.field("trans_currency"), "CAD");
    // A refund in the pricing currency; the customer gets the CNY share back.
    let refund = h.refund("T16", "5.00", Some("R1")).await;
    assert_eq!(refund.field("refund_fee"), "5.00", "{}", refund.raw);
    assert_eq!(refund.field("refund_currency"), "CAD");
    assert_eq!(h.balance(&customer), 100_000 - 2_600);
}

// ---------------------------------------------------------------------------------------
// alipay.trade.precreate and notifications

#[tokio::test]
async fn precreate_is_invisible_until_scanned_then_paid_and_notified() {
    let h = start().await;
    let merchant = receiver(true).await;
    let reply = h
        .call_with(
            "alipay.trade.precreate",
            json!({"out_trade_no": "Q1", "total_amount": "66.60", "subject": "Dumplings 饺子"}),
            Some(&merchant.url),
        )
        .await;
    assert_eq!(reply.code(), "10000", "{}", reply.raw);
    assert!(reply.verified);
    assert_eq!(reply.field("out_trade_no"), "Q1");
    let qr_code = reply.field("qr_code").to_owned();
    assert!(
        qr_code.starts_with(&format!("{}/pay/", h.running.url())),
        "{qr_code}"
    );
    // The same request again: the same QR.
    let again = h
        .call(
            "alipay.trade.precreate",
            json!({"out_trade_no": "Q1", "total_amount": "66.6", "subject": "Dumplings 饺子"}),
        )
        .await;
    assert_eq!(again.field("qr_code"), qr_code);
    h.call(
        "alipay.trade.precreate",
        json!({"out_trade_no": "Q1", "total_amount": "1.00", "subject": "Other"}),
    )
    .await
    .assert_business("ACQ.CONTEXT_INCONSISTENT");

    // Not scanned: Alipay has no trade yet.
    h.query("Q1").await.assert_business("ACQ.TRADE_NOT_EXIST");
    h.call("alipay.trade.close", json!({"out_trade_no": "Q1"}))
        .await
        .assert_business("ACQ.TRADE_NOT_EXIST");
    h.refund("Q1", "66.60", None)
        .await
        .assert_business("ACQ.TRADE_NOT_EXIST");

    // The pay page is a real page of the sandbox.
    let page = h.http.get(&qr_code).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let query = h.query("Q1").await;
    assert_eq!(
        query.field("trade_status"),
        "WAIT_BUYER_PAY",
        "{}",
        query.raw
    );

    let token = qr_code.rsplit('/').next().unwrap().to_owned();
    let customer = h.customer(10_000);
    let paid = h.sandbox.with(|s, _, now| s.pay_qr(&token, &customer, now));
    assert!(
        matches!(paid, crate::state::PayQrOutcome::Paid(_)),
        "{paid:?}"
    );
    let query = h.query("Q1").await;
    assert_eq!(query.field("trade_status"), "TRADE_SUCCESS");
    assert_eq!(query.field("total_amount"), "66.60");
    assert_eq!(h.balance(&customer), 10_000 - 6_660);

    merchant.wait_for(1).await;
    let fields = merchant.body(0);
    let get = |k: &str| field(&fields, k);
    assert_eq!(get("notify_type"), "trade_status_sync");
    assert_eq!(get("trade_status"), "TRADE_SUCCESS");
    assert_eq!(get("out_trade_no"), "Q1");
    assert_eq!(get("trade_no"), query.field("trade_no"));
    assert_eq!(get("app_id"), h.app_id);
    assert_eq!(get("seller_id"), h.seller_id);
    assert_eq!(get("total_amount"), "66.60");
    assert_eq!(get("receipt_amount"), "66.60");
    assert_eq!(get("buyer_pay_amount"), "66.60");
    assert_eq!(get("subject"), "Dumplings 饺子");
    assert_eq!(get("charset"), "utf-8");
    assert_eq!(get("version"), "1.0");
    assert_eq!(get("sign_type"), "RSA2");
    assert!(!get("notify_id").is_empty());
    assert_eq!(get("buyer_id"), query.field("buyer_user_id"));
    assert_eq!(get("buyer_logon_id"), query.field("buyer_logon_id"));
    assert!(wire::is_timestamp(&get("gmt_create")));
    assert!(wire::is_timestamp(&get("gmt_payment")) && wire::is_timestamp(&get("notify_time")));
    assert!(get("trans_currency").is_empty());
    // Verified the way §2.2 says: without sign and sign_type.
    let text = client_string_to_sign(&fields, &["sign_type"]);
    assert!(
        client_verify(&h.alipay_key, &text, &get("sign")),
        "{fields:?}"
    );
    wait_all_delivered(&h.sandbox).await;

    // Once paid, the same precreate is refused.
    h.call(
        "alipay.trade.precreate",
        json!({"out_trade_no": "Q1", "total_amount": "66.60", "subject": "Dumplings 饺子"}),
    )
    .await
    .assert_business("ACQ.TRADE_HAS_SUCCESS");
}

#[tokio::test]
async fn notifications_are_retried_until_acknowledged() {
    let h = start().await;
    let merchant = receiver(false).await;
    let reply = h
        .call_with(
            "alipay.trade.precreate",
            json!({"out_trade_no": "Q2", "total_amount": "1.00", "subject": "Tea", "trans_currency": "USD"}),
            Some(&merchant.url),
        )
        .await;
    let token = reply
        .field("qr_code")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let customer = h.customer(10_000);
    h.sandbox.with(|s, _, now| s.pay_qr(&token, &customer, now));
    merchant.wait_for(1).await;
    // Until the sandbox has recorded the refused attempt (and scheduled the retry).
    for _ in 0..100 {
        if h.sandbox
            .with(|s, _, _| s.notifications.iter().all(|n| n.attempts >= 1))
        {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let pending = h
        .sandbox
        .with(|s, _, _| s.notifications.iter().any(|n| !n.delivered));
    assert!(pending, "`fail` is no acknowledgement");
    let sent = merchant.count();
    // Alipay's first retry comes about 4 minutes later.
    merchant.accept.store(true, Ordering::SeqCst);
    h.advance(241);
    h.sandbox.tick().await;
    merchant.wait_for(sent + 1).await;
    wait_all_delivered(&h.sandbox).await;
    let fields = merchant.body(sent);
    assert_eq!(field(&fields, "trans_currency"), "USD");
    assert_eq!(field(&fields, "pay_currency"), "CNY");
    assert_eq!(field(&fields, "pay_amount"), "7.10");
    assert_eq!(field(&fields, "trans_pay_rate"), "7.10000000");
    let text = client_string_to_sign(&fields, &["sign_type"]);
    assert!(client_verify(&h.alipay_key, &text, &field(&fields, "sign")));
}

#[tokio::test]
async fn forged_notifications_do_not_verify() {
    let h = start().await;
    let merchant = receiver(true).await;
    h.sandbox
        .with(|s, _, _| s.faults(Wallet::Alipay).forged_notifications = true);
    let reply = h
        .call_with(
            "alipay.trade.precreate",
            json!({"out_trade_no": "Q3", "total_amount": "1.00", "subject": "Tea"}),
            Some(&merchant.url),
        )
        .await;
    let token = reply
        .field("qr_code")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let customer = h.customer(10_000);
    h.sandbox.with(|s, _, now| s.pay_qr(&token, &customer, now));
    merchant.wait_for(1).await;
    let fields = merchant.body(0);
    let text = client_string_to_sign(&fields, &["sign_type"]);
    assert!(!client_verify(
        &h.alipay_key,
        &text,
        &field(&fields, "sign")
    ));
}

#[tokio::test]
async fn precreate_expiry_and_timeouts() {
    let h = start().await;
    let reply = h
        .call(
            "alipay.trade.precreate",
            json!({"out_trade_no": "Q4", "total_amount": "1.00", "subject": "Tea", "qr_code_timeout_express": "5m"}),
        )
        .await;
    let token = reply
        .field("qr_code")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    h.sandbox.with(|s, _, now| s.scan_qr(&token, now));
    assert_eq!(h.query("Q4").await.field("trade_status"), "WAIT_BUYER_PAY");
    h.advance(301);
    assert_eq!(h.query("Q4").await.field("trade_status"), "TRADE_CLOSED");
    // By default a QR lasts two hours.
    let reply = h
        .call(
            "alipay.trade.precreate",
            json!({"out_trade_no": "Q5", "total_amount": "1.00", "subject": "Tea"}),
        )
        .await;
    let token = reply
        .field("qr_code")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    h.sandbox.with(|s, _, now| s.scan_qr(&token, now));
    h.advance(7_100);
    assert_eq!(h.query("Q5").await.field("trade_status"), "WAIT_BUYER_PAY");
    h.advance(200);
    assert_eq!(h.query("Q5").await.field("trade_status"), "TRADE_CLOSED");
    let bad = h
        .call(
            "alipay.trade.precreate",
            json!({"out_trade_no": "Q6", "total_amount": "1.00", "subject": "Tea", "timeout_express": "90"}),
        )
        .await;
    assert_eq!(bad.sub_code(), "ACQ.INVALID_PARAMETER", "{}", bad.raw);
}

// ---------------------------------------------------------------------------------------
// alipay.trade.cancel and alipay.trade.close

#[tokio::test]
async fn cancel_closes_unpaid_and_refunds_paid() {
    let h = start().await;
    let customer = h.customer(10_000);
    let waiting = h.code(&customer, Behaviour::NeverConfirm);
    assert_eq!(h.pay("C1", &waiting, "10.00").await.code(), "10003");
    let reply = h
        .call("alipay.trade.cancel", json!({"out_trade_no": "C1"}))
        .await;
    assert_eq!(reply.code(), "10000", "{}", reply.raw);
    assert_eq!(reply.field("retry_flag"), "N");
    assert_eq!(reply.field("action"), "close");
    assert_eq!(h.query("C1").await.field("trade_status"), "TRADE_CLOSED");

    let paid = h.code(&customer, Behaviour::Instant);
    let pay = h.pay("C2", &paid, "10.00").await;
    assert_eq!(h.balance(&customer), 9_000);
    let reply = h
        .call(
            "alipay.trade.cancel",
            json!({"trade_no": pay.field("trade_no")}),
        )
        .await;
    assert_eq!(reply.field("action"), "refund", "{}", reply.raw);
    assert_eq!(reply.field("out_trade_no"), "C2");
    assert!(wire::is_timestamp(reply.field("gmt_refund_pay")));
    assert_eq!(h.balance(&customer), 10_000);
    assert_eq!(h.query("C2").await.field("trade_status"), "TRADE_CLOSED");
    // Cancelling again changes nothing.
    let again = h
        .call("alipay.trade.cancel", json!({"out_trade_no": "C2"}))
        .await;
    assert_eq!((again.code(), again.field("action")), ("10000", "refund"));
    assert_eq!(h.balance(&customer), 10_000);

    let missing = h
        .call("alipay.trade.cancel", json!({"out_trade_no": "NOPE"}))
        .await;
    missing.assert_business("ACQ.TRADE_NOT_EXIST");
    assert_eq!(missing.field("retry_flag"), "N");
}

#[tokio::test]
async fn cancel_asks_to_retry_and_has_a_window() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::NeverConfirm);
    assert_eq!(h.pay("C3", &code, "10.00").await.code(), "10003");
    h.sandbox
        .with(|s, _, _| s.faults(Wallet::Alipay).reverse_call_again_next = 1);
    let first = h
        .call("alipay.trade.cancel", json!({"out_trade_no": "C3"}))
        .await;
    first.assert_business("ACQ.SYSTEM_ERROR");
    assert_eq!(first.field("retry_flag"), "Y");
    let second = h
        .call("alipay.trade.cancel", json!({"out_trade_no": "C3"}))
        .await;
    assert_eq!(
        (
            second.code(),
            second.field("retry_flag"),
            second.field("action")
        ),
        ("10000", "N", "close")
    );

    let code = h.code(&customer, Behaviour::Instant);
    assert_eq!(h.pay("C4", &code, "10.00").await.code(), "10000");
    h.advance(25 * 3600);
    let late = h
        .call("alipay.trade.cancel", json!({"out_trade_no": "C4"}))
        .await;
    late.assert_business("ACQ.TRADE_CANCEL_TIME_OUT");
    assert_eq!(late.field("retry_flag"), "N");
    // The refund still works.
    assert_eq!(
        h.refund("C4", "10.00", None).await.field("fund_change"),
        "Y"
    );
}

#[tokio::test]
async fn close_only_waiting_trades() {
    let h = start().await;
    let reply = h
        .call(
            "alipay.trade.precreate",
            json!({"out_trade_no": "K1", "total_amount": "3.00", "subject": "Tea"}),
        )
        .await;
    let token = reply
        .field("qr_code")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    h.sandbox.with(|s, _, now| s.scan_qr(&token, now));
    let closed = h
        .call("alipay.trade.close", json!({"out_trade_no": "K1"}))
        .await;
    assert_eq!(closed.code(), "10000", "{}", closed.raw);
    assert_eq!(closed.field("out_trade_no"), "K1");
    assert!(!closed.field("trade_no").is_empty());
    assert_eq!(h.query("K1").await.field("trade_status"), "TRADE_CLOSED");
    h.call("alipay.trade.close", json!({"out_trade_no": "K1"}))
        .await
        .assert_business("ACQ.TRADE_STATUS_ERROR");
    // A closed QR cannot be paid any more.
    let customer = h.customer(10_000);
    let paid = h.sandbox.with(|s, _, now| s.pay_qr(&token, &customer, now));
    assert!(matches!(paid, crate::state::PayQrOutcome::Closed(_)));

    h.paid("K2", "3.00").await;
    h.call("alipay.trade.close", json!({"out_trade_no": "K2"}))
        .await
        .assert_business("ACQ.TRADE_STATUS_ERROR");
    h.call("alipay.trade.close", json!({"out_trade_no": "K3"}))
        .await
        .assert_business("ACQ.TRADE_NOT_EXIST");
    let neither = h.call("alipay.trade.close", json!({})).await;
    assert_eq!(neither.sub_code(), "ACQ.INVALID_PARAMETER");
}

// ---------------------------------------------------------------------------------------
// alipay.trade.refund and alipay.trade.fastpay.refund.query

#[tokio::test]
async fn refunds_partial_full_over_and_discordant() {
    let h = start().await;
    let customer = h.paid("R1", "100.00").await;
    assert_eq!(h.balance(&customer), 90_000);

    h.refund("R1", "30.00", None)
        .await
        .assert_business("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");
    let first = h.refund("R1", "30.00", Some("RQ1")).await;
    assert_eq!(first.code(), "10000", "{}", first.raw);
    assert!(first.verified);
    assert_eq!(first.field("fund_change"), "Y");
    assert_eq!(first.field("refund_fee"), "30.00");
    assert_eq!(first.field("out_trade_no"), "R1");
    assert!(wire::is_timestamp(first.field("gmt_refund_pay")));
    assert_eq!(h.balance(&customer), 93_000);
    let retry = h.refund("R1", "30", Some("RQ1")).await;
    assert_eq!(
        (retry.field("fund_change"), retry.field("refund_fee")),
        ("N", "30.00"),
        "{}",
        retry.raw
    );
    assert_eq!(h.balance(&customer), 93_000, "a retry moves no money");
    h.refund("R1", "40.00", Some("RQ1"))
        .await
        .assert_business("ACQ.DISCORDANT_REPEAT_REQUEST");
    h.refund("R1", "80.00", Some("RQ2"))
        .await
        .assert_business("ACQ.REASON_TRADE_REFUND_FEE_ERR");
    assert_eq!(
        h.query("R1").await.field("trade_status"),
        "TRADE_SUCCESS",
        "partially refunded"
    );

    let rest = h.refund("R1", "70.00", Some("RQ2")).await;
    assert_eq!(
        (rest.field("fund_change"), rest.field("refund_fee")),
        ("Y", "100.00"),
        "{}",
        rest.raw
    );
    assert_eq!(h.balance(&customer), 100_000);
    assert_eq!(
        h.query("R1").await.field("trade_status"),
        "TRADE_CLOSED",
        "fully refunded"
    );
    h.refund("R1", "1.00", Some("RQ3"))
        .await
        .assert_business("ACQ.TRADE_HAS_CLOSE");

    let found = h
        .call(
            "alipay.trade.fastpay.refund.query",
            json!({"out_trade_no": "R1", "out_request_no": "RQ1"}),
        )
        .await;
    assert_eq!(found.code(), "10000");
    assert_eq!(found.field("out_request_no"), "RQ1");
    assert_eq!(found.field("refund_amount"), "30.00");
    assert_eq!(found.field("total_amount"), "100.00");
    assert_eq!(found.field("refund_status"), "REFUND_SUCCESS");
    let absent = h
        .call(
            "alipay.trade.fastpay.refund.query",
            json!({"out_trade_no": "R1", "out_request_no": "RQ9"}),
        )
        .await;
    assert_eq!(absent.code(), "10000", "{}", absent.raw);
    assert!(absent.body.get("refund_amount").is_none(), "{}", absent.raw);
    let no_request = h
        .call(
            "alipay.trade.fastpay.refund.query",
            json!({"out_trade_no": "R1"}),
        )
        .await;
    assert_eq!(no_request.sub_code(), "ACQ.INVALID_PARAMETER");
}

#[tokio::test]
async fn full_refund_without_request_number() {
    let h = start().await;
    let customer = h.paid("R2", "12.50").await;
    let pay_query = h.query("R2").await;
    let reply = h
        .call(
            "alipay.trade.refund",
            json!({"trade_no": pay_query.field("trade_no"), "refund_amount": "12.50"}),
        )
        .await;
    assert_eq!(
        (reply.code(), reply.field("fund_change")),
        ("10000", "Y"),
        "{}",
        reply.raw
    );
    assert_eq!(h.balance(&customer), 100_000);
    assert_eq!(h.query("R2").await.field("trade_status"), "TRADE_CLOSED");
    // Queried with the trade's own number as the request number.
    let found = h
        .call(
            "alipay.trade.fastpay.refund.query",
            json!({"out_trade_no": "R2", "out_request_no": "R2"}),
        )
        .await;
    assert_eq!(found.field("refund_amount"), "12.50", "{}", found.raw);
    // Retried: no money moves.
    assert_eq!(
        h.refund("R2", "12.50", None).await.field("fund_change"),
        "N"
    );
}

#[tokio::test]
async fn refunds_of_unpaid_or_missing_trades() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::NeverConfirm);
    assert_eq!(h.pay("R3", &code, "5.00").await.code(), "10003");
    h.refund("R3", "5.00", None)
        .await
        .assert_business("ACQ.TRADE_STATUS_ERROR");
    h.call("alipay.trade.cancel", json!({"out_trade_no": "R3"}))
        .await;
    h.refund("R3", "5.00", None)
        .await
        .assert_business("ACQ.TRADE_HAS_CLOSE");
    h.refund("R4", "5.00", None)
        .await
        .assert_business("ACQ.TRADE_NOT_EXIST");
    let bad = h.refund("R3", "-5.00", Some("X")).await;
    assert_eq!(bad.sub_code(), "ACQ.INVALID_PARAMETER");
}

// ---------------------------------------------------------------------------------------
// The envelope: signatures, common parameters, malformed requests

#[tokio::test]
async fn answers_are_signed_over_the_raw_response_text() {
    let h = start().await;
    let reply = h.query("NONE").await;
    assert!(reply.signed && reply.verified, "{}", reply.raw);
    // The signature covers the exact bytes: one changed byte breaks it.
    let start = reply.raw.find("_response\":").unwrap() + 11;
    let end = reply.raw.rfind(",\"sign\":").unwrap();
    let inner = &reply.raw[start..end];
    let signature = serde_json::from_str::<Value>(&reply.raw).unwrap()["sign"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(client_verify(&h.alipay_key, inner, &signature));
    assert!(!client_verify(
        &h.alipay_key,
        &inner.replace("40004", "40005"),
        &signature
    ));

    h.sandbox
        .with(|s, _, _| s.faults(Wallet::Alipay).bad_signature_next = 1);
    let forged = h.query("NONE").await;
    assert!(forged.signed && !forged.verified, "{}", forged.raw);
    let next = h.query("NONE").await;
    assert!(next.verified, "the fault covers one answer");
}

#[tokio::test]
async fn bad_request_signature_is_refused() {
    let h = start().await;
    let mut params = h.params("alipay.trade.query", &json!({"out_trade_no": "X"}), None);
    // Tamper with biz_content after signing.
    for (k, v) in params.iter_mut() {
        if k == "biz_content" {
            *v = json!({"out_trade_no": "Y"}).to_string();
        }
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let (status, raw) = h.post_raw(None, body).await;
    assert_eq!(status, 200);
    let reply = h.reply(raw);
    assert_eq!(reply.key, "error_response", "{}", reply.raw);
    assert_eq!(
        (reply.code(), reply.sub_code()),
        ("40002", "isv.invalid-signature"),
        "{}",
        reply.raw
    );
    assert!(reply.verified, "known app: the error is signed");

    // Signed with the wrong key (the Alipay one instead of the app's).
    let mut params = h.params("alipay.trade.query", &json!({"out_trade_no": "X"}), None);
    let wrong = TestKey::from_pkcs8_pem(super::ALIPAY_PRIVATE_KEY_PEM);
    params.retain(|(k, _)| k != "sign");
    let signature = client_sign(&wrong, &client_string_to_sign(&params, &[]));
    params.push(("sign".to_owned(), signature));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let reply = h.reply(h.post_raw(None, body).await.1);
    assert_eq!(reply.sub_code(), "isv.invalid-signature");

    // sign_type is part of the signed text: signing without it fails.
    let mut params = h.params("alipay.trade.query", &json!({"out_trade_no": "X"}), None);
    params.retain(|(k, _)| k != "sign");
    let signature = client_sign(&h.app_key, &client_string_to_sign(&params, &["sign_type"]));
    params.push(("sign".to_owned(), signature));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let reply = h.reply(h.post_raw(None, body).await.1);
    assert_eq!(reply.sub_code(), "isv.invalid-signature");
}

#[tokio::test]
async fn common_parameter_errors() {
    let h = start().await;
    let base = h.params("alipay.trade.query", &json!({"out_trade_no": "X"}), None);
    let send = |params: Vec<(String, String)>| h.send(params);
    let without = |name: &str| {
        base.iter()
            .filter(|(k, _)| k != name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let replaced = |name: &str, value: &str| {
        base.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if k == name {
                        value.to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect::<Vec<_>>()
    };

    let reply = send(replaced("app_id", "2021000000000000")).await;
    assert_eq!(
        (reply.key.as_str(), reply.code(), reply.sub_code()),
        ("error_response", "40002", "isv.invalid-app-id")
    );
    assert!(!reply.signed, "unknown app: unsigned");
    let reply = send(without("app_id")).await;
    assert_eq!(
        (reply.code(), reply.sub_code()),
        ("40001", "isv.missing-app-id")
    );
    assert!(!reply.signed);

    for (params, code, sub_code) in [
        (without("method"), "40001", "isv.missing-method"),
        (
            replaced("method", "alipay.trade.create"),
            "40002",
            "isv.invalid-method",
        ),
        (without("sign"), "40001", "isv.missing-signature"),
        (without("sign_type"), "40001", "isv.missing-signature-type"),
        (
            replaced("sign_type", "RSA"),
            "40002",
            "isv.invalid-signature-type",
        ),
        (without("timestamp"), "40001", "isv.missing-timestamp"),
        (
            replaced("timestamp", "yesterday"),
            "40002",
            "isv.invalid-timestamp",
        ),
        (without("version"), "40001", "isv.missing-version"),
        (without("charset"), "40001", "isv.missing-charset"),
        (replaced("charset", "GBK"), "40002", "isv.invalid-charset"),
        (replaced("format", "XML"), "40002", "isv.invalid-format"),
    ] {
        let reply = send(params).await;
        assert_eq!(reply.key, "error_response", "{sub_code}: {}", reply.raw);
        assert_eq!(
            (reply.code(), reply.sub_code()),
            (code, sub_code),
            "{}",
            reply.raw
        );
        assert!(reply.verified, "{sub_code}: known app, signed");
    }
    // biz_content missing (re-signed, so the signature is fine).
    let mut params = without("biz_content");
    params.retain(|(k, _)| k != "sign");
    let signature = client_sign(&h.app_key, &client_string_to_sign(&params, &[]));
    params.push(("sign".to_owned(), signature));
    let reply = send(params).await;
    assert_eq!(
        (reply.code(), reply.sub_code()),
        ("40001", "isv.missing-biz-content"),
        "{}",
        reply.raw
    );
}

#[tokio::test]
async fn common_parameters_in_the_query_string() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Instant);
    let biz = json!({"out_trade_no": "Q9", "scene": "bar_code", "auth_code": code, "subject": "Tea", "total_amount": "2.00"});
    let params = h.params("alipay.trade.pay", &biz, None);
    let (in_body, in_query): (Vec<_>, Vec<_>) =
        params.into_iter().partition(|(k, _)| k == "biz_content");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(in_query.iter())
        .finish();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(in_body.iter())
        .finish();
    let (status, raw) = h.post_raw(Some(&query), body).await;
    assert_eq!(status, 200);
    let reply = h.reply(raw);
    assert_eq!(reply.code(), "10000", "{}", reply.raw);
    assert_eq!(reply.key, "alipay_trade_pay_response");
}

#[tokio::test]
async fn malformed_requests_get_alipay_errors() {
    let h = start().await;
    let bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"{\"app_id\": \"1\"}".to_vec(),
        b"%%%&&&===".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"app_id=&method=&sign=".to_vec(),
        "app_id=2021000000000000&method=alipay.trade.pay&biz_content=%7B"
            .as_bytes()
            .to_vec(),
    ];
    for body in bodies {
        let (status, raw) = h.post_raw(None, body.clone()).await;
        assert_eq!(status, 200, "{body:?}: {raw}");
        let reply = h.reply(raw);
        assert_eq!(reply.key, "error_response");
        assert!(reply.code().starts_with("400"), "{}", reply.raw);
    }
    // A correctly signed call whose biz_content is not JSON: the method's own error.
    let mut params = h.params("alipay.trade.query", &json!({}), None);
    params.retain(|(k, _)| k != "sign" && k != "biz_content");
    params.push(("biz_content".to_owned(), "{not json".to_owned()));
    let signature = client_sign(&h.app_key, &client_string_to_sign(&params, &[]));
    params.push(("sign".to_owned(), signature));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let reply = h.reply(h.post_raw(None, body).await.1);
    assert_eq!(reply.key, "alipay_trade_query_response");
    assert_eq!(
        (reply.code(), reply.sub_code()),
        ("40002", "ACQ.INVALID_PARAMETER"),
        "{}",
        reply.raw
    );
    assert!(reply.verified);
    let reply = h
        .call("alipay.trade.query", json!(["not", "an", "object"]))
        .await;
    assert_eq!(reply.sub_code(), "ACQ.INVALID_PARAMETER");
    let reply = h
        .call("alipay.trade.query", json!({"out_trade_no": 42}))
        .await;
    assert_eq!(reply.sub_code(), "ACQ.INVALID_PARAMETER");
}

mod bill_http;
