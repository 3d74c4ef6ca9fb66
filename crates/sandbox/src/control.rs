//! The control API (JSON over HTTP): credentials, customers, payment codes, paying QR orders,
//! the clock, rates and faults. Documented with examples in `docs/SANDBOX.md`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::bills::{self, BillBreak, BreakError, PlantedBreak};
use crate::model::{Behaviour, PaymentPassword, Wallet};
use crate::state::{self, Faults, PayQrOutcome};
use crate::Sandbox;

pub(crate) fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/credentials", get(credentials))
        .route("/customers", post(create_customer).get(list_customers))
        .route("/customers/{id}", get(customer))
        .route("/customers/{id}/top-up", post(top_up))
        .route("/codes", post(mint_code))
        .route("/qr/orders", post(create_qr_order))
        .route("/qr/scan", post(scan_qr))
        .route("/qr/pay", post(pay_qr))
        .route("/trades", get(trades))
        .route("/notifications", get(notifications))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance_clock))
        .route("/rates", get(rates).put(set_rates))
        .route("/faults/{wallet}", put(set_faults).get(get_faults))
        .route("/tick", post(tick))
        .route("/fees", get(fees))
        .route("/fees/{wallet}", put(set_fee))
        .route("/bills/{wallet}/{day}", get(bill))
        .route(
            "/bills/{wallet}/{day}/breaks",
            post(plant_break).get(list_breaks).delete(clear_breaks),
        )
        .route(
            "/bills/{wallet}/{day}/breaks/{id}",
            axum::routing::delete(remove_break),
        )
        .with_state(sandbox)
}

/// A JSON body whose rejection (missing, not JSON, wrong fields) answers in the control API's
/// own error shape rather than axum's plain text.
struct ControlJson<T>(T);

impl<S, T> axum::extract::FromRequest<S> for ControlJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ControlJson(value)),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, "bad_request", e.body_text())),
        }
    }
}

/// The control API's error body: `{"error": {"code": "...", "message": "..."}}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

fn wallet_param(s: &str) -> Result<Wallet, Box<Response>> {
    Wallet::parse(s).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            "unknown_wallet",
            "wallet must be wechat, alipay or unionpay",
        ))
    })
}

async fn credentials(State(sandbox): State<Sandbox>) -> Json<Value> {
    let mut out = serde_json::Map::new();
    for module in sandbox.modules() {
        out.insert(
            module.wallet().as_str().to_owned(),
            module.credentials(&sandbox),
        );
    }
    Json(Value::Object(out))
}

#[derive(Debug, Deserialize)]
struct NewCustomer {
    #[serde(default)]
    name: Option<String>,
    /// CNY fen.
    balance_fen: i64,
    /// Six digits; `PaymentPassword::DEFAULT` when absent.
    #[serde(default)]
    password: Option<String>,
}

async fn create_customer(
    State(sandbox): State<Sandbox>,
    ControlJson(req): ControlJson<NewCustomer>,
) -> Response {
    if req.balance_fen < 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "balance_fen must not be negative",
        );
    }
    let password = match req.password.as_deref().map(PaymentPassword::parse) {
        None => PaymentPassword::default(),
        Some(Some(p)) => p,
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "password must be six digits",
            )
        }
    };
    let customer = sandbox.with(|s, _, now| {
        let name = req
            .name
            .clone()
            .unwrap_or_else(|| format!("Customer {}", s.next_id));
        let mut customer = s.add_customer(&name, req.balance_fen, now);
        s.set_password(&customer.id, password.clone());
        customer.password = password;
        customer
    });
    (StatusCode::CREATED, Json(json!(customer))).into_response()
}

async fn list_customers(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(sandbox.with(|s, _, _| json!(s.customers.values().collect::<Vec<_>>())))
}

async fn customer(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    match sandbox.with(|s, _, _| s.customers.get(&id).cloned()) {
        Some(c) => Json(json!(c)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "unknown_customer",
            format!("no customer {id}"),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct TopUp {
    amount_fen: i64,
}

async fn top_up(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    ControlJson(req): ControlJson<TopUp>,
) -> Response {
    if req.amount_fen <= 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected JSON {\"amount_fen\": positive integer}",
        );
    };
    let done = sandbox.with(|s, _, now| {
        let c = s.customers.get_mut(&id)?;
        state::top_up(c, req.amount_fen, now);
        Some(c.clone())
    });
    match done {
        Some(c) => Json(json!(c)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "unknown_customer",
            format!("no customer {id}"),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct MintCode {
    customer_id: String,
    wallet: String,
    #[serde(default = "instant")]
    behaviour: Behaviour,
    /// Seconds the code stays valid (default 60, like the apps' refresh).
    #[serde(default)]
    ttl_secs: Option<u32>,
}

fn instant() -> Behaviour {
    Behaviour::Instant
}

async fn mint_code(
    State(sandbox): State<Sandbox>,
    ControlJson(req): ControlJson<MintCode>,
) -> Response {
    let wallet = match wallet_param(&req.wallet) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let ttl = Duration::seconds(i64::from(req.ttl_secs.unwrap_or(60).clamp(1, 86_400)));
    let minted = sandbox
        .with(|s, rng, now| s.mint_code(rng, wallet, &req.customer_id, req.behaviour, ttl, now));
    match minted {
        Some(code) => (StatusCode::CREATED, Json(json!(code))).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "unknown_customer",
            format!("no customer {}", req.customer_id),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct QrRef {
    /// The `code_url` (or just its token).
    code_url: String,
    #[serde(default)]
    customer_id: Option<String>,
    /// When given, checked like the phone's password pad does.
    #[serde(default)]
    password: Option<String>,
}

fn token_of(code_url: &str) -> String {
    code_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn scan_qr(State(sandbox): State<Sandbox>, ControlJson(req): ControlJson<QrRef>) -> Response {
    let token = token_of(&req.code_url);
    match sandbox.with(|s, _, now| s.scan_qr(&token, now)) {
        Some(t) => Json(json!(t)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "unknown_qr",
            "no QR order with that code_url",
        ),
    }
}

async fn pay_qr(State(sandbox): State<Sandbox>, ControlJson(req): ControlJson<QrRef>) -> Response {
    let token = token_of(&req.code_url);
    let Some(customer) = req.customer_id else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "customer_id is required to pay",
        );
    };
    let outcome = sandbox.with(|s, _, now| match &req.password {
        Some(password) => s.pay_qr_with_password(&token, &customer, password, now),
        None => s.pay_qr(&token, &customer, now),
    });
    match outcome {
        PayQrOutcome::Paid(t) => Json(json!({"result": "paid", "trade": t})).into_response(),
        PayQrOutcome::AlreadyPaid(t) => error(
            StatusCode::CONFLICT,
            "already_paid",
            format!("order {} is already paid", t.out_trade_no),
        ),
        PayQrOutcome::Closed(t) => error(
            StatusCode::CONFLICT,
            "order_closed",
            format!("order {} is closed", t.out_trade_no),
        ),
        PayQrOutcome::InsufficientBalance => error(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_balance",
            "the customer's balance is too low",
        ),
        PayQrOutcome::UnknownCustomer => error(
            StatusCode::NOT_FOUND,
            "unknown_customer",
            format!("no customer {customer}"),
        ),
        PayQrOutcome::NotFound => error(
            StatusCode::NOT_FOUND,
            "unknown_qr",
            "no QR order with that code_url",
        ),
        PayQrOutcome::WrongPassword(_) => error(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the password is not the customer's; nothing was paid",
        ),
    }
}

#[derive(Debug, Deserialize)]
struct NewQrOrder {
    wallet: String,
    /// ISO code of a currency the sandbox has a rate for (CNY, CAD, USD by default).
    #[serde(default = "cny")]
    currency: String,
    /// Minor units of `currency`.
    total: i64,
    /// What the customer's phone shows as the merchant's name.
    #[serde(default)]
    subject: Option<String>,
    /// Seconds until the QR expires (default 900, at most 7200).
    #[serde(default)]
    expires_in_secs: Option<u32>,
}

fn cny() -> String {
    "CNY".to_owned()
}

/// The account a wallet's own API creates trades under, read from the accounts its module
/// stored, so that a QR order made here is one that wallet's query also finds.
fn merchant_account(sandbox: &Sandbox, wallet: Wallet) -> Option<String> {
    let field = match wallet {
        Wallet::Wechat => "mch_id",
        Wallet::Alipay => "app_id",
        Wallet::Unionpay => "mer_id",
    };
    sandbox.accounts(wallet)[field].as_str().map(str::to_owned)
}

/// A QR order made without a gateway, as a merchant of the wallet would make one: for demos
/// of the phone and for tests. No notification is sent for it.
async fn create_qr_order(
    State(sandbox): State<Sandbox>,
    ControlJson(req): ControlJson<NewQrOrder>,
) -> Response {
    let wallet = match wallet_param(&req.wallet) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    if req.total <= 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "total must be a positive number of minor units",
        );
    }
    let Some(merchant) = merchant_account(&sandbox, wallet) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_wallet",
            "this sandbox does not run that wallet",
        );
    };
    let expires_in =
        Duration::seconds(i64::from(req.expires_in_secs.unwrap_or(900).clamp(1, 7200)));
    let base_url = sandbox.base_url();
    let created = sandbox.with(|s, rng, now| {
        if s.to_fen(&req.currency, req.total).is_none() {
            return Err((
                StatusCode::BAD_REQUEST,
                "unknown_currency",
                format!("no rate for {}", req.currency),
            ));
        }
        let out_trade_no = format!("SBX{:08}", s.next_id());
        let input = state::QrInput {
            wallet,
            merchant,
            out_trade_no,
            currency: req.currency.clone(),
            total: req.total,
            subject: req
                .subject
                .clone()
                .unwrap_or_else(|| "Sandbox shop".to_owned()),
            notify_url: None,
            expires_at: now + expires_in,
            fingerprint: "control".to_owned(),
        };
        match s.create_qr(rng, input, now) {
            state::QrOutcome::Created(t) => Ok(t),
            state::QrOutcome::Existing(_)
            | state::QrOutcome::AlreadyPaid(_)
            | state::QrOutcome::AlreadyClosed(_)
            | state::QrOutcome::Conflict => Err((
                StatusCode::CONFLICT,
                "conflict",
                "the order number was taken; try again".to_owned(),
            )),
        }
    });
    match created {
        Ok(trade) => {
            let code_url = format!(
                "{base_url}/pay/{}",
                trade.qr_token.clone().unwrap_or_default()
            );
            (
                StatusCode::CREATED,
                Json(json!({"code_url": code_url, "trade": trade})),
            )
                .into_response()
        }
        Err((status, code, message)) => error(status, code, message),
    }
}

#[derive(Debug, Deserialize)]
struct TradeQuery {
    wallet: Option<String>,
    out_trade_no: Option<String>,
}

async fn trades(State(sandbox): State<Sandbox>, Query(q): Query<TradeQuery>) -> Json<Value> {
    let wallet = q.wallet.as_deref().and_then(Wallet::parse);
    Json(sandbox.with(|s, _, now| {
        s.settle_all(now);
        json!(s
            .trades
            .values()
            .filter(|t| wallet.is_none_or(|w| t.wallet == w))
            .filter(|t| q
                .out_trade_no
                .as_deref()
                .is_none_or(|o| t.out_trade_no == o))
            .collect::<Vec<_>>())
    }))
}

async fn notifications(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(sandbox.with(|s, _, _| json!(s.notifications)))
}

async fn clock(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(
        json!({"now": sandbox.now().to_rfc3339(), "offset_secs": sandbox.clock().offset().num_seconds()}),
    )
}

#[derive(Debug, Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(
    State(sandbox): State<Sandbox>,
    ControlJson(req): ControlJson<Advance>,
) -> Response {
    if req.seconds < 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected JSON {\"seconds\": non-negative integer}",
        );
    };
    sandbox.clock().advance(Duration::seconds(req.seconds));
    sandbox.tick().await;
    Json(json!({"now": sandbox.now().to_rfc3339(), "offset_secs": sandbox.clock().offset().num_seconds()})).into_response()
}

async fn rates(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(sandbox.with(|s, _, _| json!(s.rates)))
}

async fn set_rates(
    State(sandbox): State<Sandbox>,
    ControlJson(req): ControlJson<std::collections::BTreeMap<String, i64>>,
) -> Response {
    if req
        .iter()
        .any(|(c, r)| *r <= 0 || c.len() != 3 || c == "CNY")
    {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"CAD\": 520000000} (rate to CNY ×10^8, positive; CNY is fixed)",
        );
    }
    Json(sandbox.with(|s, _, _| {
        s.rates.extend(req);
        json!(s.rates)
    }))
    .into_response()
}

async fn set_faults(
    State(sandbox): State<Sandbox>,
    Path(wallet): Path<String>,
    ControlJson(faults): ControlJson<Faults>,
) -> Response {
    let wallet = match wallet_param(&wallet) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    Json(sandbox.with(|s, _, _| {
        *s.faults(wallet) = faults;
        json!(s.faults(wallet))
    }))
    .into_response()
}

async fn get_faults(State(sandbox): State<Sandbox>, Path(wallet): Path<String>) -> Response {
    match wallet_param(&wallet) {
        Ok(w) => Json(sandbox.with(|s, _, _| json!(s.faults(w)))).into_response(),
        Err(r) => *r,
    }
}

/// Runs the background work now (due transitions and notifications) instead of waiting for
/// the next tick.
async fn tick(State(sandbox): State<Sandbox>) -> Json<Value> {
    sandbox.tick().await;
    Json(json!({"now": sandbox.now().to_rfc3339()}))
}

fn fee_json(wallet: Wallet, rate_ppm: u32) -> Value {
    json!({
        "wallet": wallet.as_str(),
        "rate_percent": bills::format_rate_percent(rate_ppm),
        "rate_ppm": rate_ppm,
    })
}

/// Every wallet's fee rate (charged on trades paid from now on).
async fn fees(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(sandbox.with(|s, _, _| {
        let mut out = serde_json::Map::new();
        for wallet in Wallet::ALL {
            out.insert(
                wallet.as_str().to_owned(),
                fee_json(wallet, s.fee_rate_ppm(wallet)),
            );
        }
        Value::Object(out)
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeeRate {
    /// A percentage as a decimal string: `"0.60"`, `"0.38"`, `"0.385"` (at most 4 decimals).
    rate_percent: String,
}

async fn set_fee(
    State(sandbox): State<Sandbox>,
    Path(wallet): Path<String>,
    ControlJson(req): ControlJson<FeeRate>,
) -> Response {
    let wallet = match wallet_param(&wallet) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let Some(rate_ppm) = bills::parse_rate_percent(&req.rate_percent) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"rate_percent\": \"0.60\"} (a percentage, at most 4 decimals, at most 100)",
        );
    };
    sandbox.with(|s, _, _| s.fee_rates_ppm.insert(wallet, rate_ppm));
    Json(fee_json(wallet, rate_ppm)).into_response()
}

/// The wallet and bill day of a `/bills/{wallet}/{day}` path.
fn bill_params(wallet: &str, day: &str) -> Result<(Wallet, chrono::NaiveDate), Box<Response>> {
    let wallet = wallet_param(wallet)?;
    let day = bills::parse_day(day).ok_or_else(|| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the bill day is yyyy-MM-dd (Beijing; for UnionPay the settlement day)",
        ))
    })?;
    Ok((wallet, day))
}

/// What the wallet's bill of that day holds (breaks applied), whether or not it is created
/// yet, and when it is.
async fn bill(
    State(sandbox): State<Sandbox>,
    Path((wallet, day)): Path<(String, String)>,
) -> Response {
    let (wallet, day) = match bill_params(&wallet, &day) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let entries = sandbox.with(|s, _, now| {
        s.settle_all(now);
        bills::bill_entries(s, wallet, day)
    });
    Json(json!({
        "wallet": wallet.as_str(),
        "day": day.format("%Y-%m-%d").to_string(),
        "ready_at": bills::ready_at(day).to_rfc3339(),
        "entries": entries,
    }))
    .into_response()
}

async fn plant_break(
    State(sandbox): State<Sandbox>,
    Path((wallet, day)): Path<(String, String)>,
    ControlJson(kind): ControlJson<BillBreak>,
) -> Response {
    let (wallet, day) = match bill_params(&wallet, &day) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let planted = sandbox.with(|s, _, now| {
        s.settle_all(now);
        bills::check_break(s, wallet, day, &kind)?;
        let planted = PlantedBreak {
            id: s.next_id(),
            kind,
        };
        s.bill_breaks
            .entry(bills::breaks_key(wallet, day))
            .or_default()
            .push(planted.clone());
        Ok::<_, BreakError>(planted)
    });
    match planted {
        Ok(p) => (StatusCode::CREATED, Json(json!(p))).into_response(),
        Err(BreakError::NotFound(m)) => error(StatusCode::NOT_FOUND, "unknown_target", m),
        Err(BreakError::NotInBill(m)) => error(StatusCode::CONFLICT, "not_in_bill", m),
        Err(BreakError::Conflict(m)) => error(StatusCode::CONFLICT, "conflict", m),
        Err(BreakError::Invalid(m)) => error(StatusCode::BAD_REQUEST, "bad_request", m),
    }
}

async fn list_breaks(
    State(sandbox): State<Sandbox>,
    Path((wallet, day)): Path<(String, String)>,
) -> Response {
    let (wallet, day) = match bill_params(&wallet, &day) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let key = bills::breaks_key(wallet, day);
    Json(sandbox.with(|s, _, _| json!(s.bill_breaks.get(&key).cloned().unwrap_or_default())))
        .into_response()
}

async fn clear_breaks(
    State(sandbox): State<Sandbox>,
    Path((wallet, day)): Path<(String, String)>,
) -> Response {
    let (wallet, day) = match bill_params(&wallet, &day) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let key = bills::breaks_key(wallet, day);
    let removed = sandbox.with(|s, _, _| s.bill_breaks.remove(&key).map_or(0, |v| v.len()));
    Json(json!({"removed": removed})).into_response()
}

async fn remove_break(
    State(sandbox): State<Sandbox>,
    Path((wallet, day, id)): Path<(String, String, u64)>,
) -> Response {
    let (wallet, day) = match bill_params(&wallet, &day) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let key = bills::breaks_key(wallet, day);
    let removed = sandbox.with(|s, _, _| {
        let Some(list) = s.bill_breaks.get_mut(&key) else {
            return false;
        };
        let before = list.len();
        list.retain(|b| b.id != id);
        let removed = list.len() != before;
        if list.is_empty() {
            s.bill_breaks.remove(&key);
        }
        removed
    });
    if removed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "unknown_break",
            format!("no break {id} on that bill"),
        )
    }
}
