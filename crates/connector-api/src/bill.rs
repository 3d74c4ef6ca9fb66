//! One day's bill (statement) of a wallet, normalised: what [`crate::Connector::download_bill`]
//! returns, and the errors the reconciliation job must tell apart.
//!
//! A bill is the wallet's own record of what moved on one of its days: WeChat Pay's and
//! Alipay's Beijing calendar day, UnionPay's settle date (which ends at 23:00 Beijing time).
//! Each connector downloads the file through the wallet's real call, keeps the bytes as
//! downloaded (for the record), parses them with a pure parser keyed on the file's own header
//! names, checks the file's own summary against its lines, and maps every row onto a
//! [`BillLine`]. `docs/CONNECTORS.md` says, per wallet, which column each field comes from.
//!
//! Conventions, the same for every wallet:
//! * Amounts are positive magnitudes; [`BillLineKind`] says which way the money went. A
//!   wallet that writes refunds as negative numbers (Alipay) is read as its magnitude.
//! * A fee is signed from the merchant's side: positive = charged to the merchant, negative =
//!   returned to it (a refund's share of the fee). See [`BillFee`] for its precision.
//! * Times are UTC instants (the files write Beijing time, UTC+8).
//! * [`BillTotals`] hold what the file's summary states, as stated (signs included); they are
//!   never recomputed from the lines. A summary that disagrees with the lines is
//!   [`BillError::TotalsMismatch`], never silently accepted.

use chrono::{DateTime, NaiveDate, Utc};
use qrgate_domain::{Currency, Money};
use sha2::{Digest, Sha256};

use crate::{ConnectorError, Wallet};

/// One day's bill of one wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletBill {
    pub wallet: Wallet,
    /// The wallet's bill day asked for (Beijing calendar; UnionPay's settle date).
    pub day: NaiveDate,
    /// Every row of the file, in file order. Empty for a day the file lists nothing.
    pub lines: Vec<BillLine>,
    /// What the file's own summary says.
    pub totals: BillTotals,
    /// The file as downloaded.
    pub file: BillFile,
}

/// What a bill line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillLineKind {
    /// A payment to the merchant.
    Payment,
    /// A refund of (part of) a payment, on the day the refund happened.
    Refund,
    /// A code payment the wallet reversed or revoked as a whole (WeChat `REVOKED`, UnionPay's
    /// consume cancellation `S31`): if money had moved, it went back.
    Reversal,
}

/// The line's state, normalised. Bills mostly list what succeeded; WeChat also lists refunds
/// still in progress or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillLineStatus {
    /// The payment, refund or reversal took effect.
    Succeeded,
    /// Accepted, not done yet (a WeChat refund `PROCESSING`, or `CHANGE`: money parked for
    /// manual handling). Counted as refunded by WeChat's own overseas FAQ; kept apart here.
    Processing,
    /// Closed without moving money (a WeChat refund `REFUNDCLOSE`).
    Failed,
    /// A status text this connector does not know; see [`BillLine::wallet_status`].
    Unknown,
}

/// One row of a bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillLine {
    pub wallet: Wallet,
    pub kind: BillLineKind,
    /// Our order number (`out_trade_no`). `None` only where the row does not say it: a
    /// UnionPay refund or cancellation whose payment is not in the same file (its row names
    /// the payment by [`BillLine::wallet_order_ref`] only).
    pub out_trade_no: Option<String>,
    /// Our refund number (`out_refund_no` / `out_request_no`; UnionPay: the refund's
    /// `orderId`), on refund rows; on a UnionPay cancellation, the cancel's own `orderId`.
    pub out_refund_no: Option<String>,
    /// The wallet's number for this row: WeChat `transaction_id` (payments) or `refund_id`
    /// (refunds), Alipay `trade_no` (Alipay's bill has no refund id), UnionPay `queryId`.
    pub wallet_ref: String,
    /// On refund and reversal rows, the wallet's number of the payment they undo (WeChat
    /// `transaction_id`, Alipay `trade_no`, UnionPay `origQryId`).
    pub wallet_order_ref: Option<String>,
    /// The amount in the pricing currency, as a positive magnitude: the order's total on a
    /// payment or reversal, the refund asked for on a refund.
    pub amount: Money,
    /// The same movement in CNY, when the bill states it in CNY (for CNY-priced lines it is
    /// `amount`); `None` when the bill gives no CNY figure.
    pub cny_amount: Option<Money>,
    /// The wallet's fee on this line; `None` when the bill has no fee column.
    pub fee: Option<BillFee>,
    /// When it happened (a refund row: when the refund succeeded, else when it was asked for,
    /// where the file says; see `docs/CONNECTORS.md`).
    pub time: DateTime<Utc>,
    /// The wallet's status text for the row, verbatim (WeChat `交易状态`, or `退款状态` on
    /// refund rows; Alipay `业务类型`; UnionPay `交易代码`).
    pub wallet_status: String,
    pub status: BillLineStatus,
}

/// A fee as a bill states it: exactly, in thousandths of a minor unit, because WeChat writes
/// fees with five decimals (`0.04000` yuan = 4000 thousandths of a fen) and sums of them must
/// stay exact; and rounded to minor units for a ledger.
///
/// Rounding rule: half away from zero (`0.04500` → 5 fen, `-0.02500` → −3 fen), the usual
/// 四舍五入. To total fees exactly, sum [`BillFee::exact_milli_minor`] and round once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BillFee {
    currency: Currency,
    exact_milli_minor: i64,
}

impl BillFee {
    /// Thousandths of a minor unit per minor unit.
    pub const MILLI_PER_MINOR: i64 = 1000;

    pub fn from_milli_minor(currency: Currency, exact_milli_minor: i64) -> Self {
        BillFee {
            currency,
            exact_milli_minor,
        }
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The fee exactly as stated, in thousandths of a minor unit (signed: see the module).
    pub fn exact_milli_minor(&self) -> i64 {
        self.exact_milli_minor
    }

    /// The fee in minor units, rounded half away from zero.
    pub fn rounded(&self) -> Money {
        Money::new(
            round_half_away(self.exact_milli_minor, Self::MILLI_PER_MINOR),
            self.currency,
        )
    }
}

/// `value / divisor` rounded half away from zero (`divisor` > 0).
fn round_half_away(value: i64, divisor: i64) -> i64 {
    let quotient = value / divisor;
    let remainder = value % divisor;
    if remainder.unsigned_abs() * 2 >= divisor.unsigned_abs() {
        quotient + value.signum()
    } else {
        quotient
    }
}

/// What the file's own summary says, as the file states it (signs included: Alipay's refund
/// totals are negative). Each figure is `None` when the file does not state it; every figure
/// the file states is also kept verbatim in [`BillTotals::stated`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillTotals {
    /// Rows the summary counts (WeChat `总交易单数`: payments and refunds together).
    pub line_count: Option<u64>,
    pub payment_count: Option<u64>,
    pub refund_count: Option<u64>,
    /// The payments' total as the summary states it (WeChat 订单总金额, Alipay `#交易合计`
    /// 商家实收; `docs/CONNECTORS.md` per wallet). `None` also when the rows' currencies differ.
    pub payment_amount: Option<Money>,
    /// The refunds' total, as stated (Alipay's is negative).
    pub refund_amount: Option<Money>,
    /// The fees' total, as stated (WeChat's may be negative on a refund-only day).
    pub fee: Option<BillFee>,
    /// Every figure of the summary, name and value verbatim, in file order (for Alipay, the
    /// `#交易合计`/`#退款合计` lines and the summary file's total row).
    pub stated: Vec<BillFigure>,
}

/// One figure of a bill's summary, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillFigure {
    pub name: String,
    pub value: String,
}

/// The file as downloaded (WeChat's text or gzip, Alipay's zip, UnionPay's zip after base64
/// and zlib), for the record. The hash is computed here, so it always matches the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct BillFile {
    name: String,
    bytes: Vec<u8>,
    sha256: [u8; 32],
}

impl BillFile {
    pub fn new(name: String, bytes: Vec<u8>) -> Self {
        let sha256 = Sha256::digest(&bytes).into();
        BillFile {
            name,
            bytes,
            sha256,
        }
    }

    /// The wallet's name for the file, or one we gave it (`docs/CONNECTORS.md`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The hash as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for BillFile {
    /// The bytes are transaction data: only their size and hash are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillFile")
            .field("name", &self.name)
            .field("len", &self.bytes.len())
            .field("sha256", &self.sha256_hex())
            .finish()
    }
}

/// One disagreement between a bill's summary and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillMismatch {
    /// The summary figure, by the file's own name (`应结订单总金额`, `#交易合计 笔数`…).
    pub figure: String,
    /// What the summary states, verbatim.
    pub stated: String,
    /// What the lines add up to, in the same unit.
    pub summed: String,
}

/// Why no usable bill came back, classed by what the reconciliation job does next.
///
/// | variant | the engine should |
/// |---|---|
/// | `NoBill` | treat the day as having no wallet transactions: reconcile it against an empty bill (our orders of the day become "missing at the wallet" candidates), and not ask again |
/// | `NotReady` | ask again later (WeChat: bills from 10:00 Beijing on T+1; retry about hourly) up to a deadline of its own (e.g. T+2 noon), then alert |
/// | `TotalsMismatch` | record the file (it is in the error), not reconcile the day automatically, alert an operator; one later download may bring a corrected file |
/// | `BadFile`, `TooLarge` | alert (a format change, a bug or a limit to raise); keep the file when given; retrying rarely helps |
/// | `Call(e)` | as `e` says: `Unavailable`/`OutcomeUnknown`/`BadResponse` → retry with backoff (downloading is read-only, so a retry is always safe); `Rejected`/`Credentials` → configuration, alert; `NotSupported` → skip the wallet; `Declined` → alert with the wallet's code |
#[derive(Debug, thiserror::Error)]
pub enum BillError {
    /// The wallet has no bill for that day because nothing was traded: WeChat
    /// `No Bill Exist`, Alipay `isp.bill_not_exist` once the bill is surely due, UnionPay
    /// `respCode=34`. Final for that day.
    #[error("no bill for that day: {code} {message}")]
    NoBill { code: String, message: String },
    /// Not generated yet: WeChat `Bill Creating`, UnionPay `respCode=98`, Alipay
    /// `isp.bill_not_exist` early on T+1, or a day that has not ended (`LOCAL_TOO_RECENT`).
    #[error("bill not ready yet: {code} {message}")]
    NotReady { code: String, message: String },
    /// The file was read, but its own summary disagrees with its lines. The whole parsed bill
    /// is kept, so the caller can record the file and show the lines.
    #[error("the bill's summary does not match its lines ({} figures differ)", mismatches.len())]
    TotalsMismatch {
        mismatches: Vec<BillMismatch>,
        bill: Box<WalletBill>,
    },
    /// The file could not be read: not the format expected, a missing column, an unparsable
    /// value. `file` is the download when there was one.
    #[error("unreadable bill file: {reason}")]
    BadFile {
        reason: String,
        file: Option<Box<BillFile>>,
    },
    /// Over one of the bounds every download and parse keeps (`what` names it).
    #[error("bill too large: {what} exceeds {limit}")]
    TooLarge { what: &'static str, limit: u64 },
    /// The call itself failed (transport, the wallet's refusal, a bad signature).
    #[error(transparent)]
    Call(#[from] ConnectorError),
}

impl From<crate::BoundedCallError> for BillError {
    fn from(e: crate::BoundedCallError) -> Self {
        match e {
            crate::BoundedCallError::TooLarge { limit_bytes } => BillError::TooLarge {
                what: "downloaded bytes",
                limit: u64::try_from(limit_bytes).unwrap_or(u64::MAX),
            },
            crate::BoundedCallError::Call(e) => BillError::Call(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_half_away_from_zero() {
        let fee = |milli| {
            BillFee::from_milli_minor(Currency::Cny, milli)
                .rounded()
                .minor()
        };
        assert_eq!(fee(4000), 4);
        assert_eq!(fee(4500), 5);
        assert_eq!(fee(4499), 4);
        assert_eq!(fee(-2500), -3);
        assert_eq!(fee(-2499), -2);
        assert_eq!(fee(0), 0);
        assert_eq!(fee(600), 1);
        assert_eq!(fee(-400), 0);
    }

    #[test]
    fn a_bill_file_hashes_its_bytes_and_hides_them_in_debug() {
        let file = BillFile::new("a.csv".into(), b"abc".to_vec());
        assert_eq!(
            file.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let debug = format!("{file:?}");
        assert!(
            debug.contains("len: 3") && !debug.contains("[97"),
            "{debug}"
        );
    }
}
