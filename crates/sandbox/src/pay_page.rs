//! The customer's side of a QR order: opening a sandbox `code_url` is scanning it. The page is
//! the phone's payment screen, in the QR's wallet colours: the merchant, the amount in CNY and
//! in the merchant's currency, then the six-digit password pad, then the result (paid,
//! wrong password, balance too low, expired or closed QR). The customer is the one named by
//! `?customer=` (the phone's Scan sends it), else the one whose phone this browser last
//! showed, else picked from a list.
//!
//! Payment goes through `State::pay_qr_with_password`, like the control API's `qr/pay` with
//! a password.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use crate::model::{Trade, TradeStatus};
use crate::phone::locale::{iso_time, money, time, Lang, Locale};
use crate::phone::ui::{alert, link, Page};
use crate::phone::{customer_of, order_summary};
use crate::state::PayQrOutcome;
use crate::Sandbox;

/// The most customers the "Pay as" list offers (the phone's Scan names the payer anyway).
const PAYERS_LISTED: usize = 100;

pub(crate) fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/pay/{token}", get(show).post(pay))
        .with_state(sandbox)
}

#[derive(Debug, Default, Deserialize)]
struct PayQuery {
    customer: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct PayForm {
    customer_id: Option<String>,
    password: Option<String>,
}

/// The payer as the page shows them.
struct Payer {
    id: String,
    name: String,
    balance_fen: i64,
}

fn unknown_qr(locale: Locale, uri: &Uri) -> Response {
    let lang = locale.lang;
    Page::new(locale, lang.pick("Unknown QR code", "无法识别的二维码"), None)
        .status(StatusCode::NOT_FOUND)
        .render(
            uri,
            html! {
                (alert("error", lang.pick("Unknown QR code", "无法识别的二维码"),
                    lang.pick("This code was not issued by this sandbox.", "此二维码不是本沙箱发出的。")))
                a.button href="/phone" { (lang.pick("All customers", "全部用户")) }
            },
        )
}

/// Was the QR closed by its expiry (rather than by the merchant)?
fn expired(trade: &Trade) -> bool {
    trade.expires_at.is_some() && trade.ended_at == trade.expires_at
}

/// The screen of an order that can no longer be paid, with its status.
fn not_payable(locale: Locale, uri: &Uri, trade: &Trade, home: Option<&str>) -> Response {
    let lang = locale.lang;
    let (status, title, detail) = match trade.status {
        TradeStatus::Success => (
            StatusCode::CONFLICT,
            lang.pick("Already paid", "订单已支付"),
            lang.pick(
                "This order has been paid; nothing more to pay.",
                "该订单已支付,无需再付。",
            ),
        ),
        _ if expired(trade) => (
            StatusCode::GONE,
            lang.pick("This QR code has expired", "二维码已过期"),
            lang.pick(
                "Nothing was paid. Ask the cashier for a new code.",
                "未付款。请让收银员重新生成二维码。",
            ),
        ),
        _ => (
            StatusCode::GONE,
            lang.pick("This order is closed", "订单已关闭"),
            lang.pick(
                "Nothing was paid. Ask the cashier for a new code.",
                "未付款。请让收银员重新生成二维码。",
            ),
        ),
    };
    Page::new(locale, title, Some(trade.wallet))
        .status(status)
        .render(
            uri,
            html! {
                (alert("error", title, detail))
                (order_summary(lang, trade))
                (back(lang, home))
            },
        )
}

fn back(lang: Lang, home: Option<&str>) -> Markup {
    html! {
        a.button.secondary href=(home.unwrap_or("/phone")) {
            (lang.pick("Back to my wallet", "返回钱包"))
        }
    }
}

fn home_of(payer: &str, trade: &Trade) -> String {
    link(
        &format!("/phone/{payer}"),
        &[("wallet", trade.wallet.as_str())],
    )
}

async fn show(
    State(sandbox): State<Sandbox>,
    Path(token): Path<String>,
    Query(q): Query<PayQuery>,
    headers: HeaderMap,
    locale: Locale,
    uri: Uri,
) -> Response {
    let lang = locale.lang;
    let wanted = customer_of(q.customer.as_deref(), &headers);
    let found = sandbox.with(|s, _, now| {
        let trade = s.scan_qr(&token, now)?;
        let payer = wanted
            .as_deref()
            .and_then(|id| s.customers.get(id))
            .map(|c| Payer {
                id: c.id.clone(),
                name: c.name.clone(),
                balance_fen: c.balance_fen,
            });
        let everyone: Vec<(String, String)> = s
            .customers
            .values()
            .take(PAYERS_LISTED)
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        Some((trade, payer, everyone))
    });
    let Some((trade, payer, everyone)) = found else {
        return unknown_qr(locale, &uri);
    };
    let home = payer.as_ref().map(|p| home_of(&p.id, &trade));
    if trade.status != TradeStatus::NotPay {
        return not_payable(locale, &uri, &trade, home.as_deref());
    }
    let body = match &payer {
        Some(payer) => password_screen(lang, &token, &trade, payer),
        None => html! {
            (order_summary(lang, &trade))
            @if everyone.is_empty() {
                p { (lang.pick("No sandbox customers yet.", "还没有沙箱用户。")) }
                a.button href="/phone" { (lang.pick("Create a customer", "新建用户")) }
            } @else {
                form method="get" action=(format!("/pay/{token}")) {
                    label for="customer" { (lang.pick("Pay as", "付款用户")) }
                    select id="customer" name="customer" {
                        @for (id, name) in &everyone {
                            option value=(id) { (name) " (" (id) ")" }
                        }
                    }
                    button type="submit" { (lang.pick("Continue", "继续")) }
                }
            }
        },
    };
    Page::new(locale, lang.pick("Pay", "付款"), Some(trade.wallet)).render(&uri, body)
}

/// The order, who pays, and the password pad. Digits typed on the pad fill the field and
/// the sixth submits, as in the apps; without JavaScript the field and the button work alone.
fn password_screen(lang: Lang, token: &str, trade: &Trade, payer: &Payer) -> Markup {
    html! {
        (order_summary(lang, trade))
        p {
            (lang.pick("Paying as", "付款用户")) " " strong { (payer.name) }
            " · " (lang.pick("balance", "余额")) " "
            span id="payer-balance" { (money(lang, payer.balance_fen, "CNY")) }
            " · " a href=(format!("/pay/{token}?customer=")) { (lang.pick("not you?", "切换用户")) }
        }
        form method="post" action=(format!("/pay/{token}")) id="pay-form" {
            input type="hidden" name="customer_id" value=(payer.id);
            label for="password" { (lang.pick("Payment password (6 digits)", "支付密码(6位数字)")) }
            input.pin id="password" name="password" type="password" inputmode="numeric"
                pattern="[0-9]{6}" minlength="6" maxlength="6" required autocomplete="off"
                aria-describedby="password-hint";
            p.muted id="password-hint" {
                (lang.pick("Sandbox customers' password is 123456 unless another was chosen.",
                           "沙箱用户的密码默认是 123456(除非另行设置)。"))
            }
            div.pad aria-label=(lang.pick("Password pad", "密码键盘")) role="group" {
                @for digit in ["1", "2", "3", "4", "5", "6", "7", "8", "9"] {
                    button type="button" data-digit=(digit) { (digit) }
                }
                button type="button" data-clear aria-label=(lang.pick("Clear", "清除")) { "C" }
                button type="button" data-digit="0" { "0" }
                button type="button" data-back
                    aria-label=(lang.pick("Delete last digit", "删除一位")) { "⌫" }
            }
            button type="submit" id="pay" {
                (lang.pick("Pay", "付款")) " " (money(lang, trade.cny_fen, "CNY"))
            }
        }
        script { (PreEscaped(PAD_SCRIPT)) }
    }
}

const PAD_SCRIPT: &str = "(function(){var f=document.getElementById('pay-form');\
var i=document.getElementById('password');\
f.querySelectorAll('[data-digit]').forEach(function(b){b.addEventListener('click',function(){\
if(i.value.length<6){i.value+=b.dataset.digit;}\
if(i.value.length===6){f.requestSubmit?f.requestSubmit():f.submit();}});});\
f.querySelector('[data-back]').addEventListener('click',function(){i.value=i.value.slice(0,-1);});\
f.querySelector('[data-clear]').addEventListener('click',function(){i.value='';});})();";

async fn pay(
    State(sandbox): State<Sandbox>,
    Path(token): Path<String>,
    locale: Locale,
    uri: Uri,
    form: Result<Form<PayForm>, FormRejection>,
) -> Response {
    let lang = locale.lang;
    // A body that is not a form is read as an empty one, which every check refuses.
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let customer_id = form.customer_id.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let (outcome, trade, payer, now) = sandbox.with(|s, _, now| {
        let outcome = s.pay_qr_with_password(&token, &customer_id, &password, now);
        let trade = s.trade_by_token(&token, now);
        let payer = s.customers.get(&customer_id).map(|c| Payer {
            id: c.id.clone(),
            name: c.name.clone(),
            balance_fen: c.balance_fen,
        });
        (outcome, trade, payer, now)
    });
    let Some(trade) = trade else {
        return unknown_qr(locale, &uri);
    };
    let Some(payer) = payer else {
        return unknown_payer(locale, &uri);
    };
    let home = home_of(&payer.id, &trade);
    match outcome {
        PayQrOutcome::Paid(paid) => paid_screen(locale, &uri, &paid, &payer, &home, now),
        PayQrOutcome::WrongPassword(_) => {
            let body = html! {
                (alert("error", lang.pick("Wrong password", "密码错误"),
                    lang.pick("Nothing was paid. Try again.", "未付款,请重试。")))
                (password_screen(lang, &token, &trade, &payer))
            };
            Page::new(
                locale,
                lang.pick("Wrong password", "密码错误"),
                Some(trade.wallet),
            )
            .status(StatusCode::FORBIDDEN)
            .render(&uri, body)
        }
        PayQrOutcome::InsufficientBalance => {
            let detail = format!(
                "{} {}{}",
                lang.pick("Nothing was paid. Your balance is", "未付款。您的余额为"),
                money(lang, payer.balance_fen, "CNY"),
                lang.pick(".", "。")
            );
            let body = html! {
                (alert("error", lang.pick("Declined: balance too low", "支付失败:余额不足"), &detail))
                (order_summary(lang, &trade))
                (back(lang, Some(&home)))
            };
            Page::new(
                locale,
                lang.pick("Declined", "支付失败"),
                Some(trade.wallet),
            )
            .status(StatusCode::PAYMENT_REQUIRED)
            .render(&uri, body)
        }
        PayQrOutcome::AlreadyPaid(t) | PayQrOutcome::Closed(t) => {
            not_payable(locale, &uri, &t, Some(&home))
        }
        PayQrOutcome::UnknownCustomer => unknown_payer(locale, &uri),
        PayQrOutcome::NotFound => unknown_qr(locale, &uri),
    }
}

fn unknown_payer(locale: Locale, uri: &Uri) -> Response {
    let lang = locale.lang;
    let body = html! {
        (alert("error", lang.pick("Unknown customer", "未知用户"),
            lang.pick("Nothing was paid: no sandbox customer has this id.",
                      "未付款:没有此编号的沙箱用户。")))
        a.button href="/phone" { (lang.pick("All customers", "全部用户")) }
    };
    Page::new(locale, lang.pick("Unknown customer", "未知用户"), None)
        .status(StatusCode::NOT_FOUND)
        .render(uri, body)
}

fn paid_screen(
    locale: Locale,
    uri: &Uri,
    trade: &Trade,
    payer: &Payer,
    home: &str,
    now: DateTime<Utc>,
) -> Response {
    let lang = locale.lang;
    let at = trade.paid_at.unwrap_or(now);
    Page::new(locale, lang.pick("Paid", "支付成功"), Some(trade.wallet)).render(
        uri,
        html! {
            (alert("ok", lang.pick("Paid", "支付成功"), ""))
            (order_summary(lang, trade))
            p {
                (lang.pick("Paid at", "支付时间")) " "
                time datetime=(iso_time(at)) { (time(lang, at)) }
            }
            p {
                (lang.pick("Balance now", "当前余额")) " "
                span id="payer-balance" { (money(lang, payer.balance_fen, "CNY")) }
            }
            a.button href=(home) id="done" { (lang.pick("Done", "完成")) }
        },
    )
}
