//! Tests of UnionPay's file transfer and ZM parser (`bill.rs`) on the hand-made GBK files of
//! `fixtures/` (`make_zm_fixtures.py`), zipped, zlib-compressed and base64-encoded into signed
//! answers as `bills.md` §3.1 describes, and one loopback pass through `download_bill`.

use std::io::Write;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use qrgate_connector_api::{
    BillError, BillLineKind, BillLineStatus, Connector, ConnectorError, Wallet, WalletBill,
};
use qrgate_domain::{Currency, Money};

use super::bill;
use super::tests::{
    assert_signed_by_merchant, config, form_fields, sign_as_unionpay, trust, MER_ID,
};
use super::wire::{self, UnionPayMerchant, UnionPayRequest};
use super::UnionPayConnector;
use crate::bill_file::test_support::{listen, serve, zip_with_raw_names};

const ZM_DAY: &[u8] = include_bytes!("fixtures/zm_20240115.txt");
const ZM_NEW_YEAR: &[u8] = include_bytes!("fixtures/zm_20250101_new_year.txt");

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

fn merchant() -> UnionPayMerchant<'static> {
    UnionPayMerchant {
        mer_id: MER_ID,
        cert_id: "68759529225",
        back_url: "https://gateway.example/callbacks/unionpay",
    }
}

/// The zip UnionPay sends: the ZM file, an error file that is not read, and a readme.
fn zm_zip(zm: &[u8]) -> Vec<u8> {
    let zm_name = format!("INN24011588ZM_{MER_ID}");
    let zme_name = format!("INN24011588ZME_{MER_ID}");
    zip_with_raw_names(&[
        (zm_name.as_bytes(), zm),
        (zme_name.as_bytes(), b"not a ZM record"),
        ("说明.txt".as_bytes(), b"readme"),
    ])
}

fn file_content(zip: &[u8]) -> String {
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(zip).unwrap();
    base64::engine::general_purpose::STANDARD.encode(zlib.finish().unwrap())
}

/// A signed file-transfer answer with `extra` fields.
fn answer_body(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields: Vec<(String, String)> = [
        ("version", "5.1.0"),
        ("encoding", "utf-8"),
        ("signMethod", "01"),
        ("certId", "69026276696"),
        ("bizType", "000000"),
        ("accessType", "0"),
        ("merId", MER_ID),
        ("txnType", "76"),
        ("txnSubType", "01"),
        ("txnTime", "20240116093000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    fields.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    sign_as_unionpay(fields)
}

fn request() -> UnionPayRequest {
    UnionPayRequest::file_transfer(&merchant(), day(), utc("2024-01-16T01:30:00Z")).unwrap()
}

fn open(body: &[u8]) -> Result<WalletBill, BillError> {
    let at = utc("2024-03-15T04:00:05Z");
    let answer = wire::open_answer(&request(), 200, body, &trust(), at, MER_ID)?;
    bill::open_file_answer(&answer, day(), MER_ID)
}

fn success(zm: &[u8]) -> Vec<u8> {
    let content = file_content(&zm_zip(zm));
    answer_body(&[
        ("respCode", "00"),
        ("respMsg", "成功[0000000]"),
        ("fileName", &format!("{MER_ID}_20240115.zip")),
        ("fileContent", &content),
    ])
}

#[test]
fn the_zm_file_becomes_payments_refunds_and_a_reversal() {
    let bill = open(&success(ZM_DAY)).unwrap();
    assert_eq!((bill.wallet, bill.day), (Wallet::UnionPay, day()));
    assert_eq!(bill.file.name(), format!("{MER_ID}_20240115.zip"));
    assert_eq!(bill.file.bytes(), zm_zip(ZM_DAY).as_slice());
    let [paid, refund, old_refund, paid_2, cancel] = bill.lines.as_slice() else {
        panic!("five lines expected, got {}", bill.lines.len());
    };

    assert_eq!(paid.kind, BillLineKind::Payment);
    assert_eq!(paid.out_trade_no.as_deref(), Some("P20240115000201"));
    assert_eq!(paid.wallet_ref, "512401150930000000001");
    assert_eq!((paid.amount, paid.cny_amount), (cny(8888), Some(cny(8888))));
    assert_eq!(paid.time, utc("2024-01-15T01:30:00Z"));
    // D: charged to the merchant.
    assert_eq!(paid.fee.unwrap().exact_milli_minor(), 53_000);
    assert_eq!(
        (paid.status, paid.wallet_status.as_str()),
        (BillLineStatus::Succeeded, "S22")
    );

    assert_eq!(refund.kind, BillLineKind::Refund);
    assert_eq!(refund.out_refund_no.as_deref(), Some("R20240115000201"));
    // Linked to its payment in the same file.
    assert_eq!(refund.out_trade_no.as_deref(), Some("P20240115000201"));
    assert_eq!(
        refund.wallet_order_ref.as_deref(),
        Some("512401150930000000001")
    );
    assert_eq!(refund.amount, cny(2000));
    // C: returned to the merchant.
    assert_eq!(refund.fee.unwrap().exact_milli_minor(), -12_000);

    // The payment is not in this file: only its queryId is known.
    assert_eq!(old_refund.out_trade_no, None);
    assert_eq!(
        old_refund.wallet_order_ref.as_deref(),
        Some("512401100800000000009")
    );

    // Fees without a letter: charged on a consume, returned on a cancel.
    assert_eq!(paid_2.fee.unwrap().exact_milli_minor(), 9000);
    assert_eq!(cancel.kind, BillLineKind::Reversal);
    assert_eq!(cancel.wallet_status, "S31");
    assert_eq!(cancel.out_trade_no.as_deref(), Some("P20240115000203"));
    assert_eq!(
        cancel.out_refund_no.as_deref(),
        Some("C20240115200500ABCDEFGHIJKLMNOPQ")
    );
    assert_eq!(cancel.fee.unwrap().exact_milli_minor(), -9000);

    // The ZM file states no totals.
    assert_eq!(bill.totals, Default::default());
}

#[test]
fn the_year_of_a_trade_follows_the_settle_date_across_new_year() {
    let settle = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let parsed = bill::parse_zip(&zm_zip(ZM_NEW_YEAR), settle, MER_ID).unwrap();
    let times: Vec<DateTime<Utc>> = parsed.lines.iter().map(|l| l.time).collect();
    assert_eq!(
        times,
        [utc("2024-12-31T15:30:00Z"), utc("2025-01-01T00:00:00Z")]
    );
}

#[test]
fn a_zip_without_a_zm_file_is_a_day_without_lines() {
    let zip = zip_with_raw_names(&[(format!("INN24011588ZME_{MER_ID}").as_bytes(), b"")]);
    let parsed = bill::parse_zip(&zip, day(), MER_ID).unwrap();
    assert!(parsed.lines.is_empty());
    let empty_zm = bill::parse_zip(&zm_zip(b"\r\n"), day(), MER_ID).unwrap();
    assert!(empty_zm.lines.is_empty());
}

#[test]
fn answer_codes_tell_not_ready_no_bill_and_failures_apart() {
    let with_code = |code: &str| open(&answer_body(&[("respCode", code), ("respMsg", "msg")]));
    assert!(matches!(with_code("98"), Err(BillError::NotReady { code, .. }) if code == "98"));
    assert!(matches!(with_code("34"), Err(BillError::NoBill { .. })));
    assert!(matches!(
        with_code("11"),
        Err(BillError::Call(ConnectorError::Rejected { .. }))
    ));
    assert!(matches!(
        with_code("99"),
        Err(BillError::Call(ConnectorError::OutcomeUnknown(_)))
    ));
    // An answer whose signature does not verify is never opened.
    let mut forged = String::from_utf8(success(ZM_DAY)).unwrap();
    forged = forged.replace("respCode=00", "respCode=98");
    assert!(matches!(
        open(forged.as_bytes()),
        Err(BillError::Call(ConnectorError::BadResponse(_)))
    ));
}

fn assert_bad(body: &[u8], expected: &str) {
    match open(body) {
        Err(BillError::BadFile { reason, .. }) => assert!(reason.contains(expected), "{reason}"),
        other => panic!("expected a bad file ({expected}), got {other:?}"),
    }
}

#[test]
fn broken_files_are_refused() {
    let mut cut = ZM_DAY.to_vec();
    cut.truncate(300);
    assert_bad(&success(&cut), "ends");
    let other_merchant = ZM_DAY
        .windows(MER_ID.len())
        .position(|w| w == MER_ID.as_bytes())
        .map(|at| {
            let mut bytes = ZM_DAY.to_vec();
            bytes.splice(at..at + MER_ID.len(), b"777290058119999".iter().copied());
            bytes
        })
        .unwrap();
    assert_bad(&success(&other_merchant), "not ours");
    let mut unknown_code = ZM_DAY.to_vec();
    unknown_code.splice(0..3, b"S56".iter().copied());
    assert_bad(&success(&unknown_code), "S56");
    let mut not_gbk = ZM_DAY.to_vec();
    // Byte 0x81 alone inside the sub-merchant name field of the first record.
    let widths_before_31 = [
        3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4, 32, 1,
        21, 15, 1, 15,
    ];
    let field_31_start = widths_before_31.iter().map(|w| w + 1).sum::<usize>();
    not_gbk[field_31_start] = 0x81;
    not_gbk[field_31_start + 1] = b' ';
    assert_bad(&success(&not_gbk), "not GBK");
    assert_bad(
        &answer_body(&[("respCode", "00"), ("fileContent", "not base64!")]),
        "base64",
    );
    assert_bad(&answer_body(&[("respCode", "00")]), "fileContent");
    let garbage = base64::engine::general_purpose::STANDARD.encode(b"\x00\x01not zlib");
    assert_bad(
        &answer_body(&[("respCode", "00"), ("fileContent", &garbage)]),
        "inflate",
    );
}

#[test]
fn a_settle_date_is_over_at_23_00_beijing() {
    assert!(bill::settle_day_not_over(
        day(),
        utc("2024-01-15T14:59:59Z")
    ));
    assert!(!bill::settle_day_not_over(
        day(),
        utc("2024-01-15T15:00:00Z")
    ));
}

#[test]
fn the_request_names_the_settle_date_and_the_merchant_file_without_an_order() {
    let request = request();
    let fields: Vec<(&str, &str)> = request.fields().collect();
    for expected in [
        ("txnType", "76"),
        ("txnSubType", "01"),
        ("bizType", "000000"),
        ("accessType", "0"),
        ("channelType", "07"),
        ("merId", MER_ID),
        ("settleDate", "0115"),
        ("fileType", "00"),
        ("txnTime", "20240116093000"),
    ] {
        assert!(fields.contains(&expected), "{expected:?} in {fields:?}");
    }
    assert!(fields.iter().all(|(k, _)| *k != "orderId"));
}

#[test]
fn file_base_url_defaults_to_unionpays_file_host_or_the_base_url() {
    use crate::settings::default_unionpay_file_base_url as default;
    assert_eq!(
        default("https://gateway.95516.com"),
        "https://filedownload.95516.com/"
    );
    assert_eq!(
        default("https://gateway.test.95516.com/"),
        "https://filedownload.test.95516.com/"
    );
    assert_eq!(
        default("http://127.0.0.1:8080/unionpay"),
        "http://127.0.0.1:8080/unionpay/"
    );
}

#[tokio::test]
async fn download_bill_posts_a_signed_file_transfer_and_reads_the_answer() {
    let (listener, base_url) = listen();
    let answer = success(ZM_DAY);
    let server = serve(
        listener,
        vec![("application/x-www-form-urlencoded;charset=UTF-8", answer)],
    );
    let mut config = config(&base_url);
    config.file_base_url = format!("{base_url}/files/");
    let connector = UnionPayConnector::new(config).unwrap();
    let bill = connector.download_bill(day()).await.unwrap();
    assert_eq!(bill.lines.len(), 5);

    let seen = server.join().unwrap();
    assert_eq!(seen[0].0, "POST /files/ HTTP/1.1");
    let fields = form_fields(&seen[0].1);
    assert_signed_by_merchant(&fields);
    assert!(fields.contains(&("settleDate".to_owned(), "0115".to_owned())));

    let not_over = (Utc::now() + chrono::TimeDelta::days(2)).date_naive();
    assert!(matches!(
        connector.download_bill(not_over).await,
        Err(BillError::NotReady { .. })
    ));
}
