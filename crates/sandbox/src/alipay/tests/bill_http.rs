//! `alipay.data.dataservice.bill.downloadurl.query` and its download URL over real HTTP.

use std::io::Read;

use chrono::{NaiveDate, NaiveTime};
use serde_json::json;

use super::*;
use crate::bills::tests::advance_to;

const METHOD: &str = "alipay.data.dataservice.bill.downloadurl.query";

fn at(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The zip's files: GBK-decoded names and contents.
fn unzip(bytes: Vec<u8>) -> Vec<(String, String)> {
    let mut zip = ::zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|n| {
            let mut file = zip.by_index(n).unwrap();
            let (name, _, bad) = encoding_rs::GBK.decode(file.name_raw());
            assert!(!bad);
            let name = name.into_owned();
            let mut raw = Vec::new();
            file.read_to_end(&mut raw).unwrap();
            let (text, _, bad) = encoding_rs::GBK.decode(&raw);
            assert!(!bad);
            (name, text.into_owned())
        })
        .collect()
}

impl Harness {
    async fn bill_url(&self, day: &str) -> Reply {
        self.call(METHOD, json!({"bill_type": "trade", "bill_date": day}))
            .await
    }

    async fn get(&self, url: &str) -> (u16, Vec<u8>) {
        let response = self.http.get(url).send().await.unwrap();
        (
            response.status().as_u16(),
            response.bytes().await.unwrap().to_vec(),
        )
    }

    /// The detail file's rows (25 cells each) of `day`'s bill.
    async fn detail_rows(&self, day: NaiveDate) -> Vec<Vec<String>> {
        let reply = self.bill_url(&day_text(day)).await;
        assert_eq!(reply.code(), "10000", "{}", reply.raw);
        let (status, bytes) = self.get(reply.field("bill_download_url")).await;
        assert_eq!(status, 200);
        let files = unzip(bytes);
        let detail = &files[0].1;
        detail
            .split("\r\n")
            .filter(|l| !l.starts_with('#') && l.contains('\t'))
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    }
}

#[tokio::test]
async fn the_bill_url_serves_a_gbk_zip_for_30_seconds() {
    let h = start().await;
    let d = advance_to(&h.sandbox, at(10, 0));
    let customer = h.customer(1_000_000);
    let code = h.code(&customer, Behaviour::Instant);
    assert_eq!(h.pay("A1", &code, "12.34").await.code(), "10000");
    let code = h.code(&customer, Behaviour::Instant);
    let cad = h
        .call(
            "alipay.trade.pay",
            json!({"out_trade_no": "A2", "scene": "bar_code", "auth_code": code,
                   "subject": "Maple, syrup", "total_amount": "10.00", "trans_currency": "CAD"}),
        )
        .await;
    assert_eq!(cad.code(), "10000", "{}", cad.raw);
    assert_eq!(h.refund("A1", "2.34", Some("A1R1")).await.code(), "10000");

    // Today's date is refused; yesterday's is not made before 09:00.
    let today = h.bill_url(&day_text(d)).await;
    assert_eq!(
        (today.code(), today.sub_code()),
        ("40002", "isv.invalid-parameter")
    );
    assert!(today.verified);
    advance_to(&h.sandbox, at(0, 30));
    h.bill_url(&day_text(d))
        .await
        .assert_business("isp.bill_not_exist");
    advance_to(&h.sandbox, at(9, 0));
    let reply = h.bill_url(&day_text(d)).await;
    assert_eq!(reply.code(), "10000", "{}", reply.raw);
    assert!(reply.verified, "{}", reply.raw);
    let url = reply.field("bill_download_url").to_owned();
    assert!(url.contains("/alipay/downloadBillFile.resource?bizType=trade&userId="));
    assert!(url.contains(&format!("{}0156", h.seller_id)));
    assert!(url.contains("fileType=csv.zip"));

    let (status, bytes) = h.get(&url).await;
    assert_eq!(status, 200);
    let files = unzip(bytes);
    let stamp = d.format("%Y%m%d");
    assert_eq!(
        files[0].0,
        format!("{}0156_{stamp}_业务明细.csv", h.seller_id)
    );
    assert_eq!(
        files[1].0,
        format!("{}0156_{stamp}_业务明细(汇总).csv", h.seller_id)
    );
    let detail: Vec<&str> = files[0].1.split("\r\n").collect();
    assert_eq!(detail[0], "#支付宝业务明细查询");
    let rows: Vec<Vec<&str>> = detail[5..8]
        .iter()
        .map(|l| l.split(',').collect())
        .collect();
    let a1 = rows
        .iter()
        .find(|r| r[1] == "A1\t" && r[2] == "交易")
        .unwrap();
    assert_eq!((a1[11], a1[12], a1[22]), ("12.34", "12.34", "-0.07"));
    assert!(a1[0].ends_with('\t') && a1[0].len() > 20);
    let a2 = rows.iter().find(|r| r[1] == "A2\t").unwrap();
    // In the pricing (and, in the sandbox, settlement) currency; the comma of the subject
    // cannot split the row.
    assert_eq!((a2[3], a2[11], a2[22]), ("Maple， syrup", "10.00", "-0.06"));
    let refund = rows.iter().find(|r| r[2] == "退款").unwrap();
    assert_eq!(
        (refund[1], refund[11], refund[21], refund[22]),
        ("A1\t", "-2.34", "A1R1\t", "0.01")
    );
    assert_eq!(
        detail[9],
        "#交易合计：2笔，商家实收共22.34元，商家优惠共0.00元"
    );
    assert_eq!(
        detail[10],
        "#退款合计：1笔，商家实收退款共-2.34元，商家优惠退款共0.00元"
    );
    let summary: Vec<&str> = files[1].1.split("\r\n").collect();
    assert_eq!(
        summary[5],
        "合计,,2,1,20.00,20.00,0.00,0.00,0.00,-0.12,0.00,19.88"
    );

    // The URL dies after 30 s; a changed one never worked.
    let tampered = url.replace("bizDates=", "bizDates=1");
    assert_eq!(h.get(&tampered).await.0, 403);
    h.advance(31);
    let (status, body) = h.get(&url).await;
    assert_eq!(status, 403);
    assert_eq!(String::from_utf8(body).unwrap(), "下载超时，请重新下载");

    // No trade, no bill; only daily trade bills.
    h.bill_url(&day_text(d.pred_opt().unwrap()))
        .await
        .assert_business("isp.bill_not_exist");
    let monthly = h.bill_url(&d.format("%Y-%m").to_string()).await;
    assert_eq!(monthly.code(), "40002");
    let other = h
        .call(
            METHOD,
            json!({"bill_type": "signcustomer", "bill_date": day_text(d)}),
        )
        .await;
    assert_eq!(other.code(), "40002");
}

#[tokio::test]
async fn planted_breaks_show_in_alipays_detail_file() {
    let h = start().await;
    let d = advance_to(&h.sandbox, at(10, 0));
    h.paid("P1", "10.00").await;
    h.paid("P2", "20.00").await;
    h.paid("P3", "30.00").await;
    let path = format!(
        "{}/control/bills/alipay/{}/breaks",
        h.running.url(),
        day_text(d)
    );
    for planted in [
        json!({"kind": "missing_trade", "out_trade_no": "P1"}),
        json!({"kind": "status_closed", "out_trade_no": "P2"}),
        json!({"kind": "amount", "out_trade_no": "P3", "amount": 3100}),
        json!({"kind": "extra_refund", "out_trade_no": "P3", "out_refund_no": "GHOSTR", "amount": 500}),
        json!({"kind": "extra_trade", "out_trade_no": "GHOST", "amount": 100}),
    ] {
        let response = h.http.post(&path).json(&planted).send().await.unwrap();
        assert_eq!(response.status(), 201, "{planted}");
    }
    advance_to(&h.sandbox, at(9, 0));
    let rows = h.detail_rows(d).await;
    let find = |no: &str, kind: &str| {
        rows.iter()
            .find(|r| r[1] == format!("{no}\t") && r[2] == kind)
    };
    assert!(find("P1", "交易").is_none());
    assert!(find("P2", "交易").is_none(), "closed: left out");
    assert_eq!(find("P3", "交易").unwrap()[11], "31.00");
    let ghost_refund = find("P3", "退款").unwrap();
    assert_eq!(
        (ghost_refund[11].as_str(), ghost_refund[21].as_str()),
        ("-5.00", "GHOSTR\t")
    );
    assert_eq!(find("GHOST", "交易").unwrap()[11], "1.00");
}
