//! A sandbox running in this process, a connector configured from its published
//! credentials, the control API, and a merchant-side receiver for the wallet's notifications.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use qrgate_connector_api::{ChannelEvent, Connector};
use qrgate_connectors::{TimeoutSettings, WalletSettings};
use qrgate_sandbox::{wallet_modules, RunningSandbox, Sandbox, SandboxConfig};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Wechat,
    Alipay,
    Unionpay,
}

impl Kind {
    fn wallet(self) -> &'static str {
        match self {
            Kind::Wechat => "wechat",
            Kind::Alipay => "alipay",
            Kind::Unionpay => "unionpay",
        }
    }

    /// A code in the wallet's format that the sandbox never issued.
    pub fn unknown_code(self) -> String {
        match self {
            Kind::Wechat => "134567890123456789".into(),
            Kind::Alipay => "286543210987654321".into(),
            Kind::Unionpay => "6212345678901234567".into(),
        }
    }

    /// Whether the wallet has a rate query the connector implements (WeChat's
    /// `queryexchagerate`); the others answer `NotSupported`.
    pub fn quotes_exchange_rates(self) -> bool {
        matches!(self, Kind::Wechat)
    }

    pub fn insufficient_balance_code(self) -> &'static str {
        match self {
            Kind::Wechat => "NOTENOUGH",
            Kind::Alipay => "ACQ.BUYER_BALANCE_NOT_ENOUGH",
            Kind::Unionpay => "65",
        }
    }
}

pub struct World {
    pub kind: Kind,
    sandbox: RunningSandbox,
    _secapi: Option<qrgate_sandbox::wechat::SecapiServer>,
    http: reqwest::Client,
    credentials: Value,
    counter: AtomicU64,
}

impl World {
    pub async fn start(kind: Kind) -> World {
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
        let secapi = match kind {
            Kind::Wechat => Some(
                qrgate_sandbox::wechat::serve_secapi(
                    sandbox,
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                )
                .await
                .unwrap(),
            ),
            Kind::Alipay | Kind::Unionpay => None,
        };
        let http = reqwest::Client::new();
        let credentials: Value = http
            .get(format!("{}/control/credentials", running.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        World {
            kind,
            sandbox: running,
            _secapi: secapi,
            http,
            credentials,
            counter: AtomicU64::new(0),
        }
    }

    pub fn url(&self) -> String {
        self.sandbox.url()
    }

    /// The connector, configured exactly as a provider would paste the sandbox's credentials
    /// into `[wallets.<name>]`.
    pub fn connector(&self, request_timeout: Duration) -> Arc<dyn Connector> {
        self.connector_from(&self.credentials, request_timeout)
    }

    /// A WeChat connector whose API key is not the merchant's: every request it signs is
    /// forged as far as the wallet can tell.
    pub fn wechat_connector_with_another_key(&self) -> Arc<dyn Connector> {
        assert_eq!(
            self.kind,
            Kind::Wechat,
            "only WeChat signs with a shared key"
        );
        let mut credentials = self.credentials.clone();
        credentials["wechat"]["api_key"] = json!("0123456789abcdef0123456789abcdef");
        self.connector_from(&credentials, Duration::from_secs(10))
    }

    fn connector_from(&self, credentials: &Value, request_timeout: Duration) -> Arc<dyn Connector> {
        let timeouts = TimeoutSettings {
            connect_timeout_ms: 2_000,
            request_timeout_ms: u64::try_from(request_timeout.as_millis()).unwrap(),
        };
        let settings = match self.kind {
            Kind::Wechat => WalletSettings {
                wechatpay: Some(serde_json::from_value(credentials["wechat"].clone()).unwrap()),
                timeouts,
                ..Default::default()
            },
            Kind::Alipay => WalletSettings {
                alipay: Some(serde_json::from_value(credentials["alipay"].clone()).unwrap()),
                timeouts,
                ..Default::default()
            },
            Kind::Unionpay => {
                // The gateway adds its own notification endpoint to what the sandbox lists.
                let mut settings = credentials["unionpay"].clone();
                settings["back_url"] = json!("http://127.0.0.1:9/unionpay-notify");
                WalletSettings {
                    unionpay: Some(serde_json::from_value(settings).unwrap()),
                    timeouts,
                    ..Default::default()
                }
            }
        };
        settings.build().unwrap().into_iter().next().unwrap()
    }

    /// A fresh order number, alphanumeric (UnionPay accepts nothing else).
    pub fn order_no(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("QG{}{n:04}", chrono::Utc::now().format("%H%M%S%f"))
    }

    pub fn refund_no(&self, n: u32) -> String {
        format!(
            "RF{}{n:02}{}",
            chrono::Utc::now().format("%H%M%S%f"),
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}/control{path}", self.url()));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status < 300 {
            Ok(value)
        } else {
            Err((status, value))
        }
    }

    pub async fn customer(&self, balance_fen: i64) -> String {
        let c = self
            .control(
                reqwest::Method::POST,
                "/customers",
                Some(json!({"name": "Li Lei", "balance_fen": balance_fen})),
            )
            .await
            .unwrap();
        c["id"].as_str().unwrap().to_owned()
    }

    pub async fn code(&self, customer: &str, behaviour: Value) -> String {
        let c = self
            .control(reqwest::Method::POST, "/codes", Some(json!({"customer_id": customer, "wallet": self.kind.wallet(), "behaviour": behaviour})))
            .await
            .unwrap();
        c["code"].as_str().unwrap().to_owned()
    }

    pub async fn balance(&self, customer: &str) -> i64 {
        let c = self
            .control(
                reqwest::Method::GET,
                &format!("/customers/{customer}"),
                None,
            )
            .await
            .unwrap();
        c["balance_fen"].as_i64().unwrap()
    }

    pub async fn advance(&self, seconds: i64) {
        self.control(
            reqwest::Method::POST,
            "/clock/advance",
            Some(json!({"seconds": seconds})),
        )
        .await
        .unwrap();
    }

    pub async fn tick(&self) {
        self.control(reqwest::Method::POST, "/tick", None)
            .await
            .unwrap();
    }

    pub async fn faults(&self, faults: Value) {
        self.control(
            reqwest::Method::PUT,
            &format!("/faults/{}", self.kind.wallet()),
            Some(faults),
        )
        .await
        .unwrap();
    }

    /// The sandbox's rates to CNY ×10^8, by currency code.
    pub async fn rates(&self) -> Value {
        self.control(reqwest::Method::GET, "/rates", None)
            .await
            .unwrap()
    }

    pub async fn set_rates(&self, rates: Value) {
        self.control(reqwest::Method::PUT, "/rates", Some(rates))
            .await
            .unwrap();
    }

    pub async fn scan_qr(&self, code_url: &str) {
        self.control(
            reqwest::Method::POST,
            "/qr/scan",
            Some(json!({"code_url": code_url})),
        )
        .await
        .unwrap();
    }

    pub async fn try_pay_qr(&self, code_url: &str, customer: &str) -> Result<Value, (u16, Value)> {
        self.control(
            reqwest::Method::POST,
            "/qr/pay",
            Some(json!({"code_url": code_url, "customer_id": customer})),
        )
        .await
    }

    pub async fn pay_qr(&self, code_url: &str, customer: &str) {
        self.try_pay_qr(code_url, customer).await.unwrap();
    }

    pub async fn notifications_delivered(&self) -> usize {
        let all = self
            .control(reqwest::Method::GET, "/notifications", None)
            .await
            .unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|n| n["delivered"] == true)
            .count()
    }

    /// A merchant-side endpoint that verifies each notification with the connector and answers
    /// with the connector's acknowledgement, as the gateway will.
    pub async fn receiver(&self, connector: Arc<dyn Connector>) -> Receiver {
        let log = Arc::new(Mutex::new(ReceiverLog::default()));
        let state = (connector, log.clone());
        let app = axum::Router::new()
            .route("/notify", axum::routing::post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/notify"),
            log,
        }
    }
}

#[derive(Default)]
struct ReceiverLog {
    verified: Vec<ChannelEvent>,
    rejected: usize,
}

pub struct Receiver {
    pub url: String,
    log: Arc<Mutex<ReceiverLog>>,
}

impl Receiver {
    pub async fn verified(&self) -> Vec<ChannelEvent> {
        self.log.lock().unwrap().verified.clone()
    }

    pub async fn rejected(&self) -> usize {
        self.log.lock().unwrap().rejected
    }
}

type ReceiverState = (Arc<dyn Connector>, Arc<Mutex<ReceiverLog>>);

async fn receive(
    State((connector, log)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    match connector.verify_callback(content_type, &body) {
        Ok(event) => {
            let ack = (event.ack_body.clone(), event.ack_content_type);
            log.lock().unwrap().verified.push(event);
            ([("content-type", ack.1)], ack.0).into_response()
        }
        Err(_) => {
            log.lock().unwrap().rejected += 1;
            (StatusCode::BAD_REQUEST, "rejected").into_response()
        }
    }
}
