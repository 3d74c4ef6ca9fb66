//! Unit tests of the UnionPay connector: `wallets.md` §7 vector 8, request signatures pinned
//! against OpenSSL, the certificate chain and signature checks against answers signed by
//! OpenSSL (`fixtures/sign_fixtures.py`), every `respCode`/`origRespCode` mapping, the exact
//! request fields, malformed bodies, notifications, and a few passes through the real
//! `Connector` methods against a loopback fake. No network beyond 127.0.0.1.

use std::sync::OnceLock;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use qrgate_connector_api::{
    CallbackError, ChannelStatus, CodePaymentRequest, Connector, ConnectorError, HttpClientConfig,
    OrderRef, QrOrderRequest, RefundRef, RefundRequest, RefundStatus, ReverseOutcome, Wallet,
};
use qrgate_domain::{Currency, Money};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use x509_cert::der::{DecodePem, Encode};

use crate::reference_rsa::{self, ReferenceSigner};

use super::sign::{
    self, UnionPaySignatureError, UnionPaySigner, UnionPaySigningPin, UnionPayTrust,
};
use super::wire::{
    self, UnionPayAnswer, UnionPayMerchant, UnionPayQueried, UnionPayRequest, UnionPayReversePlan,
    UnionPayTxn, REFUND_NOT_FOUND_NOTE,
};
use super::{UnionPayConfig, UnionPayConnector};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name))
    };
}

const ROOT_CERT: &str = fixture!("test_root_ca.pem");
const UNIONPAY_SIGN_CERT: &str = fixture!("test_unionpay_sign_cert.pem");
const UNIONPAY_SIGN_KEY: &str = fixture!("test_unionpay_sign_key.pem");
const MERCHANT_CERT: &str = fixture!("test_merchant_cert.pem");
const MERCHANT_KEY: &str = fixture!("test_merchant_key.pem");
const MERCHANT_KEY_PKCS1: &str = fixture!("test_merchant_key_pkcs1.pem");
const ROGUE_SIGN_CERT: &str = fixture!("test_rogue_sign_cert.pem");
const ROGUE_SIGN_KEY: &str = fixture!("test_rogue_sign_key.pem");

pub(super) const MER_ID: &str = "777290058110048";
/// The serial of `test_merchant_cert.pem`.
const CERT_ID: &str = "68759529225";
const BACK_URL: &str = "https://gateway.example/callbacks/unionpay";
const OUT_TRADE_NO: &str = "QG2024031512000001";
const QR_OUT_TRADE_NO: &str = "QG2024031512000002";
const OUT_REFUND_NO: &str = "QGR2024031512000001";
const QUERY_ID: &str = "782403151200000000018";
const PAYMENT_CODE: &str = "6225880137023456789";

/// `wallets.md` §7 vector 8.
const VECTOR_8: &str = "bizType=000000&encoding=utf-8&txnSubType=06&txnType=01&version=5.1.0";
const VECTOR_8_SHA256_HEX: &str =
    "45a01fa62a785e6689d2f8a25b597e3d42a00934eb53035244fd63eef5ac7ea4";
/// The hex digest above signed with `test_merchant_key.pem` by
/// `printf %s <hex> | openssl dgst -sha256 -sign test_merchant_key.pem | base64 -w0`.
const VECTOR_8_MERCHANT_SIGNATURE: &str = "as4/OZmvWh/EllBgjLld+l9Y7M4RJKT06euZL98+9HG3v/KNyvBZk+ilFvpAsWns/leB3Ubw91sq8U5OJAcLeaAYgm1haM1ZM7PMyooU3SCyJy5YReriz9FuQJ+kJi0+OzspdSOH/vyXvhoWkozcO+G3uF35mHIF6rjQ/X52XL7PUZDzkoVrhyn9netD8b6cej1XP/ouLMxv8jPUczdtYwgxbc80MiLiVtKEVucqdNvaMKh+D7tqmwYUiOi/zRQlIR+OEiED4sCXDnBSgDRCsjW5/0vhQ8d4DoELRLut45t3HjWxTKbv+Jkm+E0Prn/nwLnOOiKSp/udP/qyLyglfg==";

// ---------------------------------------------------------------------------------------------
// Helpers

/// 2024-03-15 12:00:00 in Beijing: the `txnTime` of the fixtures.
fn created_at() -> DateTime<Utc> {
    "2024-03-15T04:00:00Z".parse().unwrap()
}

/// When the fixtures' answers are checked (inside every certificate's validity).
fn now() -> DateTime<Utc> {
    created_at() + Duration::seconds(5)
}

fn merchant() -> UnionPayMerchant<'static> {
    UnionPayMerchant {
        mer_id: MER_ID,
        cert_id: CERT_ID,
        back_url: BACK_URL,
    }
}

/// The production pin: the fixtures' signing certificate carries production's owner field.
fn pin() -> UnionPaySigningPin {
    UnionPaySigningPin::new(super::UNIONPAY_SIGNING_CERT_OWNER, &[]).unwrap()
}

pub(super) fn trust() -> UnionPayTrust {
    UnionPayTrust::from_pem(ROOT_CERT, pin()).unwrap()
}

fn cad(minor: i64) -> Money {
    Money::new(minor, Currency::Cad)
}

fn cny(minor: i64) -> Money {
    Money::new(minor, Currency::Cny)
}

pub(super) fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn encode_form(fields: &[(String, String)]) -> Vec<u8> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        form.append_pair(k, v);
    }
    form.finish().into_bytes()
}

fn value<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn set(fields: &mut Vec<(String, String)>, name: &str, new_value: &str) {
    match fields.iter_mut().find(|(k, _)| k == name) {
        Some(entry) => entry.1 = new_value.to_owned(),
        None => fields.push((name.to_owned(), new_value.to_owned())),
    }
}

fn as_pairs(fields: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> + Clone {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

fn key_signature(key: &ReferenceSigner, fields: &[(String, String)]) -> String {
    let digest = sign::digest_hex(&sign::sign_content(as_pairs(fields)));
    base64::engine::general_purpose::STANDARD.encode(key.sign(digest.as_bytes()))
}

/// The test UnionPay signing key, used with `ring` directly (not through the connector's
/// code).
fn unionpay_key() -> &'static ReferenceSigner {
    static KEY: OnceLock<ReferenceSigner> = OnceLock::new();
    KEY.get_or_init(|| ReferenceSigner::from_pkcs8_pem(UNIONPAY_SIGN_KEY))
}

/// Adds `signPubKeyCert` and a `signature` made with the test UnionPay key, and form-encodes.
pub(super) fn sign_as_unionpay(mut fields: Vec<(String, String)>) -> Vec<u8> {
    fields.retain(|(k, _)| k != "signature");
    set(&mut fields, "signPubKeyCert", UNIONPAY_SIGN_CERT.trim());
    let signature = key_signature(unionpay_key(), &fields);
    fields.push(("signature".into(), signature));
    encode_form(&fields)
}

/// The fields UnionPay echoes in every answer about `order_id`, plus `extra`.
fn answer_fields(order_id: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = [
        ("version", "5.1.0"),
        ("encoding", "utf-8"),
        ("signMethod", "01"),
        ("certId", "69026276696"),
        ("bizType", "000000"),
        ("accessType", "0"),
        ("merId", MER_ID),
        ("orderId", order_id),
        ("txnTime", "20240315120000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        set(&mut fields, k, v);
    }
    fields
}

fn open(request: &UnionPayRequest, body: &[u8]) -> Result<UnionPayAnswer, ConnectorError> {
    wire::open_answer(request, 200, body, &trust(), now(), MER_ID)
}

/// A verified answer to `request` carrying `extra`.
fn answer_to(request: &UnionPayRequest, extra: &[(&str, &str)]) -> UnionPayAnswer {
    open(
        request,
        &sign_as_unionpay(answer_fields(
            request.order_id.as_deref().unwrap_or_default(),
            extra,
        )),
    )
    .unwrap()
}

fn code_payment(amount: Money) -> CodePaymentRequest {
    CodePaymentRequest {
        out_trade_no: OUT_TRADE_NO.into(),
        amount,
        auth_code: PAYMENT_CODE.into(),
        subject: "Coffee".into(),
        terminal_id: Some("T0000001".into()),
        client_ip: "127.0.0.1".into(),
        created_at: created_at(),
    }
}

fn qr_order(notify_url: &str) -> QrOrderRequest {
    QrOrderRequest {
        out_trade_no: QR_OUT_TRADE_NO.into(),
        amount: cny(2550),
        subject: "Tea".into(),
        notify_url: notify_url.into(),
        // 2024-03-15 12:15:00.9 in Beijing: rounded down to the second.
        expires_at: created_at() + Duration::milliseconds(15 * 60 * 1000 + 900),
        terminal_id: None,
        client_ip: "127.0.0.1".into(),
        created_at: created_at(),
    }
}

fn order_ref(channel_ref: Option<&str>) -> OrderRef {
    OrderRef {
        out_trade_no: OUT_TRADE_NO.into(),
        created_at: created_at(),
        channel_ref: channel_ref.map(str::to_owned),
    }
}

fn refund_request(amount: Money, channel_ref: Option<&str>) -> RefundRequest {
    RefundRequest {
        out_trade_no: OUT_TRADE_NO.into(),
        out_refund_no: OUT_REFUND_NO.into(),
        order_amount: cad(1000),
        refund_amount: amount,
        reason: Some("returned".into()),
        order: order_ref(channel_ref),
        created_at: created_at() + Duration::hours(1),
    }
}

fn consume_request() -> UnionPayRequest {
    wire::consume_request(&merchant(), &code_payment(cad(1000))).unwrap()
}

fn query_request(order_id: &str) -> UnionPayRequest {
    wire::query_request(&merchant(), order_id, created_at()).unwrap()
}

fn queried(extra: &[(&str, &str)]) -> UnionPayQueried {
    wire::parse_query(&answer_to(&query_request(OUT_TRADE_NO), extra)).unwrap()
}

fn field_names(request: &UnionPayRequest) -> Vec<&str> {
    request.fields().map(|(k, _)| k).collect()
}

fn field<'r>(request: &'r UnionPayRequest, name: &str) -> Option<&'r str> {
    request.fields().find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// One line per outcome, so mapping tables read as tables.
fn describe_error(error: &ConnectorError) -> String {
    match error {
        ConnectorError::Declined { code, .. } => format!("Declined {code}"),
        ConnectorError::Rejected { code, .. } => format!("Rejected {code}"),
        ConnectorError::OutcomeUnknown(_) => "OutcomeUnknown".into(),
        ConnectorError::Unavailable(_) => "Unavailable".into(),
        ConnectorError::BadResponse(_) => "BadResponse".into(),
        ConnectorError::NotSupported(_) => "NotSupported".into(),
        ConnectorError::Credentials(_) => "Credentials".into(),
    }
}

fn describe<T>(result: &Result<T, ConnectorError>, ok: impl Fn(&T) -> String) -> String {
    match result {
        Ok(value) => ok(value),
        Err(e) => describe_error(e),
    }
}

fn describe_order(order: &qrgate_connector_api::ChannelOrder) -> String {
    format!(
        "{:?} {}",
        order.status,
        order.wallet_code.as_deref().unwrap_or("-")
    )
}

/// Verifies a merchant request as UnionPay would: with the public key of the certificate
/// whose serial is `certId`.
pub(super) fn assert_signed_by_merchant(fields: &[(String, String)]) {
    assert_eq!(value(fields, "certId"), Some(CERT_ID));
    let signature = base64::engine::general_purpose::STANDARD
        .decode(value(fields, "signature").unwrap())
        .unwrap();
    let digest = sign::digest_hex(&sign::sign_content(as_pairs(fields)));
    assert!(
        reference_rsa::verify_with_certificate(MERCHANT_CERT, digest.as_bytes(), &signature),
        "not signed with the merchant certificate's key"
    );
}

// ---------------------------------------------------------------------------------------------
// Signing

#[test]
fn vector_8_pre_hash_string_and_digest_are_reproduced_byte_for_byte() {
    let fields = [
        ("version", "5.1.0"),
        ("txnType", "01"),
        ("signature", "never-signed"),
        ("encoding", "utf-8"),
        ("reqReserved", ""),
        ("txnSubType", "06"),
        ("bizType", "000000"),
    ];
    let content = sign::sign_content(fields);
    assert_eq!(content, VECTOR_8);
    assert_eq!(sign::digest_hex(&content), VECTOR_8_SHA256_HEX);
}

#[test]
fn merchant_signatures_are_made_over_the_hex_digest_and_match_openssl() {
    let fields = [
        ("bizType", "000000"),
        ("encoding", "utf-8"),
        ("txnSubType", "06"),
        ("txnType", "01"),
        ("version", "5.1.0"),
    ];
    for key in [MERCHANT_KEY, MERCHANT_KEY_PKCS1] {
        let signer = UnionPaySigner::from_pem(key).unwrap();
        assert_eq!(signer.sign(fields).unwrap(), VECTOR_8_MERCHANT_SIGNATURE);
    }
}

#[test]
fn an_unusable_merchant_key_says_what_is_wrong_with_it() {
    let message = |text: &str| match UnionPaySigner::from_pem(text) {
        Err(ConnectorError::Credentials(message)) => message,
        Err(other) => panic!("not a credentials error: {other:?}"),
        Ok(_) => panic!("accepted"),
    };
    let not_a_key = "merchant_private_key_pem is not an RSA private key (PKCS#8 or PKCS#1 PEM)";
    assert_eq!(message("not a key"), not_a_key);
    assert_eq!(message(MERCHANT_CERT), not_a_key);
    // Bare Base64 is an Alipay habit; UnionPay keys come out of a PKCS#12 file as PEM.
    let bare: String = MERCHANT_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(message(&bare), not_a_key);
    assert_eq!(
        message(include_str!(
            "../rsa_pkcs1/fixtures/test_rsa1024_private_key.pem"
        )),
        "merchant_private_key_pem: UnionPay needs an RSA key of at least 2048 bits"
    );
}

#[test]
fn signed_requests_verify_with_the_merchant_certificate() {
    let request = consume_request();
    let signature = UnionPaySigner::from_pem(MERCHANT_KEY)
        .unwrap()
        .sign(request.fields())
        .unwrap();
    let fields = form_fields(request.form_body(&signature).as_bytes());
    assert_signed_by_merchant(&fields);
    // The form body carries every field once, URL-encoded, and the signature last.
    assert_eq!(fields.last().map(|(k, _)| k.as_str()), Some("signature"));
    assert_eq!(fields.len(), request.fields().count() + 1);
}

// ---------------------------------------------------------------------------------------------
// Certificates and answer signatures

const OPENSSL_SIGNED: [(&str, &str); 7] = [
    ("consume_paid", fixture!("consume_paid.form")),
    (
        "consume_awaiting_password",
        fixture!("consume_awaiting_password.form"),
    ),
    ("apply_qr_issued", fixture!("apply_qr_issued.form")),
    (
        "query_paid_cross_border",
        fixture!("query_paid_cross_border.form"),
    ),
    ("query_not_found", fixture!("query_not_found.form")),
    ("query_refund_done", fixture!("query_refund_done.form")),
    ("notify_qr_paid", fixture!("notify_qr_paid.form")),
];

#[test]
fn answers_signed_by_openssl_verify_against_the_configured_root() {
    let trust = trust();
    for (name, body) in OPENSSL_SIGNED {
        let fields = form_fields(body.as_bytes());
        assert_eq!(
            trust.verify(as_pairs(&fields), now()),
            Ok(()),
            "{name} does not verify"
        );
    }
}

#[test]
fn a_signing_certificate_not_issued_by_the_root_is_rejected() {
    let fields = form_fields(fixture!("rogue_query_paid.form").as_bytes());
    assert_eq!(
        trust().verify(as_pairs(&fields), now()),
        Err(UnionPaySignatureError::UntrustedCertificate)
    );
    let result = open(
        &query_request(OUT_TRADE_NO),
        fixture!("rogue_query_paid.form").as_bytes(),
    );
    assert!(
        matches!(result, Err(ConnectorError::BadResponse(_))),
        "{result:?}"
    );
}

/// A message signed with `key` and carrying `cert` as `signPubKeyCert`, from a fixture.
fn signed_with(cert: &str, key: &str) -> Vec<(String, String)> {
    let mut fields = form_fields(fixture!("query_paid_cross_border.form").as_bytes());
    set(&mut fields, "signPubKeyCert", cert.trim());
    fields.retain(|(k, _)| k != "signature");
    let key = ReferenceSigner::from_pkcs8_pem(key);
    let signature = key_signature(&key, &fields);
    fields.push(("signature".into(), signature));
    fields
}

#[test]
fn a_certificate_the_root_issued_to_a_merchant_is_not_unionpays() {
    // The merchant's certificate IS issued by the root, and its key made a valid signature:
    // only the owner of the certificate tells the forgery apart (issue 13 §1).
    let forged = signed_with(MERCHANT_CERT, MERCHANT_KEY);
    assert_eq!(
        trust().verify(as_pairs(&forged), now()),
        Err(UnionPaySignatureError::NotUnionPays {
            owner: "qrgate TEST merchant 777290058110048".into()
        })
    );
    // The same as a notification, signed by openssl (an independent signer).
    let fields = form_fields(fixture!("merchant_signed_notify.form").as_bytes());
    assert!(matches!(
        trust().verify(as_pairs(&fields), now()),
        Err(UnionPaySignatureError::NotUnionPays { .. })
    ));
    let connector = UnionPayConnector::new(config("https://gateway.test.95516.com")).unwrap();
    let result = connector.verify_callback(
        Some("application/x-www-form-urlencoded"),
        fixture!("merchant_signed_notify.form").as_bytes(),
    );
    assert!(
        result.is_err(),
        "a merchant-signed notification was accepted"
    );
    // …and as an answer.
    let result = open(&query_request(OUT_TRADE_NO), &encode_form(&forged));
    assert!(
        matches!(result, Err(ConnectorError::BadResponse(_))),
        "{result:?}"
    );
    // Nothing about a refused certificate is remembered.
    assert_eq!(trust().checked_certificates(), 0);
}

#[test]
fn the_rogue_lookalike_fails_the_chain_check() {
    let rogue = signed_with(ROGUE_SIGN_CERT, ROGUE_SIGN_KEY);
    assert_eq!(
        trust().verify(as_pairs(&rogue), now()),
        Err(UnionPaySignatureError::UntrustedCertificate)
    );
}

#[test]
fn the_owner_and_the_fingerprints_are_pinned() {
    let genuine = form_fields(fixture!("query_paid_cross_border.form").as_bytes());
    // UnionPay's test bed names another owner: production's certificate is refused there.
    let test_bed = UnionPaySigningPin::new("00040000:SIGN", &[]).unwrap();
    let trust_test_bed = UnionPayTrust::from_pem(ROOT_CERT, test_bed).unwrap();
    assert_eq!(
        trust_test_bed.verify(as_pairs(&genuine), now()),
        Err(UnionPaySignatureError::NotUnionPays {
            owner: super::UNIONPAY_SIGNING_CERT_OWNER.into()
        })
    );
    // Pinned by fingerprint: the right one passes (with `:` separators too), any other not.
    let der = x509_cert::der::pem::decode_vec(UNIONPAY_SIGN_CERT.trim().as_bytes())
        .unwrap()
        .1;
    let right = hex::encode(Sha256::digest(&der));
    let right_colons = right
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    for fingerprints in [vec![right.clone()], vec!["00".repeat(32), right_colons]] {
        let pin =
            UnionPaySigningPin::new(super::UNIONPAY_SIGNING_CERT_OWNER, &fingerprints).unwrap();
        let trust = UnionPayTrust::from_pem(ROOT_CERT, pin).unwrap();
        assert_eq!(trust.verify(as_pairs(&genuine), now()), Ok(()));
    }
    let other =
        UnionPaySigningPin::new(super::UNIONPAY_SIGNING_CERT_OWNER, &["ab".repeat(32)]).unwrap();
    let trust = UnionPayTrust::from_pem(ROOT_CERT, other).unwrap();
    assert_eq!(
        trust.verify(as_pairs(&genuine), now()),
        Err(UnionPaySignatureError::NotPinned)
    );
    // Unusable pins are configuration errors.
    for (owner, fingerprints) in [
        ("", vec![]),
        ("a@b", vec![]),
        (super::UNIONPAY_SIGNING_CERT_OWNER, vec!["xyz".to_owned()]),
        (super::UNIONPAY_SIGNING_CERT_OWNER, vec!["ab".repeat(31)]),
    ] {
        assert!(
            matches!(
                UnionPaySigningPin::new(owner, &fingerprints),
                Err(ConnectorError::Credentials(_))
            ),
            "{owner:?} {fingerprints:?}"
        );
    }
}

#[test]
fn a_tampered_field_is_rejected() {
    let original = form_fields(fixture!("query_paid_cross_border.form").as_bytes());
    for (name, tampered_value) in [
        ("txnAmt", "100"),
        ("origRespCode", "05"),
        ("queryId", "782403151200000000019"),
        ("merId", "777290058110049"),
        ("exchangeRate", "523400001"),
        ("signPubKeyCert", ROGUE_SIGN_CERT.trim()),
    ] {
        let mut fields = original.clone();
        set(&mut fields, name, tampered_value);
        assert!(
            trust().verify(as_pairs(&fields), now()).is_err(),
            "tampering {name} went unnoticed"
        );
    }
    // Adding a field is tampering too: every non-empty field is signed.
    let mut added = original.clone();
    added.push(("reqReserved".into(), "x".into()));
    assert_eq!(
        trust().verify(as_pairs(&added), now()),
        Err(UnionPaySignatureError::Mismatch)
    );
    // An added empty field is not signed and changes nothing.
    let mut empty = original;
    empty.push(("reserved".into(), String::new()));
    assert_eq!(trust().verify(as_pairs(&empty), now()), Ok(()));
}

#[test]
fn certificates_are_only_trusted_inside_their_validity_period() {
    let fields = form_fields(fixture!("consume_paid.form").as_bytes());
    let before: DateTime<Utc> = "2023-12-31T23:59:59Z".parse().unwrap();
    let first_second: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
    let last_second: DateTime<Utc> = "2044-01-01T00:00:00Z".parse().unwrap();
    let after: DateTime<Utc> = "2044-01-01T00:00:01Z".parse().unwrap();
    let trust = trust();
    assert_eq!(
        trust.verify(as_pairs(&fields), before),
        Err(UnionPaySignatureError::CertificateOutOfValidity)
    );
    assert_eq!(trust.verify(as_pairs(&fields), first_second), Ok(()));
    assert_eq!(trust.verify(as_pairs(&fields), last_second), Ok(()));
    assert_eq!(
        trust.verify(as_pairs(&fields), after),
        Err(UnionPaySignatureError::CertificateOutOfValidity)
    );
}

#[test]
fn a_checked_certificate_is_remembered_but_still_checked_against_the_clock() {
    let trust = trust();
    let consume = form_fields(fixture!("consume_paid.form").as_bytes());
    assert_eq!(trust.verify(as_pairs(&consume), now()), Ok(()));
    assert_eq!((trust.chain_checks(), trust.checked_certificates()), (1, 1));

    // Later answers with the same certificate are accepted without a second chain check:
    // another OpenSSL-signed fixture, and an answer signed here.
    let query = form_fields(fixture!("query_paid_cross_border.form").as_bytes());
    assert_eq!(trust.verify(as_pairs(&query), now()), Ok(()));
    let fresh = form_fields(&sign_as_unionpay(answer_fields(
        OUT_TRADE_NO,
        &[("respCode", "00")],
    )));
    assert_eq!(trust.verify(as_pairs(&fresh), now()), Ok(()));
    assert_eq!((trust.chain_checks(), trust.checked_certificates()), (1, 1));

    // The remembered certificate is still refused outside its validity period, on either
    // side, and accepted again inside it (its last second included).
    let before: DateTime<Utc> = "2023-12-31T23:59:59Z".parse().unwrap();
    let after: DateTime<Utc> = "2044-01-01T00:00:01Z".parse().unwrap();
    let last_second: DateTime<Utc> = "2044-01-01T00:00:00Z".parse().unwrap();
    for at in [after, before] {
        assert_eq!(
            trust.verify(as_pairs(&query), at),
            Err(UnionPaySignatureError::CertificateOutOfValidity),
            "{at}"
        );
    }
    assert_eq!(trust.verify(as_pairs(&query), last_second), Ok(()));
    assert_eq!(trust.chain_checks(), 1, "served from the cache");

    // A tampered answer carrying the remembered certificate is refused…
    for (name, tampered_value) in [
        ("txnAmt", "100"),
        ("origRespCode", "05"),
        ("merId", "777290058110049"),
    ] {
        let mut tampered = query.clone();
        set(&mut tampered, name, tampered_value);
        assert_eq!(
            trust.verify(as_pairs(&tampered), now()),
            Err(UnionPaySignatureError::Mismatch),
            "tampering {name} went unnoticed"
        );
    }
    let mut added = query.clone();
    added.push(("reqReserved".into(), "x".into()));
    assert_eq!(
        trust.verify(as_pairs(&added), now()),
        Err(UnionPaySignatureError::Mismatch)
    );
    // …and so is one signed by another key (the rogue's) that names the genuine certificate.
    let mut forged = query.clone();
    forged.retain(|(k, _)| k != "signature");
    let rogue_key = ReferenceSigner::from_pkcs8_pem(ROGUE_SIGN_KEY);
    let signature = key_signature(&rogue_key, &forged);
    forged.push(("signature".into(), signature));
    assert_eq!(
        trust.verify(as_pairs(&forged), now()),
        Err(UnionPaySignatureError::Mismatch)
    );
    assert_eq!(trust.chain_checks(), 1);

    // The look-alike certificate is not the remembered one: it gets the chain check, fails
    // it, and is not remembered.
    let rogue = form_fields(fixture!("rogue_query_paid.form").as_bytes());
    for _ in 0..2 {
        assert_eq!(
            trust.verify(as_pairs(&rogue), now()),
            Err(UnionPaySignatureError::UntrustedCertificate)
        );
    }
    assert_eq!((trust.chain_checks(), trust.checked_certificates()), (3, 1));
    assert_eq!(trust.verify(as_pairs(&consume), now()), Ok(()));
    assert_eq!(trust.chain_checks(), 3);
}

#[test]
fn a_certificate_first_seen_out_of_its_validity_is_not_remembered() {
    let trust = trust();
    let fields = form_fields(fixture!("consume_paid.form").as_bytes());
    let after: DateTime<Utc> = "2044-01-01T00:00:01Z".parse().unwrap();
    assert_eq!(
        trust.verify(as_pairs(&fields), after),
        Err(UnionPaySignatureError::CertificateOutOfValidity)
    );
    assert_eq!(trust.checked_certificates(), 0);
    assert_eq!(trust.verify(as_pairs(&fields), now()), Ok(()));
    assert_eq!((trust.chain_checks(), trust.checked_certificates()), (2, 1));
}

#[test]
fn only_a_few_checked_certificates_are_remembered() {
    // Distinct texts of the same certificate (trailing line ends, which parsing ignores but
    // the signature covers) stand for distinct certificates.
    let trust = trust();
    let answer = |variant: usize| {
        let mut fields = answer_fields(OUT_TRADE_NO, &[("respCode", "00")]);
        let text = format!("{}{}", UNIONPAY_SIGN_CERT.trim(), "\n".repeat(variant));
        set(&mut fields, "signPubKeyCert", &text);
        let signature = key_signature(unionpay_key(), &fields);
        fields.push(("signature".into(), signature));
        fields
    };
    let answers: Vec<_> = (0..10).map(answer).collect();
    for fields in &answers {
        assert_eq!(trust.verify(as_pairs(fields), now()), Ok(()));
    }
    assert_eq!(trust.chain_checks(), 10);
    assert!(
        (1..=8).contains(&trust.checked_certificates()),
        "{} remembered",
        trust.checked_certificates()
    );
    // The latest is remembered, the first was evicted and is checked (and accepted) again.
    assert_eq!(trust.verify(as_pairs(&answers[9]), now()), Ok(()));
    assert_eq!(trust.chain_checks(), 10);
    assert_eq!(trust.verify(as_pairs(&answers[0]), now()), Ok(()));
    assert_eq!(trust.chain_checks(), 11);
}

#[test]
fn unsigned_answers_and_answers_without_a_certificate_are_never_trusted() {
    let signed = form_fields(fixture!("consume_paid.form").as_bytes());
    let mut unsigned = signed.clone();
    unsigned.retain(|(k, _)| k != "signature");
    assert_eq!(
        trust().verify(as_pairs(&unsigned), now()),
        Err(UnionPaySignatureError::Unsigned)
    );
    let mut empty_signature = signed.clone();
    set(&mut empty_signature, "signature", "");
    assert_eq!(
        trust().verify(as_pairs(&empty_signature), now()),
        Err(UnionPaySignatureError::Unsigned)
    );
    let mut no_cert = signed.clone();
    no_cert.retain(|(k, _)| k != "signPubKeyCert");
    assert_eq!(
        trust().verify(as_pairs(&no_cert), now()),
        Err(UnionPaySignatureError::NoCertificate)
    );
    let mut garbage_cert = signed.clone();
    set(
        &mut garbage_cert,
        "signPubKeyCert",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    );
    assert!(matches!(
        trust().verify(as_pairs(&garbage_cert), now()),
        Err(UnionPaySignatureError::UnreadableCertificate(_))
    ));
    let mut key_not_cert = signed;
    set(&mut key_not_cert, "signPubKeyCert", MERCHANT_KEY.trim());
    assert!(matches!(
        trust().verify(as_pairs(&key_not_cert), now()),
        Err(UnionPaySignatureError::UnreadableCertificate(_))
    ));
    // Through `open_answer`, each of these is a BadResponse, even for a "success".
    let result = open(&consume_request(), &encode_form(&unsigned));
    assert!(
        matches!(result, Err(ConnectorError::BadResponse(_))),
        "{result:?}"
    );
}

#[test]
fn a_signature_whose_plus_signs_arrived_as_spaces_still_verifies() {
    let body = fixture!("consume_paid.form");
    let fields = form_fields(body.as_bytes());
    let signature = value(&fields, "signature").unwrap();
    assert!(
        signature.contains('+'),
        "pick a fixture whose signature has a '+'"
    );
    // Re-encode the signature with raw `+` (which form decoding turns into spaces).
    let (head, _) = body.split_once("&signature=").unwrap();
    let raw = format!(
        "{head}&signature={}",
        signature.replace('/', "%2F").replace('=', "%3D")
    );
    assert!(open(&consume_request(), raw.as_bytes()).is_ok());
}

#[test]
fn a_certificate_with_crlf_line_ends_verifies() {
    // UnionPay's own answers carry the PEM with CRLF line ends; the signature covers them.
    let mut fields = answer_fields(OUT_TRADE_NO, &[("respCode", "00")]);
    let crlf = UNIONPAY_SIGN_CERT.trim().replace('\n', "\r\n");
    set(&mut fields, "signPubKeyCert", &crlf);
    let signature = key_signature(unionpay_key(), &fields);
    fields.push(("signature".into(), signature));
    assert_eq!(trust().verify(as_pairs(&fields), now()), Ok(()));
}

#[test]
fn root_configuration_is_checked_once() {
    // Empty, garbage, a key instead of a certificate.
    for text in ["", "not a certificate", MERCHANT_KEY] {
        assert!(
            matches!(
                UnionPayTrust::from_pem(text, pin()),
                Err(ConnectorError::Credentials(_))
            ),
            "{text:.20}"
        );
    }
    // A root whose self-signature was damaged in transit.
    let cert = x509_cert::Certificate::from_pem(ROOT_CERT.as_bytes()).unwrap();
    let mut der = cert.to_der().unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let body = base64::engine::general_purpose::STANDARD.encode(&der);
    let damaged = format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n");
    assert!(matches!(
        UnionPayTrust::from_pem(&damaged, pin()),
        Err(ConnectorError::Credentials(_))
    ));
    // Several PEM blocks: each is an issuer; the genuine root still works among others.
    let bundle = format!("{MERCHANT_CERT}\n{ROOT_CERT}");
    let fields = form_fields(fixture!("consume_paid.form").as_bytes());
    assert_eq!(
        UnionPayTrust::from_pem(&bundle, pin())
            .unwrap()
            .verify(as_pairs(&fields), now()),
        Ok(())
    );
    // Trusting only a certificate that did not issue the signing certificate fails.
    assert_eq!(
        UnionPayTrust::from_pem(MERCHANT_CERT, pin())
            .unwrap()
            .verify(as_pairs(&fields), now()),
        Err(UnionPaySignatureError::UntrustedCertificate)
    );
}

// ---------------------------------------------------------------------------------------------
// Answer envelope

#[test]
fn http_errors_are_classed_before_the_body_is_read() {
    let body = fixture!("consume_paid.form").as_bytes();
    let request = consume_request();
    for (status, expected) in [
        (500, "OutcomeUnknown"),
        (502, "OutcomeUnknown"),
        (503, "OutcomeUnknown"),
        (400, "Rejected HTTP_400"),
        (404, "Rejected HTTP_404"),
        (302, "BadResponse"),
        (100, "BadResponse"),
    ] {
        let result = wire::open_answer(&request, status, body, &trust(), now(), MER_ID);
        assert_eq!(
            describe(&result, |_| "Ok".into()),
            expected,
            "HTTP {status}"
        );
    }
}

#[test]
fn malformed_bodies_are_bad_responses() {
    let request = consume_request();
    let unsigned_missing_code = sign_as_unionpay(answer_fields(OUT_TRADE_NO, &[]));
    let repeated = {
        let mut body = fixture!("consume_paid.form").as_bytes().to_vec();
        body.extend_from_slice(b"&respCode=61");
        body
    };
    let other_method = sign_as_unionpay(answer_fields(
        OUT_TRADE_NO,
        &[("respCode", "00"), ("signMethod", "11")],
    ));
    for (name, body) in [
        ("empty", Vec::new()),
        ("not utf-8", vec![0xff, 0xfe, 0x3d, 0x26]),
        ("json", br#"{"respCode":"00"}"#.to_vec()),
        ("separators only", b"&&==&".to_vec()),
        (
            "html",
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
        ),
        ("no respCode", unsigned_missing_code),
        ("repeated field", repeated),
        ("other signMethod", other_method),
    ] {
        let result = open(&request, &body);
        assert!(
            matches!(result, Err(ConnectorError::BadResponse(_))),
            "{name}: {result:?}"
        );
    }
}

#[test]
fn an_answer_about_another_order_or_merchant_is_a_bad_response() {
    let request = consume_request();
    for extra in [
        [("respCode", "00"), ("orderId", "QG2024031512009999")],
        [("respCode", "00"), ("merId", "777290058119999")],
    ] {
        let body = sign_as_unionpay(answer_fields(OUT_TRADE_NO, &extra));
        let result = open(&request, &body);
        assert!(
            matches!(result, Err(ConnectorError::BadResponse(_))),
            "{result:?}"
        );
    }
}

#[test]
fn mangled_answers_never_panic_and_never_verify() {
    let body = fixture!("consume_paid.form").as_bytes();
    let request = consume_request();
    let trust = trust();
    // Every prefix (truncated in transit)…
    for end in 0..body.len() {
        let result = wire::open_answer(&request, 200, &body[..end], &trust, now(), MER_ID);
        assert!(result.is_err(), "a prefix of {end} bytes was accepted");
    }
    // …and single-byte corruption across the body.
    for position in (0..body.len()).step_by(7) {
        let mut mangled = body.to_vec();
        mangled[position] = mangled[position].wrapping_add(1);
        if mangled == body {
            continue;
        }
        let result = wire::open_answer(&request, 200, &mangled, &trust, now(), MER_ID);
        if let Ok(answer) = result {
            // Only a change form decoding undoes (e.g. `%2b` vs `%2B`) may still verify.
            assert_eq!(
                answer.get("txnAmt"),
                Some("1000"),
                "byte {position} changed a verified answer"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

#[test]
fn consume_request_has_exactly_the_profile_fields() {
    let request = consume_request();
    assert_eq!(request.txn, UnionPayTxn::Consume);
    assert_eq!(request.txn.path(), "/gateway/api/backTransReq.do");
    assert_eq!(
        request.fields().collect::<Vec<_>>(),
        vec![
            ("version", "5.1.0"),
            ("encoding", "utf-8"),
            ("signMethod", "01"),
            ("certId", CERT_ID),
            ("txnType", "01"),
            ("txnSubType", "06"),
            ("bizType", "000000"),
            ("accessType", "0"),
            ("channelType", "08"),
            ("merId", MER_ID),
            ("orderId", OUT_TRADE_NO),
            ("txnTime", "20240315120000"),
            ("txnAmt", "1000"),
            ("currencyCode", "124"),
            ("backUrl", BACK_URL),
            ("qrNo", PAYMENT_CODE),
            ("termId", "T0000001"),
        ]
    );
}

#[test]
fn apply_qr_request_sends_pay_timeout_in_beijing_time_and_the_notify_url() {
    let request = wire::apply_qr_request(&merchant(), &qr_order("https://pos.example/n")).unwrap();
    assert_eq!(request.txn, UnionPayTxn::ApplyQr);
    assert_eq!(
        field_names(&request),
        vec![
            "version",
            "encoding",
            "signMethod",
            "certId",
            "txnType",
            "txnSubType",
            "bizType",
            "accessType",
            "channelType",
            "merId",
            "orderId",
            "txnTime",
            "txnAmt",
            "currencyCode",
            "backUrl",
            "payTimeout",
        ]
    );
    assert_eq!(field(&request, "txnSubType"), Some("07"));
    assert_eq!(field(&request, "txnAmt"), Some("2550"));
    assert_eq!(field(&request, "currencyCode"), Some("156"));
    assert_eq!(field(&request, "backUrl"), Some("https://pos.example/n"));
    assert_eq!(field(&request, "payTimeout"), Some("20240315121500"));
    // Without a notify URL of its own, the configured default is used.
    let request = wire::apply_qr_request(&merchant(), &qr_order("")).unwrap();
    assert_eq!(field(&request, "backUrl"), Some(BACK_URL));
}

#[test]
fn query_cancel_and_refund_requests_have_exactly_the_profile_fields() {
    let common = [
        "version",
        "encoding",
        "signMethod",
        "certId",
        "txnType",
        "txnSubType",
        "bizType",
        "accessType",
        "channelType",
        "merId",
        "orderId",
        "txnTime",
    ];
    let query = query_request(OUT_TRADE_NO);
    assert_eq!(query.txn.path(), "/gateway/api/queryTrans.do");
    assert_eq!(field_names(&query), common);
    assert_eq!(
        (field(&query, "txnType"), field(&query, "txnSubType")),
        (Some("00"), Some("00"))
    );

    let cancel_id = wire::cancel_order_id(now(), "abcdefghijKLMNOPQ").unwrap();
    assert_eq!(cancel_id, "C20240315120005abcdefghijKLMNOPQ");
    let cancel = wire::cancel_request(&merchant(), &cancel_id, now(), QUERY_ID, cad(1000)).unwrap();
    let mut expected = common.to_vec();
    expected.extend(["origQryId", "txnAmt", "currencyCode"]);
    assert_eq!(field_names(&cancel), expected);
    assert_eq!(cancel.txn.path(), "/gateway/api/backTransReq.do");
    assert_eq!(
        (field(&cancel, "txnType"), field(&cancel, "txnSubType")),
        (Some("31"), Some("00"))
    );
    assert_eq!(field(&cancel, "origQryId"), Some(QUERY_ID));
    assert_eq!(field(&cancel, "txnTime"), Some("20240315120005"));

    let refund =
        wire::refund_request(&merchant(), &refund_request(cad(400), None), QUERY_ID).unwrap();
    assert_eq!(field_names(&refund), expected);
    assert_eq!(
        (field(&refund, "txnType"), field(&refund, "txnSubType")),
        (Some("04"), Some("00"))
    );
    assert_eq!(field(&refund, "orderId"), Some(OUT_REFUND_NO));
    assert_eq!(field(&refund, "txnTime"), Some("20240315130000"));
    assert_eq!(field(&refund, "txnAmt"), Some("400"));
    assert_eq!(field(&refund, "currencyCode"), Some("124"));
}

#[test]
fn requests_that_unionpay_would_refuse_are_rejected_before_sending() {
    let mut bad_order_id = code_payment(cad(1000));
    for id in [
        "QG-2024-0001",
        "QG_20240315",
        "SHORT1",
        "X123456789012345678901234567890123",
        "订单12345678",
    ] {
        bad_order_id.out_trade_no = id.into();
        let result = wire::consume_request(&merchant(), &bad_order_id);
        assert_eq!(
            describe(&result, |_| "Ok".into()),
            "Rejected LOCAL_ORDER_ID",
            "{id}"
        );
    }
    for amount in [cad(0), cad(-5)] {
        let result = wire::consume_request(&merchant(), &code_payment(amount));
        assert_eq!(describe(&result, |_| "Ok".into()), "Rejected LOCAL_AMOUNT");
    }
    let mut expired = qr_order(BACK_URL);
    expired.expires_at = expired.created_at;
    let result = wire::apply_qr_request(&merchant(), &expired);
    assert_eq!(
        describe(&result, |_| "Ok".into()),
        "Rejected LOCAL_EXPIRES_AT"
    );
    let result = wire::refund_request(&merchant(), &refund_request(cny(400), None), QUERY_ID);
    assert_eq!(
        describe(&result, |_| "Ok".into()),
        "Rejected LOCAL_CURRENCY_MISMATCH"
    );
    let mut bad_refund_no = refund_request(cad(400), None);
    bad_refund_no.out_refund_no = "R-1".into();
    let result = wire::refund_request(&merchant(), &bad_refund_no, QUERY_ID);
    assert_eq!(
        describe(&result, |_| "Ok".into()),
        "Rejected LOCAL_ORDER_ID"
    );
}

#[test]
fn units_convert_exactly() {
    for currency in Currency::ALL {
        assert_eq!(
            wire::currency_from_code(wire::currency_code(currency)),
            Some(currency)
        );
    }
    assert_eq!(wire::currency_code(Currency::Cny), "156");
    assert_eq!(wire::currency_code(Currency::Cad), "124");
    assert_eq!(wire::currency_code(Currency::Usd), "840");
    assert_eq!(wire::currency_from_code("978"), None);

    assert_eq!(wire::beijing_time(created_at()).unwrap(), "20240315120000");
    // Across midnight and the year boundary in Beijing.
    let utc: DateTime<Utc> = "2023-12-31T16:30:00.999Z".parse().unwrap();
    assert_eq!(wire::beijing_time(utc).unwrap(), "20240101003000");
    assert_eq!(
        wire::parse_beijing_time("20240101003000"),
        Some("2023-12-31T16:30:00Z".parse().unwrap())
    );
    for bad in [
        "0315120000",
        "2024031512000",
        "2024-03-15 12:00",
        "20241315120000",
        "+0240315120000",
    ] {
        assert_eq!(wire::parse_beijing_time(bad), None, "{bad}");
    }

    assert_eq!(wire::parse_integer("0"), Some(0));
    assert_eq!(wire::parse_integer("1000"), Some(1000));
    assert_eq!(
        wire::parse_integer("999999999999999"),
        Some(999_999_999_999_999)
    );
    for bad in [
        "",
        "-1",
        "+1",
        "01",
        "1.00",
        "1e3",
        " 1",
        "9999999999999999",
    ] {
        assert_eq!(wire::parse_integer(bad), None, "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Mapping tables

#[test]
fn consume_resp_codes_map_as_the_profile_says() {
    let request = consume_request();
    for (code, expected) in [
        ("00", "Paid -"),
        ("A6", "Paid -"),
        ("05", "PendingUser 05"),
        ("03", "Unknown 03"),
        ("04", "Unknown 04"),
        ("61", "Declined 61"),
        ("64", "Declined 64"),
        ("65", "Declined 65"),
        ("12", "Declined 12"),
        ("10", "Rejected 10"),
        ("11", "Rejected 11"),
        ("13", "Rejected 13"),
        ("30", "Rejected 30"),
        ("31", "Unknown 31"),
        ("34", "Unknown 34"),
        ("35", "Unknown 35"),
        ("36", "Unknown 36"),
        ("99", "Unknown 99"),
        ("0", "Unknown 0"),
    ] {
        let answer = answer_to(&request, &[("respCode", code), ("queryId", QUERY_ID)]);
        let result = wire::consume_outcome(&answer, OUT_TRADE_NO);
        assert_eq!(
            describe(&result, describe_order),
            expected,
            "respCode {code}"
        );
        if let Ok(order) = result {
            assert_eq!(order.channel_ref.as_deref(), Some(QUERY_ID));
            assert_eq!(order.out_trade_no, OUT_TRADE_NO);
        }
    }
}

#[test]
fn a_paid_consume_carries_query_id_and_both_amounts() {
    let answer = open(&consume_request(), fixture!("consume_paid.form").as_bytes()).unwrap();
    let order = wire::consume_outcome(&answer, OUT_TRADE_NO).unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    assert_eq!(order.channel_ref.as_deref(), Some(QUERY_ID));
    assert_eq!(order.amount, Some(cad(1000)));
    assert_eq!(order.payer_amount, Some(cny(5234)));
    assert_eq!(order.rate_e8, Some(523_400_000));
    assert_eq!(order.paid_at, Some("2024-03-15T04:00:03Z".parse().unwrap()));
    assert_eq!(order.wallet_code, None);

    let answer = open(
        &consume_request(),
        fixture!("consume_awaiting_password.form").as_bytes(),
    )
    .unwrap();
    let order = wire::consume_outcome(&answer, OUT_TRADE_NO).unwrap();
    assert_eq!(order.status, ChannelStatus::PendingUser);
    assert_eq!(order.wallet_code.as_deref(), Some("05"));
    assert_eq!(order.channel_ref.as_deref(), Some(QUERY_ID));
}

#[test]
fn a_paid_answer_with_an_unreadable_amount_is_a_bad_response() {
    let request = consume_request();
    for (amount, currency) in [
        ("10.00", "124"),
        ("-1", "124"),
        ("1000", "978"),
        ("1000", "CAD"),
    ] {
        let answer = answer_to(
            &request,
            &[
                ("respCode", "00"),
                ("txnAmt", amount),
                ("currencyCode", currency),
            ],
        );
        let result = wire::consume_outcome(&answer, OUT_TRADE_NO);
        assert_eq!(
            describe(&result, describe_order),
            "BadResponse",
            "{amount} {currency}"
        );
    }
    // Payer-side values are informative: unreadable ones are dropped, not fatal.
    let answer = answer_to(
        &request,
        &[
            ("respCode", "00"),
            ("settleAmt", "52.34"),
            ("exchangeRate", "5.234"),
        ],
    );
    let order = wire::consume_outcome(&answer, OUT_TRADE_NO).unwrap();
    assert_eq!((order.payer_amount, order.rate_e8), (None, None));
}

#[test]
fn apply_qr_resp_codes_map_as_the_profile_says() {
    let request = wire::apply_qr_request(&merchant(), &qr_order(BACK_URL)).unwrap();
    let answer = open(&request, fixture!("apply_qr_issued.form").as_bytes()).unwrap();
    let qr = wire::apply_qr_outcome(&answer, QR_OUT_TRADE_NO).unwrap();
    assert_eq!(
        qr.code_url,
        "https://qr.95516.com/00010000/01234567890123456789012345678901"
    );
    assert_eq!(qr.out_trade_no, QR_OUT_TRADE_NO);
    for (code, expected) in [
        ("00", "BadResponse"), // success without a qrCode
        ("12", "Declined 12"),
        ("10", "Rejected 10"),
        ("11", "Rejected 11"),
        ("13", "Rejected 13"),
        ("30", "Rejected 30"),
        ("03", "OutcomeUnknown"),
        ("04", "OutcomeUnknown"),
        ("05", "OutcomeUnknown"),
        ("61", "OutcomeUnknown"),
        ("99", "OutcomeUnknown"),
    ] {
        let answer = answer_to(&request, &[("respCode", code)]);
        let result = wire::apply_qr_outcome(&answer, QR_OUT_TRADE_NO);
        assert_eq!(
            describe(&result, |q| q.code_url.clone()),
            expected,
            "respCode {code}"
        );
    }
}

#[test]
fn query_codes_map_as_the_profile_says() {
    let paid = [
        ("respCode", "00"),
        ("origRespCode", "00"),
        ("queryId", QUERY_ID),
    ];
    for (extra, expected) in [
        (&paid[..], "Paid -"),
        (&[("respCode", "00"), ("origRespCode", "A6")][..], "Paid -"),
        (
            &[("respCode", "00"), ("origRespCode", "05")][..],
            "PendingUser 05",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "03")][..],
            "Unknown 03",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "04")][..],
            "Unknown 04",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "31")][..],
            "Closed 31",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "61")][..],
            "Failed 61",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "64")][..],
            "Failed 64",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "65")][..],
            "Failed 65",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "35")][..],
            "Failed 35",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "99")][..],
            "Failed 99",
        ),
        (&[("respCode", "00")][..], "Unknown -"),
        (&[("respCode", "34")][..], "Failed 34"),
        (&[("respCode", "03")][..], "Unknown 03"),
        (&[("respCode", "04")][..], "Unknown 04"),
        (&[("respCode", "05")][..], "Unknown 05"),
        (&[("respCode", "61")][..], "Unknown 61"),
        (&[("respCode", "10")][..], "Rejected 10"),
        (&[("respCode", "11")][..], "Rejected 11"),
        (&[("respCode", "13")][..], "Rejected 13"),
        (&[("respCode", "30")][..], "Rejected 30"),
    ] {
        let answer = answer_to(&query_request(OUT_TRADE_NO), extra);
        let result =
            wire::parse_query(&answer).map(|q| wire::query_order_outcome(&q, OUT_TRADE_NO));
        assert_eq!(describe(&result, describe_order), expected, "{extra:?}");
    }
}

#[test]
fn a_paid_cross_border_query_reads_amount_settlement_and_rate() {
    let answer = open(
        &query_request(OUT_TRADE_NO),
        fixture!("query_paid_cross_border.form").as_bytes(),
    )
    .unwrap();
    let order = wire::query_order_outcome(&wire::parse_query(&answer).unwrap(), OUT_TRADE_NO);
    assert_eq!(order.status, ChannelStatus::Paid);
    assert_eq!(order.channel_ref.as_deref(), Some(QUERY_ID));
    assert_eq!(order.amount, Some(cad(1000)));
    assert_eq!(order.payer_amount, Some(cny(5234)));
    assert_eq!(order.rate_e8, Some(523_400_000));

    let answer = open(
        &query_request(OUT_TRADE_NO),
        fixture!("query_not_found.form").as_bytes(),
    )
    .unwrap();
    let order = wire::query_order_outcome(&wire::parse_query(&answer).unwrap(), OUT_TRADE_NO);
    assert_eq!(order.status, ChannelStatus::Failed);
    assert_eq!(order.wallet_code.as_deref(), Some("34"));
    assert_eq!(order.wallet_message.as_deref(), Some("查无此交易[2600000]"));
}

#[test]
fn reverse_decides_from_the_query_then_maps_the_cancel() {
    let with_amount = |orig: &'static str| {
        queried(&[
            ("respCode", "00"),
            ("origRespCode", orig),
            ("queryId", QUERY_ID),
            ("txnAmt", "1000"),
            ("currencyCode", "124"),
        ])
    };
    let cancel = UnionPayReversePlan::Cancel {
        orig_qry_id: QUERY_ID.into(),
        amount: cad(1000),
    };
    for (q, expected) in [
        (
            queried(&[("respCode", "34")]),
            Ok(UnionPayReversePlan::Settled(ReverseOutcome::Done)),
        ),
        (
            queried(&[("respCode", "05")]),
            Ok(UnionPayReversePlan::Settled(ReverseOutcome::CallAgain)),
        ),
        (
            with_amount("31"),
            Ok(UnionPayReversePlan::Settled(ReverseOutcome::Done)),
        ),
        (
            with_amount("61"),
            Ok(UnionPayReversePlan::Settled(ReverseOutcome::Done)),
        ),
        (with_amount("00"), Ok(cancel.clone())),
        (with_amount("A6"), Ok(cancel.clone())),
        (with_amount("03"), Ok(cancel.clone())),
        (with_amount("04"), Ok(cancel.clone())),
        (with_amount("05"), Ok(cancel.clone())),
    ] {
        assert_eq!(
            wire::reverse_plan(&q, None).map_err(|e| e.to_string()),
            expected,
            "{q:?}"
        );
    }
    // Without a queryId in the answer, the engine's channel_ref is used; without either, or
    // without the amount, nothing can be cancelled safely.
    let no_query_id = queried(&[
        ("respCode", "00"),
        ("origRespCode", "05"),
        ("txnAmt", "1000"),
        ("currencyCode", "124"),
    ]);
    assert_eq!(
        wire::reverse_plan(&no_query_id, Some(QUERY_ID)).unwrap(),
        cancel
    );
    assert!(matches!(
        wire::reverse_plan(&no_query_id, None),
        Err(ConnectorError::BadResponse(_))
    ));
    let no_amount = queried(&[
        ("respCode", "00"),
        ("origRespCode", "05"),
        ("queryId", QUERY_ID),
    ]);
    assert!(matches!(
        wire::reverse_plan(&no_amount, None),
        Err(ConnectorError::BadResponse(_))
    ));

    let cancel_request = wire::cancel_request(
        &merchant(),
        "C20240315120005abcdefghijKLMNOPQ",
        now(),
        QUERY_ID,
        cad(1000),
    )
    .unwrap();
    for (code, expected) in [
        ("00", "Done"),
        ("A6", "Done"),
        ("03", "CallAgain"),
        ("04", "CallAgain"),
        ("05", "CallAgain"),
        ("34", "Done"),
        ("35", "Declined 35"),
        ("36", "Declined 36"),
        ("12", "Declined 12"),
        ("10", "Rejected 10"),
        ("11", "Rejected 11"),
        ("13", "Rejected 13"),
        ("30", "Rejected 30"),
        ("61", "OutcomeUnknown"),
        ("99", "OutcomeUnknown"),
    ] {
        let answer = answer_to(&cancel_request, &[("respCode", code)]);
        let result = wire::cancel_outcome(&answer);
        assert_eq!(
            describe(&result, |o| format!("{o:?}")),
            expected,
            "respCode {code}"
        );
    }
}

#[test]
fn close_is_a_query_because_unionpay_cannot_close_an_unpaid_qr() {
    for (extra, expected) in [
        (&[("respCode", "34")][..], "Ok"),
        (&[("respCode", "00"), ("origRespCode", "05")][..], "Ok"),
        (&[("respCode", "00"), ("origRespCode", "31")][..], "Ok"),
        (&[("respCode", "00"), ("origRespCode", "61")][..], "Ok"),
        (
            &[("respCode", "00"), ("origRespCode", "00")][..],
            "Declined ORDER_PAID",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "A6")][..],
            "Declined ORDER_PAID",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "03")][..],
            "OutcomeUnknown",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "04")][..],
            "OutcomeUnknown",
        ),
        (&[("respCode", "00")][..], "OutcomeUnknown"),
        (&[("respCode", "03")][..], "OutcomeUnknown"),
        (&[("respCode", "05")][..], "OutcomeUnknown"),
    ] {
        let result = wire::close_outcome(&queried(extra));
        assert_eq!(describe(&result, |_| "Ok".into()), expected, "{extra:?}");
    }
}

#[test]
fn refund_codes_map_as_the_profile_says() {
    for (extra, expected) in [
        (
            &[
                ("respCode", "00"),
                ("origRespCode", "00"),
                ("queryId", QUERY_ID),
            ][..],
            "Ok",
        ),
        (
            &[
                ("respCode", "00"),
                ("origRespCode", "05"),
                ("queryId", QUERY_ID),
            ][..],
            "Ok",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "00")][..],
            "BadResponse",
        ),
        (&[("respCode", "34")][..], "Declined 34"),
        (&[("respCode", "04")][..], "Unavailable"),
    ] {
        let result = wire::refund_orig_qry_id(&queried(extra));
        assert_eq!(describe(&result, |_| "Ok".into()), expected, "{extra:?}");
    }

    let request =
        wire::refund_request(&merchant(), &refund_request(cad(400), None), QUERY_ID).unwrap();
    for (code, expected) in [
        ("00", "Processing -"),
        ("A6", "Processing -"),
        ("03", "Unknown 03"),
        ("04", "Unknown 04"),
        ("05", "Unknown 05"),
        ("34", "Declined 34"),
        ("35", "Declined 35"),
        ("36", "Declined 36"),
        ("12", "Declined 12"),
        ("10", "Rejected 10"),
        ("11", "Rejected 11"),
        ("13", "Rejected 13"),
        ("30", "Rejected 30"),
        ("61", "Unknown 61"),
        ("99", "Unknown 99"),
    ] {
        let answer = answer_to(
            &request,
            &[
                ("respCode", code),
                ("queryId", "782403151300000000027"),
                ("txnAmt", "400"),
                ("currencyCode", "124"),
            ],
        );
        let result = wire::refund_outcome(&answer, OUT_REFUND_NO);
        let text = describe(&result, |r| {
            format!("{:?} {}", r.status, r.wallet_code.as_deref().unwrap_or("-"))
        });
        assert_eq!(text, expected, "respCode {code}");
        if let Ok(refund) = result {
            assert_eq!(refund.out_refund_no, OUT_REFUND_NO);
            assert_eq!(refund.channel_ref.as_deref(), Some("782403151300000000027"));
            assert_eq!(refund.amount, Some(cad(400)));
        }
    }
}

#[test]
fn a_refunds_cny_is_its_settle_amount_in_cny() {
    let refund_query = query_request(OUT_REFUND_NO);
    let cny_of = |extra: &[(&str, &str)]| {
        let answer = answer_to(&refund_query, extra);
        wire::refund_query_outcome(&wire::parse_query(&answer).unwrap(), OUT_REFUND_NO).cny_amount
    };
    let base = [
        ("respCode", "00"),
        ("origRespCode", "00"),
        ("txnAmt", "400"),
        ("currencyCode", "124"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut fields = base.to_vec();
        fields.extend_from_slice(extra);
        cny_of(&fields)
    };
    assert_eq!(
        with(&[("settleAmt", "2080"), ("settleCurrencyCode", "156")]),
        Some(cny(2080))
    );
    // settleCurrencyCode absent: CNY, as for payments.
    assert_eq!(with(&[("settleAmt", "2080")]), Some(cny(2080)));
    assert_eq!(
        with(&[("settleAmt", "400"), ("settleCurrencyCode", "124")]),
        None
    );
    // No settle amount and a CAD refund: UnionPay did not say.
    assert_eq!(with(&[]), None);
    assert_eq!(
        cny_of(&[
            ("respCode", "00"),
            ("origRespCode", "00"),
            ("txnAmt", "500"),
            ("currencyCode", "156")
        ]),
        Some(cny(500))
    );
}

#[test]
fn refund_query_codes_map_as_the_profile_says() {
    let refund_query = query_request(OUT_REFUND_NO);
    let answer = open(&refund_query, fixture!("query_refund_done.form").as_bytes()).unwrap();
    let refund = wire::refund_query_outcome(&wire::parse_query(&answer).unwrap(), OUT_REFUND_NO);
    assert_eq!(refund.status, RefundStatus::Succeeded);
    assert_eq!(refund.amount, Some(cad(400)));
    assert_eq!(refund.channel_ref.as_deref(), Some("782403151300000000027"));
    assert_eq!(refund.wallet_code, None);

    for (extra, expected) in [
        (
            &[("respCode", "00"), ("origRespCode", "00")][..],
            "Succeeded -",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "A6")][..],
            "Succeeded -",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "03")][..],
            "Processing 03",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "04")][..],
            "Processing 04",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "05")][..],
            "Processing 05",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "35")][..],
            "Failed 35",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "36")][..],
            "Failed 36",
        ),
        (
            &[("respCode", "00"), ("origRespCode", "99")][..],
            "Failed 99",
        ),
        (&[("respCode", "00")][..], "Unknown -"),
        (&[("respCode", "34")][..], "NotFound 34"),
        (&[("respCode", "03")][..], "Unknown 03"),
        (&[("respCode", "05")][..], "Unknown 05"),
    ] {
        let answer = answer_to(&refund_query, extra);
        let refund =
            wire::refund_query_outcome(&wire::parse_query(&answer).unwrap(), OUT_REFUND_NO);
        let text = format!(
            "{:?} {}",
            refund.status,
            refund.wallet_code.as_deref().unwrap_or("-")
        );
        assert_eq!(text, expected, "{extra:?}");
        if extra == [("respCode", "34")] {
            assert_eq!(
                refund.wallet_message.as_deref(),
                Some(REFUND_NOT_FOUND_NOTE)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Notifications

fn notification(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = answer_fields(
        QR_OUT_TRADE_NO,
        &[
            ("txnType", "01"),
            ("txnSubType", "07"),
            ("txnAmt", "2550"),
            ("currencyCode", "156"),
            ("queryId", "782403151201000000035"),
            ("respCode", "00"),
            ("respMsg", "成功[0000000]"),
        ],
    );
    for (k, v) in extra {
        set(&mut fields, k, v);
    }
    sign_as_unionpay(fields)
}

fn open_notification(body: &[u8]) -> Result<qrgate_connector_api::ChannelOrder, CallbackError> {
    wire::notification_order(body, &trust(), now(), MER_ID)
}

#[test]
fn a_signed_payment_notification_is_a_paid_order() {
    let order = open_notification(fixture!("notify_qr_paid.form").as_bytes()).unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    assert_eq!(order.out_trade_no, QR_OUT_TRADE_NO);
    assert_eq!(order.channel_ref.as_deref(), Some("782403151201000000035"));
    assert_eq!(order.amount, Some(cny(2550)));
    assert_eq!(order.payer_amount, Some(cny(2550)));
    assert_eq!(order.rate_e8, Some(100_000_000));
    assert_eq!(order.paid_at, Some("2024-03-15T04:01:30Z".parse().unwrap()));
    assert_eq!(order.buyer, None, "UnionPay named no buyer");
    // A consume (01/06) notification is a payment too.
    let order = open_notification(&notification(&[("txnSubType", "06")])).unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    // A masked card number names the buyer; a full one is never kept.
    let order = open_notification(&notification(&[("accNo", "6216********0018")])).unwrap();
    assert_eq!(order.buyer.as_deref(), Some("6216********0018"));
    let order = open_notification(&notification(&[("accNo", "6216610200016980018")])).unwrap();
    assert_eq!(order.buyer, None);
}

#[test]
fn a_tampered_rogue_or_unsigned_notification_is_a_bad_signature() {
    let body = fixture!("notify_qr_paid.form");
    let tampered = body.replace("txnAmt=2550", "txnAmt=2551");
    assert_ne!(tampered, body);
    let rogue = {
        let mut fields = form_fields(body.as_bytes());
        fields.retain(|(k, _)| k != "signature");
        set(&mut fields, "signPubKeyCert", ROGUE_SIGN_CERT.trim());
        let key = ReferenceSigner::from_pkcs8_pem(ROGUE_SIGN_KEY);
        let signature = key_signature(&key, &fields);
        fields.push(("signature".into(), signature));
        encode_form(&fields)
    };
    let unsigned = {
        let mut fields = form_fields(body.as_bytes());
        fields.retain(|(k, _)| k != "signature");
        encode_form(&fields)
    };
    for (name, candidate) in [
        ("tampered", tampered.into_bytes()),
        ("rogue", rogue),
        ("unsigned", unsigned),
        ("garbage, which is unsigned too", b"%%%".to_vec()),
    ] {
        assert!(
            matches!(
                open_notification(&candidate),
                Err(CallbackError::BadSignature)
            ),
            "{name}"
        );
    }
}

#[test]
fn notifications_that_are_not_our_payments_are_malformed() {
    for (name, body) in [
        (
            "another merchant",
            notification(&[("merId", "777290058119999")]),
        ),
        (
            "a refund",
            notification(&[("txnType", "04"), ("txnSubType", "00")]),
        ),
        (
            "a cancel",
            notification(&[("txnType", "31"), ("txnSubType", "00")]),
        ),
        ("another product", notification(&[("txnSubType", "01")])),
        ("no orderId", notification(&[("orderId", "")])),
        ("unknown currency", notification(&[("currencyCode", "978")])),
        ("empty", Vec::new()),
        ("repeated", {
            let mut body = notification(&[]);
            body.extend_from_slice(b"&respCode=00");
            body
        }),
    ] {
        let result = open_notification(&body);
        assert!(
            matches!(result, Err(CallbackError::Malformed(_))),
            "{name}: {result:?}"
        );
    }
}

#[test]
fn a_notification_without_success_is_left_to_a_query() {
    let order = open_notification(&notification(&[("respCode", "05")])).unwrap();
    assert_eq!(order.status, ChannelStatus::Unknown);
    assert_eq!(order.wallet_code.as_deref(), Some("05"));
}

// ---------------------------------------------------------------------------------------------
// The connector

pub(super) fn config(base_url: &str) -> UnionPayConfig {
    UnionPayConfig {
        base_url: base_url.into(),
        mer_id: MER_ID.into(),
        cert_id: CERT_ID.into(),
        merchant_private_key_pem: SecretString::from(MERCHANT_KEY),
        root_cert_pem: ROOT_CERT.into(),
        signing_cert_owner: super::UNIONPAY_SIGNING_CERT_OWNER.into(),
        signing_cert_sha256: Vec::new(),
        back_url: BACK_URL.into(),
        file_base_url: format!("{base_url}/"),
        http: HttpClientConfig::default(),
    }
}

#[test]
fn unusable_settings_are_credential_errors() {
    type Spoil = fn(&mut UnionPayConfig);
    let cases: [(&str, Spoil); 11] = [
        ("no key", |c| {
            c.merchant_private_key_pem = SecretString::from("")
        }),
        ("a certificate as key", |c| {
            c.merchant_private_key_pem = SecretString::from(MERCHANT_CERT)
        }),
        ("no root", |c| c.root_cert_pem = String::new()),
        ("a key as root", |c| c.root_cert_pem = MERCHANT_KEY.into()),
        ("empty merId", |c| c.mer_id = " ".into()),
        ("hex certId", |c| c.cert_id = "1002632709A".into()),
        ("empty certId", |c| c.cert_id = String::new()),
        ("relative base_url", |c| {
            c.base_url = "gateway.95516.com".into()
        }),
        ("ftp back_url", |c| {
            c.back_url = "ftp://example.com/n".into()
        }),
        ("no signing certificate owner", |c| {
            c.signing_cert_owner = String::new()
        }),
        ("a malformed fingerprint", |c| {
            c.signing_cert_sha256 = vec!["not hex".into()]
        }),
    ];
    for (name, spoil) in cases {
        let mut config = config("https://gateway.test.95516.com");
        spoil(&mut config);
        let result = UnionPayConnector::new(config);
        assert!(
            matches!(result, Err(ConnectorError::Credentials(_))),
            "{name}: {:?}",
            result.map(|_| ())
        );
    }
}

#[test]
fn the_connector_describes_itself_without_secrets() {
    let mut with_pkcs1 = config("https://gateway.test.95516.com");
    with_pkcs1.merchant_private_key_pem = SecretString::from(MERCHANT_KEY_PKCS1);
    let connector = UnionPayConnector::new(with_pkcs1).unwrap();
    assert_eq!(connector.wallet(), Wallet::UnionPay);
    let capabilities = connector.capabilities();
    assert!(capabilities.code_payment && capabilities.qr_order && capabilities.refund);
    assert!(capabilities.close && capabilities.reverse);
    assert_eq!(capabilities.currencies, Currency::ALL);
    let debug = format!("{connector:?}");
    assert!(debug.contains(MER_ID));
    assert!(!debug.contains("PRIVATE"));
}

#[test]
fn verify_callback_acknowledges_with_ok_and_wants_a_form() {
    let connector = UnionPayConnector::new(config("https://gateway.test.95516.com")).unwrap();
    let event = connector
        .verify_callback(
            Some("application/x-www-form-urlencoded;charset=UTF-8"),
            fixture!("notify_qr_paid.form").as_bytes(),
        )
        .unwrap();
    assert_eq!(event.order.status, ChannelStatus::Paid);
    assert_eq!(event.ack_body, "ok");
    assert_eq!(event.ack_content_type, "text/plain");
    assert!(connector
        .verify_callback(None, fixture!("notify_qr_paid.form").as_bytes())
        .is_ok());
    assert!(matches!(
        connector.verify_callback(
            Some("application/json"),
            fixture!("notify_qr_paid.form").as_bytes()
        ),
        Err(CallbackError::Malformed(_))
    ));
}

/// What the loopback fake saw of one request.
#[derive(Debug)]
struct SeenRequest {
    path: String,
    fields: Vec<(String, String)>,
}

type FakeAnswer = Box<dyn Fn(&SeenRequest) -> (u16, Vec<u8>) + Send>;

/// A fake UnionPay gateway on 127.0.0.1 answering `answers.len()` requests in order (one per
/// connection). Every request must be a form signed by the merchant key. Returns the base URL.
fn fake_unionpay(answers: Vec<FakeAnswer>) -> (String, std::thread::JoinHandle<Vec<SeenRequest>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen_all = Vec::new();
        for answer in answers {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, head_end, length) = loop {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed before the request was complete");
                buffer.extend_from_slice(&chunk[..n]);
                if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buffer[..pos]).to_string();
                    let length = head
                        .to_ascii_lowercase()
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: ").map(str::to_owned))
                        .map(|v| v.trim().parse::<usize>().unwrap())
                        .unwrap();
                    break (head, pos + 4, length);
                }
            };
            while buffer.len() < head_end + length {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0);
                buffer.extend_from_slice(&chunk[..n]);
            }
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: application/x-www-form-urlencoded;charset=utf-8"),
                "{head}"
            );
            let path = head.split_whitespace().nth(1).unwrap().to_owned();
            let seen = SeenRequest {
                path,
                fields: form_fields(&buffer[head_end..head_end + length]),
            };
            assert_signed_by_merchant(&seen.fields);
            let (status, body) = answer(&seen);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
            seen_all.push(seen);
        }
        seen_all
    });
    (base_url, handle)
}

/// A signed answer echoing the request's `orderId` and `txnTime`.
fn echo(seen: &SeenRequest, extra: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut fields = answer_fields(value(&seen.fields, "orderId").unwrap(), extra);
    set(
        &mut fields,
        "txnTime",
        value(&seen.fields, "txnTime").unwrap(),
    );
    (200, sign_as_unionpay(fields))
}

#[tokio::test]
async fn pay_with_code_signs_posts_and_verifies_through_the_shared_client() {
    let (base_url, server) = fake_unionpay(vec![Box::new(|seen| {
        echo(
            seen,
            &[
                ("respCode", "00"),
                ("queryId", QUERY_ID),
                ("txnAmt", "1000"),
                ("currencyCode", "124"),
            ],
        )
    })]);
    let connector = UnionPayConnector::new(config(&base_url)).unwrap();
    let order = connector
        .pay_with_code(&code_payment(cad(1000)))
        .await
        .unwrap();
    assert_eq!(order.status, ChannelStatus::Paid);
    assert_eq!(order.channel_ref.as_deref(), Some(QUERY_ID));
    let seen = server.join().unwrap();
    assert_eq!(seen[0].path, "/gateway/api/backTransReq.do");
    assert_eq!(value(&seen[0].fields, "qrNo"), Some(PAYMENT_CODE));
    assert_eq!(value(&seen[0].fields, "txnTime"), Some("20240315120000"));
}

#[tokio::test]
async fn reverse_order_queries_for_the_amount_then_cancels() {
    let (base_url, server) = fake_unionpay(vec![
        Box::new(|seen| {
            echo(
                seen,
                &[
                    ("respCode", "00"),
                    ("origRespCode", "05"),
                    ("queryId", QUERY_ID),
                    ("txnAmt", "1000"),
                    ("currencyCode", "124"),
                ],
            )
        }),
        Box::new(|seen| echo(seen, &[("respCode", "00")])),
    ]);
    let connector = UnionPayConnector::new(config(&base_url)).unwrap();
    let outcome = connector.reverse_order(&order_ref(None)).await.unwrap();
    assert_eq!(outcome, ReverseOutcome::Done);
    let seen = server.join().unwrap();
    assert_eq!(seen[0].path, "/gateway/api/queryTrans.do");
    assert_eq!(value(&seen[0].fields, "orderId"), Some(OUT_TRADE_NO));
    assert_eq!(value(&seen[0].fields, "txnTime"), Some("20240315120000"));
    assert_eq!(seen[1].path, "/gateway/api/backTransReq.do");
    assert_eq!(value(&seen[1].fields, "txnType"), Some("31"));
    assert_eq!(value(&seen[1].fields, "origQryId"), Some(QUERY_ID));
    assert_eq!(value(&seen[1].fields, "txnAmt"), Some("1000"));
    assert_eq!(value(&seen[1].fields, "currencyCode"), Some("124"));
    let cancel_id = value(&seen[1].fields, "orderId").unwrap();
    assert!(
        cancel_id.starts_with('C') && cancel_id.len() == 32,
        "{cancel_id}"
    );
    assert!(wire::check_order_id(cancel_id).is_ok());
}

#[tokio::test]
async fn reverse_of_an_order_unionpay_never_saw_sends_no_cancel() {
    let (base_url, server) =
        fake_unionpay(vec![Box::new(|seen| echo(seen, &[("respCode", "34")]))]);
    let connector = UnionPayConnector::new(config(&base_url)).unwrap();
    let outcome = connector
        .reverse_order(&order_ref(Some(QUERY_ID)))
        .await
        .unwrap();
    assert_eq!(outcome, ReverseOutcome::Done);
    assert_eq!(server.join().unwrap().len(), 1);
}

#[tokio::test]
async fn refund_without_a_query_id_queries_the_order_first() {
    let (base_url, server) = fake_unionpay(vec![
        Box::new(|seen| {
            echo(
                seen,
                &[
                    ("respCode", "00"),
                    ("origRespCode", "00"),
                    ("queryId", QUERY_ID),
                ],
            )
        }),
        Box::new(|seen| {
            echo(
                seen,
                &[("respCode", "00"), ("queryId", "782403151300000000027")],
            )
        }),
        Box::new(|seen| echo(seen, &[("respCode", "00"), ("origRespCode", "00")])),
    ]);
    let connector = UnionPayConnector::new(config(&base_url)).unwrap();
    let refund = connector
        .refund(&refund_request(cad(400), None))
        .await
        .unwrap();
    assert_eq!(refund.status, RefundStatus::Processing);
    let refund_ref = RefundRef {
        out_refund_no: OUT_REFUND_NO.into(),
        created_at: created_at() + Duration::hours(1),
    };
    let queried = connector
        .query_refund(&order_ref(None), &refund_ref)
        .await
        .unwrap();
    assert_eq!(queried.status, RefundStatus::Succeeded);
    let seen = server.join().unwrap();
    assert_eq!(value(&seen[0].fields, "orderId"), Some(OUT_TRADE_NO));
    assert_eq!(value(&seen[1].fields, "txnType"), Some("04"));
    assert_eq!(value(&seen[1].fields, "origQryId"), Some(QUERY_ID));
    assert_eq!(value(&seen[1].fields, "orderId"), Some(OUT_REFUND_NO));
    assert_eq!(seen[2].path, "/gateway/api/queryTrans.do");
    assert_eq!(value(&seen[2].fields, "orderId"), Some(OUT_REFUND_NO));
    assert_eq!(value(&seen[2].fields, "txnTime"), Some("20240315130000"));
}

#[tokio::test]
async fn close_of_a_paid_order_is_declined_and_a_5xx_is_unknown() {
    let (base_url, server) = fake_unionpay(vec![
        Box::new(|seen| echo(seen, &[("respCode", "00"), ("origRespCode", "00")])),
        Box::new(|_| (503, b"busy".to_vec())),
    ]);
    let connector = UnionPayConnector::new(config(&base_url)).unwrap();
    let result = connector.close_order(&order_ref(None)).await;
    assert_eq!(describe(&result, |_| "Ok".into()), "Declined ORDER_PAID");
    let result = connector.query_order(&order_ref(None)).await;
    assert_eq!(describe(&result, describe_order), "OutcomeUnknown");
    server.join().unwrap();
}
