//! ACP file transfer (`txnType=76`, `bills.md` §3): the merchant's reconciliation file of a
//! settlement day. The request is a form signed like every ACP request, posted to
//! `/unionpay/filedownload` (UnionPay's own is the root of `filedownload.95516.com`); the
//! signed answer carries `fileContent` = Base64 of the zlib-deflated zip, and `fileName`.
//! The zip holds one GBK file `INN<yyMMdd>01ZM_<merId>`: one fixed-width `ZM` record per
//! consume (`S22`), refund (`S30`) and cancel of a paid consume (`S31`), fields of the widths
//! §3.3 lists separated by one space.
//!
//! A settlement day closes at 23:00 Beijing; its file exists from 09:00 Beijing the day after
//! it (`respCode=98` before). `settleDate` is `MMDD`: the latest such day not after today's.

use std::collections::BTreeMap;
use std::io::Write;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{Datelike, NaiveDate};
use flate2::write::ZlibEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::gateway::{answer, expect_value, verify_signature};
use super::orders::{self, UnionpayOrderKind};
use super::trans::{need, refuse};
use super::wire::{self, UnionpayCode, UnionpayFields};
use super::{UnionpayAccount, UnionpayContext};
use crate::bills::{self, gbk, zip, BillEntry, EntryKind};
use crate::model::{TradeKind, Wallet};

const WALLET: Wallet = Wallet::Unionpay;

/// The fields a file-transfer answer echoes.
const ECHOED: [&str; 9] = [
    "bizType",
    "accessType",
    "txnType",
    "txnSubType",
    "merId",
    "txnTime",
    "settleDate",
    "fileType",
    "reqReserved",
];

pub(crate) async fn file_transfer(State(ctx): State<UnionpayContext>, body: Bytes) -> Response {
    let account = UnionpayAccount::of(&ctx.sandbox);
    let Some(account) = account else {
        return answer(
            &ctx,
            None,
            refuse(UnionpayCode::NotSupported, "no merchant account"),
        );
    };
    let (mut out, result) = match wire::parse_form(&body) {
        Ok(fields) => {
            let echo: UnionpayFields = ECHOED
                .iter()
                .filter_map(|k| {
                    let v = fields.get(*k).filter(|v| !v.is_empty())?;
                    Some(((*k).to_owned(), v.clone()))
                })
                .collect();
            (echo, transfer(&ctx, &account, &fields))
        }
        Err(e) => (
            UnionpayFields::new(),
            Err(refuse(UnionpayCode::FormatError, e)),
        ),
    };
    out.extend(result.unwrap_or_else(|refusal| refusal));
    answer(&ctx, Some(&account), out)
}

/// The settlement day an `MMDD` names: the latest one with that month and day that is not
/// after today's settlement day.
pub(crate) fn resolve_settle_date(mmdd: &str, today: NaiveDate) -> Option<NaiveDate> {
    if mmdd.len() != 4 || !mmdd.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let month: u32 = mmdd.get(..2)?.parse().ok()?;
    let day: u32 = mmdd.get(2..)?.parse().ok()?;
    // Four years back covers 29 February.
    (0..=4)
        .filter_map(|back| NaiveDate::from_ymd_opt(today.year() - back, month, day))
        .find(|d| *d <= today)
}

fn transfer(
    ctx: &UnionpayContext,
    account: &UnionpayAccount,
    fields: &UnionpayFields,
) -> Result<UnionpayFields, UnionpayFields> {
    for key in [
        "version",
        "encoding",
        "signMethod",
        "certId",
        "signature",
        "txnType",
        "txnSubType",
        "bizType",
        "accessType",
        "merId",
        "txnTime",
        "settleDate",
        "fileType",
    ] {
        need(fields, key)?;
    }
    expect_value(fields, "version", wire::VERSION)?;
    if !fields
        .get("encoding")
        .is_some_and(|e| e.eq_ignore_ascii_case(wire::ENCODING))
    {
        return Err(refuse(UnionpayCode::FormatError, "encoding must be utf-8"));
    }
    let mer_id = need(fields, "merId")?;
    if !wire::valid_mer_id(mer_id) {
        return Err(refuse(UnionpayCode::FormatError, "merId must be 15 digits"));
    }
    if mer_id != account.mer_id {
        return Err(refuse(
            UnionpayCode::NotSupported,
            format!("unknown merchant {mer_id}"),
        ));
    }
    verify_signature(ctx, account, fields)?;
    expect_value(fields, "bizType", wire::BIZ_TYPE)?;
    expect_value(fields, "accessType", wire::ACCESS_TYPE)?;
    // UnionPay's demo sends 07 here; the profile's other calls send 08. Either is taken.
    if let Some(channel) = fields.get("channelType").filter(|c| !c.is_empty()) {
        if channel != "07" && channel != wire::CHANNEL_TYPE {
            return Err(refuse(
                UnionpayCode::FormatError,
                "channelType must be 07 or 08",
            ));
        }
    }
    if wire::parse_time(need(fields, "txnTime")?).is_none() {
        return Err(refuse(
            UnionpayCode::FormatError,
            "txnTime must be yyyyMMddHHmmss",
        ));
    }
    let (txn_type, sub_type) = (need(fields, "txnType")?, need(fields, "txnSubType")?);
    if (txn_type, sub_type) != ("76", "01") {
        return Err(refuse(
            UnionpayCode::NotSupported,
            format!("txnType {txn_type}/txnSubType {sub_type} is not served at this path (76/01)"),
        ));
    }
    let file_type = need(fields, "fileType")?;
    if file_type != "00" {
        return Err(refuse(
            UnionpayCode::NotSupported,
            format!("fileType {file_type}: the sandbox has the merchant's reconciliation file (00) only"),
        ));
    }
    let now = ctx.sandbox.now();
    let today = bills::today(WALLET, now);
    let Some(day) = resolve_settle_date(need(fields, "settleDate")?, today) else {
        return Err(refuse(UnionpayCode::FormatError, "settleDate must be MMDD"));
    };
    if now < bills::ready_at(day) {
        return Err(refuse(
            UnionpayCode::FileNotFound,
            format!(
                "the file of settlement day {} is created at 09:00 Beijing the next day",
                day.format("%Y-%m-%d")
            ),
        ));
    }
    let (entries, cancels) = ctx.sandbox.with(|s, _, now| {
        s.settle_all(now);
        (bills::bill_entries(s, WALLET, day), cancel_orders(s))
    });
    let text = zm_file(&account.mer_id, &entries, &cancels);
    let name = zm_file_name(&account.mer_id, day);
    let content = file_content(&name, &text, day)
        .map_err(|e| refuse(UnionpayCode::Unknown, format!("cannot build the file: {e}")))?;
    let mut out = super::trans::fields_of(UnionpayCode::Success);
    out.insert("fileContent".to_owned(), content);
    out.insert(
        "fileName".to_owned(),
        format!("{}_{}.zip", account.mer_id, day.format("%Y%m%d")),
    );
    Ok(out)
}

/// A cancel of a paid consume as the file shows it: the cancel's own `orderId` and `queryId`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CancelOrder {
    pub order_id: String,
    pub query_id: String,
}

/// The successful cancels, by the consume's `orderId`.
fn cancel_orders(state: &crate::state::State) -> BTreeMap<String, CancelOrder> {
    orders::all(state)
        .into_iter()
        .filter(|(_, o)| o.kind == UnionpayOrderKind::Cancel && o.result.as_deref() == Some("00"))
        .filter_map(|(id, o)| {
            Some((
                o.orig_order_id?,
                CancelOrder {
                    order_id: id,
                    query_id: o.query_id.unwrap_or_default(),
                },
            ))
        })
        .collect()
}

/// `INN<yyMMdd>01ZM_<merId>`: `INN`, the settlement day, two characters whose meaning is not
/// documented (the sandbox writes `01`), then `ZM_` at offset 11 and the merchant.
pub(crate) fn zm_file_name(mer_id: &str, day: NaiveDate) -> String {
    format!("INN{}01ZM_{mer_id}", day.format("%y%m%d"))
}

/// `fileContent`: Base64 of the zlib-deflated zip holding the ZM file (GBK).
pub(crate) fn file_content(
    name: &str,
    text: &str,
    day: NaiveDate,
) -> Result<String, zip::ZipError> {
    let ready = bills::ready_at(day);
    let modified = zip::dos_time(
        chrono::NaiveDateTime::parse_from_str(&bills::beijing_text(ready), "%Y-%m-%d %H:%M:%S")
            .unwrap_or_default(),
    );
    let archive = zip::write(
        &[zip::ZipEntry {
            name: name.as_bytes().to_vec(),
            content: gbk::encode(text),
        }],
        modified,
    )?;
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(&archive)?;
    Ok(BASE64.encode(encoder.finish()?))
}

/// The widths of the 41 ZM fields (§3.3), in GBK bytes.
pub(crate) const ZM_WIDTHS: [usize; 41] = [
    3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4, 32, 1, 21,
    15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 131,
];

/// The acquirer's and the forwarding institution's codes the sandbox writes.
const INSTITUTION: &str = "48020000";

/// A 12-digit amount, zero-padded.
fn digits12(minor: i64) -> String {
    format!("{:012}", minor.max(0))
}

/// A 13-character amount: `C` (credit to the merchant) or `D` (debit) and 12 digits.
fn signed13(credit: bool, minor: i64) -> String {
    format!("{}{:012}", if credit { 'C' } else { 'D' }, minor.max(0))
}

/// The last six characters of an id (the system trace number UnionPay derives from it).
fn trace(id: &str) -> String {
    let start = id.len().saturating_sub(6);
    id.get(start..).unwrap_or(id).to_owned()
}

/// A masked card number for the customer: `6217` + stars + four digits.
fn card(customer: Option<&str>) -> String {
    let tail = match customer {
        Some(c) => Sha256::digest(format!("card/{c}").as_bytes())
            .iter()
            .take(4)
            .map(|b| char::from(b'0' + b % 10))
            .collect(),
        None => "0000".to_owned(),
    };
    format!("6217********{tail}")
}

/// One ZM record's 41 values (before fitting to their widths).
pub(crate) fn zm_values(
    mer_id: &str,
    entry: &BillEntry,
    cancel: Option<&CancelOrder>,
) -> Vec<String> {
    let trade = &entry.trade;
    let original_time = trade
        .paid_at
        .map(|p| bills::beijing_format(p, "%m%d%H%M%S"))
        .unwrap_or_else(|| "0000000000".to_owned());
    let (code, txn_type, sub_type, query_id, order_id, orig_trace, orig_time, orig_qry) =
        match entry.kind {
            EntryKind::Payment => (
                "S22",
                "01",
                match trade.kind {
                    TradeKind::Code => "06",
                    TradeKind::Qr => "07",
                },
                trade.transaction_id.clone(),
                trade.out_trade_no.clone(),
                "000000".to_owned(),
                "0000000000".to_owned(),
                String::new(),
            ),
            EntryKind::Refund => {
                let refund = entry.refund.clone().unwrap_or_else(|| bills::EntryRefund {
                    out_refund_no: String::new(),
                    refund_id: String::new(),
                    succeeded: true,
                    created_at: entry.at,
                    succeeded_at: None,
                });
                (
                    "S30",
                    "04",
                    "00",
                    refund.refund_id,
                    refund.out_refund_no,
                    trace(&trade.transaction_id),
                    original_time,
                    trade.transaction_id.clone(),
                )
            }
            EntryKind::Reversal => (
                "S31",
                "31",
                "00",
                cancel
                    .map(|c| c.query_id.clone())
                    .unwrap_or_else(|| trade.transaction_id.clone()),
                cancel.map(|c| c.order_id.clone()).unwrap_or_default(),
                trace(&trade.transaction_id),
                original_time,
                trade.transaction_id.clone(),
            ),
        };
    let payment = entry.kind == EntryKind::Payment;
    // A payment credits the merchant its amount less the fee; a refund or cancel debits the
    // amount less the fee given back.
    let fee = signed13(!payment, entry.fee);
    let settlement = signed13(payment, entry.amount - entry.fee);
    vec![
        code.to_owned(),
        INSTITUTION.to_owned(),
        INSTITUTION.to_owned(),
        trace(&query_id),
        bills::beijing_format(entry.at, "%m%d%H%M%S"),
        card(trade.customer_id.as_deref()),
        digits12(entry.amount),
        "5812".to_owned(),
        "08".to_owned(),
        query_id,
        String::new(),
        order_id,
        "01".to_owned(),
        orig_trace,
        orig_time,
        fee,
        settlement.clone(),
        String::new(),
        String::new(),
        txn_type.to_owned(),
        sub_type.to_owned(),
        wire::BIZ_TYPE.to_owned(),
        "01".to_owned(),
        String::new(),
        String::new(),
        String::new(),
        orig_qry,
        mer_id.to_owned(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        settlement,
        String::new(),
        String::new(),
        signed13(true, 0),
        signed13(true, 0),
        digits12(0),
        "00".to_owned(),
        "0".to_owned(),
        String::new(),
    ]
}

/// One ZM line: each value fitted to its width (GBK bytes), one space between.
pub(crate) fn zm_line(values: &[String]) -> String {
    values
        .iter()
        .zip(ZM_WIDTHS)
        .map(|(v, w)| gbk::fit(v, w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ZM file's text (before GBK), `\r\n` after each record. A trade marked closed by a
/// planted break is left out (the file has no status for it).
pub(crate) fn zm_file(
    mer_id: &str,
    entries: &[BillEntry],
    cancels: &BTreeMap<String, CancelOrder>,
) -> String {
    let mut out = String::with_capacity(entries.len() * 560);
    for entry in entries {
        if entry.kind == EntryKind::Payment && entry.closed {
            continue;
        }
        let cancel = cancels.get(&entry.trade.out_trade_no);
        out.push_str(&zm_line(&zm_values(mer_id, entry, cancel)));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::ZlibDecoder;

    use super::*;
    use crate::bills::tests::fixed_entries;

    /// Splits a ZM line as UnionPay's demo does: `width` GBK bytes, then one separator.
    fn slice(line: &[u8]) -> Vec<String> {
        let mut at = 0;
        let mut out = Vec::new();
        for w in ZM_WIDTHS {
            let (text, _, _) = encoding_rs::GBK.decode(&line[at..at + w]);
            out.push(text.into_owned());
            at += w + 1;
        }
        out
    }

    #[test]
    fn zm_records_are_fixed_width() {
        let mer_id = "777290058110048";
        let text = zm_file(mer_id, &fixed_entries(), &BTreeMap::new());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 4);
        let total: usize = ZM_WIDTHS.iter().sum::<usize>() + ZM_WIDTHS.len() - 1;
        assert_eq!(total, 607);
        for line in &lines[..3] {
            assert_eq!(gbk::encode(line).len(), total);
        }
        let payment = slice(&gbk::encode(lines[0]));
        assert_eq!(payment[0], "S22");
        assert_eq!(payment[4], "0115100000");
        assert_eq!(payment[6], "000000001234");
        assert_eq!(payment[9], "TXORDER1             ");
        assert_eq!(payment[11].trim_end(), "ORDER1");
        assert_eq!(payment[15], "D000000000007");
        assert_eq!(payment[16], "C000000001227");
        assert_eq!((payment[19].as_str(), payment[20].as_str()), ("01", "06"));
        assert_eq!(payment[27], mer_id);
        assert_eq!(payment[40], " ".repeat(131));
        assert!(lines[0].starts_with("S22 48020000    48020000    ORDER1 0115100000 6217********"));
        let refund = slice(&gbk::encode(lines[2]));
        assert_eq!(refund[0], "S30");
        assert_eq!(refund[6], "000000000234");
        assert_eq!(refund[11].trim_end(), "ORDER1R1");
        assert_eq!(refund[13], "ORDER1");
        assert_eq!(refund[14], "0115100000");
        assert_eq!(refund[15], "C000000000001");
        assert_eq!(refund[16], "D000000000233");
        assert_eq!(refund[26].trim_end(), "TXORDER1");
    }

    #[test]
    fn file_content_is_base64_of_a_zlib_deflated_zip() {
        let day = NaiveDate::from_ymd_opt(2024, 1, 15).unwrap();
        let name = zm_file_name("777290058110048", day);
        assert_eq!(name, "INN24011501ZM_777290058110048");
        assert_eq!(&name[..3], "INN");
        assert_eq!(&name[11..14], "ZM_");
        let text = zm_file("777290058110048", &fixed_entries(), &BTreeMap::new());
        let content = file_content(&name, &text, day).unwrap();
        let deflated = BASE64.decode(content).unwrap();
        // A zlib header: deflate, 32K window.
        assert_eq!(deflated[0], 0x78);
        let mut zipped = Vec::new();
        ZlibDecoder::new(deflated.as_slice())
            .read_to_end(&mut zipped)
            .unwrap();
        let mut zip = ::zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
        assert_eq!(zip.len(), 1);
        let mut file = zip.by_index(0).unwrap();
        assert_eq!(file.name(), name);
        let mut raw = Vec::new();
        file.read_to_end(&mut raw).unwrap();
        let (decoded, _, bad) = encoding_rs::GBK.decode(&raw);
        assert!(!bad);
        assert_eq!(decoded, text);
    }

    #[test]
    fn settle_dates_resolve_to_the_latest_day_not_after_today() {
        let today = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(resolve_settle_date("0101", today), Some(d(2024, 1, 1)));
        assert_eq!(resolve_settle_date("0102", today), Some(d(2024, 1, 2)));
        assert_eq!(resolve_settle_date("1231", today), Some(d(2023, 12, 31)));
        assert_eq!(resolve_settle_date("0229", today), Some(d(2020, 2, 29)));
        assert_eq!(resolve_settle_date("1301", today), None);
        assert_eq!(resolve_settle_date("101", today), None);
    }
}
