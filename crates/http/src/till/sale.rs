//! The sale screen: amount and tip (keypad or typing), a scanner field that keeps focus, and
//! the wallets' buttons for a QR. Charging a scanned code and creating a QR order both go to
//! the engine under the order id rendered into the form, so a form sent twice is one sale.

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use maud::html;
use qrgate_domain::{MerchantOrderId, Money, Wallet};
use qrgate_engine::{CodePayment, PaymentError, QrPayment, TillSession};
use serde::Deserialize;

use super::i18n::{self, Lang, Locale};
use super::layout::Page;
use super::{csrf_ok, csrf_refused, see_other, session_of, signed_out};
use crate::AppState;

/// Orders taken on the web till carry this terminal number.
pub(crate) const TERMINAL_NO: &str = "WEB-TILL";

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SaleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    order_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    tip: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    wallet: String,
}

/// What the sale screen shows besides the blank form.
struct SaleView<'a> {
    order_id: String,
    amount: &'a str,
    tip: &'a str,
    error: Option<String>,
}

fn render(
    state: &AppState,
    locale: Locale,
    uri: &Uri,
    session: &TillSession,
    view: SaleView<'_>,
    status: StatusCode,
    late: Option<maud::Markup>,
) -> Response {
    let lang = locale.lang;
    let currency = session.merchant.currency;
    let symbol = i18n::money(lang, Money::new(0, currency)).replace("0.00", "");
    let enabled = state.engine.wallets().enabled();
    let keys = ["7", "8", "9", "4", "5", "6", "1", "2", "3", ".", "0"];
    let body = html! {
        h1.visually-hidden { (lang.pick("New sale", "新交易")) }
        form #sale method="post" action="/pos/charge" autocomplete="off" {
            input type="hidden" name="csrf" value=(session.csrf_token);
            input type="hidden" name="order_id" value=(view.order_id);
            div #sale-error.notice.error role="alert" hidden[view.error.is_none()] {
                p.title { (view.error.clone().unwrap_or_default()) }
            }
            div.sale {
                section aria-labelledby="amount-heading" {
                    h2.visually-hidden #amount-heading { (lang.pick("Amount and tip", "金额与小费")) }
                    label for="amount" { (lang.pick("Amount", "金额")) " (" (currency.code()) ")" }
                    input.big #amount name="amount" inputmode="decimal" value=(view.amount)
                        placeholder="0.00" aria-describedby="amount-help";
                    p.muted.help #amount-help { (lang.pick(
                        "Type, or use the keypad: it fills the amount or the tip, whichever was chosen last.",
                        "可直接输入，或用数字键盘：输入到最后选择的金额或小费栏。")) }
                    label for="tip" { (lang.pick("Tip", "小费")) " (" (currency.code()) ")" }
                    input.big #tip name="tip" inputmode="decimal" value=(view.tip) placeholder="0.00";
                    p.total { (lang.pick("Total", "合计")) ": "
                        strong #total-value data-symbol=(symbol) {
                            (i18n::money(lang, Money::new(
                                i18n::parse_amount(view.amount).unwrap_or(0)
                                    .saturating_add(i18n::parse_amount(view.tip).unwrap_or(0)),
                                currency)))
                        }
                    }
                    div.pad role="group" aria-label=(lang.pick("Keypad", "数字键盘")) {
                        @for k in keys {
                            button type="button" data-key=(k) { (k) }
                        }
                        button type="button" data-key="back" aria-label=(lang.pick("Delete last digit", "删除")) { "⌫" }
                    }
                    button.secondary #clear type="button" data-key="clear" { (lang.pick("Clear", "清除")) }
                }
                section aria-labelledby="pay-heading" {
                    h2 #pay-heading { (lang.pick("Customer shows a code", "顾客出示付款码")) }
                    label for="code" { (lang.pick("Scan or type the customer's payment code, then Enter",
                        "扫描或输入顾客的付款码，然后按回车")) }
                    div.scan-row {
                        input #code name="code" inputmode="numeric"
                            autocomplete="off" spellcheck="false" enterkeyhint="go";
                        button #charge type="submit" { (lang.pick("Charge", "收款")) }
                    }
                    h2 { (lang.pick("Or show a QR for the customer to scan", "或出示二维码供顾客扫码")) }
                    div.wallets {
                        @for w in Wallet::ALL {
                            @if enabled.contains(&w) {
                                button class={ "w-" (w.as_str()) } id={ "qr-" (w.as_str()) }
                                    type="submit" name="wallet" value=(w.as_str())
                                    formaction="/pos/qr" { (i18n::wallet_name(lang, w)) }
                            }
                        }
                    }
                    @if enabled.is_empty() {
                        p.muted { (lang.pick("No wallet is enabled on this gateway.", "此网关未启用任何钱包。")) }
                    }
                }
            }
        }
        div #charging.overlay hidden role="status" aria-live="polite" {
            div.spinner aria-hidden="true" {}
            p.title { strong { (lang.pick("Charging the code…", "正在收款…")) } }
            p { (lang.pick("Waiting for the wallet. The customer may have to confirm on their phone.",
                "等待钱包确认，顾客可能需要在手机上确认。")) }
            p #charging-lost.notice.error hidden {
                (lang.pick("Connection lost, retrying… The sale is kept: it will not be charged twice.",
                    "网络中断，正在重试… 交易已保存，不会重复扣款。"))
            }
        }
    };
    let mut page = Page::new(locale, lang.pick("New sale", "新交易"), Some(session)).status(status);
    if let Some(late) = late {
        page = page.late(late);
    }
    page.render(uri, body)
}

pub(crate) async fn page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let (session, _) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return signed_out(&e),
    };
    let order_id = match state.engine.new_till_order_id('T') {
        Ok(id) => id.as_str().to_owned(),
        Err(e) => return super::order::unavailable(locale, &uri, &session, &e.to_string()),
    };
    let view = SaleView {
        order_id,
        amount: "",
        tip: "",
        error: None,
    };
    let late = super::late::notices(&state, locale.lang, &session).await;
    render(
        &state,
        locale,
        &uri,
        &session,
        view,
        StatusCode::OK,
        Some(late),
    )
}

/// Why a sale was refused before anything was charged; `new_order_id` when the form's id
/// must not be used again.
pub(crate) struct Refused {
    pub(crate) message: String,
    new_order_id: bool,
}

fn refused(message: impl Into<String>) -> Refused {
    Refused {
        message: message.into(),
        new_order_id: false,
    }
}

/// The amounts and order id of a sale form, checked.
fn read_sale(
    lang: Lang,
    session: &TillSession,
    f: &SaleForm,
) -> Result<(MerchantOrderId, Money, Money), Refused> {
    let currency = session.merchant.currency;
    let order_id = MerchantOrderId::parse(f.order_id.trim()).map_err(|_| Refused {
        message: lang
            .pick(
                "This sale form is out of date: start a new sale.",
                "此交易表单已失效，请开始新交易。",
            )
            .into(),
        new_order_id: true,
    })?;
    let amount = match i18n::parse_amount(&f.amount) {
        Some(a) if a > 0 => a,
        Some(_) => {
            return Err(refused(
                lang.pick("Enter the amount first.", "请先输入金额。"),
            ))
        }
        None => return Err(refused(amount_problem(lang, &f.amount, currency))),
    };
    let tip = i18n::parse_amount(&f.tip).ok_or_else(|| {
        refused(lang.pick(
            "The tip is not a number: type it like 2.00.",
            "小费格式错误，请输入如 2.00。",
        ))
    })?;
    Ok((
        order_id,
        Money::new(amount, currency),
        Money::new(tip, currency),
    ))
}

/// Why a typed amount is refused: too many digits (more than a sale can take), too many
/// decimals, or not a number.
pub(crate) fn amount_problem(lang: Lang, typed: &str, currency: qrgate_domain::Currency) -> String {
    let t = typed.trim();
    let (units, decimals) = t.split_once(['.', ',']).unwrap_or((t, ""));
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let max = i18n::money(lang, Money::new(qrgate_engine::MAX_AMOUNT_MINOR, currency));
    if !t.is_empty() && digits_only(units) && digits_only(decimals) {
        if decimals.len() > 2 {
            return lang
                .pick(
                    "An amount has at most two decimals: type it like 12.50.",
                    "金额最多两位小数，请输入如 12.50。",
                )
                .to_owned();
        }
        return match lang {
            Lang::En => format!("The amount is more than one sale can take: at most {max}."),
            Lang::Zh => format!("金额超过单笔上限：最多 {max}。"),
        };
    }
    lang.pick(
        "The amount is not a number: type it like 12.50.",
        "金额格式错误，请输入如 12.50。",
    )
    .to_owned()
}

pub(crate) fn payment_refusal(lang: Lang, e: PaymentError) -> Refused {
    match e {
        PaymentError::UnknownCodeFormat | PaymentError::WalletMismatch { .. } => refused(lang.pick(
            "This is not a payment code: check the digits. Nothing was charged.",
            "这不是付款码：请核对数字。未扣款。",
        )),
        PaymentError::WalletNotEnabled(w) => refused(match lang {
            Lang::En => format!("{} is not enabled on this gateway.", i18n::wallet_name(lang, w)),
            Lang::Zh => format!("此网关未启用{}。", i18n::wallet_name(lang, w)),
        }),
        PaymentError::CodeAlreadyUsed(other) => refused(match lang {
            Lang::En => format!("This payment code was already used (sale {other}): ask the customer to refresh it."),
            Lang::Zh => format!("此付款码已用于交易 {other}：请顾客刷新付款码。"),
        }),
        PaymentError::OrderUsed => Refused {
            message: lang.pick(
                "This sale was already sent with other details: check Today, then start again.",
                "此交易已用其他内容提交：请查看今日交易后重新开始。",
            ).into(),
            new_order_id: true,
        },
        PaymentError::AmountOutOfRange { max } => refused(match lang {
            Lang::En => format!(
                "The amount is more than one sale can take: at most {}. Nothing was charged.",
                i18n::money(lang, max)
            ),
            Lang::Zh => format!("金额超过单笔上限：最多 {}。未扣款。", i18n::money(lang, max)),
        }),
        PaymentError::TipOutOfRange { max } => refused(match lang {
            Lang::En => format!(
                "The tip is more than one sale can take: at most {}. Nothing was charged.",
                i18n::money(lang, max)
            ),
            Lang::Zh => format!("小费超过单笔上限：最多 {}。未扣款。", i18n::money(lang, max)),
        }),
        PaymentError::Invalid(msg) => {
            // No engine text reaches the cashier as it is: it is logged, and the till says
            // in the cashier's language that nothing was charged.
            tracing::error!(error = %msg, "till sale refused by the engine");
            refused(lang.pick(
                "The gateway could not take the sale right now. Nothing was charged: try again.",
                "网关暂时无法处理此交易。未扣款，请重试。",
            ))
        }
        PaymentError::Engine(e) => {
            tracing::error!(error = %e, "till sale could not be started");
            refused(lang.pick(
                "The gateway could not take the sale right now. Nothing was charged: try again.",
                "网关暂时无法处理此交易。未扣款，请重试。",
            ))
        }
    }
}

fn client_ip(extensions: &Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}

fn is_fetch(headers: &HeaderMap) -> bool {
    headers.get("x-till-fetch").is_some()
}

/// Answers a refused sale: JSON for the page's script, the sale screen again otherwise.
fn answer_refused(
    state: &AppState,
    locale: Locale,
    uri: &Uri,
    headers: &HeaderMap,
    session: &TillSession,
    f: &SaleForm,
    r: Refused,
) -> Response {
    let order_id = if r.new_order_id {
        state
            .engine
            .new_till_order_id('T')
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default()
    } else {
        f.order_id.clone()
    };
    if is_fetch(headers) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({"error": r.message, "order_id": order_id})),
        )
            .into_response();
    }
    let view = SaleView {
        order_id,
        amount: &f.amount,
        tip: &f.tip,
        error: Some(r.message),
    };
    render(
        state,
        locale,
        uri,
        session,
        view,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    )
}

fn go_to_order(headers: &HeaderMap, order_id: &MerchantOrderId) -> Response {
    let to = format!("/pos/orders/{order_id}");
    if is_fetch(headers) {
        Json(serde_json::json!({"redirect": to})).into_response()
    } else {
        see_other(&to)
    }
}

/// A request the session does not allow: for the script, where to go; else the redirect.
fn no_session(headers: &HeaderMap, e: &qrgate_engine::SessionError) -> Response {
    if is_fetch(headers) {
        let to = match e {
            qrgate_engine::SessionError::Expired => "/pos/sign-in?expired=1",
            _ => "/pos/sign-in",
        };
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"redirect": to})),
        )
            .into_response();
    }
    signed_out(e)
}

/// Charges the scanned code (PASSIVEPAY through the engine).
pub(crate) async fn charge(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    uri: Uri,
    Form(f): Form<SaleForm>,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let lang = locale.lang;
    let (session, _) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return no_session(&headers, &e),
    };
    if !csrf_ok(&session, &f.csrf) {
        if is_fetch(&headers) {
            return (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({"error": lang.pick(
                "This form is out of date: nothing was done. Reload the page.",
                "此表单已失效：未执行任何操作。请刷新页面。")})),
            )
                .into_response();
        }
        return csrf_refused(locale, &session, &uri);
    }
    let (order_id, amount, tip) = match read_sale(lang, &session, &f) {
        Ok(v) => v,
        Err(r) => return answer_refused(&state, locale, &uri, &headers, &session, &f, r),
    };
    let code: String = f.code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.is_empty() {
        let r = refused(lang.pick(
            "Scan the customer's payment code, or choose a wallet to show a QR.",
            "请扫描顾客的付款码，或选择钱包出示二维码。",
        ));
        return answer_refused(&state, locale, &uri, &headers, &session, &f, r);
    }
    let payment = CodePayment {
        merchant: session.merchant.clone(),
        order_id: Some(order_id.clone()),
        amount,
        tip,
        auth_code: code,
        wallet: None,
        operator_id: Some(session.operator.id.as_str().to_owned()),
        terminal_no: Some(TERMINAL_NO.to_owned()),
        sale_num: None,
        client_ip: client_ip(&extensions),
    };
    match state.engine.pay_with_code(payment).await {
        Ok(order) => go_to_order(&headers, &order.order_id),
        Err(e) => {
            let r = payment_refusal(lang, e);
            answer_refused(&state, locale, &uri, &headers, &session, &f, r)
        }
    }
}

/// Creates a QR order with the chosen wallet (ACTIVEPAY through the engine) and shows it.
pub(crate) async fn show_qr(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    uri: Uri,
    Form(f): Form<SaleForm>,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let lang = locale.lang;
    let (session, _) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return signed_out(&e),
    };
    if !csrf_ok(&session, &f.csrf) {
        return csrf_refused(locale, &session, &uri);
    }
    let (order_id, amount, tip) = match read_sale(lang, &session, &f) {
        Ok(v) => v,
        Err(r) => return answer_refused(&state, locale, &uri, &headers, &session, &f, r),
    };
    let Some(wallet) = Wallet::parse(&f.wallet) else {
        let r = refused(lang.pick("Choose a wallet.", "请选择钱包。"));
        return answer_refused(&state, locale, &uri, &headers, &session, &f, r);
    };
    let payment = QrPayment {
        merchant: session.merchant.clone(),
        order_id: Some(order_id),
        amount,
        tip,
        wallet,
        operator_id: Some(session.operator.id.as_str().to_owned()),
        terminal_no: Some(TERMINAL_NO.to_owned()),
        call_back_url: None,
        client_ip: client_ip(&extensions),
    };
    match state.engine.create_qr_order(payment).await {
        Ok(order) => see_other(&format!("/pos/orders/{}", order.order_id)),
        Err(e) => {
            let r = payment_refusal(lang, e);
            answer_refused(&state, locale, &uri, &headers, &session, &f, r)
        }
    }
}
