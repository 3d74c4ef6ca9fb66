//! Property tests of the codec: seal/open round trip, tamper detection, and no panics on
//! arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;
use qrgate_ottpay::messages::*;
use qrgate_ottpay::{
    digest, open, seal, CallbackEnvelope, Data, RequestEnvelope, ResponseEnvelope, SignKey,
};
use serde_json::Value;

/// Random transaction data: random keys (including non-ASCII and empty), string values
/// including any Unicode, quotes, backslashes and control characters.
fn string_data() -> impl Strategy<Value = Data> {
    let key = "\\PC{0,10}|[a-z_]{1,12}";
    let value = "\\PC{0,24}|[\\x00-\\x7f]{0,24}|[张三€😀\"\\\\/]{0,6}";
    proptest::collection::vec((key, value), 0..12).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    })
}

fn sign_key() -> impl Strategy<Value = String> {
    "[0-9A-F]{16}|\\PC{0,20}"
}

/// Any JSON value, up to a small depth.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
        "[0-9.+\\- e]{0,20}".prop_map(Value::String),
        proptest::sample::select(vec![
            "ALIPAY",
            "WECHATPAY",
            "UNIONPAY",
            "success",
            "init",
            "",
            "100",
            "-1",
            "1.5",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("\\PC{0,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

const KNOWN_KEYS: &[&str] = &[
    "order_id",
    "operator_id",
    "amount",
    "tip",
    "Tip",
    "biz_type",
    "call_back_url",
    "code_url",
    "bizpay_order_id",
    "sale_num",
    "auth_code",
    "order_status",
    "trade_time",
    "buyer_login_id",
    "total_amount",
    "receipt_amount",
    "buyer_pay_amount",
    "rspCode",
    "rspMsg",
    "refund_amount",
    "ori_order_id",
    "refund_amt",
    "fee_type",
    "feeType",
    "rate",
    "rate_time",
    "finish_time",
    "merchant_id",
];

/// Arbitrary data whose keys are mostly the ones the typed messages read.
fn any_data() -> impl Strategy<Value = Data> {
    let key = prop_oneof![
        4 => proptest::sample::select(KNOWN_KEYS.to_vec()).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ];
    proptest::collection::vec((key, any_value()), 0..20).prop_map(|kv| kv.into_iter().collect())
}

fn from_data_all(d: &Data) {
    let _ = ActivePayRequest::from_data(d);
    let _ = ActivePayResponse::from_data(d);
    let _ = PassivePayRequest::from_data(d);
    let _ = PassivePayResponse::from_data(d);
    let _ = StatusQueryRequest::from_data(d);
    let _ = StatusQueryResponse::from_data(d);
    let _ = RefundRequest::from_data(d);
    let _ = RefundResponse::from_data(d);
    let _ = RefundQueryRequest::from_data(d);
    let _ = ExRateQueryRequest::from_data(d);
    let _ = ExRateQueryResponse::from_data(d);
    let _ = CallbackData::from_data(d);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn seal_open_round_trip(data in string_data(), k in sign_key()) {
        let key = SignKey::new(k);
        let sealed = seal(&data, &key);
        prop_assert_eq!(sealed.md5.len(), 32);
        prop_assert!(sealed.md5.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
        prop_assert_eq!(&sealed.md5, &digest(&data));
        prop_assert!(!sealed.data.contains(['\n', '\r', ' ']));
        let opened = open(&sealed.data, &sealed.md5, &key).unwrap();
        // Same content and same key order.
        prop_assert_eq!(
            serde_json::to_string(&opened).unwrap(),
            serde_json::to_string(&data).unwrap()
        );
        prop_assert_eq!(opened, data);
    }

    #[test]
    fn flipped_ciphertext_byte_fails(data in string_data(), idx in any::<prop::sample::Index>(),
                                     bit in 0u8..8) {
        let key = SignKey::new("6698851A525C9433");
        let sealed = seal(&data, &key);
        let mut ct = STANDARD.decode(&sealed.data).unwrap();
        let i = idx.index(ct.len());
        ct[i] ^= 1 << bit;
        let tampered = STANDARD.encode(&ct);
        prop_assert!(open(&tampered, &sealed.md5, &key).is_err());
    }

    #[test]
    fn any_byte_change_fails(data in string_data(), idx in any::<prop::sample::Index>(),
                             delta in 1u8..=255) {
        let key = SignKey::new("6698851A525C9433");
        let sealed = seal(&data, &key);
        let mut ct = STANDARD.decode(&sealed.data).unwrap();
        let i = idx.index(ct.len());
        ct[i] = ct[i].wrapping_add(delta);
        prop_assert!(open(&STANDARD.encode(&ct), &sealed.md5, &key).is_err());
    }

    #[test]
    fn flipped_md5_char_fails(data in string_data(), idx in 0usize..32, repl in 0usize..15,
                              lower in any::<bool>()) {
        let key = SignKey::new("6698851A525C9433");
        let sealed = seal(&data, &key);
        let mut chars: Vec<char> = sealed.md5.chars().collect();
        // A different hex digit (not merely a case change).
        let others: Vec<char> = "0123456789ABCDEF".chars().filter(|c| *c != chars[idx]).collect();
        let c = others[repl];
        chars[idx] = if lower { c.to_ascii_lowercase() } else { c };
        let md5: String = chars.into_iter().collect();
        prop_assert!(open(&sealed.data, &md5, &key).is_err());
    }

    #[test]
    fn md5_any_char_change_fails(data in string_data(), idx in 0usize..32, c in any::<char>()) {
        let key = SignKey::new("6698851A525C9433");
        let sealed = seal(&data, &key);
        let mut chars: Vec<char> = sealed.md5.chars().collect();
        prop_assume!(!c.eq_ignore_ascii_case(&chars[idx]));
        chars[idx] = c;
        let md5: String = chars.into_iter().collect();
        prop_assert!(open(&sealed.data, &md5, &key).is_err());
    }

    #[test]
    fn other_key_fails(data in string_data(), k1 in sign_key(), k2 in sign_key()) {
        prop_assume!(k1 != k2);
        let sealed = seal(&data, &SignKey::new(k1));
        prop_assert!(open(&sealed.data, &sealed.md5, &SignKey::new(k2)).is_err());
    }

    #[test]
    fn open_never_panics(data in "\\PC{0,200}|[A-Za-z0-9+/= \\r\\n]{0,200}",
                         md5 in "\\PC{0,40}|[0-9a-fA-F]{32}", k in "\\PC{0,20}") {
        let _ = open(&data, &md5, &SignKey::new(k));
    }

    #[test]
    fn open_never_panics_on_block_sized_data(ct in proptest::collection::vec(any::<u8>(), 0..8)
                                                 .prop_flat_map(|v| proptest::collection::vec(any::<u8>(), v.len() * 16)),
                                             md5 in "[0-9a-fA-F]{32}") {
        let key = SignKey::new("6698851A525C9433");
        let r = open(&STANDARD.encode(&ct), &md5, &key);
        if let Ok(d) = r {
            from_data_all(&d);
        }
    }

    #[test]
    fn envelope_parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = RequestEnvelope::parse(&body);
        let _ = ResponseEnvelope::parse(&body);
        let _ = CallbackEnvelope::parse(&body);
    }

    #[test]
    fn envelope_parse_never_panics_on_json(fields in proptest::collection::vec(
        (proptest::sample::select(vec!["action", "version", "merchant_id", "terminal_no",
            "operator_id", "data", "md5", "rsp_code", "rsp_msg", "x"]), any_value()), 0..10),
        as_b64 in any::<bool>()) {
        let obj: Data = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let mut body = serde_json::to_string(&obj).unwrap();
        if as_b64 {
            body = STANDARD.encode(body);
        }
        let key = SignKey::new("6698851A525C9433");
        if let Ok(env) = RequestEnvelope::parse(body.as_bytes()) {
            let _ = env.open(&key);
            let _ = env.action();
            prop_assert_eq!(RequestEnvelope::parse(env.to_json().as_bytes()).unwrap(), env);
        }
        if let Ok(env) = ResponseEnvelope::parse(body.as_bytes()) {
            let _ = env.open(&key);
            let _ = env.code();
            prop_assert_eq!(ResponseEnvelope::parse(env.to_json().as_bytes()).unwrap(), env);
        }
        if let Ok(env) = CallbackEnvelope::parse(body.as_bytes()) {
            let _ = env.open(&key);
            prop_assert_eq!(CallbackEnvelope::parse(env.to_json().as_bytes()).unwrap(), env);
        }
    }

    #[test]
    fn from_data_never_panics(d in any_data()) {
        from_data_all(&d);
        let _ = digest(&d);
        let _ = qrgate_ottpay::digest_java_style(&d);
        // Whatever the content, sealing and opening gives it back.
        let key = SignKey::new("6698851A525C9433");
        let s = seal(&d, &key);
        let opened = open(&s.data, &s.md5, &key);
        prop_assert!(opened.is_ok(), "{:?}", opened);
    }
}
