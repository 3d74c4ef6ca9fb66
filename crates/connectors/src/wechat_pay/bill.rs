//! WeChat Pay's daily bill (`bills.md` §1) as pure functions: the `/pay/downloadbill` answer
//! told apart (bill text, gzip, or an error document), and the bill text parsed by its header
//! names into [`BillLine`]s, with the summary checked against the lines.
//!
//! The text: a header line of column names; one row per record, every value prefixed with a
//! backtick (`` `v1,`v2 ``); then a summary header and one summary row. Rows are split on
//! `` ,` `` after the first backtick, so a value may hold a plain comma. Values are trimmed.
//! Columns are found by name, never by position, so the current 27-column ALL bill, the
//! SUCCESS (20) and REFUND (29) bills, the older 24-column and 18-column layouts, the
//! overseas v3 statement's 38 columns and the English names of the overseas v2 bill all read
//! the same way; columns we do not know are ignored.
//!
//! Nothing here does IO or reads a clock.

use std::collections::HashMap;
use std::io::BufRead;

use chrono::{DateTime, NaiveDate, Utc};
use qrgate_connector_api::{
    BillError, BillFee, BillFigure, BillFile, BillLine, BillLineKind, BillLineStatus, BillTotals,
    ConnectorError, HttpResponse, Wallet, WalletBill,
};
use qrgate_domain::{Currency, Money};

use super::wire::{self, WechatPayOperation};
use crate::bill_file::{
    self, check_figure, parse_beijing_datetime, parse_scaled, to_i64, utf8_text, BillFormatError,
    BillLineReader, ParsedBill,
};

/// Every amount is read at the fee column's precision (five decimals) so that all sums are
/// exact; money columns have two.
const SCALE: u32 = 5;
/// 10^-5 of a major unit per minor unit (for two-decimal currencies): thousandths of a fen.
const SCALE_PER_MINOR: i128 = 1000;

/// `return_msg` values of a failed download (`bills.md` §1.2), compared case-insensitively
/// (the documentation once wrote `NO Bill Exist`).
const NO_BILL_EXIST: &str = "no bill exist";
const BILL_CREATING: &str = "bill creating";
/// The `error_code` the wxcloudrun page shows with `No Bill Exist`.
const NO_BILL_ERROR_CODE: &str = "20002";

// ---------------------------------------------------------------------------------------------
// Columns

/// The columns we read, each with every name it goes by across layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WechatPayBillColumn {
    Time,
    TransactionId,
    OutTradeNo,
    TradeState,
    /// The pricing currency (v2 `货币种类`; v3 `标价币种`).
    Currency,
    /// The order's total as priced (`订单金额`; old `总金额`; v3 `订单金额(标价币种)`).
    OrderAmount,
    /// `应结订单金额`: the settlement amount (the total less non-cash coupons).
    SettlementAmount,
    RefundId,
    OutRefundNo,
    /// `退款金额`: the settlement refund amount.
    RefundAmount,
    /// `申请退款金额`: the refund asked for.
    RequestedRefundAmount,
    RefundStatus,
    RefundRequestedTime,
    RefundSucceededTime,
    /// `手续费`, five decimals.
    Fee,
    /// v3: what the payer paid, and in which currency.
    PayerCurrency,
    PayerAmount,
    /// v3: what the payer got back, and in which currency.
    PayerRefundCurrency,
    PayerRefundAmount,
    /// v3: the settlement currency of payments and of refunds (the fee's currency).
    SettlementCurrency,
    RefundSettlementCurrency,
}

impl WechatPayBillColumn {
    const ALL: [WechatPayBillColumn; 21] = [
        WechatPayBillColumn::Time,
        WechatPayBillColumn::TransactionId,
        WechatPayBillColumn::OutTradeNo,
        WechatPayBillColumn::TradeState,
        WechatPayBillColumn::Currency,
        WechatPayBillColumn::OrderAmount,
        WechatPayBillColumn::SettlementAmount,
        WechatPayBillColumn::RefundId,
        WechatPayBillColumn::OutRefundNo,
        WechatPayBillColumn::RefundAmount,
        WechatPayBillColumn::RequestedRefundAmount,
        WechatPayBillColumn::RefundStatus,
        WechatPayBillColumn::RefundRequestedTime,
        WechatPayBillColumn::RefundSucceededTime,
        WechatPayBillColumn::Fee,
        WechatPayBillColumn::PayerCurrency,
        WechatPayBillColumn::PayerAmount,
        WechatPayBillColumn::PayerRefundCurrency,
        WechatPayBillColumn::PayerRefundAmount,
        WechatPayBillColumn::SettlementCurrency,
        WechatPayBillColumn::RefundSettlementCurrency,
    ];

    /// The header names, Chinese (domestic and v3) and English (overseas v2, `bills.md` §1.6;
    /// the English list is incomplete there, so only the names it gives and their obvious
    /// siblings are known). Compared after trimming, English case-insensitively.
    fn names(self) -> &'static [&'static str] {
        match self {
            WechatPayBillColumn::Time => &["交易时间", "Transaction time"],
            WechatPayBillColumn::TransactionId => &["微信订单号", "Wechat order number"],
            WechatPayBillColumn::OutTradeNo => &["商户订单号", "Vendor order number"],
            WechatPayBillColumn::TradeState => &["交易状态", "Transaction status"],
            WechatPayBillColumn::Currency => &["标价币种", "货币种类", "Currency type"],
            WechatPayBillColumn::OrderAmount => &[
                "订单金额(标价币种)",
                "订单金额（标价币种）",
                "订单金额",
                "总金额",
                "Total amount",
            ],
            WechatPayBillColumn::SettlementAmount => &["应结订单金额"],
            WechatPayBillColumn::RefundId => &["微信退款单号", "Wechat refund number"],
            WechatPayBillColumn::OutRefundNo => &["商户退款单号", "Vendor refund number"],
            WechatPayBillColumn::RefundAmount => &["退款金额", "Refund amount"],
            WechatPayBillColumn::RequestedRefundAmount => &["申请退款金额"],
            WechatPayBillColumn::RefundStatus => &["退款状态", "Refund status"],
            WechatPayBillColumn::RefundRequestedTime => &["退款申请时间"],
            WechatPayBillColumn::RefundSucceededTime => &["退款成功时间"],
            WechatPayBillColumn::Fee => &["手续费", "Fee"],
            WechatPayBillColumn::PayerCurrency => &["用户支付币种"],
            WechatPayBillColumn::PayerAmount => &["用户支付金额"],
            WechatPayBillColumn::PayerRefundCurrency => &["用户退款币种"],
            WechatPayBillColumn::PayerRefundAmount => &["用户退款金额"],
            WechatPayBillColumn::SettlementCurrency => &["结算币种"],
            WechatPayBillColumn::RefundSettlementCurrency => &["退款结算币种"],
        }
    }
}

fn same_name(header: &str, name: &str) -> bool {
    header.trim() == name || (name.is_ascii() && header.trim().eq_ignore_ascii_case(name))
}

/// Where each known column sits in this file's header.
#[derive(Debug, Clone)]
struct WechatPayBillLayout {
    width: usize,
    columns: HashMap<WechatPayBillColumn, usize>,
    /// Every header name with its position, for the summary check.
    header: Vec<String>,
}

impl WechatPayBillLayout {
    fn from_header(line: &str) -> Result<Self, BillFormatError> {
        let header: Vec<String> = line.split(',').map(|h| h.trim().to_owned()).collect();
        let mut columns = HashMap::new();
        for column in WechatPayBillColumn::ALL {
            // The first name in the column's list that the header has wins, so that v3's
            // `订单金额(标价币种)` is preferred where both it and a plainer name exist.
            let position = column
                .names()
                .iter()
                .find_map(|name| header.iter().position(|h| same_name(h, name)));
            if let Some(position) = position {
                columns.insert(column, position);
            }
        }
        for required in [
            WechatPayBillColumn::Time,
            WechatPayBillColumn::TransactionId,
            WechatPayBillColumn::OutTradeNo,
            WechatPayBillColumn::TradeState,
        ] {
            if !columns.contains_key(&required) {
                return Err(BillFormatError::malformed(format!(
                    "the header has no {} column",
                    required.names().first().copied().unwrap_or("?")
                )));
            }
        }
        if !columns.contains_key(&WechatPayBillColumn::OrderAmount)
            && !columns.contains_key(&WechatPayBillColumn::SettlementAmount)
        {
            return Err(BillFormatError::malformed(
                "the header has no amount column",
            ));
        }
        Ok(WechatPayBillLayout {
            width: header.len(),
            columns,
            header,
        })
    }

    fn has(&self, column: WechatPayBillColumn) -> bool {
        self.columns.contains_key(&column)
    }

    /// The column's trimmed value in `row`; `None` when the layout lacks the column or the
    /// value is empty.
    fn get<'r>(&self, row: &'r [&'r str], column: WechatPayBillColumn) -> Option<&'r str> {
        let position = *self.columns.get(&column)?;
        row.get(position)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn position_of(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| same_name(h, name))
    }
}

/// The values of a backtick row: the first backtick dropped, then split on `` ,` ``.
fn row_values(line: &str) -> Option<Vec<&str>> {
    let rest = line.strip_prefix('`')?;
    Some(rest.split(",`").collect())
}

// ---------------------------------------------------------------------------------------------
// Statuses

/// `交易状态` (`bills.md` §1.3), with a catch-all so a new state is never an error.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WechatPayBillTradeState {
    Success,
    Refund,
    Revoked,
    Unrecognised(String),
}

impl WechatPayBillTradeState {
    fn parse(text: &str) -> Self {
        match text.to_ascii_uppercase().as_str() {
            "SUCCESS" => WechatPayBillTradeState::Success,
            "REFUND" => WechatPayBillTradeState::Refund,
            "REVOKED" => WechatPayBillTradeState::Revoked,
            _ => WechatPayBillTradeState::Unrecognised(text.to_owned()),
        }
    }
}

/// `退款状态` of a refund row, as the refund query's `refund_status` (`wallets.md` §1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
enum WechatPayBillRefundState {
    Success,
    Processing,
    Change,
    RefundClose,
    Unrecognised(String),
}

impl WechatPayBillRefundState {
    fn parse(text: &str) -> Self {
        match text.to_ascii_uppercase().as_str() {
            "SUCCESS" => WechatPayBillRefundState::Success,
            "PROCESSING" => WechatPayBillRefundState::Processing,
            "CHANGE" => WechatPayBillRefundState::Change,
            "REFUNDCLOSE" => WechatPayBillRefundState::RefundClose,
            _ => WechatPayBillRefundState::Unrecognised(text.to_owned()),
        }
    }

    /// `CHANGE` (money parked for manual handling) is `Processing`, as for refund queries.
    fn status(&self) -> BillLineStatus {
        match self {
            WechatPayBillRefundState::Success => BillLineStatus::Succeeded,
            WechatPayBillRefundState::Processing | WechatPayBillRefundState::Change => {
                BillLineStatus::Processing
            }
            WechatPayBillRefundState::RefundClose => BillLineStatus::Failed,
            WechatPayBillRefundState::Unrecognised(_) => BillLineStatus::Unknown,
        }
    }
}

/// A refund number is present when it is neither empty nor the `0` payment rows carry.
fn present_number(value: Option<&str>) -> Option<&str> {
    value.filter(|v| *v != "0")
}

// ---------------------------------------------------------------------------------------------
// Rows

fn money(
    layout: &WechatPayBillLayout,
    row: &[&str],
    column: WechatPayBillColumn,
    currency: Currency,
) -> Result<Option<Money>, String> {
    let Some(text) = layout.get(row, column) else {
        return Ok(None);
    };
    let scaled = parse_scaled(text, 2).ok_or_else(|| format!("unreadable amount {text:?}"))?;
    let minor = to_i64(scaled.abs()).ok_or_else(|| format!("amount {text:?} out of range"))?;
    Ok(Some(Money::new(minor, currency)))
}

fn currency_of(text: Option<&str>, default: Currency) -> Result<Currency, String> {
    match text {
        None => Ok(default),
        Some(code) => code
            .parse::<Currency>()
            .map_err(|_| format!("currency {code:?} is not one we price or settle in")),
    }
}

/// A CNY figure stated in a currency column: the amount when the column says CNY.
fn stated_cny(
    layout: &WechatPayBillLayout,
    row: &[&str],
    currency_column: WechatPayBillColumn,
    amount_column: WechatPayBillColumn,
) -> Result<Option<Option<Money>>, String> {
    if !layout.has(currency_column) || !layout.has(amount_column) {
        return Ok(None);
    }
    if layout.get(row, currency_column) != Some("CNY") {
        return Ok(Some(None));
    }
    money(layout, row, amount_column, Currency::Cny).map(Some)
}

/// Maps one row onto a [`BillLine`]; the error names what is wrong with the row.
fn bill_line(layout: &WechatPayBillLayout, row: &[&str]) -> Result<BillLine, String> {
    use WechatPayBillColumn as C;
    let state_text = layout.get(row, C::TradeState).unwrap_or_default();
    let refund_no = present_number(layout.get(row, C::OutRefundNo));
    let kind = match WechatPayBillTradeState::parse(state_text) {
        WechatPayBillTradeState::Success => BillLineKind::Payment,
        WechatPayBillTradeState::Refund => BillLineKind::Refund,
        WechatPayBillTradeState::Revoked => BillLineKind::Reversal,
        // A state we do not know: the row is about a refund if it names one; its status is
        // `Unknown` either way, so nothing is read into it.
        WechatPayBillTradeState::Unrecognised(_) if refund_no.is_some() => BillLineKind::Refund,
        WechatPayBillTradeState::Unrecognised(_) => BillLineKind::Payment,
    };
    let transaction_id = layout
        .get(row, C::TransactionId)
        .ok_or("no 微信订单号")?
        .to_owned();
    let out_trade_no = layout
        .get(row, C::OutTradeNo)
        .ok_or("no 商户订单号")?
        .to_owned();
    let currency = currency_of(layout.get(row, C::Currency), Currency::Cny)?;
    let first_amount = |columns: &[WechatPayBillColumn]| -> Result<Option<Money>, String> {
        for column in columns {
            if let Some(amount) = money(layout, row, *column, currency)? {
                return Ok(Some(amount));
            }
        }
        Ok(None)
    };

    let (amount, cny_amount, wallet_ref, wallet_order_ref, out_refund_no, status, status_text) =
        match kind {
            BillLineKind::Refund => {
                let amount = first_amount(&[C::RequestedRefundAmount, C::RefundAmount])?
                    .ok_or("a refund row without a refund amount")?;
                let refund_id = present_number(layout.get(row, C::RefundId))
                    .ok_or("a refund row without 微信退款单号")?;
                let out_refund_no = refund_no.ok_or("a refund row without 商户退款单号")?;
                let refund_state_text = layout.get(row, C::RefundStatus);
                let status = match (
                    WechatPayBillTradeState::parse(state_text),
                    refund_state_text,
                ) {
                    (WechatPayBillTradeState::Unrecognised(_), _) | (_, None) => {
                        BillLineStatus::Unknown
                    }
                    (_, Some(text)) => WechatPayBillRefundState::parse(text).status(),
                };
                let cny = stated_cny(layout, row, C::PayerRefundCurrency, C::PayerRefundAmount)?
                    .unwrap_or((currency == Currency::Cny).then_some(amount));
                (
                    amount,
                    cny,
                    refund_id.to_owned(),
                    Some(transaction_id),
                    Some(out_refund_no.to_owned()),
                    status,
                    refund_state_text.unwrap_or(state_text).to_owned(),
                )
            }
            BillLineKind::Payment | BillLineKind::Reversal => {
                let amount = first_amount(&[C::OrderAmount, C::SettlementAmount])?
                    .ok_or("a row without an amount")?;
                let status = match WechatPayBillTradeState::parse(state_text) {
                    WechatPayBillTradeState::Unrecognised(_) => BillLineStatus::Unknown,
                    _ => BillLineStatus::Succeeded,
                };
                let cny = stated_cny(layout, row, C::PayerCurrency, C::PayerAmount)?
                    .unwrap_or((currency == Currency::Cny).then_some(amount));
                (
                    amount,
                    cny,
                    transaction_id,
                    None,
                    None,
                    status,
                    state_text.to_owned(),
                )
            }
        };

    let fee = match layout.get(row, C::Fee) {
        None => None,
        Some(text) => {
            let exact =
                parse_scaled(text, SCALE).ok_or_else(|| format!("unreadable fee {text:?}"))?;
            let settlement_column = match kind {
                BillLineKind::Refund => C::RefundSettlementCurrency,
                BillLineKind::Payment | BillLineKind::Reversal => C::SettlementCurrency,
            };
            let fee_currency = currency_of(layout.get(row, settlement_column), currency)?;
            let milli = to_i64(exact).ok_or("fee out of range")?;
            Some(BillFee::from_milli_minor(fee_currency, milli))
        }
    };

    let time_text = match kind {
        BillLineKind::Refund => layout
            .get(row, C::RefundSucceededTime)
            .or_else(|| layout.get(row, C::RefundRequestedTime))
            .or_else(|| layout.get(row, C::Time)),
        BillLineKind::Payment | BillLineKind::Reversal => layout.get(row, C::Time),
    }
    .ok_or("a row without a time")?;
    let time = parse_beijing_datetime(time_text)
        .ok_or_else(|| format!("unreadable time {time_text:?}"))?;

    if status == BillLineStatus::Unknown {
        tracing::warn!(
            wallet = "wechatpay",
            wallet.status = %status_text,
            "unrecognised bill row status; the line is marked unknown"
        );
    }
    Ok(BillLine {
        wallet: Wallet::WechatPay,
        kind,
        out_trade_no: Some(out_trade_no),
        out_refund_no,
        wallet_ref,
        wallet_order_ref,
        amount,
        cny_amount,
        fee,
        time,
        wallet_status: status_text,
        status,
    })
}

// ---------------------------------------------------------------------------------------------
// The file

/// Summary figures and the detail column each one adds up (`bills.md` §1.3; the older
/// layout's names included). A figure whose column the layout lacks is not checked.
const SUMMED_FIGURES: [(&str, &str); 10] = [
    ("应结订单总金额", "应结订单金额"),
    ("退款总金额", "退款金额"),
    ("充值券退款总金额", "充值券退款金额"),
    ("手续费总金额", "手续费"),
    ("订单总金额", "订单金额"),
    ("申请退款总金额", "申请退款金额"),
    ("总交易额", "总金额"),
    ("总退款金额", "退款金额"),
    ("总代金券或立减优惠退款金额", "代金券或立减优惠退款金额"),
    ("总企业红包退款金额", "企业红包退款金额"),
];
/// The summary's row count: payment and refund rows together (the WxJava and go samples).
const COUNT_FIGURE: &str = "总交易单数";
const PAYMENT_TOTAL_FIGURES: [&str; 3] = ["订单总金额", "总交易额", "应结订单总金额"];
const REFUND_TOTAL_FIGURES: [&str; 3] = ["申请退款总金额", "总退款金额", "退款总金额"];
const FEE_TOTAL_FIGURE: &str = "手续费总金额";

/// Where the parser is in the file.
enum WechatPayBillSection {
    Header,
    Rows(WechatPayBillLayout),
    SummaryValues(WechatPayBillLayout, Vec<String>),
    Done,
}

/// Parses a bill's text (UTF-8) line by line.
///
/// Errors: a missing header or summary (a cut-off file), a row whose number of values differs
/// from the header's, a missing required column or value, an unreadable amount, currency or
/// time. Every summary figure whose column exists is checked against the sum of that column
/// over all rows (and the row count against `总交易单数`); disagreements are returned in
/// [`ParsedBill::mismatches`].
pub(super) fn parse_bill<R: BufRead>(reader: R) -> Result<ParsedBill, BillFormatError> {
    let mut lines = BillLineReader::new(reader);
    let mut section = WechatPayBillSection::Header;
    let mut rows: Vec<BillLine> = Vec::new();
    // Column sums at SCALE, by header position.
    let mut sums: Vec<i128> = Vec::new();
    let mut totals = None;
    while let Some(raw) = lines.next_line()? {
        let line_number = lines.line_number();
        let at = |what: String| BillFormatError::malformed(format!("line {line_number}: {what}"));
        let text = utf8_text(&raw)?;
        if text.trim().is_empty() {
            continue;
        }
        section = match section {
            WechatPayBillSection::Header => {
                if text.starts_with('`') {
                    return Err(at("a row before the header".into()));
                }
                let layout = WechatPayBillLayout::from_header(text)?;
                sums = vec![0; layout.width];
                WechatPayBillSection::Rows(layout)
            }
            WechatPayBillSection::Rows(layout) => match row_values(text) {
                Some(values) => {
                    if values.len() != layout.width {
                        return Err(at(format!(
                            "{} values under {} columns",
                            values.len(),
                            layout.width
                        )));
                    }
                    add_row_sums(&mut sums, &layout, &values).map_err(&at)?;
                    rows.push(bill_line(&layout, &values).map_err(&at)?);
                    WechatPayBillSection::Rows(layout)
                }
                None => {
                    let names = text.split(',').map(|n| n.trim().to_owned()).collect();
                    WechatPayBillSection::SummaryValues(layout, names)
                }
            },
            WechatPayBillSection::SummaryValues(layout, names) => {
                let values = row_values(text).ok_or_else(|| at("no summary values".into()))?;
                if values.len() != names.len() {
                    return Err(at(format!(
                        "{} summary values under {} names",
                        values.len(),
                        names.len()
                    )));
                }
                totals = Some(summary(&layout, &names, &values, &rows, &sums)?);
                WechatPayBillSection::Done
            }
            WechatPayBillSection::Done => {
                return Err(at("content after the summary".into()));
            }
        };
    }
    let (totals, mismatches) = totals
        .ok_or_else(|| BillFormatError::malformed("no summary: the file is empty or cut short"))?;
    Ok(ParsedBill {
        lines: rows,
        totals,
        mismatches,
    })
}

/// Adds every value of the row that reads as a decimal to its column's sum; columns that are
/// not numbers (ids, names, rates with `%`) are skipped, but a summed column must be a number.
fn add_row_sums(
    sums: &mut [i128],
    layout: &WechatPayBillLayout,
    values: &[&str],
) -> Result<(), String> {
    let mut positions: Vec<usize> = SUMMED_FIGURES
        .iter()
        .filter_map(|(_, column)| layout.position_of(column))
        .collect();
    positions.sort_unstable();
    positions.dedup();
    for position in positions {
        let column = layout
            .header
            .get(position)
            .map(String::as_str)
            .unwrap_or_default();
        let text = values.get(position).map(|v| v.trim()).unwrap_or_default();
        if text.is_empty() {
            continue;
        }
        let value =
            parse_scaled(text, SCALE).ok_or_else(|| format!("unreadable {column} {text:?}"))?;
        if let Some(sum) = sums.get_mut(position) {
            *sum = sum.checked_add(value).ok_or("a column sum overflows")?;
        }
    }
    Ok(())
}

/// The totals as stated, and the figures that disagree with the rows.
fn summary(
    layout: &WechatPayBillLayout,
    names: &[String],
    values: &[&str],
    rows: &[BillLine],
    sums: &[i128],
) -> Result<(BillTotals, Vec<qrgate_connector_api::BillMismatch>), BillFormatError> {
    let stated: Vec<BillFigure> = names
        .iter()
        .zip(values)
        .map(|(name, value)| BillFigure {
            name: name.clone(),
            value: value.trim().to_owned(),
        })
        .collect();
    let figure = |name: &str| {
        stated
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
            .filter(|v| !v.is_empty())
    };
    let scaled = |name: &str, text: &str| {
        parse_scaled(text, SCALE).ok_or_else(|| {
            BillFormatError::malformed(format!("summary {name} {text:?} is not a number"))
        })
    };

    let mut mismatches = Vec::new();
    let mut line_count = None;
    if let Some(text) = figure(COUNT_FIGURE) {
        let count: u64 = text.parse().map_err(|_| {
            BillFormatError::malformed(format!("summary {COUNT_FIGURE} {text:?} is not a count"))
        })?;
        line_count = Some(count);
        let rows_count = i128::try_from(rows.len()).unwrap_or(i128::MAX);
        check_figure(
            &mut mismatches,
            COUNT_FIGURE,
            text,
            i128::from(count),
            rows_count,
            0,
        );
    }
    for (name, column) in SUMMED_FIGURES {
        let (Some(text), Some(position)) = (figure(name), layout.position_of(column)) else {
            continue;
        };
        let stated_value = scaled(name, text)?;
        let summed = sums.get(position).copied().unwrap_or_default();
        // Money figures are written with two decimals, the fee with five: compare exactly,
        // and show the sum at the precision the figure is written in.
        let shown_scale = if name == FEE_TOTAL_FIGURE { SCALE } else { 2 };
        if stated_value != summed {
            mismatches.push(qrgate_connector_api::BillMismatch {
                figure: name.to_owned(),
                stated: text.to_owned(),
                summed: bill_file::format_scaled(
                    summed / 10i128.pow(SCALE - shown_scale),
                    shown_scale,
                ),
            });
        }
    }

    // The typed figures need one currency: the rows', when they agree (CNY for a file
    // without rows or without a currency column).
    let currency = single_currency(rows.iter().map(|r| r.amount.currency()));
    let fee_currency = single_currency(rows.iter().filter_map(|r| r.fee.map(|f| f.currency())));
    let as_money =
        |names: &[&str]| -> Result<Option<Money>, BillFormatError> {
            let Some((name, text)) = names.iter().find_map(|n| figure(n).map(|t| (*n, t))) else {
                return Ok(None);
            };
            let value = scaled(name, text)?;
            Ok(currency
                .and_then(|c| to_i64(value / SCALE_PER_MINOR).map(|minor| Money::new(minor, c))))
        };
    let fee = match figure(FEE_TOTAL_FIGURE) {
        Some(text) => {
            let value = scaled(FEE_TOTAL_FIGURE, text)?;
            fee_currency
                .zip(to_i64(value))
                .map(|(c, milli)| BillFee::from_milli_minor(c, milli))
        }
        None => None,
    };
    let totals = BillTotals {
        line_count,
        payment_count: None,
        refund_count: None,
        payment_amount: as_money(&PAYMENT_TOTAL_FIGURES)?,
        refund_amount: as_money(&REFUND_TOTAL_FIGURES)?,
        fee,
        stated,
    };
    Ok((totals, mismatches))
}

/// The one currency of a set, CNY for an empty set, `None` when they differ.
fn single_currency(mut currencies: impl Iterator<Item = Currency>) -> Option<Currency> {
    let Some(first) = currencies.next() else {
        return Some(Currency::Cny);
    };
    currencies.all(|c| c == first).then_some(first)
}

// ---------------------------------------------------------------------------------------------
// The download's answer

/// What `/pay/downloadbill` answered, before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WechatPayBillBody {
    /// The bill as plain text.
    Text,
    /// The bill gzipped (`tar_type=GZIP`).
    Gzip,
    /// An XML error document.
    Error(WechatPayBillRefusal),
}

/// A failed download (`return_code=FAIL`), classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WechatPayBillRefusal {
    NoBill {
        message: String,
    },
    Creating {
        message: String,
    },
    /// `SYSTEMERROR` and the like: the wallet could not answer now.
    System {
        message: String,
    },
    /// Anything else: our request or configuration (`invalid bill_type`, `SIGN ERROR`…).
    Other {
        code: String,
        message: String,
    },
}

/// Tells the three answers apart the way `bills.md` §1.2 describes: a gzip stream by its
/// magic bytes; an error by a body that starts, after blanks, with `<` (a bill never does);
/// anything else is the bill's text.
pub(super) fn classify_body(body: &[u8]) -> Result<WechatPayBillBody, ConnectorError> {
    if bill_file::is_gzip(body) {
        return Ok(WechatPayBillBody::Gzip);
    }
    let text = body.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(body);
    let starts_with_angle = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    if !starts_with_angle {
        return Ok(WechatPayBillBody::Text);
    }
    let context = WechatPayOperation::DownloadBill.name();
    let fields = wire::parse_xml(body)
        .map_err(|e| ConnectorError::BadResponse(format!("{context}: {e}")))?;
    let message = wire::field(&fields, "return_msg")
        .unwrap_or_default()
        .to_owned();
    if wire::field(&fields, "return_code") != Some("FAIL") {
        return Err(ConnectorError::BadResponse(format!(
            "{context}: an XML answer that is not a failure"
        )));
    }
    let error_code = wire::field(&fields, "error_code").unwrap_or_default();
    let lower = message.trim().to_ascii_lowercase();
    let refusal =
        if lower == NO_BILL_EXIST || (lower.is_empty() && error_code == NO_BILL_ERROR_CODE) {
            WechatPayBillRefusal::NoBill { message }
        } else if lower == BILL_CREATING {
            WechatPayBillRefusal::Creating { message }
        } else if lower == "systemerror" || lower == "system error" {
            WechatPayBillRefusal::System { message }
        } else {
            WechatPayBillRefusal::Other {
                code: if error_code.is_empty() {
                    "FAIL".to_owned()
                } else {
                    error_code.to_owned()
                },
                message,
            }
        };
    Ok(WechatPayBillBody::Error(refusal))
}

/// The name the file is recorded under: `wechatpay_<mch_id>_<yyyyMMdd>_ALL.csv[.gz]`.
pub(super) fn file_name(mch_id: &str, day: NaiveDate, gzip: bool) -> String {
    format!(
        "wechatpay_{mch_id}_{}_ALL.csv{}",
        day.format("%Y%m%d"),
        if gzip { ".gz" } else { "" }
    )
}

/// Opens the answer to `/pay/downloadbill` for `day` and parses the bill in it.
pub(super) fn open_bill_response(
    response: &HttpResponse,
    mch_id: &str,
    day: NaiveDate,
) -> Result<WalletBill, BillError> {
    wire::check_http_status(WechatPayOperation::DownloadBill.name(), response.status)?;
    let body = &response.body;
    let (parsed, gzip) = match classify_body(body)? {
        WechatPayBillBody::Error(refusal) => return Err(refusal_error(refusal)),
        WechatPayBillBody::Text => (parse_bill(body.as_slice()), false),
        WechatPayBillBody::Gzip => {
            let decoder = flate2::bufread::MultiGzDecoder::new(body.as_slice());
            (parse_bill(std::io::BufReader::new(decoder)), true)
        }
    };
    let file = BillFile::new(file_name(mch_id, day, gzip), body.clone());
    match parsed {
        Ok(parsed) => bill_file::assemble(Wallet::WechatPay, day, parsed, file),
        Err(e) => Err(e.into_bill_error(Some(file))),
    }
}

fn refusal_error(refusal: WechatPayBillRefusal) -> BillError {
    match refusal {
        WechatPayBillRefusal::NoBill { message } => BillError::NoBill {
            code: "No Bill Exist".into(),
            message,
        },
        WechatPayBillRefusal::Creating { message } => BillError::NotReady {
            code: "Bill Creating".into(),
            message,
        },
        WechatPayBillRefusal::System { message } => BillError::Call(
            ConnectorError::OutcomeUnknown(format!("wechatpay.downloadbill: {message}")),
        ),
        WechatPayBillRefusal::Other { code, message } => {
            BillError::Call(ConnectorError::Rejected { code, message })
        }
    }
}

/// Whether `day` may have a bill at `now` (its Beijing day has ended).
pub(super) fn check_day(day: NaiveDate, now: DateTime<Utc>) -> Result<(), BillError> {
    if bill_file::beijing_day_not_over(day, now) {
        return Err(bill_file::too_recent(day));
    }
    Ok(())
}
