//! Tests of the WeChat module over real HTTP (and TLS) in-process: a sandbox on
//! 127.0.0.1:0 spoken to in v2 XML, signed by a small signer written here independently of
//! `sign.rs` (which is checked against the §7 vectors).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::Duration;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

use super::*;
use crate::model::{Behaviour, TradeStatus};
use crate::{RunningSandbox, SandboxConfig};

// ---------------------------------------------------------------------------------------
// Test-side signer and XML writer

fn test_sign(fields: &[(String, String)], key: &str, hmac: bool) -> String {
    let mut kept: Vec<&(String, String)> = fields
        .iter()
        .filter(|(k, v)| k != "sign" && !v.is_empty())
        .collect();
    kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let joined: Vec<String> = kept.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let message = format!("{}&key={key}", joined.join("&"));
    if hmac {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        hex::encode_upper(mac.finalize().into_bytes())
    } else {
        hex::encode_upper(Md5::digest(message.as_bytes()))
    }
}

fn to_xml(fields: &[(String, String)]) -> String {
    let mut out = String::from("<xml>\n");
    for (k, v) in fields {
        out.push_str(&format!("  <{k}><![CDATA[{v}]]></{k}>\n"));
    }
    out.push_str("</xml>");
    out
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Harness

struct Harness {
    running: RunningSandbox,
    sandbox: Sandbox,
    http: reqwest::Client,
    appid: String,
    mch_id: String,
    sub_mch_id: String,
    key: String,
}

type Answer = BTreeMap<String, String>;

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
    let accounts = sandbox.accounts(Wallet::Wechat);
    Harness {
        sandbox: running.sandbox.clone(),
        running,
        http: reqwest::Client::builder()
            .timeout(StdDuration::from_secs(10))
            .build()
            .unwrap(),
        appid: accounts["appid"].as_str().unwrap().to_owned(),
        mch_id: accounts["mch_id"].as_str().unwrap().to_owned(),
        sub_mch_id: accounts["sub_mch_id"].as_str().unwrap().to_owned(),
        key: accounts["api_key"].as_str().unwrap().to_owned(),
    }
}

impl Harness {
    fn base(&self) -> String {
        format!("{}/wechat", self.running.url())
    }

    fn customer(&self, balance_fen: i64) -> String {
        self.sandbox
            .with(|s, _, now| s.add_customer("Wang", balance_fen, now))
            .id
    }

    fn code(&self, customer: &str, behaviour: Behaviour) -> String {
        self.sandbox
            .with(|s, rng, now| {
                s.mint_code(
                    rng,
                    Wallet::Wechat,
                    customer,
                    behaviour,
                    Duration::seconds(60),
                    now,
                )
            })
            .unwrap()
            .code
    }

    fn balance(&self, customer: &str) -> i64 {
        self.sandbox
            .with(|s, _, _| s.customers[customer].balance_fen)
    }

    fn advance(&self, secs: i64) {
        self.sandbox.clock().advance(Duration::seconds(secs));
    }

    /// The request's fields with the merchant ids, a nonce and an MD5 or HMAC signature.
    fn signed(&self, fields: &[(&str, &str)], hmac: bool) -> Vec<(String, String)> {
        let mut all = owned(&[
            ("appid", &self.appid),
            ("mch_id", &self.mch_id),
            ("sub_mch_id", &self.sub_mch_id),
            ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ]);
        // A test that sends its own (or no) `sub_mch_id` says so in `fields`.
        if fields.iter().any(|(k, _)| *k == "sub_mch_id") {
            all.retain(|(k, _)| k != "sub_mch_id");
        }
        if hmac {
            all.push(("sign_type".to_owned(), "HMAC-SHA256".to_owned()));
        }
        all.extend(owned(fields));
        let sign = test_sign(&all, &self.key, hmac);
        all.push(("sign".to_owned(), sign));
        all
    }

    async fn post_raw(
        &self,
        client: &reqwest::Client,
        url: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Answer) {
        let response = client.post(url).body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        assert_eq!(content_type, "text/xml", "{text}");
        let answer =
            xml::parse(&text).unwrap_or_else(|e| panic!("answer is not v2 XML ({e}): {text}"));
        (status, answer)
    }

    /// Calls `path` over plain HTTP (MD5), checking the answer's signature when it has one.
    async fn call(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.call_on(&self.http, &self.base(), path, fields, false)
            .await
    }

    async fn call_on(
        &self,
        client: &reqwest::Client,
        base: &str,
        path: &str,
        fields: &[(&str, &str)],
        hmac: bool,
    ) -> Answer {
        let body = to_xml(&self.signed(fields, hmac));
        let (status, answer) = self.post_raw(client, &format!("{base}{path}"), body).await;
        assert_eq!(status, 200, "{answer:?}");
        if answer["return_code"] == "SUCCESS" {
            assert!(
                self.sign_ok(&answer, hmac),
                "bad answer signature: {answer:?}"
            );
            assert_eq!(answer["appid"], self.appid);
            assert_eq!(answer["mch_id"], self.mch_id);
        }
        answer
    }

    fn sign_ok(&self, answer: &Answer, hmac: bool) -> bool {
        let fields: Vec<(String, String)> =
            answer.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        answer.get("sign") == Some(&test_sign(&fields, &self.key, hmac))
    }

    async fn micropay(&self, out_trade_no: &str, total: &str, code: &str) -> Answer {
        self.call(
            "/pay/micropay",
            &[
                ("body", "Coffee"),
                ("out_trade_no", out_trade_no),
                ("total_fee", total),
                ("spbill_create_ip", "10.0.0.8"),
                ("auth_code", code),
            ],
        )
        .await
    }

    async fn query(&self, out_trade_no: &str) -> Answer {
        self.call("/pay/orderquery", &[("out_trade_no", out_trade_no)])
            .await
    }

    async fn native(&self, out_trade_no: &str, total: &str, notify_url: &str) -> Answer {
        self.call(
            "/pay/unifiedorder",
            &[
                ("body", "Tea"),
                ("out_trade_no", out_trade_no),
                ("total_fee", total),
                ("spbill_create_ip", "10.0.0.8"),
                ("notify_url", notify_url),
                ("trade_type", "NATIVE"),
                ("product_id", "P1"),
            ],
        )
        .await
    }

    fn pay_qr(&self, code_url: &str, customer: &str) -> crate::state::PayQrOutcome {
        let token = code_url.rsplit('/').next().unwrap().to_owned();
        self.sandbox
            .with(|s, _, now| s.pay_qr(&token, customer, now))
    }

    /// A TLS client presenting the merchant certificate (or none).
    fn tls_client(&self, with_cert: bool) -> reqwest::Client {
        let creds = module().credentials(&self.sandbox);
        let ca = reqwest::Certificate::from_pem(creds["ca_cert_pem"].as_str().unwrap().as_bytes())
            .unwrap();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(StdDuration::from_secs(10));
        if with_cert {
            let pem = format!(
                "{}{}",
                creds["client_cert_pem"].as_str().unwrap(),
                creds["client_key_pem"].as_str().unwrap()
            );
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    }
}

fn assert_err(answer: &Answer, code: &str) {
    assert_eq!(answer["return_code"], "SUCCESS", "{answer:?}");
    assert_eq!(answer["result_code"], "FAIL", "{answer:?}");
    assert_eq!(answer["err_code"], code, "{answer:?}");
}

fn assert_ok(answer: &Answer) {
    assert_eq!(answer["return_code"], "SUCCESS", "{answer:?}");
    assert_eq!(answer["result_code"], "SUCCESS", "{answer:?}");
}

fn assert_fail(answer: &Answer, fragment: &str) {
    assert_eq!(answer["return_code"], "FAIL", "{answer:?}");
    assert!(answer["return_msg"].contains(fragment), "{answer:?}");
    assert!(!answer.contains_key("sign"), "{answer:?}");
}

// ---------------------------------------------------------------------------------------
// Signing vectors (§7)

const VECTOR_KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn vector_1_fields() -> Vec<(String, String)> {
    owned(&[
        ("appid", "wxd930ea5d5a258f4f"),
        ("mch_id", "10000100"),
        ("device_info", "1000"),
        ("body", "test"),
        ("nonce_str", "ibuaiVcKdpRxkhJA"),
    ])
}

fn module_sign(fields: &[(String, String)], t: WechatSignType) -> String {
    sign::sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        VECTOR_KEY,
        t,
    )
}

#[test]
fn vector_1_md5() {
    let f = vector_1_fields();
    assert_eq!(
        sign::string_to_sign(f.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
    );
    assert_eq!(
        module_sign(&f, WechatSignType::Md5),
        "9A0A8659F005D6984697E2CA0A9CF3B7"
    );
    assert_eq!(
        test_sign(&f, VECTOR_KEY, false),
        "9A0A8659F005D6984697E2CA0A9CF3B7"
    );
}

#[test]
fn vector_2_hmac_sha256() {
    let f = vector_1_fields();
    let expected = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6";
    assert_eq!(module_sign(&f, WechatSignType::HmacSha256), expected);
    assert_eq!(test_sign(&f, VECTOR_KEY, true), expected);
}

#[test]
fn vector_3_userpaying_answer_md5() {
    let f = owned(&[
        ("return_code", "SUCCESS"),
        ("return_msg", "OK"),
        ("appid", "wxd930ea5d5a258f4f"),
        ("mch_id", "10000100"),
        ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ("result_code", "FAIL"),
        ("err_code", "USERPAYING"),
        ("err_code_des", "需要用户输入支付密码"),
    ]);
    assert_eq!(
        module_sign(&f, WechatSignType::Md5),
        "8CA1E89952CDCC9BEA5B8663203C15C2"
    );
    // Verification over parsed XML: unknown empty fields and `sign` itself are skipped.
    let mut map: BTreeMap<String, String> = f.into_iter().collect();
    map.insert(
        "sign".to_owned(),
        "8CA1E89952CDCC9BEA5B8663203C15C2".to_owned(),
    );
    map.insert("coupon_fee".to_owned(), String::new());
    assert!(sign::verify(&map, VECTOR_KEY, WechatSignType::Md5));
    map.insert(
        "sign".to_owned(),
        "8ca1e89952cdcc9bea5b8663203c15c2".to_owned(),
    );
    assert!(
        !sign::verify(&map, VECTOR_KEY, WechatSignType::Md5),
        "lower case is not the documented form"
    );
}

#[test]
fn vector_4_micropay_request_hmac() {
    let f = owned(&[
        ("appid", "wxd930ea5d5a258f4f"),
        ("auth_code", "120061098828009406"),
        ("body", "test"),
        ("mch_id", "10000100"),
        ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ("out_trade_no", "1217752501201407033233368018"),
        ("sign_type", "HMAC-SHA256"),
        ("spbill_create_ip", "8.8.8.8"),
        ("total_fee", "888"),
    ]);
    let expected = "EBD51954FF5A654AC3E5E3830BC519AAC37B920E5AEAF65BF1F2B9C071505BDF";
    assert_eq!(module_sign(&f, WechatSignType::HmacSha256), expected);
    assert_eq!(test_sign(&f, VECTOR_KEY, true), expected);
    assert_eq!(WechatSignType::parse(None), Some(WechatSignType::Md5));
    assert_eq!(
        WechatSignType::parse(Some("HMAC-SHA256")),
        Some(WechatSignType::HmacSha256)
    );
    assert_eq!(WechatSignType::parse(Some("SHA1")), None);
}

// ---------------------------------------------------------------------------------------
// XML

#[test]
fn xml_parsing_is_cdata_tolerant_and_strict_on_structure() {
    let parsed = xml::parse(
        "<?xml version=\"1.0\"?>\n<xml>\n <a><![CDATA[x<y]]></a>\n <b>1 &amp; 2</b><c/>\n <d>\n  <![CDATA[z]]>\n </d><!-- note --></xml>\n",
    )
    .unwrap();
    assert_eq!(parsed["a"], "x<y");
    assert_eq!(parsed["b"], "1 & 2");
    assert_eq!(parsed["c"], "");
    assert_eq!(parsed["d"], "z");
    for bad in [
        "<!DOCTYPE xml [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><a>&e;</a></xml>",
        "<xml><a>&e;</a></xml>",
        "<xml><a><b>1</b></a></xml>",
        "<xml><a>1</a><a>2</a></xml>",
        "<root><a>1</a></root>",
        "<xml><a>1</a>",
        "<xml><a>1</b></xml>",
        "not xml",
        "<xml>text</xml>",
        "",
    ] {
        assert!(xml::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn xml_rendering_round_trips() {
    let fields = owned(&[
        ("return_code", "SUCCESS"),
        ("total_fee", "100"),
        ("odd", "a]]>b<c&"),
        ("refund_fee_0", "5"),
    ]);
    let text = xml::render(&fields);
    assert!(text.contains("<total_fee>100</total_fee>"), "{text}");
    assert!(text.contains("<refund_fee_0>5</refund_fee_0>"), "{text}");
    assert!(
        text.contains("<return_code><![CDATA[SUCCESS]]></return_code>"),
        "{text}"
    );
    let back = xml::parse(&text).unwrap();
    assert_eq!(back["odd"], "a]]>b<c&");
    assert_eq!(back.len(), 4);
}

#[test]
fn acknowledgement_needs_2xx_and_success_xml() {
    let m = WechatModule;
    let ok = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>";
    assert!(m.acknowledged(200, ok));
    assert!(m.acknowledged(204, "<xml><return_code>SUCCESS</return_code></xml>"));
    assert!(!m.acknowledged(500, ok));
    assert!(!m.acknowledged(
        200,
        "<xml><return_code><![CDATA[FAIL]]></return_code></xml>"
    ));
    assert!(!m.acknowledged(200, "SUCCESS"));
    assert!(!m.acknowledged(200, "success"));
    assert!(!m.acknowledged(200, ""));
}

#[test]
fn accounts_are_deterministic_and_well_formed() {
    use rand::SeedableRng;
    let a = WechatModule.create_accounts(&mut ChaCha8Rng::seed_from_u64(7));
    let b = WechatModule.create_accounts(&mut ChaCha8Rng::seed_from_u64(7));
    assert_eq!(a, b);
    let appid = a["appid"].as_str().unwrap();
    assert!(
        appid.starts_with("wx")
            && appid.len() == 18
            && appid[2..].bytes().all(|c| c.is_ascii_hexdigit())
    );
    let mch_id = a["mch_id"].as_str().unwrap();
    assert!(mch_id.len() == 10 && mch_id.bytes().all(|c| c.is_ascii_digit()));
    let key = a["api_key"].as_str().unwrap();
    assert!(key.len() == 32 && key.bytes().all(|c| c.is_ascii_alphanumeric()));
}

// ---------------------------------------------------------------------------------------
// Micropay

#[tokio::test]
async fn micropay_instant_success_debits_the_customer() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let a = h.micropay("M1", "1234", &code).await;
    assert_ok(&a);
    assert_eq!(a["trade_type"], "MICROPAY");
    assert_eq!(a["out_trade_no"], "M1");
    assert_eq!(a["fee_type"], "CNY");
    assert_eq!(a["total_fee"], "1234");
    assert_eq!(a["cash_fee_type"], "CNY");
    assert_eq!(a["cash_fee"], "1234");
    assert_eq!(a["rate"], "100000000");
    assert!(a["transaction_id"].starts_with("4200"));
    assert_eq!(a["time_end"].len(), 14);
    assert!(a["openid"].starts_with('o') && a["openid"].len() == 28);
    assert!(!a["openid"].contains(&customer));
    assert_eq!(h.balance(&customer), 100_000 - 1234);

    // The query tells the same story, with the same openid.
    let q = h.query("M1").await;
    assert_ok(&q);
    assert_eq!(q["trade_state"], "SUCCESS");
    assert_eq!(q["openid"], a["openid"]);
    assert_eq!(q["transaction_id"], a["transaction_id"]);
    // ... also by transaction_id.
    let q2 = h
        .call(
            "/pay/orderquery",
            &[("transaction_id", &a["transaction_id"])],
        )
        .await;
    assert_eq!(q2["out_trade_no"], "M1");
}

#[tokio::test]
async fn micropay_in_cad_with_hmac_converts_to_cny() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let a = h
        .call_on(
            &h.http,
            &h.base(),
            "/pay/micropay",
            &[
                ("body", "Maple syrup"),
                ("out_trade_no", "CAD-1"),
                ("total_fee", "1000"),
                ("fee_type", "CAD"),
                ("spbill_create_ip", "10.0.0.8"),
                ("auth_code", &code),
                ("attach", "store=7"),
            ],
            true,
        )
        .await;
    assert_ok(&a);
    assert_eq!(a["fee_type"], "CAD");
    assert_eq!(a["total_fee"], "1000");
    assert_eq!(a["cash_fee"], "5200");
    assert_eq!(a["rate"], "520000000");
    assert_eq!(a["attach"], "store=7");
    assert_eq!(h.balance(&customer), 100_000 - 5200);
    assert_eq!(h.query("CAD-1").await["attach"], "store=7");

    let code = h.code(&customer, Behaviour::Instant);
    let a = h
        .call(
            "/pay/micropay",
            &[
                ("body", "x"),
                ("out_trade_no", "JPY-1"),
                ("total_fee", "1"),
                ("fee_type", "JPY"),
                ("spbill_create_ip", "1.1.1.1"),
                ("auth_code", &code),
            ],
        )
        .await;
    assert_err(&a, "PARAM_ERROR");
}

#[tokio::test]
async fn micropay_password_then_success() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Password { after_secs: 10 });
    assert_err(&h.micropay("P1", "500", &code).await, "USERPAYING");
    let q = h.query("P1").await;
    assert_ok(&q);
    assert_eq!(q["trade_state"], "USERPAYING");
    assert!(!q.contains_key("transaction_id"));
    assert_eq!(h.balance(&customer), 10_000);
    // The same request again while waiting: still paying.
    assert_err(&h.micropay("P1", "500", &code).await, "USERPAYING");
    h.advance(11);
    let q = h.query("P1").await;
    assert_eq!(q["trade_state"], "SUCCESS");
    assert_eq!(q["cash_fee"], "500");
    assert_eq!(h.balance(&customer), 9_500);
}

#[tokio::test]
async fn micropay_never_confirmed_is_revoked_after_45_s() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::NeverConfirm);
    assert_err(&h.micropay("N1", "500", &code).await, "USERPAYING");
    h.advance(30);
    assert_eq!(h.query("N1").await["trade_state"], "USERPAYING");
    h.advance(16);
    assert_eq!(h.query("N1").await["trade_state"], "REVOKED");
    assert_err(&h.micropay("N1", "500", &code).await, "ORDERREVERSED");
    assert_eq!(h.balance(&customer), 10_000);
}

#[tokio::test]
async fn micropay_system_error_but_paid() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::SystemError);
    assert_err(&h.micropay("S1", "700", &code).await, "SYSTEMERROR");
    let q = h.query("S1").await;
    assert_eq!(q["trade_state"], "SUCCESS");
    assert_eq!(h.balance(&customer), 9_300);
    // Resubmitting the same request never charges twice.
    assert_err(&h.micropay("S1", "700", &code).await, "ORDERPAID");
    assert_eq!(h.balance(&customer), 9_300);
}

#[tokio::test]
async fn micropay_no_answer_but_paid() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Timeout { paid: true });
    let impatient = reqwest::Client::builder()
        .timeout(StdDuration::from_millis(800))
        .build()
        .unwrap();
    let body = to_xml(&h.signed(
        &[
            ("body", "x"),
            ("out_trade_no", "T1"),
            ("total_fee", "300"),
            ("spbill_create_ip", "1.1.1.1"),
            ("auth_code", &code),
        ],
        false,
    ));
    let err = impatient
        .post(format!("{}/pay/micropay", h.base()))
        .body(body)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(h.query("T1").await["trade_state"], "SUCCESS");
    assert_eq!(h.balance(&customer), 9_700);
}

#[tokio::test]
async fn micropay_code_problems() {
    let h = start().await;
    let customer = h.customer(10_000);
    let expired = h.code(&customer, Behaviour::Expired);
    assert_err(&h.micropay("E1", "100", &expired).await, "AUTHCODEEXPIRE");
    // A code that timed out on the clock.
    let stale = h.code(&customer, Behaviour::Instant);
    h.advance(61);
    assert_err(&h.micropay("E2", "100", &stale).await, "AUTHCODEEXPIRE");
    let code = h.code(&customer, Behaviour::Instant);
    assert_ok(&h.micropay("U1", "100", &code).await);
    assert_err(&h.micropay("U2", "100", &code).await, "AUTH_CODE_ERROR");
    // Not a WeChat code at all, and a well-formed code nobody minted.
    assert_err(
        &h.micropay("I1", "100", "284123456789012345").await,
        "AUTH_CODE_INVALID",
    );
    assert_err(
        &h.micropay("I2", "100", "134123456789012345").await,
        "AUTH_CODE_INVALID",
    );
    assert_err(
        &h.micropay("I3", "100", "1341234567890").await,
        "AUTH_CODE_INVALID",
    );
    assert_eq!(h.balance(&customer), 9_900);
}

#[tokio::test]
async fn micropay_not_enough() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::InsufficientBalance);
    assert_err(&h.micropay("B1", "100", &code).await, "NOTENOUGH");
    // A real shortfall.
    let poor = h.customer(50);
    let code = h.code(&poor, Behaviour::Instant);
    assert_err(&h.micropay("B2", "100", &code).await, "NOTENOUGH");
    assert_eq!(h.query("B2").await["trade_state"], "PAYERROR");
    assert_eq!(h.balance(&poor), 50);
}

#[tokio::test]
async fn micropay_idempotency_and_conflicts() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Instant);
    assert_ok(&h.micropay("D1", "100", &code).await);
    assert_err(&h.micropay("D1", "100", &code).await, "ORDERPAID");
    assert_err(&h.micropay("D1", "101", &code).await, "OUT_TRADE_NO_USED");
    let other = h.code(&customer, Behaviour::Instant);
    assert_err(&h.micropay("D1", "100", &other).await, "OUT_TRADE_NO_USED");
    assert_eq!(h.balance(&customer), 9_900);
}

#[tokio::test]
async fn micropay_parameter_checks() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Instant);
    let a = h
        .call(
            "/pay/micropay",
            &[
                ("body", "x"),
                ("out_trade_no", "L1"),
                ("total_fee", "100"),
                ("auth_code", &code),
            ],
        )
        .await;
    assert_fail(&a, "spbill_create_ip");
    assert_err(&h.micropay("L1", "0", &code).await, "PARAM_ERROR");
    assert_err(&h.micropay("L1", "1.00", &code).await, "PARAM_ERROR");
    assert_err(&h.micropay("bad no!", "100", &code).await, "PARAM_ERROR");
    assert_err(
        &h.micropay(&"9".repeat(33), "100", &code).await,
        "PARAM_ERROR",
    );
    // None of these used the code.
    assert_ok(&h.micropay("L1", "100", &code).await);
}

// ---------------------------------------------------------------------------------------
// Envelope errors

#[tokio::test]
async fn bad_signatures_are_refused() {
    let h = start().await;
    let mut fields = h.signed(&[("out_trade_no", "X1")], false);
    fields.last_mut().unwrap().1 = "0".repeat(32);
    let (status, a) = h
        .post_raw(
            &h.http,
            &format!("{}/pay/orderquery", h.base()),
            to_xml(&fields),
        )
        .await;
    assert_eq!(status, 200);
    assert_fail(&a, "签名错误");

    // Lower-case hex is not the documented form.
    let mut fields = h.signed(&[("out_trade_no", "X1")], false);
    let lower = fields.last().unwrap().1.to_lowercase();
    fields.last_mut().unwrap().1 = lower;
    let (_, a) = h
        .post_raw(
            &h.http,
            &format!("{}/pay/orderquery", h.base()),
            to_xml(&fields),
        )
        .await;
    assert_fail(&a, "签名错误");

    // An HMAC signature sent without sign_type is checked as MD5, and fails.
    let mut fields = h.signed(&[("out_trade_no", "X1")], true);
    fields.retain(|(k, _)| k != "sign_type");
    let (_, a) = h
        .post_raw(
            &h.http,
            &format!("{}/pay/orderquery", h.base()),
            to_xml(&fields),
        )
        .await;
    assert_fail(&a, "签名错误");

    // A field changed after signing.
    let mut fields = h.signed(&[("out_trade_no", "X1")], false);
    fields[3].1 = "X2".to_owned();
    let (_, a) = h
        .post_raw(
            &h.http,
            &format!("{}/pay/orderquery", h.base()),
            to_xml(&fields),
        )
        .await;
    assert_fail(&a, "签名错误");
}

#[tokio::test]
async fn bad_signature_fault_corrupts_one_answer() {
    let h = start().await;
    h.sandbox
        .with(|s, _, _| s.faults(Wallet::Wechat).bad_signature_next = 1);
    let body = to_xml(&h.signed(&[("out_trade_no", "nothing")], false));
    let (_, a) = h
        .post_raw(&h.http, &format!("{}/pay/orderquery", h.base()), body)
        .await;
    assert_err(&a, "ORDERNOTEXIST");
    assert_eq!(a["sign"].len(), 32);
    assert!(
        !h.sign_ok(&a, false),
        "the fault should have forged the signature"
    );
    // Only once.
    assert_err(&h.query("nothing").await, "ORDERNOTEXIST");
}

#[tokio::test]
async fn malformed_requests_get_fail_xml() {
    let h = start().await;
    let url = format!("{}/pay/micropay", h.base());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "POST_DATA_EMPTY"),
        (b"hello".to_vec(), "XML"),
        (b"<xml><appid>1</appid>".to_vec(), "XML"),
        (
            b"<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><appid>&x;</appid></xml>".to_vec(),
            "DOCTYPE",
        ),
        (b"<xml><appid><b>1</b></appid></xml>".to_vec(), "XML"),
        (vec![0x3c, 0x78, 0x6d, 0x6c, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x78, 0x6d, 0x6c, 0x3e], "NOT_UTF8"),
        (b"<xml><mch_id>1</mch_id></xml>".to_vec(), "appid"),
    ];
    for (body, fragment) in cases {
        let (status, a) = h.post_raw(&h.http, &url, body).await;
        assert_eq!(status, 200);
        assert_fail(&a, fragment);
    }
    // GET is refused in XML too.
    let response = h.http.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let a = xml::parse(&response.text().await.unwrap()).unwrap();
    assert_fail(&a, "REQUIRE_POST_METHOD");
}

#[tokio::test]
async fn unknown_merchant_and_appid() {
    let h = start().await;
    let mut fields = owned(&[
        ("appid", &h.appid),
        ("mch_id", "1999999999"),
        ("nonce_str", "n"),
        ("out_trade_no", "X"),
    ]);
    let sign = test_sign(&fields, &h.key, false);
    fields.push(("sign".to_owned(), sign));
    let (_, a) = h
        .post_raw(
            &h.http,
            &format!("{}/pay/orderquery", h.base()),
            to_xml(&fields),
        )
        .await;
    assert_fail(&a, "MCHID_NOT_EXIST");

    for (appid, code) in [
        ("wx0123456789abcdef", "APPID_MCHID_NOT_MATCH"),
        ("nope", "APPID_NOT_EXIST"),
    ] {
        let mut fields = owned(&[
            ("appid", appid),
            ("mch_id", &h.mch_id),
            ("sub_mch_id", &h.sub_mch_id),
            ("nonce_str", "n"),
            ("out_trade_no", "X"),
        ]);
        let sign = test_sign(&fields, &h.key, false);
        fields.push(("sign".to_owned(), sign));
        let (_, a) = h
            .post_raw(
                &h.http,
                &format!("{}/pay/orderquery", h.base()),
                to_xml(&fields),
            )
            .await;
        assert_err(&a, code);
    }
}

/// Institution mode (`wallets.md` §1.9): a transaction without `sub_mch_id` names no merchant
/// and is refused, so a connector that forgot it cannot pass; the exchange-rate query needs
/// none.
#[tokio::test]
async fn a_transaction_without_sub_mch_id_is_refused() {
    let h = start().await;
    let unsigned = |extra: &[(&str, &str)]| {
        let mut fields = owned(&[
            ("appid", &h.appid),
            ("mch_id", &h.mch_id),
            ("nonce_str", "n"),
        ]);
        fields.extend(owned(extra));
        let sign = test_sign(&fields, &h.key, false);
        fields.push(("sign".to_owned(), sign));
        to_xml(&fields)
    };
    for (path, extra) in [
        ("/pay/orderquery", vec![("out_trade_no", "X")]),
        (
            "/pay/unifiedorder",
            vec![
                ("out_trade_no", "X2"),
                ("body", "Tea"),
                ("total_fee", "100"),
                ("spbill_create_ip", "127.0.0.1"),
                ("notify_url", "http://127.0.0.1:9/n"),
                ("trade_type", "NATIVE"),
            ],
        ),
    ] {
        let (_, a) = h
            .post_raw(&h.http, &format!("{}{path}", h.base()), unsigned(&extra))
            .await;
        assert_err(&a, "PARAM_ERROR");
        assert!(a["err_code_des"].contains("sub_mch_id"), "{path}: {a:?}");
    }
    let (_, a) = h
        .post_raw(
            &h.http,
            &format!("{}/pay/queryexchagerate", h.base()),
            unsigned(&[("fee_type", "CAD"), ("date", "20260101")]),
        )
        .await;
    assert_eq!(a["result_code"], "SUCCESS", "{a:?}");
}

// ---------------------------------------------------------------------------------------
// Reverse and refund over mutual TLS

#[tokio::test]
async fn secapi_over_plain_http_is_refused() {
    let h = start().await;
    for path in ["/secapi/pay/reverse", "/secapi/pay/refund"] {
        let a = h.call(path, &[("out_trade_no", "X")]).await;
        assert_fail(&a, "证书");
    }
}

#[tokio::test]
async fn secapi_over_tls_reverses_and_refunds() {
    let h = start().await;
    let creds = module().credentials(&h.sandbox);
    assert!(creds["secapi_base_url"].is_null());
    let server = serve_secapi(h.sandbox.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let creds = module().credentials(&h.sandbox);
    let secapi = format!("https://127.0.0.1:{}/wechat", server.addr().port());
    assert_eq!(server.base_url(), secapi);
    assert_eq!(creds["secapi_base_url"], secapi.as_str());
    assert_eq!(creds["base_url"], h.base().as_str());
    assert_eq!(creds["sign_type"], "MD5");
    assert_eq!(creds["appid"], h.appid.as_str());
    // The certificates are stable once made.
    assert_eq!(
        module().credentials(&h.sandbox)["client_cert_pem"],
        creds["client_cert_pem"]
    );

    let tls = h.tls_client(true);
    let customer = h.customer(10_000);

    // Reverse a payment waiting for the password: closed, nothing taken.
    let code = h.code(&customer, Behaviour::NeverConfirm);
    assert_err(&h.micropay("R1", "400", &code).await, "USERPAYING");
    let a = h
        .call_on(
            &tls,
            &secapi,
            "/secapi/pay/reverse",
            &[("out_trade_no", "R1")],
            false,
        )
        .await;
    assert_ok(&a);
    assert_eq!(a["recall"], "N");
    assert_eq!(h.query("R1").await["trade_state"], "REVOKED");
    // Again: idempotent.
    assert_ok(
        &h.call_on(
            &tls,
            &secapi,
            "/secapi/pay/reverse",
            &[("out_trade_no", "R1")],
            false,
        )
        .await,
    );

    // Reverse a paid one (by transaction id, HMAC): the money goes back.
    let code = h.code(&customer, Behaviour::Instant);
    let paid = h.micropay("R2", "600", &code).await;
    assert_eq!(h.balance(&customer), 9_400);
    let a = h
        .call_on(
            &tls,
            &secapi,
            "/secapi/pay/reverse",
            &[("transaction_id", &paid["transaction_id"])],
            true,
        )
        .await;
    assert_ok(&a);
    assert_eq!(h.balance(&customer), 10_000);

    // "Call again" once, then it works.
    let code = h.code(&customer, Behaviour::NeverConfirm);
    h.micropay("R3", "100", &code).await;
    h.sandbox
        .with(|s, _, _| s.faults(Wallet::Wechat).reverse_call_again_next = 1);
    let a = h
        .call_on(
            &tls,
            &secapi,
            "/secapi/pay/reverse",
            &[("out_trade_no", "R3")],
            false,
        )
        .await;
    assert_err(&a, "SYSTEMERROR");
    assert_eq!(a["recall"], "Y");
    assert_ok(
        &h.call_on(
            &tls,
            &secapi,
            "/secapi/pay/reverse",
            &[("out_trade_no", "R3")],
            false,
        )
        .await,
    );

    assert_err(
        &h.call_on(
            &tls,
            &secapi,
            "/secapi/pay/reverse",
            &[("out_trade_no", "nope")],
            false,
        )
        .await,
        "ORDERNOTEXIST",
    );

    // Past the 7-day window.
    let code = h.code(&customer, Behaviour::Instant);
    h.micropay("R4", "100", &code).await;
    h.advance(8 * 24 * 3600);
    assert_err(
        &h.call_on(
            &tls,
            &secapi,
            "/secapi/pay/reverse",
            &[("out_trade_no", "R4")],
            false,
        )
        .await,
        "REVERSE_EXPIRE",
    );

    // A refund over TLS, and every other path works on the TLS base too.
    let a = h
        .call_on(
            &tls,
            &secapi,
            "/secapi/pay/refund",
            &[
                ("out_trade_no", "R4"),
                ("out_refund_no", "RF4"),
                ("total_fee", "100"),
                ("refund_fee", "100"),
            ],
            false,
        )
        .await;
    assert_ok(&a);
    assert_eq!(a["cash_refund_fee"], "100");
    let q = h
        .call_on(
            &tls,
            &secapi,
            "/pay/orderquery",
            &[("out_trade_no", "R4")],
            false,
        )
        .await;
    assert_eq!(q["trade_state"], "REFUND");

    // The TLS listener applies the wallet's faults too.
    h.sandbox
        .with(|s, _, _| s.faults(Wallet::Wechat).fail_next = 1);
    let body = to_xml(&h.signed(&[("out_trade_no", "R4")], false));
    let response = tls
        .post(format!("{secapi}/pay/orderquery"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);

    // Without a client certificate the handshake is refused.
    let anonymous = h.tls_client(false);
    let body = to_xml(&h.signed(&[("out_trade_no", "R4")], false));
    assert!(anonymous
        .post(format!("{secapi}/secapi/pay/reverse"))
        .body(body)
        .send()
        .await
        .is_err());

    // A certificate from another CA is refused as well.
    let stranger = {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let ca = reqwest::Certificate::from_pem(creds["ca_cert_pem"].as_str().unwrap().as_bytes())
            .unwrap();
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    };
    let body = to_xml(&h.signed(&[("out_trade_no", "R4")], false));
    assert!(stranger
        .post(format!("{secapi}/secapi/pay/reverse"))
        .body(body)
        .send()
        .await
        .is_err());

    drop(server);
    assert!(module().credentials(&h.sandbox)["secapi_base_url"].is_null());
}

#[tokio::test]
async fn native_orders_cannot_be_reversed() {
    let h = start().await;
    let server = serve_secapi(h.sandbox.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let secapi = format!("https://127.0.0.1:{}/wechat", server.addr().port());
    assert_ok(&h.native("Q-R", "100", "http://127.0.0.1:9/notify").await);
    let a = h
        .call_on(
            &h.tls_client(true),
            &secapi,
            "/secapi/pay/reverse",
            &[("out_trade_no", "Q-R")],
            false,
        )
        .await;
    assert_err(&a, "INVALID_REQUEST");
    assert_eq!(h.query("Q-R").await["trade_state"], "NOTPAY");
}

#[tokio::test]
async fn refunds_partial_full_and_refused() {
    let h = start().await;
    let server = serve_secapi(h.sandbox.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let secapi = format!("https://127.0.0.1:{}/wechat", server.addr().port());
    let tls = h.tls_client(true);
    let refund = |no: &'static str, total: &'static str, fee: &'static str| {
        let (tls, secapi, h) = (&tls, &secapi, &h);
        async move {
            h.call_on(
                tls,
                secapi,
                "/secapi/pay/refund",
                &[
                    ("out_trade_no", "F1"),
                    ("out_refund_no", no),
                    ("total_fee", total),
                    ("refund_fee", fee),
                ],
                false,
            )
            .await
        }
    };
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    // 10.00 CAD = 52.00 CNY.
    let paid = h
        .call(
            "/pay/micropay",
            &[
                ("body", "x"),
                ("out_trade_no", "F1"),
                ("total_fee", "1000"),
                ("fee_type", "CAD"),
                ("spbill_create_ip", "1.1.1.1"),
                ("auth_code", &code),
            ],
        )
        .await;
    assert_ok(&paid);
    assert_eq!(h.balance(&customer), 100_000 - 5200);

    assert_err(
        &h.call("/pay/refundquery", &[("out_trade_no", "F1")]).await,
        "REFUNDNOTEXIST",
    );

    let a = refund("RF-1", "1000", "300").await;
    assert_ok(&a);
    assert_eq!(a["refund_fee"], "300");
    assert_eq!(a["cash_refund_fee"], "1560");
    assert_eq!(a["total_fee"], "1000");
    assert_eq!(a["cash_fee"], "5200");
    assert!(!a["refund_id"].is_empty());
    // Processing first: no money back yet.
    let q = h.call("/pay/refundquery", &[("out_trade_no", "F1")]).await;
    assert_ok(&q);
    assert_eq!(q["refund_count"], "1");
    assert_eq!(q["refund_status_0"], "PROCESSING");
    assert!(!q.contains_key("refund_success_time_0"));
    assert_eq!(h.balance(&customer), 100_000 - 5200);

    // The same refund again is accepted as the same refund; another amount is a mismatch.
    assert_eq!(
        refund("RF-1", "1000", "300").await["refund_id"],
        a["refund_id"]
    );
    assert_err(&refund("RF-1", "1000", "400").await, "REFUND_FEE_MISMATCH");
    // The order amount must be the order's.
    assert_err(&refund("RF-2", "999", "100").await, "REFUND_FEE_MISMATCH");
    // More than the order amount given: refused before anything else.
    assert_fail(&refund("RF-2", "1000", "1001").await, "refund_fee");
    // More than what is left.
    assert_err(&refund("RF-2", "1000", "701").await, "INVALID_REQUEST");

    h.advance(3);
    let q = h
        .call("/pay/refundquery", &[("out_refund_no", "RF-1")])
        .await;
    assert_eq!(q["refund_status_0"], "SUCCESS");
    assert_eq!(q["refund_success_time_0"].len(), 19);
    assert_eq!(h.balance(&customer), 100_000 - 5200 + 1560);

    // The rest: the last refund returns exactly what is left of the CNY paid.
    let a = refund("RF-3", "1000", "700").await;
    assert_ok(&a);
    assert_eq!(a["cash_refund_fee"], "3640");
    assert_err(&refund("RF-4", "1000", "1").await, "ERROR");
    h.advance(3);
    // Refunds settle lazily when touched, or on the background tick.
    h.sandbox.tick().await;
    assert_eq!(h.balance(&customer), 100_000);

    let q = h
        .call(
            "/pay/refundquery",
            &[("transaction_id", &paid["transaction_id"])],
        )
        .await;
    assert_eq!(q["refund_count"], "2");
    assert_eq!(q["refund_fee"], "1000");
    assert_eq!(q["out_refund_no_0"], "RF-1");
    assert_eq!(q["out_refund_no_1"], "RF-3");
    assert_eq!(q["refund_fee_1"], "700");
    assert_eq!(q["refund_status_1"], "SUCCESS");
    let by_id = h
        .call("/pay/refundquery", &[("refund_id", &a["refund_id"])])
        .await;
    assert_eq!(by_id["refund_count"], "1");
    assert_eq!(by_id["out_refund_no_0"], "RF-3");
    assert_eq!(h.query("F1").await["trade_state"], "REFUND");

    // Unknown orders and an order that was never paid.
    let a = h
        .call_on(
            &tls,
            &secapi,
            "/secapi/pay/refund",
            &[
                ("out_trade_no", "none"),
                ("out_refund_no", "Z"),
                ("total_fee", "1"),
                ("refund_fee", "1"),
            ],
            false,
        )
        .await;
    assert_err(&a, "ORDERNOTEXIST");
    assert_ok(&h.native("F2", "100", "http://127.0.0.1:9/notify").await);
    let a = h
        .call_on(
            &tls,
            &secapi,
            "/secapi/pay/refund",
            &[
                ("out_trade_no", "F2"),
                ("out_refund_no", "Z"),
                ("total_fee", "100"),
                ("refund_fee", "1"),
            ],
            false,
        )
        .await;
    assert_err(&a, "ERROR");
    // A refund number already used by another order.
    assert_ok(
        &h.micropay("F3", "100", &h.code(&customer, Behaviour::Instant))
            .await,
    );
    let a = h
        .call_on(
            &tls,
            &secapi,
            "/secapi/pay/refund",
            &[
                ("out_trade_no", "F3"),
                ("out_refund_no", "RF-1"),
                ("total_fee", "100"),
                ("refund_fee", "1"),
            ],
            false,
        )
        .await;
    assert_err(&a, "INVALID_REQUEST");
}

#[tokio::test]
async fn at_most_50_refunds_and_offset_pages() {
    let h = start().await;
    let server = serve_secapi(h.sandbox.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let secapi = format!("https://127.0.0.1:{}/wechat", server.addr().port());
    let tls = h.tls_client(true);
    let customer = h.customer(100_000);
    assert_ok(
        &h.micropay("C1", "100", &h.code(&customer, Behaviour::Instant))
            .await,
    );
    for n in 0..51 {
        let no = format!("C1-{n}");
        let a = h
            .call_on(
                &tls,
                &secapi,
                "/secapi/pay/refund",
                &[
                    ("out_trade_no", "C1"),
                    ("out_refund_no", &no),
                    ("total_fee", "100"),
                    ("refund_fee", "1"),
                ],
                false,
            )
            .await;
        if n < 50 {
            assert_ok(&a);
        } else {
            assert_err(&a, "INVALID_REQUEST");
            assert!(a["err_code_des"].contains("50"), "{a:?}");
        }
    }
    let q = h.call("/pay/refundquery", &[("out_trade_no", "C1")]).await;
    assert_eq!(q["refund_count"], "50");
    assert_eq!(q["out_refund_no_49"], "C1-49");
    let q = h
        .call(
            "/pay/refundquery",
            &[("out_trade_no", "C1"), ("offset", "45")],
        )
        .await;
    assert_eq!(q["refund_count"], "5");
    assert_eq!(q["total_refund_count"], "50");
    assert_eq!(q["out_refund_no_0"], "C1-45");
}

// ---------------------------------------------------------------------------------------
// Native QR orders, close, notifications

/// A merchant endpoint recording notifications; answers FAIL for the first `fail_first`.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<String>>>,
    fail_first: usize,
}

async fn receiver(fail_first: usize) -> (String, Receiver) {
    let state = Receiver {
        bodies: Arc::default(),
        fail_first,
    };
    let app = axum::Router::new()
        .route(
            "/notify",
            axum::routing::post(|axum::extract::State(r): axum::extract::State<Receiver>, body: String| async move {
                let n = {
                    let mut bodies = r.bodies.lock().unwrap();
                    bodies.push(body);
                    bodies.len()
                };
                let code = if n <= r.fail_first { "FAIL" } else { "SUCCESS" };
                format!("<xml><return_code><![CDATA[{code}]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>")
            }),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

impl Receiver {
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let bodies = self.bodies.lock().unwrap().clone();
            if bodies.len() >= n {
                return bodies;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        panic!(
            "expected {n} notifications, got {:?}",
            self.bodies.lock().unwrap()
        );
    }
}

#[tokio::test]
async fn native_order_paid_by_qr_is_queried_and_notified() {
    let h = start().await;
    let (url, rx) = receiver(0).await;
    let a = h.native("Q1", "2500", &url).await;
    assert_ok(&a);
    assert_eq!(a["trade_type"], "NATIVE");
    assert!(
        a["prepay_id"].starts_with("wx") && a["prepay_id"].len() == 36,
        "{a:?}"
    );
    let code_url = a["code_url"].clone();
    assert!(
        code_url.starts_with(&format!("{}/pay/", h.running.url())),
        "{code_url}"
    );
    // The same request again gives the same QR.
    assert_eq!(h.native("Q1", "2500", &url).await["code_url"], code_url);
    assert_err(&h.native("Q1", "2600", &url).await, "OUT_TRADE_NO_USED");

    let q = h.query("Q1").await;
    assert_eq!(q["trade_state"], "NOTPAY");
    assert_eq!(q["trade_type"], "NATIVE");

    // The pay page is served where code_url points.
    let page = h.http.get(&code_url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);

    let customer = h.customer(10_000);
    assert!(matches!(
        h.pay_qr(&code_url, &customer),
        crate::state::PayQrOutcome::Paid(_)
    ));
    let q = h.query("Q1").await;
    assert_eq!(q["trade_state"], "SUCCESS");
    assert_eq!(q["trade_type"], "NATIVE");
    assert_eq!(q["cash_fee"], "2500");
    assert_eq!(h.balance(&customer), 7_500);
    assert_err(&h.native("Q1", "2500", &url).await, "ORDERPAID");

    // The notification: signed MD5 with the API key, carrying the paid order.
    let bodies = rx.wait_for(1).await;
    let n = xml::parse(&bodies[0]).unwrap();
    assert_eq!(n["return_code"], "SUCCESS");
    assert_eq!(n["result_code"], "SUCCESS");
    assert_eq!(n["out_trade_no"], "Q1");
    assert_eq!(n["transaction_id"], q["transaction_id"]);
    assert_eq!(n["total_fee"], "2500");
    assert_eq!(n["openid"], q["openid"]);
    assert!(h.sign_ok(&n, false), "{n:?}");
    let delivered = h
        .sandbox
        .with(|s, _, _| s.notifications.iter().all(|n| n.delivered));
    assert!(delivered);
}

#[tokio::test]
async fn notifications_are_retried_until_acknowledged() {
    let h = start().await;
    let (url, rx) = receiver(2).await;
    let a = h.native("Q2", "100", &url).await;
    let customer = h.customer(10_000);
    h.pay_qr(&a["code_url"], &customer);
    rx.wait_for(1).await;
    // Nothing more before the schedule says so.
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    assert_eq!(rx.bodies.lock().unwrap().len(), 1);
    h.advance(15);
    h.sandbox.tick().await;
    rx.wait_for(2).await;
    h.advance(15);
    h.sandbox.tick().await;
    let bodies = rx.wait_for(3).await;
    let (attempts, delivered) = h
        .sandbox
        .with(|s, _, _| (s.notifications[0].attempts, s.notifications[0].delivered));
    assert!(attempts >= 3 && delivered, "{attempts} {delivered}");
    // Every copy is a valid notification of the same payment.
    for body in &bodies {
        let n = xml::parse(body).unwrap();
        assert_eq!(n["out_trade_no"], "Q2");
        assert!(h.sign_ok(&n, false));
    }
}

#[tokio::test]
async fn forged_notifications_carry_a_wrong_signature() {
    let h = start().await;
    let customer = h.customer(10_000);
    let code = h.code(&customer, Behaviour::Instant);
    h.micropay("G1", "100", &code).await;
    let trade = h
        .sandbox
        .with(|s, _, now| s.trade(Wallet::Wechat, &h.mch_id, "G1", now))
        .unwrap();
    let (content_type, body) = WechatModule
        .notification(&h.sandbox, &trade, false)
        .unwrap();
    assert_eq!(content_type, "text/xml");
    assert!(h.sign_ok(
        &xml::parse(std::str::from_utf8(&body).unwrap()).unwrap(),
        false
    ));
    let (_, forged) = WechatModule.notification(&h.sandbox, &trade, true).unwrap();
    assert!(!h.sign_ok(
        &xml::parse(std::str::from_utf8(&forged).unwrap()).unwrap(),
        false
    ));
}

#[tokio::test]
async fn unifiedorder_parameter_checks() {
    let h = start().await;
    let base = [
        ("body", "Tea"),
        ("out_trade_no", "V1"),
        ("total_fee", "100"),
        ("spbill_create_ip", "1.1.1.1"),
        ("notify_url", "http://127.0.0.1:9/n"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut f = base.to_vec();
        f.extend_from_slice(extra);
        f
    };
    assert_err(
        &h.call("/pay/unifiedorder", &with(&[("trade_type", "JSAPI")]))
            .await,
        "NOAUTH",
    );
    assert_err(
        &h.call("/pay/unifiedorder", &with(&[("trade_type", "BOGUS")]))
            .await,
        "PARAM_ERROR",
    );
    assert_fail(
        &h.call("/pay/unifiedorder", &with(&[("trade_type", "NATIVE")]))
            .await,
        "product_id",
    );
    let mut no_notify = with(&[("trade_type", "NATIVE"), ("product_id", "P")]);
    no_notify.retain(|(k, _)| *k != "notify_url");
    assert_fail(&h.call("/pay/unifiedorder", &no_notify).await, "notify_url");
    let mut query_string = with(&[("trade_type", "NATIVE"), ("product_id", "P")]);
    query_string[4].1 = "http://127.0.0.1:9/n?x=1";
    assert_err(
        &h.call("/pay/unifiedorder", &query_string).await,
        "PARAM_ERROR",
    );

    // time_expire: at least a minute ahead, Beijing time.
    let soon = api::beijing_stamp(h.sandbox.now() + Duration::seconds(30));
    let later = api::beijing_stamp(h.sandbox.now() + Duration::minutes(10));
    let mut f = with(&[("trade_type", "NATIVE"), ("product_id", "P")]);
    f.push(("time_expire", Box::leak(soon.into_boxed_str())));
    assert_err(&h.call("/pay/unifiedorder", &f).await, "PARAM_ERROR");
    let mut f = with(&[("trade_type", "NATIVE"), ("product_id", "P")]);
    f.push(("time_expire", Box::leak(later.into_boxed_str())));
    assert_ok(&h.call("/pay/unifiedorder", &f).await);
    h.advance(11 * 60);
    assert_eq!(h.query("V1").await["trade_state"], "CLOSED");
}

#[tokio::test]
async fn closeorder_waits_five_minutes() {
    let h = start().await;
    assert_ok(&h.native("K1", "100", "http://127.0.0.1:9/n").await);
    let close = |no: &'static str| {
        let h = &h;
        async move { h.call("/pay/closeorder", &[("out_trade_no", no)]).await }
    };
    assert_err(&close("K1").await, "INVALID_REQUEST");
    assert_eq!(h.query("K1").await["trade_state"], "NOTPAY");
    h.advance(5 * 60);
    let a = close("K1").await;
    assert_ok(&a);
    assert_eq!(h.query("K1").await["trade_state"], "CLOSED");
    assert_err(&close("K1").await, "ORDERCLOSED");
    assert_err(&close("none").await, "ORDERNOTEXIST");

    // A paid order cannot be closed, however early or late.
    let a = h.native("K2", "100", "http://127.0.0.1:9/n").await;
    let customer = h.customer(1_000);
    h.pay_qr(&a["code_url"], &customer);
    assert_err(&close("K2").await, "ORDERPAID");
    h.advance(5 * 60);
    assert_err(&close("K2").await, "ORDERPAID");
    // A closed QR can no longer be paid.
    let status = h.sandbox.with(|s, _, now| {
        s.trade(Wallet::Wechat, &h.mch_id, "K1", now)
            .unwrap()
            .status
    });
    assert_eq!(status, TradeStatus::Closed);
}

#[tokio::test]
async fn exchange_rate_query() {
    let h = start().await;
    let a = h
        .call(
            "/pay/queryexchagerate",
            &[("fee_type", "USD"), ("date", "20240105")],
        )
        .await;
    assert_ok(&a);
    assert_eq!(a["rate"], "710000000");
    assert_eq!(a["rate_time"], "20240105");
    assert_err(
        &h.call(
            "/pay/queryexchagerate",
            &[("fee_type", "XYZ"), ("date", "20240105")],
        )
        .await,
        "PARAM_ERROR",
    );
    assert_err(
        &h.call(
            "/pay/queryexchagerate",
            &[("fee_type", "USD"), ("date", "2024-01-05")],
        )
        .await,
        "PARAM_ERROR",
    );
}

#[tokio::test]
async fn certificates_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("qrgate-wechat-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = SandboxConfig {
        seed: 7,
        state_dir: Some(dir.clone()),
        ..Default::default()
    };
    let first = Sandbox::new(config.clone(), vec![module()]).unwrap();
    let before = module().credentials(&first);
    assert!(before["ca_cert_pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(before["client_key_pem"]
        .as_str()
        .unwrap()
        .contains("PRIVATE KEY"));
    first.persist().unwrap();
    drop(first);
    let second = Sandbox::new(config, vec![module()]).unwrap();
    let after = module().credentials(&second);
    for k in [
        "appid",
        "mch_id",
        "api_key",
        "ca_cert_pem",
        "client_cert_pem",
        "client_key_pem",
    ] {
        assert_eq!(before[k], after[k], "{k}");
    }
    // The restarted sandbox serves TLS with the stored certificates.
    let server = serve_secapi(second.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        module().credentials(&second)["secapi_base_url"],
        server.base_url()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

mod bill_http;
