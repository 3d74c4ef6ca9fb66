//! `POST /pay/downloadbill` (`bills.md` §1): the day's bill as WeChat Pay v2 writes it. The
//! request is v2 XML signed like every other call; a bill comes back as plain UTF-8 text (or
//! gzip with `tar_type=GZIP`), unsigned; any failure is a `return_code=FAIL` XML document, so
//! a client tells them apart by the leading `<`, which a bill never has.
//!
//! The text: a header line of Chinese column names, one line per row with every value
//! prefixed by a backtick, then a summary header and one summary line. `ALL` has 27 columns,
//! `SUCCESS` 20 (payments only), `REFUND` 29 (refunds only, with 退款申请时间 and 退款成功时间).
//! Money in yuan (or the pricing currency's major unit) with two decimals, the fee with five.

use std::collections::BTreeMap;
use std::io::Write;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::api::openid;
use super::sign::{self, WechatSignType};
use super::xml;
use super::{WechatAccount, WechatCtx};
use crate::bills::{self, BillEntry, EntryKind};
use crate::model::{TradeKind, Wallet};

/// The bills WeChat serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WechatBillType {
    All,
    Success,
    Refund,
    /// Refunds of recharge coupons: the sandbox has no coupons, so this bill never exists.
    RechargeRefund,
}

impl WechatBillType {
    /// A missing `bill_type` reads as `ALL` (older documentation calls it the default).
    fn parse(value: Option<&str>) -> Option<WechatBillType> {
        match value {
            None | Some("") | Some("ALL") => Some(WechatBillType::All),
            Some("SUCCESS") => Some(WechatBillType::Success),
            Some("REFUND") => Some(WechatBillType::Refund),
            Some("RECHARGE_REFUND") => Some(WechatBillType::RechargeRefund),
            Some(_) => None,
        }
    }
}

/// A refusal: `return_msg` and, for some, WeChat's numeric `error_code`.
struct BillError {
    message: &'static str,
    error_code: Option<&'static str>,
}

const fn refuse(message: &'static str) -> BillError {
    BillError {
        message,
        error_code: None,
    }
}

const NO_BILL: BillError = BillError {
    message: "No Bill Exist",
    error_code: Some("20002"),
};

fn fail(error: &BillError) -> Response {
    let mut fields = vec![("return_code", "FAIL"), ("return_msg", error.message)];
    if let Some(code) = error.error_code {
        fields.push(("error_code", code));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        xml::render(&fields),
    )
        .into_response()
}

pub(crate) async fn download_bill(
    State(ctx): State<WechatCtx>,
    method: Method,
    body: Bytes,
) -> Response {
    match serve(&ctx, &method, &body) {
        Ok(response) => response,
        Err(error) => fail(&error),
    }
}

/// The request, checked like every v2 call (fields, merchant, signature).
struct BillRequest {
    account: WechatAccount,
    fields: BTreeMap<String, String>,
}

impl BillRequest {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn check(ctx: &WechatCtx, method: &Method, body: &[u8]) -> Result<BillRequest, BillError> {
    if method != Method::POST {
        return Err(refuse("REQUIRE_POST_METHOD"));
    }
    let text = std::str::from_utf8(body).map_err(|_| refuse("data format error"))?;
    if text.trim().is_empty() {
        return Err(refuse("missing parameter"));
    }
    let fields = xml::parse(text).map_err(|_| refuse("data format error"))?;
    for name in ["appid", "mch_id", "nonce_str", "sign", "bill_date"] {
        if fields.get(name).is_none_or(String::is_empty) {
            return Err(refuse("missing parameter"));
        }
    }
    let account = WechatAccount::load(&ctx.sandbox).ok_or(refuse("SYSTEMERROR"))?;
    if fields.get("mch_id") != Some(&account.mch_id) {
        return Err(refuse("invalid mch_id"));
    }
    let sign_type = WechatSignType::parse(fields.get("sign_type").map(String::as_str))
        .ok_or(refuse("invalid sign_type"))?;
    if !sign::verify(&fields, &account.api_key, sign_type) {
        return Err(refuse("SIGN ERROR"));
    }
    if fields.get("appid") != Some(&account.appid) {
        return Err(refuse("appid and mch_id do not match"));
    }
    let request = BillRequest { account, fields };
    if request
        .get("sub_mch_id")
        .is_some_and(|s| s != request.account.sub_mch_id)
    {
        return Err(refuse("invalid sub_mch_id"));
    }
    Ok(request)
}

fn serve(ctx: &WechatCtx, method: &Method, body: &[u8]) -> Result<Response, BillError> {
    let request = check(ctx, method, body)?;
    let raw_date = request.get("bill_date").unwrap_or_default();
    let day = (raw_date.len() == 8)
        .then(|| NaiveDate::parse_from_str(raw_date, "%Y%m%d").ok())
        .flatten()
        .ok_or(refuse("invalid bill_date"))?;
    let bill_type =
        WechatBillType::parse(request.get("bill_type")).ok_or(refuse("invalid bill_type"))?;
    let gzip = match request.get("tar_type") {
        None => false,
        Some("GZIP") => true,
        Some(_) => return Err(refuse("invalid tar_type")),
    };
    let sandbox = &ctx.sandbox;
    let entries = sandbox.with(|s, _, now| {
        if now < bills::ready_at(day) {
            return None;
        }
        s.settle_all(now);
        Some(bills::bill_entries(s, Wallet::Wechat, day))
    });
    let Some(mut entries) = entries else {
        return Err(refuse("Bill Creating"));
    };
    // The account is read again: the orders' attach and device_info live in it.
    let account = WechatAccount::load(sandbox).unwrap_or(request.account.clone());
    if let Some(device) = request.get("device_info") {
        entries.retain(|e| account.device(&e.trade.out_trade_no) == Some(device));
    }
    let text = match bill_type {
        WechatBillType::RechargeRefund => None,
        _ => render(bill_type, &entries, &account),
    };
    let Some(text) = text else {
        return Err(NO_BILL);
    };
    if gzip {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        let zipped = encoder
            .write_all(text.as_bytes())
            .and_then(|()| encoder.finish())
            .map_err(|_| refuse("CompressGZip Error"))?;
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-gzip")],
            zipped,
        )
            .into_response());
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
        text,
    )
        .into_response())
}

const ALL_HEADER: [&str; 27] = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];

/// The `ALL` columns the `SUCCESS` bill keeps (it drops 15–20 and 26).
const SUCCESS_COLUMNS: [usize; 20] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 20, 21, 22, 23, 24, 26,
];

const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// Money with two decimals.
fn money(minor: i64) -> String {
    bills::format_major(minor)
}

/// The fee column: five decimals (WeChat charges whole fen, so the last three are zeros).
fn fee_text(minor: i64) -> String {
    format!("{}000", bills::format_major(minor))
}

/// A free-text value made safe for the format: no commas, backticks or line breaks, which
/// every public parser would split on.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ',' => '，',
            '`' => '\'',
            '\r' | '\n' => ' ',
            c => c,
        })
        .collect()
}

/// The sums of the summary line.
#[derive(Default)]
struct Totals {
    rows: usize,
    settlement: i64,
    refund: i64,
    fee: i64,
    order: i64,
    refund_requested: i64,
}

/// One `ALL` row (27 values) for an entry, adding to the totals.
fn all_row(entry: &BillEntry, account: &WechatAccount, totals: &mut Totals) -> Vec<String> {
    let trade = &entry.trade;
    let closed_payment = entry.kind == EntryKind::Payment && entry.closed;
    let (status, settlement, refund, fee, order, refund_requested) = match entry.kind {
        EntryKind::Payment if closed_payment => ("REVOKED", 0, 0, 0, entry.amount, 0),
        EntryKind::Payment => ("SUCCESS", entry.amount, 0, entry.fee, entry.amount, 0),
        EntryKind::Refund => ("REFUND", 0, entry.amount, -entry.fee, 0, entry.amount),
        EntryKind::Reversal => ("REVOKED", 0, entry.amount, -entry.fee, 0, entry.amount),
    };
    totals.rows += 1;
    totals.settlement += settlement;
    totals.refund += refund;
    totals.fee += fee;
    totals.order += order;
    totals.refund_requested += refund_requested;
    let (refund_id, out_refund_no, refund_type, refund_status) = match (&entry.refund, entry.kind) {
        (Some(r), _) => (
            r.refund_id.clone(),
            r.out_refund_no.clone(),
            "ORIGINAL",
            if r.succeeded { "SUCCESS" } else { "PROCESSING" },
        ),
        (None, EntryKind::Reversal) => ("0".to_owned(), "0".to_owned(), "ORIGINAL", "SUCCESS"),
        (None, _) => ("0".to_owned(), "0".to_owned(), "", ""),
    };
    let trade_type = match trade.kind {
        TradeKind::Code => "MICROPAY",
        TradeKind::Qr => "NATIVE",
    };
    vec![
        bills::beijing_text(entry.at),
        account.appid.clone(),
        account.mch_id.clone(),
        if account.sub_mch_id.is_empty() {
            "0".to_owned()
        } else {
            account.sub_mch_id.clone()
        },
        clean(account.device(&trade.out_trade_no).unwrap_or_default()),
        trade.transaction_id.clone(),
        trade.out_trade_no.clone(),
        trade
            .customer_id
            .as_deref()
            .map(|c| openid(&account.appid, c))
            .unwrap_or_default(),
        trade_type.to_owned(),
        status.to_owned(),
        "OTHERS".to_owned(),
        entry.currency.clone(),
        money(settlement),
        money(0),
        refund_id,
        out_refund_no,
        money(refund),
        money(0),
        refund_type.to_owned(),
        refund_status.to_owned(),
        clean(&trade.subject),
        clean(account.attach(&trade.out_trade_no).unwrap_or_default()),
        fee_text(fee),
        format!("{}%", bills::format_rate_percent(entry.fee_rate_ppm)),
        money(order),
        money(refund_requested),
        String::new(),
    ]
}

fn push_line<S: AsRef<str>>(out: &mut String, values: &[S], backtick: bool) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if backtick {
            out.push('`');
        }
        out.push_str(v.as_ref());
    }
    out.push_str("\r\n");
}

/// The bill's text, or `None` when it has no row (WeChat's `No Bill Exist`).
pub(crate) fn render(
    bill_type: WechatBillType,
    entries: &[BillEntry],
    account: &WechatAccount,
) -> Option<String> {
    let wanted = |e: &&BillEntry| match bill_type {
        WechatBillType::All => true,
        WechatBillType::Success => e.kind == EntryKind::Payment && !e.closed,
        WechatBillType::Refund => e.kind == EntryKind::Refund,
        WechatBillType::RechargeRefund => false,
    };
    let rows: Vec<&BillEntry> = entries.iter().filter(wanted).collect();
    if rows.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(rows.len() * 400 + 1024);
    let mut totals = Totals::default();
    match bill_type {
        WechatBillType::All | WechatBillType::RechargeRefund => {
            push_line(&mut out, &ALL_HEADER, false);
            for entry in rows {
                push_line(&mut out, &all_row(entry, account, &mut totals), true);
            }
        }
        WechatBillType::Success => {
            let header: Vec<&str> = SUCCESS_COLUMNS.iter().map(|&i| ALL_HEADER[i]).collect();
            push_line(&mut out, &header, false);
            for entry in rows {
                let row = all_row(entry, account, &mut totals);
                let kept: Vec<&String> = SUCCESS_COLUMNS.iter().map(|&i| &row[i]).collect();
                push_line(&mut out, &kept, true);
            }
        }
        WechatBillType::Refund => {
            let mut header: Vec<&str> = ALL_HEADER.to_vec();
            header.splice(14..14, ["退款申请时间", "退款成功时间"]);
            push_line(&mut out, &header, false);
            for entry in rows {
                let mut row = all_row(entry, account, &mut totals);
                let (asked, done) = match &entry.refund {
                    Some(r) => (
                        bills::beijing_text(r.created_at),
                        r.succeeded_at.map(bills::beijing_text).unwrap_or_default(),
                    ),
                    None => (String::new(), String::new()),
                };
                row.splice(14..14, [asked, done]);
                push_line(&mut out, &row, true);
            }
        }
    }
    out.push_str(SUMMARY_HEADER);
    out.push_str("\r\n");
    let summary = [
        totals.rows.to_string(),
        money(totals.settlement),
        money(totals.refund),
        money(0),
        fee_text(totals.fee),
        money(totals.order),
        money(totals.refund_requested),
    ];
    push_line(&mut out, &summary, true);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bills::tests::fixed_entries;

    fn account() -> WechatAccount {
        WechatAccount::from_json(serde_json::json!({
            "appid": "wx2421b1c4370ec43b",
            "mch_id": "1900000109",
            "sub_mch_id": "1900000110",
            "api_key": "k",
            "order_attach": {"ORDER1": "table 5"},
            "order_device": {"ORDER1": "POS-01"},
        }))
        .unwrap()
    }

    #[test]
    fn the_all_bill_is_written_exactly() {
        let account = account();
        let text = render(WechatBillType::All, &fixed_entries(), &account).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert_eq!(lines[0], ALL_HEADER.join(","));
        assert!(lines[0].starts_with("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号"));
        let openid = openid(&account.appid, "c0001");
        assert_eq!(
            lines[1],
            format!(
                "`2024-01-15 10:00:00,`wx2421b1c4370ec43b,`1900000109,`1900000110,`POS-01,\
                 `TXORDER1,`ORDER1,`{openid},`MICROPAY,`SUCCESS,`OTHERS,`CNY,`12.34,`0.00,`0,`0,\
                 `0.00,`0.00,`,`,`Maple Tea,`table 5,`0.07000,`0.60%,`12.34,`0.00,`"
            )
        );
        assert_eq!(
            lines[3],
            format!(
                "`2024-01-15 12:00:00,`wx2421b1c4370ec43b,`1900000109,`1900000110,`POS-01,\
                 `TXORDER1,`ORDER1,`{openid},`MICROPAY,`REFUND,`OTHERS,`CNY,`0.00,`0.00,\
                 `50300001,`ORDER1R1,`2.34,`0.00,`ORIGINAL,`SUCCESS,`Maple Tea,`table 5,\
                 `-0.01000,`0.60%,`0.00,`2.34,`"
            )
        );
        assert_eq!(lines[4], SUMMARY_HEADER);
        assert_eq!(lines[5], "`3,`17.34,`2.34,`0.00,`0.09000,`17.34,`2.34");
        assert_eq!(lines[6], "");
        for row in &lines[1..4] {
            assert_eq!(row.split(",`").count(), 27, "{row}");
        }
        assert!(!text.starts_with('<'));
    }

    #[test]
    fn success_and_refund_bills_keep_their_columns_and_rows() {
        let account = account();
        let success = render(WechatBillType::Success, &fixed_entries(), &account).unwrap();
        let lines: Vec<&str> = success.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,\
             交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,\
             手续费,费率,订单金额,费率备注"
        );
        assert_eq!(lines.len(), 6);
        assert!(
            lines[2].ends_with("`Maple Tea,`,`0.03000,`0.60%,`5.00,`"),
            "{}",
            lines[2]
        );
        assert_eq!(lines[4], "`2,`17.34,`0.00,`0.00,`0.10000,`17.34,`0.00");

        let refund = render(WechatBillType::Refund, &fixed_entries(), &account).unwrap();
        let lines: Vec<&str> = refund.split("\r\n").collect();
        assert_eq!(lines.len(), 5);
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(header.len(), 29);
        assert_eq!(
            &header[13..16],
            &["代金券金额", "退款申请时间", "退款成功时间"]
        );
        let row: Vec<&str> = lines[1].split(",`").collect();
        assert_eq!(row.len(), 29);
        assert_eq!(row[14], "2024-01-15 12:00:00");
        assert_eq!(row[15], "2024-01-15 12:00:03");
        assert_eq!(lines[3], "`1,`0.00,`2.34,`0.00,`-0.01000,`0.00,`2.34");
        assert!(render(WechatBillType::RechargeRefund, &fixed_entries(), &account).is_none());
        assert!(render(WechatBillType::Refund, &fixed_entries()[..2], &account).is_none());
    }

    #[test]
    fn a_planted_closed_status_reads_revoked() {
        let account = account();
        let mut entries = fixed_entries();
        entries[1].closed = true;
        let text = render(WechatBillType::All, &entries, &account).unwrap();
        let row: Vec<&str> = text.split("\r\n").nth(2).unwrap().split(",`").collect();
        assert_eq!(
            (row[6], row[9], row[12], row[22], row[24]),
            ("ORDER2", "REVOKED", "0.00", "0.00000", "5.00")
        );
        let success = render(WechatBillType::Success, &entries, &account).unwrap();
        assert!(!success.contains("ORDER2"));
    }
}
