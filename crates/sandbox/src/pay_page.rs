//! The customer's side of a QR order: opening a sandbox `code_url` is scanning it; the page
//! shows the merchant, the amount in CNY and in the merchant's currency, and pays it as one
//! of the sandbox's customers.

use axum::extract::{Path, State};
use axum::response::Html;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use crate::model::{Trade, TradeStatus};
use crate::state::PayQrOutcome;
use crate::Sandbox;

pub(crate) fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/pay/{token}", get(show).post(pay))
        .with_state(sandbox)
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn major(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:1rem auto;padding:0 1rem}}\
         .amount{{font-size:2rem;font-weight:700}} button{{font-size:1.2rem;padding:.6rem 1.2rem}}\
         select{{font-size:1rem;padding:.4rem}}</style></head><body>{body}</body></html>",
        title = escape(title)
    ))
}

fn order_summary(t: &Trade) -> String {
    format!(
        "<p>{wallet} · {subject}</p><p class=\"amount\">¥{cny}</p><p>{amount} {currency}</p>",
        wallet = escape(t.wallet.as_str()),
        subject = escape(&t.subject),
        cny = major(t.cny_fen),
        amount = major(t.total),
        currency = escape(&t.currency),
    )
}

async fn show(State(sandbox): State<Sandbox>, Path(token): Path<String>) -> Html<String> {
    let found = sandbox.with(|s, _, now| {
        let trade = s.scan_qr(&token, now)?;
        let customers: Vec<(String, String, i64)> = s
            .customers
            .values()
            .map(|c| (c.id.clone(), c.name.clone(), c.balance_fen))
            .collect();
        Some((trade, customers))
    });
    let Some((trade, customers)) = found else {
        return page(
            "Unknown QR",
            "<h1>Unknown QR code</h1><p>This code was not issued by this sandbox.</p>",
        );
    };
    if trade.status != TradeStatus::NotPay {
        let state = match trade.status {
            TradeStatus::Success => "already paid",
            _ => "closed: it can no longer be paid",
        };
        return page(
            "Order",
            &format!(
                "{}<p><strong>This order is {state}.</strong></p>",
                order_summary(&trade)
            ),
        );
    }
    if customers.is_empty() {
        return page(
            "Pay",
            &format!(
                "{}<p>No sandbox customers yet: create one with the control API.</p>",
                order_summary(&trade)
            ),
        );
    }
    let options: String = customers
        .iter()
        .map(|(id, name, balance)| {
            format!(
                "<option value=\"{}\">{} (¥{})</option>",
                escape(id),
                escape(name),
                major(*balance)
            )
        })
        .collect();
    page(
        "Pay",
        &format!(
            "{}<form method=\"post\"><label for=\"customer\">Pay as</label> \
             <select id=\"customer\" name=\"customer_id\">{options}</select>\
             <p><button type=\"submit\">Pay ¥{}</button></p></form>",
            order_summary(&trade),
            major(trade.cny_fen)
        ),
    )
}

#[derive(Debug, Deserialize)]
struct PayForm {
    customer_id: String,
}

async fn pay(
    State(sandbox): State<Sandbox>,
    Path(token): Path<String>,
    Form(form): Form<PayForm>,
) -> Html<String> {
    let outcome = sandbox.with(|s, _, now| s.pay_qr(&token, &form.customer_id, now));
    match outcome {
        PayQrOutcome::Paid(t) => page("Paid", &format!("{}<h1>Paid</h1>", order_summary(&t))),
        PayQrOutcome::AlreadyPaid(t) => page(
            "Paid",
            &format!("{}<p>This order is already paid.</p>", order_summary(&t)),
        ),
        PayQrOutcome::Closed(t) => page(
            "Closed",
            &format!("{}<p>This order is closed.</p>", order_summary(&t)),
        ),
        PayQrOutcome::InsufficientBalance => page(
            "Declined",
            "<h1>Declined</h1><p>The balance is too low.</p>",
        ),
        PayQrOutcome::UnknownCustomer => page("Declined", "<h1>Unknown customer</h1>"),
        PayQrOutcome::NotFound => page("Unknown QR", "<h1>Unknown QR code</h1>"),
    }
}
