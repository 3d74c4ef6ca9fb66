//! How the client handles what a gateway answers, against a tiny OTTPAY server written here
//! with the codec. (It tests the client's handling of answers, not qrgate's gateway.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use qrgate_client::ottpay::{RequestEnvelope, ResponseEnvelope, SignKey};
use qrgate_client::{
    Action, ActivePayRequest, ActivePayResponse, Answer, BizType, Cents, ClientError, Code, Data,
    ExRateQueryResponse, OrderStatus, PassivePayRequest, PassivePayResponse, PosClient, PosConfig,
    RefundRequest, RefundResponse, RspCode, StatusQueryResponse,
};
use serde_json::{json, Value};

const KEY: &str = "6698851A525C9433";
const MERCHANT: &str = "ON00004652";

fn key() -> SignKey {
    SignKey::new(KEY)
}

fn obj(v: Value) -> Data {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// What the test gateway does with a request.
enum Reply {
    /// HTTP status and body.
    Body(u16, String),
    /// Never answers.
    Hang,
}

fn sealed(code: RspCode, msg: &str, data: Value) -> Reply {
    Reply::Body(
        200,
        ResponseEnvelope::sealed(code, msg, &obj(data), &key()).to_json(),
    )
}

/// Every request the test gateway got, opened with [`KEY`] when it could be.
type Seen = Arc<Mutex<Vec<(RequestEnvelope, Option<Data>)>>>;

type Script = dyn Fn(&RequestEnvelope, Option<&Data>) -> Reply + Send + Sync;

#[derive(Clone)]
struct GatewayState {
    script: Arc<Script>,
    seen: Seen,
}

/// A running test gateway: its address and every request it got (opened with [`KEY`]).
struct Gateway {
    addr: SocketAddr,
    seen: Seen,
}

impl Gateway {
    fn client(&self) -> PosClient {
        self.client_with(|c| c)
    }

    fn client_with(&self, edit: impl FnOnce(PosConfig) -> PosConfig) -> PosClient {
        let config = PosConfig {
            terminal_no: Some("T1".into()),
            operator_id: Some("0000000696".into()),
            timeout: Duration::from_secs(5),
            ..PosConfig::new(format!("http://{}/processV2", self.addr), MERCHANT, KEY)
        };
        PosClient::new(edit(config)).unwrap()
    }

    fn last(&self) -> (RequestEnvelope, Data) {
        let seen = self.seen.lock().unwrap();
        let (envelope, data) = seen.last().expect("no request arrived").clone();
        (
            envelope,
            data.expect("the request did not open with the sign key"),
        )
    }
}

async fn handle(State(state): State<GatewayState>, body: Bytes) -> Response {
    let envelope = RequestEnvelope::parse(&body).expect("the client sent no envelope");
    let data = envelope.open(&key()).ok();
    state
        .seen
        .lock()
        .unwrap()
        .push((envelope.clone(), data.clone()));
    match (state.script)(&envelope, data.as_ref()) {
        Reply::Body(status, body) => (
            StatusCode::from_u16(status).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

async fn gateway(
    script: impl Fn(&RequestEnvelope, Option<&Data>) -> Reply + Send + Sync + 'static,
) -> Gateway {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = GatewayState {
        script: Arc::new(script),
        seen: seen.clone(),
    };
    let app = Router::new()
        .route("/processV2", post(handle))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Gateway { addr, seen }
}

fn payment(order_id: &str) -> PassivePayRequest {
    PassivePayRequest {
        order_id: Some(order_id.into()),
        operator_id: None,
        amount: Cents(1234),
        tip: Some(Cents(50)),
        sale_num: None,
        auth_code: "134567890123456789".into(),
        biz_type: BizType::WechatPay,
    }
}

fn paid(order_id: &str) -> Value {
    json!({
        "order_status": "success", "trade_time": "20240101120000", "order_id": order_id,
        "buyer_login_id": "o_buyer", "total_amount": "1284", "receipt_amount": "1284",
        "buyer_pay_amount": "6677", "tip": "50", "bizpay_order_id": "4200000001"
    })
}

#[tokio::test]
async fn a_paid_passivepay_is_opened_verified_and_typed() {
    let gw = gateway(|_, data| {
        let order_id = data.unwrap()["order_id"].as_str().unwrap().to_owned();
        sealed(RspCode::Success, "success", paid(&order_id))
    })
    .await;
    let answer = gw.client().passive_pay(&payment("P1")).await.unwrap();
    assert_eq!(answer.rsp_code, Code::Known(RspCode::Success));
    assert!(answer.is_success() && !answer.is_processing());
    assert_eq!(answer.rsp_msg, "success");
    let data = answer.data.clone().unwrap();
    assert_eq!(
        data,
        PassivePayResponse::from_data(&obj(paid("P1"))).unwrap()
    );
    assert_eq!(data.order_status, OrderStatus::Success);
    assert_eq!(data.bizpay_order_id.as_deref(), Some("4200000001"));
    assert_eq!(answer.order_id(), Some("P1"));
    assert_eq!(answer.order_status(), Some(OrderStatus::Success));

    // What was sent: the configured operator in the envelope and in the data.
    let (envelope, data) = gw.last();
    assert_eq!(envelope.action, "PASSIVEPAY");
    assert_eq!(envelope.version, "1.0");
    assert_eq!(envelope.merchant_id, MERCHANT);
    assert_eq!(envelope.terminal_no.as_deref(), Some("T1"));
    assert_eq!(envelope.operator_id.as_deref(), Some("0000000696"));
    assert_eq!(
        data,
        obj(json!({
            "order_id": "P1", "operator_id": "0000000696", "amount": "1234", "tip": "50",
            "auth_code": "134567890123456789", "biz_type": "WECHATPAY"
        }))
    );
}

#[tokio::test]
async fn a_request_keeps_its_own_operator() {
    let gw = gateway(|_, _| sealed(RspCode::Success, "success", paid("P2"))).await;
    let mut request = payment("P2");
    request.operator_id = Some("0000000777".into());
    gw.client().passive_pay(&request).await.unwrap();
    let (envelope, data) = gw.last();
    assert_eq!(data["operator_id"], "0000000777");
    assert_eq!(envelope.operator_id.as_deref(), Some("0000000696"));

    // Without a configured operator, the request's goes into the envelope too; without
    // either, there is none anywhere.
    let anonymous = gw.client_with(|c| PosConfig {
        operator_id: None,
        terminal_no: None,
        ..c
    });
    anonymous.passive_pay(&request).await.unwrap();
    let (envelope, _) = gw.last();
    assert_eq!(envelope.operator_id.as_deref(), Some("0000000777"));
    assert_eq!(envelope.terminal_no, None);
    anonymous.passive_pay(&payment("P2")).await.unwrap();
    let (envelope, data) = gw.last();
    assert_eq!(envelope.operator_id, None);
    assert!(!data.contains_key("operator_id"));
}

#[tokio::test]
async fn processing_and_declines_carry_their_verified_data_raw() {
    let gw = gateway(|_, data| {
        let data = data.unwrap();
        let order_id = data["order_id"].as_str().unwrap();
        if order_id == "WAIT" {
            sealed(
                RspCode::Processing,
                "transaction processing",
                json!({"order_id": order_id, "order_status": "notpay"}),
            )
        } else {
            sealed(
                RspCode::Fail,
                "insufficient balance",
                json!({"order_id": order_id, "order_status": "failure"}),
            )
        }
    })
    .await;
    let client = gw.client();

    let waiting = client.passive_pay(&payment("WAIT")).await.unwrap();
    assert!(waiting.is_processing());
    assert_eq!(waiting.data, None, "not a full PassivePayResponse");
    assert_eq!(waiting.order_id(), Some("WAIT"));
    assert_eq!(waiting.order_status(), Some(OrderStatus::NotPay));

    let declined = client.passive_pay(&payment("NOPE")).await.unwrap();
    assert_eq!(declined.rsp_code, RspCode::Fail);
    assert_eq!(declined.rsp_msg, "insufficient balance");
    assert_eq!(declined.data, None);
    assert_eq!(declined.order_status(), Some(OrderStatus::Failure));
    assert_eq!(
        declined.raw,
        Some(obj(json!({"order_id": "NOPE", "order_status": "failure"})))
    );
}

#[tokio::test]
async fn refusals_that_do_not_open_are_answers_without_data() {
    let gw = gateway(|envelope, _| match envelope.terminal_no.as_deref() {
        // Before authentication the gateway seals {} with the empty key.
        Some("T1") => Reply::Body(
            200,
            ResponseEnvelope::error(
                RspCode::ParamInvalid,
                "unknown merchant_id",
                &SignKey::new(""),
            )
            .to_json(),
        ),
        // No data at all.
        Some("T2") => Reply::Body(200, r#"{"rsp_code":"FAIL","rsp_msg":"failure."}"#.into()),
        // A 413 with an envelope.
        _ => Reply::Body(
            413,
            ResponseEnvelope::error(
                RspCode::ParamError,
                "request body is larger than 65536 bytes",
                &SignKey::new(""),
            )
            .to_json(),
        ),
    })
    .await;
    let answer = gw.client().passive_pay(&payment("P3")).await.unwrap();
    assert_eq!(answer.rsp_code, RspCode::ParamInvalid);
    assert_eq!(answer.rsp_msg, "unknown merchant_id");
    assert_eq!((answer.data, answer.raw), (None, None));

    let t2 = gw.client_with(|c| PosConfig {
        terminal_no: Some("T2".into()),
        ..c
    });
    let answer = t2.status_query("P3").await.unwrap();
    assert_eq!(
        (answer.rsp_code, answer.rsp_msg.as_str(), answer.data),
        (Code::Known(RspCode::Fail), "failure.", None)
    );

    let t3 = gw.client_with(|c| PosConfig {
        terminal_no: Some("T3".into()),
        ..c
    });
    let answer = t3.exchange_rate(Some("CAD")).await.unwrap();
    assert_eq!(answer.rsp_code, RspCode::ParamError);
}

#[tokio::test]
async fn a_refusal_sealed_with_the_key_has_verified_empty_data() {
    let gw = gateway(|_, _| {
        Reply::Body(
            200,
            ResponseEnvelope::error(RspCode::ParamInvalid, "invalid amount", &key()).to_json(),
        )
    })
    .await;
    let answer = gw.client().passive_pay(&payment("P4")).await.unwrap();
    assert_eq!(answer.rsp_code, RspCode::ParamInvalid);
    assert_eq!(answer.data, None);
    assert_eq!(answer.raw, Some(Data::new()));
    assert_eq!(answer.order_id(), None);
}

#[tokio::test]
async fn an_unknown_code_is_kept_as_text() {
    let gw = gateway(|_, _| {
        Reply::Body(
            200,
            json!({"rsp_code": "BANK_BUSY", "rsp_msg": "try later"}).to_string(),
        )
    })
    .await;
    let answer = gw.client().exchange_rate(None).await.unwrap();
    assert_eq!(answer.rsp_code, Code::Unknown("BANK_BUSY".into()));
    assert_eq!(answer.rsp_code.as_str(), "BANK_BUSY");
    assert!(!answer.is_success());
    let (_, data) = gw.last();
    assert!(data.is_empty(), "no fee_type sent: {data:?}");
}

#[tokio::test]
async fn a_success_that_does_not_verify_is_an_error() {
    let gw = gateway(|envelope, _| {
        let good = ResponseEnvelope::sealed(RspCode::Success, "success", &obj(paid("P5")), &key());
        let answer = match envelope.terminal_no.as_deref() {
            // Sealed with another key.
            Some("T1") => ResponseEnvelope::sealed(
                RspCode::Success,
                "success",
                &obj(paid("P5")),
                &SignKey::new("FFFFFFFFFFFFFFFF"),
            ),
            // Data of another answer under this md5.
            Some("T2") => ResponseEnvelope {
                data: ResponseEnvelope::sealed(
                    RspCode::Success,
                    "success",
                    &obj(json!({"order_id": "OTHER"})),
                    &key(),
                )
                .data,
                ..good
            },
            // No data.
            Some("T3") => ResponseEnvelope {
                data: None,
                md5: None,
                ..good
            },
            // The empty key, as for a refusal.
            _ => ResponseEnvelope::sealed(
                RspCode::Success,
                "success",
                &obj(paid("P5")),
                &SignKey::new(""),
            ),
        };
        Reply::Body(200, answer.to_json())
    })
    .await;
    for terminal in ["T1", "T2", "T3", "T4"] {
        let client = gw.client_with(|c| PosConfig {
            terminal_no: Some(terminal.into()),
            ..c
        });
        let err = client.passive_pay(&payment("P5")).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Unverified {
                    action: Action::PassivePay,
                    ..
                }
            ),
            "{terminal}: {err:?}"
        );
        assert!(err.may_have_been_processed());
    }
}

#[tokio::test]
async fn a_verified_success_with_missing_fields_is_bad_data() {
    let gw = gateway(|_, _| sealed(RspCode::Success, "success", json!({"order_id": "P6"}))).await;
    let err = gw.client().status_query("P6").await.unwrap_err();
    match err {
        ClientError::BadData { action, reason } => {
            assert_eq!(action, Action::StatusQuery);
            assert!(
                reason.contains("order_status") || reason.contains("amount"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_answer_that_is_not_an_envelope_is_not_ottpay() {
    let gw = gateway(|envelope, _| match envelope.terminal_no.as_deref() {
        Some("T1") => Reply::Body(502, "<html>Bad Gateway</html>".into()),
        _ => Reply::Body(200, r#"{"status":"ok"}"#.into()),
    })
    .await;
    match gw.client().passive_pay(&payment("P7")).await.unwrap_err() {
        ClientError::NotOttpay {
            action,
            http_status,
            ..
        } => assert_eq!((action, http_status), (Action::PassivePay, 502)),
        other => panic!("{other:?}"),
    }
    let t2 = gw.client_with(|c| PosConfig {
        terminal_no: Some("T2".into()),
        ..c
    });
    match t2.status_query("P7").await.unwrap_err() {
        ClientError::NotOttpay {
            http_status,
            reason,
            ..
        } => {
            assert_eq!(http_status, 200);
            assert!(reason.contains("rsp_code"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_timeout_after_sending_is_outcome_unknown() {
    let gw = gateway(|_, _| Reply::Hang).await;
    let client = gw.client_with(|c| PosConfig {
        timeout: Duration::from_millis(300),
        ..c
    });
    let started = std::time::Instant::now();
    let err = client.passive_pay(&payment("P8")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            err,
            ClientError::OutcomeUnknown {
                action: Action::PassivePay,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.may_have_been_processed());
    // The request did arrive: this is exactly the case where the POS must ask, not resend.
    assert_eq!(gw.last().1["order_id"], "P8");
}

#[tokio::test]
async fn a_connection_broken_after_sending_is_outcome_unknown() {
    // A server that reads the whole request and closes the connection without answering.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while !received.ends_with(b"\"}") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the client closed first");
            received.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(received).unwrap()
    });
    let client = PosClient::new(PosConfig::new(
        format!("http://{addr}/processV2"),
        MERCHANT,
        KEY,
    ))
    .unwrap();
    let err = client.passive_pay(&payment("P9")).await.unwrap_err();
    assert!(matches!(err, ClientError::OutcomeUnknown { .. }), "{err:?}");
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /processV2 HTTP/1.1"), "{request}");
    assert!(request
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
}

#[tokio::test]
async fn a_gateway_that_cannot_be_reached_is_unavailable() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let client = PosClient::new(PosConfig::new(
        format!("http://{addr}/processV2"),
        MERCHANT,
        KEY,
    ))
    .unwrap();
    let err = client.passive_pay(&payment("P10")).await.unwrap_err();
    match &err {
        ClientError::Unavailable { endpoint, reason } => {
            assert!(endpoint.contains(&addr.to_string()));
            assert!(reason.to_ascii_lowercase().contains("refused"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.may_have_been_processed());
    assert!(err.to_string().contains("not sent"));
}

/// Echoes each action's request back as a typed answer.
fn echo(envelope: &RequestEnvelope, data: Option<&Data>) -> Reply {
    let d = data.unwrap();
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let answer = match envelope.action() {
        Some(Action::StatusQuery) => json!({
            "rspCode": "SUCCESS", "rspMsg": "success", "order_status": "notpay",
            "order_id": s("order_id"), "amount": "1234", "total_amount": "1234"
        }),
        Some(Action::ExRateQuery) => json!({
            "feeType": s("fee_type"), "rate": "512340000", "rate_time": "20240101120000"
        }),
        Some(Action::ActivePay) => json!({
            "code_url": format!("weixin://wxpay/bizpayurl?pr={}", s("operator_id")),
            "order_id": s("order_id")
        }),
        Some(Action::Refund) | Some(Action::RefundQuery) => json!({
            "order_id": s("order_id"), "ori_order_id": "A1",
            "refund_amt": if d.contains_key("refund_amt") { s("refund_amt") } else { "1".into() },
            "order_status": "success"
        }),
        _ => json!({"echo": s("anything")}),
    };
    sealed(RspCode::Success, "success", answer)
}

#[tokio::test]
async fn every_action_round_trips() {
    let gw = gateway(echo).await;
    let client = gw.client();

    let status: Answer<StatusQueryResponse> = client.status_query("P11").await.unwrap();
    let status = status.data.unwrap();
    assert_eq!(
        (status.order_id.as_str(), status.order_status, status.amount),
        ("P11", OrderStatus::NotPay, Cents(1234))
    );
    let (envelope, data) = gw.last();
    assert_eq!(envelope.action, "STATUS_QUERY");
    assert_eq!(data, obj(json!({"order_id": "P11"})));
    assert_eq!(envelope.operator_id.as_deref(), Some("0000000696"));

    let rate: Answer<ExRateQueryResponse> = client.exchange_rate(Some("CAD")).await.unwrap();
    assert_eq!(rate.data.unwrap().rate, 512_340_000);
    assert_eq!(gw.last().1, obj(json!({"fee_type": "CAD"})));

    let qr: Answer<ActivePayResponse> = client
        .active_pay(&ActivePayRequest {
            order_id: Some("A1".into()),
            operator_id: None,
            amount: Cents(100),
            tip: None,
            biz_type: BizType::Alipay,
            call_back_url: "https://shop.example/notify?code=alipay".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        qr.data.unwrap().code_url,
        "weixin://wxpay/bizpayurl?pr=0000000696"
    );
    let (envelope, data) = gw.last();
    assert_eq!(envelope.action, "ACTIVEPAY");
    assert_eq!(data["operator_id"], "0000000696");
    assert_eq!(
        data["call_back_url"],
        "https://shop.example/notify?code=alipay"
    );

    let refund: Answer<RefundResponse> = client
        .refund(&RefundRequest {
            order_id: Some("R1".into()),
            ori_order_id: "A1".into(),
            refund_amt: Cents(40),
        })
        .await
        .unwrap();
    assert_eq!(refund.data.unwrap().refund_amt, Cents(40));
    assert_eq!(gw.last().0.action, "REFUND");

    let query = client.refund_query("R1").await.unwrap();
    assert_eq!(query.data.unwrap().order_id, "R1");
    assert_eq!(gw.last().0.action, "REFUND_QUERY");

    let raw = client
        .call(
            Action::Refund,
            &obj(json!({"order_id": "R2", "ori_order_id": "A1", "refund_amt": "7"})),
        )
        .await
        .unwrap();
    assert_eq!(raw.data.unwrap()["refund_amt"], "7");
}
