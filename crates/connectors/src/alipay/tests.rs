//! Unit tests of the Alipay connector: string-to-sign layout, pinned signatures, raw reply
//! extraction and verification, the status and error mapping of every method, amounts,
//! notifications, and one pass through the real `Connector` methods against a loopback fake.
//! No network: replies are fixtures signed at run time with the test "Alipay" key
//! (`fixtures/README.md`).

use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use qrgate_connector_api::{
    CallbackError, ChannelStatus, CodePaymentRequest, Connector, ConnectorError, HttpClientConfig,
    QrOrderRequest, RefundRequest, RefundStatus, ReverseOutcome,
};
use qrgate_domain::{Currency, Money};
use secrecy::SecretString;

use super::raw_json::top_level_members;
use super::sign::{self, AlipaySigner, AlipayVerifier};
use super::units::{
    alipay_timestamp, amount_from_alipay, amount_to_alipay, parse_alipay_time, rate_e8_from_alipay,
    timeout_express,
};
use super::wire::{self, AlipayCallContext, AlipayMethod, AlipayReply, REFUND_NOT_FOUND_NOTE};
use super::{AlipayConfig, AlipayConnector};
use crate::reference_rsa::ReferenceSigner;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name))
    };
}

const APP_PRIVATE_KEY_PKCS8: &str = fixture!("test_app_private_key_pkcs8.pem");
const APP_PRIVATE_KEY_PKCS1: &str = fixture!("test_app_private_key_pkcs1.pem");
const APP_PUBLIC_KEY: &str = fixture!("test_app_public_key.pem");
const ALIPAY_PRIVATE_KEY: &str = fixture!("test_alipay_private_key_pkcs8.pem");
const ALIPAY_PUBLIC_KEY: &str = fixture!("test_alipay_public_key.pem");

const APP_ID: &str = "2014072300007148";
const SELLER_ID: &str = "2088102146225131";
const OUT_TRADE_NO: &str = "20150320010101001";
const OUT_REQUEST_NO: &str = "R20150320010101001-1";

/// `wallets.md` §7 vector 6, byte for byte.
const VECTOR_6: &str = concat!(
    "app_id=2014072300007148",
    r#"&biz_content={"out_trade_no":"20150320010101001","scene":"bar_code","auth_code":"28763443825664394","subject":"Iphone6 16G","total_amount":"88.88"}"#,
    "&charset=utf-8&format=JSON&method=alipay.trade.pay&sign_type=RSA2",
    "&timestamp=2014-07-24 03:07:50&version=1.0"
);

/// Vector 6 signed with `test_app_private_key_pkcs8.pem` by
/// `openssl dgst -sha256 -sign`, independently of our code.
const VECTOR_6_SIGNATURE: &str = "Ldz+s8dYt4S5zPHKhS1AHLWieNx4XJmbf25mxuRd6Ril8LW03COhCYDRqCcpsewYX9hfukqmqhHMoCteJi0Xq6fTCWGvxSviYBDV1U4oC+0LJold7tpRsCXBL6FtHniksQ0KoFdszwf3TtAo9s3Hwfu/045A/z45hqhgwjOxAGlYoSYMqxFPMx8Ef1de4qu3b5pi6FJ6OyY6DoS/zc8k56tGkzfs7QFOsS25VTOYbur9DVy1bYnGx6ui/CmeE0RVcpvp5SiwUCiwLW5PnKhl3BA9XEnbOu/pz1q1qyAmixpQJJ23lFLDhD9+FsZTlO1ygt47gNzawatwVCKSmHH7GA==";

// ---------------------------------------------------------------------------------------------
// Helpers

/// 2014-07-24 03:07:50 in Beijing, the timestamp of vector 6.
fn vector_now() -> DateTime<Utc> {
    "2014-07-23T19:07:50Z".parse().unwrap()
}

pub(super) fn cx(cross_border: bool) -> AlipayCallContext<'static> {
    AlipayCallContext {
        app_id: APP_ID,
        seller_id: None,
        cross_border,
        now: vector_now(),
    }
}

/// The test "Alipay" key, used with `ring` directly (not through the connector's code).
fn alipay_key() -> &'static ReferenceSigner {
    static KEY: OnceLock<ReferenceSigner> = OnceLock::new();
    KEY.get_or_init(|| ReferenceSigner::from_pkcs8_pem(ALIPAY_PRIVATE_KEY))
}

/// Signs like Alipay does, with the test Alipay key.
fn sign_as_alipay(content: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(alipay_key().sign(content))
}

fn verifier() -> AlipayVerifier {
    AlipayVerifier::from_text(ALIPAY_PUBLIC_KEY).unwrap()
}

/// A complete reply body: the member text as given, then its signature.
pub(super) fn signed_body(member: &str, raw: &str) -> Vec<u8> {
    let raw = raw.trim();
    let sign = sign_as_alipay(raw.as_bytes());
    format!(r#"{{"{member}":{raw},"sign":"{sign}"}}"#).into_bytes()
}

fn open(method: AlipayMethod, body: &[u8]) -> Result<AlipayReply, ConnectorError> {
    wire::open_reply(method, 200, body, &verifier())
}

pub(super) fn reply(method: AlipayMethod, raw: &str) -> AlipayReply {
    open(method, &signed_body(method.response_member(), raw)).unwrap()
}

fn cny(minor: i64) -> Money {
    Money::new(minor, Currency::Cny)
}

fn code_payment(amount: Money) -> CodePaymentRequest {
    CodePaymentRequest {
        out_trade_no: OUT_TRADE_NO.into(),
        amount,
        auth_code: "28763443825664394".into(),
        subject: "Iphone6 16G".into(),
        terminal_id: None,
        client_ip: "127.0.0.1".into(),
        created_at: vector_now(),
    }
}

fn qr_order(amount: Money, expires_in: Duration) -> QrOrderRequest {
    QrOrderRequest {
        out_trade_no: "20150320010101003".into(),
        amount,
        subject: "Coffee".into(),
        notify_url: "https://gateway.example/callbacks/alipay".into(),
        expires_at: vector_now() + expires_in,
        terminal_id: Some("T1".into()),
        client_ip: "127.0.0.1".into(),
        created_at: vector_now(),
    }
}

fn refund_request(amount: Money) -> RefundRequest {
    RefundRequest {
        out_trade_no: OUT_TRADE_NO.into(),
        out_refund_no: OUT_REQUEST_NO.into(),
        order_amount: cny(8888),
        refund_amount: amount,
        reason: Some("customer returned the item".into()),
        order: order_ref(),
        created_at: vector_now(),
    }
}

fn param<'r>(request: &'r wire::AlipayRequest, name: &str) -> Option<&'r str> {
    request.params().find(|(k, _)| *k == name).map(|(_, v)| v)
}

fn biz_content(request: &wire::AlipayRequest) -> serde_json::Value {
    serde_json::from_str(param(request, "biz_content").unwrap()).unwrap()
}

pub(super) fn config(cross_border: bool) -> AlipayConfig {
    AlipayConfig {
        gateway_url: "http://127.0.0.1:9/gateway.do".into(),
        app_id: APP_ID.into(),
        app_private_key_pem: SecretString::from(APP_PRIVATE_KEY_PKCS8),
        alipay_public_key_pem: ALIPAY_PUBLIC_KEY.into(),
        seller_id: Some(SELLER_ID.into()),
        cross_border,
        http: HttpClientConfig::default(),
    }
}

fn connector() -> AlipayConnector {
    AlipayConnector::new(config(false)).unwrap()
}

/// A notification form with a `sign` made by the test Alipay key appended.
fn signed_notification(form: &str) -> String {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let content =
        sign::notification_sign_content(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sign: String =
        url::form_urlencoded::byte_serialize(sign_as_alipay(content.as_bytes()).as_bytes())
            .collect();
    format!("{form}&sign={sign}")
}

fn assert_declined(result: Result<impl std::fmt::Debug, ConnectorError>, expected_code: &str) {
    match result {
        Err(ConnectorError::Declined { code, .. }) => assert_eq!(code, expected_code),
        other => panic!("expected Declined {expected_code}, got {other:?}"),
    }
}

fn assert_outcome_unknown(result: Result<impl std::fmt::Debug, ConnectorError>) {
    assert!(
        matches!(result, Err(ConnectorError::OutcomeUnknown(_))),
        "got {result:?}"
    );
}

fn assert_bad_response(result: Result<impl std::fmt::Debug, ConnectorError>) {
    assert!(
        matches!(result, Err(ConnectorError::BadResponse(_))),
        "got {result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Signing

#[test]
fn vector_6_string_to_sign_is_reproduced_byte_for_byte() {
    let biz = r#"{"out_trade_no":"20150320010101001","scene":"bar_code","auth_code":"28763443825664394","subject":"Iphone6 16G","total_amount":"88.88"}"#;
    let params = [
        ("method", "alipay.trade.pay"),
        ("app_id", APP_ID),
        ("sign", "must-not-be-signed"),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", "2014-07-24 03:07:50"),
        ("version", "1.0"),
        ("notify_url", ""),
        ("biz_content", biz),
    ];
    assert_eq!(sign::request_sign_content(params), VECTOR_6);
}

#[test]
fn request_timestamps_are_beijing_time() {
    assert_eq!(alipay_timestamp(vector_now()), "2014-07-24 03:07:50");
    assert_eq!(parse_alipay_time("2014-07-24 03:07:50"), Some(vector_now()));
    assert_eq!(parse_alipay_time("2014-07-24T03:07:50"), None);
}

#[test]
fn pay_request_signs_the_vector_6_layout() {
    let request = wire::pay_request(&cx(false), &code_payment(cny(8888))).unwrap();
    let expected = VECTOR_6.replace(
        r#""total_amount":"88.88"}"#,
        r#""total_amount":"88.88","product_code":"FACE_TO_FACE_PAYMENT"}"#,
    );
    assert_eq!(request.sign_content(), expected);
}

#[test]
fn signatures_are_pinned_and_match_openssl() {
    let signer = AlipaySigner::from_text(APP_PRIVATE_KEY_PKCS8).unwrap();
    assert_eq!(signer.sign(VECTOR_6).unwrap(), VECTOR_6_SIGNATURE);
    let app_verifier = AlipayVerifier::from_text(APP_PUBLIC_KEY).unwrap();
    assert!(app_verifier.verify(VECTOR_6.as_bytes(), VECTOR_6_SIGNATURE));
    assert!(!app_verifier.verify(
        VECTOR_6.replace("88.88", "88.89").as_bytes(),
        VECTOR_6_SIGNATURE
    ));
}

#[test]
fn a_pkcs1_app_key_signs_identically() {
    let signer = AlipaySigner::from_text(APP_PRIVATE_KEY_PKCS1).unwrap();
    assert_eq!(signer.sign(VECTOR_6).unwrap(), VECTOR_6_SIGNATURE);
}

#[test]
fn bare_base64_keys_are_accepted() {
    let strip = |pem: &str| {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    let signer = AlipaySigner::from_text(&strip(APP_PRIVATE_KEY_PKCS8)).unwrap();
    assert_eq!(signer.sign(VECTOR_6).unwrap(), VECTOR_6_SIGNATURE);
    assert!(AlipayVerifier::from_text(&strip(APP_PUBLIC_KEY))
        .unwrap()
        .verify(VECTOR_6.as_bytes(), VECTOR_6_SIGNATURE));
}

/// The message of the `Credentials` error, which reaches the operator's log at start-up.
fn credentials_message<T>(result: Result<T, ConnectorError>) -> String {
    match result {
        Err(ConnectorError::Credentials(message)) => message,
        Err(other) => panic!("not a credentials error: {other:?}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn an_unusable_key_says_what_is_wrong_with_it() {
    let fixture = |name: &str| match name {
        "rsa1024" => include_str!("../rsa_pkcs1/fixtures/test_rsa1024_private_key.pem"),
        "e3" => include_str!("../rsa_pkcs1/fixtures/test_rsa_e3_private_key.pem"),
        "ec" => include_str!("../rsa_pkcs1/fixtures/test_ec_private_key.pem"),
        "ec_public" => include_str!("../rsa_pkcs1/fixtures/test_ec_public_key.pem"),
        _ => unreachable!(),
    };
    let not_a_key = "app_private_key_pem is not an RSA private key (PKCS#8 or PKCS#1, PEM or \
                     Base64 DER)";
    for (text, expected) in [
        ("not a key", not_a_key),
        (fixture("ec"), not_a_key),
        (ALIPAY_PUBLIC_KEY, not_a_key),
        (
            fixture("rsa1024"),
            "app_private_key_pem: RSA2 needs a key of at least 2048 bits",
        ),
        (
            fixture("e3"),
            "app_private_key_pem cannot sign (an RSA key of 2048 to 4096 bits with a public \
             exponent of at least 65537 is needed)",
        ),
    ] {
        assert_eq!(credentials_message(AlipaySigner::from_text(text)), expected);
    }
    let not_a_public_key =
        "alipay_public_key_pem is not an RSA public key (SPKI or PKCS#1, PEM or Base64 DER)";
    for text in ["", fixture("ec_public"), APP_PRIVATE_KEY_PKCS8] {
        assert_eq!(
            credentials_message(AlipayVerifier::from_text(text)),
            not_a_public_key
        );
    }
    // The key text never appears in the message.
    let message = credentials_message(AlipaySigner::from_text(fixture("rsa1024")));
    assert!(!message.contains("MII"), "{message}");
}

#[test]
fn notification_string_to_sign_drops_sign_sign_type_and_empty_values() {
    let params = [
        ("sign", "x"),
        ("sign_type", "RSA2"),
        ("b", "2"),
        ("c", ""),
        ("a", "1"),
    ];
    assert_eq!(sign::notification_sign_content(params), "a=1&b=2");
    assert_eq!(sign::request_sign_content(params), "a=1&b=2&sign_type=RSA2");
}

#[test]
fn form_body_round_trips_and_carries_the_signature() {
    let request = wire::pay_request(&cx(false), &code_payment(cny(8888))).unwrap();
    let body = request.form_body("c2lnbg+/=");
    assert!(body.contains("timestamp=2014-07-24+03%3A07%3A50"));
    let decoded: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let sign = decoded
        .iter()
        .find(|(k, _)| k == "sign")
        .map(|(_, v)| v.as_str());
    assert_eq!(sign, Some("c2lnbg+/="));
    let resigned =
        sign::request_sign_content(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_eq!(resigned, request.sign_content());
}

// ---------------------------------------------------------------------------------------------
// Reply extraction and verification

#[test]
fn a_reply_with_unusual_layout_verifies_over_its_raw_text() {
    let body = fixture!("pay_10000_signed_unusual_layout.json");
    let reply = open(AlipayMethod::Pay, body.as_bytes()).unwrap();
    let order = wire::pay_outcome(&reply, &code_payment(cny(8888))).unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    assert_eq!(order.amount, Some(cny(8888)));
    assert_eq!(
        order.channel_ref.as_deref(),
        Some("2014072422001004670200000001")
    );
}

#[test]
fn re_serialising_the_reply_would_break_its_signature() {
    // Why the raw text matters: the same content, compacted, is not what Alipay signed.
    let body = fixture!("pay_10000_signed_unusual_layout.json");
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
    let compact = serde_json::to_vec(&parsed).unwrap();
    assert_bad_response(open(AlipayMethod::Pay, &compact));
}

#[test]
fn top_level_members_are_found_in_any_order_and_spacing() {
    let text =
        r#" { "sign" : "abc" , "x_response":{"a":"}\"{","b":[1,{"c":null}]} ,"n": -1.5e3 } "#;
    let members = top_level_members(text).unwrap();
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["sign", "x_response", "n"]);
    assert_eq!(
        &text[members[1].value.clone()],
        r#"{"a":"}\"{","b":[1,{"c":null}]}"#
    );
    assert_eq!(&text[members[2].value.clone()], "-1.5e3");
    assert_eq!(top_level_members("{}").unwrap(), []);
    assert_eq!(top_level_members("[1]"), None);
}

#[test]
fn a_tampered_reply_is_rejected() {
    let body = String::from_utf8(signed_body(
        "alipay_trade_pay_response",
        fixture!("pay_10000.json"),
    ))
    .unwrap();
    let tampered = body.replace(r#""total_amount":"88.88""#, r#""total_amount":"0.01""#);
    assert_ne!(body, tampered);
    assert_bad_response(open(AlipayMethod::Pay, tampered.as_bytes()));
}

#[test]
fn a_reply_signed_for_another_member_or_key_is_rejected() {
    let raw = fixture!("pay_10000.json");
    let forged = format!(
        r#"{{"alipay_trade_pay_response":{raw},"sign":"{}"}}"#,
        VECTOR_6_SIGNATURE
    );
    assert_bad_response(open(AlipayMethod::Pay, forged.as_bytes()));
    let garbage = format!(r#"{{"alipay_trade_pay_response":{raw},"sign":"not base64!"}}"#);
    assert_bad_response(open(AlipayMethod::Pay, garbage.as_bytes()));
    // A valid reply of another method does not answer this one.
    let query = signed_body(
        "alipay_trade_query_response",
        fixture!("query_wait_buyer_pay.json"),
    );
    assert_bad_response(open(AlipayMethod::Pay, &query));
}

#[test]
fn a_repeated_reply_member_is_rejected() {
    let raw = fixture!("pay_10000.json");
    let sign = sign_as_alipay(raw.as_bytes());
    let body = format!(
        r#"{{"alipay_trade_pay_response":{raw},"alipay_trade_pay_response":{{"code":"10000"}},"sign":"{sign}"}}"#
    );
    assert_bad_response(open(AlipayMethod::Pay, body.as_bytes()));
}

#[test]
fn unsigned_error_responses_are_never_read_as_success() {
    let unsigned = fixture!("error_response_unsigned_body.json");
    match open(AlipayMethod::Pay, unsigned.as_bytes()) {
        Err(ConnectorError::Rejected { code, .. }) => assert_eq!(code, "isv.invalid-app-id"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    let unavailable = r#"{"error_response":{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}}"#;
    assert_outcome_unknown(open(AlipayMethod::Pay, unavailable.as_bytes()));
    // An unsigned business failure cannot be trusted as a final decline either.
    let declined = format!(
        r#"{{"alipay_trade_pay_response":{}}}"#,
        fixture!("pay_40004_balance_not_enough.json")
    );
    assert_outcome_unknown(open(AlipayMethod::Pay, declined.as_bytes()));
    let success = format!(
        r#"{{"alipay_trade_pay_response":{}}}"#,
        fixture!("pay_10000.json")
    );
    assert_bad_response(open(AlipayMethod::Pay, success.as_bytes()));
    let empty_sign = format!(
        r#"{{"alipay_trade_pay_response":{},"sign":""}}"#,
        fixture!("pay_10000.json")
    );
    assert_bad_response(open(AlipayMethod::Pay, empty_sign.as_bytes()));
}

#[test]
fn malformed_replies_are_bad_responses() {
    let cases: [&[u8]; 10] = [
        b"",
        b"{",
        b"not json",
        b"[]",
        b"null",
        br#"{"alipay_trade_pay_response":}"#,
        br#"{"alipay_trade_pay_response":"x","sign":"y"}"#,
        br#"{"other":{}}"#,
        b"{\"alipay_trade_pay_response\":{\"code\":\"\xff\"}}",
        br#"{"alipay_trade_pay_response":{"code":"10000"},"sign":42}"#,
    ];
    for body in cases {
        assert_bad_response(open(AlipayMethod::Pay, body));
    }
}

#[test]
fn a_signed_reply_of_the_wrong_shape_is_a_bad_response() {
    for raw in [
        r#"{"msg":"no code"}"#,
        r#"{"code":10000}"#,
        r#""just a string""#,
        "[1,2]",
    ] {
        let reply = reply(AlipayMethod::Pay, raw);
        assert_bad_response(wire::pay_outcome(&reply, &code_payment(cny(8888))));
    }
}

#[test]
fn mangled_replies_never_panic_and_never_verify_other_bytes() {
    let body = fixture!("pay_10000_signed_unusual_layout.json");
    let original = open(AlipayMethod::Pay, body.as_bytes()).unwrap();
    for end in 0..body.trim_end().len() {
        if let Some(prefix) = body.get(..end) {
            assert!(open(AlipayMethod::Pay, prefix.as_bytes()).is_err());
        }
    }
    for i in 0..body.len() {
        for replacement in [b'"', b'{', b'}', b'\\', b',', b' ', b'0'] {
            let mut mangled = body.as_bytes().to_vec();
            mangled[i] = replacement;
            if let Ok(reply) = open(AlipayMethod::Pay, &mangled) {
                // Only the signed member may ever come out, unchanged.
                assert_eq!(format!("{reply:?}"), format!("{original:?}"));
            }
        }
    }
}

#[test]
fn http_errors_are_classed_before_the_body_is_read() {
    assert_outcome_unknown(wire::open_reply(
        AlipayMethod::Pay,
        502,
        b"<html>",
        &verifier(),
    ));
    match wire::open_reply(AlipayMethod::Pay, 404, b"", &verifier()) {
        Err(ConnectorError::Rejected { code, .. }) => assert_eq!(code, "HTTP_404"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Amounts, rates, timeouts

#[test]
fn amounts_convert_both_ways_with_integers_only() {
    assert_eq!(amount_to_alipay(cny(1)).unwrap(), "0.01");
    assert_eq!(amount_to_alipay(cny(8888)).unwrap(), "88.88");
    assert_eq!(amount_to_alipay(cny(100)).unwrap(), "1.00");
    assert_eq!(
        amount_to_alipay(cny(10_000_000_000)).unwrap(),
        "100000000.00"
    );
    assert_eq!(amount_from_alipay("0.01", Currency::Cny), Some(cny(1)));
    assert_eq!(
        amount_from_alipay("100000000.00", Currency::Cny),
        Some(cny(10_000_000_000))
    );
    assert_eq!(amount_from_alipay("0.00", Currency::Cny), Some(cny(0)));
    assert_eq!(
        amount_from_alipay("12.34", Currency::Cad),
        Some(Money::new(1234, Currency::Cad))
    );
}

#[test]
fn amounts_outside_alipays_range_are_refused_before_sending() {
    for minor in [0, -1, -100, 10_000_000_001, i64::MAX, i64::MIN] {
        assert!(
            matches!(
                amount_to_alipay(cny(minor)),
                Err(ConnectorError::Rejected { .. })
            ),
            "{minor}"
        );
    }
}

#[test]
fn amount_parsing_is_strict() {
    for bad in [
        "1.5",
        "1.005",
        "-1.00",
        "+1.00",
        "1",
        "1.",
        ".50",
        "01.00",
        "1,00",
        "1e2",
        " 1.00",
        "1.00 ",
        "",
        "abc",
        "NaN",
        "1.0a",
        "9999999999999999.00",
    ] {
        assert_eq!(amount_from_alipay(bad, Currency::Cny), None, "{bad:?}");
    }
}

#[test]
fn rates_parse_to_e8_without_floats() {
    assert_eq!(rate_e8_from_alipay("5.21960000"), Some(521_960_000));
    assert_eq!(rate_e8_from_alipay("1"), Some(100_000_000));
    assert_eq!(rate_e8_from_alipay("0.00000001"), Some(1));
    assert_eq!(rate_e8_from_alipay("4.7921000000"), Some(479_210_000));
    for bad in [
        "",
        "0",
        "0.0",
        "-1",
        "1.",
        ".5",
        "1.000000001",
        "1e3",
        "abc",
        "99999999999",
    ] {
        assert_eq!(rate_e8_from_alipay(bad), None, "{bad:?}");
    }
}

#[test]
fn qr_timeouts_round_down_to_whole_minutes_within_alipays_range() {
    let now = vector_now();
    let at = |seconds: i64| now + Duration::seconds(seconds);
    assert_eq!(timeout_express(now, at(7200)).unwrap(), "120m");
    assert_eq!(timeout_express(now, at(179)).unwrap(), "2m");
    assert_eq!(timeout_express(now, at(30)).unwrap(), "1m");
    assert_eq!(
        timeout_express(now, at(60 * 24 * 60 * 60)).unwrap(),
        "21600m"
    );
    assert!(matches!(
        timeout_express(now, at(0)),
        Err(ConnectorError::Rejected { .. })
    ));
    assert!(matches!(
        timeout_express(now, at(-5)),
        Err(ConnectorError::Rejected { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Requests

#[test]
fn pay_request_has_the_common_parameters_and_face_to_face_content() {
    let mut payment = code_payment(cny(8888));
    payment.terminal_id = Some("POS-7".into());
    payment.subject = "A&W root beer / 2 = cheap".into();
    let context = AlipayCallContext {
        seller_id: Some(SELLER_ID),
        ..cx(false)
    };
    let request = wire::pay_request(&context, &payment).unwrap();
    for (name, value) in [
        ("app_id", APP_ID),
        ("method", "alipay.trade.pay"),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", "2014-07-24 03:07:50"),
        ("version", "1.0"),
    ] {
        assert_eq!(param(&request, name), Some(value), "{name}");
    }
    assert_eq!(param(&request, "notify_url"), None);
    let biz = biz_content(&request);
    assert_eq!(biz["scene"], "bar_code");
    assert_eq!(biz["product_code"], "FACE_TO_FACE_PAYMENT");
    assert_eq!(biz["seller_id"], SELLER_ID);
    assert_eq!(biz["terminal_id"], "POS-7");
    assert_eq!(biz["subject"], "A W root beer   2   cheap");
    assert!(biz.get("trans_currency").is_none());
}

#[test]
fn non_cny_pricing_goes_out_with_trans_and_settle_currency_on_cross_border_accounts() {
    let request =
        wire::pay_request(&cx(true), &code_payment(Money::new(1234, Currency::Cad))).unwrap();
    let biz = biz_content(&request);
    assert_eq!(biz["total_amount"], "12.34");
    assert_eq!(biz["trans_currency"], "CAD");
    assert_eq!(biz["settle_currency"], "CAD");
    let cny_request = wire::pay_request(&cx(true), &code_payment(cny(1234))).unwrap();
    assert!(biz_content(&cny_request).get("trans_currency").is_none());
}

#[test]
fn non_cny_pricing_is_refused_on_a_domestic_account() {
    let result = wire::pay_request(&cx(false), &code_payment(Money::new(1234, Currency::Usd)));
    assert!(matches!(result, Err(ConnectorError::NotSupported(_))));
}

#[test]
fn precreate_request_carries_notify_url_and_both_timeouts() {
    let request = wire::precreate_request(
        &cx(true),
        &qr_order(Money::new(500, Currency::Usd), Duration::minutes(5)),
    )
    .unwrap();
    assert_eq!(param(&request, "method"), Some("alipay.trade.precreate"));
    assert_eq!(
        param(&request, "notify_url"),
        Some("https://gateway.example/callbacks/alipay")
    );
    let biz = biz_content(&request);
    assert_eq!(biz["total_amount"], "5.00");
    assert_eq!(biz["trans_currency"], "USD");
    assert_eq!(biz["timeout_express"], "5m");
    assert_eq!(biz["qr_code_timeout_express"], "5m");
    assert_eq!(biz["terminal_id"], "T1");
}

#[test]
fn trade_requests_name_the_order() {
    for method in [
        AlipayMethod::Query,
        AlipayMethod::Cancel,
        AlipayMethod::Close,
    ] {
        let request = wire::trade_request(&cx(false), method, OUT_TRADE_NO).unwrap();
        assert_eq!(param(&request, "method"), Some(method.name()));
        assert_eq!(
            param(&request, "biz_content"),
            Some(r#"{"out_trade_no":"20150320010101001"}"#)
        );
    }
}

#[test]
fn refund_requests_always_send_out_request_no() {
    let request = wire::refund_request(&cx(false), &refund_request(cny(8888))).unwrap();
    let biz = biz_content(&request);
    assert_eq!(biz["refund_amount"], "88.88");
    assert_eq!(biz["out_request_no"], OUT_REQUEST_NO);
    assert_eq!(biz["refund_reason"], "customer returned the item");
    assert!(biz.get("refund_currency").is_none());
    let cross =
        wire::refund_request(&cx(true), &refund_request(Money::new(1000, Currency::Cad))).unwrap();
    assert_eq!(biz_content(&cross)["refund_currency"], "CAD");
    let query = wire::refund_query_request(&cx(false), OUT_TRADE_NO, OUT_REQUEST_NO).unwrap();
    assert_eq!(
        param(&query, "method"),
        Some("alipay.trade.fastpay.refund.query")
    );
    assert_eq!(biz_content(&query)["out_request_no"], OUT_REQUEST_NO);
}

// ---------------------------------------------------------------------------------------------
// alipay.trade.pay

#[test]
fn pay_10000_is_paid() {
    let reply = reply(AlipayMethod::Pay, fixture!("pay_10000.json"));
    let order = wire::pay_outcome(&reply, &code_payment(cny(8888))).unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    assert_eq!(order.out_trade_no, OUT_TRADE_NO);
    assert_eq!(
        order.channel_ref.as_deref(),
        Some("2014072422001004670200000001")
    );
    assert_eq!(order.amount, Some(cny(8888)));
    assert_eq!(order.payer_amount, Some(cny(8888)));
    assert_eq!(order.buyer.as_deref(), Some("ekz***@sandbox.com"));
    assert_eq!(order.paid_at, Some(vector_now() + Duration::seconds(2)));
    assert_eq!(order.wallet_code, None);
}

#[test]
fn pay_10003_waits_for_the_buyer() {
    let reply = reply(AlipayMethod::Pay, fixture!("pay_10003.json"));
    let order = wire::pay_outcome(&reply, &code_payment(cny(8888))).unwrap();
    assert_eq!(order.status, ChannelStatus::PendingUser);
    assert_eq!(order.wallet_code.as_deref(), Some("10003"));
}

#[test]
fn pay_final_sub_codes_are_declined_verbatim() {
    for (raw, code) in [
        (
            fixture!("pay_40004_auth_code_invalid.json"),
            "ACQ.PAYMENT_AUTH_CODE_INVALID",
        ),
        (
            fixture!("pay_40004_balance_not_enough.json"),
            "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        ),
    ] {
        let reply = reply(AlipayMethod::Pay, raw);
        assert_declined(wire::pay_outcome(&reply, &code_payment(cny(8888))), code);
    }
}

#[test]
fn pay_system_errors_leave_the_outcome_unknown() {
    for raw in [
        fixture!("pay_40004_system_error.json"),
        fixture!("pay_20000.json"),
    ] {
        let reply = reply(AlipayMethod::Pay, raw);
        assert_outcome_unknown(wire::pay_outcome(&reply, &code_payment(cny(8888))));
    }
}

#[test]
fn pay_on_an_already_paid_order_asks_for_a_query() {
    let reply = reply(
        AlipayMethod::Pay,
        fixture!("pay_40004_trade_has_success.json"),
    );
    let order = wire::pay_outcome(&reply, &code_payment(cny(8888))).unwrap();
    assert_eq!(order.status, ChannelStatus::Unknown);
    assert_eq!(order.wallet_code.as_deref(), Some("ACQ.TRADE_HAS_SUCCESS"));
}

#[test]
fn request_errors_are_rejected() {
    for (raw, code) in [
        (
            r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"验签出错"}"#,
            "isv.invalid-signature",
        ),
        (
            r#"{"code":"40001","msg":"Missing Required Arguments","sub_code":"isv.missing-signature"}"#,
            "isv.missing-signature",
        ),
        (
            r#"{"code":"40006","msg":"Insufficient Permissions"}"#,
            "40006",
        ),
    ] {
        let reply = reply(AlipayMethod::Pay, raw);
        match wire::pay_outcome(&reply, &code_payment(cny(8888))) {
            Err(ConnectorError::Rejected { code: got, .. }) => assert_eq!(got, code),
            other => panic!("expected Rejected {code}, got {other:?}"),
        }
    }
}

#[test]
fn unknown_codes_are_never_a_definite_outcome() {
    let reply = reply(
        AlipayMethod::Pay,
        r#"{"code":"50000","msg":"Something new"}"#,
    );
    assert_outcome_unknown(wire::pay_outcome(&reply, &code_payment(cny(8888))));
}

#[test]
fn a_reply_about_another_order_is_a_bad_response() {
    let raw = fixture!("pay_10000.json").replace(OUT_TRADE_NO, "SOMEONE-ELSE");
    let reply = reply(AlipayMethod::Pay, &raw);
    assert_bad_response(wire::pay_outcome(&reply, &code_payment(cny(8888))));
}

// ---------------------------------------------------------------------------------------------
// alipay.trade.query

#[test]
fn query_maps_trade_status() {
    for (raw, status, code) in [
        (
            fixture!("query_wait_buyer_pay.json"),
            ChannelStatus::PendingUser,
            Some("WAIT_BUYER_PAY"),
        ),
        (
            fixture!("query_trade_closed.json"),
            ChannelStatus::Closed,
            Some("TRADE_CLOSED"),
        ),
    ] {
        let order = wire::query_outcome(&reply(AlipayMethod::Query, raw), OUT_TRADE_NO).unwrap();
        assert_eq!(order.status, status);
        assert_eq!(order.wallet_code.as_deref(), code);
        assert_eq!(order.amount, Some(cny(8888)));
    }
    let finished =
        fixture!("query_wait_buyer_pay.json").replace("WAIT_BUYER_PAY", "TRADE_FINISHED");
    let order = wire::query_outcome(&reply(AlipayMethod::Query, &finished), OUT_TRADE_NO).unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    let odd = fixture!("query_wait_buyer_pay.json").replace("WAIT_BUYER_PAY", "TRADE_PENDING_NEW");
    let order = wire::query_outcome(&reply(AlipayMethod::Query, &odd), OUT_TRADE_NO).unwrap();
    assert_eq!(order.status, ChannelStatus::Unknown);
    assert_eq!(order.wallet_code.as_deref(), Some("TRADE_PENDING_NEW"));
}

#[test]
fn query_of_a_paid_cross_border_trade_reads_both_currencies() {
    let reply = reply(
        AlipayMethod::Query,
        fixture!("query_trade_success_cross_border.json"),
    );
    let order = wire::query_outcome(&reply, "20150320010101002").unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    assert_eq!(order.amount, Some(Money::new(1234, Currency::Cad)));
    assert_eq!(order.payer_amount, Some(cny(6441)));
    assert_eq!(order.rate_e8, Some(521_960_000));
    assert_eq!(order.paid_at, Some(vector_now() + Duration::seconds(2)));
    assert_eq!(order.wallet_code, None);
}

#[test]
fn query_of_an_unscanned_qr_is_pending_with_the_wallet_code() {
    let reply = reply(AlipayMethod::Query, fixture!("query_trade_not_exist.json"));
    let order = wire::query_outcome(&reply, OUT_TRADE_NO).unwrap();
    assert_eq!(order.status, ChannelStatus::PendingUser);
    assert_eq!(order.wallet_code.as_deref(), Some("ACQ.TRADE_NOT_EXIST"));
    assert_eq!(order.channel_ref, None);
}

#[test]
fn query_system_error_is_unknown_and_bad_amounts_are_bad_responses() {
    let reply_error = reply(AlipayMethod::Query, fixture!("pay_40004_system_error.json"));
    assert_outcome_unknown(wire::query_outcome(&reply_error, OUT_TRADE_NO));
    let raw = fixture!("query_trade_closed.json").replace("88.88", "88.8");
    assert_bad_response(wire::query_outcome(
        &reply(AlipayMethod::Query, &raw),
        OUT_TRADE_NO,
    ));
    let raw = fixture!("query_trade_success_cross_border.json")
        .replace(r#""trans_currency":"CAD""#, r#""trans_currency":"XTS""#);
    assert_bad_response(wire::query_outcome(
        &reply(AlipayMethod::Query, &raw),
        "20150320010101002",
    ));
}

// ---------------------------------------------------------------------------------------------
// alipay.trade.cancel, close, precreate

#[test]
fn cancel_follows_retry_flag() {
    let again = reply(AlipayMethod::Cancel, fixture!("cancel_retry_y.json"));
    assert_eq!(
        wire::cancel_outcome(&again, OUT_TRADE_NO).unwrap(),
        ReverseOutcome::CallAgain
    );
    for raw in [
        fixture!("cancel_retry_n_close.json"),
        fixture!("cancel_retry_n_refund.json"),
    ] {
        let done = reply(AlipayMethod::Cancel, raw);
        assert_eq!(
            wire::cancel_outcome(&done, OUT_TRADE_NO).unwrap(),
            ReverseOutcome::Done
        );
    }
    let failed_retry = r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","retry_flag":"Y"}"#;
    let again = reply(AlipayMethod::Cancel, failed_retry);
    assert_eq!(
        wire::cancel_outcome(&again, OUT_TRADE_NO).unwrap(),
        ReverseOutcome::CallAgain
    );
    let frozen = r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.REASON_TRADE_BEEN_FREEZEN","retry_flag":"N"}"#;
    assert_declined(
        wire::cancel_outcome(&reply(AlipayMethod::Cancel, frozen), OUT_TRADE_NO),
        "ACQ.REASON_TRADE_BEEN_FREEZEN",
    );
}

#[test]
fn close_treats_a_missing_trade_as_nothing_to_close() {
    let ok = r#"{"code":"10000","msg":"Success","out_trade_no":"20150320010101001","trade_no":"2014072422001004670200000001"}"#;
    assert!(wire::close_outcome(&reply(AlipayMethod::Close, ok), OUT_TRADE_NO).is_ok());
    let missing = reply(AlipayMethod::Close, fixture!("query_trade_not_exist.json"));
    assert!(wire::close_outcome(&missing, OUT_TRADE_NO).is_ok());
    let status_error = reply(
        AlipayMethod::Close,
        fixture!("close_trade_status_error.json"),
    );
    assert_declined(
        wire::close_outcome(&status_error, OUT_TRADE_NO),
        "ACQ.TRADE_STATUS_ERROR",
    );
    let system = reply(AlipayMethod::Close, fixture!("pay_40004_system_error.json"));
    assert_outcome_unknown(wire::close_outcome(&system, OUT_TRADE_NO));
}

#[test]
fn precreate_returns_the_qr_code() {
    let reply_ok = reply(AlipayMethod::Precreate, fixture!("precreate_qr_code.json"));
    let qr = wire::precreate_outcome(&reply_ok, "20150320010101003").unwrap();
    assert_eq!(
        qr.code_url,
        "https://qr.alipay.com/bax03206ug0kulveltqc80a8"
    );
    assert_eq!(qr.out_trade_no, "20150320010101003");
    let without = reply(
        AlipayMethod::Precreate,
        r#"{"code":"10000","msg":"Success"}"#,
    );
    assert_bad_response(wire::precreate_outcome(&without, "20150320010101003"));
}

// ---------------------------------------------------------------------------------------------
// alipay.trade.refund and fastpay.refund.query

#[test]
fn refund_with_fund_change_y_succeeded_and_n_is_settled_by_query() {
    for (raw, expected) in [
        (
            fixture!("refund_fund_change_y.json"),
            RefundStatus::Succeeded,
        ),
        // N: this call moved no money (a retry of a refund done before, or not done at all):
        // only fastpay.refund.query can tell.
        (fixture!("refund_fund_change_n.json"), RefundStatus::Unknown),
    ] {
        let refund = wire::refund_outcome(
            &reply(AlipayMethod::Refund, raw),
            &refund_request(cny(1000)),
        )
        .unwrap();
        assert_eq!(refund.status, expected);
        assert_eq!(refund.out_refund_no, OUT_REQUEST_NO);
        assert_eq!(
            refund.channel_ref.as_deref(),
            Some("2014072422001004670200000001")
        );
    }
    let silent = r#"{"code":"10000","msg":"Success","out_trade_no":"20150320010101001"}"#;
    let refund = wire::refund_outcome(
        &reply(AlipayMethod::Refund, silent),
        &refund_request(cny(1000)),
    )
    .unwrap();
    assert_eq!(refund.status, RefundStatus::Unknown);
}

#[test]
fn a_refunds_cny_is_send_back_fee_for_a_yuan_refund_and_unknown_otherwise() {
    let done = reply(AlipayMethod::Refund, fixture!("refund_fund_change_y.json"));
    let refund = wire::refund_outcome(&done, &refund_request(cny(1000))).unwrap();
    assert_eq!(refund.cny_amount, Some(cny(1000)));
    // Priced in CAD: Alipay does not say which currency send_back_fee is in.
    let cad =
        wire::refund_outcome(&done, &refund_request(Money::new(1000, Currency::Cad))).unwrap();
    assert_eq!(cad.cny_amount, None);
    // The refund query: send_back_fee when given, else the yuan refund amount.
    let present = reply(
        AlipayMethod::RefundQuery,
        fixture!("refund_query_present.json"),
    );
    let queried =
        wire::refund_query_outcome(&present, OUT_TRADE_NO, OUT_REQUEST_NO, Some(Currency::Cny))
            .unwrap();
    assert_eq!(queried.cny_amount, Some(cny(1000)));
    let with_send_back = fixture!("refund_query_present.json")
        .replace(r#""code""#, r#""send_back_fee":"9.50","code""#);
    let queried = wire::refund_query_outcome(
        &reply(AlipayMethod::RefundQuery, &with_send_back),
        OUT_TRADE_NO,
        OUT_REQUEST_NO,
        Some(Currency::Cny),
    )
    .unwrap();
    assert_eq!(queried.cny_amount, Some(cny(950)));
    let unknown_currency =
        wire::refund_query_outcome(&present, OUT_TRADE_NO, OUT_REQUEST_NO, None).unwrap();
    assert_eq!(unknown_currency.cny_amount, None);
}

#[test]
fn refund_refusals_are_declined() {
    for (raw, code) in [
        (
            fixture!("refund_discordant_repeat.json"),
            "ACQ.DISCORDANT_REPEAT_REQUEST",
        ),
        (
            fixture!("refund_fee_error.json"),
            "ACQ.REASON_TRADE_REFUND_FEE_ERR",
        ),
    ] {
        assert_declined(
            wire::refund_outcome(
                &reply(AlipayMethod::Refund, raw),
                &refund_request(cny(1000)),
            ),
            code,
        );
    }
    let system = reply(
        AlipayMethod::Refund,
        fixture!("pay_40004_system_error.json"),
    );
    assert_outcome_unknown(wire::refund_outcome(&system, &refund_request(cny(1000))));
}

#[test]
fn refund_query_with_our_refund_succeeded() {
    let present = reply(
        AlipayMethod::RefundQuery,
        fixture!("refund_query_present.json"),
    );
    let refund =
        wire::refund_query_outcome(&present, OUT_TRADE_NO, OUT_REQUEST_NO, Some(Currency::Cny))
            .unwrap();
    assert_eq!(refund.status, RefundStatus::Succeeded);
    assert_eq!(refund.amount, Some(cny(1000)));
    // On a cross-border account a reply without a currency leaves the amount unknown.
    let refund = wire::refund_query_outcome(&present, OUT_TRADE_NO, OUT_REQUEST_NO, None).unwrap();
    assert_eq!(refund.status, RefundStatus::Succeeded);
    assert_eq!(refund.amount, None);
    let raw = fixture!("refund_query_present.json")
        .replace(r#""code""#, r#""refund_status":"REFUND_SUCCESS","code""#);
    let refund = wire::refund_query_outcome(
        &reply(AlipayMethod::RefundQuery, &raw),
        OUT_TRADE_NO,
        OUT_REQUEST_NO,
        None,
    )
    .unwrap();
    assert_eq!(refund.status, RefundStatus::Succeeded);
}

#[test]
fn refund_query_without_data_means_not_refunded() {
    let empty = reply(
        AlipayMethod::RefundQuery,
        fixture!("refund_query_empty.json"),
    );
    let refund =
        wire::refund_query_outcome(&empty, OUT_TRADE_NO, OUT_REQUEST_NO, Some(Currency::Cny))
            .unwrap();
    assert_eq!(refund.status, RefundStatus::NotFound);
    assert_eq!(
        refund.wallet_message.as_deref(),
        Some(REFUND_NOT_FOUND_NOTE)
    );
    assert_eq!(refund.amount, None);
}

#[test]
fn refund_query_about_another_refund_is_a_bad_response() {
    let other = reply(
        AlipayMethod::RefundQuery,
        fixture!("refund_query_present.json"),
    );
    assert_bad_response(wire::refund_query_outcome(
        &other,
        OUT_TRADE_NO,
        "R-OTHER",
        Some(Currency::Cny),
    ));
}

// ---------------------------------------------------------------------------------------------
// Notifications

const NOTIFY_FORM: &str = fixture!("notify_trade_success.form");

#[test]
fn a_signed_payment_notification_is_paid_and_acknowledged() {
    let body = signed_notification(NOTIFY_FORM);
    let event = connector()
        .verify_callback(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(event.ack_body, "success");
    assert_eq!(event.ack_content_type, "text/plain");
    let order = event.order;
    assert_eq!(order.status, ChannelStatus::Paid);
    assert_eq!(order.out_trade_no, OUT_TRADE_NO);
    assert_eq!(
        order.channel_ref.as_deref(),
        Some("2014072422001004670200000001")
    );
    assert_eq!(order.amount, Some(cny(8888)));
    assert_eq!(order.paid_at, Some(vector_now() + Duration::seconds(2)));
}

#[test]
fn a_closed_notification_and_a_cross_border_one_are_read_in_their_currency() {
    let closed = NOTIFY_FORM.replace("trade_status=TRADE_SUCCESS", "trade_status=TRADE_CLOSED");
    let event = connector()
        .verify_callback(None, signed_notification(&closed).as_bytes())
        .unwrap();
    assert_eq!(event.order.status, ChannelStatus::Closed);
    let cross = NOTIFY_FORM.replace(
        "total_amount=88.88",
        "total_amount=12.34&trans_currency=CAD",
    );
    let event = connector()
        .verify_callback(None, signed_notification(&cross).as_bytes())
        .unwrap();
    assert_eq!(event.order.amount, Some(Money::new(1234, Currency::Cad)));
}

#[test]
fn a_tampered_or_unsigned_notification_is_a_bad_signature() {
    let body = signed_notification(NOTIFY_FORM);
    let tampered = body.replace("total_amount=88.88", "total_amount=0.01");
    assert_ne!(body, tampered);
    let connector = connector();
    assert!(matches!(
        connector.verify_callback(None, tampered.as_bytes()),
        Err(CallbackError::BadSignature)
    ));
    assert!(matches!(
        connector.verify_callback(None, NOTIFY_FORM.as_bytes()),
        Err(CallbackError::BadSignature)
    ));
    let legacy = body.replace("sign_type=RSA2", "sign_type=RSA");
    assert!(matches!(
        connector.verify_callback(None, legacy.as_bytes()),
        Err(CallbackError::BadSignature)
    ));
}

#[test]
fn a_signature_whose_plus_signs_arrived_as_spaces_still_verifies() {
    let body = signed_notification(NOTIFY_FORM);
    let (form, sign) = body.rsplit_once("&sign=").unwrap();
    let decoded: String = url::form_urlencoded::parse(format!("s={sign}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    assert!(
        decoded.contains('+'),
        "the pinned key's signature should contain a plus sign"
    );
    let raw_plus = format!(
        "{form}&sign={}",
        decoded.replace('/', "%2F").replace('=', "%3D")
    );
    assert!(connector()
        .verify_callback(None, raw_plus.as_bytes())
        .is_ok());
}

#[test]
fn notifications_for_another_app_or_seller_or_with_repeated_fields_are_malformed() {
    let connector = connector();
    let other_app = NOTIFY_FORM.replace("app_id=2014072300007148", "app_id=2099000000000000");
    let result = connector.verify_callback(None, signed_notification(&other_app).as_bytes());
    assert!(
        matches!(result, Err(CallbackError::Malformed(_))),
        "{result:?}"
    );
    let other_seller =
        NOTIFY_FORM.replace("seller_id=2088102146225131", "seller_id=2088000000000000");
    let result = connector.verify_callback(None, signed_notification(&other_seller).as_bytes());
    assert!(
        matches!(result, Err(CallbackError::Malformed(_))),
        "{result:?}"
    );
    let repeated = format!("{}&total_amount=0.01", signed_notification(NOTIFY_FORM));
    assert!(matches!(
        connector.verify_callback(None, repeated.as_bytes()),
        Err(CallbackError::Malformed(_))
    ));
    assert!(matches!(
        connector.verify_callback(Some("application/json"), b"{}"),
        Err(CallbackError::Malformed(_))
    ));
    assert!(matches!(
        connector.verify_callback(None, b""),
        Err(CallbackError::Malformed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Constructor and the async methods

#[test]
fn unusable_keys_and_settings_are_credential_errors() {
    let mut bad_private = config(false);
    bad_private.app_private_key_pem =
        SecretString::from("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----");
    let mut bad_public = config(false);
    bad_public.alipay_public_key_pem = "not a key".into();
    let mut swapped = config(false);
    swapped.alipay_public_key_pem = APP_PRIVATE_KEY_PKCS8.into();
    let mut bad_url = config(false);
    bad_url.gateway_url = "openapi.alipay.com/gateway.do".into();
    let mut no_app = config(false);
    no_app.app_id = " ".into();
    for config in [bad_private, bad_public, swapped, bad_url, no_app] {
        let result = AlipayConnector::new(config);
        assert!(
            matches!(result, Err(ConnectorError::Credentials(_))),
            "{result:?}"
        );
    }
}

#[test]
fn capabilities_follow_the_account_kind() {
    let domestic = connector();
    assert_eq!(domestic.wallet(), qrgate_connector_api::Wallet::Alipay);
    assert_eq!(domestic.capabilities().currencies, [Currency::Cny]);
    let mut with_pkcs1 = config(true);
    with_pkcs1.app_private_key_pem = SecretString::from(APP_PRIVATE_KEY_PKCS1);
    let cross = AlipayConnector::new(with_pkcs1).unwrap();
    assert_eq!(cross.capabilities().currencies, Currency::ALL);
    assert!(!format!("{cross:?}").contains("PRIVATE"));
}

/// A one-shot HTTP server on the loopback interface that checks the request like Alipay would
/// and answers with `answer(params)`. Returns the gateway URL.
fn fake_gateway(
    answer: fn(&[(String, String)]) -> Vec<u8>,
) -> (String, std::thread::JoinHandle<Vec<(String, String)>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/gateway.do", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_end, content_length) = loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed before the request was complete");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..pos]).to_ascii_lowercase();
                assert!(
                    head.contains("content-type: application/x-www-form-urlencoded;charset=utf-8"),
                    "{head}"
                );
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map(|v| v.trim().parse::<usize>().unwrap())
                    .unwrap();
                break (pos + 4, length);
            }
        };
        while buffer.len() < head_end + content_length {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0);
            buffer.extend_from_slice(&chunk[..n]);
        }
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(&buffer[head_end..head_end + content_length])
                .into_owned()
                .collect();
        let body = answer(&params);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        params
    });
    (url, handle)
}

/// Checks the request signature with the app public key, as Alipay's gateway does.
pub(super) fn assert_signed_by_app(params: &[(String, String)]) {
    let sign = params
        .iter()
        .find(|(k, _)| k == "sign")
        .map(|(_, v)| v.as_str())
        .unwrap();
    let content = sign::request_sign_content(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert!(AlipayVerifier::from_text(APP_PUBLIC_KEY)
        .unwrap()
        .verify(content.as_bytes(), sign));
}

#[tokio::test]
async fn pay_with_code_signs_posts_and_verifies_through_the_shared_client() {
    let (url, server) = fake_gateway(|params| {
        assert_signed_by_app(params);
        signed_body("alipay_trade_pay_response", fixture!("pay_10000.json"))
    });
    let mut config = config(false);
    config.gateway_url = url;
    let connector = AlipayConnector::new(config).unwrap();
    let order = connector
        .pay_with_code(&code_payment(cny(8888)))
        .await
        .unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    let params = server.join().unwrap();
    let method = params
        .iter()
        .find(|(k, _)| k == "method")
        .map(|(_, v)| v.as_str());
    assert_eq!(method, Some("alipay.trade.pay"));
}

#[tokio::test]
async fn reverse_order_goes_through_alipay_trade_cancel() {
    let (url, server) = fake_gateway(|params| {
        assert_signed_by_app(params);
        signed_body(
            "alipay_trade_cancel_response",
            fixture!("cancel_retry_y.json"),
        )
    });
    let mut config = config(false);
    config.gateway_url = url;
    let connector = AlipayConnector::new(config).unwrap();
    assert_eq!(
        connector.reverse_order(&order_ref()).await.unwrap(),
        ReverseOutcome::CallAgain
    );
    let params = server.join().unwrap();
    assert!(params
        .iter()
        .any(|(k, v)| k == "method" && v == "alipay.trade.cancel"));
}

fn order_ref() -> qrgate_connector_api::OrderRef {
    qrgate_connector_api::OrderRef {
        out_trade_no: OUT_TRADE_NO.into(),
        created_at: vector_now(),
        channel_ref: None,
    }
}
