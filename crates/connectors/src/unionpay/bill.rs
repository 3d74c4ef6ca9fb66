//! UnionPay's reconciliation file (`bills.md` §3) as pure functions: the file-transfer
//! answer opened (`fileContent` = base64 of a zlib-compressed zip), the zip's `INN…ZM_…`
//! files read as fixed-width GBK records, field by field by byte widths, into [`BillLine`]s.
//!
//! The ZM layout (§3.3): fields of fixed byte widths separated by one byte. Only the first
//! fields, whose widths every version shares, are read; the tail (`保留使用`, carved up
//! differently by newer versions) is ignored, so all three known variants read the same.
//! Amounts are fen; 13-wide amounts may start with a `C`/`D` (credit/debit) letter (**[U]**),
//! which is accepted. The transmission time has no year: it is taken from the settle date,
//! choosing among the settle date's year and the years either side the date nearest to the
//! settle date, so a trade of 31 December on the settle date of 1 January is of the old year.
//!
//! The ZM file has no summary line, so there is nothing of the file's own to check the rows
//! against; every record must have the record's width up to the fields read.
//!
//! Nothing here does IO or reads a clock.

use std::io::{BufReader, Read};

use base64::Engine as _;
use chrono::{Datelike, NaiveDate, NaiveTime};
use qrgate_connector_api::{
    BillError, BillFee, BillFile, BillLine, BillLineKind, BillLineStatus, BillTotals, Wallet,
    WalletBill,
};
use qrgate_domain::{Currency, Money};

use super::wire::{UnionPayAnswer, UnionPayRespCode, UnionPayTxn};
use crate::bill_file::{
    self, beijing_to_utc, gbk_text, BillFormatError, BillLineReader, ParsedBill, MAX_TEXT_BYTES,
};

/// The byte widths of the ZM record's first 40 fields (§3.3), each followed by one separator.
const ZM_WIDTHS: [usize; 40] = [
    3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4, 32, 1, 21,
    15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1,
];

/// Field positions (0-based) in [`ZM_WIDTHS`].
const F_CODE: usize = 0;
const F_TRACE_TIME: usize = 4;
const F_AMOUNT: usize = 6;
const F_QUERY_ID: usize = 9;
const F_ORDER_ID: usize = 11;
const F_FEE: usize = 15;
const F_TXN_TYPE: usize = 19;
const F_ORIG_QUERY_ID: usize = 26;
const F_MER_ID: usize = 27;
/// Records must reach at least the end of this field (商户代码).
const F_LAST_REQUIRED: usize = F_MER_ID;

/// Milli-fen per fen.
const MILLI_PER_FEN: i64 = BillFee::MILLI_PER_MINOR;

/// `交易代码` (dax-pay's `UnionPayCode`; `S31` **[U]**); `txnType` only when the code is
/// blank. An unknown code is refused even when its `txnType` looks like a consume: it may be
/// a transaction that moves money otherwise (a pre-authorisation, an adjustment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnionPayBillCode {
    /// S22 消费, or txnType 01.
    Consume,
    /// S30 退货, or txnType 04.
    Refund,
    /// S31 消费撤销, or txnType 31.
    Cancel,
}

impl UnionPayBillCode {
    fn parse(code: &str, txn_type: &str) -> Option<Self> {
        match (code, txn_type) {
            ("S22", _) | ("", "01") => Some(UnionPayBillCode::Consume),
            ("S30", _) | ("", "04") => Some(UnionPayBillCode::Refund),
            ("S31", _) | ("", "31") => Some(UnionPayBillCode::Cancel),
            _ => None,
        }
    }

    fn kind(self) -> BillLineKind {
        match self {
            UnionPayBillCode::Consume => BillLineKind::Payment,
            UnionPayBillCode::Refund => BillLineKind::Refund,
            UnionPayBillCode::Cancel => BillLineKind::Reversal,
        }
    }
}

/// The fields of one record, each its GBK bytes decoded and trimmed.
fn split_record(record: &[u8]) -> Result<Vec<String>, String> {
    let mut fields = Vec::with_capacity(ZM_WIDTHS.len());
    let mut at = 0usize;
    for (index, width) in ZM_WIDTHS.iter().enumerate() {
        let end = at + width;
        let Some(bytes) = record.get(at..end.min(record.len())) else {
            if index <= F_LAST_REQUIRED {
                return Err(format!("the record ends before field {}", index + 1));
            }
            break;
        };
        if end > record.len() && index <= F_LAST_REQUIRED {
            return Err(format!("the record ends inside field {}", index + 1));
        }
        let text = gbk_text(bytes).map_err(|_| format!("field {} is not GBK", index + 1))?;
        fields.push(text.trim().to_owned());
        at = end + 1;
    }
    Ok(fields)
}

/// A 12- or 13-wide amount in fen: digits, after an optional `C`/`D` or sign. The letter or
/// sign is returned as the direction (`Some(true)` = debit to the merchant).
fn amount_fen(text: &str) -> Option<(Option<bool>, i64)> {
    let (debit, digits) = match text.as_bytes().first()? {
        b'D' | b'd' | b'-' => (Some(true), text.get(1..)?),
        b'C' | b'c' | b'+' => (Some(false), text.get(1..)?),
        _ => (None, text),
    };
    let digits = digits.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 15 {
        return None;
    }
    Some((debit, digits.parse().ok()?))
}

/// The year of a `MMDDhhmmss` time on the settle date `settle`: the one of the settle date's
/// year and its neighbours that puts the date nearest to the settle date.
fn trace_time(text: &str, settle: NaiveDate) -> Option<chrono::DateTime<chrono::Utc>> {
    if text.len() != 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
    let (month, day) = (number(0..2)?, number(2..4)?);
    let time = NaiveTime::from_hms_opt(number(4..6)?, number(6..8)?, number(8..10)?)?;
    let year = settle.year();
    let date = [year - 1, year, year + 1]
        .into_iter()
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .min_by_key(|d| (*d - settle).num_days().abs())?;
    beijing_to_utc(date.and_time(time))
}

/// Reads every ZM file of the zip into lines. A zip without a ZM file is a day without
/// transactions: no lines.
pub(super) fn parse_zip(
    zip: &[u8],
    settle: NaiveDate,
    mer_id: &str,
) -> Result<ParsedBill, BillFormatError> {
    let (mut archive, names) = bill_file::zip_entries(zip)?;
    let mut lines = Vec::new();
    for entry in names
        .iter()
        .filter(|e| is_zm_file(bill_file::base_name(&e.name)))
    {
        let file = archive
            .by_index(entry.index)
            .map_err(|e| BillFormatError::malformed(format!("zip: {e}")))?;
        let mut reader = BillLineReader::new(BufReader::new(file.take(MAX_TEXT_BYTES + 1)));
        while let Some(record) = reader.next_line()? {
            if record.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let number = reader.line_number();
            let line = record_line(&record, settle, mer_id).map_err(|what| {
                BillFormatError::malformed(format!("{} line {number}: {what}", entry.name))
            })?;
            lines.push(line);
        }
    }
    link_refunds(&mut lines);
    Ok(ParsedBill {
        lines,
        // The ZM file states no totals.
        totals: BillTotals::default(),
        mismatches: Vec::new(),
    })
}

/// `INN<yyMMdd><2 chars>ZM_<merId>` (§3.2): the general transaction detail; `ZME_` (errors)
/// and other files are not read.
fn is_zm_file(name: &str) -> bool {
    name.starts_with("INN") && name.get(11..14) == Some("ZM_")
}

fn record_line(record: &[u8], settle: NaiveDate, mer_id: &str) -> Result<BillLine, String> {
    let fields = split_record(record)?;
    let get = |index: usize| {
        fields
            .get(index)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let code_text = get(F_CODE).unwrap_or_default();
    let code = UnionPayBillCode::parse(code_text, get(F_TXN_TYPE).unwrap_or_default())
        .ok_or_else(|| format!("交易代码 {code_text:?} is not a consume, refund or cancel"))?;
    if get(F_MER_ID) != Some(mer_id) {
        return Err(format!("商户代码 {:?} is not ours", get(F_MER_ID)));
    }
    let query_id = get(F_QUERY_ID).ok_or("no 查询流水号")?.to_owned();
    let order_id = get(F_ORDER_ID).ok_or("no 商户订单号")?.to_owned();
    let amount_text = get(F_AMOUNT).ok_or("no 交易金额")?;
    let (_, amount) =
        amount_fen(amount_text).ok_or_else(|| format!("unreadable 交易金额 {amount_text:?}"))?;
    let amount = Money::new(amount, Currency::Cny);
    let kind = code.kind();
    // D = debited to the merchant (a fee charged), C = credited (a fee returned); without a
    // letter, a consume's fee is charged and a refund's or cancel's returned.
    let fee = match get(F_FEE) {
        None => None,
        Some(text) => {
            let (debit, fen) =
                amount_fen(text).ok_or_else(|| format!("unreadable 商户手续费 {text:?}"))?;
            let charged = debit.unwrap_or(kind == BillLineKind::Payment);
            let milli = fen
                .checked_mul(MILLI_PER_FEN)
                .ok_or("商户手续费 out of range")?;
            Some(BillFee::from_milli_minor(
                Currency::Cny,
                if charged { milli } else { -milli },
            ))
        }
    };
    let time_text = get(F_TRACE_TIME).ok_or("no 交易传输时间")?;
    let time = trace_time(time_text, settle)
        .ok_or_else(|| format!("unreadable 交易传输时间 {time_text:?}"))?;
    let (out_trade_no, out_refund_no, wallet_order_ref) = match kind {
        BillLineKind::Payment => (Some(order_id), None, None),
        BillLineKind::Refund | BillLineKind::Reversal => (
            None,
            Some(order_id),
            get(F_ORIG_QUERY_ID).map(str::to_owned),
        ),
    };
    Ok(BillLine {
        wallet: Wallet::UnionPay,
        kind,
        out_trade_no,
        out_refund_no,
        wallet_ref: query_id,
        wallet_order_ref,
        amount,
        cny_amount: Some(amount),
        fee,
        time,
        wallet_status: code_text.to_owned(),
        status: BillLineStatus::Succeeded,
    })
}

/// A refund or cancel names its payment by `origQryId` only; when that payment is in the same
/// file, its order number is filled in.
fn link_refunds(lines: &mut [BillLine]) {
    let payments: std::collections::HashMap<String, String> = lines
        .iter()
        .filter(|l| l.kind == BillLineKind::Payment)
        .filter_map(|l| Some((l.wallet_ref.clone(), l.out_trade_no.clone()?)))
        .collect();
    for line in lines.iter_mut().filter(|l| l.kind != BillLineKind::Payment) {
        if let Some(order) = line.wallet_order_ref.as_ref().and_then(|r| payments.get(r)) {
            line.out_trade_no = Some(order.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file-transfer answer

/// `respCode=34` on a file transfer, read as "no file: nothing was traded" (**[U]**: UnionPay
/// documents only `98` for "not there yet").
const RESP_NO_RECORD: &str = "34";

/// Opens a verified file-transfer answer for the settle date `day`: `00` → the file
/// (`fileContent` base64 → inflate → zip), `98` → `NotReady`, `34` → `NoBill`; request errors
/// → `Call(Rejected)`; anything else → `Call(OutcomeUnknown)`.
pub(super) fn open_file_answer(
    answer: &UnionPayAnswer,
    day: NaiveDate,
    mer_id: &str,
) -> Result<WalletBill, BillError> {
    let (code, message) = answer.code_and_message();
    match answer.code() {
        UnionPayRespCode::Success | UnionPayRespCode::SuccessWithDefects => {}
        UnionPayRespCode::OriginalNotFound if code == RESP_NO_RECORD => {
            return Err(BillError::NoBill { code, message });
        }
        _ if code == "98" => return Err(BillError::NotReady { code, message }),
        _ => return Err(answer.failure(UnionPayTxn::FileTransfer).into()),
    }
    let content = answer
        .get("fileContent")
        .ok_or_else(|| bad_file("the answer has no fileContent", None))?;
    // Form decoding turns an unencoded `+` into a blank; base64 has no blanks.
    let cleaned: String = content
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| bad_file(&format!("fileContent is not base64: {e}"), None))?;
    let zip = bill_file::inflate_bounded(&compressed).map_err(|e| e.into_bill_error(None))?;
    let name = answer
        .get("fileName")
        .map(bill_file::base_name)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{mer_id}_{}.zip", day.format("%Y%m%d")));
    let file = BillFile::new(name, zip);
    match parse_zip(file.bytes(), day, mer_id) {
        Ok(parsed) => bill_file::assemble(Wallet::UnionPay, day, parsed, file),
        Err(e) => Err(e.into_bill_error(Some(file))),
    }
}

fn bad_file(reason: &str, file: Option<BillFile>) -> BillError {
    BillError::BadFile {
        reason: format!("unionpay: {reason}"),
        file: file.map(Box::new),
    }
}

/// Whether the settle date `day` may have a file at `now`: UnionPay's day ends at 23:00
/// Beijing time, so the settle date is over once Beijing's clock, an hour ahead, has left it.
pub(super) fn settle_day_not_over(day: NaiveDate, now: chrono::DateTime<chrono::Utc>) -> bool {
    bill_file::beijing_day_not_over(day, now + chrono::TimeDelta::hours(1))
}
