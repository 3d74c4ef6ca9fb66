//! Tests of WeChat Pay's bill download and parser (`bill.rs`) on the hand-made bills in
//! `fixtures/` (see its README), without the network, and one loopback test of the call.

use std::io::Write;

use chrono::{NaiveDate, TimeZone, Utc};
use qrgate_connector_api::{
    BillError, BillLine, BillLineKind, BillLineStatus, Connector, ConnectorError, HttpResponse,
    Wallet, WalletBill,
};
use qrgate_domain::{Currency, Money};

use super::bill::{self, WechatPayBillBody, WechatPayBillRefusal};
use super::sign::{self, WechatPaySignType};
use super::tests::{api_key, serve_answers, test_config};
use super::wire::{self, WechatPayMerchant};
use super::{WechatPayConfig, WechatPayConnector};
use crate::bill_file::ParsedBill;

macro_rules! bill_fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name)).as_slice()
    };
}

const MCH_ID: &str = "10000100";

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 15).unwrap()
}

fn parse(text: &[u8]) -> ParsedBill {
    bill::parse_bill(text).unwrap()
}

fn cny(minor: i64) -> Money {
    Money::new(minor, Currency::Cny)
}

fn answer(status: u16, body: &[u8]) -> HttpResponse {
    HttpResponse {
        status,
        content_type: Some("text/plain".into()),
        body: body.to_vec(),
    }
}

fn open(body: &[u8]) -> Result<WalletBill, BillError> {
    bill::open_bill_response(&answer(200, body), MCH_ID, day())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn utc(text: &str) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn the_all_bill_maps_payments_reversals_and_refunds() {
    let parsed = parse(bill_fixture!("bill_all.csv"));
    assert!(parsed.mismatches.is_empty(), "{:?}", parsed.mismatches);
    let lines = &parsed.lines;
    assert_eq!(lines.len(), 5);

    let paid = &lines[0];
    assert_eq!(paid.wallet, Wallet::WechatPay);
    assert_eq!(paid.kind, BillLineKind::Payment);
    assert_eq!(paid.out_trade_no.as_deref(), Some("P20240115000001"));
    assert_eq!(paid.out_refund_no, None);
    assert_eq!(paid.wallet_ref, "4200000001202401150000000001");
    assert_eq!(paid.wallet_order_ref, None);
    assert_eq!(paid.amount, cny(8888));
    assert_eq!(paid.cny_amount, Some(cny(8888)));
    let fee = paid.fee.unwrap();
    assert_eq!(
        (fee.currency(), fee.exact_milli_minor()),
        (Currency::Cny, 53_328)
    );
    assert_eq!(fee.rounded(), cny(53));
    assert_eq!(paid.time, utc("2024-01-15T01:12:30Z"));
    assert_eq!(
        (paid.status, paid.wallet_status.as_str()),
        (BillLineStatus::Succeeded, "SUCCESS")
    );

    let revoked = &lines[1];
    assert_eq!(revoked.kind, BillLineKind::Reversal);
    assert_eq!(revoked.status, BillLineStatus::Succeeded);
    assert_eq!(revoked.wallet_status, "REVOKED");
    assert_eq!(revoked.amount, cny(1000));

    let refund = &lines[2];
    assert_eq!(refund.kind, BillLineKind::Refund);
    assert_eq!(refund.out_trade_no.as_deref(), Some("P20240114000009"));
    assert_eq!(refund.out_refund_no.as_deref(), Some("R20240115000001"));
    assert_eq!(refund.wallet_ref, "50000000012024011500000001");
    assert_eq!(
        refund.wallet_order_ref.as_deref(),
        Some("4200000001202401140000000009")
    );
    assert_eq!(refund.amount, cny(2000));
    assert_eq!(refund.cny_amount, Some(cny(2000)));
    assert_eq!(refund.fee.unwrap().exact_milli_minor(), -12_000);
    assert_eq!(refund.fee.unwrap().rounded(), cny(-12));
    assert_eq!(
        (refund.status, refund.wallet_status.as_str()),
        (BillLineStatus::Succeeded, "SUCCESS")
    );

    let processing = &lines[3];
    assert_eq!(processing.status, BillLineStatus::Processing);
    assert_eq!(processing.wallet_status, "PROCESSING");

    // Values with spaces around them are trimmed; an empty value is simply absent.
    let spaced = &lines[4];
    assert_eq!(spaced.out_trade_no.as_deref(), Some("P20240115000004"));
    assert_eq!(spaced.amount, cny(1200));
    assert_eq!(spaced.time, utc("2024-01-15T15:59:59Z"));

    let totals = &parsed.totals;
    assert_eq!(totals.line_count, Some(5));
    assert_eq!(totals.payment_amount, Some(cny(11_088)));
    assert_eq!(totals.refund_amount, Some(cny(2500)));
    assert_eq!(totals.fee.unwrap().exact_milli_minor(), 45_528);
    assert_eq!(totals.stated.len(), 7);
    assert_eq!(totals.stated[4].name, "手续费总金额");
    assert_eq!(totals.stated[4].value, "0.45528");
}

#[test]
fn a_gzipped_answer_reads_like_the_text_and_keeps_the_compressed_file() {
    let text = bill_fixture!("bill_all.csv");
    let compressed = gzip(text);
    let from_gzip = open(&compressed).unwrap();
    let from_text = open(text).unwrap();
    assert_eq!(from_gzip.lines, from_text.lines);
    assert_eq!(from_gzip.totals, from_text.totals);
    assert_eq!(
        from_gzip.file.name(),
        "wechatpay_10000100_20240115_ALL.csv.gz"
    );
    assert_eq!(from_gzip.file.bytes(), compressed.as_slice());
    assert_eq!(from_text.file.name(), "wechatpay_10000100_20240115_ALL.csv");
    assert_eq!(from_text.file.bytes(), text);
    assert_eq!(from_text.file.sha256_hex().len(), 64);
    assert_eq!(
        (from_text.wallet, from_text.day),
        (Wallet::WechatPay, day())
    );
}

#[test]
fn a_summary_that_disagrees_with_the_rows_is_an_error_carrying_the_bill() {
    let Err(BillError::TotalsMismatch { mismatches, bill }) =
        open(bill_fixture!("bill_totals_mismatch.csv"))
    else {
        panic!("expected a totals mismatch");
    };
    let figures: Vec<(&str, &str, &str)> = mismatches
        .iter()
        .map(|m| (m.figure.as_str(), m.stated.as_str(), m.summed.as_str()))
        .collect();
    assert_eq!(
        figures,
        [
            ("总交易单数", "6", "5"),
            ("手续费总金额", "0.45529", "0.45528"),
            ("订单总金额", "110.89", "110.88"),
        ]
    );
    assert_eq!(bill.lines.len(), 5);
    assert_eq!(bill.file.bytes(), bill_fixture!("bill_totals_mismatch.csv"));
}

#[test]
fn an_empty_day_has_no_lines_and_zero_totals() {
    let bill = open(bill_fixture!("bill_empty_day.csv")).unwrap();
    assert!(bill.lines.is_empty());
    assert_eq!(bill.totals.line_count, Some(0));
    assert_eq!(bill.totals.payment_amount, Some(cny(0)));
    assert_eq!(bill.totals.fee.unwrap().exact_milli_minor(), 0);
}

#[test]
fn a_refund_only_bill_dates_refunds_by_their_own_times() {
    let parsed = parse(bill_fixture!("bill_refund_only.csv"));
    assert!(parsed.mismatches.is_empty(), "{:?}", parsed.mismatches);
    let [done, closed] = parsed.lines.as_slice() else {
        panic!("two lines expected");
    };
    assert!(parsed.lines.iter().all(|l| l.kind == BillLineKind::Refund));
    // 退款成功时间 when there is one, else 退款申请时间; never the payment's 交易时间.
    assert_eq!(done.time, utc("2024-01-15T03:00:04Z"));
    assert_eq!(closed.time, utc("2024-01-15T08:30:00Z"));
    assert_eq!(done.status, BillLineStatus::Succeeded);
    assert_eq!(closed.status, BillLineStatus::Failed);
    assert_eq!(closed.wallet_status, "REFUNDCLOSE");
    assert_eq!(done.amount, cny(200));
    assert_eq!(parsed.totals.refund_amount, Some(cny(300)));
    assert_eq!(parsed.totals.fee.unwrap().exact_milli_minor(), -1800);
    assert_eq!(parsed.totals.fee.unwrap().rounded(), cny(-2));
}

#[test]
fn the_old_24_column_layout_is_read_by_its_names() {
    let parsed = parse(bill_fixture!("bill_all_old_24_columns.csv"));
    assert!(parsed.mismatches.is_empty(), "{:?}", parsed.mismatches);
    let [paid, refund] = parsed.lines.as_slice() else {
        panic!("two lines expected");
    };
    assert_eq!(paid.amount, cny(1));
    assert_eq!(paid.time, utc("2014-11-10T08:46:14Z"));
    assert_eq!(paid.fee.unwrap().exact_milli_minor(), 0);
    assert_eq!(refund.kind, BillLineKind::Refund);
    assert_eq!(refund.amount, cny(1));
    assert_eq!(refund.out_refund_no.as_deref(), Some("1415640626R1"));
    assert_eq!(parsed.totals.payment_amount, Some(cny(1)));
    assert_eq!(parsed.totals.refund_amount, Some(cny(1)));
}

#[test]
fn the_old_18_column_success_bill_is_read_by_its_names() {
    let parsed = parse(bill_fixture!("bill_success_old_18_columns.csv"));
    assert!(parsed.mismatches.is_empty(), "{:?}", parsed.mismatches);
    assert_eq!(parsed.lines.len(), 1);
    assert_eq!(parsed.lines[0].amount, cny(100));
    assert_eq!(parsed.lines[0].fee.unwrap().exact_milli_minor(), 1000);
}

#[test]
fn the_overseas_v3_statement_gives_pricing_cny_and_settlement_currencies() {
    let parsed = parse(bill_fixture!("bill_overseas_v3.csv"));
    assert!(parsed.mismatches.is_empty(), "{:?}", parsed.mismatches);
    let [paid, refund] = parsed.lines.as_slice() else {
        panic!("two lines expected");
    };
    assert_eq!(paid.amount, Money::new(250, Currency::Cad));
    assert_eq!(paid.cny_amount, Some(cny(1301)));
    let fee = paid.fee.unwrap();
    assert_eq!(
        (fee.currency(), fee.exact_milli_minor()),
        (Currency::Cad, 2500)
    );
    assert_eq!(fee.rounded(), Money::new(3, Currency::Cad));
    assert_eq!(refund.amount, Money::new(100, Currency::Cad));
    assert_eq!(refund.cny_amount, Some(cny(520)));
    assert_eq!(refund.fee.unwrap().exact_milli_minor(), -1000);
    assert_eq!(parsed.totals.line_count, Some(2));
    assert_eq!(
        parsed
            .totals
            .fee
            .map(|f| (f.currency(), f.exact_milli_minor())),
        Some((Currency::Cad, 1500))
    );
}

#[test]
fn english_column_names_are_read_and_a_non_cny_line_has_no_cny_amount() {
    let parsed = parse(bill_fixture!("bill_overseas_v2_english.csv"));
    let line = &parsed.lines[0];
    assert_eq!(line.amount, Money::new(300, Currency::Usd));
    assert_eq!(line.cny_amount, None);
    assert_eq!(line.out_trade_no.as_deref(), Some("U20240520000001"));
    // An unknown summary is kept verbatim and not checked.
    assert_eq!(parsed.totals.stated.len(), 2);
    assert_eq!(parsed.totals.line_count, None);
}

#[test]
fn failure_documents_are_told_apart_from_bills() {
    assert!(matches!(
        open(bill_fixture!("downloadbill_no_bill.xml")),
        Err(BillError::NoBill { .. })
    ));
    assert!(matches!(
        open(bill_fixture!("downloadbill_creating.xml")),
        Err(BillError::NotReady { .. })
    ));
    match open(bill_fixture!("downloadbill_invalid_bill_type.xml")) {
        Err(BillError::Call(ConnectorError::Rejected { code, message })) => {
            assert_eq!(
                (code.as_str(), message.as_str()),
                ("20001", "invalid bill_type")
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let system = b"<xml><return_code>FAIL</return_code><return_msg>SYSTEMERROR</return_msg></xml>";
    assert!(matches!(
        open(system),
        Err(BillError::Call(ConnectorError::OutcomeUnknown(_)))
    ));
    // The docs once wrote "NO Bill Exist".
    let shouting =
        b"<xml><return_code>FAIL</return_code><return_msg>NO Bill Exist</return_msg></xml>";
    assert_eq!(
        bill::classify_body(shouting).unwrap(),
        WechatPayBillBody::Error(WechatPayBillRefusal::NoBill {
            message: "NO Bill Exist".into()
        })
    );
    let success_xml = b"<xml><return_code>SUCCESS</return_code></xml>";
    assert!(matches!(
        open(success_xml),
        Err(BillError::Call(ConnectorError::BadResponse(_)))
    ));
    assert!(matches!(
        bill::open_bill_response(&answer(502, b""), MCH_ID, day()),
        Err(BillError::Call(ConnectorError::OutcomeUnknown(_)))
    ));
}

fn assert_bad_file(body: &[u8], expected: &str) {
    match open(body) {
        Err(BillError::BadFile { reason, file }) => {
            assert!(reason.contains(expected), "{reason}");
            assert_eq!(file.unwrap().bytes(), body);
        }
        other => panic!("expected a bad file ({expected}), got {other:?}"),
    }
}

#[test]
fn broken_files_are_refused_with_the_file_kept() {
    let good = String::from_utf8(bill_fixture!("bill_all.csv").to_vec()).unwrap();
    let lines: Vec<&str> = good.lines().collect();

    // Cut off before the summary.
    assert_bad_file(lines[..4].join("\n").as_bytes(), "no summary");
    // A row with one value too many.
    let extra = good.replace("`Tea,", "`Tea,`surplus,");
    assert_bad_file(extra.as_bytes(), "28 values under 27 columns");
    // An amount that is not a number.
    assert_bad_file(
        good.replace("`88.88,`0.00,`0,`0", "`a88.88,`0.00,`0,`0")
            .as_bytes(),
        "a88.88",
    );
    // A currency we neither price nor settle in.
    assert_bad_file(good.replacen("`CNY", "`HKD", 1).as_bytes(), "HKD");
    // A header without the order number.
    assert_bad_file(
        good.replacen("商户订单号", "商户单号", 1).as_bytes(),
        "商户订单号",
    );
    // A refund row without the wallet's refund number.
    assert_bad_file(
        good.replace("`50000000012024011500000001", "`0").as_bytes(),
        "微信退款单号",
    );
    // Anything after the summary.
    assert_bad_file(format!("{good}`1,`2\n").as_bytes(), "after the summary");
    // A gzip stream that is not whole.
    let compressed = gzip(good.as_bytes());
    assert_bad_file(&compressed[..compressed.len() / 2], "cannot read");
}

#[test]
fn an_unknown_trade_state_is_kept_verbatim_as_unknown() {
    let good = String::from_utf8(bill_fixture!("bill_all.csv").to_vec()).unwrap();
    let parsed = parse(good.replacen("`REVOKED", "`CLOSED", 1).as_bytes());
    assert_eq!(parsed.lines[1].status, BillLineStatus::Unknown);
    assert_eq!(parsed.lines[1].wallet_status, "CLOSED");
    assert_eq!(parsed.lines[1].kind, BillLineKind::Payment);
}

#[test]
fn a_line_beyond_the_bound_is_refused_even_inside_gzip() {
    let endless = gzip(&vec![b'x'; 200 * 1024]);
    assert!(matches!(open(&endless), Err(BillError::TooLarge { .. })));
}

#[test]
fn a_day_that_has_not_ended_in_beijing_is_not_ready_without_a_call() {
    let evening_utc = Utc.with_ymd_and_hms(2024, 1, 15, 15, 0, 0).unwrap();
    assert!(matches!(
        bill::check_day(day(), evening_utc),
        Err(BillError::NotReady { code, .. }) if code == "LOCAL_TOO_RECENT"
    ));
    let next_morning = Utc.with_ymd_and_hms(2024, 1, 15, 16, 0, 0).unwrap();
    assert!(bill::check_day(day(), next_morning).is_ok());
}

#[test]
fn the_request_asks_for_the_gzipped_all_bill_of_the_day() {
    let merchant = WechatPayMerchant {
        appid: "wxd930ea5d5a258f4f",
        mch_id: MCH_ID,
        sub_mch_id: Some("1900000110"),
        sign_type: WechatPaySignType::HmacSha256,
    };
    let request = wire::build_downloadbill(&merchant, day(), "nonce");
    let xml = request.into_signed_xml(&api_key()).unwrap();
    let fields = wire::parse_xml(xml.as_bytes()).unwrap();
    for (name, value) in [
        ("bill_date", "20240115"),
        ("bill_type", "ALL"),
        ("tar_type", "GZIP"),
        ("sub_mch_id", "1900000110"),
        ("sign_type", "HMAC-SHA256"),
        ("mch_id", MCH_ID),
    ] {
        assert_eq!(wire::field(&fields, name), Some(value), "{name}");
    }
    assert!(sign::verify_fields(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        wire::field(&fields, "sign").unwrap(),
        &api_key(),
        WechatPaySignType::HmacSha256,
    ));
}

#[tokio::test]
async fn download_bill_posts_a_signed_request_and_parses_the_gzipped_answer() {
    let compressed = gzip(bill_fixture!("bill_all.csv"));
    let (base_url, server) = serve_answers(vec![
        compressed.clone(),
        bill_fixture!("downloadbill_no_bill.xml").to_vec(),
    ]);
    let connector = WechatPayConnector::new(WechatPayConfig {
        base_url,
        ..test_config(WechatPaySignType::Md5)
    })
    .unwrap();
    let bill = connector.download_bill(day()).await.unwrap();
    let first: &BillLine = &bill.lines[0];
    assert_eq!(first.out_trade_no.as_deref(), Some("P20240115000001"));
    assert_eq!(bill.file.bytes(), compressed.as_slice());
    assert!(matches!(
        connector.download_bill(day()).await,
        Err(BillError::NoBill { .. })
    ));
    let seen = server.join().unwrap();
    for (request_line, body) in &seen {
        assert_eq!(request_line, "POST /pay/downloadbill HTTP/1.1");
        let fields = wire::parse_xml(body.as_bytes()).unwrap();
        assert_eq!(wire::field(&fields, "bill_date"), Some("20240115"));
        assert!(sign::verify_fields(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            wire::field(&fields, "sign").unwrap(),
            &api_key(),
            WechatPaySignType::Md5,
        ));
    }
}
