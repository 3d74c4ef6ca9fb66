//! `/phone/{id}/code`: the payment code the cashier scans, renewed every minute, and
//! `/phone/{id}/code/status`, which tells the page when a till charged it.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Duration;
use maud::{html, PreEscaped};
use serde_json::json;

use super::locale::{Lang, Locale};
use super::ui::{link, Page};
use super::{customer_cookie, symbols, unknown_customer, WalletQuery, CODE_TTL_SECS};
use crate::model::Behaviour;
use crate::Sandbox;

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

pub(super) async fn pay_by_code(
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
    let again = link(
        &format!("/phone/{id}/code"),
        &[("wallet", wallet.as_str()), ("behaviour", chosen)],
    );
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
        a.button id="new-code" href=(again) {
            (lang.pick("New code now", "立即更新付款码"))
        }
        form method="get" action=(format!("/phone/{id}/code")) {
            input type="hidden" name="wallet" value=(wallet.as_str());
            label for="behaviour" {
                (lang.pick("Sandbox: when the cashier charges this code", "沙箱:收银员扣款时"))
            }
            select id="behaviour" name="behaviour" {
                @for (key, _, label) in &choices {
                    option value=(key) selected[*key == chosen] { (label) }
                }
            }
            button type="submit" class="secondary" {
                (lang.pick("Use for the next code", "用于下一个付款码"))
            }
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
pub(super) async fn code_status(
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
            Json(json!({"error": {
                "code": "unknown_code",
                "message": "no such code of this customer",
            }})),
        )
            .into_response(),
    }
}
