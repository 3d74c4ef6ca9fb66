//! Tests of the WeChat Pay v2 wire format and signatures, without the network: the
//! `wallets.md` §7 vectors byte for byte, request bodies field by field, fixtures of every
//! answer shape mapped onto our outcomes, forged and hostile input refused. Loopback tests at
//! the end check that the async methods send what `wire.rs` builds to the right path.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone, Utc};
use qrgate_connector_api::{
    CallbackError, ChannelStatus, CodePaymentRequest, Connector, ConnectorError, HttpClientConfig,
    HttpResponse, QrOrderRequest, RefundRequest, RefundStatus, ReverseOutcome, Wallet, WalletRate,
};
use qrgate_domain::{Currency, Money};
use secrecy::SecretString;

use super::sign::{self, WechatPaySignType};
use super::wire::{self, WechatPayMerchant, WechatPayOperation, WechatPayReply, WechatPayXmlError};
use super::{WechatPayConfig, WechatPayConnector};

const API_KEY: &str = "192006250b4c09247ec02edce69f6a2d";
const APPID: &str = "wxd930ea5d5a258f4f";
const MCH_ID: &str = "10000100";
const NONCE: &str = "ibuaiVcKdpRxkhJA";
const OUT_TRADE_NO: &str = "1217752501201407033233368018";
const AUTH_CODE: &str = "120061098828009406";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name, ".xml")).as_slice()
    };
}

pub(super) fn api_key() -> SecretString {
    SecretString::from(API_KEY)
}

fn merchant(sign_type: WechatPaySignType) -> WechatPayMerchant<'static> {
    WechatPayMerchant {
        appid: APPID,
        mch_id: MCH_ID,
        sub_mch_id: None,
        sign_type,
    }
}

fn md5_merchant() -> WechatPayMerchant<'static> {
    merchant(WechatPaySignType::Md5)
}

fn http(status: u16, body: &[u8]) -> HttpResponse {
    HttpResponse {
        status,
        content_type: Some("text/xml".into()),
        body: body.to_vec(),
    }
}

fn open(operation: WechatPayOperation, body: &[u8]) -> Result<WechatPayReply, ConnectorError> {
    wire::open_response(operation, &http(200, body), &md5_merchant(), &api_key())
}

fn open_ok(operation: WechatPayOperation, body: &[u8]) -> WechatPayReply {
    match open(operation, body) {
        Ok(reply) => reply,
        Err(e) => panic!("answer should open: {e}"),
    }
}

/// A signed answer with `return_code=SUCCESS`, our merchant ids, and the given fields.
fn signed_answer(extra: &[(&'static str, &str)], sign_type: WechatPaySignType) -> Vec<u8> {
    let mut fields: BTreeMap<&'static str, String> = BTreeMap::new();
    for (name, value) in [
        ("return_code", "SUCCESS"),
        ("return_msg", "OK"),
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", NONCE),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        fields.insert(name, value.to_owned());
    }
    let signature = sign::sign_fields(
        fields.iter().map(|(k, v)| (*k, v.as_str())),
        &api_key(),
        sign_type,
    )
    .unwrap();
    fields.insert("sign", signature);
    wire::write_xml(&fields).into_bytes()
}

fn failed_answer(err_code: &str) -> Vec<u8> {
    signed_answer(
        &[
            ("result_code", "FAIL"),
            ("err_code", err_code),
            ("err_code_des", "描述"),
        ],
        WechatPaySignType::Md5,
    )
}

fn field_names(xml: &str) -> BTreeSet<String> {
    wire::parse_xml(xml.as_bytes())
        .unwrap()
        .into_keys()
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn code_payment(amount: Money) -> CodePaymentRequest {
    CodePaymentRequest {
        out_trade_no: OUT_TRADE_NO.into(),
        amount,
        auth_code: AUTH_CODE.into(),
        subject: "test".into(),
        terminal_id: None,
        client_ip: "8.8.8.8".into(),
        created_at: chrono::Utc::now(),
    }
}

fn assert_declined(result: Result<impl std::fmt::Debug, ConnectorError>, expected_code: &str) {
    match result {
        Err(ConnectorError::Declined { code, .. }) => assert_eq!(code, expected_code),
        other => panic!("expected Declined({expected_code}), got {other:?}"),
    }
}

fn assert_rejected(result: Result<impl std::fmt::Debug, ConnectorError>, expected_code: &str) {
    match result {
        Err(ConnectorError::Rejected { code, .. }) => assert_eq!(code, expected_code),
        other => panic!("expected Rejected({expected_code}), got {other:?}"),
    }
}

fn assert_bad_response(result: Result<impl std::fmt::Debug, ConnectorError>) {
    assert!(
        matches!(result, Err(ConnectorError::BadResponse(_))),
        "expected BadResponse, got {result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// §7 vectors

fn official_example_fields() -> BTreeMap<&'static str, String> {
    [
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("device_info", "1000"),
        ("body", "test"),
        ("nonce_str", NONCE),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

#[test]
fn vector_1_md5_of_the_official_example() {
    let fields = official_example_fields();
    let string_a = sign::string_to_sign(fields.iter().map(|(k, v)| (*k, v.as_str())));
    assert_eq!(string_a, "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA");
    let signature = sign::sign_string(&string_a, &api_key(), WechatPaySignType::Md5).unwrap();
    assert_eq!(signature, "9A0A8659F005D6984697E2CA0A9CF3B7");
}

#[test]
fn vector_2_hmac_sha256_of_the_official_example() {
    let fields = official_example_fields();
    let signature = sign::sign_fields(
        fields.iter().map(|(k, v)| (*k, v.as_str())),
        &api_key(),
        WechatPaySignType::HmacSha256,
    )
    .unwrap();
    assert_eq!(
        signature,
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    );
}

#[test]
fn vector_3_userpaying_answer_with_utf8_description_verifies() {
    let fields: BTreeMap<&str, &str> = [
        ("return_code", "SUCCESS"),
        ("return_msg", "OK"),
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", NONCE),
        ("result_code", "FAIL"),
        ("err_code", "USERPAYING"),
        ("err_code_des", "需要用户输入支付密码"),
    ]
    .into_iter()
    .collect();
    let signature = sign::sign_fields(
        fields.iter().map(|(k, v)| (*k, *v)),
        &api_key(),
        WechatPaySignType::Md5,
    )
    .unwrap();
    assert_eq!(signature, "8CA1E89952CDCC9BEA5B8663203C15C2");
    // The fixture carries exactly these fields and this signature.
    let parsed = wire::parse_xml(fixture!("micropay_userpaying")).unwrap();
    assert_eq!(
        wire::field(&parsed, "sign"),
        Some("8CA1E89952CDCC9BEA5B8663203C15C2")
    );
    assert!(sign::verify_fields(
        parsed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        "8CA1E89952CDCC9BEA5B8663203C15C2",
        &api_key(),
        WechatPaySignType::Md5
    ));
}

#[test]
fn vector_4_micropay_request_signed_with_hmac_includes_sign_type() {
    let fields: BTreeMap<&str, &str> = [
        ("appid", APPID),
        ("auth_code", AUTH_CODE),
        ("body", "test"),
        ("mch_id", MCH_ID),
        ("nonce_str", NONCE),
        ("out_trade_no", OUT_TRADE_NO),
        ("sign_type", "HMAC-SHA256"),
        ("spbill_create_ip", "8.8.8.8"),
        ("total_fee", "888"),
    ]
    .into_iter()
    .collect();
    let signature = sign::sign_fields(
        fields.iter().map(|(k, v)| (*k, *v)),
        &api_key(),
        WechatPaySignType::HmacSha256,
    )
    .unwrap();
    assert_eq!(
        signature,
        "EBD51954FF5A654AC3E5E3830BC519AAC37B920E5AEAF65BF1F2B9C071505BDF"
    );

    // The builder produces the vector's fields plus the explicit `fee_type`.
    let request = wire::build_micropay(
        &merchant(WechatPaySignType::HmacSha256),
        &code_payment(Money::new(888, Currency::Cny)),
        NONCE,
    )
    .unwrap();
    let mut expected: BTreeMap<&str, String> =
        fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    expected.insert("fee_type", "CNY".into());
    assert_eq!(request.fields, expected);
}

#[test]
fn vector_5_refund_notification_key_is_lower_hex_md5_of_the_api_key() {
    assert_eq!(
        sign::refund_notify_key(&api_key()).as_str(),
        "d96eb16afdd491fa1e705096edbc2205"
    );
}

// ---------------------------------------------------------------------------------------------
// Signing rules

#[test]
fn string_to_sign_drops_empty_values_and_sign_and_sorts_by_bytes() {
    let fields: BTreeMap<&str, &str> = [
        ("b", "2"),
        ("a", "1"),
        ("Z", "upper first"),
        ("empty", ""),
        ("sign", "XYZ"),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        sign::string_to_sign(fields.iter().map(|(k, v)| (*k, *v))),
        "Z=upper first&a=1&b=2"
    );
}

#[test]
fn verification_is_case_sensitive_and_fails_on_any_change() {
    let fields = official_example_fields();
    let pairs = || fields.iter().map(|(k, v)| (*k, v.as_str()));
    assert!(sign::verify_fields(
        pairs(),
        "9A0A8659F005D6984697E2CA0A9CF3B7",
        &api_key(),
        WechatPaySignType::Md5
    ));
    assert!(!sign::verify_fields(
        pairs(),
        "9a0a8659f005d6984697e2ca0a9cf3b7",
        &api_key(),
        WechatPaySignType::Md5
    ));
    assert!(!sign::verify_fields(
        pairs(),
        "9A0A8659F005D6984697E2CA0A9CF3B",
        &api_key(),
        WechatPaySignType::Md5
    ));
    let other_key = SecretString::from("00000000000000000000000000000000");
    assert!(!sign::verify_fields(
        pairs(),
        "9A0A8659F005D6984697E2CA0A9CF3B7",
        &other_key,
        WechatPaySignType::Md5
    ));
}

#[test]
fn sign_type_names_round_trip() {
    for sign_type in [WechatPaySignType::Md5, WechatPaySignType::HmacSha256] {
        assert_eq!(
            WechatPaySignType::from_wire_name(sign_type.wire_name()),
            Some(sign_type)
        );
        assert_ne!(sign_type.other(), sign_type);
    }
    assert_eq!(WechatPaySignType::from_wire_name("md5"), None);
}

fn encrypt_req_info(plaintext: &str, key: &str) -> String {
    use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyInit};
    use base64::Engine as _;
    let aes_key = sign::refund_notify_key(&SecretString::from(key));
    let encryptor = ecb::Encryptor::<aes::Aes256>::new_from_slice(aes_key.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD
        .encode(encryptor.encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes()))
}

const REFUND_INNER_XML: &str = "<root><out_refund_no><![CDATA[R20240520000001]]></out_refund_no>\
    <out_trade_no><![CDATA[1217752501201407033233368018]]></out_trade_no>\
    <refund_status><![CDATA[SUCCESS]]></refund_status></root>";

#[test]
fn req_info_decrypts_under_the_md5_key_only() {
    let ciphertext = encrypt_req_info(REFUND_INNER_XML, API_KEY);
    assert_eq!(
        sign::decrypt_req_info(&ciphertext, &api_key()).unwrap(),
        REFUND_INNER_XML
    );
    let wrong = SecretString::from("ffffffffffffffffffffffffffffffff");
    assert!(sign::decrypt_req_info(&ciphertext, &wrong).is_err());
    assert_eq!(
        sign::decrypt_req_info("not base64!", &api_key()),
        Err(sign::WechatPayReqInfoError::NotBase64)
    );
    assert_eq!(
        sign::decrypt_req_info("", &api_key()),
        Err(sign::WechatPayReqInfoError::Undecryptable)
    );
}

// ---------------------------------------------------------------------------------------------
// Requests

#[test]
fn micropay_body_has_exactly_the_documented_fields_and_a_valid_signature() {
    let mut req = code_payment(Money::new(1234, Currency::Cad));
    req.terminal_id = Some("T001".into());
    let xml = wire::build_micropay(&md5_merchant(), &req, NONCE)
        .unwrap()
        .into_signed_xml(&api_key())
        .unwrap();
    assert_eq!(
        field_names(&xml),
        names(&[
            "appid",
            "mch_id",
            "device_info",
            "nonce_str",
            "sign",
            "body",
            "out_trade_no",
            "total_fee",
            "fee_type",
            "spbill_create_ip",
            "auth_code"
        ])
    );
    let fields = wire::parse_xml(xml.as_bytes()).unwrap();
    assert_eq!(wire::field(&fields, "total_fee"), Some("1234"));
    assert_eq!(wire::field(&fields, "fee_type"), Some("CAD"));
    assert_eq!(wire::field(&fields, "auth_code"), Some(AUTH_CODE));
    let received_sign = wire::field(&fields, "sign").unwrap();
    assert!(sign::verify_fields(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        received_sign,
        &api_key(),
        WechatPaySignType::Md5
    ));
}

#[test]
fn order_number_requests_carry_the_merchant_ids_and_the_order_number_only() {
    let builders: [fn(&WechatPayMerchant<'_>, &str, &str) -> wire::WechatPayRequest; 3] = [
        wire::build_orderquery,
        wire::build_reverse,
        wire::build_closeorder,
    ];
    for build in builders {
        let xml = build(&md5_merchant(), OUT_TRADE_NO, NONCE)
            .into_signed_xml(&api_key())
            .unwrap();
        assert_eq!(
            field_names(&xml),
            names(&["appid", "mch_id", "nonce_str", "out_trade_no", "sign"])
        );
    }
}

fn rate_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 5, 20).unwrap()
}

#[test]
fn queryexchagerate_body_has_the_currency_and_the_day_as_yyyymmdd() {
    let xml = wire::build_queryexchagerate(&md5_merchant(), Currency::Cad, rate_date(), NONCE)
        .into_signed_xml(&api_key())
        .unwrap();
    assert_eq!(
        field_names(&xml),
        names(&["appid", "mch_id", "nonce_str", "fee_type", "date", "sign"])
    );
    let fields = wire::parse_xml(xml.as_bytes()).unwrap();
    assert_eq!(wire::field(&fields, "fee_type"), Some("CAD"));
    assert_eq!(wire::field(&fields, "date"), Some("20240520"));
    assert!(sign::verify_fields(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        wire::field(&fields, "sign").unwrap(),
        &api_key(),
        WechatPaySignType::Md5
    ));

    let institution = WechatPayMerchant {
        sub_mch_id: Some("1900000109"),
        ..merchant(WechatPaySignType::HmacSha256)
    };
    let xml = wire::build_queryexchagerate(&institution, Currency::Usd, rate_date(), NONCE)
        .into_signed_xml(&api_key())
        .unwrap();
    assert_eq!(
        field_names(&xml),
        names(&[
            "appid",
            "mch_id",
            "sub_mch_id",
            "nonce_str",
            "fee_type",
            "date",
            "sign",
            "sign_type"
        ])
    );
}

#[test]
fn institution_mode_and_hmac_add_sub_mch_id_and_sign_type() {
    let merchant = WechatPayMerchant {
        sub_mch_id: Some("1900000109"),
        ..merchant(WechatPaySignType::HmacSha256)
    };
    let xml = wire::build_orderquery(&merchant, OUT_TRADE_NO, NONCE)
        .into_signed_xml(&api_key())
        .unwrap();
    assert_eq!(
        field_names(&xml),
        names(&[
            "appid",
            "mch_id",
            "sub_mch_id",
            "nonce_str",
            "out_trade_no",
            "sign",
            "sign_type"
        ])
    );
    let fields = wire::parse_xml(xml.as_bytes()).unwrap();
    assert_eq!(wire::field(&fields, "sign_type"), Some("HMAC-SHA256"));
    assert_eq!(wire::field(&fields, "sign").map(str::len), Some(64));
}

#[test]
fn native_order_body_has_product_id_notify_url_and_beijing_expiry() {
    let req = QrOrderRequest {
        out_trade_no: OUT_TRADE_NO.into(),
        amount: Money::new(500, Currency::Usd),
        subject: "Coffee".into(),
        notify_url: "https://gw.example/callbacks/wechatpay".into(),
        expires_at: Utc.with_ymd_and_hms(2024, 5, 20, 2, 30, 0).unwrap(),
        terminal_id: None,
        client_ip: "10.0.0.1".into(),
        created_at: chrono::Utc::now(),
    };
    let xml = wire::build_unifiedorder(&md5_merchant(), &req, NONCE)
        .unwrap()
        .into_signed_xml(&api_key())
        .unwrap();
    assert_eq!(
        field_names(&xml),
        names(&[
            "appid",
            "mch_id",
            "nonce_str",
            "sign",
            "body",
            "out_trade_no",
            "total_fee",
            "fee_type",
            "spbill_create_ip",
            "notify_url",
            "trade_type",
            "product_id",
            "time_expire"
        ])
    );
    let fields = wire::parse_xml(xml.as_bytes()).unwrap();
    assert_eq!(wire::field(&fields, "trade_type"), Some("NATIVE"));
    assert_eq!(wire::field(&fields, "product_id"), Some(OUT_TRADE_NO));
    assert_eq!(wire::field(&fields, "time_expire"), Some("20240520103000"));
    assert_eq!(wire::field(&fields, "fee_type"), Some("USD"));
}

fn refund_request(order: Money, refund: Money) -> RefundRequest {
    RefundRequest {
        out_trade_no: OUT_TRADE_NO.into(),
        out_refund_no: "R20240520000001".into(),
        order_amount: order,
        refund_amount: refund,
        reason: Some("damaged".into()),
        order: order_ref(),
        created_at: chrono::Utc::now(),
    }
}

#[test]
fn refund_body_repeats_the_order_total_and_names_the_refund_currency() {
    let req = refund_request(
        Money::new(888, Currency::Cad),
        Money::new(300, Currency::Cad),
    );
    let xml = wire::build_refund(&md5_merchant(), &req, NONCE)
        .unwrap()
        .into_signed_xml(&api_key())
        .unwrap();
    assert_eq!(
        field_names(&xml),
        names(&[
            "appid",
            "mch_id",
            "nonce_str",
            "sign",
            "out_trade_no",
            "out_refund_no",
            "total_fee",
            "refund_fee",
            "refund_fee_type",
            "refund_desc"
        ])
    );
    let fields = wire::parse_xml(xml.as_bytes()).unwrap();
    assert_eq!(wire::field(&fields, "total_fee"), Some("888"));
    assert_eq!(wire::field(&fields, "refund_fee"), Some("300"));
    assert_eq!(wire::field(&fields, "refund_fee_type"), Some("CAD"));
}

#[test]
fn refunds_in_another_currency_or_above_the_order_or_of_nothing_are_not_sent() {
    let cad = |minor| Money::new(minor, Currency::Cad);
    let mismatch = refund_request(cad(888), Money::new(300, Currency::Cny));
    assert_rejected(
        wire::build_refund(&md5_merchant(), &mismatch, NONCE),
        "LOCAL_CURRENCY_MISMATCH",
    );
    assert_rejected(
        wire::build_refund(&md5_merchant(), &refund_request(cad(888), cad(889)), NONCE),
        "LOCAL_INVALID_AMOUNT",
    );
    assert_rejected(
        wire::build_refund(&md5_merchant(), &refund_request(cad(888), cad(0)), NONCE),
        "LOCAL_INVALID_AMOUNT",
    );
    assert_rejected(
        wire::build_micropay(&md5_merchant(), &code_payment(cad(-1)), NONCE),
        "LOCAL_INVALID_AMOUNT",
    );
}

#[test]
fn refundquery_asks_by_refund_number() {
    let xml = wire::build_refundquery(&md5_merchant(), "R20240520000002", NONCE)
        .into_signed_xml(&api_key())
        .unwrap();
    assert_eq!(
        field_names(&xml),
        names(&["appid", "mch_id", "nonce_str", "out_refund_no", "sign"])
    );
}

#[test]
fn free_text_survives_cdata_terminators_and_loses_control_characters() {
    let mut req = code_payment(Money::new(1, Currency::Cny));
    req.subject = "a]]>b<c>&\u{7}d 咖啡".into();
    let xml = wire::build_micropay(&md5_merchant(), &req, NONCE)
        .unwrap()
        .into_signed_xml(&api_key())
        .unwrap();
    let fields = wire::parse_xml(xml.as_bytes()).unwrap();
    assert_eq!(wire::field(&fields, "body"), Some("a]]>b<c>&d 咖啡"));
}

#[test]
fn identifiers_xml_cannot_carry_are_refused_not_altered() {
    let mut req = code_payment(Money::new(1, Currency::Cny));
    req.out_trade_no = "A\u{0}B".into();
    let request = wire::build_micropay(&md5_merchant(), &req, NONCE).unwrap();
    assert_rejected(request.into_signed_xml(&api_key()), "LOCAL_INVALID_FIELD");
}

#[test]
fn only_reverse_and_refund_need_the_client_certificate() {
    use WechatPayOperation::*;
    for operation in [
        Micropay,
        OrderQuery,
        Reverse,
        UnifiedOrder,
        CloseOrder,
        Refund,
        RefundQuery,
        ExchangeRate,
    ] {
        assert_eq!(
            operation.needs_client_certificate(),
            matches!(operation, Reverse | Refund),
            "{operation:?}"
        );
    }
    assert_eq!(Reverse.path(), "/secapi/pay/reverse");
    assert_eq!(Refund.path(), "/secapi/pay/refund");
    assert_eq!(UnifiedOrder.path(), "/pay/unifiedorder");
    // WeChat's spelling, not ours.
    assert_eq!(ExchangeRate.path(), "/pay/queryexchagerate");
}

#[test]
fn nonces_are_32_random_alphanumerics() {
    let first = super::new_nonce();
    assert_eq!(first.len(), 32);
    assert!(first.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_ne!(first, super::new_nonce());
}

#[test]
fn beijing_time_converts_both_ways() {
    let at = Utc.with_ymd_and_hms(2024, 5, 19, 18, 5, 9).unwrap();
    assert_eq!(wire::format_beijing_time(at), "20240520020509");
    assert_eq!(wire::parse_beijing_time("20240520020509"), Some(at));
    assert_eq!(wire::parse_beijing_time("2024-05-20 02:05:09"), None);
    assert_eq!(wire::parse_beijing_time("20241340000000"), None);
}

// ---------------------------------------------------------------------------------------------
// Micropay answers

#[test]
fn micropay_success_is_paid_with_cross_border_amounts() {
    let reply = open_ok(WechatPayOperation::Micropay, fixture!("micropay_success"));
    let order = wire::micropay_outcome(&reply, OUT_TRADE_NO).unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    assert_eq!(
        order.channel_ref.as_deref(),
        Some("4200001234202405200123456789")
    );
    assert_eq!(order.amount, Some(Money::new(888, Currency::Cad)));
    assert_eq!(order.payer_amount, Some(Money::new(4726, Currency::Cny)));
    assert_eq!(order.rate_e8, Some(532_200_000));
    assert_eq!(order.buyer.as_deref(), Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"));
    assert_eq!(
        order.paid_at,
        Some(Utc.with_ymd_and_hms(2024, 5, 20, 2, 30, 15).unwrap())
    );
    assert_eq!(order.wallet_code, None);
}

#[test]
fn micropay_userpaying_waits_for_the_customer() {
    let reply = open_ok(
        WechatPayOperation::Micropay,
        fixture!("micropay_userpaying"),
    );
    let order = wire::micropay_outcome(&reply, OUT_TRADE_NO).unwrap();
    assert_eq!(order.status, ChannelStatus::PendingUser);
    assert_eq!(order.wallet_code.as_deref(), Some("USERPAYING"));
    assert_eq!(
        order.wallet_message.as_deref(),
        Some("需要用户输入支付密码")
    );
}

#[test]
fn micropay_final_refusals_are_declined_with_the_wallet_code() {
    let reply = open_ok(
        WechatPayOperation::Micropay,
        fixture!("micropay_authcodeexpire"),
    );
    assert_declined(
        wire::micropay_outcome(&reply, OUT_TRADE_NO),
        "AUTHCODEEXPIRE",
    );
    let reply = open_ok(WechatPayOperation::Micropay, fixture!("micropay_notenough"));
    assert_declined(wire::micropay_outcome(&reply, OUT_TRADE_NO), "NOTENOUGH");
    for code in [
        "AUTH_CODE_ERROR",
        "NOTSUPORTCARD",
        "BUYER_MISMATCH",
        "ORDERCLOSED",
        "ORDERREVERSED",
        "TRADE_ERROR",
    ] {
        let reply = open_ok(WechatPayOperation::Micropay, &failed_answer(code));
        assert_declined(wire::micropay_outcome(&reply, OUT_TRADE_NO), code);
    }
}

#[test]
fn micropay_system_errors_and_orderpaid_need_a_query() {
    let reply = open_ok(
        WechatPayOperation::Micropay,
        fixture!("micropay_systemerror"),
    );
    let order = wire::micropay_outcome(&reply, OUT_TRADE_NO).unwrap();
    assert_eq!(order.status, ChannelStatus::Unknown);
    assert_eq!(order.wallet_code.as_deref(), Some("SYSTEMERROR"));
    for code in ["BANKERROR", "ORDERPAID", "SOMETHING_NEW"] {
        let reply = open_ok(WechatPayOperation::Micropay, &failed_answer(code));
        let order = wire::micropay_outcome(&reply, OUT_TRADE_NO).unwrap();
        assert_eq!(order.status, ChannelStatus::Unknown, "{code}");
        assert_eq!(order.wallet_code.as_deref(), Some(code));
    }
}

#[test]
fn micropay_request_errors_are_rejected() {
    for code in [
        "SIGNERROR",
        "PARAM_ERROR",
        "NOAUTH",
        "APPID_MCHID_NOT_MATCH",
    ] {
        let reply = open_ok(WechatPayOperation::Micropay, &failed_answer(code));
        assert_rejected(wire::micropay_outcome(&reply, OUT_TRADE_NO), code);
    }
}

#[test]
fn return_code_fail_is_rejected_without_a_signature() {
    let result = open(WechatPayOperation::Micropay, fixture!("return_fail"));
    match result {
        Err(ConnectorError::Rejected { code, message }) => {
            assert_eq!(code, "FAIL");
            assert_eq!(message, "签名错误");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[test]
fn http_5xx_is_an_unknown_outcome_and_4xx_a_rejection() {
    let body = fixture!("micropay_success");
    let md5 = md5_merchant();
    let key = api_key();
    let result = wire::open_response(WechatPayOperation::Micropay, &http(502, body), &md5, &key);
    assert!(
        matches!(result, Err(ConnectorError::OutcomeUnknown(_))),
        "{result:?}"
    );
    assert_rejected(
        wire::open_response(WechatPayOperation::Micropay, &http(404, body), &md5, &key),
        "HTTP_404",
    );
    assert_bad_response(wire::open_response(
        WechatPayOperation::Micropay,
        &http(302, body),
        &md5,
        &key,
    ));
}

// ---------------------------------------------------------------------------------------------
// Answers that must not be trusted

fn replace_once(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.contains(from), "fixture lacks {from}");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn a_tampered_answer_does_not_verify() {
    let tampered = replace_once(
        fixture!("micropay_success"),
        "<total_fee>888</total_fee>",
        "<total_fee>1</total_fee>",
    );
    assert_bad_response(open(WechatPayOperation::Micropay, &tampered));
    // Adding a field the signer did not see breaks the signature too: verification covers
    // every field received.
    let added = replace_once(
        fixture!("micropay_success"),
        "</xml>",
        "<coupon_fee>100</coupon_fee></xml>",
    );
    assert_bad_response(open(WechatPayOperation::Micropay, &added));
}

#[test]
fn a_successful_answer_without_sign_is_refused() {
    let body = b"<xml><return_code>SUCCESS</return_code><result_code>SUCCESS</result_code></xml>";
    assert_bad_response(open(WechatPayOperation::Micropay, body));
}

#[test]
fn an_answer_signed_for_another_sign_type_is_refused() {
    let md5_signed = fixture!("micropay_success");
    let result = wire::open_response(
        WechatPayOperation::Micropay,
        &http(200, md5_signed),
        &merchant(WechatPaySignType::HmacSha256),
        &api_key(),
    );
    assert_bad_response(result);
}

#[test]
fn an_answer_for_another_merchant_or_order_is_refused() {
    let other_merchant = signed_answer(
        &[("result_code", "SUCCESS"), ("mch_id", "999")],
        WechatPaySignType::Md5,
    );
    assert_bad_response(open(WechatPayOperation::OrderQuery, &other_merchant));
    let reply = open_ok(WechatPayOperation::Micropay, fixture!("micropay_success"));
    assert_bad_response(wire::micropay_outcome(&reply, "ANOTHER_ORDER"));
}

#[test]
fn a_paid_answer_without_transaction_id_or_with_a_bad_amount_is_refused() {
    let no_id = signed_answer(
        &[("result_code", "SUCCESS"), ("total_fee", "1")],
        WechatPaySignType::Md5,
    );
    assert_bad_response(wire::micropay_outcome(
        &open_ok(WechatPayOperation::Micropay, &no_id),
        OUT_TRADE_NO,
    ));
    let bad_amount = signed_answer(
        &[
            ("result_code", "SUCCESS"),
            ("transaction_id", "42"),
            ("total_fee", "-1"),
        ],
        WechatPaySignType::Md5,
    );
    assert_bad_response(wire::micropay_outcome(
        &open_ok(WechatPayOperation::Micropay, &bad_amount),
        OUT_TRADE_NO,
    ));
}

#[test]
fn unreadable_informative_fields_are_left_empty() {
    let body = signed_answer(
        &[
            ("result_code", "SUCCESS"),
            ("transaction_id", "42"),
            ("total_fee", "100"),
            ("cash_fee", "500"),
            ("cash_fee_type", "HKD"),
            ("rate", "5.32"),
            ("time_end", "yesterday"),
        ],
        WechatPaySignType::Md5,
    );
    let order = wire::micropay_outcome(&open_ok(WechatPayOperation::Micropay, &body), OUT_TRADE_NO)
        .unwrap();
    assert_eq!(order.amount, Some(Money::new(100, Currency::Cny)));
    assert_eq!(
        (order.payer_amount, order.rate_e8, order.paid_at),
        (None, None, None)
    );
}

// ---------------------------------------------------------------------------------------------
// Order query

#[test]
fn orderquery_trade_states_map_onto_our_statuses() {
    let cases: [(&[u8], ChannelStatus, Option<&str>); 7] = [
        (fixture!("orderquery_success"), ChannelStatus::Paid, None),
        (fixture!("orderquery_refund"), ChannelStatus::Paid, None),
        (
            fixture!("orderquery_notpay"),
            ChannelStatus::PendingUser,
            Some("NOTPAY"),
        ),
        (
            fixture!("orderquery_userpaying"),
            ChannelStatus::PendingUser,
            Some("USERPAYING"),
        ),
        (
            fixture!("orderquery_closed"),
            ChannelStatus::Closed,
            Some("CLOSED"),
        ),
        (
            fixture!("orderquery_revoked"),
            ChannelStatus::Reversed,
            Some("REVOKED"),
        ),
        (
            fixture!("orderquery_payerror"),
            ChannelStatus::Failed,
            Some("PAYERROR"),
        ),
    ];
    for (body, status, code) in cases {
        let order =
            wire::orderquery_outcome(&open_ok(WechatPayOperation::OrderQuery, body), OUT_TRADE_NO)
                .unwrap();
        assert_eq!(order.status, status, "{code:?}");
        assert_eq!(order.wallet_code.as_deref(), code);
    }
}

#[test]
fn orderquery_paid_carries_the_payment() {
    let reply = open_ok(
        WechatPayOperation::OrderQuery,
        fixture!("orderquery_success"),
    );
    let order = wire::orderquery_outcome(&reply, OUT_TRADE_NO).unwrap();
    assert_eq!(
        order.channel_ref.as_deref(),
        Some("4200001234202405200123456789")
    );
    assert_eq!(order.amount, Some(Money::new(888, Currency::Cad)));
    assert_eq!(order.payer_amount, Some(Money::new(4726, Currency::Cny)));
}

#[test]
fn orderquery_ordernotexist_is_failed_with_the_code_for_the_engine_to_judge() {
    let reply = open_ok(
        WechatPayOperation::OrderQuery,
        fixture!("orderquery_ordernotexist"),
    );
    let order = wire::orderquery_outcome(&reply, OUT_TRADE_NO).unwrap();
    assert_eq!(order.status, ChannelStatus::Failed);
    assert_eq!(order.wallet_code.as_deref(), Some("ORDERNOTEXIST"));
}

#[test]
fn orderquery_unknown_and_accept_states_and_system_errors_are_unknown() {
    for state in ["ACCEPT", "SOMETHING_NEW", ""] {
        let body = signed_answer(
            &[("result_code", "SUCCESS"), ("trade_state", state)],
            WechatPaySignType::Md5,
        );
        let order = wire::orderquery_outcome(
            &open_ok(WechatPayOperation::OrderQuery, &body),
            OUT_TRADE_NO,
        )
        .unwrap();
        assert_eq!(order.status, ChannelStatus::Unknown, "{state}");
    }
    let order = wire::orderquery_outcome(
        &open_ok(
            WechatPayOperation::OrderQuery,
            &failed_answer("SYSTEMERROR"),
        ),
        OUT_TRADE_NO,
    )
    .unwrap();
    assert_eq!(order.status, ChannelStatus::Unknown);
    assert_rejected(
        wire::orderquery_outcome(
            &open_ok(WechatPayOperation::OrderQuery, &failed_answer("SIGNERROR")),
            OUT_TRADE_NO,
        ),
        "SIGNERROR",
    );
}

#[test]
fn a_result_code_other_than_success_or_fail_is_a_bad_response() {
    let body = signed_answer(&[("result_code", "MAYBE")], WechatPaySignType::Md5);
    assert_bad_response(open(WechatPayOperation::OrderQuery, &body));
}

// ---------------------------------------------------------------------------------------------
// Reverse, unifiedorder, closeorder

#[test]
fn reverse_with_recall_or_system_error_is_called_again() {
    let reply = open_ok(WechatPayOperation::Reverse, fixture!("reverse_recall_y"));
    assert_eq!(
        wire::reverse_outcome(&reply, OUT_TRADE_NO).unwrap(),
        ReverseOutcome::CallAgain
    );
    let reply = open_ok(WechatPayOperation::Reverse, &failed_answer("SYSTEMERROR"));
    assert_eq!(
        wire::reverse_outcome(&reply, OUT_TRADE_NO).unwrap(),
        ReverseOutcome::CallAgain
    );
}

#[test]
fn reverse_success_without_recall_is_done() {
    let reply = open_ok(WechatPayOperation::Reverse, fixture!("reverse_done"));
    assert_eq!(
        wire::reverse_outcome(&reply, OUT_TRADE_NO).unwrap(),
        ReverseOutcome::Done
    );
}

#[test]
fn reverse_past_its_window_is_declined() {
    let reply = open_ok(WechatPayOperation::Reverse, fixture!("reverse_expire"));
    assert_declined(
        wire::reverse_outcome(&reply, OUT_TRADE_NO),
        "REVERSE_EXPIRE",
    );
    let reply = open_ok(WechatPayOperation::Reverse, &failed_answer("ORDERNOTEXIST"));
    assert_declined(wire::reverse_outcome(&reply, OUT_TRADE_NO), "ORDERNOTEXIST");
    let reply = open_ok(WechatPayOperation::Reverse, &failed_answer("SOMETHING_NEW"));
    assert!(matches!(
        wire::reverse_outcome(&reply, OUT_TRADE_NO),
        Err(ConnectorError::OutcomeUnknown(_))
    ));
}

#[test]
fn unifiedorder_returns_the_code_url() {
    let reply = open_ok(
        WechatPayOperation::UnifiedOrder,
        fixture!("unifiedorder_native"),
    );
    let order = wire::unifiedorder_outcome(&reply, OUT_TRADE_NO).unwrap();
    assert_eq!(order.code_url, "weixin://wxpay/bizpayurl?pr=8Zd3vQ0");
    assert_eq!(order.out_trade_no, OUT_TRADE_NO);
}

#[test]
fn unifiedorder_refusals_are_classed() {
    let outcome = |code| {
        wire::unifiedorder_outcome(
            &open_ok(WechatPayOperation::UnifiedOrder, &failed_answer(code)),
            OUT_TRADE_NO,
        )
    };
    assert!(matches!(
        outcome("ORDERPAID"),
        Err(ConnectorError::OutcomeUnknown(_))
    ));
    assert!(matches!(
        outcome("SYSTEMERROR"),
        Err(ConnectorError::OutcomeUnknown(_))
    ));
    assert_declined(outcome("OUT_TRADE_NO_USED"), "OUT_TRADE_NO_USED");
    assert_rejected(outcome("LACK_PARAMS"), "LACK_PARAMS");
    let no_url = signed_answer(
        &[("result_code", "SUCCESS"), ("trade_type", "NATIVE")],
        WechatPaySignType::Md5,
    );
    assert_bad_response(wire::unifiedorder_outcome(
        &open_ok(WechatPayOperation::UnifiedOrder, &no_url),
        OUT_TRADE_NO,
    ));
}

#[test]
fn closeorder_is_idempotent_and_reports_a_payment_as_declined() {
    let outcome =
        |body: &[u8]| wire::closeorder_outcome(&open_ok(WechatPayOperation::CloseOrder, body));
    assert!(outcome(&signed_answer(
        &[("result_code", "SUCCESS")],
        WechatPaySignType::Md5
    ))
    .is_ok());
    assert!(outcome(&failed_answer("ORDERCLOSED")).is_ok());
    assert_declined(outcome(&failed_answer("ORDERPAID")), "ORDERPAID");
    assert!(matches!(
        outcome(&failed_answer("SYSTEMERROR")),
        Err(ConnectorError::OutcomeUnknown(_))
    ));
    assert_rejected(outcome(&failed_answer("SIGNERROR")), "SIGNERROR");
}

// ---------------------------------------------------------------------------------------------
// Refunds

#[test]
fn an_accepted_refund_is_processing() {
    let reply = open_ok(WechatPayOperation::Refund, fixture!("refund_accepted"));
    let refund = wire::refund_outcome(&reply, OUT_TRADE_NO, "R20240520000001").unwrap();
    assert_eq!(refund.status, RefundStatus::Processing);
    assert_eq!(
        refund.channel_ref.as_deref(),
        Some("50000408942024052012345678901")
    );
    assert_eq!(refund.amount, Some(Money::new(300, Currency::Cad)));
    // `cash_refund_fee` in `cash_fee_type` CNY: what the customer gets back.
    assert_eq!(refund.cny_amount, Some(Money::new(1596, Currency::Cny)));
    assert_bad_response(wire::refund_outcome(&reply, OUT_TRADE_NO, "R_OTHER"));
}

#[test]
fn a_refunds_cny_comes_from_the_cash_refund_the_wallet_states() {
    let query = |extra: &[(&'static str, &str)]| {
        let mut fields = vec![
            ("result_code", "SUCCESS"),
            ("out_trade_no", OUT_TRADE_NO),
            ("refund_count", "2"),
            ("out_refund_no_0", "R1"),
            ("refund_status_0", "SUCCESS"),
            ("refund_fee_0", "300"),
            ("out_refund_no_1", "R2"),
            ("refund_status_1", "SUCCESS"),
            ("refund_fee_1", "200"),
            ("refund_fee_type", "CAD"),
            ("cash_fee_type", "CNY"),
        ];
        fields.extend_from_slice(extra);
        let reply = open_ok(
            WechatPayOperation::RefundQuery,
            &signed_answer(&fields, WechatPaySignType::Md5),
        );
        wire::refundquery_outcome(&reply, OUT_TRADE_NO, "R2")
            .unwrap()
            .cny_amount
    };
    assert_eq!(
        query(&[("cash_refund_fee_1", "1063"), ("cash_refund_fee", "2659")]),
        Some(Money::new(1063, Currency::Cny))
    );
    // The plain `cash_refund_fee` may sum both refunds: not read as this one's.
    assert_eq!(query(&[("cash_refund_fee", "2659")]), None);
    // A cash refund in another currency is no CNY figure.
    assert_eq!(
        query(&[
            ("cash_refund_fee_1", "1063"),
            ("cash_refund_fee_type_1", "HKD")
        ]),
        None
    );
    // A refund priced in CNY states its CNY itself.
    let cny_reply = open_ok(
        WechatPayOperation::Refund,
        &signed_answer(
            &[
                ("result_code", "SUCCESS"),
                ("out_trade_no", OUT_TRADE_NO),
                ("out_refund_no", "R1"),
                ("refund_fee", "500"),
            ],
            WechatPaySignType::Md5,
        ),
    );
    let refund = wire::refund_outcome(&cny_reply, OUT_TRADE_NO, "R1").unwrap();
    assert_eq!(refund.cny_amount, Some(Money::new(500, Currency::Cny)));
}

#[test]
fn a_refund_answer_that_states_success_is_succeeded() {
    let body = signed_answer(
        &[
            ("result_code", "SUCCESS"),
            ("refund_status", "SUCCESS"),
            ("refund_fee", "300"),
        ],
        WechatPaySignType::Md5,
    );
    let refund = wire::refund_outcome(
        &open_ok(WechatPayOperation::Refund, &body),
        OUT_TRADE_NO,
        "R1",
    )
    .unwrap();
    assert_eq!(refund.status, RefundStatus::Succeeded);
    assert_eq!(refund.amount, Some(Money::new(300, Currency::Cny)));
}

#[test]
fn refund_errors_are_classed() {
    let outcome = |code| {
        wire::refund_outcome(
            &open_ok(WechatPayOperation::Refund, &failed_answer(code)),
            OUT_TRADE_NO,
            "R1",
        )
    };
    for code in ["SYSTEMERROR", "BIZERR_NEED_RETRY"] {
        let refund = outcome(code).unwrap();
        assert_eq!(refund.status, RefundStatus::Unknown);
        assert_eq!(refund.wallet_code.as_deref(), Some(code));
    }
    assert_declined(outcome("NOTENOUGH"), "NOTENOUGH");
    assert_declined(outcome("REFUND_FEE_MISMATCH"), "REFUND_FEE_MISMATCH");
    assert_rejected(outcome("PARAM_ERROR"), "PARAM_ERROR");
}

#[test]
fn refundquery_reads_the_entry_of_our_refund_from_the_indexed_lists() {
    let reply = open_ok(
        WechatPayOperation::RefundQuery,
        fixture!("refundquery_list"),
    );
    let second = wire::refundquery_outcome(&reply, OUT_TRADE_NO, "R20240520000002").unwrap();
    assert_eq!(second.status, RefundStatus::Processing);
    assert_eq!(
        second.channel_ref.as_deref(),
        Some("50000408942024052012345678902")
    );
    assert_eq!(second.amount, Some(Money::new(200, Currency::Cad)));
    assert_eq!(second.wallet_code.as_deref(), Some("PROCESSING"));
    let first = wire::refundquery_outcome(&reply, OUT_TRADE_NO, "R20240520000001").unwrap();
    assert_eq!(first.status, RefundStatus::Succeeded);
    assert_eq!(first.amount, Some(Money::new(300, Currency::Cad)));
    assert_eq!(first.wallet_code, None);
    let missing = wire::refundquery_outcome(&reply, OUT_TRADE_NO, "R_UNLISTED").unwrap();
    assert_eq!(missing.status, RefundStatus::Unknown);
    assert_bad_response(wire::refundquery_outcome(
        &reply,
        "ANOTHER_ORDER",
        "R20240520000001",
    ));
}

#[test]
fn indexed_lists_ignore_nested_indexes() {
    let fields = wire::parse_xml(fixture!("refundquery_list")).unwrap();
    let entries: Vec<(u32, &str)> = wire::indexed(&fields, "coupon_refund_fee_").collect();
    assert!(entries.is_empty(), "{entries:?}");
    let refunds: Vec<u32> = wire::indexed(&fields, "refund_fee_")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(refunds, vec![0, 1]);
}

#[test]
fn refund_statuses_map_onto_ours() {
    let cases = [
        ("SUCCESS", RefundStatus::Succeeded),
        ("REFUNDCLOSE", RefundStatus::Failed),
        ("PROCESSING", RefundStatus::Processing),
        ("CHANGE", RefundStatus::Processing),
        ("SOMETHING_NEW", RefundStatus::Unknown),
    ];
    for (raw, expected) in cases {
        let body = signed_answer(
            &[
                ("result_code", "SUCCESS"),
                ("out_refund_no_0", "R1"),
                ("refund_status_0", raw),
                ("refund_fee_0", "1"),
            ],
            WechatPaySignType::Md5,
        );
        let refund = wire::refundquery_outcome(
            &open_ok(WechatPayOperation::RefundQuery, &body),
            OUT_TRADE_NO,
            "R1",
        )
        .unwrap();
        assert_eq!(refund.status, expected, "{raw}");
    }
    let not_found = wire::refundquery_outcome(
        &open_ok(
            WechatPayOperation::RefundQuery,
            &failed_answer("REFUNDNOTEXIST"),
        ),
        OUT_TRADE_NO,
        "R1",
    )
    .unwrap();
    assert_eq!(not_found.status, RefundStatus::NotFound);
    assert_eq!(not_found.wallet_code.as_deref(), Some("REFUNDNOTEXIST"));
}

// ---------------------------------------------------------------------------------------------
// Exchange rates

fn rate_outcome(body: &[u8], currency: Currency) -> Result<WalletRate, ConnectorError> {
    wire::exchange_rate_outcome(&open(WechatPayOperation::ExchangeRate, body)?, currency)
}

/// `fields` with the envelope of [`signed_answer`], signed with `key` instead of ours.
fn answer_signed_with(key: &str, extra: &[(&'static str, &str)]) -> Vec<u8> {
    let mut fields: BTreeMap<&'static str, String> = [
        ("return_code", "SUCCESS"),
        ("appid", APPID),
        ("mch_id", MCH_ID),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    let signature = sign::sign_fields(
        fields.iter().map(|(k, v)| (*k, v.as_str())),
        &SecretString::from(key),
        WechatPaySignType::Md5,
    )
    .unwrap();
    fields.insert("sign", signature);
    wire::write_xml(&fields).into_bytes()
}

#[test]
fn a_rate_answer_as_wechat_documents_it_is_the_wallets_rate() {
    // No result_code and no nonce_str: the fields WeChat's page lists.
    let rate = rate_outcome(fixture!("queryexchagerate_usd"), Currency::Usd).unwrap();
    assert_eq!(
        rate,
        WalletRate {
            currency: Currency::Usd,
            rate_e8: 711_230_000,
            rate_time: Some("2024-05-20 10:00:00".into()),
        }
    );
}

#[test]
fn a_rate_answer_with_result_code_success_is_read_the_same() {
    let body = signed_answer(
        &[
            ("result_code", "SUCCESS"),
            ("fee_type", "CAD"),
            ("rate", "520000000"),
            ("rate_time", "20240520"),
        ],
        WechatPaySignType::Md5,
    );
    let rate = rate_outcome(&body, Currency::Cad).unwrap();
    assert_eq!((rate.currency, rate.rate_e8), (Currency::Cad, 520_000_000));
    assert_eq!(rate.rate_time.as_deref(), Some("20240520"));
    // rate_time is informative: its absence leaves it empty.
    let no_time = signed_answer(
        &[("fee_type", "CAD"), ("rate", "1")],
        WechatPaySignType::Md5,
    );
    assert_eq!(
        rate_outcome(&no_time, Currency::Cad).unwrap().rate_time,
        None
    );
}

#[test]
fn a_currency_the_wallet_does_not_quote_is_an_error_never_a_rate() {
    // How the wallet (and the sandbox) refuses a fee_type it has no rate for.
    assert_rejected(
        rate_outcome(&failed_answer("PARAM_ERROR"), Currency::Usd),
        "PARAM_ERROR",
    );
    assert_rejected(rate_outcome(fixture!("return_fail"), Currency::Usd), "FAIL");
    assert_declined(
        rate_outcome(&failed_answer("NO_RATE_TODAY"), Currency::Usd),
        "NO_RATE_TODAY",
    );
    let system_error = rate_outcome(&failed_answer("SYSTEMERROR"), Currency::Usd);
    assert!(
        matches!(system_error, Err(ConnectorError::OutcomeUnknown(_))),
        "{system_error:?}"
    );
}

#[test]
fn a_missing_or_unreadable_rate_or_one_for_another_currency_is_a_bad_response() {
    for extra in [
        vec![("fee_type", "USD")],
        vec![("fee_type", "USD"), ("rate", "7.1123")],
        vec![("fee_type", "USD"), ("rate", "0")],
        vec![("fee_type", "USD"), ("rate", "-711230000")],
        vec![("fee_type", "USD"), ("rate", "99999999999999999999")],
        vec![("fee_type", "CAD"), ("rate", "711230000")],
        vec![("result_code", "MAYBE"), ("rate", "711230000")],
    ] {
        let body = signed_answer(&extra, WechatPaySignType::Md5);
        assert_bad_response(rate_outcome(&body, Currency::Usd));
    }
    // Only the rate query may answer without a result_code.
    let body = signed_answer(&[("rate", "711230000")], WechatPaySignType::Md5);
    assert_bad_response(open(WechatPayOperation::OrderQuery, &body));
}

#[test]
fn a_rate_answer_signed_with_another_key_tampered_or_unsigned_is_refused() {
    let fields = [("fee_type", "USD"), ("rate", "711230000")];
    let other_key = "0123456789abcdef0123456789abcdef";
    assert_bad_response(rate_outcome(
        &answer_signed_with(other_key, &fields),
        Currency::Usd,
    ));
    assert!(rate_outcome(&answer_signed_with(API_KEY, &fields), Currency::Usd).is_ok());
    let tampered = replace_once(
        fixture!("queryexchagerate_usd"),
        "<rate>711230000</rate>",
        "<rate>811230000</rate>",
    );
    assert_bad_response(rate_outcome(&tampered, Currency::Usd));
    let unsigned = b"<xml><return_code>SUCCESS</return_code><fee_type>USD</fee_type><rate>711230000</rate></xml>";
    assert_bad_response(rate_outcome(unsigned, Currency::Usd));
}

// ---------------------------------------------------------------------------------------------
// Notifications

pub(super) fn test_config(sign_type: WechatPaySignType) -> WechatPayConfig {
    WechatPayConfig {
        base_url: "http://127.0.0.1:9".into(),
        secapi_base_url: "http://127.0.0.1:9".into(),
        appid: APPID.into(),
        mch_id: MCH_ID.into(),
        sub_mch_id: None,
        api_key: api_key(),
        sign_type,
        http: HttpClientConfig::default(),
        secapi_http: HttpClientConfig::default(),
    }
}

fn connector(sign_type: WechatPaySignType) -> WechatPayConnector {
    WechatPayConnector::new(test_config(sign_type)).unwrap()
}

#[test]
fn a_signed_payment_notification_becomes_a_paid_event_with_the_xml_ack() {
    let event = connector(WechatPaySignType::Md5)
        .verify_callback(Some("text/xml"), fixture!("notify_paid"))
        .unwrap();
    assert_eq!(event.order.status, ChannelStatus::Paid);
    assert_eq!(event.order.out_trade_no, OUT_TRADE_NO);
    assert_eq!(
        event.order.channel_ref.as_deref(),
        Some("4200001234202405200123456789")
    );
    assert_eq!(event.order.amount, Some(Money::new(888, Currency::Cad)));
    assert_eq!(
        event.order.payer_amount,
        Some(Money::new(4726, Currency::Cny))
    );
    assert_eq!(
        event.ack_body,
        "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
    );
    assert_eq!(event.ack_content_type, "application/xml");
}

#[test]
fn a_notification_naming_its_sign_type_is_verified_with_it() {
    let event = connector(WechatPaySignType::Md5)
        .verify_callback(None, fixture!("notify_paid_hmac"))
        .unwrap();
    assert_eq!(event.order.status, ChannelStatus::Paid);
    // Naming MD5 over an HMAC signature does not pass.
    let lying = replace_once(fixture!("notify_paid_hmac"), "[HMAC-SHA256]", "[MD5]");
    assert!(matches!(
        connector(WechatPaySignType::HmacSha256).verify_callback(None, &lying),
        Err(CallbackError::BadSignature)
    ));
}

#[test]
fn a_notification_without_sign_type_is_tried_with_the_configured_type_then_the_other() {
    let event = connector(WechatPaySignType::HmacSha256)
        .verify_callback(None, fixture!("notify_paid"))
        .unwrap();
    assert_eq!(event.order.status, ChannelStatus::Paid);
}

#[test]
fn a_tampered_or_unsigned_notification_is_a_bad_signature() {
    let connector = connector(WechatPaySignType::Md5);
    let tampered = replace_once(
        fixture!("notify_paid"),
        "<total_fee>888</total_fee>",
        "<total_fee>1</total_fee>",
    );
    assert!(matches!(
        connector.verify_callback(None, &tampered),
        Err(CallbackError::BadSignature)
    ));
    let forged_sign = replace_once(
        fixture!("notify_paid"),
        "<sign><![CDATA[",
        "<sign><![CDATA[0",
    );
    assert!(matches!(
        connector.verify_callback(None, &forged_sign),
        Err(CallbackError::BadSignature)
    ));
    let text = std::str::from_utf8(fixture!("notify_paid")).unwrap();
    let start = text.find("<sign>").unwrap();
    let end = text.find("</sign>").unwrap() + "</sign>".len();
    let unsigned = format!("{}{}", &text[..start], &text[end..]);
    assert!(matches!(
        connector.verify_callback(None, unsigned.as_bytes()),
        Err(CallbackError::BadSignature)
    ));
    let other_key = WechatPayConnector::new(WechatPayConfig {
        api_key: SecretString::from("ffffffffffffffffffffffffffffffff"),
        ..test_config(WechatPaySignType::Md5)
    })
    .unwrap();
    assert!(matches!(
        other_key.verify_callback(None, fixture!("notify_paid")),
        Err(CallbackError::BadSignature)
    ));
}

#[test]
fn a_verified_notification_that_is_not_a_payment_is_malformed() {
    let failed = signed_answer(
        &[
            ("result_code", "FAIL"),
            ("err_code", "SYSTEMERROR"),
            ("out_trade_no", OUT_TRADE_NO),
        ],
        WechatPaySignType::Md5,
    );
    assert!(matches!(
        connector(WechatPaySignType::Md5).verify_callback(None, &failed),
        Err(CallbackError::Malformed(_))
    ));
    assert!(matches!(
        connector(WechatPaySignType::Md5).verify_callback(None, fixture!("return_fail")),
        Err(CallbackError::Malformed(_))
    ));
}

#[test]
fn refund_notifications_are_authenticated_by_decryption_but_not_turned_into_payment_events() {
    let connector = connector(WechatPaySignType::Md5);
    let outer = |req_info: &str| {
        format!(
            "<xml><return_code>SUCCESS</return_code><appid><![CDATA[{APPID}]]></appid><mch_id>{MCH_ID}</mch_id>\
             <nonce_str><![CDATA[{NONCE}]]></nonce_str><req_info><![CDATA[{req_info}]]></req_info></xml>"
        )
    };
    let genuine = outer(&encrypt_req_info(REFUND_INNER_XML, API_KEY));
    let notice = wire::open_notification(genuine.as_bytes(), &md5_merchant(), &api_key()).unwrap();
    assert_eq!(
        notice,
        wire::WechatPayNotification::Refund(wire::WechatPayRefundNotice {
            out_trade_no: OUT_TRADE_NO.into(),
            out_refund_no: "R20240520000001".into(),
            refund_status: "SUCCESS".into(),
        })
    );
    assert!(matches!(
        connector.verify_callback(None, genuine.as_bytes()),
        Err(CallbackError::Malformed(_))
    ));
    let forged = outer(&encrypt_req_info(
        REFUND_INNER_XML,
        "ffffffffffffffffffffffffffffffff",
    ));
    assert!(matches!(
        connector.verify_callback(None, forged.as_bytes()),
        Err(CallbackError::BadSignature)
    ));
    assert!(matches!(
        connector.verify_callback(None, outer("AAAA").as_bytes()),
        Err(CallbackError::BadSignature)
    ));
}

// ---------------------------------------------------------------------------------------------
// Hostile and malformed XML

const XXE: &str = r#"<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><return_code>&xxe;</return_code></xml>"#;

const BILLION_LAUGHS: &str = r#"<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<xml><return_code>&b;</return_code></xml>"#;

#[test]
fn a_doctype_is_refused_before_any_entity_is_seen() {
    assert_eq!(
        wire::parse_xml(XXE.as_bytes()),
        Err(WechatPayXmlError::DocType)
    );
    assert_eq!(
        wire::parse_xml(BILLION_LAUGHS.as_bytes()),
        Err(WechatPayXmlError::DocType)
    );
    assert_bad_response(open(WechatPayOperation::Micropay, XXE.as_bytes()));
    assert!(matches!(
        connector(WechatPaySignType::Md5).verify_callback(None, XXE.as_bytes()),
        Err(CallbackError::Malformed(_))
    ));
}

#[test]
fn undeclared_entities_are_errors_and_predefined_ones_are_resolved() {
    let undeclared = b"<xml><return_code>&xxe;</return_code></xml>";
    assert!(matches!(
        wire::parse_xml(undeclared),
        Err(WechatPayXmlError::Syntax(_))
    ));
    let fields =
        wire::parse_xml(b"<xml><body>a &amp; b &lt;c&gt; &#x4E2D;</body><attach/></xml>").unwrap();
    assert_eq!(wire::field(&fields, "body"), Some("a & b <c> \u{4E2D}"));
    assert_eq!(fields.get("attach").map(String::as_str), Some(""));
}

#[test]
fn values_are_kept_verbatim_and_unknown_fields_are_kept_for_verification() {
    let fields = wire::parse_xml(
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><!-- c --><xml a=\"1\">\n <x> padded </x><y>pre<![CDATA[<mid>]]>post</y></xml>\n",
    )
    .unwrap();
    assert_eq!(wire::field(&fields, "x"), Some(" padded "));
    assert_eq!(wire::field(&fields, "y"), Some("pre<mid>post"));
    let with_bom = wire::parse_xml("\u{FEFF}<xml><a>1</a></xml>".as_bytes()).unwrap();
    assert_eq!(wire::field(&with_bom, "a"), Some("1"));
}

#[test]
fn malformed_bodies_are_errors_never_panics() {
    let cases: [&[u8]; 14] = [
        b"",
        b"   ",
        b"not xml",
        b"<xml>",
        b"<xml><a>1</b></xml>",
        b"<xml><a><b>1</b></a></xml>",
        b"<root><a>1</a></root>",
        b"<xml></xml><xml></xml>",
        b"<xml><a>1</a><a>2</a></xml>",
        b"<xml>stray</xml>",
        b"<xml><a>1</a></xml>trailing",
        b"<xml><a>\xff\xfe</a></xml>",
        b"<xml><a>1</a",
        b"{\"return_code\":\"SUCCESS\"}",
    ];
    for body in cases {
        assert!(
            wire::parse_xml(body).is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert_bad_response(open(WechatPayOperation::Micropay, body));
    }
}

#[test]
fn every_truncation_of_an_answer_is_refused() {
    let body = fixture!("micropay_success");
    let text = std::str::from_utf8(body).unwrap();
    let root_end = text.find("</xml>").unwrap() + "</xml>".len();
    for cut in (0..root_end).filter(|cut| text.is_char_boundary(*cut)) {
        assert!(
            open(WechatPayOperation::Micropay, &body[..cut]).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
    // Cutting inside a multi-byte character is refused too (not UTF-8).
    let userpaying = fixture!("micropay_userpaying");
    for cut in 0..userpaying.len() {
        let _ = wire::parse_xml(&userpaying[..cut]);
    }
}

// ---------------------------------------------------------------------------------------------
// The connector

#[test]
fn the_connector_checks_its_configuration() {
    let connector = connector(WechatPaySignType::Md5);
    assert_eq!(connector.wallet(), Wallet::WechatPay);
    let capabilities = connector.capabilities();
    assert!(
        capabilities.code_payment
            && capabilities.qr_order
            && capabilities.close
            && capabilities.reverse
    );
    assert!(capabilities.refund);
    let broken = [
        WechatPayConfig {
            mch_id: String::new(),
            ..test_config(WechatPaySignType::Md5)
        },
        WechatPayConfig {
            api_key: SecretString::from(""),
            ..test_config(WechatPaySignType::Md5)
        },
        WechatPayConfig {
            base_url: "ftp://example".into(),
            ..test_config(WechatPaySignType::Md5)
        },
        WechatPayConfig {
            secapi_base_url: "not a url".into(),
            ..test_config(WechatPaySignType::Md5)
        },
        WechatPayConfig {
            sub_mch_id: Some(String::new()),
            ..test_config(WechatPaySignType::Md5)
        },
    ];
    for config in broken {
        assert!(matches!(
            WechatPayConnector::new(config),
            Err(ConnectorError::Credentials(_))
        ));
    }
}

#[test]
fn the_config_debug_output_hides_the_api_key() {
    let debug = format!("{:?}", test_config(WechatPaySignType::Md5));
    assert!(!debug.contains(API_KEY), "{debug}");
}

/// Serves `answers` in order on a loopback port, one connection each, and hands back what was
/// asked (request line and body).
pub(super) fn serve_answers(
    answers: Vec<Vec<u8>>,
) -> (String, std::thread::JoinHandle<Vec<(String, String)>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for answer in answers {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut content_length = 0usize;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        content_length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body).unwrap();
            seen.push((
                request_line.trim().to_owned(),
                String::from_utf8(body).unwrap(),
            ));
            let mut stream = reader.into_inner();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                answer.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&answer).unwrap();
        }
        seen
    });
    (base_url, handle)
}

#[tokio::test]
async fn the_async_methods_post_signed_bodies_to_the_documented_paths() {
    let answers = vec![
        fixture!("micropay_userpaying").to_vec(),
        fixture!("reverse_done").to_vec(),
    ];
    let (base_url, server) = serve_answers(answers);
    let connector = WechatPayConnector::new(WechatPayConfig {
        base_url: format!("{base_url}/"),
        secapi_base_url: base_url.clone(),
        ..test_config(WechatPaySignType::Md5)
    })
    .unwrap();

    let order = connector
        .pay_with_code(&code_payment(Money::new(888, Currency::Cad)))
        .await
        .unwrap();
    assert_eq!(order.status, ChannelStatus::PendingUser);
    assert_eq!(
        connector.reverse_order(&order_ref()).await.unwrap(),
        ReverseOutcome::Done
    );

    let seen = server.join().unwrap();
    assert_eq!(seen[0].0, "POST /pay/micropay HTTP/1.1");
    assert_eq!(seen[1].0, "POST /secapi/pay/reverse HTTP/1.1");
    for (_, body) in &seen {
        let fields = wire::parse_xml(body.as_bytes()).unwrap();
        assert_eq!(wire::field(&fields, "nonce_str").map(str::len), Some(32));
        assert!(sign::verify_fields(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            wire::field(&fields, "sign").unwrap(),
            &api_key(),
            WechatPaySignType::Md5
        ));
    }
    assert_eq!(
        wire::field(&wire::parse_xml(seen[0].1.as_bytes()).unwrap(), "auth_code"),
        Some(AUTH_CODE)
    );
}

fn order_ref() -> qrgate_connector_api::OrderRef {
    qrgate_connector_api::OrderRef {
        out_trade_no: OUT_TRADE_NO.into(),
        created_at: chrono::Utc::now(),
        channel_ref: None,
    }
}

#[tokio::test]
async fn exchange_rate_posts_to_the_misspelled_path_and_trusts_only_signed_answers() {
    let answers = vec![
        fixture!("queryexchagerate_usd").to_vec(),
        answer_signed_with(
            "0123456789abcdef0123456789abcdef",
            &[("fee_type", "USD"), ("rate", "711230000")],
        ),
    ];
    let (base_url, server) = serve_answers(answers);
    let connector = WechatPayConnector::new(WechatPayConfig {
        base_url,
        ..test_config(WechatPaySignType::Md5)
    })
    .unwrap();

    let rate = connector
        .exchange_rate(Currency::Usd, rate_date())
        .await
        .unwrap();
    assert_eq!((rate.currency, rate.rate_e8), (Currency::Usd, 711_230_000));
    assert_bad_response(connector.exchange_rate(Currency::Usd, rate_date()).await);

    let seen = server.join().unwrap();
    for (request_line, body) in &seen {
        assert_eq!(request_line, "POST /pay/queryexchagerate HTTP/1.1");
        let fields = wire::parse_xml(body.as_bytes()).unwrap();
        assert_eq!(wire::field(&fields, "fee_type"), Some("USD"));
        assert_eq!(wire::field(&fields, "date"), Some("20240520"));
        assert!(sign::verify_fields(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            wire::field(&fields, "sign").unwrap(),
            &api_key(),
            WechatPaySignType::Md5
        ));
    }
}
