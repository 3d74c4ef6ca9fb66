//! The web till (`/pos`) over real HTTP, as a browser without JavaScript would use it: the
//! gateway with its engine and the wallet sandbox in process, on SQLite and PostgreSQL. The
//! gateway's clock and the sandbox's move together, by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use chrono::{Duration, Utc};
use qrgate_connectors::{TimeoutSettings, WalletSettings};
use qrgate_domain::{Currency, MerchantOrderId, OperatorStatus, Order, OrderStatus, Wallet};
use qrgate_engine::{
    ClosingPolicy, CreatedMerchant, Engine, FixedClock, MasterKey, MerchantRequest, SignInLimits,
    Wallets,
};
use qrgate_http::{AppState, HttpConfig};
use qrgate_sandbox::{wallet_modules, RunningSandbox, Sandbox, SandboxConfig};
use qrgate_testkit::{backend_tests, TestDb};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod cancel;
mod refund;
mod today;

const PIN: &str = "432198";

struct World {
    engine: Engine,
    clock: Arc<FixedClock>,
    sandbox: Sandbox,
    running: RunningSandbox,
    _secapi: qrgate_sandbox::wechat::SecapiServer,
    merchant: CreatedMerchant,
    base: String,
    http: reqwest::Client,
    _db: TestDb,
}

/// One browser: its cookies, by hand (no redirects followed, so each answer can be checked).
struct Till<'w> {
    w: &'w World,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
    accept_language: &'static str,
    /// Sent as `X-Forwarded-For` (as a proxy in front would).
    forwarded_for: Option<String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
    retry_after: Option<String>,
    set_cookies: Vec<String>,
}

impl Page {
    /// The value of the first input named `name`.
    fn field(&self, name: &str) -> String {
        let at = self
            .body
            .find(&format!("name=\"{name}\""))
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body));
        let tag = self.body[at..].split('>').next().unwrap();
        let start = tag.find("value=\"").unwrap() + "value=\"".len();
        tag[start..].split('"').next().unwrap().to_owned()
    }

    fn attribute(&self, name: &str) -> String {
        let needle = format!("{name}=\"");
        let start = self.body.find(&needle).unwrap() + needle.len();
        self.body[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
    }
}

impl World {
    async fn start(db: TestDb) -> World {
        World::start_with(db, SignInLimits::default(), HttpConfig::default()).await
    }

    async fn start_with(db: TestDb, limits: SignInLimits, config: HttpConfig) -> World {
        let sandbox = Sandbox::new(
            SandboxConfig {
                seed: 9,
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
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
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
                request_timeout_ms: 3_000,
            },
        };
        let policy = ClosingPolicy {
            first_check: Duration::seconds(2),
            interval: Duration::seconds(2),
            confirm_window: Duration::seconds(20),
            reverse_retry: Duration::seconds(1),
        };
        let mut wallets = Wallets::new(settings.build().unwrap());
        for w in Wallet::ALL {
            wallets = wallets.with_policy(w, policy);
        }
        wallets.notify_base_url = format!("http://{addr}");
        let clock = Arc::new(FixedClock::new(Utc::now()));
        let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock.clone())
            .await
            .unwrap()
            .with_wallets(wallets)
            .with_sign_in_limits(&limits);
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
        tokio::spawn(qrgate_http::serve(
            listener,
            AppState::new(engine.clone(), config),
            std::future::pending(),
        ));
        World {
            engine,
            clock,
            sandbox,
            running,
            _secapi: secapi,
            merchant,
            base: format!("http://{addr}"),
            http,
            _db: db,
        }
    }

    fn till(&self) -> Till<'_> {
        Till {
            w: self,
            http: self.http.clone(),
            cookies: Vec::new(),
            accept_language: "en-US,en",
            forwarded_for: None,
        }
    }

    /// A browser on another machine: its requests come from `source` (a loopback address).
    fn till_from(&self, source: &str) -> Till<'_> {
        Till {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(source.parse::<IpAddr>().unwrap())
                .build()
                .unwrap(),
            ..self.till()
        }
    }

    fn merchant_id(&self) -> &str {
        self.merchant.merchant.id.as_str()
    }

    async fn control(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/control{path}", self.running.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn customer(&self, balance_fen: i64) -> String {
        self.control(
            "/customers",
            json!({"name": "Li Lei", "balance_fen": balance_fen}),
        )
        .await
        .1["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn code(&self, customer: &str, wallet: &str, kind: &str) -> String {
        self.control(
            "/codes",
            json!({"customer_id": customer, "wallet": wallet, "behaviour": {"kind": kind}}),
        )
        .await
        .1["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn balance(&self, customer: &str) -> i64 {
        let c: Value = self
            .http
            .get(format!(
                "{}/control/customers/{customer}",
                self.running.url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        c["balance_fen"].as_i64().unwrap()
    }

    async fn trades(&self) -> usize {
        let t: Value = self
            .http
            .get(format!("{}/control/trades", self.running.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        t.as_array().unwrap().len()
    }

    /// Moves both clocks forward and runs the closing and refund loops until nothing is due.
    async fn advance(&self, seconds: i64) {
        self.clock.advance(Duration::seconds(seconds));
        self.sandbox.clock().advance(Duration::seconds(seconds));
        self.sandbox.tick().await;
        for _ in 0..50 {
            let orders = self.engine.close_due_orders("test", 16).await.unwrap();
            let refunds = self.engine.settle_due_refunds("test", 16).await.unwrap();
            if orders + refunds == 0 {
                return;
            }
        }
        panic!("the closing loop never ran dry");
    }

    async fn order(&self, order_id: &str) -> Option<Order> {
        self.engine
            .find_order(
                &self.merchant.merchant,
                &MerchantOrderId::parse(order_id).unwrap(),
            )
            .await
            .unwrap()
    }

    async fn orders_today(&self) -> Vec<Order> {
        let m = &self.merchant.merchant;
        let day = self.engine.merchant_day(m, self.engine.now());
        self.engine.orders_of_day(m, day).await.unwrap()
    }
}

impl Till<'_> {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, r: reqwest::Response) -> Page {
        let set_cookies = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for value in r.headers().get_all(SET_COOKIE) {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        Page {
            status: r.status(),
            location: r
                .headers()
                .get(LOCATION)
                .map(|l| l.to_str().unwrap().to_owned()),
            retry_after: r
                .headers()
                .get("retry-after")
                .map(|l| l.to_str().unwrap().to_owned()),
            set_cookies,
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.w.base))
            .header(COOKIE, self.cookie_header())
            .header("accept-language", self.accept_language)
            .send()
            .await
            .unwrap();
        self.keep(r).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut request = self
            .http
            .post(format!("{}{path}", self.w.base))
            .header(COOKIE, self.cookie_header())
            .header("accept-language", self.accept_language)
            .form(form);
        if let Some(hops) = &self.forwarded_for {
            request = request.header("x-forwarded-for", hops);
        }
        let r = request.send().await.unwrap();
        self.keep(r).await
    }

    async fn sign_in_with(&mut self, merchant: &str, operator: &str, pin: &str) -> Page {
        self.post(
            "/pos/sign-in",
            &[
                ("merchant_id", merchant),
                ("operator_id", operator),
                ("pin", pin),
            ],
        )
        .await
    }

    async fn sign_in(&mut self) -> Page {
        let merchant = self.w.merchant_id().to_owned();
        let page = self.sign_in_with(&merchant, "0000000001", PIN).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some("/pos"));
        page
    }

    /// The sale screen, then its form sent with the code (a scan) or a wallet (a QR).
    async fn sell(&mut self, amount: &str, tip: &str, how: (&str, &str)) -> (Page, String) {
        let sale = self.get("/pos").await;
        assert_eq!(sale.status, StatusCode::OK, "{}", sale.body);
        let csrf = sale.field("csrf");
        let order_id = sale.field("order_id");
        let path = if how.0 == "code" {
            "/pos/charge"
        } else {
            "/pos/qr"
        };
        let page = self
            .post(
                path,
                &[
                    ("csrf", &csrf),
                    ("order_id", &order_id),
                    ("amount", amount),
                    ("tip", tip),
                    how,
                ],
            )
            .await;
        (page, order_id)
    }
}

/// One sign-in from a browser of its own at `source`.
async fn attempt(w: &World, source: &str, merchant: &str, operator: &str, pin: &str) -> Page {
    w.till_from(source)
        .sign_in_with(merchant, operator, pin)
        .await
}

/// A sign-in page with the ids typed into it replaced, to compare answers to different ids.
fn without(page: &Page, merchant: &str, operator: &str) -> String {
    page.body
        .replace(&format!("value=\"{merchant}\""), "value=\"M\"")
        .replace(&format!("value=\"{operator}\""), "value=\"O\"")
}

async fn wrong_ids_and_wrong_pins_get_the_same_answer_whether_the_ids_exist_or_not(db: TestDb) {
    let w = World::start(db).await;
    let merchant = w.merchant_id().to_owned();
    let checks = w.engine.pin_checks();
    // Before the ids exist: an unknown merchant, an unknown operator, ids that are not ids.
    let unknown_merchant = attempt(&w, "127.0.0.2", "ON00000002", "0000000001", "000000").await;
    let unknown_operator = attempt(&w, "127.0.0.2", &merchant, "0000000002", "000000").await;
    let not_ids = attempt(&w, "127.0.0.2", "not an id", "x", "1").await;
    // Each cost one PIN check (a dummy hash), as a wrong PIN does.
    assert_eq!(w.engine.pin_checks(), checks + 3);
    for page in [&unknown_merchant, &unknown_operator, &not_ids] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page
            .body
            .contains("Merchant id, operator id or PIN is wrong."));
        assert!(page.set_cookies.is_empty());
    }

    // The same ids once they exist, with PINs: the same bytes.
    let second = w
        .engine
        .create_merchant(&MerchantRequest {
            name: "Lotus Tea".into(),
            currency: Currency::Cad,
            time_zone: "America/Toronto".parse().unwrap(),
            id_prefix: "ON".into(),
        })
        .await
        .unwrap();
    assert_eq!(second.merchant.id.as_str(), "ON00000002");
    w.engine
        .set_operator_pin(&second.merchant.id, &second.operator.id, "111111")
        .await
        .unwrap();
    let op2 = w
        .engine
        .add_operator(&w.merchant.merchant.id, "Li Na")
        .await
        .unwrap();
    assert_eq!(op2.id.as_str(), "0000000002");
    w.engine
        .set_operator_pin(&w.merchant.merchant.id, &op2.id, "222222")
        .await
        .unwrap();
    let known_merchant = attempt(&w, "127.0.0.3", "ON00000002", "0000000001", "000000").await;
    let known_operator = attempt(&w, "127.0.0.3", &merchant, "0000000002", "000000").await;
    let wrong_pin = attempt(&w, "127.0.0.3", &merchant, "0000000001", "000000").await;
    assert_eq!(w.engine.pin_checks(), checks + 6);
    assert_eq!(known_merchant.status, unknown_merchant.status);
    assert_eq!(known_merchant.body, unknown_merchant.body);
    assert_eq!(known_operator.status, unknown_operator.status);
    assert_eq!(known_operator.body, unknown_operator.body);
    assert_eq!(wrong_pin.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        without(&wrong_pin, &merchant, "0000000001"),
        without(&unknown_operator, &merchant, "0000000002")
    );
    assert_eq!(
        without(&unknown_merchant, "ON00000002", "0000000001"),
        without(&unknown_operator, &merchant, "0000000002")
    );

    // The lock comes after as many attempts, with the same page, for ids that exist
    // (0000000002 has had one since its PIN was set, which forgot the one before) and ids
    // that do not (0000000009).
    for source in ["127.0.0.4", "127.0.0.5", "127.0.0.6"] {
        let page = attempt(&w, source, &merchant, "0000000002", "000000").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    for source in ["127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"] {
        let page = attempt(&w, source, &merchant, "0000000009", "000000").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let locked_known = attempt(&w, "127.0.0.8", &merchant, "0000000002", "000000").await;
    let locked_unknown = attempt(&w, "127.0.0.8", &merchant, "0000000009", "000000").await;
    for page in [&locked_known, &locked_unknown] {
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
        assert!(page
            .body
            .contains("Too many wrong PINs for this operator id."));
        assert_eq!(page.retry_after.as_deref(), Some("60"));
    }
    assert_eq!(
        without(&locked_known, &merchant, "0000000002"),
        without(&locked_unknown, &merchant, "0000000009")
    );
    // While locked, nothing is checked, not even the right PIN, which is refused alike.
    let checks_locked = w.engine.pin_checks();
    let right_pin = attempt(&w, "127.0.0.9", &merchant, "0000000002", "222222").await;
    let still_unknown = attempt(&w, "127.0.0.9", &merchant, "0000000009", "222222").await;
    assert_eq!(w.engine.pin_checks(), checks_locked);
    assert_eq!(
        without(&right_pin, &merchant, "0000000002"),
        without(&still_unknown, &merchant, "0000000009")
    );
    assert_eq!(right_pin.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn guessing_from_elsewhere_never_locks_the_shops_own_till_out(db: TestDb) {
    let w = World::start(db).await;
    let merchant = w.merchant_id().to_owned();
    // The shop's till signed in yesterday: it is a known till of the merchant.
    let mut till = w.till();
    let page = till.sign_in().await;
    assert!(
        page.set_cookies
            .iter()
            .any(|c| c.starts_with("qrgate_till_known=") && c.contains("HttpOnly")),
        "{:?}",
        page.set_cookies
    );
    till.cookies.retain(|(k, _)| k == "qrgate_till_known");

    // Someone elsewhere guesses the cashier's PIN.
    let mut attacker = w.till_from("127.0.0.66");
    for _ in 0..4 {
        let page = attacker
            .sign_in_with(&merchant, "0000000001", "000000")
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let page = attacker
        .sign_in_with(&merchant, "0000000001", "000000")
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page
        .body
        .contains("The shop's usual till can still sign in"));
    // Locked for every browser but known tills: the right PIN tells the attacker nothing.
    let page = attacker.sign_in_with(&merchant, "0000000001", PIN).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);

    // The cashier at the shop's till signs in at once with the right PIN.
    till.sign_in().await;
    assert_eq!(till.get("/pos").await.status, StatusCode::OK);

    // A browser that never signed in waits for the lock (a minute), then signs in.
    let mut new_phone = w.till_from("127.0.0.67");
    let page = new_phone.sign_in_with(&merchant, "0000000001", PIN).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    w.clock.advance(Duration::seconds(61));
    new_phone.sign_in().await;

    // The attacker's address is paused after ten failures, whatever ids it tries next; others
    // are not.
    w.clock.advance(Duration::seconds(61));
    for i in 0..5 {
        let page = attacker
            .sign_in_with(&merchant, &format!("00000001{i:02}"), "000000")
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{i}: {}", page.body);
    }
    let page = attacker
        .sign_in_with(&merchant, "0000000200", "000000")
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        page.body
            .contains("Too many sign-in attempts from this network."),
        "{}",
        page.body
    );
    assert_eq!(page.retry_after.as_deref(), Some("60"));
    let page = attempt(&w, "127.0.0.68", &merchant, "0000000200", "000000").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
}

async fn a_flood_beyond_the_sign_ins_at_once_is_refused_at_once_without_checking_pins(db: TestDb) {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let limits = SignInLimits {
        checks_at_once: 1,
        sign_ins_at_once: 1,
        ..SignInLimits::default()
    };
    let w = World::start_with(db, limits, HttpConfig::default()).await;
    let merchant = w.merchant_id().to_owned();
    // A PIN hash with many passes, so that one sign-in holds the only place for seconds.
    let slow = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(8 * 1024, 400, 1, None).unwrap(),
    )
    .hash_password(PIN.as_bytes(), &SaltString::encode_b64(&[3u8; 16]).unwrap())
    .unwrap()
    .to_string();
    w.engine
        .store()
        .set_operator_pin_hash(
            &w.merchant.merchant.id,
            &w.merchant.operator.id,
            &slow,
            w.engine.now(),
        )
        .await
        .unwrap();
    let slow_sign_in = tokio::spawn({
        let (base, merchant) = (w.base.clone(), merchant.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{base}/pos/sign-in"))
                .form(&[
                    ("merchant_id", merchant.as_str()),
                    ("operator_id", "0000000001"),
                    ("pin", "000000"),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    for _ in 0..3000 {
        if w.engine.pin_checks() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        w.engine.pin_checks(),
        1,
        "the slow sign-in is checking its PIN"
    );
    let flood: Vec<_> = (0..20)
        .map(|i| {
            let (base, merchant) = (w.base.clone(), merchant.clone());
            tokio::spawn(async move {
                let operator = format!("00000003{i:02}");
                let r = reqwest::Client::builder()
                    .local_address(format!("127.0.3.{i}").parse::<IpAddr>().unwrap())
                    .build()
                    .unwrap()
                    .post(format!("{base}/pos/sign-in"))
                    .form(&[
                        ("merchant_id", merchant.as_str()),
                        ("operator_id", operator.as_str()),
                        ("pin", "000000"),
                    ])
                    .send()
                    .await
                    .unwrap();
                let retry = r.headers().get("retry-after").cloned();
                (r.status(), retry, r.text().await.unwrap())
            })
        })
        .collect();
    for answer in flood {
        let (status, retry_after, body) = answer.await.unwrap();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(
            body.contains("Too many sign-ins right now: try again in a moment."),
            "{body}"
        );
        assert_eq!(retry_after.unwrap(), "1");
    }
    // None of them checked a PIN.
    assert_eq!(w.engine.pin_checks(), 1);
    assert_eq!(slow_sign_in.await.unwrap(), StatusCode::UNAUTHORIZED);
    // The place is free again.
    let page = attempt(&w, "127.0.0.2", &merchant, "0000000002", "000000").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert_eq!(w.engine.pin_checks(), 2);
}

async fn a_pin_change_or_disabling_ends_the_operators_sessions_only(db: TestDb) {
    let w = World::start(db).await;
    let merchant = w.merchant_id().to_owned();
    let (m, o) = (&w.merchant.merchant.id, &w.merchant.operator.id);
    let other = w.engine.add_operator(m, "Li Na").await.unwrap();
    w.engine
        .set_operator_pin(m, &other.id, "222222")
        .await
        .unwrap();
    let mut colleague = w.till();
    let page = colleague
        .sign_in_with(&merchant, "0000000002", "222222")
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let mut till = w.till();
    till.sign_in().await;
    assert_eq!(till.get("/pos").await.status, StatusCode::OK);

    w.engine.set_operator_pin(m, o, "864209").await.unwrap();
    assert_eq!(
        till.get("/pos").await.location.as_deref(),
        Some("/pos/sign-in")
    );
    let page = till.sign_in_with(&merchant, "0000000001", PIN).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let page = till.sign_in_with(&merchant, "0000000001", "864209").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(till.get("/pos").await.status, StatusCode::OK);

    w.engine
        .set_operator_status(m, o, OperatorStatus::Disabled)
        .await
        .unwrap();
    assert_eq!(
        till.get("/pos").await.location.as_deref(),
        Some("/pos/sign-in")
    );
    let page = till.sign_in_with(&merchant, "0000000001", "864209").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page
        .body
        .contains("This operator is disabled: ask the manager."));
    assert!(page.set_cookies.is_empty());
    // A wrong PIN for a disabled operator is just a wrong PIN.
    let page = till.sign_in_with(&merchant, "0000000001", "000000").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    // The colleague's session never noticed.
    assert_eq!(colleague.get("/pos").await.status, StatusCode::OK);

    w.engine
        .set_operator_status(m, o, OperatorStatus::Active)
        .await
        .unwrap();
    let page = till.sign_in_with(&merchant, "0000000001", "864209").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(till.get("/pos").await.status, StatusCode::OK);
}

async fn a_new_pin_needs_six_digits_and_a_shorter_one_set_before_still_signs_in(db: TestDb) {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let w = World::start(db).await;
    let (m, o) = (&w.merchant.merchant.id, &w.merchant.operator.id);
    for short in ["4321", "54321", "1234567890123", "12a456"] {
        let refused = w.engine.set_operator_pin(m, o, short).await.unwrap_err();
        assert_eq!(refused.to_string(), "a PIN is 6 to 12 digits");
    }
    // A 4-digit PIN set by an older version, as it stored it.
    let old = argon2::Argon2::default()
        .hash_password(b"4321", &SaltString::encode_b64(&[5u8; 16]).unwrap())
        .unwrap()
        .to_string();
    w.engine
        .store()
        .set_operator_pin_hash(m, o, &old, w.engine.now())
        .await
        .unwrap();
    let mut till = w.till();
    let page = till
        .sign_in_with(w.merchant_id(), "0000000001", "4321")
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(till.get("/pos").await.status, StatusCode::OK);
}

async fn the_till_cookies_are_secure_when_configured(db: TestDb) {
    let w = World::start_with(
        db,
        SignInLimits::default(),
        HttpConfig {
            till_secure_cookie: true,
            ..HttpConfig::default()
        },
    )
    .await;
    let mut till = w.till();
    let page = till.sign_in().await;
    assert_eq!(page.set_cookies.len(), 2, "{:?}", page.set_cookies);
    for cookie in &page.set_cookies {
        assert!(cookie.ends_with("; Secure"), "{cookie}");
        assert!(cookie.contains("; HttpOnly; SameSite=Strict"), "{cookie}");
    }
    let plain = World::start(TestDb::sqlite().await).await;
    let page = plain.till().sign_in().await;
    assert!(page.set_cookies.iter().all(|c| !c.contains("Secure")));
}

async fn behind_a_trusted_proxy_each_client_address_is_limited_apart(db: TestDb) {
    let limits = SignInLimits {
        source_burst: 3,
        ..SignInLimits::default()
    };
    let config = HttpConfig {
        till_trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..HttpConfig::default()
    };
    let w = World::start_with(db, limits, config).await;
    let merchant = w.merchant_id().to_owned();
    let mut through_proxy = w.till();
    through_proxy.forwarded_for = Some("203.0.113.1".into());
    for i in 0..3 {
        let page = through_proxy
            .sign_in_with(&merchant, &format!("00000004{i:02}"), "000000")
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let page = through_proxy
        .sign_in_with(&merchant, "0000000410", "000000")
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.body.contains("from this network"));
    // Another client of the same proxy is not held back; a client that makes up hops before
    // its own address is still itself.
    through_proxy.forwarded_for = Some("203.0.113.2".into());
    let page = through_proxy
        .sign_in_with(&merchant, "0000000411", "000000")
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    through_proxy.forwarded_for = Some("198.51.100.9, 203.0.113.1".into());
    let page = through_proxy
        .sign_in_with(&merchant, "0000000412", "000000")
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    // From a peer that is not a trusted proxy, the header counts for nothing.
    let mut direct = w.till_from("127.0.0.2");
    for i in 0..4 {
        direct.forwarded_for = Some(format!("192.0.2.{i}"));
        let page = direct
            .sign_in_with(&merchant, &format!("00000005{i:02}"), "000000")
            .await;
        let expected = if i < 3 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(page.status, expected, "{i}");
    }
}

async fn a_session_ends_after_thirty_idle_minutes_or_twelve_hours(db: TestDb) {
    let w = World::start(db).await;
    let mut till = w.till();
    assert_eq!(
        till.get("/pos").await.location.as_deref(),
        Some("/pos/sign-in"),
        "not signed in"
    );
    till.sign_in().await;
    w.advance(29 * 60).await;
    assert_eq!(till.get("/pos").await.status, StatusCode::OK);
    w.advance(31 * 60).await;
    let page = till.get("/pos").await;
    assert_eq!(page.location.as_deref(), Some("/pos/sign-in?expired=1"));
    let page = till.get("/pos/sign-in?expired=1").await;
    assert!(page
        .body
        .contains("Your session expired, please sign in again."));
    // The polling endpoint says so in JSON.
    till.sign_in().await;
    let token = till.cookies.clone();
    w.advance(31 * 60).await;
    let r = till.get("/pos/orders/T1/status").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("session_expired"), "{}", r.body);

    // Used every 25 minutes, a session still ends 12 hours after sign-in.
    till.cookies = token;
    till.sign_in().await;
    let mut ended_after = None;
    for i in 1..=30 {
        w.advance(25 * 60).await;
        if till.get("/pos").await.status != StatusCode::OK {
            ended_after = Some(i * 25);
            break;
        }
    }
    assert_eq!(ended_after, Some(725), "12 h = 720 min");
}

async fn a_form_without_the_csrf_token_is_refused_and_does_nothing(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, "wechat", "instant").await;
    let mut till = w.till();
    till.sign_in().await;
    let sale = till.get("/pos").await;
    let order_id = sale.field("order_id");
    for csrf in ["", "0123456789abcdef"] {
        let page = till
            .post(
                "/pos/charge",
                &[
                    ("csrf", csrf),
                    ("order_id", &order_id),
                    ("amount", "5"),
                    ("code", &code),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.body.contains("nothing was done"));
        let page = till
            .post(
                "/pos/qr",
                &[
                    ("csrf", csrf),
                    ("order_id", &order_id),
                    ("amount", "5"),
                    ("wallet", "alipay"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        till.post("/pos/sign-out", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(w.orders_today().await.is_empty());
    assert_eq!(w.trades().await, 0);
    assert_eq!(w.balance(&customer).await, 100_000);
    // Signing out with the token works, and ends the session.
    let csrf = sale.field("csrf");
    let page = till.post("/pos/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(page.location.as_deref(), Some("/pos/sign-in"));
    assert_eq!(
        till.get("/pos").await.location.as_deref(),
        Some("/pos/sign-in")
    );
}

async fn a_scanned_code_is_charged_once_even_when_the_form_is_sent_twice(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, "alipay", "instant").await;
    let mut till = w.till();
    till.sign_in().await;
    let (page, order_id) = till.sell("12.50", "1", ("code", &code)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location, Some(format!("/pos/orders/{order_id}")));
    let shown = till.get(&format!("/pos/orders/{order_id}")).await;
    assert!(shown.body.contains("id=\"result\">Paid<"), "{}", shown.body);
    assert!(shown.body.contains("CA$13.50"));
    assert!(shown.body.contains("data-final=\"true\""));
    let order = w.order(&order_id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.operator_id.as_deref(), Some("0000000001"));
    assert_eq!(order.terminal_no.as_deref(), Some("WEB-TILL"));
    // 13.50 CAD at the sandbox's 5.2.
    assert_eq!(w.balance(&customer).await, 100_000 - 7020);

    // The same form again (the network dropped the answer; the script resends it): the
    // same sale, not a second charge. The script gets JSON.
    let sale_csrf = till.get("/pos").await.field("csrf");
    let r = w
        .http
        .post(format!("{}/pos/charge", w.base))
        .header(COOKIE, till.cookie_header())
        .header("x-till-fetch", "1")
        .form(&[
            ("csrf", sale_csrf.as_str()),
            ("order_id", &order_id),
            ("amount", "12.50"),
            ("tip", "1"),
            ("code", &code),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["redirect"], format!("/pos/orders/{order_id}"));
    assert_eq!(w.balance(&customer).await, 100_000 - 7020);
    assert_eq!(w.orders_today().await.len(), 1);
}

async fn a_mistyped_code_is_refused_before_any_wallet_call(db: TestDb) {
    let w = World::start(db).await;
    let mut till = w.till();
    till.sign_in().await;
    let (page, order_id) = till.sell("8", "", ("code", "13456")).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body
            .contains("This is not a payment code: check the digits."),
        "{}",
        page.body
    );
    // The amount is kept, and so is the sale's id: nothing was stored under it.
    assert!(page.body.contains("value=\"8\""));
    assert_eq!(page.field("order_id"), order_id);
    assert_eq!(w.trades().await, 0);
    assert!(w.orders_today().await.is_empty());
    // No amount: said so, nothing sent.
    let (page, _) = till.sell("", "", ("code", "134567890123456789")).await;
    assert!(page.body.contains("Enter the amount first."));
    assert_eq!(w.trades().await, 0);
}

async fn a_declined_code_says_why_in_plain_words(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut till = w.till();
    till.sign_in().await;
    for (kind, wallet, reason) in [
        ("insufficient_balance", "alipay", "Insufficient balance"),
        ("expired", "wechat", "The payment code expired"),
    ] {
        let code = w.code(&customer, wallet, kind).await;
        let (page, order_id) = till.sell("20", "", ("code", &code)).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let shown = till.get(&format!("/pos/orders/{order_id}")).await;
        assert!(shown.body.contains("Payment failed"), "{}", shown.body);
        assert!(shown.body.contains(reason), "{kind}: {}", shown.body);
    }
    assert_eq!(w.balance(&customer).await, 100_000);
}

async fn a_qr_is_shown_paid_by_the_customer_and_the_till_sees_it(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut till = w.till();
    till.sign_in().await;
    let (page, order_id) = till.sell("10", "", ("wallet", "wechatpay")).await;
    assert_eq!(
        page.location,
        Some(format!("/pos/orders/{order_id}")),
        "{}",
        page.body
    );
    let shown = till.get(&format!("/pos/orders/{order_id}")).await;
    assert!(shown.body.contains("<svg class=\"qr\""), "{}", shown.body);
    assert!(shown.body.contains("Scan with WeChat Pay to pay"));
    let left: i64 = shown.attribute("data-seconds-left").parse().unwrap();
    assert!((890..=900).contains(&left), "15 minutes to pay: {left}");
    let code_url = shown.attribute("data-code-url");
    let status = till.get(&format!("/pos/orders/{order_id}/status")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&status.body).unwrap(),
        json!({"status": "pending", "final": false})
    );

    let (paid, _) = w
        .control(
            "/qr/pay",
            json!({"code_url": code_url, "customer_id": customer}),
        )
        .await;
    assert!(paid.is_success(), "{paid}");
    let mut seen = String::new();
    for _ in 0..20 {
        seen = till
            .get(&format!("/pos/orders/{order_id}/status"))
            .await
            .body;
        if seen.contains("paid") {
            break;
        }
        w.advance(1).await;
    }
    assert_eq!(
        serde_json::from_str::<Value>(&seen).unwrap()["status"],
        "paid"
    );
    let shown = till.get(&format!("/pos/orders/{order_id}")).await;
    assert!(shown.body.contains("id=\"result\">Paid<"));
    assert_eq!(w.balance(&customer).await, 100_000 - 5200);
}

async fn an_expired_qr_says_nothing_was_charged(db: TestDb) {
    let w = World::start(db).await;
    let mut till = w.till();
    till.sign_in().await;
    let (_, order_id) = till.sell("3", "", ("wallet", "alipay")).await;
    for _ in 0..3 {
        w.advance(8 * 60).await;
        // Keep the session alive, as the polling page does.
        till.get(&format!("/pos/orders/{order_id}/status")).await;
    }
    let shown = till.get(&format!("/pos/orders/{order_id}")).await;
    assert!(
        shown.body.contains("QR expired, nothing was charged"),
        "{}",
        shown.body
    );
    assert_eq!(
        w.order(&order_id).await.unwrap().status,
        OrderStatus::Closed
    );
}

async fn todays_list_shows_paid_failed_and_pending_sales_and_refunds_one(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut till = w.till();
    till.sign_in().await;
    let paid_code = w.code(&customer, "alipay", "instant").await;
    let (_, paid) = till.sell("12", "", ("code", &paid_code)).await;
    w.advance(1).await;
    let poor_code = w.code(&customer, "wechat", "insufficient_balance").await;
    let (_, failed) = till.sell("30", "", ("code", &poor_code)).await;
    w.advance(1).await;
    let (_, pending) = till.sell("7", "", ("wallet", "unionpay")).await;
    let today = till.get("/pos/today").await;
    assert_eq!(today.status, StatusCode::OK);
    for (id, status) in [(&paid, "paid"), (&failed, "failed"), (&pending, "pending")] {
        assert!(
            today
                .body
                .contains(&format!("data-order-id=\"{id}\" data-status=\"{status}\"")),
            "{id} {status}: {}",
            today.body
        );
    }
    assert!(today.body.contains("Waiting for customer"));
    assert!(
        today.body.contains("1 paid, CA$12.00 taken"),
        "{}",
        today.body
    );
    // Newest first.
    assert!(today.body.find(pending.as_str()) < today.body.find(paid.as_str()));

    // Refund part of the paid sale, from its refund screen: nothing is filled in, the sale
    // and what is left are shown. Refunds up to CA$10.00 need no approval here.
    w.engine
        .set_refund_approval_above(
            &w.merchant.merchant.id,
            qrgate_domain::Money::new(1000, Currency::Cad),
        )
        .await
        .unwrap();
    assert!(today
        .body
        .contains(&format!("href=\"/pos/orders/{paid}/refund\"")));
    let path = format!("/pos/orders/{paid}/refund");
    let form = till.get(&path).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert_eq!(form.field("amount"), "", "nothing pre-filled");
    assert!(
        form.body.contains("id=\"refundable\">CA$12.00<"),
        "{}",
        form.body
    );
    assert!(form
        .body
        .contains("Refunds above CA$10.00 need a supervisor"));
    let refund_id = form.field("refund_id");
    let csrf = form.field("csrf");
    let done = till
        .post(
            &path,
            &[("csrf", &csrf), ("refund_id", &refund_id), ("amount", "5")],
        )
        .await;
    assert!(done.body.contains("Refunded CA$5.00."), "{}", done.body);
    // Sent twice, refunded once.
    let again = till
        .post(
            &path,
            &[("csrf", &csrf), ("refund_id", &refund_id), ("amount", "5")],
        )
        .await;
    assert!(again.body.contains("Refunded CA$5.00."), "{}", again.body);
    // More than is left: refused, nothing refunded.
    let fresh_form = till.get(&path).await;
    assert!(fresh_form.body.contains("id=\"refundable\">CA$7.00<"));
    let too_much = till
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("refund_id", &fresh_form.field("refund_id")),
                ("amount", "8"),
            ],
        )
        .await;
    assert!(
        too_much.body.contains("at most CA$7.00"),
        "{}",
        too_much.body
    );
    let order = w.order(&paid).await.unwrap();
    assert_eq!(order.refunded.minor(), 500);
    assert_eq!(w.balance(&customer).await, 100_000 - 6240 + 2600);
    // The receipt lists the refund; 58 mm paper is narrower.
    let receipt = till
        .get(&format!("/pos/orders/{paid}/receipt?paper=58"))
        .await;
    assert!(receipt.body.contains("data-paper=\"58\""));
    assert!(receipt.body.contains("width:48mm"));
    assert!(
        receipt.body.contains("-CA$5.00 refunded"),
        "{}",
        receipt.body
    );
    assert!(receipt.body.contains(&paid));
    assert!(receipt.body.contains("0000000001"));
    let today = till.get("/pos/today").await;
    assert!(
        today.body.contains("1 paid, CA$7.00 taken"),
        "{}",
        today.body
    );
}

async fn the_till_speaks_chinese_when_asked_or_when_the_browser_does(db: TestDb) {
    let w = World::start(db).await;
    let mut till = w.till();
    till.accept_language = "zh-CN,zh;q=0.9";
    let page = till.get("/pos/sign-in").await;
    assert!(page.body.contains("登录收银台"), "{}", page.body);
    assert!(page.body.contains("lang=\"zh-CN\""));
    till.sign_in().await;
    let sale = till.get("/pos").await;
    assert!(sale.body.contains("顾客出示付款码"));
    assert!(sale.body.contains("微信支付"));
    // ?lang= wins and is kept in a cookie.
    till.get("/pos?lang=en").await;
    assert!(till
        .get("/pos")
        .await
        .body
        .contains("Customer shows a code"));
    let (page, _) = till.sell("8", "", ("code", "99")).await;
    assert!(page.body.contains("This is not a payment code"));
}

/// The till's pages carry a strict Content-Security-Policy that allows what they use: their
/// own script and stylesheet, and the receipt's inline style by its hash; and they cannot be
/// framed.
async fn the_tills_pages_forbid_framing_and_allow_only_their_own_script_and_styles(db: TestDb) {
    use base64::Engine as _;
    use sha2::Digest as _;

    let w = World::start(db).await;
    let mut till = w.till();
    till.sign_in().await;
    let (_, order_id) = till.sell("10", "", ("wallet", "wechatpay")).await;
    for path in [
        "/pos".to_owned(),
        format!("/pos/orders/{order_id}"),
        format!("/pos/orders/{order_id}/receipt?paper=58"),
        format!("/pos/orders/{order_id}/receipt?paper=80"),
        "/pos/today".to_owned(),
    ] {
        let r = w
            .http
            .get(format!("{}{path}", w.base))
            .header(COOKIE, till.cookie_header())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers().clone();
        let body = r.text().await.unwrap();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self';"),
            "{csp}"
        );
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
            "{csp}"
        );
        // No inline script and no style attribute (the policy would block them); every
        // inline <style> is allowed by its hash.
        assert!(
            !body.contains("<script>") && !body.contains(" style="),
            "{path}: {body}"
        );
        assert_eq!(path.contains("receipt"), body.contains("<style>"), "{path}");
        for style in body.split("<style>").skip(1) {
            let style = style.split("</style>").next().unwrap();
            let hash = base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha256::digest(style.as_bytes()));
            assert!(
                csp.contains(&format!("'sha256-{hash}'")),
                "{path}: {style} in {csp}"
            );
        }
    }
}

backend_tests!(
    the_tills_pages_forbid_framing_and_allow_only_their_own_script_and_styles,
    wrong_ids_and_wrong_pins_get_the_same_answer_whether_the_ids_exist_or_not,
    guessing_from_elsewhere_never_locks_the_shops_own_till_out,
    a_flood_beyond_the_sign_ins_at_once_is_refused_at_once_without_checking_pins,
    a_pin_change_or_disabling_ends_the_operators_sessions_only,
    a_new_pin_needs_six_digits_and_a_shorter_one_set_before_still_signs_in,
    the_till_cookies_are_secure_when_configured,
    behind_a_trusted_proxy_each_client_address_is_limited_apart,
    a_session_ends_after_thirty_idle_minutes_or_twelve_hours,
    a_form_without_the_csrf_token_is_refused_and_does_nothing,
    a_scanned_code_is_charged_once_even_when_the_form_is_sent_twice,
    a_mistyped_code_is_refused_before_any_wallet_call,
    a_declined_code_says_why_in_plain_words,
    a_qr_is_shown_paid_by_the_customer_and_the_till_sees_it,
    an_expired_qr_says_nothing_was_charged,
    todays_list_shows_paid_failed_and_pending_sales_and_refunds_one,
    the_till_speaks_chinese_when_asked_or_when_the_browser_does,
);
