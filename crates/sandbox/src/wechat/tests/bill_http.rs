//! `/pay/downloadbill` over real HTTP: signatures and errors, "Bill Creating" before 09:00
//! Beijing the next day, bill days in Beijing time, refunds on their own day, fee rates
//! recorded when paid, and every planted break as the bill shows it.

use std::io::Read;

use chrono::{NaiveDate, NaiveTime};
use serde_json::{json, Value};

use super::*;
use crate::bills::tests::advance_to;
use crate::state::{RefundInput, RefundOutcome, ReverseOutcome};

fn at(h: u32, m: u32, s: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, s).unwrap()
}

fn ymd(day: NaiveDate) -> String {
    day.format("%Y%m%d").to_string()
}

/// The raw answer of a download: content type and bytes.
struct Download {
    content_type: String,
    body: Vec<u8>,
}

impl Download {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    /// The `return_msg` of a refusal (which must be XML).
    fn refusal(&self) -> BTreeMap<String, String> {
        assert_eq!(self.content_type, "text/xml", "{}", self.text());
        let fields = xml::parse(&self.text()).unwrap();
        assert_eq!(fields["return_code"], "FAIL");
        fields
    }

    /// The bill's lines (which must be text, not XML).
    fn lines(&self) -> Vec<String> {
        assert_eq!(
            self.content_type,
            "text/plain;charset=utf-8",
            "{}",
            self.text()
        );
        let text = self.text();
        assert!(!text.starts_with('<'));
        text.split("\r\n").map(str::to_owned).collect()
    }
}

impl Harness {
    async fn download_raw(&self, fields: Vec<(String, String)>) -> Download {
        let response = self
            .http
            .post(format!("{}/pay/downloadbill", self.base()))
            .body(to_xml(&fields))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        Download {
            content_type,
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    async fn bill(&self, day: NaiveDate, extra: &[(&str, &str)]) -> Download {
        let date = ymd(day);
        let mut fields = vec![("bill_date", date.as_str())];
        fields.extend_from_slice(extra);
        self.download_raw(self.signed(&fields, false)).await
    }

    async fn pay(&self, customer: &str, out_trade_no: &str, total: &str) {
        let code = self.code(customer, Behaviour::Instant);
        let answer = self.micropay(out_trade_no, total, &code).await;
        assert_eq!(answer["result_code"], "SUCCESS", "{answer:?}");
    }

    fn core_refund(&self, out_trade_no: &str, out_refund_no: &str, amount: i64) {
        let input = RefundInput {
            wallet: Wallet::Wechat,
            merchant: self.mch_id.clone(),
            out_trade_no: out_trade_no.to_owned(),
            out_refund_no: out_refund_no.to_owned(),
            amount,
        };
        let outcome = self.sandbox.with(|s, rng, now| s.refund(rng, input, now));
        assert!(matches!(outcome, RefundOutcome::Accepted { .. }));
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/control{path}", self.running.url()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The row of `out_trade_no` with 交易状态 `status`, split into its values.
fn row<'a>(lines: &'a [String], out_trade_no: &str, status: &str) -> Option<Vec<&'a str>> {
    lines.iter().find_map(|l| {
        let values: Vec<&str> = l.strip_prefix('`')?.split(",`").collect();
        (values.len() == 27 && values[6] == out_trade_no && values[9] == status).then_some(values)
    })
}

#[tokio::test]
async fn downloadbill_serves_each_days_bill_once_created() {
    let h = start().await;
    let c = h.customer(1_000_000);
    let d = advance_to(&h.sandbox, at(10, 0, 0));
    h.pay(&c, "B1", "1234").await;
    let code = h.code(&c, Behaviour::Instant);
    let answer = h
        .call(
            "/pay/micropay",
            &[
                ("body", "Coffee"),
                ("out_trade_no", "B2"),
                ("total_fee", "500"),
                ("spbill_create_ip", "10.0.0.8"),
                ("auth_code", &code),
                ("device_info", "POS-7"),
            ],
        )
        .await;
    assert_eq!(answer["result_code"], "SUCCESS");
    h.core_refund("B1", "B1R1", 234);
    h.advance(5);

    // Before 09:00 Beijing the next day, the bill is still being made.
    assert_eq!(
        h.bill(d, &[("bill_type", "ALL")]).await.refusal()["return_msg"],
        "Bill Creating"
    );
    let next = advance_to(&h.sandbox, at(9, 0, 0));
    assert_eq!(next, d.succ_opt().unwrap());
    let all = h.bill(d, &[("bill_type", "ALL")]).await;
    let lines = all.lines();
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert!(lines[0].starts_with("交易时间,公众账号ID,商户号,特约商户号"));
    let b1 = row(&lines, "B1", "SUCCESS").unwrap();
    assert_eq!(
        (b1[12], b1[22], b1[23], b1[24]),
        ("12.34", "0.07000", "0.60%", "12.34")
    );
    assert!(b1[0].starts_with(&d.format("%Y-%m-%d").to_string()));
    let refund = row(&lines, "B1", "REFUND").unwrap();
    assert_eq!(
        (refund[15], refund[16], refund[19], refund[22]),
        ("B1R1", "2.34", "SUCCESS", "-0.01000")
    );
    assert_eq!(row(&lines, "B2", "SUCCESS").unwrap()[4], "POS-7");
    assert_eq!(lines[5], "`3,`17.34,`2.34,`0.00,`0.09000,`17.34,`2.34");

    // A missing bill_type reads as ALL; GZIP is the same text; device_info filters.
    assert_eq!(h.bill(d, &[]).await.text(), all.text());
    let gz = h
        .bill(d, &[("bill_type", "ALL"), ("tar_type", "GZIP")])
        .await;
    assert_eq!(gz.content_type, "application/x-gzip");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(gz.body.as_slice())
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, all.text());
    let pos7 = h.bill(d, &[("device_info", "POS-7")]).await.lines();
    assert_eq!(pos7.len(), 5);
    assert!(row(&pos7, "B2", "SUCCESS").is_some());
    let success = h.bill(d, &[("bill_type", "SUCCESS")]).await.lines();
    assert_eq!(success.len(), 6);
    assert_eq!(success[1].split(",`").count(), 20);

    // A refund on the next day lands in the next day's bill; the earlier bill is unchanged.
    h.core_refund("B2", "B2R1", 500);
    h.advance(5);
    assert_eq!(h.bill(d, &[]).await.text(), all.text());
    assert_eq!(
        h.bill(next, &[]).await.refusal()["return_msg"],
        "Bill Creating"
    );
    advance_to(&h.sandbox, at(9, 0, 0));
    let refunds = h.bill(next, &[("bill_type", "REFUND")]).await.lines();
    assert_eq!(refunds.len(), 5, "{refunds:?}");
    let r: Vec<&str> = refunds[1].split(",`").collect();
    assert_eq!(
        (r[6], r[17], r[18], r[24]),
        ("B2", "B2R1", "5.00", "-0.03000")
    );
    let none = h.bill(next, &[("bill_type", "SUCCESS")]).await.refusal();
    assert_eq!(none["return_msg"], "No Bill Exist");
    assert_eq!(none["error_code"], "20002");
    let empty_day = d.pred_opt().unwrap();
    assert_eq!(
        h.bill(empty_day, &[]).await.refusal()["return_msg"],
        "No Bill Exist"
    );
    assert_eq!(
        h.bill(d, &[("bill_type", "RECHARGE_REFUND")])
            .await
            .refusal()["return_msg"],
        "No Bill Exist"
    );
}

#[tokio::test]
async fn downloadbill_checks_the_request_like_every_v2_call() {
    let h = start().await;
    let c = h.customer(1_000_000);
    let d = advance_to(&h.sandbox, at(10, 0, 0));
    h.pay(&c, "E1", "100").await;
    advance_to(&h.sandbox, at(9, 0, 0));
    let date = ymd(d);

    assert_eq!(
        h.bill(d, &[("bill_type", "FOO")]).await.refusal()["return_msg"],
        "invalid bill_type"
    );
    assert_eq!(
        h.bill(d, &[("tar_type", "ZIP")]).await.refusal()["return_msg"],
        "invalid tar_type"
    );
    let bad_date = h
        .download_raw(h.signed(&[("bill_date", "2024-01-15")], false))
        .await;
    assert_eq!(bad_date.refusal()["return_msg"], "invalid bill_date");
    let no_date = h
        .download_raw(h.signed(&[("bill_type", "ALL")], false))
        .await;
    assert_eq!(no_date.refusal()["return_msg"], "missing parameter");
    // Signed with another key.
    let mut forged = owned(&[
        ("appid", &h.appid),
        ("mch_id", &h.mch_id),
        ("nonce_str", "abc"),
        ("bill_date", &date),
    ]);
    let sign = test_sign(&forged, "not-the-key", false);
    forged.push(("sign".to_owned(), sign));
    assert_eq!(
        h.download_raw(forged).await.refusal()["return_msg"],
        "SIGN ERROR"
    );
    let garbage = h
        .http
        .post(format!("{}/pay/downloadbill", h.base()))
        .body("not xml")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(garbage.contains("data format error"), "{garbage}");

    // HMAC-SHA256 and the institution's sub-merchant work like everywhere else.
    let sub = h.sandbox.accounts(Wallet::Wechat)["sub_mch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hmac = h
        .download_raw(h.signed(&[("bill_date", &date), ("sub_mch_id", &sub)], true))
        .await;
    assert!(row(&hmac.lines(), "E1", "SUCCESS").is_some());
    let other = h.bill(d, &[("sub_mch_id", "1999999999")]).await;
    assert_eq!(other.refusal()["return_msg"], "invalid sub_mch_id");
}

#[tokio::test]
async fn bill_days_are_beijing_days_and_fees_keep_the_rate_of_their_time() {
    let h = start().await;
    let c = h.customer(1_000_000);
    let d = advance_to(&h.sandbox, at(23, 59, 30));
    h.pay(&c, "N1", "1000").await;
    let (status, fee) = h
        .control(
            reqwest::Method::PUT,
            "/fees/wechat",
            Some(json!({"rate_percent": "0.38"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        fee,
        json!({"wallet": "wechat", "rate_percent": "0.38", "rate_ppm": 3800})
    );
    h.advance(60);
    h.pay(&c, "N2", "1000").await;
    advance_to(&h.sandbox, at(9, 0, 0));
    advance_to(&h.sandbox, at(9, 0, 0));
    let first = h.bill(d, &[]).await.lines();
    let n1 = row(&first, "N1", "SUCCESS").unwrap();
    assert!(n1[0].contains(" 23:59:3"), "{}", n1[0]);
    assert_eq!((n1[22], n1[23]), ("0.06000", "0.60%"));
    assert!(row(&first, "N2", "SUCCESS").is_none());
    let second = h.bill(d.succ_opt().unwrap(), &[]).await.lines();
    let n2 = row(&second, "N2", "SUCCESS").unwrap();
    assert!(n2[0].contains(" 00:00:"));
    // 10.00 × 0.38% = 0.038, rounded to the fen.
    assert_eq!((n2[22], n2[23]), ("0.04000", "0.38%"));
    let (_, fees) = h.control(reqwest::Method::GET, "/fees", None).await;
    assert_eq!(fees["wechat"]["rate_percent"], "0.38");
    assert_eq!(fees["alipay"]["rate_percent"], "0.60");
}

#[tokio::test]
async fn every_planted_break_shows_in_the_bill() {
    let h = start().await;
    let c = h.customer(10_000_000);
    let d = advance_to(&h.sandbox, at(10, 0, 0));
    for (no, total) in [
        ("K1", "1000"),
        ("K2", "2000"),
        ("K3", "3000"),
        ("K4", "4000"),
        ("K5", "5000"),
        ("K7", "7000"),
    ] {
        h.pay(&c, no, total).await;
    }
    h.core_refund("K1", "K1R1", 100);
    // K6: never paid (the customer never confirmed; reversed). K7: paid, then reversed.
    let code = h.code(&c, Behaviour::NeverConfirm);
    let answer = h.micropay("K6", "600", &code).await;
    assert_eq!(answer["err_code"], "USERPAYING");
    for no in ["K6", "K7"] {
        let outcome = h
            .sandbox
            .with(|s, _, now| s.reverse(Wallet::Wechat, &h.mch_id, no, now));
        assert!(matches!(outcome, ReverseOutcome::Reversed { .. }));
    }
    h.advance(5);
    let path = format!("/bills/wechat/{}/breaks", d.format("%Y-%m-%d"));
    let post = reqwest::Method::POST;
    let before = h
        .control(
            reqwest::Method::GET,
            &format!("/bills/wechat/{}", d.format("%Y-%m-%d")),
            None,
        )
        .await
        .1;
    assert_eq!(before["entries"].as_array().unwrap().len(), 8, "{before}");
    for planted in [
        json!({"kind": "missing_trade", "out_trade_no": "K1"}),
        json!({"kind": "extra_trade", "out_trade_no": "GHOST1", "amount": 777}),
        json!({"kind": "amount", "out_trade_no": "K2", "amount": 2100}),
        json!({"kind": "status_paid", "out_trade_no": "K6"}),
        json!({"kind": "status_paid", "out_trade_no": "K7"}),
        json!({"kind": "status_closed", "out_trade_no": "K3"}),
        json!({"kind": "fee", "out_trade_no": "K4", "fee": 99}),
        json!({"kind": "missing_refund", "out_refund_no": "K1R1"}),
        json!({"kind": "extra_refund", "out_trade_no": "K5", "out_refund_no": "GHOSTR1", "amount": 300}),
        json!({"kind": "next_day", "out_trade_no": "K5"}),
    ] {
        let (status, body) = h.control(post.clone(), &path, Some(planted.clone())).await;
        assert_eq!(status, 201, "{planted} {body}");
        assert_eq!(body["kind"], planted["kind"]);
    }
    // Refused: unknown targets, targets not in that day's bill, invented numbers taken.
    for (planted, status) in [
        (
            json!({"kind": "missing_trade", "out_trade_no": "NOPE"}),
            404,
        ),
        (
            json!({"kind": "missing_refund", "out_refund_no": "NOPE"}),
            404,
        ),
        (
            json!({"kind": "extra_trade", "out_trade_no": "K2", "amount": 1}),
            409,
        ),
        (json!({"kind": "status_paid", "out_trade_no": "K2"}), 409),
        (
            json!({"kind": "amount", "out_trade_no": "K2", "amount": 0}),
            400,
        ),
        (json!({"kind": "sideways", "out_trade_no": "K2"}), 400),
    ] {
        assert_eq!(
            h.control(post.clone(), &path, Some(planted.clone()))
                .await
                .0,
            status,
            "{planted}"
        );
    }
    let other_day = format!(
        "/bills/wechat/{}/breaks",
        d.pred_opt().unwrap().format("%Y-%m-%d")
    );
    assert_eq!(
        h.control(
            post.clone(),
            &other_day,
            Some(json!({"kind": "missing_trade", "out_trade_no": "K2"}))
        )
        .await
        .0,
        409
    );
    let (_, listed) = h.control(reqwest::Method::GET, &path, None).await;
    assert_eq!(listed.as_array().unwrap().len(), 10);

    advance_to(&h.sandbox, at(9, 0, 0));
    let lines = h.bill(d, &[]).await.lines();
    assert!(row(&lines, "K1", "SUCCESS").is_none(), "missing_trade");
    let ghost = row(&lines, "GHOST1", "SUCCESS").expect("extra_trade");
    assert_eq!((ghost[12], ghost[22]), ("7.77", "0.05000"));
    assert!(ghost[5].starts_with("4200"));
    assert_eq!(row(&lines, "K2", "SUCCESS").expect("amount")[12], "21.00");
    assert_eq!(
        row(&lines, "K6", "SUCCESS").expect("status_paid")[12],
        "6.00"
    );
    assert!(row(&lines, "K7", "SUCCESS").is_some());
    assert!(
        row(&lines, "K7", "REVOKED").is_none(),
        "status_paid of a reversed trade"
    );
    let k3 = row(&lines, "K3", "REVOKED").expect("status_closed");
    assert_eq!((k3[12], k3[24]), ("0.00", "30.00"));
    assert_eq!(row(&lines, "K4", "SUCCESS").expect("fee")[22], "0.99000");
    assert!(
        !lines.iter().any(|l| l.contains("`K1R1,")),
        "missing_refund"
    );
    let extra = row(&lines, "K5", "REFUND").expect("extra_refund");
    assert_eq!(
        (extra[15], extra[16], extra[22]),
        ("GHOSTR1", "3.00", "-0.02000")
    );
    assert!(row(&lines, "K5", "SUCCESS").is_none(), "next_day");

    // The next day's bill has K5, dated just after midnight.
    assert_eq!(
        h.bill(d.succ_opt().unwrap(), &[]).await.refusal()["return_msg"],
        "Bill Creating"
    );
    advance_to(&h.sandbox, at(9, 0, 0));
    let next = h.bill(d.succ_opt().unwrap(), &[]).await.lines();
    let k5 = row(&next, "K5", "SUCCESS").expect("next_day arrives");
    assert_eq!(
        k5[0],
        format!("{} 00:00:01", d.succ_opt().unwrap().format("%Y-%m-%d"))
    );

    // Clearing: one by id, then the rest.
    let id = listed[0]["id"].as_u64().unwrap();
    let (status, _) = h
        .control(reqwest::Method::DELETE, &format!("{path}/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        h.control(reqwest::Method::DELETE, &format!("{path}/{id}"), None)
            .await
            .0,
        404
    );
    let (_, cleared) = h.control(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(cleared["removed"], 9);
    let lines = h.bill(d, &[]).await.lines();
    assert!(row(&lines, "K1", "SUCCESS").is_some());
    assert!(row(&lines, "K7", "REVOKED").is_some());
    assert!(row(&lines, "GHOST1", "SUCCESS").is_none());
}

#[tokio::test]
async fn a_day_of_thousands_of_trades_is_billed_quickly() {
    let h = start().await;
    let c = h.customer(0);
    let d = advance_to(&h.sandbox, at(0, 10, 0));
    // 4000 paid trades and 1000 refunds through the core (the API would only be slower to
    // set up), spread over the day.
    h.sandbox.with(|s, rng, now| {
        s.customers.get_mut(&c).unwrap().balance_fen = 1_000_000_000;
        for n in 0..4000 {
            let at = now + Duration::seconds(n * 20);
            let code = s
                .mint_code(
                    rng,
                    Wallet::Wechat,
                    &c,
                    Behaviour::Instant,
                    Duration::seconds(60),
                    at,
                )
                .unwrap()
                .code;
            let input = crate::state::PayCodeInput {
                wallet: Wallet::Wechat,
                merchant: h.mch_id.clone(),
                out_trade_no: format!("L{n:05}"),
                currency: "CNY".to_owned(),
                total: 100 + n,
                auth_code: code,
                subject: "Load".to_owned(),
                notify_url: None,
                fingerprint: format!("f{n}"),
            };
            assert!(matches!(
                s.pay_code(rng, input, at),
                crate::state::PayCodeOutcome::Paid(_)
            ));
            if n % 4 == 0 {
                let refund = RefundInput {
                    wallet: Wallet::Wechat,
                    merchant: h.mch_id.clone(),
                    out_trade_no: format!("L{n:05}"),
                    out_refund_no: format!("L{n:05}R"),
                    amount: 50,
                };
                s.refund(rng, refund, at);
            }
        }
    });
    advance_to(&h.sandbox, at(9, 0, 0)); // the same day, 09:00
    advance_to(&h.sandbox, at(9, 0, 0)); // the next: the bill is made
    let started = std::time::Instant::now();
    let lines = h.bill(d, &[]).await.lines();
    let took = started.elapsed();
    assert_eq!(lines.len(), 5000 + 4, "{}", lines.len());
    assert!(lines[5002].starts_with("`5000,"), "{}", lines[5002]);
    // Generous for a debug build on a shared machine; a release build takes milliseconds.
    assert!(took < StdDuration::from_secs(10), "{took:?}");
}
