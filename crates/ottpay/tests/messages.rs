//! Typed transaction data: round trips, amount validation, aliases, string-only output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use qrgate_ottpay::messages::*;
use qrgate_ottpay::{open, seal, Data, SignKey};
use serde_json::{json, Value};

fn obj(v: Value) -> Data {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn only_strings(d: &Data) -> bool {
    d.values().all(Value::is_string)
}

fn active(amount: Value) -> Data {
    obj(json!({"amount": amount, "biz_type": "ALIPAY", "call_back_url": "https://x/cb"}))
}

#[test]
fn amount_validation() {
    for bad in [
        "abc",
        "-1",
        "1.5",
        "",
        "+1",
        " 1",
        "1e3",
        "0x10",
        "1000000000000000000",
    ] {
        match ActivePayRequest::from_data(&active(json!(bad))) {
            Err(FieldError::Invalid {
                field: "amount", ..
            }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let e = ActivePayRequest::from_data(&active(json!("1.5"))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid amount: must be a whole number of cents"
    );
    let e = ActivePayRequest::from_data(&active(json!(-1))).unwrap_err();
    assert_eq!(e.to_string(), "invalid amount: must not be negative");
    for bad in [json!(true), json!([1]), json!({"a": 1})] {
        assert!(matches!(
            ActivePayRequest::from_data(&active(bad)),
            Err(FieldError::Invalid {
                field: "amount",
                ..
            })
        ));
    }
    let mut d = active(json!("1"));
    d.remove("amount");
    assert_eq!(
        ActivePayRequest::from_data(&d),
        Err(FieldError::Missing("amount"))
    );
    assert_eq!(
        FieldError::Missing("amount").to_string(),
        "missing field amount"
    );
    d.insert("amount".into(), Value::Null);
    assert_eq!(
        ActivePayRequest::from_data(&d),
        Err(FieldError::Missing("amount"))
    );
    // Numbers are accepted, integral floats too.
    assert_eq!(
        ActivePayRequest::from_data(&active(json!(250)))
            .unwrap()
            .amount,
        Cents(250)
    );
    assert_eq!(
        ActivePayRequest::from_data(&active(json!(250.0)))
            .unwrap()
            .amount,
        Cents(250)
    );
}

#[test]
fn tip_alias() {
    let mut d = active(json!("100"));
    d.insert("Tip".into(), json!("15"));
    assert_eq!(
        ActivePayRequest::from_data(&d).unwrap().tip,
        Some(Cents(15))
    );
    // `tip` wins over `Tip`.
    d.insert("tip".into(), json!("20"));
    assert_eq!(
        ActivePayRequest::from_data(&d).unwrap().tip,
        Some(Cents(20))
    );
    // An empty `tip` falls back to `Tip`.
    d.insert("tip".into(), json!(""));
    assert_eq!(
        ActivePayRequest::from_data(&d).unwrap().tip,
        Some(Cents(15))
    );
    let mut p = obj(json!({"amount": "1", "auth_code": "28", "biz_type": "WECHATPAY", "Tip": "3"}));
    assert_eq!(
        PassivePayRequest::from_data(&p).unwrap().tip,
        Some(Cents(3))
    );
    p.insert("Tip".into(), json!("x"));
    assert!(matches!(
        PassivePayRequest::from_data(&p),
        Err(FieldError::Invalid { field: "Tip", .. })
    ));
    // Written back as `tip`.
    let out = PassivePayRequest::from_data(&obj(json!({"amount": "1", "auth_code": "28",
        "biz_type": "WECHATPAY", "Tip": "3"})))
    .unwrap()
    .to_data();
    assert_eq!(out.get("tip"), Some(&json!("3")));
    assert!(!out.contains_key("Tip"));
}

#[test]
fn optional_operator_and_extra_keys() {
    // §13.8 / §13.9: no operator_id, no tip, extra keys ignored.
    let d = obj(
        json!({"amount": "100", "biz_type": "UNIONPAY", "call_back_url": "https://x/cb?code=1",
        "currency_type": "CAD", "merchant_id": "ON00004652"}),
    );
    let r = ActivePayRequest::from_data(&d).unwrap();
    assert_eq!(r.operator_id, None);
    assert_eq!(r.tip, None);
    assert_eq!(r.call_back_url, "https://x/cb?code=1");
    let q = StatusQueryRequest::from_data(&obj(
        json!({"order_id": "A1", "orderId": "x", "bizType": 1}),
    ))
    .unwrap();
    assert_eq!(q.order_id, "A1");
    let e = ExRateQueryRequest::from_data(&obj(json!({"unrelated": "1"}))).unwrap();
    assert_eq!(e.fee_type, None);
    assert!(e.to_data().is_empty());
    assert_eq!(
        StatusQueryRequest::from_data(&Data::new()),
        Err(FieldError::Missing("order_id"))
    );
    assert!(matches!(
        StatusQueryRequest::from_data(&obj(json!({"order_id": ""}))),
        Err(FieldError::Invalid {
            field: "order_id",
            ..
        })
    ));
}

#[test]
fn ex_rate_response_wire_form() {
    let r = ExRateQueryResponse {
        fee_type: "CAD".into(),
        rate: 650_000_000,
        rate_time: Some("20240101120000".into()),
    };
    let d = r.to_data();
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"feeType":"CAD","rate":"650000000","rate_time":"20240101120000"}"#
    );
    assert_eq!(ExRateQueryResponse::from_data(&d).unwrap(), r);
    let mut bad = d.clone();
    bad.insert("rate".into(), json!("6.5"));
    assert!(matches!(
        ExRateQueryResponse::from_data(&bad),
        Err(FieldError::Invalid { field: "rate", .. })
    ));
}

#[test]
fn status_query_response_keys() {
    let r = StatusQueryResponse {
        rsp_code: Some("SUCCESS".into()),
        rsp_msg: Some("success".into()),
        order_status: OrderStatus::PartialRefunded,
        trade_time: None,
        order_id: "A".into(),
        bizpay_order_id: None,
        amount: Cents(5),
        total_amount: Cents(5),
        receipt_amount: None,
        buyer_pay_amount: None,
        tip: None,
        refund_amount: Some(Cents(2)),
        buyer_login_id: None,
    };
    let d = r.to_data();
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"rspCode":"SUCCESS","rspMsg":"success","order_status":"partial_refunded","order_id":"A","amount":"5","total_amount":"5","refund_amount":"2"}"#
    );
}

#[test]
fn enums_round_trip() {
    for b in BizType::ALL {
        assert_eq!(BizType::parse(b.as_str()), Some(b));
    }
    for s in OrderStatus::ALL {
        assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        assert_eq!(s.as_str(), s.as_str().to_ascii_lowercase());
    }
    assert_eq!(OrderStatus::ALL.len(), 9);
    assert_eq!(
        OrderStatus::parse("fully_refunded"),
        Some(OrderStatus::FullyRefunded)
    );
}

// ---- property-based round trips -------------------------------------------------------

fn s() -> impl Strategy<Value = String> {
    // Non-empty, any Unicode (including quotes, backslashes, control characters).
    "\\PC{1,12}|[a-zA-Z0-9_\"\\\\/+%=\\n\\t]{1,12}"
}

fn os() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(s())
}

fn cents() -> impl Strategy<Value = Cents> {
    (0u64..=999_999_999_999_999_999).prop_map(Cents)
}

fn oc() -> impl Strategy<Value = Option<Cents>> {
    proptest::option::of(cents())
}

fn biz() -> impl Strategy<Value = BizType> {
    proptest::sample::select(BizType::ALL.to_vec())
}

fn status() -> impl Strategy<Value = OrderStatus> {
    proptest::sample::select(OrderStatus::ALL.to_vec())
}

/// to_data emits strings only, from_data reads it back, and it survives seal/open.
fn check<T: Message + PartialEq + std::fmt::Debug>(v: &T) -> Result<(), TestCaseError> {
    let d = v.to_data();
    prop_assert!(only_strings(&d));
    prop_assert_eq!(&T::from_data(&d)?, v);
    let key = SignKey::new("6698851A525C9433");
    let sealed = seal(&d, &key);
    let opened =
        open(&sealed.data, &sealed.md5, &key).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&T::from_data(&opened)?, v);
    Ok(())
}

proptest! {
    #[test]
    fn active_pay_request(order_id in os(), operator_id in os(), amount in cents(), tip in oc(),
                          biz_type in biz(), call_back_url in s()) {
        check(&ActivePayRequest { order_id, operator_id, amount, tip, biz_type, call_back_url })?;
    }

    #[test]
    fn active_pay_response(code_url in s(), order_id in s(), bizpay_order_id in os()) {
        check(&ActivePayResponse { code_url, order_id, bizpay_order_id })?;
    }

    #[test]
    fn passive_pay_request(order_id in os(), operator_id in os(), amount in cents(), tip in oc(),
                           sale_num in os(), auth_code in s(), biz_type in biz()) {
        check(&PassivePayRequest { order_id, operator_id, amount, tip, sale_num, auth_code, biz_type })?;
    }

    #[test]
    fn passive_pay_response(order_status in status(), trade_time in os(), order_id in s(),
                            buyer_login_id in os(), total_amount in cents(), receipt_amount in oc(),
                            buyer_pay_amount in oc(), tip in oc(), bizpay_order_id in os()) {
        check(&PassivePayResponse { order_status, trade_time, order_id, buyer_login_id, total_amount,
                                    receipt_amount, buyer_pay_amount, tip, bizpay_order_id })?;
    }

    #[test]
    fn status_query(order_id in s(), rsp_code in os(), rsp_msg in os(), order_status in status(),
                    trade_time in os(), bizpay_order_id in os(), amount in cents(), total_amount in cents(),
                    receipt_amount in oc(), buyer_pay_amount in oc(), tip in oc(), refund_amount in oc(),
                    buyer_login_id in os()) {
        check(&StatusQueryRequest { order_id: order_id.clone() })?;
        check(&StatusQueryResponse { rsp_code, rsp_msg, order_status, trade_time, order_id,
                                     bizpay_order_id, amount, total_amount, receipt_amount,
                                     buyer_pay_amount, tip, refund_amount, buyer_login_id })?;
    }

    #[test]
    fn refund(order_id in s(), opt_order_id in os(), ori_order_id in s(), refund_amt in cents(),
              order_status in s()) {
        check(&RefundRequest { order_id: opt_order_id, ori_order_id: ori_order_id.clone(), refund_amt })?;
        check(&RefundQueryRequest { order_id: order_id.clone() })?;
        check(&RefundResponse { order_id, ori_order_id, refund_amt, order_status })?;
    }

    #[test]
    fn ex_rate(fee_type in os(), fee in s(), rate in -999_999_999_999_999_999i64..=999_999_999_999_999_999,
               rate_time in os()) {
        check(&ExRateQueryRequest { fee_type })?;
        check(&ExRateQueryResponse { fee_type: fee, rate, rate_time })?;
    }

    #[test]
    fn callback(finish_time in s(), order_id in s(), amount in cents(), tip in oc(),
                bizpay_order_id in s(), merchant_id in s(), order_status in status()) {
        check(&CallbackData { finish_time, order_id, amount, tip, bizpay_order_id, merchant_id,
                              order_status })?;
    }
}

#[test]
fn passive_pay_debug_never_shows_the_payment_code() {
    let request = PassivePayRequest {
        order_id: None,
        operator_id: None,
        amount: Cents(100),
        tip: None,
        sale_num: None,
        auth_code: "134567890123456789".into(),
        biz_type: BizType::WechatPay,
    };
    let shown = format!("{request:?}");
    assert!(!shown.contains("134567890123456789"), "{shown}");
    assert!(shown.contains("auth_code: \"***\""), "{shown}");
}
