//! Encode/decode cost of a typical ACTIVEPAY request (the data of test vector TV-2).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qrgate_ottpay::{Action, ActivePayRequest, Data, RequestEnvelope, SignKey};

const TV2: &str = r#"{"order_id":"POS20240101120000","operator_id":"0000000696","amount":"100","tip":"0","biz_type":"WECHATPAY","call_back_url":"https://merchant.example/ottpay/notify"}"#;

fn codec(c: &mut Criterion) {
    let key = SignKey::new("6698851A525C9433");
    let data: Data = serde_json::from_str(TV2).unwrap();
    let body = RequestEnvelope::seal(
        Action::ActivePay,
        "ON00004652",
        Some("POS-01"),
        Some("0000000696"),
        &data,
        &key,
    )
    .to_json();

    let mut g = c.benchmark_group("activepay_request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        b.iter(|| {
            RequestEnvelope::seal(
                Action::ActivePay,
                black_box("ON00004652"),
                Some("POS-01"),
                Some("0000000696"),
                black_box(&data),
                &key,
            )
            .to_json()
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let env = RequestEnvelope::parse(black_box(body.as_bytes())).unwrap();
            let data = env.open(&key).unwrap();
            ActivePayRequest::from_data(&data).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
