//! The customer's phone: a phone-sized page per customer that plays the wallet app. It shows
//! the CNY balance and movements, scans a QR (a pasted or opened `code_url`, paid on the pay
//! page `/pay/{token}` with the password pad), and shows the payment code for the cashier to
//! scan, renewed every minute. English and Chinese (`locale`), in the chosen wallet's colours
//! (`ui`).
//!
//! It holds no rules of its own: money moves only through the state's functions
//! (`pay_qr_with_password`, `mint_code`), exactly as for the wallets' APIs and the control
//! API.

pub(crate) mod locale;
pub(crate) mod ui;

mod symbols;
#[cfg(test)]
mod tests;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use chrono::Duration;
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;
use serde_json::json;

use crate::model::{Behaviour, Customer, MovementKind, PaymentPassword, Wallet};
use crate::Sandbox;
use locale::{money, signed_money, Lang, Locale};
use ui::{alert, link, wallet_name, Page};

/// The cookie naming the customer whose phone this browser last showed: a `code_url` opened
/// in the same browser (a real phone's camera) is paid as that customer.
pub const CUSTOMER_COOKIE: &str = "qrgate_phone_customer";

/// How long a payment code shown on the phone stays valid, and how often the page renews
/// it: the wallets' apps change the code about every minute.
pub const CODE_TTL_SECS: i64 = 60;

/// The most movements a phone lists (newest first).
const MOVEMENTS_SHOWN: usize = 50;

/// The largest opening balance the phone's form accepts: ¥10,000,000.00.
const MAX_OPENING_FEN: i64 = 1_000_000_000;

pub(crate) fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/phone", get(customers).post(create_customer))
        .route("/phone/{customer_id}", get(home))
        .route("/phone/{customer_id}/scan", get(scan))
        .route("/phone/{customer_id}/code", get(pay_by_code))
        .route("/phone/{customer_id}/code/status", get(code_status))
        .with_state(sandbox)
}

#[derive(Debug, Default, Deserialize)]
struct WalletQuery {
    wallet: Option<String>,
    code_url: Option<String>,
    behaviour: Option<String>,
    code: Option<String>,
}

impl WalletQuery {
    /// The wallet app the phone shows; WeChat Pay unless another is asked for.
    fn wallet(&self) -> Wallet {
        self.wallet
            .as_deref()
            .and_then(Wallet::parse)
            .unwrap_or(Wallet::Wechat)
    }
}

/// The page for a customer id nobody has.
fn unknown_customer(locale: Locale, uri: &Uri, id: &str) -> Response {
    let lang = locale.lang;
    Page::new(locale, lang.pick("Unknown customer", "未知用户"), None)
        .status(StatusCode::NOT_FOUND)
        .render(
            uri,
            html! {
                (alert("error", lang.pick("Unknown customer", "未知用户"),
                    &format!("{} {id}", lang.pick("No sandbox customer has the id", "没有此编号的沙箱用户:"))))
                a.button href="/phone" { (lang.pick("All customers", "全部用户")) }
            },
        )
}

// ---- /phone: the customers, and a new one -------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct NewCustomerForm {
    name: Option<String>,
    balance: Option<String>,
    password: Option<String>,
    wallet: Option<String>,
}

async fn customers(State(sandbox): State<Sandbox>, locale: Locale, uri: Uri) -> Response {
    customers_page(&sandbox, locale, &uri, None, StatusCode::OK)
}

fn customers_page(
    sandbox: &Sandbox,
    locale: Locale,
    uri: &Uri,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = locale.lang;
    let people: Vec<(String, String, i64)> = sandbox.with(|s, _, _| {
        s.customers
            .values()
            .map(|c| (c.id.clone(), c.name.clone(), c.balance_fen))
            .collect()
    });
    let body = html! {
        h1 { (lang.pick("Sandbox customers", "沙箱用户")) }
        @if people.is_empty() {
            p { (lang.pick("No customers yet: create one below.", "还没有用户,请在下面新建。")) }
        }
        ul.people {
            @for (id, name, balance) in &people {
                li.card {
                    p { strong { (name) } " " span.muted { (id) } }
                    p { (lang.pick("Balance", "余额")) " " (money(lang, *balance, "CNY")) }
                    nav.wallets aria-label=(lang.pick("Open the phone as", "打开手机应用")) {
                        @for wallet in Wallet::ALL {
                            a href=(link(&format!("/phone/{id}"), &[("wallet", wallet.as_str())])) {
                                (wallet_name(lang, wallet))
                            }
                        }
                    }
                }
            }
        }
        h2 { (lang.pick("New customer", "新建用户")) }
        @if let Some(problem) = problem {
            (alert("error", lang.pick("Not created", "未能创建"), problem))
        }
        form method="post" action="/phone" {
            label for="name" { (lang.pick("Name", "姓名")) }
            input id="name" name="name" required maxlength="40" autocomplete="off";
            label for="balance" { (lang.pick("Opening balance (CNY)", "初始余额(人民币元)")) }
            input id="balance" name="balance" required inputmode="decimal" value="1000.00"
                pattern="[0-9]{1,8}([.][0-9]{1,2})?";
            label for="password" { (lang.pick("Payment password (6 digits)", "支付密码(6位数字)")) }
            input id="password" name="password" inputmode="numeric" pattern="[0-9]{6}"
                maxlength="6" value=(PaymentPassword::DEFAULT) autocomplete="off";
            label for="wallet" { (lang.pick("Wallet app", "钱包应用")) }
            select id="wallet" name="wallet" {
                @for wallet in Wallet::ALL {
                    option value=(wallet.as_str()) { (wallet_name(lang, wallet)) }
                }
            }
            button type="submit" { (lang.pick("Create", "创建")) }
        }
    };
    Page::new(locale, lang.pick("Customers", "用户"), None)
        .status(status)
        .render(uri, body)
}

/// A CNY amount typed by a person (`1000`, `52.5`, `0.01`) in fen, without floating point.
fn parse_cny(text: &str) -> Option<i64> {
    let text = text.trim().trim_start_matches('¥');
    let (yuan, fen) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(yuan) || (!fen.is_empty() && !digits(fen)) || fen.len() > 2 || yuan.len() > 12 {
        return None;
    }
    let yuan: i64 = yuan.parse().ok()?;
    let fen: i64 = if fen.is_empty() {
        0
    } else {
        format!("{fen:0<2}").parse().ok()?
    };
    yuan.checked_mul(100)?.checked_add(fen)
}

async fn create_customer(
    State(sandbox): State<Sandbox>,
    locale: Locale,
    uri: Uri,
    form: Result<Form<NewCustomerForm>, FormRejection>,
) -> Response {
    let lang = locale.lang;
    // A body that is not a form is read as an empty one, which every check refuses.
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let name = form.name.as_deref().map(str::trim).unwrap_or_default();
    let balance = form.balance.as_deref().and_then(parse_cny);
    let password = match form.password.as_deref().map(str::trim) {
        None | Some("") => Some(PaymentPassword::default()),
        Some(p) => PaymentPassword::parse(p),
    };
    let wallet = form
        .wallet
        .as_deref()
        .and_then(Wallet::parse)
        .unwrap_or(Wallet::Wechat);
    let checked = match (balance.filter(|b| *b <= MAX_OPENING_FEN), password) {
        _ if name.is_empty() || name.chars().count() > 40 => Err(lang.pick(
            "Give a name of 1 to 40 characters.",
            "请填写1到40个字符的姓名。",
        )),
        (None, _) => Err(lang.pick(
            "The opening balance is an amount in yuan such as 1000.00, at most 10,000,000.",
            "初始余额请填写金额,例如 1000.00,最多 10,000,000 元。",
        )),
        (_, None) => Err(lang.pick(
            "The payment password is exactly 6 digits.",
            "支付密码必须是6位数字。",
        )),
        (Some(balance), Some(password)) => Ok((balance, password)),
    };
    let (balance, password) = match checked {
        Ok(valid) => valid,
        Err(problem) => {
            return customers_page(
                &sandbox,
                locale,
                &uri,
                Some(problem),
                StatusCode::BAD_REQUEST,
            )
        }
    };
    let name = name.to_owned();
    let id = sandbox.with(|s, _, now| {
        let customer = s.add_customer(&name, balance, now);
        s.set_password(&customer.id, password);
        customer.id
    });
    redirect(&link(
        &format!("/phone/{id}"),
        &[("wallet", wallet.as_str())],
    ))
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

// ---- /phone/{id}: balance and movements ---------------------------------------------------

/// One line of the movements list, with the merchant's name looked up from the trade.
struct Line {
    at: chrono::DateTime<chrono::Utc>,
    kind: MovementKind,
    merchant_name: Option<String>,
    amount_fen: i64,
}

fn lines(s: &crate::state::State, customer: &Customer) -> Vec<Line> {
    customer
        .movements
        .iter()
        .rev()
        .take(MOVEMENTS_SHOWN)
        .map(|m| Line {
            at: m.at,
            kind: m.kind,
            merchant_name: match (m.wallet, &m.merchant, &m.out_trade_no) {
                (Some(w), Some(merchant), Some(out_trade_no)) => s
                    .peek_trade(w, merchant, out_trade_no)
                    .map(|t| t.subject.clone()),
                _ => None,
            },
            amount_fen: m.amount_fen,
        })
        .collect()
}

fn kind_label(lang: Lang, kind: MovementKind) -> &'static str {
    match kind {
        MovementKind::TopUp => lang.pick("Top-up", "充值"),
        MovementKind::Payment => lang.pick("Payment", "付款"),
        MovementKind::Refund => lang.pick("Refund", "退款"),
        MovementKind::Reversal => lang.pick("Payment reversed", "付款已撤销"),
    }
}

/// The customer cookie, so that a `code_url` opened later in this browser pays as them.
fn customer_cookie(id: &str) -> String {
    format!("{CUSTOMER_COOKIE}={id}; Path=/; Max-Age=31536000; SameSite=Lax")
}

async fn home(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    Query(q): Query<WalletQuery>,
    locale: Locale,
    uri: Uri,
) -> Response {
    let lang = locale.lang;
    let wallet = q.wallet();
    let found = sandbox.with(|s, _, now| {
        s.settle_all(now);
        let customer = s.customers.get(&id)?.clone();
        let lines = lines(s, &customer);
        Some((customer, lines))
    });
    let Some((customer, lines)) = found else {
        return unknown_customer(locale, &uri, &id);
    };
    let older = customer.movements.len().saturating_sub(lines.len());
    let w = wallet.as_str();
    let body = html! {
        nav.wallets aria-label=(lang.pick("Wallet app", "钱包应用")) {
            @for other in Wallet::ALL {
                a href=(link(&format!("/phone/{id}"), &[("wallet", other.as_str())]))
                    aria-current=[(other == wallet).then_some("page")] {
                    (wallet_name(lang, other))
                }
            }
        }
        h1 { (customer.name) }
        section.card aria-labelledby="balance-label" {
            p.muted id="balance-label" { (lang.pick("Balance", "余额")) }
            p.balance id="balance" { (money(lang, customer.balance_fen, "CNY")) }
        }
        div.actions {
            a.button id="scan" href=(link(&format!("/phone/{id}/scan"), &[("wallet", w)])) {
                (lang.pick("Scan", "扫一扫"))
            }
            a.button id="pay-by-code" href=(link(&format!("/phone/{id}/code"), &[("wallet", w)])) {
                (lang.pick("Pay by code", "付款码"))
            }
        }
        h2 { (lang.pick("Movements", "收支明细")) }
        @if lines.is_empty() {
            p.muted { (lang.pick("No movements yet.", "暂无收支记录。")) }
        }
        ul.movements id="movements" {
            @for line in &lines {
                li {
                    div {
                        div.what {
                            (kind_label(lang, line.kind))
                            @if let Some(name) = &line.merchant_name { " · " (name) }
                        }
                        time.muted datetime=(locale::iso_time(line.at)) { (locale::time(lang, line.at)) }
                    }
                    div.amt.plus[line.amount_fen > 0] {
                        (signed_money(lang, line.amount_fen, "CNY"))
                    }
                }
            }
        }
        @if older > 0 {
            p.muted { (older) " " (lang.pick("older movements not shown.", "条更早的记录未显示。")) }
        }
        p { a href="/phone" { (lang.pick("All customers", "全部用户")) } }
    };
    let mut page = Page::new(locale, customer.name.clone(), Some(wallet));
    page.cookies.push(customer_cookie(&customer.id));
    page.render(&uri, body)
}

// ---- /phone/{id}/scan: open a code_url ----------------------------------------------------

/// The QR token in what the customer pasted: a sandbox `code_url` (`…/pay/{token}`) or the
/// token alone.
fn token_in(scanned: &str) -> Option<String> {
    let scanned = scanned.trim();
    let tail = match scanned.rfind("/pay/") {
        Some(at) => &scanned[at + "/pay/".len()..],
        None => scanned,
    };
    let token = tail.split(['?', '#', '/']).next().unwrap_or_default();
    (!token.is_empty() && token.len() <= 64 && token.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| token.to_owned())
}

async fn scan(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    Query(q): Query<WalletQuery>,
    locale: Locale,
    uri: Uri,
) -> Response {
    let lang = locale.lang;
    let wallet = q.wallet();
    let Some(name) = sandbox.with(|s, _, _| s.customers.get(&id).map(|c| c.name.clone())) else {
        return unknown_customer(locale, &uri, &id);
    };
    let mut problem = None;
    if let Some(scanned) = q.code_url.as_deref().filter(|c| !c.trim().is_empty()) {
        let token = token_in(scanned)
            .filter(|t| sandbox.with(|s, _, _| s.qr_tokens.contains_key(t.as_str())));
        match token {
            Some(token) => {
                return redirect(&link(&format!("/pay/{token}"), &[("customer", &id)]));
            }
            None => problem = Some(scanned.to_owned()),
        }
    }
    let body = html! {
        h1 { (lang.pick("Scan", "扫一扫")) }
        p.muted { (name) }
        @if let Some(scanned) = &problem {
            (alert("error", lang.pick("Unknown QR code", "无法识别的二维码"),
                &format!("{} {scanned}", lang.pick("This sandbox issued no QR code with the content", "本沙箱没有发出此内容的二维码:"))))
        }
        form method="get" action=(format!("/phone/{id}/scan")) {
            input type="hidden" name="wallet" value=(wallet.as_str());
            label for="code_url" { (lang.pick("QR code content (code_url)", "二维码内容(code_url)")) }
            input id="code_url" name="code_url" type="text" inputmode="url" required
                autocomplete="off" placeholder="http://…/pay/…"
                value=[problem.as_deref()];
            button type="submit" id="open" { (lang.pick("Open", "打开")) }
        }
        p.muted {
            (lang.pick(
                "Paste what the till's QR code contains. Opening a code_url in this browser does the same.",
                "粘贴收银台二维码的内容。在本浏览器中直接打开 code_url 也可以。"))
        }
        a.button.secondary href=(link(&format!("/phone/{id}"), &[("wallet", wallet.as_str())])) {
            (lang.pick("Back", "返回"))
        }
    };
    let status = if problem.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let mut page = Page::new(locale, lang.pick("Scan", "扫一扫"), Some(wallet)).status(status);
    page.cookies.push(customer_cookie(&id));
    page.render(&uri, body)
}

// ---- /phone/{id}/code: the payment code ---------------------------------------------------

/// What the pay-by-code screen may ask the sandbox to do when the code is charged (a
/// sandbox control, not something a real app offers): its query value, the behaviour, and
/// its label.
fn behaviours(lang: Lang) -> [(&'static str, Behaviour, &'static str); 5] {
    [
        (
            "instant",
            Behaviour::Instant,
            lang.pick("Pay at once", "立即支付"),
        ),
        (
            "password",
            Behaviour::Password { after_secs: 10 },
            lang.pick(
                "Ask for the password (confirmed after 10 s)",
                "需输入密码(10秒后确认)",
            ),
        ),
        (
            "never_confirm",
            Behaviour::NeverConfirm,
            lang.pick(
                "Ask for the password, never confirm",
                "需输入密码,始终不确认",
            ),
        ),
        (
            "insufficient_balance",
            Behaviour::InsufficientBalance,
            lang.pick("Decline: balance too low", "拒绝:余额不足"),
        ),
        (
            "system_error",
            Behaviour::SystemError,
            lang.pick(
                "Answer \"system error\" (but pay)",
                "返回“系统错误”(实际已支付)",
            ),
        ),
    ]
}

/// `1345 6789 0123 4567 89`: groups of four, as the apps print them for typing.
fn grouped_digits(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn pay_by_code(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    Query(q): Query<WalletQuery>,
    locale: Locale,
    uri: Uri,
) -> Response {
    let lang = locale.lang;
    let wallet = q.wallet();
    let choices = behaviours(lang);
    let chosen = q.behaviour.as_deref().unwrap_or("instant");
    let (chosen, behaviour) = choices
        .iter()
        .find(|(key, _, _)| *key == chosen)
        .map_or(("instant", Behaviour::Instant), |(key, b, _)| (*key, *b));
    let minted = sandbox.with(|s, rng, now| {
        let name = s.customers.get(&id)?.name.clone();
        let code = s.mint_code(
            rng,
            wallet,
            &id,
            behaviour,
            Duration::seconds(CODE_TTL_SECS),
            now,
        )?;
        Some((name, code))
    });
    let Some((name, code)) = minted else {
        return unknown_customer(locale, &uri, &id);
    };
    let barcode = symbols::barcode_svg(&code.code, lang.pick("Payment code barcode", "付款条形码"));
    let qr = symbols::qr_svg(&code.code, lang.pick("Payment code QR code", "付款二维码"));
    let home = link(&format!("/phone/{id}"), &[("wallet", wallet.as_str())]);
    let status_url = link(&format!("/phone/{id}/code/status"), &[("code", &code.code)]);
    let body = html! {
        h1 { (lang.pick("Pay by code", "付款码")) }
        p.muted { (name) " · " (lang.pick("Show this to the cashier", "向收银员出示")) }
        div.code-box {
            @if let Some(svg) = &barcode { (PreEscaped(svg)) }
            p.digits id="code-digits" { (grouped_digits(&code.code)) }
            @if let Some(svg) = &qr { (PreEscaped(svg)) }
        }
        p.muted role="status" id="countdown" data-seconds=(CODE_TTL_SECS) {
            (lang.pick("A new code comes every minute.", "付款码每分钟自动更新。"))
        }
        a.button id="new-code" href=(link(&format!("/phone/{id}/code"), &[("wallet", wallet.as_str()), ("behaviour", chosen)])) {
            (lang.pick("New code now", "立即更新付款码"))
        }
        form method="get" action=(format!("/phone/{id}/code")) {
            input type="hidden" name="wallet" value=(wallet.as_str());
            label for="behaviour" { (lang.pick("Sandbox: when the cashier charges this code", "沙箱:收银员扣款时")) }
            select id="behaviour" name="behaviour" {
                @for (key, _, label) in &choices {
                    option value=(key) selected[*key == chosen] { (label) }
                }
            }
            button type="submit" class="secondary" { (lang.pick("Use for the next code", "用于下一个付款码")) }
        }
        a.button.secondary href=(home) { (lang.pick("Back", "返回")) }
        script {
            (PreEscaped(code_script(&status_url, &home, lang)))
        }
    };
    let mut page = Page::new(locale, lang.pick("Pay by code", "付款码"), Some(wallet));
    page.refresh_secs = Some(CODE_TTL_SECS);
    page.cookies.push(customer_cookie(&id));
    page.render(&uri, body)
}

/// Counts down to the next code, and goes back to the balance once the cashier has charged
/// this one. The meta refresh renews the code without it.
fn code_script(status_url: &str, home: &str, lang: Lang) -> String {
    let template = lang.pick("New code in {} s", "{} 秒后更新付款码");
    format!(
        "(function(){{var el=document.getElementById('countdown');\
         var left=parseInt(el.dataset.seconds,10);var tpl={template};\
         function show(){{el.textContent=tpl.replace('{{}}',left);}}show();\
         setInterval(function(){{if(left>0){{left-=1;show();}}}},1000);\
         setInterval(function(){{fetch({status_url},{{cache:'no-store'}})\
         .then(function(r){{return r.json();}}).then(function(s){{\
         if(s.state==='used'){{location.href={home};}}}}).catch(function(){{}});}},2000);}})();",
        template = json!(template),
        status_url = json!(status_url),
        home = json!(home),
    )
}

/// `{"state": "unused" | "used" | "expired"}` for one of the customer's codes, so the
/// pay-by-code screen knows when the cashier charged it. 404 for a code that is not theirs.
async fn code_status(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    Query(q): Query<WalletQuery>,
) -> Response {
    let code = q.code.unwrap_or_default();
    let state = sandbox.with(|s, _, now| {
        let c = s.codes.get(&code).filter(|c| c.customer_id == id)?;
        Some(if c.used {
            "used"
        } else if c.expires_at <= now {
            "expired"
        } else {
            "unused"
        })
    });
    match state {
        Some(state) => Json(json!({ "state": state })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "unknown_code", "message": "no such code of this customer"}})),
        )
            .into_response(),
    }
}

/// The customer whose phone a request comes from: `?customer=`, else the cookie. An empty
/// `?customer=` asks to choose again.
pub(crate) fn customer_of(query: Option<&str>, headers: &HeaderMap) -> Option<String> {
    match query {
        Some(id) => (!id.is_empty()).then(|| id.to_owned()),
        None => locale::cookie(headers, CUSTOMER_COOKIE),
    }
}

/// Shared by the pay page: the order's summary in the customer's language.
pub(crate) fn order_summary(lang: Lang, trade: &crate::model::Trade) -> Markup {
    html! {
        section.card aria-label=(lang.pick("Order", "订单")) {
            p.muted { (lang.pick("Pay to", "付款给")) }
            p id="merchant" { strong { (trade.subject) } }
            p.amount id="amount-cny" { (money(lang, trade.cny_fen, "CNY")) }
            @if trade.currency != "CNY" {
                p id="amount-priced" {
                    (money(lang, trade.total, &trade.currency))
                    span.muted { " · " (rate_text(trade.rate_e8, &trade.currency)) }
                }
            }
            p.muted { (wallet_name(lang, trade.wallet)) " · " (lang.pick("order", "订单号")) " " (trade.out_trade_no) }
        }
    }
}

/// `1 CAD = ¥5.2000` from a rate ×10^8.
fn rate_text(rate_e8: i64, currency: &str) -> String {
    let whole = rate_e8 / 100_000_000;
    let fraction = (rate_e8 % 100_000_000) / 10_000;
    format!("1 {currency} = ¥{whole}.{fraction:04}")
}
