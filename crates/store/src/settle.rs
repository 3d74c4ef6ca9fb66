//! Settlement's storage: a merchant's day settled in one transaction (the statement, its lines
//! and a settlement posting per payment or refund, moving it from `merchant_payable` to
//! `merchant_settled`), and reading statements back (docs/RECONCILIATION.md).

use chrono::{DateTime, NaiveDate, Utc};
use qrgate_domain::{Currency, MerchantId, Money, Posting, PostingKind, Wallet};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::ledger::insert_posting;
use crate::recon::day_text;
use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

/// A payment or refund posting of a merchant not settled yet: one line of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub posting_txn: String,
    pub kind: PostingKind,
    pub order_key: String,
    pub refund_key: Option<String>,
    pub merchant_order_id: String,
    pub wallet: Wallet,
    /// What the customer paid (positive) or got back (negative).
    pub gross: Money,
    /// Our fee (positive), or the share given back on a refund (negative).
    pub fee: Money,
    /// What the merchant is owed for it: `gross - fee`.
    pub net: Money,
    pub at: DateTime<Utc>,
}

/// A settled day of a merchant in one currency, as its statement states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub statement_id: String,
    pub merchant_id: MerchantId,
    pub day: NaiveDate,
    /// Sales, refunds (positive) and our fees (net of fees given back), and the net payable:
    /// `net = gross - refunds - fees`.
    pub gross: Money,
    pub refunds: Money,
    pub fees: Money,
    pub net: Money,
    pub lines: i64,
    pub run_by: String,
    pub at: DateTime<Utc>,
}

fn line_from_row(row: &AnyRow, prefix_settled: bool) -> Result<StatementLine, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let int = |col: &str| row.try_get::<i64, _>(col).map_err(StoreError::corrupt);
    let currency: Currency = text("currency")?.parse().map_err(StoreError::corrupt)?;
    let kind: PostingKind = text("kind")?.parse().map_err(StoreError::corrupt)?;
    let (gross, fee, net) = if prefix_settled {
        (int("gross")?, int("fee")?, int("net")?)
    } else {
        // From the ledger: the wallet's leg, the provider's fee leg, the merchant's leg.
        let payable = int("payable")?;
        let fee = -int("fee_leg")?;
        (int("gross")?, fee, -payable)
    };
    Ok(StatementLine {
        posting_txn: text("txn")?,
        kind,
        order_key: text("order_key")?,
        refund_key: row.try_get("refund_key").map_err(StoreError::corrupt)?,
        merchant_order_id: text("merchant_order_id")?,
        wallet: Wallet::parse(&text("wallet")?).ok_or_else(|| StoreError::corrupt("bad wallet"))?,
        gross: Money::new(gross, currency),
        fee: Money::new(fee, currency),
        net: Money::new(net, currency),
        at: from_millis(int("at")?)?,
    })
}

fn settlement_from_row(row: &AnyRow) -> Result<Settlement, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let int = |col: &str| row.try_get::<i64, _>(col).map_err(StoreError::corrupt);
    let currency: Currency = text("currency")?.parse().map_err(StoreError::corrupt)?;
    let day = text("day")?;
    Ok(Settlement {
        statement_id: text("statement_id")?,
        merchant_id: MerchantId::parse(&text("merchant_id")?)
            .map_err(|_| StoreError::corrupt("bad merchant id"))?,
        day: NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .map_err(|_| StoreError::corrupt(format!("bad day {day:?}")))?,
        gross: Money::new(int("gross")?, currency),
        refunds: Money::new(int("refunds")?, currency),
        fees: Money::new(int("fees")?, currency),
        net: Money::new(int("net")?, currency),
        lines: int("lines")?,
        run_by: text("run_by")?,
        at: from_millis(int("created_at")?)?,
    })
}

const SETTLEMENT_COLUMNS: &str = "statement_id, merchant_id, day, currency, gross, refunds, fees, \
    net, lines, run_by, created_at";

impl Store {
    /// A merchant's payment and refund postings written in `[from, to)` and not settled yet,
    /// oldest first.
    pub async fn unsettled_lines(
        &self,
        merchant: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StatementLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.txn, e.kind, e.order_key, e.refund_key, e.currency, e.amount AS payable, \
             e.created_at AS at, o.order_id AS merchant_order_id, o.wallet, \
             COALESCE((SELECT w.amount FROM ledger_entries w WHERE w.txn = e.txn \
               AND w.account LIKE 'wallet_clearing:%'), 0) AS gross, \
             COALESCE((SELECT f.amount FROM ledger_entries f WHERE f.txn = e.txn \
               AND f.account = 'provider_fees'), 0) AS fee_leg \
             FROM ledger_entries e JOIN orders o ON o.key = e.order_key \
             WHERE e.account = $1 AND e.kind IN ('payment', 'refund') \
             AND e.created_at >= $2 AND e.created_at < $3 \
             AND NOT EXISTS (SELECT 1 FROM settlement_lines s WHERE s.posting_txn = e.txn) \
             ORDER BY e.created_at, e.txn",
        )
        .bind(format!("merchant_payable:{merchant}"))
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "ledger entry"))?;
        rows.iter().map(|r| line_from_row(r, false)).collect()
    }

    /// How many open reconciliation breaks name an order with a posting of `merchant` written
    /// in `[from, to)`.
    pub async fn open_breaks_of_merchant(
        &self,
        merchant: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(DISTINCT b.id) FROM recon_breaks b JOIN ledger_entries e \
             ON e.order_key = b.order_key WHERE b.status = 'open' AND e.account = $1 \
             AND e.created_at >= $2 AND e.created_at < $3",
        )
        .bind(format!("merchant_payable:{merchant}"))
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "reconciliation break"))
    }

    /// Writes a settled day in one transaction: the statement, its lines, and the settlement
    /// postings. Returns false (writing nothing) when that merchant, day and currency is
    /// settled already, or a line was settled meanwhile.
    pub async fn insert_settlement(
        &self,
        settlement: &Settlement,
        lines: &[StatementLine],
        postings: &[(Posting, String, Option<String>)],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (s, lines, postings) = (settlement.clone(), lines.to_vec(), postings.to_vec());
        let result = self
            .write("settlement", move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO settlements (statement_id, merchant_id, day, currency, gross, \
                         refunds, fees, net, lines, run_by, created_at, updated_at) VALUES \
                         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
                    )
                    .bind(&s.statement_id)
                    .bind(s.merchant_id.as_str())
                    .bind(day_text(s.day))
                    .bind(s.net.currency().code())
                    .bind(s.gross.minor())
                    .bind(s.refunds.minor())
                    .bind(s.fees.minor())
                    .bind(s.net.minor())
                    .bind(s.lines)
                    .bind(&s.run_by)
                    .bind(to_millis(now))
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "settlement"))?;
                    for l in &lines {
                        sqlx::query(
                            "INSERT INTO settlement_lines (statement_id, posting_txn, kind, \
                             order_key, refund_key, merchant_order_id, wallet, gross, fee, net, at, \
                             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                             $10, $11, $12, $12)",
                        )
                        .bind(&s.statement_id)
                        .bind(&l.posting_txn)
                        .bind(l.kind.as_str())
                        .bind(&l.order_key)
                        .bind(l.refund_key.as_deref())
                        .bind(&l.merchant_order_id)
                        .bind(l.wallet.as_str())
                        .bind(l.gross.minor())
                        .bind(l.fee.minor())
                        .bind(l.net.minor())
                        .bind(to_millis(l.at))
                        .bind(to_millis(now))
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| StoreError::from_sqlx(e, "settlement"))?;
                    }
                    for (p, order_key, refund_key) in &postings {
                        insert_posting(conn, p, order_key, refund_key.as_deref(), now).await?;
                    }
                    Ok(())
                })
            })
            .await;
        match result {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A merchant's statements, newest day first.
    pub async fn settlements_of(
        &self,
        merchant: &MerchantId,
    ) -> Result<Vec<Settlement>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE merchant_id = $1 \
             ORDER BY day DESC, currency"
        ))
        .bind(merchant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "settlement"))?;
        rows.iter().map(settlement_from_row).collect()
    }

    /// Every statement of one day (merchants' local days), for the payout file.
    pub async fn settlements_on(&self, day: NaiveDate) -> Result<Vec<Settlement>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE day = $1 \
             ORDER BY merchant_id, currency"
        ))
        .bind(day_text(day))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "settlement"))?;
        rows.iter().map(settlement_from_row).collect()
    }

    /// A statement's lines, in order.
    pub async fn statement_lines(
        &self,
        statement_id: &str,
    ) -> Result<Vec<StatementLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.posting_txn AS txn, l.kind, l.order_key, l.refund_key, s.currency, \
             l.merchant_order_id, l.wallet, l.gross, l.fee, l.net, l.at \
             FROM settlement_lines l JOIN settlements s ON s.statement_id = l.statement_id \
             WHERE l.statement_id = $1 ORDER BY l.at, l.id",
        )
        .bind(statement_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "settlement"))?;
        rows.iter().map(|r| line_from_row(r, true)).collect()
    }
}
