//! Test vectors TV-1..TV-4 of ottpay.md §4.7, byte for byte, plus the error envelope,
//! base64 tolerance and the Java-style number digest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use md5::{Digest as _, Md5};
use qrgate_ottpay::{
    derive_aes_key, digest, digest_java_style, encrypt_with_md5, open, seal, Action,
    ActivePayRequest, ActivePayResponse, BizType, Cents, Data, ExRateQueryRequest, OpenError,
    RequestEnvelope, ResponseEnvelope, RspCode, SignKey, EMPTY_DIGEST,
};

const SK: &str = "6698851A525C9433";

fn key() -> SignKey {
    SignKey::new(SK)
}

fn parse(json: &str) -> Data {
    serde_json::from_str(json).unwrap()
}

struct Vector {
    plaintext: &'static str,
    md5: &'static str,
    aes_key: &'static str,
    data: &'static str,
}

const TV1: Vector = Vector {
    plaintext: r#"{"orderId":"1234567890","idCardName":"张三","idCardNum":"123456789012345678","bankCardNum":"62000000000010","mobile":"13711111111","idCardType":"1"}"#,
    md5: "C12F9560769C2CB55E6954935B325916",
    aes_key: "EF1712FC070C2C21",
    data: "Y2+GoqBBPc6EJ9JzXRFoOziKd+DqWg5FiUZY1IYoVBVv0xfFznT9/qanMpiNEamEN2NM7J+hxoRn8VGSJImA2soeip9nYr+VJvTXe7D8j4aXiKyFipuPVCQLiCDg3jkJP+S2EezYMf7crqKY/YAni1CCeIwr2aJfFVT1vYhsWIm8t3eyPL//cY4kwombAKhE2gAdEFXz6gVvencz80aRWQ==",
};

const TV2: Vector = Vector {
    plaintext: r#"{"order_id":"POS20240101120000","operator_id":"0000000696","amount":"100","tip":"0","biz_type":"WECHATPAY","call_back_url":"https://merchant.example/ottpay/notify"}"#,
    md5: "5FB2A849225FCD2DA0667D8284FEAC01",
    aes_key: "4065692DB7E30F7B",
    data: "FGsvHYPsNn8GC9SMN59fJDTc6/JThv3W1/+DZH3KTZJIoYWuwOJg48kg3kQwecd4BtTKcmLarSqqT0lOSKvn9IiQjTwhRsATu8xSNSsN812YoQJ0ZZEXg9fKgdceMr9TFu0ATXkDg75t3N55dBCeS4JFcLiPf7dpeDMnyhJmFPy8XgnC/v81vAoju1bcocPun44nblFJRsiLbizsbloX3PI+gFtUuJQc1bHocL2Lp0I=",
};

const TV3: Vector = Vector {
    plaintext: r#"{"code_url":"weixin://wxpay/bizpayurl?pr=AbCdEfG","order_id":"POS20240101120000"}"#,
    md5: "4EBDEB2027A8867A1EC89B1A2F28E14F",
    aes_key: "9A8B005CCD18FAB5",
    data: "iXEI9CzhDw7ApoEsBAOp1WHwyWsQW2POarN76CiGa+9kVGesZxwOTCbgqqxlqbB+bjE0g6XAy+TDK0FgMhQrgMfTiX6Ty6LTUCAqwNOusxaBytXP58GYTussce4Wc9eY",
};

const TV4: Vector = Vector {
    plaintext: r#"{"fee_type":"CAD"}"#,
    md5: "ECCB0954FCA9F2005AEA084605DF5EE9",
    aes_key: "CEFBD6AE911FC99C",
    data: "MteK74yzijkB6+yOakNsZMbaJl7WvkJeSx5FBDbIdmM=",
};

fn check(v: &Vector) {
    let data = parse(v.plaintext);
    // Compact JSON in insertion order, non-ASCII unescaped.
    assert_eq!(serde_json::to_string(&data).unwrap(), v.plaintext);
    assert_eq!(digest(&data), v.md5);
    // Only strings: the Java-style digest is the same.
    assert_eq!(digest_java_style(&data), v.md5);
    assert_eq!(&derive_aes_key(v.md5, &key()), v.aes_key.as_bytes());
    // A lower-case md5 field derives the same key (it is upper-cased first).
    assert_eq!(
        &derive_aes_key(&v.md5.to_ascii_lowercase(), &key()),
        v.aes_key.as_bytes()
    );
    let sealed = seal(&data, &key());
    assert_eq!(sealed.md5, v.md5);
    assert_eq!(sealed.data, v.data);
    assert_eq!(
        encrypt_with_md5(v.plaintext.as_bytes(), v.md5, &key()),
        v.data
    );
    let opened = open(v.data, v.md5, &key()).unwrap();
    assert_eq!(opened, data);
    assert_eq!(serde_json::to_string(&opened).unwrap(), v.plaintext);
    // Case-insensitive md5 comparison.
    assert_eq!(
        open(v.data, &v.md5.to_ascii_lowercase(), &key()).unwrap(),
        data
    );
}

#[test]
fn tv1_appendix_a() {
    check(&TV1);
    let data = parse(TV1.plaintext);
    assert_eq!(TV1.plaintext.len(), 150);
    // Full MD5 of the key input.
    let full = Md5::digest(format!("{}{}", TV1.md5, SK).as_bytes());
    let hex: String = full.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(hex, "60063EF1EF1712FC070C2C210330BB00");
    // The concatenation of step 1.
    let concat = "62000000000010张三1234567890123456781137111111111234567890";
    let hex: String = Md5::digest(concat.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(hex, digest(&data));
}

#[test]
fn tv2_activepay_request() {
    check(&TV2);
    let typed = ActivePayRequest::from_data(&parse(TV2.plaintext)).unwrap();
    assert_eq!(
        typed,
        ActivePayRequest {
            order_id: Some("POS20240101120000".into()),
            operator_id: Some("0000000696".into()),
            amount: Cents(100),
            tip: Some(Cents(0)),
            biz_type: BizType::WechatPay,
            call_back_url: "https://merchant.example/ottpay/notify".into(),
        }
    );
    assert_eq!(
        serde_json::to_string(&typed.to_data()).unwrap(),
        TV2.plaintext
    );
    let env = RequestEnvelope::seal(
        Action::ActivePay,
        "ON00004652",
        None,
        None,
        &typed.to_data(),
        &key(),
    );
    assert_eq!(env.data, TV2.data);
    assert_eq!(env.md5, TV2.md5);
}

#[test]
fn tv3_activepay_response() {
    check(&TV3);
    let typed = ActivePayResponse::from_data(&parse(TV3.plaintext)).unwrap();
    let r = ResponseEnvelope::sealed(RspCode::Success, "success", &typed.to_data(), &key());
    assert_eq!(
        r.to_json(),
        format!(
            r#"{{"rsp_code":"SUCCESS","rsp_msg":"success","data":"{}","md5":"{}"}}"#,
            TV3.data, TV3.md5
        )
    );
}

#[test]
fn tv4_ex_rate_query() {
    check(&TV4);
    let typed = ExRateQueryRequest::from_data(&parse(TV4.plaintext)).unwrap();
    assert_eq!(typed.fee_type.as_deref(), Some("CAD"));
}

#[test]
fn error_envelope_is_sealed_empty_object() {
    for code in RspCode::ALL {
        let r = ResponseEnvelope::error(code, "", &key());
        assert_eq!(r.md5.as_deref(), Some(EMPTY_DIGEST));
        assert_eq!(r.open(&key()).unwrap(), Data::new());
        assert_eq!(r.rsp_msg, code.default_message());
        let back = ResponseEnvelope::parse(r.to_json().as_bytes()).unwrap();
        assert_eq!(back.open(&key()).unwrap(), Data::new());
    }
    // A different key does not open it.
    let r = ResponseEnvelope::error(RspCode::Fail, "x", &key());
    assert!(r.open(&SignKey::new("0000000000000000")).is_err());
}

fn wrap(s: &str, width: usize, sep: &str) -> String {
    s.as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(sep)
}

#[test]
fn base64_tolerance() {
    for v in [&TV1, &TV2, &TV3] {
        let data = parse(v.plaintext);
        for sep in ["\n", "\r\n", "\t", " "] {
            let wrapped = wrap(v.data, 60, sep);
            assert_eq!(open(&wrapped, v.md5, &key()).unwrap(), data, "sep {sep:?}");
        }
        let wrapped = format!("  {}\n", wrap(v.data, 60, "\r\n"));
        assert_eq!(open(&wrapped, v.md5, &key()).unwrap(), data);
        // '+' damaged to ' ' by URL decoding.
        assert!(v.data.contains('+'));
        let damaged = v.data.replace('+', " ");
        assert_eq!(open(&damaged, v.md5, &key()).unwrap(), data);
        // Damaged and wrapped with line breaks.
        let both = wrap(&damaged, 60, "\r\n");
        assert_eq!(open(&both, v.md5, &key()).unwrap(), data);
        // Missing '=' padding.
        let unpadded = v.data.trim_end_matches('=');
        assert_eq!(open(unpadded, v.md5, &key()).unwrap(), data);
    }
}

fn md5_upper(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[test]
fn java_style_numbers() {
    let plaintext = r#"{"amount":100,"biz_type":"WECHATPAY","call_back_url":"u"}"#;
    let data = parse(plaintext);
    // The JavaScript client digests 100 as "100.0".
    let js_md5 = md5_upper("100.0WECHATPAYu");
    assert_eq!(digest_java_style(&data), js_md5);
    let ct = encrypt_with_md5(plaintext.as_bytes(), &js_md5, &key());
    assert_eq!(open(&ct, &js_md5, &key()).unwrap(), data);
    // A client digesting the literal text "100".
    let lit_md5 = md5_upper("100WECHATPAYu");
    assert_eq!(digest(&data), lit_md5);
    let ct = encrypt_with_md5(plaintext.as_bytes(), &lit_md5, &key());
    let opened = open(&ct, &lit_md5, &key()).unwrap();
    assert_eq!(
        ActivePayRequest::from_data(&opened).unwrap().amount,
        Cents(100)
    );
    // A float written 100.0 digested as "100".
    let plaintext = r#"{"amount":100.0,"biz_type":"WECHATPAY","call_back_url":"u"}"#;
    let ct = encrypt_with_md5(plaintext.as_bytes(), &lit_md5, &key());
    assert!(open(&ct, &lit_md5, &key()).is_ok());
    // Something else still fails.
    let other = md5_upper("101WECHATPAYu");
    let ct = encrypt_with_md5(plaintext.as_bytes(), &other, &key());
    assert_eq!(open(&ct, &other, &key()), Err(OpenError::DigestMismatch));
}

#[test]
fn php_style_escapes_open() {
    // PHP json_encode escapes '/' and non-ASCII; the receiver parses JSON, not bytes.
    let plaintext = r#"{"idCardName":"\u5f20\u4e09","url":"https:\/\/x"}"#;
    let data = parse(plaintext);
    let md5 = digest(&data);
    assert_eq!(md5, md5_upper("张三https://x"));
    let ct = encrypt_with_md5(plaintext.as_bytes(), &md5, &key());
    assert_eq!(open(&ct, &md5, &key()).unwrap(), data);
}

#[test]
fn open_error_kinds() {
    let k = key();
    assert_eq!(open(TV4.data, "ECCB", &k), Err(OpenError::BadDigestField));
    assert_eq!(open("%%%%", TV4.md5, &k), Err(OpenError::Base64));
    assert_eq!(
        open("AAAAAAAAAAAAAAAAAAAA", TV4.md5, &k),
        Err(OpenError::Length)
    );
    assert!(open(TV4.data, TV4.md5, &SignKey::new("wrong")).is_err());
    // Not JSON / not an object, with a matching key.
    let ct = encrypt_with_md5(b"not json", TV4.md5, &k);
    assert_eq!(open(&ct, TV4.md5, &k), Err(OpenError::NotJson));
    let ct = encrypt_with_md5(b"[1,2]", TV4.md5, &k);
    assert_eq!(open(&ct, TV4.md5, &k), Err(OpenError::NotObject));
    let ct = encrypt_with_md5(b"\xff\xfe{}", TV4.md5, &k);
    assert_eq!(open(&ct, TV4.md5, &k), Err(OpenError::NotJson));
    // Right key, wrong digest.
    let ct = encrypt_with_md5(br#"{"fee_type":"USD"}"#, TV4.md5, &k);
    assert_eq!(open(&ct, TV4.md5, &k), Err(OpenError::DigestMismatch));
}
