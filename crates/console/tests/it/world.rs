//! A gateway with the console on a free port, two merchants with orders, and users.

use std::sync::Arc;

use chrono::Duration;
use qrgate_console::{ConsoleConfig, ConsoleState};
use qrgate_domain::{
    ConsoleRole, Currency, Merchant, MerchantOrderId, Money, Order, OrderStatus, PaymentMode,
    Wallet,
};
use qrgate_engine::{Actor, ConsoleUser, Engine, MasterKey, MerchantRequest, SystemClock};
use qrgate_http::{AppState, HttpConfig};
use qrgate_testkit::TestDb;

pub const PASSWORD: &str = "correct horse battery";

/// One merchant with its first shop, operator, and a user of each merchant role.
pub struct Tenant {
    pub merchant: Merchant,
    pub shop: String,
    pub operator: String,
    pub owner: ConsoleUser,
    pub staff: ConsoleUser,
    /// A paid order with a notification.
    pub order_key: String,
}

pub struct World {
    pub base: String,
    pub engine: Engine,
    pub a: Tenant,
    pub b: Tenant,
    pub admin: ConsoleUser,
    pub support: ConsoleUser,
    _stop: tokio::sync::oneshot::Sender<()>,
    _db: TestDb,
}

/// Creates a user with a password through the one-time link, as a person would.
pub async fn user(
    engine: &Engine,
    email: &str,
    role: ConsoleRole,
    m: Option<&Merchant>,
) -> ConsoleUser {
    let (u, link) = engine
        .create_console_user(&Actor::cli(), email, role, m.map(|m| &m.id))
        .await
        .unwrap();
    engine
        .set_password_with_link(&link.token, PASSWORD, "test")
        .await
        .unwrap();
    u
}

/// A paid order of `m` with a notification queued (as the payment paths leave it).
pub async fn paid_order(engine: &Engine, m: &Merchant, order_id: &str, minor: i64) -> String {
    let now = engine.now();
    let cad = |minor| Money::new(minor, Currency::Cad);
    let mut order = Order {
        key: format!("Q{:0>24}", format!("{}{order_id}", m.id.number())),
        merchant_id: m.id.clone(),
        order_id: MerchantOrderId::parse(order_id).unwrap(),
        mode: PaymentMode::Active,
        wallet: Wallet::Alipay,
        amount: cad(minor),
        tip: cad(0),
        cny_amount: Some(Money::new(minor * 5, Currency::Cny)),
        rate: None,
        operator_id: Some("0000000001".into()),
        terminal_no: Some("TILL-1".into()),
        sale_num: None,
        status: OrderStatus::Pending,
        wallet_code: None,
        wallet_message: None,
        channel_ref: Some(format!("W{}{order_id}", m.id.number())),
        buyer: None,
        paid_at: None,
        wallet_created_at: now,
        next_check_at: Some(now + Duration::minutes(5)),
        request_digest: format!("d{}{order_id}", m.id),
        code_url: Some("https://qr.example/x".into()),
        expires_at: Some(now + Duration::minutes(15)),
        call_back_url: Some("https://merchant.example/notify".into()),
        refund_reserved: cad(0),
        refunded: cad(0),
        cancel_requested_at: None,
        created_at: now,
        updated_at: now,
    };
    let store = engine.store();
    store.insert_order(&order).await.unwrap();
    order.status = OrderStatus::Paid;
    order.paid_at = Some(now);
    order.next_check_at = None;
    assert!(store
        .update_order(&order, OrderStatus::Pending, None, now)
        .await
        .unwrap());
    order.key
}

async fn tenant(engine: &Engine, name: &str, tag: &str) -> Tenant {
    let created = engine
        .create_merchant(&MerchantRequest {
            name: name.into(),
            currency: Currency::Cad,
            time_zone: "America/Toronto".parse().unwrap(),
            id_prefix: "ON".into(),
        })
        .await
        .unwrap();
    let m = created.merchant;
    let owner = user(
        engine,
        &format!("owner@{tag}.example"),
        ConsoleRole::MerchantOwner,
        Some(&m),
    )
    .await;
    let staff = user(
        engine,
        &format!("staff@{tag}.example"),
        ConsoleRole::MerchantStaff,
        Some(&m),
    )
    .await;
    let order_key = paid_order(engine, &m, &format!("{tag}1"), 1250).await;
    Tenant {
        shop: created.shop.id.to_string(),
        operator: created.operator.id.to_string(),
        merchant: m,
        owner,
        staff,
        order_key,
    }
}

impl World {
    pub async fn start(db: TestDb) -> World {
        let engine = Engine::new(
            db.store.clone(),
            MasterKey::generate(),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let a = tenant(&engine, "Maple Tea", "a").await;
        let b = tenant(&engine, "Birch Bakery", "b").await;
        let admin = user(
            &engine,
            "admin@provider.example",
            ConsoleRole::ProviderAdmin,
            None,
        )
        .await;
        let support = user(
            &engine,
            "support@provider.example",
            ConsoleRole::ProviderSupport,
            None,
        )
        .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(engine.clone(), HttpConfig::default());
        let console =
            qrgate_console::router(ConsoleState::new(engine.clone(), ConsoleConfig::default()));
        tokio::spawn(async move {
            let _ = qrgate_http::serve_with(listener, state, console, async {
                let _ = stopped.await;
            })
            .await;
        });
        World {
            base: format!("http://{addr}"),
            engine,
            a,
            b,
            admin,
            support,
            _stop: stop,
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A browser-like client signed in as `email`, with its CSRF token.
    pub async fn sign_in(&self, email: &str) -> Client {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = qrgate_testkit::console::console_sign_in(&http, &self.base, email, PASSWORD).await;
        assert_eq!(r.status(), 303, "sign-in of {email}");
        let mut client = Client {
            http,
            base: self.base.clone(),
            csrf: String::new(),
        };
        let page = client.get("/console/account").await;
        assert_eq!(page.0, 200, "{}", page.1);
        client.csrf = csrf_of(&page.1).expect("a CSRF field on the account page");
        client
    }

    /// How many audit entries there are (all merchants).
    pub async fn audit_count(&self) -> usize {
        self.engine
            .store()
            .audit_entries(None, None, 10_000)
            .await
            .unwrap()
            .len()
    }
}

pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")?;
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: String,
}

impl Client {
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &self.csrf));
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}
