//! Tests of Alipay's bill download and parser (`bill.rs`): the hand-made bills of `fixtures/`
//! encoded in GBK and zipped under GBK names, the download-URL answer, and one loopback pass
//! through `download_bill` (the signed query, then the GET of the zip).

use chrono::{DateTime, NaiveDate, Utc};
use qrgate_connector_api::{
    BillError, BillLineKind, BillLineStatus, Connector, ConnectorError, HttpResponse, Wallet,
};
use qrgate_domain::{Currency, Money};

use super::bill;
use super::tests::{assert_signed_by_app, config, cx, reply, signed_body};
use super::wire::{self, AlipayMethod};
use super::AlipayConnector;
use crate::bill_file::test_support::{gbk, listen, serve, zip_with_raw_names};
use crate::bill_file::ParsedBill;

macro_rules! bill_fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name))
    };
}

const DETAIL_NAME: &str = "20881234567890120156_20240115_业务明细.csv";
const SUMMARY_NAME: &str = "20881234567890120156_20240115_业务明细(汇总).csv";

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 15).unwrap()
}

fn cny(minor: i64) -> Money {
    Money::new(minor, Currency::Cny)
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A zip as Alipay sends it: GBK names and GBK contents.
fn alipay_zip(files: &[(&str, &str)]) -> Vec<u8> {
    let encoded: Vec<(Vec<u8>, Vec<u8>)> = files
        .iter()
        .map(|(name, text)| (gbk(name), gbk(text)))
        .collect();
    let entries: Vec<(&[u8], &[u8])> = encoded
        .iter()
        .map(|(n, t)| (n.as_slice(), t.as_slice()))
        .collect();
    zip_with_raw_names(&entries)
}

fn full_zip() -> Vec<u8> {
    alipay_zip(&[
        (DETAIL_NAME, bill_fixture!("bill_trade_detail.csv")),
        (SUMMARY_NAME, bill_fixture!("bill_trade_summary.csv")),
    ])
}

fn parse(zip: &[u8]) -> ParsedBill {
    bill::parse_bill_zip(zip).unwrap()
}

#[test]
fn the_detail_rows_become_payments_and_refunds_in_yuan() {
    let parsed = parse(&full_zip());
    assert!(parsed.mismatches.is_empty(), "{:?}", parsed.mismatches);
    let [latte, buns, refund] = parsed.lines.as_slice() else {
        panic!("three lines expected");
    };
    assert_eq!(latte.wallet, Wallet::Alipay);
    assert_eq!(latte.kind, BillLineKind::Payment);
    // Trailing TABs are gone from the ids.
    assert_eq!(latte.wallet_ref, "2024011522001412340500000001");
    assert_eq!(latte.out_trade_no.as_deref(), Some("P20240115000101"));
    assert_eq!(
        (latte.amount, latte.cny_amount),
        (cny(2800), Some(cny(2800)))
    );
    assert_eq!(latte.time, utc("2024-01-15T01:00:05Z"));
    assert_eq!(
        (latte.status, latte.wallet_status.as_str()),
        (BillLineStatus::Succeeded, "交易")
    );
    // Written as −0.17: a trade's fee is charged, whatever its sign in the file.
    assert_eq!(latte.fee.unwrap().exact_milli_minor(), 17_000);
    assert_eq!(latte.fee.unwrap().rounded(), cny(17));
    // A quoted name with a comma, empty store cells and a blank-padded amount.
    assert_eq!(buns.amount, cny(1550));
    assert_eq!(buns.fee.unwrap().exact_milli_minor(), 9000);

    assert_eq!(refund.kind, BillLineKind::Refund);
    assert_eq!(refund.amount, cny(1000));
    assert_eq!(refund.out_refund_no.as_deref(), Some("R20240115000101"));
    assert_eq!(refund.out_trade_no.as_deref(), Some("P20240115000101"));
    assert_eq!(
        refund.wallet_order_ref.as_deref(),
        Some("2024011522001412340500000001")
    );
    assert_eq!(refund.time, utc("2024-01-15T10:20:00Z"));
    assert_eq!(refund.fee.unwrap().exact_milli_minor(), -6000);

    let totals = &parsed.totals;
    assert_eq!(totals.payment_count, Some(2));
    assert_eq!(totals.refund_count, Some(1));
    assert_eq!(totals.line_count, Some(3));
    assert_eq!(totals.payment_amount, Some(cny(4350)));
    assert_eq!(totals.refund_amount, Some(cny(-1000)));
    // The summary file's 服务费 total, as written.
    assert_eq!(totals.fee.unwrap().exact_milli_minor(), -2000);
    assert!(totals
        .stated
        .iter()
        .any(|f| f.name == "#交易合计 笔数" && f.value == "2"));
    assert!(totals
        .stated
        .iter()
        .any(|f| f.name == "汇总 订单金额(元)" && f.value == "33.50"));
}

#[test]
fn totals_that_disagree_with_the_rows_are_reported() {
    let detail = bill_fixture!("bill_trade_detail.csv").replace("交易合计：2笔", "交易合计：3笔");
    let summary = bill_fixture!("bill_trade_summary.csv").replace(",-0.02,", ",-0.03,");
    let parsed = parse(&alipay_zip(&[
        (DETAIL_NAME, &detail),
        (SUMMARY_NAME, &summary),
    ]));
    let figures: Vec<(&str, &str, &str)> = parsed
        .mismatches
        .iter()
        .map(|m| (m.figure.as_str(), m.stated.as_str(), m.summed.as_str()))
        .collect();
    assert_eq!(
        figures,
        [
            ("#交易合计 笔数", "3", "2"),
            ("汇总 服务费(元)", "-0.03", "-0.02"),
        ]
    );
    let response = HttpResponse {
        status: 200,
        content_type: None,
        body: alipay_zip(&[(DETAIL_NAME, &detail)]),
    };
    assert!(matches!(
        bill::open_bill_download(&response, "http://x/y", day()),
        Err(BillError::TotalsMismatch { .. })
    ));
}

#[test]
fn a_summary_without_a_total_row_is_summed_over_its_stores() {
    let summary: String = bill_fixture!("bill_trade_summary.csv")
        .lines()
        .filter(|l| !l.starts_with("合计"))
        .map(|l| format!("{l}\n"))
        .collect();
    let parsed = parse(&alipay_zip(&[
        (DETAIL_NAME, bill_fixture!("bill_trade_detail.csv")),
        (SUMMARY_NAME, &summary),
    ]));
    assert!(parsed.mismatches.is_empty(), "{:?}", parsed.mismatches);
    assert_eq!(parsed.totals.fee.unwrap().exact_milli_minor(), -2000);
}

#[test]
fn a_refund_only_day_and_an_empty_day_parse() {
    let parsed = parse(&alipay_zip(&[(
        DETAIL_NAME,
        bill_fixture!("bill_refund_only_detail.csv"),
    )]));
    assert!(parsed.mismatches.is_empty(), "{:?}", parsed.mismatches);
    assert_eq!(parsed.lines.len(), 1);
    assert_eq!(parsed.lines[0].kind, BillLineKind::Refund);
    assert_eq!(parsed.lines[0].amount, cny(300));
    assert_eq!(parsed.lines[0].fee.unwrap().exact_milli_minor(), -2000);
    // No summary file in this zip: no fee total.
    assert_eq!(parsed.totals.fee, None);

    let empty = parse(&alipay_zip(&[(
        DETAIL_NAME,
        bill_fixture!("bill_empty_detail.csv"),
    )]));
    assert!(empty.lines.is_empty() && empty.mismatches.is_empty());
    assert_eq!(empty.totals.line_count, Some(0));
}

#[test]
fn unreadable_zips_and_files_are_bad_files() {
    let bad = |zip: Vec<u8>, expected: &str| {
        let response = HttpResponse {
            status: 200,
            content_type: None,
            body: zip.clone(),
        };
        match bill::open_bill_download(&response, "http://x/y", day()) {
            Err(BillError::BadFile { reason, file }) => {
                assert!(reason.contains(expected), "{reason}");
                assert_eq!(file.unwrap().bytes(), zip.as_slice());
            }
            other => panic!("expected a bad file ({expected}), got {other:?}"),
        }
    };
    bad("下载超时，请重新下载".as_bytes().to_vec(), "not a zip");
    bad(
        alipay_zip(&[(SUMMARY_NAME, bill_fixture!("bill_trade_summary.csv"))]),
        "业务明细.csv",
    );
    let detail = bill_fixture!("bill_trade_detail.csv");
    let cut: String = detail.lines().take(7).map(|l| format!("{l}\n")).collect();
    bad(alipay_zip(&[(DETAIL_NAME, &cut)]), "cut short");
    bad(
        alipay_zip(&[(DETAIL_NAME, &detail.replace(",退款,", ",冻结,"))]),
        "冻结",
    );
    bad(
        alipay_zip(&[(DETAIL_NAME, &detail.replace("28.00,28.00", "28.00元,28.00"))]),
        "订单金额",
    );
    bad(
        alipay_zip(&[(DETAIL_NAME, &detail.replace("商户订单号", "外部订单号"))]),
        "商户订单号",
    );
    // Bytes that are not GBK.
    let mut not_gbk = gbk(detail);
    not_gbk.extend_from_slice(&[0x81, 0x0a]);
    bad(
        zip_with_raw_names(&[(&gbk(DETAIL_NAME), &not_gbk)]),
        "not GBK",
    );
}

#[test]
fn the_file_name_comes_from_the_url_when_it_gives_one() {
    let url =
        serde_json::from_str::<serde_json::Value>(bill_fixture!("bill_downloadurl_success.json"))
            .unwrap()["bill_download_url"]
            .as_str()
            .unwrap()
            .to_owned();
    assert_eq!(
        bill::file_name(&url, day()),
        "20881234567890120156_20240115.csv.zip"
    );
    assert_eq!(
        bill::file_name("https://x/y?token=1", day()),
        "alipay_trade_20240115.csv.zip"
    );
}

#[test]
fn the_url_query_asks_for_the_trade_bill_of_the_day() {
    let request = wire::bill_url_request(&cx(false), day()).unwrap();
    let params: Vec<(&str, &str)> = request.params().collect();
    assert!(params.contains(&("method", "alipay.data.dataservice.bill.downloadurl.query")));
    assert!(params.contains(&(
        "biz_content",
        r#"{"bill_type":"trade","bill_date":"2024-01-15"}"#
    )));
}

#[test]
fn bill_not_exist_is_not_ready_until_the_day_after_is_over() {
    let answer = reply(
        AlipayMethod::BillDownloadUrl,
        bill_fixture!("bill_downloadurl_not_exist.json"),
    );
    // 2024-01-16 23:59 Beijing: the bill may still come.
    let late_on_t1 = utc("2024-01-16T15:59:00Z");
    assert!(matches!(
        wire::bill_url_outcome(&answer, day(), late_on_t1),
        Err(BillError::NotReady { code, .. }) if code == "isp.bill_not_exist"
    ));
    let on_t2 = utc("2024-01-16T16:00:00Z");
    assert!(matches!(
        wire::bill_url_outcome(&answer, day(), on_t2),
        Err(BillError::NoBill { .. })
    ));
    let refused = reply(
        AlipayMethod::BillDownloadUrl,
        r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"验签出错"}"#,
    );
    assert!(matches!(
        wire::bill_url_outcome(&refused, day(), on_t2),
        Err(BillError::Call(ConnectorError::Rejected { .. }))
    ));
    let no_url = reply(
        AlipayMethod::BillDownloadUrl,
        r#"{"code":"10000","msg":"Success","bill_download_url":"ftp://x"}"#,
    );
    assert!(matches!(
        wire::bill_url_outcome(&no_url, day(), on_t2),
        Err(BillError::Call(ConnectorError::BadResponse(_)))
    ));
}

#[tokio::test]
async fn download_bill_queries_the_url_then_fetches_the_zip() {
    let (listener, base_url) = listen();
    let zip = full_zip();
    let member = format!(
        r#"{{"code":"10000","msg":"Success","bill_download_url":"{base_url}/downloadBillFile.resource?bizType=trade&downloadFileName=2088_20240115.csv.zip&token=t"}}"#
    );
    let server = serve(
        listener,
        vec![
            (
                "application/json;charset=utf-8",
                signed_body(
                    "alipay_data_dataservice_bill_downloadurl_query_response",
                    &member,
                ),
            ),
            ("application/oct-stream", zip.clone()),
        ],
    );
    let mut config = config(false);
    config.gateway_url = format!("{base_url}/gateway.do");
    let connector = AlipayConnector::new(config).unwrap();
    let bill = connector.download_bill(day()).await.unwrap();
    assert_eq!(bill.lines.len(), 3);
    assert_eq!(bill.file.name(), "2088_20240115.csv.zip");
    assert_eq!(bill.file.bytes(), zip.as_slice());

    let seen = server.join().unwrap();
    assert_eq!(seen[0].0, "POST /gateway.do HTTP/1.1");
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&seen[0].1)
        .into_owned()
        .collect();
    assert_signed_by_app(&params);
    assert!(seen[1]
        .0
        .starts_with("GET /downloadBillFile.resource?bizType=trade"));
}
