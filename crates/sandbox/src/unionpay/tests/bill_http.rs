//! ACP file transfer (`txnType=76`) over real HTTP: signed requests and answers, `98` before
//! the file exists, the 23:00 Beijing cut-off, refunds and cancels on their settlement day.

use std::io::Read;

use chrono::{NaiveDate, NaiveTime};
use flate2::read::ZlibDecoder;
use serde_json::json;

use super::*;
use crate::bills::tests::advance_to;
use crate::unionpay::bill::ZM_WIDTHS;

const FILES: &str = "/filedownload";

impl Harness {
    fn file_fields(&self, settle: NaiveDate) -> Fields {
        let mut f = self.base("76", "01", "unused", &beijing_now());
        f.remove("orderId");
        f.insert("channelType".to_owned(), "07".to_owned());
        f.insert("settleDate".to_owned(), settle.format("%m%d").to_string());
        f.insert("fileType".to_owned(), "00".to_owned());
        f
    }

    async fn file(&self, settle: NaiveDate) -> Reply {
        self.post(FILES, self.file_fields(settle)).await
    }

    /// The ZM records of a settlement day's file, sliced by width.
    async fn records(&self, settle: NaiveDate) -> Vec<Vec<String>> {
        let reply = self.file(settle).await;
        reply.expect("00");
        assert_eq!(
            reply.get("fileName"),
            format!("{}_{}.zip", self.mer_id, settle.format("%Y%m%d"))
        );
        let deflated = BASE64.decode(reply.get("fileContent")).unwrap();
        let mut zipped = Vec::new();
        ZlibDecoder::new(deflated.as_slice())
            .read_to_end(&mut zipped)
            .unwrap();
        let mut zip = ::zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
        let mut file = zip.by_index(0).unwrap();
        assert_eq!(
            file.name(),
            format!("INN{}01ZM_{}", settle.format("%y%m%d"), self.mer_id)
        );
        let mut raw = Vec::new();
        file.read_to_end(&mut raw).unwrap();
        raw.split(|b| *b == b'\n')
            .filter(|l| l.len() > 2)
            .map(|line| {
                let mut at = 0;
                ZM_WIDTHS
                    .iter()
                    .map(|w| {
                        let (text, _, _) = encoding_rs::GBK.decode(&line[at..at + w]);
                        at += w + 1;
                        text.trim_end().to_owned()
                    })
                    .collect()
            })
            .collect()
    }
}

fn at(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

#[tokio::test]
async fn the_file_of_a_settlement_day_closes_at_23_00_beijing() {
    let h = start().await;
    let customer = h.customer(1_000_000);
    let d = advance_to(&h.sandbox, at(22, 30));
    let (u1, u1_order, _) = h
        .consume(&h.code(&customer, Behaviour::Instant), 1234)
        .await;
    u1.expect("00");
    let u1_query = u1.get("queryId").to_owned();
    h.advance(3600); // 23:30: the next settlement day
    let next = d.succ_opt().unwrap();
    let (u2, u2_order, u2_time) = h.consume(&h.code(&customer, Behaviour::Instant), 500).await;
    u2.expect("00");
    let query = h.query(&u2_order, &u2_time).await;
    assert_eq!(query.get("settleDate"), next.format("%m%d").to_string());
    let (refund, refund_order, _) = h.refund(&u1_query, 234).await;
    refund.expect("00");
    let (u3, u3_order, _) = h.consume(&h.code(&customer, Behaviour::Instant), 700).await;
    u3.expect("00");
    let (cancel, cancel_order, _) = h.cancel(u3.get("queryId"), 700).await;
    cancel.expect("00");
    h.advance(5);

    // Not before 09:00 Beijing the day after the settlement day.
    let early = h.file(d).await;
    early.expect("98");
    assert!(early.verified.is_ok());
    advance_to(&h.sandbox, at(9, 0));
    let first = h.records(d).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let s22 = &first[0];
    assert_eq!(
        (s22[0].as_str(), s22[11].as_str()),
        ("S22", u1_order.as_str())
    );
    assert_eq!(
        (s22[6].as_str(), s22[15].as_str(), s22[16].as_str()),
        ("000000001234", "D000000000007", "C000000001227")
    );
    assert_eq!(s22[9], u1_query);
    assert_eq!(s22[27], h.mer_id);
    h.file(next).await.expect("98");

    advance_to(&h.sandbox, at(9, 0));
    let second = h.records(next).await;
    let by_code = |code: &str, order: &str| {
        second
            .iter()
            .find(|r| r[0] == code && r[11] == order)
            .unwrap_or_else(|| panic!("no {code} {order} in {second:?}"))
            .clone()
    };
    let u2 = by_code("S22", &u2_order);
    // Made at 23:30 on the calendar day before its settlement day.
    assert!(
        u2[4].starts_with(&format!("{}233", d.format("%m%d"))),
        "{}",
        u2[4]
    );
    let s30 = by_code("S30", &refund_order);
    // UnionPay keeps the fee of a refunded consume.
    assert_eq!(
        (s30[6].as_str(), s30[15].as_str(), s30[16].as_str()),
        ("000000000234", "C000000000000", "D000000000234")
    );
    assert_eq!(
        (s30[19].as_str(), s30[26].as_str()),
        ("04", u1_query.as_str())
    );
    by_code("S22", &u3_order);
    let s31 = by_code("S31", &cancel_order);
    // A cancel voids the consume: its whole fee comes back.
    assert_eq!(
        (s31[6].as_str(), s31[15].as_str(), s31[16].as_str()),
        ("000000000700", "C000000000004", "D000000000696")
    );
    assert_eq!(second.len(), 4);
}

#[tokio::test]
async fn file_transfer_checks_signature_and_fields_and_shows_breaks() {
    let h = start().await;
    let customer = h.customer(1_000_000);
    let d = advance_to(&h.sandbox, at(12, 0));
    let (paid, order, _) = h
        .consume(&h.code(&customer, Behaviour::Instant), 1000)
        .await;
    paid.expect("00");
    let path = format!(
        "{}/control/bills/unionpay/{}/breaks",
        h.sandbox.base_url(),
        d.format("%Y-%m-%d")
    );
    for planted in [
        json!({"kind": "fee", "out_trade_no": order, "fee": 9}),
        json!({"kind": "extra_trade", "out_trade_no": "GHOST0001", "amount": 4200}),
    ] {
        let response = reqwest::Client::new()
            .post(&path)
            .json(&planted)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{planted}");
    }
    advance_to(&h.sandbox, at(9, 0));
    let records = h.records(d).await;
    let real = records.iter().find(|r| r[11] == order).unwrap();
    assert_eq!(
        (real[15].as_str(), real[16].as_str()),
        ("D000000000009", "C000000000991")
    );
    let ghost = records.iter().find(|r| r[11] == "GHOST0001").unwrap();
    assert_eq!(
        (ghost[0].as_str(), ghost[6].as_str()),
        ("S22", "000000004200")
    );

    // A signature by another key, a wrong file type, a wrong transaction type.
    let mut forged = h.signed(h.file_fields(d));
    forged.insert("settleDate".to_owned(), "0101".to_owned());
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(forged.iter())
        .finish();
    h.post_raw(FILES, body.into_bytes()).await.expect("11");
    let mut other = h.file_fields(d);
    other.insert("fileType".to_owned(), "01".to_owned());
    h.post(FILES, other).await.expect("30");
    let mut other = h.file_fields(d);
    other.insert("txnType".to_owned(), "77".to_owned());
    h.post(FILES, other).await.expect("30");
    let mut other = h.file_fields(d);
    other.insert("settleDate".to_owned(), "1301".to_owned());
    h.post(FILES, other).await.expect("10");
    // A day without trades still has its (empty) file.
    let reply = h.file(d.pred_opt().unwrap()).await;
    reply.expect("00");
}
