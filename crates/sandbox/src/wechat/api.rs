//! The v2 endpoints: the envelope checks every call shares (method, body, XML, merchant,
//! signature) and each API's translation to and from the wallet-agnostic core in
//! [`crate::state`]. Every answer is XML with `Content-Type: text/xml`, HTTP 200 as WeChat
//! does, except the simulated "no answer" which holds the connection and gives up.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use axum::body::{Body, Bytes};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, Offset, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::sign::{self, WechatSignType};
use super::xml;
use super::{WechatAccount, WechatCtx};
use crate::model::{Refund, RefundStatus, Trade, TradeKind, TradeStatus, Wallet};
use crate::state::{
    CloseOutcome, Decline, PayCodeInput, PayCodeOutcome, QrInput, QrOutcome, RefundInput,
    RefundOutcome, ReverseOutcome,
};
use crate::Sandbox;

/// The endpoints the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WechatApi {
    Micropay,
    OrderQuery,
    UnifiedOrder,
    CloseOrder,
    RefundQuery,
    QueryExchangeRate,
    Reverse,
    Refund,
}

impl WechatApi {
    /// `/secapi/*`: only over mutual TLS.
    fn secapi(self) -> bool {
        matches!(self, WechatApi::Reverse | WechatApi::Refund)
    }

    /// In institution mode a transaction names the merchant it is for (`sub_mch_id`,
    /// `wallets.md` §1.9); the exchange-rate query does not need one.
    fn needs_sub_mch_id(self) -> bool {
        !matches!(self, WechatApi::QueryExchangeRate)
    }
}

/// How long a QR order's `code_url` lives (§1.6), and the shortest `time_expire` allowed.
const QR_VALIDITY: Duration = Duration::hours(2);
const MIN_TIME_EXPIRE: Duration = Duration::minutes(1);
/// `closeorder` is refused this soon after the order was created (§1.6).
const CLOSE_MIN_AGE: Duration = Duration::minutes(5);
/// How long a "no answer" holds the connection before dropping it.
const NO_ANSWER_HOLD: StdDuration = StdDuration::from_secs(120);

type Fields = Vec<(String, String)>;

/// What an endpoint decided.
enum Step {
    /// `return_code=FAIL`: refused before business processing; unsigned.
    Fail(String),
    /// `return_code=SUCCESS` with these business fields (`result_code` first); signed.
    Answer(Fields),
    /// The request was processed but the wallet never answers.
    NoAnswer,
}

fn field(fields: &mut Fields, name: &str, value: impl ToString) {
    fields.push((name.to_owned(), value.to_string()));
}

fn success() -> Fields {
    vec![("result_code".to_owned(), "SUCCESS".to_owned())]
}

fn business_error(code: &str, description: &str) -> Fields {
    vec![
        ("result_code".to_owned(), "FAIL".to_owned()),
        ("err_code".to_owned(), code.to_owned()),
        ("err_code_des".to_owned(), description.to_owned()),
    ]
}

fn refuse(code: &str, description: &str) -> Step {
    Step::Answer(business_error(code, description))
}

fn param_error(description: &str) -> Step {
    refuse("PARAM_ERROR", description)
}

/// A request whose envelope passed: the merchant and how it signed.
struct WechatRequest {
    account: WechatAccount,
    sign_type: WechatSignType,
    fields: BTreeMap<String, String>,
}

impl WechatRequest {
    /// A field's value; empty counts as absent, as in the signature rule.
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The values of required fields, or the `LACK_PARAMS` refusal for the first missing.
    fn require<const N: usize>(&self, names: [&str; N]) -> Result<[&str; N], Step> {
        let mut out = [""; N];
        for (slot, name) in out.iter_mut().zip(names) {
            *slot = self.get(name).ok_or_else(|| lack(name))?;
        }
        Ok(out)
    }

    fn merchant(&self) -> &str {
        &self.account.mch_id
    }
}

fn lack(name: &str) -> Step {
    Step::Fail(lack_message(name))
}

fn lack_message(name: &str) -> String {
    format!("LACK_PARAMS: 缺少参数{name}")
}

fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// `yyyyMMddHHmmss` in Beijing time (§1.1).
pub(crate) fn beijing_stamp(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time: the refund query's success time is written this
/// way by WeChat, unlike the compact stamps elsewhere.
fn beijing_readable(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn parse_beijing_stamp(s: &str) -> Option<DateTime<Utc>> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
    Some(
        naive
            .and_local_timezone(beijing())
            .single()?
            .with_timezone(&Utc),
    )
}

pub(crate) fn nonce(rng: &mut impl Rng) -> String {
    (0..32)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect()
}

/// A positive integer amount in minor units, as WeChat writes them (no sign, no leading zero).
fn amount(s: &str) -> Option<i64> {
    let digits_only = !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Merchant order and refund numbers: letters, digits and `_-|*@`, bounded length.
fn merchant_no(s: &str, max: usize) -> bool {
    s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b))
}

/// WeChat payment codes: 18 digits starting 10–15 (§4).
fn wechat_auth_code(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 18
        && b.iter().all(u8::is_ascii_digit)
        && b[0] == b'1'
        && (b'0'..=b'5').contains(&b[1])
}

fn digest(parts: &[&str]) -> String {
    hex::encode(Sha256::digest(parts.join("\n").as_bytes()))
}

/// A stable, opaque openid for a customer at this appid (real ones are 28 characters).
pub(crate) fn openid(appid: &str, customer_id: &str) -> String {
    use base64::Engine;
    let d = Sha256::digest(format!("openid\n{appid}\n{customer_id}").as_bytes());
    let tail: String = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(d)
        .chars()
        .take(27)
        .collect();
    format!("o{tail}")
}

fn trade_type(trade: &Trade) -> &'static str {
    match trade.kind {
        TradeKind::Code => "MICROPAY",
        TradeKind::Qr => "NATIVE",
    }
}

fn trade_state(trade: &Trade) -> (&'static str, &'static str) {
    match trade.status {
        TradeStatus::Success if !trade.refunds.is_empty() => ("REFUND", "转入退款"),
        TradeStatus::Success => ("SUCCESS", "支付成功"),
        TradeStatus::NotPay => ("NOTPAY", "订单未支付"),
        TradeStatus::UserPaying => ("USERPAYING", "用户支付中，需要输入密码"),
        TradeStatus::Closed => ("CLOSED", "已关闭"),
        TradeStatus::Revoked => ("REVOKED", "已撤销（付款码支付）"),
        TradeStatus::PayError => ("PAYERROR", "支付失败"),
    }
}

/// The fields describing a paid trade, shared by micropay, orderquery and notifications.
pub(crate) fn paid_fields(account: &WechatAccount, trade: &Trade) -> Fields {
    let mut f = Fields::new();
    if let Some(customer) = &trade.customer_id {
        field(&mut f, "openid", openid(&account.appid, customer));
    }
    field(&mut f, "is_subscribe", "N");
    field(&mut f, "trade_type", trade_type(trade));
    // The sandbox pays from the customer's balance (零钱), reported by WeChat as OTHERS.
    field(&mut f, "bank_type", "OTHERS");
    field(&mut f, "fee_type", &trade.currency);
    field(&mut f, "total_fee", trade.total);
    field(&mut f, "cash_fee_type", "CNY");
    field(&mut f, "cash_fee", trade.cny_fen);
    // The rate to CNY ×10^8 (open point 2: the v3 representation).
    field(&mut f, "rate", trade.rate_e8);
    field(&mut f, "transaction_id", &trade.transaction_id);
    field(&mut f, "out_trade_no", &trade.out_trade_no);
    if let Some(attach) = account.attach(&trade.out_trade_no) {
        field(&mut f, "attach", attach);
    }
    if let Some(paid) = trade.paid_at {
        field(&mut f, "time_end", beijing_stamp(paid));
    }
    f
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn fail_response(message: &str) -> Response {
    xml_response(
        StatusCode::OK,
        xml::render(&[("return_code", "FAIL"), ("return_msg", message)]),
    )
}

/// Serves one call of `api`.
pub(crate) async fn handle(
    ctx: WechatCtx,
    api: WechatApi,
    method: Method,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return fail_response("REQUIRE_POST_METHOD: 请使用post方法");
    }
    if api.secapi() && !ctx.tls {
        // What WeChat does when /secapi is called without the merchant's API certificate.
        return fail_response(
            "请求需要双向证书 (client certificate required: call /secapi over mutual TLS at secapi_base_url)",
        );
    }
    let request = match envelope(&ctx.sandbox, &body) {
        Ok(r) => r,
        Err(message) => return fail_response(&message),
    };
    let step = match envelope_business_checks(&request, api) {
        Some(step) => step,
        None => {
            let result = match api {
                WechatApi::Micropay => micropay(&ctx.sandbox, &request),
                WechatApi::OrderQuery => order_query(&ctx.sandbox, &request),
                WechatApi::UnifiedOrder => unified_order(&ctx.sandbox, &request),
                WechatApi::CloseOrder => close_order(&ctx.sandbox, &request),
                WechatApi::RefundQuery => refund_query(&ctx.sandbox, &request),
                WechatApi::QueryExchangeRate => exchange_rate(&ctx.sandbox, &request),
                WechatApi::Reverse => reverse(&ctx.sandbox, &request),
                WechatApi::Refund => refund(&ctx.sandbox, &request),
            };
            result.unwrap_or_else(|step| step)
        }
    };
    match step {
        Step::Fail(message) => fail_response(&message),
        Step::NoAnswer => no_answer().await,
        Step::Answer(fields) => xml_response(
            StatusCode::OK,
            signed_answer(&ctx.sandbox, &request, fields),
        ),
    }
}

async fn no_answer() -> Response {
    // Processed, never answered: the caller times out. Bounded so the connection is closed
    // eventually even for a caller without a timeout.
    tokio::time::sleep(NO_ANSWER_HOLD).await;
    (StatusCode::GATEWAY_TIMEOUT, Body::empty()).into_response()
}

/// Checks everything before the business: body, XML, merchant, signature. A refusal here
/// is a `return_code=FAIL` with this message.
fn envelope(sandbox: &Sandbox, body: &[u8]) -> Result<WechatRequest, String> {
    if whitespace_only(body) {
        return Err("POST_DATA_EMPTY: post数据为空".to_owned());
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Err("NOT_UTF8: 编码格式错误".to_owned());
    };
    let fields = xml::parse(text).map_err(|e| e.to_string())?;
    for name in ["appid", "mch_id", "nonce_str", "sign"] {
        if fields.get(name).is_none_or(String::is_empty) {
            return Err(lack_message(name));
        }
    }
    let Some(account) = WechatAccount::load(sandbox) else {
        return Err("SYSTEMERROR: the sandbox has no WeChat merchant".to_owned());
    };
    // An unknown merchant has no key the answer could be signed with, so this is refused at
    // the transport level rather than as a (signed) business error.
    if fields.get("mch_id").map(String::as_str) != Some(account.mch_id.as_str()) {
        return Err("MCHID_NOT_EXIST: mch_id参数错误，商户号不存在".to_owned());
    }
    let Some(sign_type) = WechatSignType::parse(fields.get("sign_type").map(String::as_str)) else {
        return Err("sign_type参数错误 (MD5 or HMAC-SHA256)".to_owned());
    };
    if !sign::verify(&fields, &account.api_key, sign_type) {
        return Err("签名错误".to_owned());
    }
    if fields
        .get("nonce_str")
        .is_some_and(|n| n.chars().count() > 32)
    {
        return Err("nonce_str参数长度有误 (at most 32 characters)".to_owned());
    }
    Ok(WechatRequest {
        account,
        sign_type,
        fields,
    })
}

fn whitespace_only(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// The merchant checks that are answered as signed business errors (§1.3's error table).
fn envelope_business_checks(request: &WechatRequest, api: WechatApi) -> Option<Step> {
    let appid = request.get("appid").unwrap_or_default();
    if appid != request.account.appid {
        // A well-formed appid belongs to some other account; anything else exists nowhere.
        let well_formed = appid.len() == 18
            && appid.starts_with("wx")
            && appid.bytes().skip(2).all(|b| b.is_ascii_hexdigit());
        return Some(if well_formed {
            refuse("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        } else {
            refuse("APPID_NOT_EXIST", "appid不存在")
        });
    }
    match request.get("sub_mch_id") {
        Some(sub) if sub != request.account.sub_mch_id => {
            return Some(param_error("sub_mch_id与mch_id不匹配"));
        }
        // The sandbox's merchant is an institution's sub-merchant: a transaction without
        // `sub_mch_id` names no merchant, and WeChat Pay refuses it.
        None if api.needs_sub_mch_id() => {
            return Some(param_error(
                "缺少参数sub_mch_id (institution mode requires it)",
            ));
        }
        _ => {}
    }
    None
}

/// The `return_code=SUCCESS` envelope around business fields, signed like the request (or
/// wrongly, when the `bad_signature_next` fault is taken).
fn signed_answer(sandbox: &Sandbox, request: &WechatRequest, business: Fields) -> String {
    let account = &request.account;
    let mut fields: Fields = vec![
        ("return_code".to_owned(), "SUCCESS".to_owned()),
        ("return_msg".to_owned(), "OK".to_owned()),
        ("appid".to_owned(), account.appid.clone()),
        ("mch_id".to_owned(), account.mch_id.clone()),
    ];
    for echoed in ["sub_mch_id", "device_info"] {
        if let Some(v) = request.get(echoed) {
            field(&mut fields, echoed, v);
        }
    }
    field(
        &mut fields,
        "nonce_str",
        sandbox.with(|_, rng, _| nonce(rng)),
    );
    fields.extend(business);
    drop_amount_if_faulted(sandbox, &mut fields);
    let forged = sandbox.take_fault(Wallet::Wechat, |f| &mut f.bad_signature_next);
    let signature = sign_fields(&fields, &account.api_key, request.sign_type, forged);
    // `sign` goes after `nonce_str`, where WeChat puts it; the order does not matter to it.
    let at = fields
        .iter()
        .position(|(k, _)| k == "nonce_str")
        .map_or(fields.len(), |p| p + 1);
    fields.insert(at, ("sign".to_owned(), signature));
    xml::render(&fields)
}

/// The `amountless_next` fault: the order's `total_fee` is left out.
pub(crate) fn drop_amount_if_faulted(sandbox: &Sandbox, fields: &mut Fields) {
    let carries = fields.iter().any(|(k, _)| k == "total_fee");
    if sandbox.take_amountless(Wallet::Wechat, carries) {
        fields.retain(|(k, _)| k != "total_fee");
    }
}

/// Signs `fields`; `forged` gives a well-formed but wrong signature (signed with another key).
pub(crate) fn sign_fields(
    fields: &Fields,
    api_key: &str,
    sign_type: WechatSignType,
    forged: bool,
) -> String {
    let key = if forged {
        api_key.chars().rev().collect::<String>() + "x"
    } else {
        api_key.to_owned()
    };
    sign::sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &key,
        sign_type,
    )
}

/// The fee type of a request: CNY by default, otherwise a currency the sandbox has a rate
/// for (CAD and USD out of the box; the control API can add more).
fn fee_type(sandbox: &Sandbox, request: &WechatRequest) -> Result<String, Step> {
    let currency = request.get("fee_type").unwrap_or("CNY");
    let known = currency.len() == 3
        && currency.bytes().all(|b| b.is_ascii_uppercase())
        && sandbox.with(|s, _, _| s.rates.contains_key(currency));
    if known {
        Ok(currency.to_owned())
    } else {
        Err(param_error("fee_type参数错误: 不支持该币种"))
    }
}

fn order_no(request: &WechatRequest, name: &str) -> Result<Option<String>, Step> {
    match request.get(name) {
        None => Ok(None),
        Some(v) if merchant_no(v, 32) => Ok(Some(v.to_owned())),
        Some(_) => Err(param_error(&format!(
            "{name}参数错误: 最长32位，只能是数字、大小写字母_-|*@"
        ))),
    }
}

fn total_fee(request: &WechatRequest, name: &str) -> Result<i64, Step> {
    let raw = request.get(name).ok_or_else(|| lack(name))?;
    amount(raw).ok_or_else(|| param_error(&format!("{name}参数错误: 须为正整数（最小货币单位）")))
}

fn check_body(body: &str) -> Result<(), Step> {
    if body.chars().count() > 128 {
        return Err(param_error("body参数长度有误 (at most 128 characters)"));
    }
    Ok(())
}

/// Records an order's `attach` (echoed by queries and notifications) and `device_info` (the
/// bill's 设备号 column, and its `device_info` filter).
fn remember_attach(sandbox: &Sandbox, request: &WechatRequest, out_trade_no: &str) {
    let extras = [
        ("order_attach", request.get("attach")),
        ("order_device", request.get("device_info")),
    ];
    if extras.iter().all(|(_, v)| v.is_none()) {
        return;
    }
    sandbox.with(|s, _, _| {
        let Some(serde_json::Value::Object(account)) = s.accounts.get_mut(&Wallet::Wechat) else {
            return;
        };
        for (key, value) in extras {
            let Some(value) = value else {
                continue;
            };
            let map = account
                .entry(key)
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(map) = map {
                map.entry(out_trade_no.to_owned())
                    .or_insert_with(|| serde_json::Value::String(value.to_owned()));
            }
        }
    });
}

/// Re-reads the account after `remember_attach` so the answer can echo `attach`.
fn fresh_account(sandbox: &Sandbox, request: &WechatRequest) -> WechatAccount {
    WechatAccount::load(sandbox).unwrap_or_else(|| request.account.clone())
}

// ---------------------------------------------------------------------------------------
// /pay/micropay (§1.3)

fn micropay(sandbox: &Sandbox, request: &WechatRequest) -> Result<Step, Step> {
    let [body, out_trade_no, _, _, auth_code] = request.require([
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "auth_code",
    ])?;
    let out_trade_no =
        order_no(request, "out_trade_no")?.unwrap_or_else(|| out_trade_no.to_owned());
    let total = total_fee(request, "total_fee")?;
    let currency = fee_type(sandbox, request)?;
    check_body(body)?;
    if !wechat_auth_code(auth_code) {
        return Ok(refuse(
            "AUTH_CODE_INVALID",
            "请扫描微信支付付款码(18位数字，以10-15开头)",
        ));
    }
    let total_text = total.to_string();
    let input = PayCodeInput {
        wallet: Wallet::Wechat,
        merchant: request.merchant().to_owned(),
        out_trade_no: out_trade_no.clone(),
        currency: currency.clone(),
        total,
        auth_code: auth_code.to_owned(),
        subject: body.to_owned(),
        // v2 micropay has no notify_url: code payments are answered synchronously.
        notify_url: None,
        fingerprint: digest(&["micropay", &total_text, &currency, auth_code, body]),
    };
    let outcome = sandbox.with(|s, rng, now| s.pay_code(rng, input, now));
    let created = matches!(
        outcome,
        PayCodeOutcome::Paid(_) | PayCodeOutcome::UserPaying(_) | PayCodeOutcome::SystemError(_)
    );
    if created {
        remember_attach(sandbox, request, &out_trade_no);
    }
    Ok(match outcome {
        PayCodeOutcome::Paid(trade) => {
            let mut f = success();
            f.extend(paid_fields(&fresh_account(sandbox, request), &trade));
            Step::Answer(f)
        }
        PayCodeOutcome::UserPaying(_) => refuse("USERPAYING", "需要用户输入支付密码"),
        PayCodeOutcome::Declined(Decline::CodeExpired) => {
            refuse("AUTHCODEEXPIRE", "二维码已过期，请用户在微信上刷新后再试")
        }
        PayCodeOutcome::Declined(Decline::CodeUsed) => {
            refuse("AUTH_CODE_ERROR", "每个二维码仅限使用一次，请刷新再试")
        }
        PayCodeOutcome::Declined(Decline::CodeInvalid) => {
            refuse("AUTH_CODE_INVALID", "请扫描微信支付付款码")
        }
        PayCodeOutcome::Declined(Decline::InsufficientBalance) => refuse("NOTENOUGH", "余额不足"),
        // The payment went through; the wallet just could not say so in time.
        PayCodeOutcome::SystemError(_) => {
            refuse("SYSTEMERROR", "系统超时，请立即调用被扫订单结果查询API")
        }
        PayCodeOutcome::NoAnswer => Step::NoAnswer,
        PayCodeOutcome::AlreadyPaid(_) => refuse("ORDERPAID", "订单已支付"),
        PayCodeOutcome::AlreadyClosed(_) => refuse("ORDERCLOSED", "订单已关闭"),
        PayCodeOutcome::AlreadyRevoked(_) => refuse("ORDERREVERSED", "订单已撤销"),
        PayCodeOutcome::Conflict => refuse("OUT_TRADE_NO_USED", "商户订单号重复"),
    })
}

// ---------------------------------------------------------------------------------------
// /pay/orderquery (§1.4)

/// Which trade a request names: `transaction_id` first, then `out_trade_no`.
enum TradeRef {
    TransactionId(String),
    OutTradeNo(String),
}

fn trade_ref(request: &WechatRequest) -> Result<TradeRef, Step> {
    if let Some(id) = request.get("transaction_id") {
        return Ok(TradeRef::TransactionId(id.to_owned()));
    }
    match order_no(request, "out_trade_no")? {
        Some(no) => Ok(TradeRef::OutTradeNo(no)),
        None => Err(Step::Fail(
            "LACK_PARAMS: 缺少参数out_trade_no或transaction_id".to_owned(),
        )),
    }
}

fn find_trade(
    s: &mut crate::state::State,
    merchant: &str,
    r: &TradeRef,
    now: DateTime<Utc>,
) -> Option<Trade> {
    match r {
        TradeRef::TransactionId(id) => s.trade_by_transaction_id(Wallet::Wechat, merchant, id, now),
        TradeRef::OutTradeNo(no) => s.trade(Wallet::Wechat, merchant, no, now),
    }
}

fn order_query(sandbox: &Sandbox, request: &WechatRequest) -> Result<Step, Step> {
    let r = trade_ref(request)?;
    let Some(trade) = sandbox.with(|s, _, now| find_trade(s, request.merchant(), &r, now)) else {
        return Ok(refuse("ORDERNOTEXIST", "此交易订单号不存在"));
    };
    let (state, description) = trade_state(&trade);
    let mut f = success();
    if trade.paid_at.is_some() {
        f.extend(paid_fields(&request.account, &trade));
    } else {
        field(&mut f, "trade_type", trade_type(&trade));
        field(&mut f, "fee_type", &trade.currency);
        field(&mut f, "total_fee", trade.total);
        field(&mut f, "out_trade_no", &trade.out_trade_no);
        if let Some(attach) = request.account.attach(&trade.out_trade_no) {
            field(&mut f, "attach", attach);
        }
    }
    field(&mut f, "trade_state", state);
    field(&mut f, "trade_state_desc", description);
    Ok(Step::Answer(f))
}

// ---------------------------------------------------------------------------------------
// /secapi/pay/reverse (§1.5)

fn reverse(sandbox: &Sandbox, request: &WechatRequest) -> Result<Step, Step> {
    let r = trade_ref(request)?;
    enum Found {
        Native,
        Core(Box<ReverseOutcome>),
    }
    let found = sandbox.with(|s, _, now| {
        let out_trade_no = match (&r, find_trade(s, request.merchant(), &r, now)) {
            (_, Some(t)) if t.kind == TradeKind::Qr => return Found::Native,
            (_, Some(t)) => t.out_trade_no,
            (TradeRef::TransactionId(_), None) => {
                return Found::Core(Box::new(ReverseOutcome::NotFound))
            }
            // Unknown out_trade_no: still through the core, which may answer "call again".
            (TradeRef::OutTradeNo(no), None) => no.clone(),
        };
        Found::Core(Box::new(s.reverse(
            Wallet::Wechat,
            request.merchant(),
            &out_trade_no,
            now,
        )))
    });
    let found = match found {
        Found::Native => None,
        Found::Core(outcome) => Some(*outcome),
    };
    let mut f = match found {
        // Reversal is for payment-code orders only; a QR order is closed or refunded.
        None => business_error(
            "INVALID_REQUEST",
            "该订单不是付款码支付订单，不能撤销，请使用关单或退款",
        ),
        Some(ReverseOutcome::Reversed { .. }) => success(),
        Some(ReverseOutcome::CallAgain) => {
            let mut f = business_error("SYSTEMERROR", "系统繁忙，请重新调用撤销接口");
            field(&mut f, "recall", "Y");
            return Ok(Step::Answer(f));
        }
        Some(ReverseOutcome::TooLate(_)) => {
            business_error("REVERSE_EXPIRE", "订单已超过可撤销时间，请使用退款")
        }
        Some(ReverseOutcome::NotFound) => business_error("ORDERNOTEXIST", "此交易订单号不存在"),
    };
    field(&mut f, "recall", "N");
    Ok(Step::Answer(f))
}

// ---------------------------------------------------------------------------------------
// /pay/unifiedorder, NATIVE only (§1.6)

fn unified_order(sandbox: &Sandbox, request: &WechatRequest) -> Result<Step, Step> {
    let [body, out_trade_no, _, _, notify_url, trade_type] = request.require([
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "notify_url",
        "trade_type",
    ])?;
    match trade_type {
        "NATIVE" => {}
        "JSAPI" | "APP" | "MWEB" => {
            return Ok(refuse(
                "NOAUTH",
                "商户无此接口权限 (the sandbox merchant has NATIVE only)",
            ))
        }
        _ => return Ok(param_error("trade_type参数错误")),
    }
    let [product_id] = request.require(["product_id"])?;
    let out_trade_no =
        order_no(request, "out_trade_no")?.unwrap_or_else(|| out_trade_no.to_owned());
    let total = total_fee(request, "total_fee")?;
    let currency = fee_type(sandbox, request)?;
    check_body(body)?;
    if product_id.chars().count() > 32 {
        return Ok(param_error(
            "product_id参数长度有误 (at most 32 characters)",
        ));
    }
    // WeChat calls back the URL as given: it must be absolute and carry no query string.
    let url_ok = url::Url::parse(notify_url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.query().is_none() && u.host().is_some()
    });
    if !url_ok {
        return Ok(param_error(
            "notify_url参数错误: 须为完整的http(s)地址，不能携带参数",
        ));
    }
    if let Some(start) = request.get("time_start") {
        if parse_beijing_stamp(start).is_none() {
            return Ok(param_error("time_start参数错误: yyyyMMddHHmmss"));
        }
    }
    let now = sandbox.now();
    // The code_url dies after 2 hours whatever time_expire says; a time_expire gives an
    // earlier end, at least a minute away.
    let expires_at = match request.get("time_expire") {
        None => now + QR_VALIDITY,
        Some(raw) => match parse_beijing_stamp(raw) {
            None => return Ok(param_error("time_expire参数错误: yyyyMMddHHmmss")),
            Some(at) if at < now + MIN_TIME_EXPIRE => {
                return Ok(param_error(
                    "time_expire时间过短，最短失效时间间隔必须大于1分钟",
                ))
            }
            Some(at) => at.min(now + QR_VALIDITY),
        },
    };
    let total_text = total.to_string();
    let input = QrInput {
        wallet: Wallet::Wechat,
        merchant: request.merchant().to_owned(),
        out_trade_no: out_trade_no.clone(),
        currency: currency.clone(),
        total,
        subject: body.to_owned(),
        notify_url: Some(notify_url.to_owned()),
        expires_at,
        // time_expire is left out: a retry recomputing it is still the same order.
        fingerprint: digest(&["native", &total_text, &currency, body, product_id]),
    };
    let outcome = sandbox.with(|s, rng, now| s.create_qr(rng, input, now));
    let trade = match outcome {
        QrOutcome::Created(t) => {
            remember_attach(sandbox, request, &out_trade_no);
            t
        }
        QrOutcome::Existing(t) => t,
        QrOutcome::AlreadyPaid(_) => return Ok(refuse("ORDERPAID", "该订单已支付")),
        QrOutcome::AlreadyClosed(_) => return Ok(refuse("ORDERCLOSED", "该订单已关闭")),
        QrOutcome::Conflict => return Ok(refuse("OUT_TRADE_NO_USED", "商户订单号重复")),
    };
    let mut f = success();
    field(&mut f, "trade_type", "NATIVE");
    field(&mut f, "prepay_id", prepay_id(&trade));
    // The core keeps only the token; the URL opens the sandbox's pay page (scanning it is
    // "the customer opens it in WeChat").
    let token = trade.qr_token.clone().unwrap_or_default();
    field(
        &mut f,
        "code_url",
        format!("{}/pay/{token}", sandbox.base_url()),
    );
    Ok(Step::Answer(f))
}

/// A prepay id in WeChat's shape (`wx` + creation time + 20 hex), stable for an order.
fn prepay_id(trade: &Trade) -> String {
    let tail: String = digest(&["prepay", &trade.transaction_id])
        .chars()
        .take(20)
        .collect();
    format!("wx{}{tail}", beijing_stamp(trade.created_at))
}

// ---------------------------------------------------------------------------------------
// /pay/closeorder (§1.6)

fn close_order(sandbox: &Sandbox, request: &WechatRequest) -> Result<Step, Step> {
    request.require(["out_trade_no"])?;
    let Some(out_trade_no) = order_no(request, "out_trade_no")? else {
        return Err(lack("out_trade_no"));
    };
    enum Close {
        NotFound,
        Paid,
        AlreadyClosed,
        TooEarly,
        Closed,
    }
    let result = sandbox.with(|s, _, now| {
        let Some(trade) = s.trade(Wallet::Wechat, request.merchant(), &out_trade_no, now) else {
            return Close::NotFound;
        };
        match trade.status {
            TradeStatus::Success => return Close::Paid,
            TradeStatus::Closed | TradeStatus::Revoked | TradeStatus::PayError => {
                return Close::AlreadyClosed
            }
            TradeStatus::NotPay | TradeStatus::UserPaying => {}
        }
        if now - trade.created_at < CLOSE_MIN_AGE {
            return Close::TooEarly;
        }
        match s.close(Wallet::Wechat, request.merchant(), &out_trade_no, now) {
            CloseOutcome::Closed(_) => Close::Closed,
            CloseOutcome::AlreadyClosed(_) => Close::AlreadyClosed,
            CloseOutcome::Paid(_) => Close::Paid,
            CloseOutcome::NotFound => Close::NotFound,
        }
    });
    Ok(match result {
        Close::Closed => {
            let mut f = success();
            field(&mut f, "result_msg", "OK");
            Step::Answer(f)
        }
        Close::NotFound => refuse("ORDERNOTEXIST", "此交易订单号不存在"),
        Close::Paid => refuse("ORDERPAID", "订单已支付，不能发起关单"),
        // Already closed is the wanted end state; the code tells the caller so.
        Close::AlreadyClosed => refuse("ORDERCLOSED", "订单已关闭，无需重复关闭"),
        // §1.6: closing is not allowed until 5 minutes after creation. The documentation's
        // closeorder error list has no code for it; INVALID_REQUEST ("the request breaks a
        // business rule") fits, and the description says when to come back. Not SYSTEMERROR
        // (that would invite an immediate retry) nor ORDERCLOSED (the order is still open).
        Close::TooEarly => refuse("INVALID_REQUEST", "订单创建5分钟后才能关闭，请稍后再试"),
    })
}

// ---------------------------------------------------------------------------------------
// /secapi/pay/refund (§1.8)

fn refund(sandbox: &Sandbox, request: &WechatRequest) -> Result<Step, Step> {
    let [out_refund_no, _, _] = request.require(["out_refund_no", "total_fee", "refund_fee"])?;
    let r = trade_ref(request)?;
    if !merchant_no(out_refund_no, 64) {
        return Ok(param_error(
            "out_refund_no参数错误: 最长64位，只能是数字、大小写字母_-|*@",
        ));
    }
    let total = total_fee(request, "total_fee")?;
    let refund_fee = total_fee(request, "refund_fee")?;
    if refund_fee > total {
        // What WeChat answers for a refund larger than the order amount given.
        return Err(Step::Fail("invalid refund_fee".to_owned()));
    }
    /// Refusals before the core is asked.
    enum Refunded {
        NotFound,
        TotalMismatch,
        CurrencyMismatch,
        NumberTaken,
    }
    let refund_currency = request.get("refund_fee_type").map(str::to_owned);
    let result = sandbox.with(|s, rng, now| {
        let Some(trade) = find_trade(s, request.merchant(), &r, now) else {
            return Err(Refunded::NotFound);
        };
        if trade.total != total {
            return Err(Refunded::TotalMismatch);
        }
        if refund_currency
            .as_deref()
            .is_some_and(|c| c != trade.currency)
        {
            return Err(Refunded::CurrencyMismatch);
        }
        // out_refund_no is unique per merchant, not only per order.
        let taken = s.trades.values().any(|t| {
            t.wallet == Wallet::Wechat
                && t.merchant == request.merchant()
                && t.out_trade_no != trade.out_trade_no
                && t.refunds.iter().any(|x| x.out_refund_no == out_refund_no)
        });
        if taken {
            return Err(Refunded::NumberTaken);
        }
        let input = RefundInput {
            wallet: Wallet::Wechat,
            merchant: request.merchant().to_owned(),
            out_trade_no: trade.out_trade_no.clone(),
            out_refund_no: out_refund_no.to_owned(),
            amount: refund_fee,
        };
        Ok(s.refund(rng, input, now))
    });
    Ok(match result {
        Err(Refunded::NotFound) | Ok(RefundOutcome::NotFound) => match r {
            TradeRef::TransactionId(_) => refuse("INVALID_TRANSACTIONID", "无效transaction_id"),
            TradeRef::OutTradeNo(_) => refuse("ORDERNOTEXIST", "订单不存在"),
        },
        // WeChat reports a wrong order amount with the same code as a changed refund amount.
        Err(Refunded::TotalMismatch) | Ok(RefundOutcome::Mismatch) => refuse(
            "REFUND_FEE_MISMATCH",
            "订单金额或退款金额与之前请求不一致，请核实后再试",
        ),
        Err(Refunded::CurrencyMismatch) => param_error("refund_fee_type须与订单fee_type一致"),
        Err(Refunded::NumberTaken) => {
            refuse("INVALID_REQUEST", "out_refund_no已被本商户其他订单使用")
        }
        Ok(RefundOutcome::Accepted { trade, refund, .. }) => {
            let mut f = success();
            field(&mut f, "transaction_id", &trade.transaction_id);
            field(&mut f, "out_trade_no", &trade.out_trade_no);
            field(&mut f, "out_refund_no", &refund.out_refund_no);
            field(&mut f, "refund_id", &refund.refund_id);
            field(&mut f, "refund_fee", refund.amount);
            field(&mut f, "refund_fee_type", &trade.currency);
            field(&mut f, "total_fee", trade.total);
            field(&mut f, "fee_type", &trade.currency);
            field(&mut f, "cash_fee", trade.cny_fen);
            field(&mut f, "cash_fee_type", "CNY");
            field(&mut f, "cash_refund_fee", refund.cny_fen);
            field(&mut f, "cash_refund_fee_type", "CNY");
            field(&mut f, "rate", trade.rate_e8);
            Step::Answer(f)
        }
        Ok(RefundOutcome::NotPaid(trade)) => match trade.status {
            // Still waiting for the password: it may become refundable.
            TradeStatus::UserPaying => refuse(
                "ORDER_NOT_READY",
                "订单处理中，暂时无法退款，请使用相同参数稍后重新调用",
            ),
            _ => refuse("ERROR", "订单状态错误，未支付的订单不能退款"),
        },
        Ok(RefundOutcome::Exceeds(trade)) if trade.refunded() >= trade.total => {
            refuse("ERROR", "订单已全额退款")
        }
        Ok(RefundOutcome::Exceeds(_)) => refuse("INVALID_REQUEST", "refund_fee大于可退金额"),
        // §1.8: at most 50 refunds per order. INVALID_REQ_TOO_MUCH means "too many invalid
        // requests" (the 6 qps limit) in WeChat's table, so the cap is a rule violation.
        Ok(RefundOutcome::TooMany) => refuse("INVALID_REQUEST", "该订单退款次数已超过50次的上限"),
        Ok(RefundOutcome::WindowPassed) => refuse("TRADE_OVERDUE", "订单已经超过可退款的最大期限"),
        Ok(RefundOutcome::InvalidAmount) => param_error("refund_fee参数错误"),
    })
}

// ---------------------------------------------------------------------------------------
// /pay/refundquery (§1.8)

fn refund_query(sandbox: &Sandbox, request: &WechatRequest) -> Result<Step, Step> {
    // One of four keys, in WeChat's priority order.
    enum Key {
        RefundId(String),
        OutRefundNo(String),
        Trade(TradeRef),
    }
    let key = if let Some(id) = request.get("refund_id") {
        Key::RefundId(id.to_owned())
    } else if let Some(no) = request.get("out_refund_no") {
        Key::OutRefundNo(no.to_owned())
    } else if request.get("transaction_id").is_some() || request.get("out_trade_no").is_some() {
        Key::Trade(trade_ref(request)?)
    } else {
        return Err(Step::Fail(
            "LACK_PARAMS: 缺少参数refund_id、out_refund_no、transaction_id或out_trade_no"
                .to_owned(),
        ));
    };
    let offset = match request.get("offset") {
        None => None,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => return Ok(param_error("offset参数错误")),
        },
    };
    let merchant = request.merchant();
    let found: Option<(Trade, Vec<Refund>)> = sandbox.with(|s, _, now| {
        let pick = |s: &crate::state::State, matches: &dyn Fn(&Refund) -> bool| {
            s.trades
                .values()
                .find(|t| {
                    t.wallet == Wallet::Wechat
                        && t.merchant == merchant
                        && t.refunds.iter().any(matches)
                })
                .map(|t| t.out_trade_no.clone())
        };
        match &key {
            Key::RefundId(id) => {
                let no = pick(s, &|r| &r.refund_id == id)?;
                let trade = s.trade(Wallet::Wechat, merchant, &no, now)?;
                let list = trade
                    .refunds
                    .iter()
                    .filter(|r| &r.refund_id == id)
                    .cloned()
                    .collect();
                Some((trade, list))
            }
            Key::OutRefundNo(no) => {
                let out_trade_no = pick(s, &|r| &r.out_refund_no == no)?;
                let trade = s.trade(Wallet::Wechat, merchant, &out_trade_no, now)?;
                let list = trade
                    .refunds
                    .iter()
                    .filter(|r| &r.out_refund_no == no)
                    .cloned()
                    .collect();
                Some((trade, list))
            }
            Key::Trade(r) => {
                let trade = find_trade(s, merchant, r, now)?;
                let list = trade.refunds.clone();
                Some((trade, list))
            }
        }
    });
    let Some((trade, refunds)) = found.filter(|(_, list)| !list.is_empty()) else {
        return Ok(refuse(
            "REFUNDNOTEXIST",
            "退款订单查询失败，订单号错误或订单状态不正确",
        ));
    };
    let total_count = refunds.len();
    // Pages of 10 from `offset` when asked; otherwise the whole list (at most 50).
    let page: Vec<Refund> = match offset {
        Some(start) if start >= total_count => {
            return Ok(param_error("offset参数错误: 超过退款笔数"))
        }
        Some(start) => refunds.into_iter().skip(start).take(10).collect(),
        None => refunds,
    };
    let mut f = success();
    field(&mut f, "transaction_id", &trade.transaction_id);
    field(&mut f, "out_trade_no", &trade.out_trade_no);
    field(&mut f, "total_fee", trade.total);
    field(&mut f, "fee_type", &trade.currency);
    field(&mut f, "cash_fee", trade.cny_fen);
    field(&mut f, "cash_fee_type", "CNY");
    field(&mut f, "rate", trade.rate_e8);
    field(
        &mut f,
        "refund_fee",
        page.iter().map(|r| r.amount).sum::<i64>(),
    );
    if offset.is_some() {
        field(&mut f, "total_refund_count", total_count);
    }
    field(&mut f, "refund_count", page.len());
    for (n, r) in page.iter().enumerate() {
        field(&mut f, &format!("out_refund_no_{n}"), &r.out_refund_no);
        field(&mut f, &format!("refund_id_{n}"), &r.refund_id);
        field(&mut f, &format!("refund_channel_{n}"), "ORIGINAL");
        field(&mut f, &format!("refund_fee_{n}"), r.amount);
        field(&mut f, &format!("cash_refund_fee_{n}"), r.cny_fen);
        let status = match r.status {
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Success => "SUCCESS",
        };
        field(&mut f, &format!("refund_status_{n}"), status);
        field(
            &mut f,
            &format!("refund_account_{n}"),
            "REFUND_SOURCE_UNSETTLED_FUNDS",
        );
        field(&mut f, &format!("refund_recv_accout_{n}"), "支付用户零钱");
        if let Some(at) = r.succeeded_at {
            field(
                &mut f,
                &format!("refund_success_time_{n}"),
                beijing_readable(at),
            );
        }
    }
    Ok(Step::Answer(f))
}

// ---------------------------------------------------------------------------------------
// /pay/queryexchagerate (§1.9; the misspelling is WeChat's)

fn exchange_rate(sandbox: &Sandbox, request: &WechatRequest) -> Result<Step, Step> {
    let [currency, date] = request.require(["fee_type", "date"])?;
    if date.len() != 8 || NaiveDate::parse_from_str(date, "%Y%m%d").is_err() {
        return Ok(param_error("date参数错误: yyyyMMdd"));
    }
    let Some(rate) = sandbox.with(|s, _, _| s.rates.get(currency).copied()) else {
        return Ok(param_error("fee_type参数错误: 不支持该币种"));
    };
    let mut f = success();
    field(&mut f, "fee_type", currency);
    // The sandbox has one rate per currency, whatever the day.
    field(&mut f, "rate_time", date);
    field(&mut f, "rate", rate);
    Ok(Step::Answer(f))
}
