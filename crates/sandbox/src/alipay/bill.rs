//! `alipay.data.dataservice.bill.downloadurl.query` and the file its URL serves
//! (`bills.md` §2): the call answers, signed like every other, a `bill_download_url` valid
//! for 30 s of the sandbox clock; the URL (`/alipay/downloadBillFile.resource`) serves a zip
//! whose entry names and contents are GBK: the detail file `<pid>0156_<yyyyMMdd>_业务明细.csv`
//! and the summary `<pid>0156_<yyyyMMdd>_业务明细(汇总).csv`.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::gateway::AlipayRequest;
use super::trade::AlipayAnswer;
use super::wire::{self, AlipayBiz, AlipayError, SUCCESS};
use super::{AlipayAccount, AlipayContext};
use crate::bills::{self, gbk, zip, BillEntry, EntryKind};
use crate::model::Wallet;

/// How long a `bill_download_url` works ("下载超时，请重新下载" afterwards).
const URL_LIFETIME: Duration = Duration::seconds(30);

/// The bill account: the merchant's PID and `0156`, as Alipay names its bill files.
fn bill_account(account: &AlipayAccount) -> String {
    format!("{}0156", account.seller_id)
}

/// The token that makes a download URL unforgeable without state: a digest over what the
/// URL names and when it was issued, keyed with a secret only the sandbox knows.
fn token(account: &AlipayAccount, user_id: &str, biz_dates: &str, timestamp_ms: i64) -> String {
    let secret = Sha256::digest(account.alipay_private_key_pem.as_bytes());
    let digest = Sha256::digest(
        format!(
            "{}\ntrade\n{user_id}\n{biz_dates}\n{timestamp_ms}",
            hex::encode(secret)
        )
        .as_bytes(),
    );
    hex::encode(&digest[..16])
}

fn bad_parameter(message: impl Into<String>) -> AlipayError {
    AlipayError::invalid("parameter", message)
}

fn bill_not_exist(message: impl Into<String>) -> AlipayError {
    AlipayError::business("isp.bill_not_exist", message)
}

pub(crate) fn download_url_query(
    ctx: &AlipayContext,
    request: &AlipayRequest,
    biz: &AlipayBiz,
) -> AlipayAnswer {
    let bill_type = biz.required("bill_type")?;
    if bill_type != "trade" {
        return Err(bad_parameter(format!(
            "参数不合法: the sandbox serves bill_type=trade only, not {bill_type}"
        )));
    }
    let raw = biz.required("bill_date")?;
    let day = bills::parse_day(raw).ok_or_else(|| {
        bad_parameter(format!(
            "参数不合法: bill_date must be a day, yyyy-MM-dd (the sandbox has no monthly bills), got {raw:?}"
        ))
    })?;
    let sandbox = &ctx.sandbox;
    let now = sandbox.now();
    if day >= bills::today(Wallet::Alipay, now) {
        return Err(bad_parameter(
            "参数不合法: bill_date must be a day that has ended (Beijing time)",
        ));
    }
    if now < bills::ready_at(day) {
        return Err(bill_not_exist(format!(
            "账单不存在: the bill of {raw} is created at 09:00 Beijing the next day"
        )));
    }
    let empty = sandbox.with(|s, _, now| {
        s.settle_all(now);
        bills::bill_entries(s, Wallet::Alipay, day).is_empty()
    });
    if empty {
        return Err(bill_not_exist(format!(
            "账单不存在: no trade or refund on {raw}"
        )));
    }
    let account = &request.account;
    let user_id = bill_account(account);
    let biz_dates = day.format("%Y%m%d").to_string();
    let timestamp_ms = now.timestamp_millis();
    let url = url::Url::parse_with_params(
        &format!("{}/alipay/downloadBillFile.resource", sandbox.base_url()),
        [
            ("bizType", "trade".to_owned()),
            ("userId", user_id.clone()),
            ("fileType", "csv.zip".to_owned()),
            ("bizDates", biz_dates.clone()),
            ("downloadFileName", format!("{user_id}_{biz_dates}.csv.zip")),
            ("timestamp", timestamp_ms.to_string()),
            ("token", token(account, &user_id, &biz_dates, timestamp_ms)),
        ],
    )
    .map_err(|e| AlipayError::business("ACQ.SYSTEM_ERROR", e.to_string()))?;
    let mut out: Map<String, Value> = wire::success(SUCCESS);
    out.insert("bill_download_url".to_owned(), Value::from(url.to_string()));
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DownloadQuery {
    #[serde(default)]
    biz_type: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    biz_dates: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    token: String,
}

fn refused(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
        message.to_owned(),
    )
        .into_response()
}

pub(crate) async fn download_file(
    State(ctx): State<AlipayContext>,
    Query(q): Query<DownloadQuery>,
) -> Response {
    let Some(account) = AlipayAccount::of(&ctx.sandbox) else {
        return refused(StatusCode::NOT_FOUND, "no Alipay merchant");
    };
    let timestamp_ms: Option<i64> = q.timestamp.parse().ok();
    let day = NaiveDate::parse_from_str(&q.biz_dates, "%Y%m%d").ok();
    let (Some(timestamp_ms), Some(day)) = (timestamp_ms, day) else {
        return refused(
            StatusCode::FORBIDDEN,
            "下载链接无效 (invalid download link)",
        );
    };
    let genuine = q.biz_type == "trade"
        && q.user_id == bill_account(&account)
        && q.token == token(&account, &q.user_id, &q.biz_dates, timestamp_ms);
    if !genuine {
        return refused(
            StatusCode::FORBIDDEN,
            "下载链接无效 (invalid download link)",
        );
    }
    let now = ctx.sandbox.now();
    let issued = DateTime::<Utc>::from_timestamp_millis(timestamp_ms).unwrap_or(now);
    if now - issued > URL_LIFETIME {
        return refused(StatusCode::FORBIDDEN, "下载超时，请重新下载");
    }
    let entries = ctx.sandbox.with(|s, _, now| {
        s.settle_all(now);
        bills::bill_entries(s, Wallet::Alipay, day)
    });
    match archive(&account, day, &entries) {
        Ok(bytes) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/zip".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}_{}.csv.zip\"",
                        q.user_id, q.biz_dates
                    ),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The zip served for the bill of `day`: GBK names without the UTF-8 flag, GBK contents.
pub(crate) fn archive(
    account: &AlipayAccount,
    day: NaiveDate,
    entries: &[BillEntry],
) -> Result<Vec<u8>, zip::ZipError> {
    let user_id = bill_account(account);
    let stamp = day.format("%Y%m%d");
    let exported = bills::ready_at(day);
    let files = [
        zip::ZipEntry {
            name: gbk::encode(&format!("{user_id}_{stamp}_业务明细.csv")),
            content: gbk::encode(&detail(&user_id, day, exported, entries)),
        },
        zip::ZipEntry {
            name: gbk::encode(&format!("{user_id}_{stamp}_业务明细(汇总).csv")),
            content: gbk::encode(&summary(&user_id, day, exported, entries)),
        },
    ];
    let modified = zip::dos_time(
        chrono::NaiveDateTime::parse_from_str(&bills::beijing_text(exported), "%Y-%m-%d %H:%M:%S")
            .unwrap_or_default(),
    );
    zip::write(&files, modified)
}

const DETAIL_HEADER: [&str; 25] = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
];

const SUMMARY_HEADER: [&str; 12] = [
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "卡消费金额（元）",
    "服务费（元）",
    "分润（元）",
    "实收净额（元）",
];

const LIST_START: &str = "-----------------------------------------";
const DETAIL_TITLE_END: &str = "----------------------------------------";
const DETAIL_END_TAIL: &str = "------------------------------------";

/// `[2024年01月15日 00:00:00]`, Beijing time.
fn chinese_time(at: DateTime<Utc>) -> String {
    bills::beijing_format(at, "[%Y年%m月%d日 %H:%M:%S]")
}

fn preamble(out: &mut String, title: &str, list: &str, user_id: &str, day: NaiveDate) {
    let start = bills::day_start(Wallet::Alipay, day);
    out.push_str(&format!("#{title}\r\n"));
    out.push_str(&format!("#账号：[{user_id}]\r\n"));
    out.push_str(&format!(
        "#起始日期：{}   终止日期：{}\r\n",
        chinese_time(start),
        chinese_time(start + Duration::days(1))
    ));
    out.push_str(&format!("#{LIST_START}{list}{DETAIL_TITLE_END}\r\n"));
}

/// A free-text cell: no commas or line breaks.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ',' => '，',
            '\r' | '\n' | '\t' => ' ',
            c => c,
        })
        .collect()
}

/// An id cell: the id and a TAB, so that a spreadsheet keeps it as text.
fn id_cell(id: &str) -> String {
    if id.is_empty() {
        String::new()
    } else {
        format!("{id}\t")
    }
}

/// Whether an entry appears in Alipay's bill: a trade marked closed by a planted break is
/// left out (Alipay has no status for it).
fn shown(entry: &BillEntry) -> bool {
    !(entry.kind == EntryKind::Payment && entry.closed)
}

/// The detail file's text (before GBK).
pub(crate) fn detail(
    user_id: &str,
    day: NaiveDate,
    exported: DateTime<Utc>,
    entries: &[BillEntry],
) -> String {
    let mut out = String::with_capacity(entries.len() * 300 + 2048);
    preamble(&mut out, "支付宝业务明细查询", "业务明细列表", user_id, day);
    out.push_str(&DETAIL_HEADER.join(","));
    out.push_str("\r\n");
    let (mut paid_count, mut paid_sum, mut refund_count, mut refund_sum) = (0, 0, 0, 0);
    for entry in entries.iter().filter(|e| shown(e)) {
        let trade = &entry.trade;
        let (kind, sign, request_no, fee) = match entry.kind {
            EntryKind::Payment => ("交易", 1, String::new(), -entry.fee),
            EntryKind::Refund => (
                "退款",
                -1,
                entry
                    .refund
                    .as_ref()
                    .map(|r| r.out_refund_no.clone())
                    .unwrap_or_default(),
                entry.fee,
            ),
            EntryKind::Reversal => ("退款", -1, String::new(), entry.fee),
        };
        let amount = sign * entry.amount;
        if sign > 0 {
            paid_count += 1;
            paid_sum += amount;
        } else {
            refund_count += 1;
            refund_sum += amount;
        }
        let zero = bills::format_major(0);
        let row = [
            id_cell(&trade.transaction_id),
            id_cell(&trade.out_trade_no),
            kind.to_owned(),
            clean(&trade.subject),
            bills::beijing_text(trade.created_at),
            bills::beijing_text(entry.at),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            trade
                .customer_id
                .as_deref()
                .map(wire::buyer_logon_id)
                .unwrap_or_default(),
            bills::format_major(amount),
            bills::format_major(amount),
            zero.clone(),
            zero.clone(),
            zero.clone(),
            zero.clone(),
            zero.clone(),
            String::new(),
            zero.clone(),
            zero.clone(),
            id_cell(&request_no),
            bills::format_major(fee),
            zero,
            String::new(),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "#{LIST_START}业务明细列表结束{DETAIL_END_TAIL}\r\n"
    ));
    out.push_str(&format!(
        "#交易合计：{paid_count}笔，商家实收共{}元，商家优惠共0.00元\r\n",
        bills::format_major(paid_sum)
    ));
    out.push_str(&format!(
        "#退款合计：{refund_count}笔，商家实收退款共{}元，商家优惠退款共0.00元\r\n",
        bills::format_major(refund_sum)
    ));
    out.push_str(&format!("#导出时间：{}\r\n", chinese_time(exported)));
    out
}

/// The summary file's text (before GBK): one `合计` row over the day.
pub(crate) fn summary(
    user_id: &str,
    day: NaiveDate,
    exported: DateTime<Utc>,
    entries: &[BillEntry],
) -> String {
    let mut out = String::new();
    preamble(&mut out, "支付宝业务汇总查询", "业务汇总列表", user_id, day);
    out.push_str(&SUMMARY_HEADER.join(","));
    out.push_str("\r\n");
    let (mut trades, mut refunds, mut amount, mut fee) = (0, 0, 0, 0);
    for entry in entries.iter().filter(|e| shown(e)) {
        match entry.kind {
            EntryKind::Payment => {
                trades += 1;
                amount += entry.amount;
                fee -= entry.fee;
            }
            EntryKind::Refund | EntryKind::Reversal => {
                refunds += 1;
                amount -= entry.amount;
                fee += entry.fee;
            }
        }
    }
    let zero = bills::format_major(0);
    let row = [
        "合计".to_owned(),
        String::new(),
        trades.to_string(),
        refunds.to_string(),
        bills::format_major(amount),
        bills::format_major(amount),
        zero.clone(),
        zero.clone(),
        zero.clone(),
        bills::format_major(fee),
        zero,
        bills::format_major(amount + fee),
    ];
    out.push_str(&row.join(","));
    out.push_str("\r\n");
    out.push_str(&format!(
        "#{LIST_START}业务汇总列表结束{DETAIL_END_TAIL}\r\n"
    ));
    out.push_str(&format!("#导出时间：{}\r\n", chinese_time(exported)));
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::bills::tests::{bj, fixed_entries};

    fn account() -> AlipayAccount {
        AlipayAccount {
            app_id: "2021000000000001".to_owned(),
            seller_id: "2088102146225135".to_owned(),
            app_private_key_pem: String::new(),
            app_public_key_pem: String::new(),
            alipay_private_key_pem: "secret".to_owned(),
            alipay_public_key_pem: String::new(),
        }
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, 15).unwrap()
    }

    #[test]
    fn the_detail_file_is_written_exactly() {
        let text = detail(
            "20881021462251350156",
            day(),
            bj("2024-01-16 09:00:00"),
            &fixed_entries(),
        );
        let lines: Vec<&str> = text.split("\r\n").collect();
        let logon = wire::buyer_logon_id("c0001");
        assert_eq!(lines[0], "#支付宝业务明细查询");
        assert_eq!(lines[1], "#账号：[20881021462251350156]");
        assert_eq!(
            lines[2],
            "#起始日期：[2024年01月15日 00:00:00]   终止日期：[2024年01月16日 00:00:00]"
        );
        assert_eq!(
            lines[3],
            "#-----------------------------------------业务明细列表----------------------------------------"
        );
        assert_eq!(lines[4], DETAIL_HEADER.join(","));
        assert!(lines[4].contains(",订单金额（元）,商家实收（元）,"));
        assert_eq!(
            lines[5],
            format!(
                "TXORDER1\t,ORDER1\t,交易,Maple Tea,2024-01-15 09:59:55,2024-01-15 10:00:00,,,,,\
                 {logon},12.34,12.34,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,-0.07,0.00,"
            )
        );
        assert_eq!(
            lines[7],
            format!(
                "TXORDER1\t,ORDER1\t,退款,Maple Tea,2024-01-15 09:59:55,2024-01-15 12:00:00,,,,,\
                 {logon},-2.34,-2.34,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,ORDER1R1\t,0.01,0.00,"
            )
        );
        for row in &lines[5..8] {
            assert_eq!(row.split(',').count(), 25, "{row}");
        }
        assert_eq!(
            lines[8],
            "#-----------------------------------------业务明细列表结束------------------------------------"
        );
        assert_eq!(
            lines[9],
            "#交易合计：2笔，商家实收共17.34元，商家优惠共0.00元"
        );
        assert_eq!(
            lines[10],
            "#退款合计：1笔，商家实收退款共-2.34元，商家优惠退款共0.00元"
        );
        assert_eq!(lines[11], "#导出时间：[2024年01月16日 09:00:00]");
        assert_eq!(lines[12], "");
    }

    #[test]
    fn the_summary_file_totals_the_day() {
        let text = summary(
            "20881021462251350156",
            day(),
            bj("2024-01-16 09:00:00"),
            &fixed_entries(),
        );
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "#支付宝业务汇总查询");
        assert_eq!(lines[4], SUMMARY_HEADER.join(","));
        assert_eq!(
            lines[5],
            "合计,,2,1,15.00,15.00,0.00,0.00,0.00,-0.09,0.00,14.91"
        );
        assert!(lines[6].starts_with("#---") && lines[6].contains("业务汇总列表结束"));
    }

    #[test]
    fn the_zip_has_gbk_names_and_gbk_files() {
        let bytes = archive(&account(), day(), &fixed_entries()).unwrap();
        let mut zip = ::zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut names = Vec::new();
        for n in 0..zip.len() {
            let mut file = zip.by_index(n).unwrap();
            let (name, _, bad) = encoding_rs::GBK.decode(file.name_raw());
            assert!(!bad);
            let name = name.into_owned();
            let mut raw = Vec::new();
            file.read_to_end(&mut raw).unwrap();
            let (text, _, bad) = encoding_rs::GBK.decode(&raw);
            assert!(!bad);
            if name.ends_with("_业务明细.csv") {
                assert!(text.contains("订单金额（元）"));
                // Raw GBK bytes of 交易 in the payment rows.
                assert!(raw.windows(4).any(|w| w == [0xBD, 0xBB, 0xD2, 0xD7]));
            } else {
                assert!(text.starts_with("#支付宝业务汇总查询"));
            }
            names.push(name);
        }
        assert_eq!(
            names,
            [
                "20881021462251350156_20240115_业务明细.csv",
                "20881021462251350156_20240115_业务明细(汇总).csv"
            ]
        );
    }
}
