//! `/phone`: every customer, each with a link to their phone as each wallet app, and a form
//! that creates one.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::locale::{money, Locale};
use super::redirect;
use super::ui::{alert, link, wallet_name, Page};
use crate::model::{PaymentPassword, Wallet};
use crate::Sandbox;

/// The largest opening balance the phone's form accepts: ¥10,000,000.00.
const MAX_OPENING_FEN: i64 = 1_000_000_000;

/// The most customers the list shows.
const CUSTOMERS_SHOWN: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub(super) struct NewCustomerForm {
    name: Option<String>,
    balance: Option<String>,
    password: Option<String>,
    wallet: Option<String>,
}

pub(super) async fn customers(
    State(sandbox): State<Sandbox>,
    locale: Locale,
    uri: Uri,
) -> Response {
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
    let (people, total): (Vec<(String, String, i64)>, usize) = sandbox.with(|s, _, _| {
        let people = s
            .customers
            .values()
            .take(CUSTOMERS_SHOWN)
            .map(|c| (c.id.clone(), c.name.clone(), c.balance_fen))
            .collect();
        (people, s.customers.len())
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
        @if total > people.len() {
            p.muted {
                (total - people.len()) " "
                (lang.pick("more customers not shown: open /phone/{id} directly.",
                           "位用户未显示:请直接打开 /phone/{id}。"))
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

pub(super) async fn create_customer(
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
