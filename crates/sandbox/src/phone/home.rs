//! `/phone/{id}`: the balance and movements; `/phone/{id}/scan`: opening a QR's content.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::html;

use super::locale::{self, money, signed_money, Lang, Locale};
use super::ui::{alert, link, wallet_name, Page};
use super::{customer_cookie, redirect, unknown_customer, WalletQuery};
use crate::model::{Customer, MovementKind, Wallet};
use crate::state::State as SandboxState;
use crate::Sandbox;

/// The most movements a phone lists (newest first).
const MOVEMENTS_SHOWN: usize = 50;

/// One line of the movements list, with the merchant's name looked up from the trade.
struct Line {
    at: DateTime<Utc>,
    kind: MovementKind,
    merchant_name: Option<String>,
    amount_fen: i64,
}

fn lines(s: &SandboxState, customer: &Customer) -> Vec<Line> {
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

pub(super) async fn home(
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
                        time.muted datetime=(locale::iso_time(line.at)) {
                            (locale::time(lang, line.at))
                        }
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

pub(super) async fn scan(
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
                &format!("{} {scanned}", lang.pick(
                    "This sandbox issued no QR code with the content",
                    "本沙箱没有发出此内容的二维码:"))))
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
                "Paste what the till's QR code contains. \
                 Opening a code_url in this browser does the same.",
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
