//! The OTTPAY endpoint over real HTTP, called by an independent POS client written from
//! `ottpay.md` alone (`qrgate_testkit::pos`), on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use qrgate_domain::{Currency, MerchantStatus};
use qrgate_engine::{CreatedMerchant, Engine, FixedClock, MasterKey, MerchantRequest};
use qrgate_http::{AppState, HttpConfig};
use qrgate_testkit::pos::{self, PosClient, PosResponse};
use qrgate_testkit::{backend_tests, TestDb};
use serde_json::{json, Value};

const EMPTY_MD5: &str = "D41D8CD98F00B204E9800998ECF8427E";

struct Gateway {
    addr: SocketAddr,
    engine: Engine,
    clock: Arc<FixedClock>,
    merchant: CreatedMerchant,
    db: TestDb,
}

impl Gateway {
    async fn start(db: TestDb) -> Gateway {
        let clock = Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap(),
        ));
        let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock.clone())
            .await
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
        engine
            .set_fx_rate(Currency::Cad, "5.1234".parse().unwrap())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(
            engine.clone(),
            HttpConfig {
                body_limit_bytes: 4096,
                ..HttpConfig::default()
            },
        );
        tokio::spawn(qrgate_http::serve(listener, state, std::future::pending()));
        Gateway {
            addr,
            engine,
            clock,
            merchant,
            db,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn pos(&self) -> PosClient {
        PosClient::new(
            &self.url("/processV2"),
            self.merchant.merchant.id.as_str(),
            self.merchant.sign_key.expose(),
        )
    }

    /// Row counts and newest `updated_at` of every table, after moving the clock forward so
    /// that any later write would show.
    async fn rows(&self) -> Vec<(&'static str, i64, i64)> {
        let rows = self.db.store.row_counts().await.unwrap();
        self.clock.advance(Duration::minutes(1));
        rows
    }
}

/// Checks a refusal as a POS sees it: HTTP 200, the code, a message containing `needle`, a
/// message that survives URL-decoding, and an encrypted `{}` (verifiable when the merchant
/// is known).
fn assert_refused(r: &PosResponse, code: &str, needle: &str) {
    assert_eq!(r.rsp_code, code, "{r:?}");
    assert!(
        r.rsp_msg.contains(needle),
        "rsp_msg {:?} lacks {needle:?}",
        r.rsp_msg
    );
    assert!(
        r.rsp_msg.is_ascii() && !r.rsp_msg.contains(['+', '%']),
        "{:?}",
        r.rsp_msg
    );
    assert_eq!(r.body["md5"], EMPTY_MD5);
    assert!(r.body["data"].as_str().is_some_and(|d| !d.is_empty()));
}

async fn exchange_rates_are_answered_sealed_with_the_merchants_key(db: TestDb) {
    let gw = Gateway::start(db).await;
    let r = gw
        .pos()
        .call("EX_RATE_QUERY", json!({"fee_type": "CAD"}))
        .await;
    assert_eq!(r.http_status, 200);
    assert_eq!(
        (r.rsp_code.as_str(), r.rsp_msg.as_str()),
        ("SUCCESS", "success")
    );
    let data = r
        .data
        .expect("answer opens with the merchant's key and its digest verifies");
    assert_eq!(data["feeType"], "CAD");
    assert_eq!(data["rate"], "512340000");
    // 08:00 UTC is 03:00 in Toronto.
    assert_eq!(data["rate_time"], "20261126030000");
    assert!(
        data.values().all(Value::is_string),
        "every value is a string: {data:?}"
    );

    // Without fee_type, the merchant's own currency; CNY is 1.
    let r = gw.pos().call("EX_RATE_QUERY", json!({})).await;
    assert_eq!(r.data.unwrap()["feeType"], "CAD");
    let r = gw
        .pos()
        .call("EX_RATE_QUERY", json!({"fee_type": "CNY"}))
        .await;
    assert_eq!(r.data.unwrap()["rate"], "100000000");
}

async fn the_same_handler_serves_every_path(db: TestDb) {
    let gw = Gateway::start(db).await;
    for path in ["/process", "/processV2", "/processV3"] {
        let pos = PosClient::new(
            &gw.url(path),
            gw.merchant.merchant.id.as_str(),
            gw.merchant.sign_key.expose(),
        );
        let r = pos.call("EX_RATE_QUERY", json!({"fee_type": "CAD"})).await;
        assert_eq!(r.rsp_code, "SUCCESS", "{path}");
    }
}

async fn rates_that_cannot_be_given_are_refused_clearly(db: TestDb) {
    let gw = Gateway::start(db).await;
    let before = gw.rows().await;
    let r = gw
        .pos()
        .call("EX_RATE_QUERY", json!({"fee_type": "USD"}))
        .await;
    assert_refused(&r, "FAIL", "no exchange rate is set for USD");
    assert_eq!(r.data.unwrap(), serde_json::Map::new());
    let r = gw
        .pos()
        .call("EX_RATE_QUERY", json!({"fee_type": "EUR"}))
        .await;
    assert_refused(&r, "PARAM_INVALID", "invalid fee_type");
    let r = gw
        .pos()
        .call("EX_RATE_QUERY", json!({"fee_type": ["CAD"]}))
        .await;
    assert_refused(&r, "PARAM_INVALID", "fee_type");
    assert_eq!(gw.rows().await, before);
}

async fn every_broken_request_gets_its_documented_code_and_writes_nothing(db: TestDb) {
    let gw = Gateway::start(db).await;
    let pos = gw.pos();
    let good = pos.envelope(
        "EX_RATE_QUERY",
        json!({"fee_type": "CAD"}).as_object().unwrap(),
    );
    let with = |key: &str, value: Value| {
        let mut e = good.clone();
        e[key] = value;
        serde_json::to_vec(&e).unwrap()
    };
    let without = |key: &str| {
        let mut e = good.clone();
        e.as_object_mut().unwrap().remove(key);
        serde_json::to_vec(&e).unwrap()
    };
    let md5 = good["md5"].as_str().unwrap();
    let flipped = format!(
        "{}{}",
        if md5.starts_with('0') { '1' } else { '0' },
        &md5[1..]
    );
    let wrong_key = PosClient::new(&pos.endpoint, &pos.merchant_id, "0000000000000000");
    let full = serde_json::to_vec(&good).unwrap();

    let before = gw.rows().await;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "tampered md5",
            with("md5", json!(flipped)),
            "FAIL",
            "wrong sign key",
        ),
        (
            "broken base64",
            with("data", json!("@@not*base64@@")),
            "PARAM_ERROR",
            "base64",
        ),
        (
            "ciphertext of a bad length",
            with("data", json!("QUJD")),
            "PARAM_ERROR",
            "length",
        ),
        (
            "md5 not hex",
            with("md5", json!("xyz")),
            "PARAM_ERROR",
            "md5",
        ),
        (
            "truncated body",
            full[..full.len() / 2].to_vec(),
            "PARAM_ERROR",
            "not valid JSON",
        ),
        (
            "non-JSON body",
            b"hello".to_vec(),
            "PARAM_ERROR",
            "not valid JSON",
        ),
        (
            "JSON array body",
            b"[1,2]".to_vec(),
            "PARAM_ERROR",
            "not a JSON object",
        ),
        ("empty body", Vec::new(), "PARAM_ERROR", "not valid JSON"),
        (
            "missing md5",
            without("md5"),
            "PARAM_ERROR",
            "missing field md5",
        ),
        (
            "missing data",
            without("data"),
            "PARAM_ERROR",
            "missing field data",
        ),
        (
            "missing merchant_id",
            without("merchant_id"),
            "PARAM_ERROR",
            "missing field merchant_id",
        ),
        (
            "missing action",
            without("action"),
            "PARAM_ERROR",
            "missing field action",
        ),
        (
            "numeric merchant_id",
            with("merchant_id", json!(42)),
            "PARAM_ERROR",
            "must be a string",
        ),
        (
            "unknown merchant",
            with("merchant_id", json!("ON99999999")),
            "PARAM_INVALID",
            "unknown merchant_id",
        ),
        (
            "malformed merchant",
            with("merchant_id", json!("nobody")),
            "PARAM_INVALID",
            "unknown merchant_id",
        ),
        (
            "unknown action",
            with("action", json!("H5PAY")),
            "PARAM_INVALID",
            "unknown action",
        ),
        (
            "wrong version",
            with("version", json!("2.0")),
            "PARAM_INVALID",
            "expected 1.0",
        ),
    ];
    for (name, body, code, needle) in cases {
        let r = pos.post(body).await;
        assert_eq!(r.http_status, 200, "{name}");
        assert_eq!(r.rsp_code, code, "{name}: {r:?}");
        assert_refused(&r, code, needle);
    }
    // A wrong sign key: the gateway cannot open the data.
    let r = wrong_key
        .call("EX_RATE_QUERY", json!({"fee_type": "CAD"}))
        .await;
    assert_refused(&r, "FAIL", "wrong sign key");

    // Refusals for a known merchant are sealed with its key, so a POS can verify them.
    let r = pos.post(with("action", json!("NOPE"))).await;
    assert_eq!(r.data.unwrap(), serde_json::Map::new());

    assert_eq!(gw.rows().await, before, "a refused request wrote nothing");
}

async fn refunds_without_a_payment_to_refund_are_refused_and_change_nothing(db: TestDb) {
    let gw = Gateway::start(db).await;
    let before = gw.rows().await;
    let cases = [
        (
            "REFUND",
            json!({"order_id": "A1", "amount": "100"}),
            "ori_order_id",
        ),
        (
            "REFUND",
            json!({"ori_order_id": "A1", "refund_amt": "100"}),
            "unknown ori_order_id A1",
        ),
        (
            "REFUND_QUERY",
            json!({"order_id": "A1"}),
            "unknown refund order_id A1",
        ),
        ("REFUND_QUERY", json!({}), "order_id"),
    ];
    for (action, data, words) in cases {
        let r = gw.pos().call(action, data.clone()).await;
        assert_refused(&r, "PARAM_INVALID", words);
    }
    assert_eq!(gw.rows().await, before);
}

async fn a_disabled_merchant_is_refused(db: TestDb) {
    let gw = Gateway::start(db).await;
    gw.engine
        .set_merchant_status(&gw.merchant.merchant.id, MerchantStatus::Disabled)
        .await
        .unwrap();
    let r = gw
        .pos()
        .call("EX_RATE_QUERY", json!({"fee_type": "CAD"}))
        .await;
    assert_refused(&r, "PARAM_INVALID", "merchant is disabled");
}

async fn oversized_bodies_are_refused_with_http_413(db: TestDb) {
    let gw = Gateway::start(db).await;
    let r = gw.pos().post(vec![b' '; 10_000]).await;
    assert_eq!(r.http_status, 413);
    assert_refused(&r, "PARAM_ERROR", "larger than 4096 bytes");
}

async fn damaged_base64_is_repaired_as_clients_expect(db: TestDb) {
    let gw = Gateway::start(db).await;
    let pos = gw.pos();
    let mut e = pos.envelope(
        "EX_RATE_QUERY",
        json!({"fee_type": "CAD", "pad": "x".repeat(80)})
            .as_object()
            .unwrap(),
    );
    let data = e["data"].as_str().unwrap().to_owned();
    let wrapped: String = data
        .as_bytes()
        .chunks(60)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
        .replace('+', " ");
    e["data"] = json!(wrapped);
    let r = pos.post(serde_json::to_vec(&e).unwrap()).await;
    assert_eq!(r.rsp_code, "SUCCESS", "{r:?}");
}

async fn clients_variations_that_real_integrations_send_are_accepted(db: TestDb) {
    let gw = Gateway::start(db).await;
    let pos = gw.pos();
    let good = pos.envelope(
        "EX_RATE_QUERY",
        json!({"fee_type": "CAD"}).as_object().unwrap(),
    );

    // The outer envelope as base64 of its JSON (ottpay.md §11.1).
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        serde_json::to_vec(&good).unwrap(),
    );
    assert_eq!(pos.post(b64.into_bytes()).await.rsp_code, "SUCCESS");

    // A lower-case md5 field.
    let mut lower = good.clone();
    lower["md5"] = json!(good["md5"].as_str().unwrap().to_ascii_lowercase());
    assert_eq!(
        pos.post(serde_json::to_vec(&lower).unwrap()).await.rsp_code,
        "SUCCESS"
    );

    // A JSON number in data, digested the Java way ("5.0") as one JavaScript client does.
    let data = json!({"fee_type": "CAD", "n": 5});
    let plaintext = serde_json::to_string(&data).unwrap();
    let md5 = pos::digest(json!({"fee_type": "CAD", "n": "5.0"}).as_object().unwrap());
    let sealed = pos::encrypt(plaintext.as_bytes(), &pos::aes_key(&md5, &pos.sign_key));
    let envelope = json!({"action": "EX_RATE_QUERY", "version": "1.0", "merchant_id": pos.merchant_id, "data": sealed, "md5": md5});
    let r = pos.post(serde_json::to_vec(&envelope).unwrap()).await;
    assert_eq!(r.rsp_code, "SUCCESS", "{r:?}");

    // Extra keys in data take part in the digest and are otherwise ignored (§13.9).
    let r = pos
        .call(
            "EX_RATE_QUERY",
            json!({"fee_type": "CAD", "orderId": "x", "txnTime": "20260101"}),
        )
        .await;
    assert_eq!(r.rsp_code, "SUCCESS");
}

async fn during_a_rotation_grace_period_both_keys_work_and_answers_use_the_callers_key(db: TestDb) {
    let gw = Gateway::start(db).await;
    let old = gw.pos();
    let rotated = gw
        .engine
        .rotate_sign_key(&gw.merchant.merchant.id, Some(Duration::hours(2)))
        .await
        .unwrap();
    let new = PosClient::new(&old.endpoint, &old.merchant_id, rotated.sign_key.expose());
    for pos in [&old, &new] {
        let r = pos.call("EX_RATE_QUERY", json!({"fee_type": "CAD"})).await;
        assert_eq!(r.rsp_code, "SUCCESS");
        assert!(r.data.is_ok(), "answer sealed with the key the POS used");
    }
    gw.clock.advance(Duration::hours(3));
    let r = old.call("EX_RATE_QUERY", json!({"fee_type": "CAD"})).await;
    assert_refused(&r, "FAIL", "wrong sign key");
    assert_eq!(
        new.call("EX_RATE_QUERY", json!({"fee_type": "CAD"}))
            .await
            .rsp_code,
        "SUCCESS"
    );
}

async fn health_metrics_and_request_ids_are_served(db: TestDb) {
    let gw = Gateway::start(db).await;
    let http = reqwest::Client::new();
    let health = http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    gw.pos()
        .call("EX_RATE_QUERY", json!({"fee_type": "CAD"}))
        .await;
    gw.pos().post(b"nope".to_vec()).await;
    let metrics = http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"qrgate_ottpay_requests_total{action="EX_RATE_QUERY",rsp_code="SUCCESS"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains(r#"qrgate_ottpay_requests_total{action="unknown",rsp_code="PARAM_ERROR"} 1"#));
    assert!(metrics.contains("qrgate_ottpay_request_duration_seconds_bucket"));

    let answered = http
        .post(gw.url("/processV2"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let generated = answered.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let echoed = http
        .post(gw.url("/processV2"))
        .header("x-request-id", "till-7-000123")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "till-7-000123");
}

/// The POS client itself is checked against the documented vector, so a bug in it cannot
/// hide one in the gateway.
#[test]
fn the_independent_client_reproduces_the_documented_vector() {
    let data = json!({"order_id":"POS20240101120000","operator_id":"0000000696","amount":"100","tip":"0","biz_type":"WECHATPAY","call_back_url":"https://merchant.example/ottpay/notify"});
    let (sealed, md5) = pos::seal(data.as_object().unwrap(), "6698851A525C9433");
    assert_eq!(md5, "5FB2A849225FCD2DA0667D8284FEAC01");
    assert!(sealed.starts_with("FGsvHYPsNn8GC9SMN59fJDTc6/JThv3W1/"));
}

backend_tests!(
    exchange_rates_are_answered_sealed_with_the_merchants_key,
    the_same_handler_serves_every_path,
    rates_that_cannot_be_given_are_refused_clearly,
    every_broken_request_gets_its_documented_code_and_writes_nothing,
    refunds_without_a_payment_to_refund_are_refused_and_change_nothing,
    a_disabled_merchant_is_refused,
    oversized_bodies_are_refused_with_http_413,
    damaged_base64_is_repaired_as_clients_expect,
    clients_variations_that_real_integrations_send_are_accepted,
    during_a_rotation_grace_period_both_keys_work_and_answers_use_the_callers_key,
    health_metrics_and_request_ids_are_served,
);
