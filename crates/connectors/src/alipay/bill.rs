//! Alipay's `trade` bill (`bills.md` §2.2) as pure functions: the zip from
//! `bill_download_url` opened, its detail CSV (`…_业务明细.csv`) and summary CSV
//! (`…_业务明细(汇总).csv`) read as GBK, line by line, keyed on the header names, and both
//! summaries checked against the rows.
//!
//! The detail file: `#` lines (title, account, dates, start marker), the header, the rows,
//! an end marker, then `#交易合计：N笔，商家实收共X元，商家优惠共Y元` and
//! `#退款合计：…` and an export time. Cells may carry trailing TABs (Excel text hints) and
//! blanks, which are trimmed; quoted cells may hold commas; refunds are separate rows with the
//! payment's 支付宝交易号/商户订单号, negative amounts and the refund's request number in
//! `退款批次号/请求号`. Header names are compared with full-width parentheses folded to ASCII,
//! so `订单金额（元）` and `订单金额(元)` are one column. Columns we do not know (实收净额,
//! 商户识别号, 花呗分期…) are ignored.
//!
//! Nothing here does IO or reads a clock.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use chrono::NaiveDate;
use qrgate_connector_api::{
    BillError, BillFee, BillFigure, BillFile, BillLine, BillLineKind, BillLineStatus, BillMismatch,
    BillTotals, ConnectorError, HttpResponse, Wallet, WalletBill,
};
use qrgate_domain::{Currency, Money};

use crate::bill_file::{
    self, check_figure, format_scaled, gbk_text, parse_beijing_datetime, parse_scaled, split_csv,
    to_i64, BillFormatError, BillLineReader, ParsedBill, MAX_TEXT_BYTES,
};

/// Alipay amounts are yuan with two decimals.
const SCALE: u32 = 2;
/// Fees are read in fen and held in thousandths of a fen.
const MILLI_PER_FEN: i64 = BillFee::MILLI_PER_MINOR;

const DETAIL_SUFFIX: &str = "业务明细.csv";
const SUMMARY_SUFFIX: &str = "业务明细(汇总).csv";

// Detail columns, by their normalised names.
const COL_TRADE_NO: &str = "支付宝交易号";
const COL_OUT_TRADE_NO: &str = "商户订单号";
const COL_BUSINESS_TYPE: &str = "业务类型";
const COL_CREATED: &str = "创建时间";
const COL_FINISHED: &str = "完成时间";
const COL_ORDER_AMOUNT: &str = "订单金额(元)";
const COL_RECEIVED: &str = "商家实收(元)";
const COL_MERCHANT_DISCOUNT: &str = "商家优惠(元)";
const COL_FEE: &str = "服务费(元)";
const COL_REQUEST_NO: &str = "退款批次号/请求号";

// Summary-file columns.
const SUM_STORE_NO: &str = "门店编号";
const SUM_PAYMENT_COUNT: &str = "交易订单总笔数";
const SUM_REFUND_COUNT: &str = "退款订单总笔数";
const SUM_TOTAL_ROW: &str = "合计";

/// Full-width parentheses and colons folded to ASCII, blanks and TABs trimmed: how header
/// names and summary labels are compared.
fn normalise_name(name: &str) -> String {
    name.trim_matches(|c: char| c.is_whitespace() || c == '\t')
        .chars()
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            '：' => ':',
            other => other,
        })
        .collect()
}

fn trim_cell(cell: &str) -> &str {
    cell.trim_matches(|c: char| c.is_whitespace() || c == '\t')
}

// ---------------------------------------------------------------------------------------------
// Text of one entry

/// Lines of one zip entry as text: GBK, unless the entry starts with a UTF-8 byte order mark.
struct AlipayBillText<R> {
    lines: BillLineReader<R>,
    utf8: Option<bool>,
}

impl<R: BufRead> AlipayBillText<R> {
    fn new(reader: R) -> Self {
        AlipayBillText {
            lines: BillLineReader::new(reader),
            utf8: None,
        }
    }

    fn next_line(&mut self) -> Result<Option<String>, BillFormatError> {
        let Some(raw) = self.lines.next_line()? else {
            return Ok(None);
        };
        let utf8 = *self
            .utf8
            .get_or_insert_with(|| raw.starts_with("\u{FEFF}".as_bytes()));
        let text = if utf8 {
            bill_file::utf8_text(&raw)?.to_owned()
        } else {
            gbk_text(&raw)?
        };
        Ok(Some(text))
    }

    fn line_number(&self) -> usize {
        self.lines.line_number()
    }
}

/// A CSV table: its header (normalised names → positions) and the reading of cells.
struct AlipayTable {
    width: usize,
    columns: HashMap<String, usize>,
}

impl AlipayTable {
    fn from_header(line: &str) -> Result<Self, BillFormatError> {
        let names = split_csv(line)?;
        let mut columns = HashMap::new();
        for (position, name) in names.iter().enumerate() {
            columns.entry(normalise_name(name)).or_insert(position);
        }
        Ok(AlipayTable {
            width: names.len(),
            columns,
        })
    }

    fn require(&self, names: &[&str]) -> Result<(), BillFormatError> {
        match names.iter().find(|n| !self.columns.contains_key(**n)) {
            Some(missing) => Err(BillFormatError::malformed(format!(
                "the header has no {missing} column"
            ))),
            None => Ok(()),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.columns.contains_key(name)
    }

    /// A row's cells, trimmed. Cells beyond the header must be empty (a trailing comma).
    fn row(&self, line: &str) -> Result<Vec<String>, String> {
        let cells = split_csv(line).map_err(|_| "an unclosed quote".to_owned())?;
        if cells.len() < self.width
            || cells
                .get(self.width..)
                .is_some_and(|rest| rest.iter().any(|c| !trim_cell(c).is_empty()))
        {
            return Err(format!(
                "{} cells under {} columns",
                cells.len(),
                self.width
            ));
        }
        Ok(cells.iter().map(|c| trim_cell(c).to_owned()).collect())
    }

    fn get<'r>(&self, row: &'r [String], name: &str) -> Option<&'r str> {
        let position = *self.columns.get(name)?;
        row.get(position)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A yuan amount in fen (signed as written); an empty cell is zero.
    fn yuan(&self, row: &[String], name: &str) -> Result<i128, String> {
        match self.get(row, name) {
            None => Ok(0),
            Some(text) => {
                parse_scaled(text, SCALE).ok_or_else(|| format!("unreadable {name} {text:?}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The detail file

/// `业务类型`: a trade or a refund; anything else is not a row of a trade bill we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlipayBillBusinessType {
    Trade,
    Refund,
}

impl AlipayBillBusinessType {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "交易" => Some(AlipayBillBusinessType::Trade),
            "退款" => Some(AlipayBillBusinessType::Refund),
            _ => None,
        }
    }
}

/// Sums of the detail rows, signed as written, in fen.
#[derive(Debug, Clone, Copy, Default)]
struct AlipayKindSums {
    count: u64,
    order_amount: i128,
    received: i128,
    merchant_discount: i128,
    fee: i128,
}

#[derive(Debug, Clone, Copy, Default)]
struct AlipayDetailSums {
    trades: AlipayKindSums,
    refunds: AlipayKindSums,
}

impl AlipayDetailSums {
    fn all(&self) -> AlipayKindSums {
        AlipayKindSums {
            count: self.trades.count + self.refunds.count,
            order_amount: self.trades.order_amount + self.refunds.order_amount,
            received: self.trades.received + self.refunds.received,
            merchant_discount: self.trades.merchant_discount + self.refunds.merchant_discount,
            fee: self.trades.fee + self.refunds.fee,
        }
    }
}

/// One `#…合计：…` line: its label (`交易合计`) and its parts (`笔数` → `6`, `商家实收` →
/// `0.06`…), verbatim.
fn total_line(text: &str) -> Option<(String, Vec<(String, String)>)> {
    let body = normalise_name(text.trim_start_matches('#'));
    let (label, rest) = body.split_once(':')?;
    if !label.ends_with("合计") {
        return None;
    }
    let parts = rest
        .split(['，', ','])
        .filter_map(|part| {
            let part = part.trim();
            if let Some(count) = part.strip_suffix('笔') {
                return Some(("笔数".to_owned(), count.trim().to_owned()));
            }
            let (name, value) = part.split_once('共')?;
            Some((
                name.trim().to_owned(),
                value.trim().trim_end_matches('元').trim().to_owned(),
            ))
        })
        .collect();
    Some((label.trim().to_owned(), parts))
}

enum AlipayDetailSection {
    BeforeHeader,
    Rows(AlipayTable),
    After,
}

/// The detail rows, their sums, and the `#…合计` lines.
struct AlipayDetail {
    lines: Vec<BillLine>,
    sums: AlipayDetailSums,
    has_received: bool,
    has_discount: bool,
    has_fee: bool,
    totals: Vec<(String, Vec<(String, String)>)>,
}

fn parse_detail<R: BufRead>(reader: R) -> Result<AlipayDetail, BillFormatError> {
    let mut text = AlipayBillText::new(reader);
    let mut section = AlipayDetailSection::BeforeHeader;
    let mut detail = AlipayDetail {
        lines: Vec::new(),
        sums: AlipayDetailSums::default(),
        has_received: false,
        has_discount: false,
        has_fee: false,
        totals: Vec::new(),
    };
    while let Some(line) = text.next_line()? {
        let number = text.line_number();
        let at = |what: String| BillFormatError::malformed(format!("detail line {number}: {what}"));
        if line.trim().is_empty() {
            continue;
        }
        let comment = line.trim_start().starts_with('#');
        section = match (section, comment) {
            (AlipayDetailSection::BeforeHeader, true) => AlipayDetailSection::BeforeHeader,
            (AlipayDetailSection::BeforeHeader, false) => {
                let table = AlipayTable::from_header(&line)?;
                table.require(&[
                    COL_TRADE_NO,
                    COL_OUT_TRADE_NO,
                    COL_BUSINESS_TYPE,
                    COL_ORDER_AMOUNT,
                ])?;
                if !table.has(COL_FINISHED) && !table.has(COL_CREATED) {
                    return Err(BillFormatError::malformed("the header has no time column"));
                }
                detail.has_received = table.has(COL_RECEIVED);
                detail.has_discount = table.has(COL_MERCHANT_DISCOUNT);
                detail.has_fee = table.has(COL_FEE);
                AlipayDetailSection::Rows(table)
            }
            (AlipayDetailSection::Rows(table), false) => {
                let row = table.row(&line).map_err(&at)?;
                let line = detail_line(&table, &row, &mut detail.sums).map_err(&at)?;
                detail.lines.push(line);
                AlipayDetailSection::Rows(table)
            }
            (AlipayDetailSection::Rows(_) | AlipayDetailSection::After, true) => {
                if let Some(total) = total_line(&line) {
                    detail.totals.push(total);
                }
                AlipayDetailSection::After
            }
            (AlipayDetailSection::After, false) => {
                return Err(at("a row after the end of the list".into()));
            }
        };
    }
    if matches!(section, AlipayDetailSection::BeforeHeader) {
        return Err(BillFormatError::malformed("the detail file has no header"));
    }
    if detail.totals.is_empty() {
        return Err(BillFormatError::malformed(
            "the detail file has no #…合计 lines: it is cut short",
        ));
    }
    Ok(detail)
}

fn detail_line(
    table: &AlipayTable,
    row: &[String],
    sums: &mut AlipayDetailSums,
) -> Result<BillLine, String> {
    let type_text = table.get(row, COL_BUSINESS_TYPE).unwrap_or_default();
    let business_type = AlipayBillBusinessType::parse(type_text)
        .ok_or_else(|| format!("业务类型 {type_text:?} is neither 交易 nor 退款"))?;
    let trade_no = table
        .get(row, COL_TRADE_NO)
        .ok_or("no 支付宝交易号")?
        .to_owned();
    let out_trade_no = table
        .get(row, COL_OUT_TRADE_NO)
        .ok_or("no 商户订单号")?
        .to_owned();
    let order_amount = table.yuan(row, COL_ORDER_AMOUNT)?;
    if table.get(row, COL_ORDER_AMOUNT).is_none() {
        return Err("no 订单金额".into());
    }
    let received = table.yuan(row, COL_RECEIVED)?;
    let discount = table.yuan(row, COL_MERCHANT_DISCOUNT)?;
    let fee_fen = table.yuan(row, COL_FEE)?;
    let kind_sums = match business_type {
        AlipayBillBusinessType::Trade => &mut sums.trades,
        AlipayBillBusinessType::Refund => &mut sums.refunds,
    };
    kind_sums.count += 1;
    kind_sums.order_amount += order_amount;
    kind_sums.received += received;
    kind_sums.merchant_discount += discount;
    kind_sums.fee += fee_fen;

    let amount = Money::new(
        to_i64(order_amount.abs()).ok_or("订单金额 out of range")?,
        Currency::Cny,
    );
    // 服务费's sign is not settled (`bills.md` §2.2 [U]: a real sample shows 0.00, a bank's
    // generator writes a payment's fee negative). A trade's fee is always charged and a
    // refund's always returned, so the sign comes from the row's kind, whatever the file writes.
    let fee = match table.get(row, COL_FEE) {
        None => None,
        Some(_) => {
            let magnitude = to_i64(fee_fen.abs())
                .and_then(|fen| fen.checked_mul(MILLI_PER_FEN))
                .ok_or("服务费 out of range")?;
            let signed = match business_type {
                AlipayBillBusinessType::Trade => magnitude,
                AlipayBillBusinessType::Refund => -magnitude,
            };
            Some(BillFee::from_milli_minor(Currency::Cny, signed))
        }
    };
    let time_text = table
        .get(row, COL_FINISHED)
        .or_else(|| table.get(row, COL_CREATED))
        .ok_or("a row without a time")?;
    let time = parse_beijing_datetime(time_text)
        .ok_or_else(|| format!("unreadable time {time_text:?}"))?;
    let (kind, out_refund_no, wallet_order_ref) = match business_type {
        AlipayBillBusinessType::Trade => (BillLineKind::Payment, None, None),
        AlipayBillBusinessType::Refund => (
            BillLineKind::Refund,
            table.get(row, COL_REQUEST_NO).map(str::to_owned),
            Some(trade_no.clone()),
        ),
    };
    Ok(BillLine {
        wallet: Wallet::Alipay,
        kind,
        out_trade_no: Some(out_trade_no),
        out_refund_no,
        wallet_ref: trade_no,
        wallet_order_ref,
        amount,
        cny_amount: Some(amount),
        fee,
        time,
        wallet_status: type_text.to_owned(),
        status: BillLineStatus::Succeeded,
    })
}

// ---------------------------------------------------------------------------------------------
// The summary file

/// The summary file's total: its `合计` row when it has one, else the sum of its store rows
/// (**[U]**: whether the file has a total row is not documented). Values by column name, in
/// fen (money) or as counts.
struct AlipaySummary {
    figures: Vec<(String, String, i128)>,
}

fn parse_summary<R: BufRead>(reader: R) -> Result<AlipaySummary, BillFormatError> {
    let mut text = AlipayBillText::new(reader);
    let mut table: Option<AlipayTable> = None;
    let mut names: Vec<String> = Vec::new();
    let mut total_row: Option<Vec<String>> = None;
    let mut store_sums: Vec<i128> = Vec::new();
    let mut ended = false;
    while let Some(line) = text.next_line()? {
        let number = text.line_number();
        let at =
            |what: String| BillFormatError::malformed(format!("summary line {number}: {what}"));
        if line.trim().is_empty() {
            continue;
        }
        if line.trim_start().starts_with('#') {
            ended = table.is_some();
            continue;
        }
        if ended {
            return Err(at("a row after the end of the list".into()));
        }
        match &table {
            None => {
                names = split_csv(&line)?
                    .iter()
                    .map(|n| normalise_name(n))
                    .collect();
                store_sums = vec![0; names.len()];
                table = Some(AlipayTable::from_header(&line)?);
            }
            Some(t) => {
                let row = t.row(&line).map_err(&at)?;
                let is_total = row.iter().take(2).any(|c| c == SUM_TOTAL_ROW)
                    || t.get(&row, SUM_STORE_NO) == Some(SUM_TOTAL_ROW);
                if is_total {
                    total_row = Some(row);
                    continue;
                }
                for (position, name) in names.iter().enumerate() {
                    if let Some(value) =
                        summary_value(name, row.get(position).map(String::as_str)).map_err(&at)?
                    {
                        if let Some(sum) = store_sums.get_mut(position) {
                            *sum += value;
                        }
                    }
                }
            }
        }
    }
    if table.is_none() {
        return Err(BillFormatError::malformed("the summary file has no header"));
    }
    let mut figures = Vec::new();
    for (position, name) in names.iter().enumerate() {
        let numeric = name.ends_with("(元)") || name.ends_with("笔数");
        if !numeric {
            continue;
        }
        match &total_row {
            Some(row) => {
                let text = row.get(position).cloned().unwrap_or_default();
                if let Some(value) =
                    summary_value(name, Some(&text)).map_err(BillFormatError::malformed)?
                {
                    figures.push((name.clone(), text, value));
                }
            }
            None => {
                let value = store_sums.get(position).copied().unwrap_or_default();
                let scale = if name.ends_with("笔数") { 0 } else { SCALE };
                figures.push((name.clone(), format_scaled(value, scale), value));
            }
        }
    }
    Ok(AlipaySummary { figures })
}

/// A summary cell: counts as integers, money in fen; empty → `None`.
fn summary_value(name: &str, text: Option<&str>) -> Result<Option<i128>, String> {
    let Some(text) = text.map(trim_cell).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if name.ends_with("笔数") {
        return text
            .parse::<i128>()
            .map(Some)
            .map_err(|_| format!("unreadable {name} {text:?}"));
    }
    if name.ends_with("(元)") {
        return parse_scaled(text, SCALE)
            .map(Some)
            .ok_or_else(|| format!("unreadable {name} {text:?}"));
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// The zip

/// Reads the bill zip: the detail file (required) and the summary file (when present).
pub(super) fn parse_bill_zip(bytes: &[u8]) -> Result<ParsedBill, BillFormatError> {
    let (mut archive, names) = bill_file::zip_entries(bytes)?;
    let find = |wanted: &dyn Fn(&str) -> bool| -> Result<Option<usize>, BillFormatError> {
        let mut found = names
            .iter()
            .filter(|e| wanted(&normalise_name(bill_file::base_name(&e.name))));
        let first = found.next().map(|e| e.index);
        if found.next().is_some() {
            return Err(BillFormatError::malformed(
                "the zip holds two files of one kind",
            ));
        }
        Ok(first)
    };
    let detail_index = find(&|n| n.ends_with(DETAIL_SUFFIX))?
        .ok_or_else(|| BillFormatError::malformed("the zip holds no …业务明细.csv"))?;
    let summary_index = find(&|n| n.ends_with(SUMMARY_SUFFIX))?;

    let detail = {
        let entry = archive
            .by_index(detail_index)
            .map_err(|e| BillFormatError::malformed(format!("zip: {e}")))?;
        parse_detail(BufReader::new(entry.take(MAX_TEXT_BYTES + 1)))?
    };
    let summary = match summary_index {
        Some(index) => {
            let entry = archive
                .by_index(index)
                .map_err(|e| BillFormatError::malformed(format!("zip: {e}")))?;
            Some(parse_summary(BufReader::new(
                entry.take(MAX_TEXT_BYTES + 1),
            ))?)
        }
        None => None,
    };
    Ok(check(detail, summary))
}

/// Compares both summaries with the rows and builds the totals.
fn check(detail: AlipayDetail, summary: Option<AlipaySummary>) -> ParsedBill {
    let mut mismatches: Vec<BillMismatch> = Vec::new();
    let mut stated = Vec::new();
    let mut totals = BillTotals::default();
    let sums = detail.sums;

    for (label, parts) in &detail.totals {
        let kind = match label.as_str() {
            "交易合计" => Some(sums.trades),
            "退款合计" => Some(sums.refunds),
            _ => None,
        };
        for (name, value) in parts {
            let figure = format!("#{label} {name}");
            stated.push(BillFigure {
                name: figure.clone(),
                value: value.clone(),
            });
            let Some(kind) = kind else { continue };
            if name == "笔数" {
                let Ok(count) = value.parse::<u64>() else {
                    mismatches.push(unreadable(&figure, value));
                    continue;
                };
                match label.as_str() {
                    "交易合计" => totals.payment_count = Some(count),
                    _ => totals.refund_count = Some(count),
                }
                check_figure(
                    &mut mismatches,
                    &figure,
                    value,
                    i128::from(count),
                    i128::from(kind.count),
                    0,
                );
                continue;
            }
            let summed = if name.starts_with("商家实收") && detail.has_received {
                kind.received
            } else if name.starts_with("商家优惠") && detail.has_discount {
                kind.merchant_discount
            } else {
                continue;
            };
            let Some(stated_value) = parse_scaled(value, SCALE) else {
                mismatches.push(unreadable(&figure, value));
                continue;
            };
            if name.starts_with("商家实收") {
                let money = to_i64(stated_value).map(|fen| Money::new(fen, Currency::Cny));
                match label.as_str() {
                    "交易合计" => totals.payment_amount = money,
                    _ => totals.refund_amount = money,
                }
            }
            check_figure(&mut mismatches, &figure, value, stated_value, summed, SCALE);
        }
    }
    totals.line_count = totals
        .payment_count
        .zip(totals.refund_count)
        .map(|(p, r)| p + r);

    if let Some(summary) = summary {
        let all = sums.all();
        for (name, text, value) in &summary.figures {
            let figure = format!("汇总 {name}");
            stated.push(BillFigure {
                name: figure.clone(),
                value: text.clone(),
            });
            let (summed, scale) = match name.as_str() {
                SUM_PAYMENT_COUNT => (i128::from(sums.trades.count), 0),
                SUM_REFUND_COUNT => (i128::from(sums.refunds.count), 0),
                COL_ORDER_AMOUNT => (all.order_amount, SCALE),
                COL_RECEIVED if detail.has_received => (all.received, SCALE),
                COL_MERCHANT_DISCOUNT if detail.has_discount => (all.merchant_discount, SCALE),
                COL_FEE if detail.has_fee => {
                    totals.fee = to_i64(*value)
                        .and_then(|fen| fen.checked_mul(MILLI_PER_FEN))
                        .map(|milli| BillFee::from_milli_minor(Currency::Cny, milli));
                    (all.fee, SCALE)
                }
                _ => continue,
            };
            check_figure(&mut mismatches, &figure, text, *value, summed, scale);
        }
    }
    totals.stated = stated;
    ParsedBill {
        lines: detail.lines,
        totals,
        mismatches,
    }
}

fn unreadable(figure: &str, value: &str) -> BillMismatch {
    BillMismatch {
        figure: figure.to_owned(),
        stated: value.to_owned(),
        summed: "(the stated figure is not a number)".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The download

/// The file's name: the URL's `downloadFileName` when it gives one, else
/// `alipay_trade_<yyyyMMdd>.csv.zip`.
pub(super) fn file_name(url: &str, day: NaiveDate) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "downloadFileName")
                .map(|(_, v)| v.into_owned())
        })
        .filter(|n| !n.is_empty() && !n.contains(['/', '\\']))
        .unwrap_or_else(|| format!("alipay_trade_{}.csv.zip", day.format("%Y%m%d")))
}

/// Opens the answer of the GET of `bill_download_url` and parses the zip in it.
///
/// A non-2xx is `Call` (5xx → `OutcomeUnknown`, else `Rejected`); a body that is not a zip
/// (an expired link answers a page, not a file) is `BadFile` with the body kept.
pub(super) fn open_bill_download(
    response: &HttpResponse,
    url: &str,
    day: NaiveDate,
) -> Result<WalletBill, BillError> {
    match response.status {
        200..=299 => {}
        500..=599 | 408 | 429 => {
            return Err(ConnectorError::OutcomeUnknown(format!(
                "alipay bill download: HTTP {}",
                response.status
            ))
            .into())
        }
        status => {
            return Err(ConnectorError::Rejected {
                code: format!("HTTP_{status}"),
                message: "the bill download URL was refused (it expires 30 s after issue)".into(),
            }
            .into())
        }
    }
    let file = BillFile::new(file_name(url, day), response.body.clone());
    match parse_bill_zip(&response.body) {
        Ok(parsed) => bill_file::assemble(Wallet::Alipay, day, parsed, file),
        Err(e) => Err(e.into_bill_error(Some(file))),
    }
}
