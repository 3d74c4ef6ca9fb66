//! Tests of the simulated UnionPay over real HTTP, in process: a sandbox on 127.0.0.1:0,
//! customers and codes made through the core, and a small test-side ACP client — its own
//! string-to-sign, request signing, answer verification and certificate-chain check
//! (deliberately not the module's) — speaking to it. A local axum receiver stands in for
//! the merchant's `backUrl`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::module;
use crate::model::{Behaviour, TradeStatus, Wallet};
use crate::test_rsa::{TestKey, TestPublicKey};
use crate::{RunningSandbox, Sandbox, SandboxConfig};

type Fields = BTreeMap<String, String>;

// ---------------------------------------------------------------------------------------
// The test-side ACP client

/// Sorted non-empty fields except `signature`, `k=v&…`.
fn client_string(fields: &Fields) -> String {
    let mut parts = Vec::new();
    for (k, v) in fields {
        if k != "signature" && !v.is_empty() {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join("&")
}

fn client_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn client_sign(key: &TestKey, fields: &Fields) -> String {
    let digest = client_digest(&client_string(fields));
    BASE64.encode(key.sign(digest.as_bytes()))
}

fn client_verify(key: &TestPublicKey, fields: &Fields) -> bool {
    let Some(Ok(signature)) = fields.get("signature").map(|s| BASE64.decode(s)) else {
        return false;
    };
    let digest = client_digest(&client_string(fields));
    key.verify(digest.as_bytes(), &signature)
}

/// A test-side X.509 reader: just enough to check a certificate against its issuer.
struct TestCert {
    tbs: Vec<u8>,
    signature_oid: Vec<u8>,
    signature: Vec<u8>,
    issuer: Vec<u8>,
    subject: Vec<u8>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    spki: Vec<u8>,
}

/// (tag, content, whole element, rest)
fn tlv(input: &[u8]) -> (u8, &[u8], &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = if input[1] < 0x80 {
        (usize::from(input[1]), 2)
    } else {
        let n = usize::from(input[1] & 0x7f);
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| acc * 256 + usize::from(*b));
        (len, 2 + n)
    };
    (
        tag,
        &input[header..header + len],
        &input[..header + len],
        &input[header + len..],
    )
}

fn test_time(tag: u8, content: &[u8]) -> DateTime<Utc> {
    let text = std::str::from_utf8(content).unwrap().trim_end_matches('Z');
    let full = if tag == 0x17 {
        // UTCTime: two-digit years, 50–99 meaning 19xx.
        let yy: u32 = text[..2].parse().unwrap();
        format!("{}{text}", if yy >= 50 { "19" } else { "20" })
    } else {
        text.to_owned()
    };
    NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S")
        .unwrap()
        .and_utc()
}

impl TestCert {
    fn from_pem(pem: &str) -> TestCert {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = BASE64.decode(body).unwrap();
        let (_, cert, _, _) = tlv(&der);
        let (_, tbs_content, tbs, rest) = tlv(cert);
        let (_, alg, _, rest) = tlv(rest);
        let (_, oid, _, _) = tlv(alg);
        let (_, bits, _, _) = tlv(rest);
        // [0] version, serial, signature algorithm, issuer, validity, subject, spki.
        let (_, _, _, r) = tlv(tbs_content);
        let (_, _, _, r) = tlv(r);
        let (_, _, _, r) = tlv(r);
        let (_, _, issuer, r) = tlv(r);
        let (_, validity, _, r) = tlv(r);
        let (_, _, subject, r) = tlv(r);
        let (_, _, spki, _) = tlv(r);
        let (t1, nb, _, vr) = tlv(validity);
        let (t2, na, _, _) = tlv(vr);
        TestCert {
            tbs: tbs.to_vec(),
            signature_oid: oid.to_vec(),
            signature: bits[1..].to_vec(),
            issuer: issuer.to_vec(),
            subject: subject.to_vec(),
            not_before: test_time(t1, nb),
            not_after: test_time(t2, na),
            spki: spki.to_vec(),
        }
    }

    fn public_key(&self) -> TestPublicKey {
        TestPublicKey::from_spki_der(&self.spki)
    }

    /// Issued by `issuer` (names match, sha256WithRSA signature verifies) and valid now.
    fn issued_by(&self, issuer: &TestCert) -> Result<(), String> {
        if self.issuer != issuer.subject {
            return Err("issuer name is not the root's subject".into());
        }
        // 1.2.840.113549.1.1.11 sha256WithRSAEncryption
        if self.signature_oid != [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b] {
            return Err("not sha256WithRSAEncryption".into());
        }
        if !issuer.public_key().verify(&self.tbs, &self.signature) {
            return Err("the certificate's signature does not verify".into());
        }
        let now = Utc::now();
        if now < self.not_before || now > self.not_after {
            return Err("outside the validity period".into());
        }
        Ok(())
    }
}

/// An answer, parsed, with whether its signature verified through a certificate chaining
/// to the root.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    raw: String,
    fields: Fields,
    verified: Result<(), String>,
}

impl Reply {
    fn get(&self, key: &str) -> &str {
        self.fields.get(key).map(String::as_str).unwrap_or_default()
    }

    fn code(&self) -> &str {
        self.get("respCode")
    }

    /// The answer carries `code` and is correctly signed.
    #[track_caller]
    fn expect(&self, code: &str) -> &Reply {
        assert_eq!(self.status, 200, "{}", self.raw);
        assert_eq!(self.code(), code, "{}", self.raw);
        assert_eq!(self.verified, Ok(()), "{}", self.raw);
        assert!(
            self.content_type
                .starts_with("application/x-www-form-urlencoded"),
            "{}",
            self.content_type
        );
        self
    }

    /// A query answer: respCode 00 and this origRespCode.
    #[track_caller]
    fn expect_orig(&self, orig: &str) -> &Reply {
        self.expect("00");
        assert_eq!(self.get("origRespCode"), orig, "{}", self.raw);
        self
    }
}

fn parse_answer(text: &str) -> Fields {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

fn verify_answer(root_pem: &str, fields: &Fields) -> Result<(), String> {
    let cert_pem = fields.get("signPubKeyCert").ok_or("no signPubKeyCert")?;
    let cert = TestCert::from_pem(cert_pem);
    let root = TestCert::from_pem(root_pem);
    root.issued_by(&root)?;
    cert.issued_by(&root)?;
    if client_verify(&cert.public_key(), fields) {
        Ok(())
    } else {
        Err("the answer's signature does not verify".into())
    }
}

struct Harness {
    running: RunningSandbox,
    sandbox: Sandbox,
    http: reqwest::Client,
    base_url: String,
    mer_id: String,
    cert_id: String,
    merchant_key: TestKey,
    root_cert_pem: String,
    next_order: AtomicU32,
}

async fn start() -> Harness {
    start_with(SandboxConfig {
        seed: 7,
        ..Default::default()
    })
    .await
}

async fn start_with(config: SandboxConfig) -> Harness {
    let sandbox = Sandbox::new(config, vec![module()]).unwrap();
    let running = sandbox
        .clone()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let credentials = sandbox
        .module(Wallet::Unionpay)
        .unwrap()
        .credentials(&sandbox);
    let text = |k: &str| credentials[k].as_str().unwrap().to_owned();
    Harness {
        base_url: text("base_url"),
        mer_id: text("mer_id"),
        cert_id: text("cert_id"),
        merchant_key: TestKey::from_pkcs8_pem(&text("merchant_private_key_pem")),
        root_cert_pem: text("root_cert_pem"),
        running,
        sandbox,
        http: reqwest::Client::new(),
        next_order: AtomicU32::new(1),
    }
}

fn beijing_now() -> String {
    (Utc::now() + Duration::hours(8))
        .format("%Y%m%d%H%M%S")
        .to_string()
}

const BACK: &str = "/gateway/api/backTransReq.do";
const QUERY: &str = "/gateway/api/queryTrans.do";

impl Harness {
    async fn stop(self) {
        self.running.stop().await;
    }

    fn order_id(&self) -> String {
        format!("QRG{:08}", self.next_order.fetch_add(1, Ordering::SeqCst))
    }

    /// The common fields of a request, unsigned.
    fn base(&self, txn_type: &str, sub: &str, order_id: &str, txn_time: &str) -> Fields {
        let mut f = Fields::new();
        for (k, v) in [
            ("version", "5.1.0"),
            ("encoding", "utf-8"),
            ("signMethod", "01"),
            ("certId", self.cert_id.as_str()),
            ("txnType", txn_type),
            ("txnSubType", sub),
            ("bizType", "000000"),
            ("accessType", "0"),
            ("channelType", "08"),
            ("merId", self.mer_id.as_str()),
            ("orderId", order_id),
            ("txnTime", txn_time),
        ] {
            f.insert(k.to_owned(), v.to_owned());
        }
        f
    }

    fn signed(&self, mut fields: Fields) -> Fields {
        let signature = client_sign(&self.merchant_key, &fields);
        fields.insert("signature".to_owned(), signature);
        fields
    }

    async fn post_raw(&self, path: &str, body: Vec<u8>) -> Reply {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=UTF-8",
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let raw = response.text().await.unwrap();
        let fields = parse_answer(&raw);
        let verified = verify_answer(&self.root_cert_pem, &fields);
        Reply {
            status,
            content_type,
            raw,
            fields,
            verified,
        }
    }

    async fn post(&self, path: &str, fields: Fields) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.signed(fields).iter())
            .finish();
        self.post_raw(path, body.into_bytes()).await
    }

    fn consume_fields(
        &self,
        order_id: &str,
        txn_time: &str,
        code: &str,
        amount: i64,
        currency: &str,
    ) -> Fields {
        let mut f = self.base("01", "06", order_id, txn_time);
        f.insert("qrNo".to_owned(), code.to_owned());
        f.insert("txnAmt".to_owned(), amount.to_string());
        f.insert("currencyCode".to_owned(), currency.to_owned());
        f.insert("backUrl".to_owned(), "http://127.0.0.1:9/unused".to_owned());
        f.insert("termId".to_owned(), "T0000001".to_owned());
        f
    }

    /// A consume in CNY; returns the answer, the orderId and the txnTime.
    async fn consume(&self, code: &str, amount: i64) -> (Reply, String, String) {
        let order_id = self.order_id();
        let txn_time = beijing_now();
        let reply = self
            .post(
                BACK,
                self.consume_fields(&order_id, &txn_time, code, amount, "156"),
            )
            .await;
        (reply, order_id, txn_time)
    }

    async fn query(&self, order_id: &str, txn_time: &str) -> Reply {
        let mut f = self.base("00", "00", order_id, txn_time);
        // The ACP query names no channel.
        f.remove("channelType");
        self.post(QUERY, f).await
    }

    async fn cancel(&self, orig_qry_id: &str, amount: i64) -> (Reply, String, String) {
        let order_id = self.order_id();
        let txn_time = beijing_now();
        let mut f = self.base("31", "00", &order_id, &txn_time);
        f.insert("origQryId".to_owned(), orig_qry_id.to_owned());
        f.insert("txnAmt".to_owned(), amount.to_string());
        (self.post(BACK, f).await, order_id, txn_time)
    }

    fn refund_fields(
        &self,
        order_id: &str,
        txn_time: &str,
        orig_qry_id: &str,
        amount: i64,
    ) -> Fields {
        let mut f = self.base("04", "00", order_id, txn_time);
        f.insert("origQryId".to_owned(), orig_qry_id.to_owned());
        f.insert("txnAmt".to_owned(), amount.to_string());
        f.insert("currencyCode".to_owned(), "156".to_owned());
        f
    }

    async fn refund(&self, orig_qry_id: &str, amount: i64) -> (Reply, String, String) {
        let order_id = self.order_id();
        let txn_time = beijing_now();
        let f = self.refund_fields(&order_id, &txn_time, orig_qry_id, amount);
        (self.post(BACK, f).await, order_id, txn_time)
    }

    fn customer(&self, balance_fen: i64) -> String {
        self.sandbox
            .with(|s, _, now| s.add_customer("Test", balance_fen, now).id)
    }

    fn code(&self, customer: &str, behaviour: Behaviour) -> String {
        self.sandbox
            .with(|s, rng, now| {
                s.mint_code(
                    rng,
                    Wallet::Unionpay,
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
            .with(|s, _, _| s.customers.get(customer).map(|c| c.balance_fen))
            .unwrap()
    }

    fn advance(&self, seconds: i64) {
        self.sandbox.clock().advance(Duration::seconds(seconds));
    }
}

// ---------------------------------------------------------------------------------------
// A merchant's backUrl

#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<(String, String)>>>,
    /// The status it answers (0 = 200).
    status: Arc<AtomicU16>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    r.bodies.lock().unwrap().push((content_type, body));
    match r.status.load(Ordering::SeqCst) {
        0 => StatusCode::OK,
        s => StatusCode::from_u16(s).unwrap(),
    }
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/notify", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (receiver, url)
}

impl Receiver {
    fn count(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    async fn wait_for(&self, n: usize) {
        for _ in 0..100 {
            if self.count() >= n {
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        panic!("expected {n} notifications, got {}", self.count());
    }

    fn last(&self) -> (String, Fields) {
        let bodies = self.bodies.lock().unwrap();
        let (content_type, body) = bodies.last().unwrap();
        (content_type.clone(), parse_answer(body))
    }
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn vector_8_with_the_test_signer() {
    let mut f = Fields::new();
    for (k, v) in [
        ("version", "5.1.0"),
        ("encoding", "utf-8"),
        ("txnType", "01"),
        ("txnSubType", "06"),
        ("bizType", "000000"),
    ] {
        f.insert(k.to_owned(), v.to_owned());
    }
    let text = client_string(&f);
    assert_eq!(
        text,
        "bizType=000000&encoding=utf-8&txnSubType=06&txnType=01&version=5.1.0"
    );
    assert_eq!(
        client_digest(&text),
        "45a01fa62a785e6689d2f8a25b597e3d42a00934eb53035244fd63eef5ac7ea4"
    );
    // The module's own signer agrees with the test-side one.
    let signer = super::pki::read_private_key(super::pki::MERCHANT_KEY_PEM).unwrap();
    assert_eq!(
        super::sign::sign(&signer, &f).unwrap(),
        client_sign(&TestKey::from_pkcs8_pem(super::pki::MERCHANT_KEY_PEM), &f)
    );
}

#[tokio::test]
async fn credentials_and_pki() {
    let h = start().await;
    let c = h
        .sandbox
        .module(Wallet::Unionpay)
        .unwrap()
        .credentials(&h.sandbox);
    assert_eq!(c["signing_cert_owner"], "00040000:SIGN");
    assert!(h.base_url.starts_with("http://127.0.0.1:"));
    assert!(h.base_url.ends_with("/unionpay"));
    assert_eq!(h.mer_id.len(), 15);
    assert!(h.mer_id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(h.cert_id, "73840215968");
    // The merchant certificate chains to the root and holds the merchant key.
    let root = TestCert::from_pem(&h.root_cert_pem);
    let merchant = TestCert::from_pem(super::pki::MERCHANT_CERT_PEM);
    merchant.issued_by(&root).unwrap();
    assert_eq!(
        merchant.public_key(),
        TestPublicKey(h.merchant_key.public_pkcs1())
    );
    // The same seed, the same merchant.
    let again = start().await;
    assert_eq!(again.mer_id, h.mer_id);
    let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "base_url",
        "mer_id",
        "cert_id",
        "merchant_private_key_pem",
        "root_cert_pem",
        "signing_cert_owner",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert!(matches!(c["merchant_private_key_pem"], Value::String(_)));
}

#[tokio::test]
async fn consume_instant_debits_and_queries_paid() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let (reply, order_id, txn_time) = h.consume(&code, 1234).await;
    reply.expect("00");
    let query_id = reply.get("queryId").to_owned();
    assert_eq!(query_id.len(), 21);
    assert_eq!(reply.get("orderId"), order_id);
    assert_eq!(reply.get("txnTime"), txn_time);
    assert_eq!(reply.get("merId"), h.mer_id);
    assert_eq!(reply.get("termId"), "T0000001");
    assert_eq!(h.balance(&customer), 100_000 - 1234);

    let q = h.query(&order_id, &txn_time).await;
    q.expect_orig("00");
    assert_eq!(q.get("queryId"), query_id);
    assert_eq!(q.get("txnAmt"), "1234");
    assert_eq!(q.get("currencyCode"), "156");
    assert_eq!(q.get("settleAmt"), "1234");
    assert_eq!(q.get("settleCurrencyCode"), "156");
    assert_eq!(q.get("exchangeRate"), "100000000");
    assert_eq!(q.get("txnType"), "01");
    assert_eq!(q.get("txnSubType"), "06");
    assert_eq!(q.get("traceTime").len(), 10);
}

#[tokio::test]
async fn consume_in_cad_settles_in_cny() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let order_id = h.order_id();
    let txn_time = beijing_now();
    h.post(
        BACK,
        h.consume_fields(&order_id, &txn_time, &code, 1000, "124"),
    )
    .await
    .expect("00");
    // 10.00 CAD at the sandbox's 5.2 = 52.00 CNY.
    assert_eq!(h.balance(&customer), 100_000 - 5200);
    let q = h.query(&order_id, &txn_time).await;
    q.expect_orig("00");
    assert_eq!(q.get("currencyCode"), "124");
    assert_eq!(q.get("txnAmt"), "1000");
    assert_eq!(q.get("settleAmt"), "5200");
    assert_eq!(q.get("exchangeRate"), "520000000");

    // Unsupported and malformed currencies.
    let code = h.code(&customer, Behaviour::Instant);
    let r = h
        .post(
            BACK,
            h.consume_fields(&h.order_id(), &txn_time, &code, 100, "978"),
        )
        .await;
    r.expect("30");
    let r = h
        .post(
            BACK,
            h.consume_fields(&h.order_id(), &txn_time, &code, 100, "CNY"),
        )
        .await;
    r.expect("10");
    let r = h
        .post(
            BACK,
            h.consume_fields(&h.order_id(), &txn_time, &code, 0, "156"),
        )
        .await;
    r.expect("10");
    let r = h
        .post(
            BACK,
            h.consume_fields(&h.order_id(), &txn_time, &code, -5, "156"),
        )
        .await;
    r.expect("10");
}

#[tokio::test]
async fn password_then_paid_after_the_clock_moves() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Password { after_secs: 10 });
    let (reply, order_id, txn_time) = h.consume(&code, 500).await;
    reply.expect("05");
    let query_id = reply.get("queryId").to_owned();
    assert!(!query_id.is_empty());
    assert_eq!(h.balance(&customer), 100_000);
    h.query(&order_id, &txn_time).await.expect_orig("05");
    h.advance(11);
    let q = h.query(&order_id, &txn_time).await;
    q.expect_orig("00");
    assert_eq!(q.get("queryId"), query_id);
    assert_eq!(h.balance(&customer), 100_000 - 500);
}

#[tokio::test]
async fn never_confirmed_is_revoked_after_60_seconds() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::NeverConfirm);
    let (reply, order_id, txn_time) = h.consume(&code, 500).await;
    reply.expect("05");
    h.advance(30);
    h.query(&order_id, &txn_time).await.expect_orig("05");
    h.advance(31);
    h.query(&order_id, &txn_time).await.expect_orig("31");
    assert_eq!(h.balance(&customer), 100_000);
}

#[tokio::test]
async fn system_error_answers_03_but_the_consume_is_paid() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::SystemError);
    let (reply, order_id, txn_time) = h.consume(&code, 700).await;
    reply.expect("03");
    h.query(&order_id, &txn_time).await.expect_orig("00");
    assert_eq!(h.balance(&customer), 100_000 - 700);
    // A resend of the same consume now answers paid, idempotently.
    let again = h
        .post(
            BACK,
            h.consume_fields(&order_id, &txn_time, &code, 700, "156"),
        )
        .await;
    again.expect("00");
    assert_eq!(again.get("queryId"), reply.get("queryId"));
    assert_eq!(h.balance(&customer), 100_000 - 700);
}

#[tokio::test]
async fn timeouts_never_answer() {
    let h = start().await;
    let customer = h.customer(100_000);
    for (paid, expected) in [(true, Some("00")), (false, None)] {
        let code = h.code(&customer, Behaviour::Timeout { paid });
        let order_id = h.order_id();
        let txn_time = beijing_now();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                h.signed(h.consume_fields(&order_id, &txn_time, &code, 300, "156"))
                    .iter(),
            )
            .finish();
        let result = h
            .http
            .post(format!("{}{BACK}", h.base_url))
            .timeout(StdDuration::from_millis(1500))
            .body(body)
            .send()
            .await;
        assert!(result.is_err_and(|e| e.is_timeout()));
        let q = h.query(&order_id, &txn_time).await;
        match expected {
            Some(orig) => {
                q.expect_orig(orig);
            }
            // Lost before UnionPay: the order does not exist.
            None => {
                q.expect("34");
            }
        }
    }
    assert_eq!(h.balance(&customer), 100_000 - 300);
}

#[tokio::test]
async fn declined_codes() {
    let h = start().await;
    let customer = h.customer(100_000);

    let expired = h.code(&customer, Behaviour::Expired);
    let (reply, order_id, txn_time) = h.consume(&expired, 100).await;
    reply.expect("64");
    assert_eq!(reply.get("queryId"), "");
    h.query(&order_id, &txn_time).await.expect_orig("64");
    // The same consume again: the same answer.
    h.post(
        BACK,
        h.consume_fields(&order_id, &txn_time, &expired, 100, "156"),
    )
    .await
    .expect("64");

    let used = h.code(&customer, Behaviour::Instant);
    h.consume(&used, 100).await.0.expect("00");
    let (reply, order_id, txn_time) = h.consume(&used, 100).await;
    reply.expect("61");
    h.query(&order_id, &txn_time).await.expect_orig("61");

    // Not a UnionPay code, never minted, another wallet's code.
    h.consume("123456", 100).await.0.expect("61");
    h.consume("6200000000000000000", 100).await.0.expect("61");
    let wechat = h
        .sandbox
        .with(|s, rng, now| {
            s.mint_code(
                rng,
                Wallet::Wechat,
                &customer,
                Behaviour::Instant,
                Duration::seconds(60),
                now,
            )
        })
        .unwrap()
        .code;
    h.consume(&wechat, 100).await.0.expect("61");
    assert_eq!(h.balance(&customer), 100_000 - 100);
}

#[tokio::test]
async fn insufficient_balance() {
    let h = start().await;
    let rich = h.customer(100_000);
    let code = h.code(&rich, Behaviour::InsufficientBalance);
    let (reply, order_id, txn_time) = h.consume(&code, 100).await;
    reply.expect("65");
    h.query(&order_id, &txn_time).await.expect_orig("65");
    assert_eq!(h.balance(&rich), 100_000);

    let poor = h.customer(50);
    let code = h.code(&poor, Behaviour::Instant);
    h.consume(&code, 100).await.0.expect("65");
    assert_eq!(h.balance(&poor), 50);
}

#[tokio::test]
async fn duplicate_order_ids() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let (reply, order_id, txn_time) = h.consume(&code, 100).await;
    reply.expect("00");
    // Same content: the same paid order.
    let again = h
        .post(
            BACK,
            h.consume_fields(&order_id, &txn_time, &code, 100, "156"),
        )
        .await;
    again.expect("00");
    assert_eq!(again.get("queryId"), reply.get("queryId"));
    // Other content, other txnTime, another transaction with that orderId.
    let other = h.code(&customer, Behaviour::Instant);
    h.post(
        BACK,
        h.consume_fields(&order_id, &txn_time, &other, 100, "156"),
    )
    .await
    .expect("12");
    h.post(
        BACK,
        h.consume_fields(&order_id, &txn_time, &code, 101, "156"),
    )
    .await
    .expect("12");
    h.post(
        BACK,
        h.consume_fields(&order_id, "20250101000000", &code, 100, "156"),
    )
    .await
    .expect("12");
    let refund = h.refund_fields(&order_id, &txn_time, reply.get("queryId"), 10);
    h.post(BACK, refund).await.expect("12");
    assert_eq!(h.balance(&customer), 100_000 - 100);
}

#[tokio::test]
async fn apply_qr_paid_by_a_customer_and_notified() {
    let h = start().await;
    let (receiver, url) = start_receiver().await;
    let customer = h.customer(100_000);
    let order_id = h.order_id();
    let txn_time = beijing_now();
    let mut f = h.base("01", "07", &order_id, &txn_time);
    f.insert("txnAmt".to_owned(), "2500".to_owned());
    f.insert("currencyCode".to_owned(), "156".to_owned());
    f.insert("backUrl".to_owned(), url.clone());
    f.insert("reqReserved".to_owned(), "r=1&x y".to_owned());
    let reply = h.post(BACK, f.clone()).await;
    reply.expect("00");
    assert_eq!(reply.get("reqReserved"), "r=1&x y");
    let qr_code = reply.get("qrCode").to_owned();
    let prefix = format!("{}/pay/", h.base_url.trim_end_matches("/unionpay"));
    assert!(qr_code.starts_with(&prefix), "{qr_code}");
    // A resend gets the same QR.
    assert_eq!(h.post(BACK, f).await.expect("00").get("qrCode"), qr_code);
    h.query(&order_id, &txn_time).await.expect_orig("05");

    let token = qr_code.rsplit('/').next().unwrap().to_owned();
    let paid = h.sandbox.with(|s, _, now| s.pay_qr(&token, &customer, now));
    assert!(matches!(paid, crate::state::PayQrOutcome::Paid(_)));
    assert_eq!(h.balance(&customer), 100_000 - 2500);

    receiver.wait_for(1).await;
    let (content_type, n) = receiver.last();
    assert_eq!(
        content_type,
        "application/x-www-form-urlencoded;charset=UTF-8"
    );
    assert_eq!(verify_answer(&h.root_cert_pem, &n), Ok(()));
    assert_eq!(n["respCode"], "00");
    assert_eq!(n["orderId"], order_id);
    assert_eq!(n["txnTime"], txn_time);
    assert_eq!(n["merId"], h.mer_id);
    assert_eq!(n["txnType"], "01");
    assert_eq!(n["txnSubType"], "07");
    assert_eq!(n["txnAmt"], "2500");
    assert_eq!(n["currencyCode"], "156");
    assert_eq!(n["settleAmt"], "2500");
    assert_eq!(n["settleCurrencyCode"], "156");
    assert_eq!(n["exchangeRate"], "100000000");
    assert!(!n["traceTime"].is_empty());

    let q = h.query(&order_id, &txn_time).await;
    q.expect_orig("00");
    assert_eq!(q.get("queryId"), n["queryId"]);
    assert_eq!(q.get("txnSubType"), "07");
    let delivered = h.sandbox.with(|s, _, _| s.notifications[0].delivered);
    assert!(delivered);

    // Paying it again is refused; the same apply now answers with the same (paid) QR.
    let again = h.sandbox.with(|s, _, now| s.pay_qr(&token, &customer, now));
    assert!(matches!(again, crate::state::PayQrOutcome::AlreadyPaid(_)));
}

#[tokio::test]
async fn notifications_are_retried_until_200_and_can_be_forged() {
    let h = start().await;
    let (receiver, url) = start_receiver().await;
    receiver.status.store(500, Ordering::SeqCst);
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let order_id = h.order_id();
    let txn_time = beijing_now();
    let mut f = h.consume_fields(&order_id, &txn_time, &code, 100, "156");
    f.insert("backUrl".to_owned(), url.clone());
    h.post(BACK, f).await.expect("00");
    receiver.wait_for(1).await;
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    // Not acknowledged, and not resent before the schedule's first gap.
    assert_eq!(receiver.count(), 1);
    let delivered = h.sandbox.with(|s, _, _| s.notifications[0].delivered);
    assert!(!delivered);

    receiver.status.store(0, Ordering::SeqCst);
    h.advance(60);
    h.sandbox.tick().await;
    receiver.wait_for(2).await;
    let (attempts, delivered) = h
        .sandbox
        .with(|s, _, _| (s.notifications[0].attempts, s.notifications[0].delivered));
    assert!(delivered);
    assert!(attempts >= 2);
    let (_, n) = receiver.last();
    assert_eq!(verify_answer(&h.root_cert_pem, &n), Ok(()));
    assert_eq!(n["txnSubType"], "06");

    // With the fault, delivered notifications carry a signature that does not verify.
    h.sandbox
        .with(|s, _, _| s.faults(Wallet::Unionpay).forged_notifications = true);
    let code = h.code(&customer, Behaviour::Instant);
    let mut f = h.consume_fields(&h.order_id(), &txn_time, &code, 100, "156");
    f.insert("backUrl".to_owned(), url);
    let before = receiver.count();
    h.post(BACK, f).await.expect("00");
    receiver.wait_for(before + 1).await;
    let (_, forged) = receiver.last();
    assert_eq!(forged["respCode"], "00");
    assert!(verify_answer(&h.root_cert_pem, &forged).is_err());

    let module = h.sandbox.module(Wallet::Unionpay).unwrap();
    assert!(module.acknowledged(200, "anything"));
    assert!(!module.acknowledged(204, ""));
    assert!(!module.acknowledged(500, "ok"));
}

#[tokio::test]
async fn cancel_a_pending_and_a_paid_consume() {
    let h = start().await;
    let customer = h.customer(100_000);

    let pending = h.code(&customer, Behaviour::NeverConfirm);
    let (reply, order_id, txn_time) = h.consume(&pending, 400).await;
    reply.expect("05");
    let (c, cancel_id, cancel_time) = h.cancel(reply.get("queryId"), 400).await;
    c.expect("00");
    assert_eq!(c.get("origQryId"), reply.get("queryId"));
    assert!(!c.get("queryId").is_empty());
    h.query(&order_id, &txn_time).await.expect_orig("31");
    let q = h.query(&cancel_id, &cancel_time).await;
    q.expect_orig("00");
    assert_eq!(q.get("txnType"), "31");
    assert_eq!(q.get("origQryId"), reply.get("queryId"));
    assert_eq!(h.balance(&customer), 100_000);

    let paid = h.code(&customer, Behaviour::Instant);
    let (reply, order_id, txn_time) = h.consume(&paid, 600).await;
    reply.expect("00");
    assert_eq!(h.balance(&customer), 100_000 - 600);
    let (c, cancel_id, cancel_time) = h.cancel(reply.get("queryId"), 600).await;
    c.expect("00");
    assert_eq!(h.balance(&customer), 100_000);
    h.query(&order_id, &txn_time).await.expect_orig("31");
    h.query(&cancel_id, &cancel_time).await.expect_orig("00");
    // The same cancel again is idempotent; no money moves twice.
    let mut f = h.base("31", "00", &cancel_id, &cancel_time);
    f.insert("origQryId".to_owned(), reply.get("queryId").to_owned());
    f.insert("txnAmt".to_owned(), "600".to_owned());
    let again = h.post(BACK, f).await;
    again.expect("00");
    assert_eq!(again.get("queryId"), c.get("queryId"));
    assert_eq!(h.balance(&customer), 100_000);
    // A refund of the cancelled consume is refused.
    h.refund(reply.get("queryId"), 100).await.0.expect("35");
}

#[tokio::test]
async fn cancel_refusals() {
    let h = start().await;
    let customer = h.customer(100_000);
    h.cancel("0101000000123456789012", 100).await.0.expect("34");

    let code = h.code(&customer, Behaviour::Instant);
    let (reply, _, _) = h.consume(&code, 600).await;
    let query_id = reply.get("queryId").to_owned();
    let (wrong, wrong_id, wrong_time) = h.cancel(&query_id, 599).await;
    wrong.expect("36");
    h.query(&wrong_id, &wrong_time).await.expect_orig("36");

    // "Call again": nothing happens, the same cancel can be sent again.
    h.sandbox
        .with(|s, _, _| s.faults(Wallet::Unionpay).reverse_call_again_next = 1);
    let order_id = h.order_id();
    let txn_time = beijing_now();
    let mut f = h.base("31", "00", &order_id, &txn_time);
    f.insert("origQryId".to_owned(), query_id.clone());
    f.insert("txnAmt".to_owned(), "600".to_owned());
    h.post(BACK, f.clone()).await.expect("05");
    assert_eq!(h.balance(&customer), 100_000 - 600);
    h.query(&order_id, &txn_time).await.expect("34");
    h.post(BACK, f).await.expect("00");
    assert_eq!(h.balance(&customer), 100_000);

    // Too late: after the 24 h window.
    let code = h.code(&customer, Behaviour::Instant);
    let (reply, _, _) = h.consume(&code, 200).await;
    h.advance(25 * 3600);
    h.cancel(reply.get("queryId"), 200).await.0.expect("35");
    assert_eq!(h.balance(&customer), 100_000 - 200);
}

#[tokio::test]
async fn refunds_partial_full_and_over() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let (reply, order_id, txn_time) = h.consume(&code, 1000).await;
    reply.expect("00");
    let query_id = reply.get("queryId").to_owned();

    let (r, refund_id, refund_time) = h.refund(&query_id, 300).await;
    r.expect("00");
    assert_eq!(r.get("origQryId"), query_id);
    let refund_query_id = r.get("queryId").to_owned();
    assert!(!refund_query_id.is_empty());
    let q = h.query(&refund_id, &refund_time).await;
    q.expect_orig("05");
    assert_eq!(q.get("txnType"), "04");
    assert_eq!(q.get("queryId"), refund_query_id);
    assert_eq!(h.balance(&customer), 100_000 - 1000);
    h.advance(3);
    let q = h.query(&refund_id, &refund_time).await;
    q.expect_orig("00");
    assert_eq!(q.get("txnAmt"), "300");
    assert_eq!(q.get("settleAmt"), "300");
    assert_eq!(h.balance(&customer), 100_000 - 700);

    // The same refund again: accepted, no second movement.
    let again = h
        .post(
            BACK,
            h.refund_fields(&refund_id, &refund_time, &query_id, 300),
        )
        .await;
    again.expect("00");
    assert_eq!(again.get("queryId"), refund_query_id);
    // The same refund orderId with another amount.
    h.post(
        BACK,
        h.refund_fields(&refund_id, &refund_time, &query_id, 301),
    )
    .await
    .expect("12");

    // More than what remains, then exactly the rest.
    let (over, over_id, over_time) = h.refund(&query_id, 701).await;
    over.expect("36");
    h.query(&over_id, &over_time).await.expect_orig("36");
    h.refund(&query_id, 0).await.0.expect("36");
    h.refund(&query_id, 700).await.0.expect("00");
    h.advance(3);
    h.sandbox.tick().await;
    assert_eq!(h.balance(&customer), 100_000);
    h.refund(&query_id, 1).await.0.expect("36");
    // The consume itself is still a successful consume.
    h.query(&order_id, &txn_time).await.expect_orig("00");
}

#[tokio::test]
async fn refund_refusals() {
    let h = start().await;
    let customer = h.customer(100_000);
    h.refund("0101000000123456789012", 100).await.0.expect("34");
    let pending = h.code(&customer, Behaviour::NeverConfirm);
    let (reply, _, _) = h.consume(&pending, 100).await;
    reply.expect("05");
    h.refund(reply.get("queryId"), 100).await.0.expect("35");
    // A currency that is not the original's.
    let code = h.code(&customer, Behaviour::Instant);
    let (reply, _, _) = h.consume(&code, 100).await;
    let mut f = h.refund_fields(&h.order_id(), &beijing_now(), reply.get("queryId"), 50);
    f.insert("currencyCode".to_owned(), "840".to_owned());
    h.post(BACK, f).await.expect("30");
    // Missing the original's queryId.
    let mut f = h.refund_fields(&h.order_id(), &beijing_now(), reply.get("queryId"), 50);
    f.remove("origQryId");
    h.post(BACK, f).await.expect("13");
}

#[tokio::test]
async fn request_signature_and_identity_errors() {
    let h = start().await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let order_id = h.order_id();
    let txn_time = beijing_now();

    // Tampered after signing.
    let mut f = h.signed(h.consume_fields(&order_id, &txn_time, &code, 100, "156"));
    f.insert("txnAmt".to_owned(), "1".to_owned());
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(f.iter())
        .finish();
    h.post_raw(BACK, body.into_bytes()).await.expect("11");
    // Signed with another key (the sandbox's own signing key, say).
    let other = TestKey::from_pkcs8_pem(super::pki::SIGNING_KEY_PEM);
    let mut f = h.consume_fields(&order_id, &txn_time, &code, 100, "156");
    let signature = client_sign(&other, &f);
    f.insert("signature".to_owned(), signature);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(f.iter())
        .finish();
    h.post_raw(BACK, body.into_bytes()).await.expect("11");
    // A `+` in the signature sent unescaped arrives as a space: refused.
    let f = h.signed(h.consume_fields(&order_id, &txn_time, &code, 100, "156"));
    let body: String = f
        .iter()
        .map(|(k, v)| {
            if k == "signature" {
                format!("{k}={v}")
            } else {
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair(k, v)
                    .finish()
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    if f["signature"].contains('+') {
        h.post_raw(BACK, body.into_bytes()).await.expect("11");
    }
    // Another certId, another signMethod.
    let mut f = h.consume_fields(&order_id, &txn_time, &code, 100, "156");
    f.insert("certId".to_owned(), "69115910859".to_owned());
    h.post(BACK, f).await.expect("11");
    let mut f = h.consume_fields(&order_id, &txn_time, &code, 100, "156");
    f.insert("signMethod".to_owned(), "02".to_owned());
    h.post(BACK, f).await.expect("11");
    // Another merchant; a wrong version; a transaction this path does not serve.
    let mut f = h.consume_fields(&order_id, &txn_time, &code, 100, "156");
    f.insert("merId".to_owned(), "123456789012345".to_owned());
    h.post(BACK, f).await.expect("30");
    let mut f = h.consume_fields(&order_id, &txn_time, &code, 100, "156");
    f.insert("version".to_owned(), "5.0.0".to_owned());
    h.post(BACK, f).await.expect("10");
    let f = h.consume_fields(&order_id, &txn_time, &code, 100, "156");
    h.post(QUERY, f).await.expect("30");
    let f = h.base("00", "00", &order_id, &txn_time);
    h.post(BACK, f).await.expect("30");
    let mut f = h.consume_fields(&order_id, &txn_time, &code, 100, "156");
    f.insert("orderId".to_owned(), "bad-order_id".to_owned());
    h.post(BACK, f).await.expect("10");
    let mut f = h.consume_fields(&order_id, &txn_time, &code, 100, "156");
    f.insert("channelType".to_owned(), "07".to_owned());
    h.post(BACK, f).await.expect("10");
    // Nothing was charged by any of these; the good request still works.
    assert_eq!(h.balance(&customer), 100_000);
    h.post(
        BACK,
        h.consume_fields(&order_id, &txn_time, &code, 100, "156"),
    )
    .await
    .expect("00");
}

#[tokio::test]
async fn bad_signature_fault_gives_one_wrong_answer() {
    let h = start().await;
    h.sandbox
        .with(|s, _, _| s.faults(Wallet::Unionpay).bad_signature_next = 1);
    let r = h.query("UNKNOWN0001", &beijing_now()).await;
    assert_eq!(r.code(), "34");
    assert!(r.verified.is_err(), "{}", r.raw);
    // The certificate still chains: only the signature is wrong.
    let cert = TestCert::from_pem(r.get("signPubKeyCert"));
    cert.issued_by(&TestCert::from_pem(&h.root_cert_pem))
        .unwrap();
    h.query("UNKNOWN0001", &beijing_now()).await.expect("34");
}

#[tokio::test]
async fn malformed_bodies_get_form_answers() {
    let h = start().await;
    for (body, code) in [
        (b"".to_vec(), "10"),
        (b"{\"merId\": 1}".to_vec(), "10"),
        (b"<xml><a>1</a></xml>".to_vec(), "10"),
        (b"version=5.1.0&\xff\xfe=1".to_vec(), "10"),
        (b"version=%zz".to_vec(), "10"),
        (b"version=%ff%fe".to_vec(), "10"),
        (b"version=5.1.0&version=5.1.0".to_vec(), "10"),
        (b"version=5.1.0".to_vec(), "13"),
        (b"version=5.1.0&encoding=utf-8&signMethod=01".to_vec(), "13"),
    ] {
        for path in [BACK, QUERY] {
            let r = h.post_raw(path, body.clone()).await;
            r.expect(code);
        }
    }
    // Everything but the signature.
    let f = h.consume_fields(
        &h.order_id(),
        &beijing_now(),
        "6200000000000000000",
        1,
        "156",
    );
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(f.iter())
        .finish();
    let r = h.post_raw(BACK, body.into_bytes()).await;
    r.expect("13");
    assert!(r.get("respMsg").contains("signature"), "{}", r.raw);
    // Missing the code; missing the backUrl; a bad txnTime.
    let mut f = h.consume_fields(&h.order_id(), &beijing_now(), "x", 1, "156");
    f.remove("qrNo");
    h.post(BACK, f).await.expect("13");
    let mut f = h.consume_fields(
        &h.order_id(),
        &beijing_now(),
        "6200000000000000000",
        1,
        "156",
    );
    f.remove("backUrl");
    h.post(BACK, f).await.expect("13");
    let f = h.consume_fields(
        &h.order_id(),
        "20251301000000",
        "6200000000000000000",
        1,
        "156",
    );
    h.post(BACK, f).await.expect("10");
    // Big bodies and odd content types still get a form answer.
    let r = h
        .http
        .post(format!("{}{QUERY}", h.base_url))
        .header("content-type", "application/json")
        .body("a=".to_owned() + &"x".repeat(100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fields = parse_answer(&r.text().await.unwrap());
    assert_eq!(fields["respCode"], "13");
}

#[tokio::test]
async fn queries_of_unknown_orders() {
    let h = start().await;
    h.query("NOSUCHORDER1", &beijing_now()).await.expect("34");
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let (reply, order_id, _) = h.consume(&code, 100).await;
    reply.expect("00");
    // The right orderId with another txnTime is another (unknown) order.
    h.query(&order_id, "20200101000000").await.expect("34");
}

#[tokio::test]
async fn qr_orders_expire_per_pay_timeout() {
    let h = start().await;
    let customer = h.customer(100_000);
    let order_id = h.order_id();
    let txn_time = "20250601120000";
    let mut f = h.base("01", "07", &order_id, txn_time);
    f.insert("txnAmt".to_owned(), "100".to_owned());
    f.insert("currencyCode".to_owned(), "840".to_owned());
    f.insert(
        "backUrl".to_owned(),
        "https://merchant.example/notify".to_owned(),
    );
    // Five minutes after txnTime, however far the gateway's clock is from the sandbox's.
    f.insert("payTimeout".to_owned(), "20250601120500".to_owned());
    let reply = h.post(BACK, f.clone()).await;
    reply.expect("00");
    h.advance(299);
    h.query(&order_id, txn_time).await.expect_orig("05");
    h.advance(2);
    h.query(&order_id, txn_time).await.expect_orig("31");
    let token = reply.get("qrCode").rsplit('/').next().unwrap().to_owned();
    let late = h.sandbox.with(|s, _, now| s.pay_qr(&token, &customer, now));
    assert!(matches!(late, crate::state::PayQrOutcome::Closed(_)));
    assert_eq!(h.balance(&customer), 100_000);
    // A resend of the closed order's request.
    h.post(BACK, f).await.expect("35");

    // payTimeout not after txnTime, or malformed.
    let mut f = h.base("01", "07", &h.order_id(), txn_time);
    f.insert("txnAmt".to_owned(), "100".to_owned());
    f.insert("currencyCode".to_owned(), "156".to_owned());
    f.insert(
        "backUrl".to_owned(),
        "https://merchant.example/notify".to_owned(),
    );
    f.insert("payTimeout".to_owned(), txn_time.to_owned());
    h.post(BACK, f.clone()).await.expect("10");
    f.insert("payTimeout".to_owned(), "soon".to_owned());
    h.post(BACK, f).await.expect("10");
    let trades = h.sandbox.with(|s, _, _| {
        s.trades
            .values()
            .filter(|t| t.status == TradeStatus::NotPay)
            .count()
    });
    assert_eq!(trades, 0);
}

#[tokio::test]
async fn the_order_ledger_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!(
        "qrgate-sandbox-unionpay-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let config = SandboxConfig {
        seed: 7,
        state_dir: Some(dir.clone()),
        ..Default::default()
    };
    let h = start_with(config.clone()).await;
    let customer = h.customer(100_000);
    let code = h.code(&customer, Behaviour::Instant);
    let (reply, order_id, txn_time) = h.consume(&code, 800).await;
    reply.expect("00");
    let (refund, refund_id, refund_time) = h.refund(reply.get("queryId"), 800).await;
    refund.expect("00");
    h.stop().await;

    let h = start_with(config).await;
    h.query(&order_id, &txn_time).await.expect_orig("00");
    h.advance(3);
    h.query(&refund_id, &refund_time).await.expect_orig("00");
    assert_eq!(h.balance(&customer), 100_000);
    // The restored ledger still guards the orderId.
    h.post(
        BACK,
        h.consume_fields(&order_id, "20200101000000", &code, 800, "156"),
    )
    .await
    .expect("12");
    h.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The owner field of a certificate's CN, read the way UnionPay's SDKs do (third `@` field),
/// from the DER bytes: enough to tell the sandbox's certificates apart in a test.
fn cn_owner(pem: &str) -> Option<String> {
    let der = super::pki::pem_block(pem, "CERTIFICATE").unwrap();
    let text = String::from_utf8_lossy(&der);
    let start = text.find("041@Z12@")?;
    let rest = &text[start..];
    rest.split('@').nth(2).map(str::to_owned)
}

#[test]
fn the_signing_certificate_is_unionpays_and_the_merchants_is_not() {
    assert_eq!(
        cn_owner(super::pki::SIGNING_CERT_PEM).as_deref(),
        Some(super::SIGNING_CERT_OWNER)
    );
    assert_eq!(
        cn_owner(super::pki::MERCHANT_CERT_PEM).as_deref(),
        Some("qrgate sandbox merchant")
    );
}

#[tokio::test]
async fn a_state_saved_with_the_old_certificates_gets_the_current_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = || SandboxConfig {
        seed: 7,
        state_dir: Some(dir.path().to_owned()),
        ..Default::default()
    };
    let sandbox = Sandbox::new(config(), vec![module()]).unwrap();
    let mer_id = super::UnionpayAccount::of(&sandbox).unwrap().mer_id;
    sandbox.persist().unwrap();
    drop(sandbox);
    // Make the saved state look like one written before the certificates were re-issued.
    let file = dir.path().join("sandbox.json");
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let account = &mut saved["accounts"]["unionpay"];
    account["signing_cert_pem"] = Value::String("an old certificate".into());
    account["root_cert_pem"] = Value::String("an old root".into());
    account["orders"] = serde_json::json!({"kept": true});
    std::fs::write(&file, serde_json::to_string(&saved).unwrap()).unwrap();

    let sandbox = Sandbox::new(config(), vec![module()]).unwrap();
    let account = super::UnionpayAccount::of(&sandbox).unwrap();
    assert_eq!(account.mer_id, mer_id, "the merchant stays");
    assert_eq!(account.signing_cert_pem, super::pki::SIGNING_CERT_PEM);
    assert_eq!(account.root_cert_pem, super::pki::ROOT_CERT_PEM);
    assert_eq!(
        sandbox.accounts(Wallet::Unionpay)["orders"],
        serde_json::json!({"kept": true}),
        "what else the state keeps next to the account stays"
    );
}

mod bill_http;
