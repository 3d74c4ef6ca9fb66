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

mod customers;
mod home;
mod pay_by_code;
mod symbols;
#[cfg(test)]
mod tests;

use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use crate::model::{Trade, Wallet};
use crate::Sandbox;
use locale::{money, Lang, Locale};
use ui::{alert, wallet_name, Page};

/// The cookie naming the customer whose phone this browser last showed: a `code_url` opened
/// in the same browser (a real phone's camera) is paid as that customer.
pub const CUSTOMER_COOKIE: &str = "qrgate_phone_customer";

/// How long a payment code shown on the phone stays valid, and how often the page renews
/// it: the wallets' apps change the code about every minute.
pub const CODE_TTL_SECS: i64 = 60;

pub(crate) fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route(
            "/phone",
            get(customers::customers).post(customers::create_customer),
        )
        .route("/phone/{customer_id}", get(home::home))
        .route("/phone/{customer_id}/scan", get(home::scan))
        .route("/phone/{customer_id}/code", get(pay_by_code::pay_by_code))
        .route(
            "/phone/{customer_id}/code/status",
            get(pay_by_code::code_status),
        )
        .with_state(sandbox)
}

/// The query parameters of the phone's pages.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WalletQuery {
    wallet: Option<String>,
    code_url: Option<String>,
    behaviour: Option<String>,
    code: Option<String>,
}

impl WalletQuery {
    /// The wallet app the phone shows; WeChat Pay unless another is asked for.
    pub(crate) fn wallet(&self) -> Wallet {
        self.wallet
            .as_deref()
            .and_then(Wallet::parse)
            .unwrap_or(Wallet::Wechat)
    }
}

/// The page for a customer id nobody has.
pub(crate) fn unknown_customer(locale: Locale, uri: &Uri, id: &str) -> Response {
    let lang = locale.lang;
    Page::new(locale, lang.pick("Unknown customer", "未知用户"), None)
        .status(StatusCode::NOT_FOUND)
        .render(
            uri,
            html! {
                (alert("error", lang.pick("Unknown customer", "未知用户"),
                    &format!("{} {id}", lang.pick(
                        "No sandbox customer has the id",
                        "没有此编号的沙箱用户:"))))
                a.button href="/phone" { (lang.pick("All customers", "全部用户")) }
            },
        )
}

pub(crate) fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

/// The customer cookie, so that a `code_url` opened later in this browser pays as them.
pub(crate) fn customer_cookie(id: &str) -> String {
    format!("{CUSTOMER_COOKIE}={id}; Path=/; Max-Age=31536000; SameSite=Lax")
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
pub(crate) fn order_summary(lang: Lang, trade: &Trade) -> Markup {
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
            p.muted {
                (wallet_name(lang, trade.wallet)) " · "
                (lang.pick("order", "订单号")) " " (trade.out_trade_no)
            }
        }
    }
}

/// `1 CAD = ¥5.2000` from a rate ×10^8.
fn rate_text(rate_e8: i64, currency: &str) -> String {
    let whole = rate_e8 / 100_000_000;
    let fraction = (rate_e8 % 100_000_000) / 10_000;
    format!("1 {currency} = ¥{whole}.{fraction:04}")
}
