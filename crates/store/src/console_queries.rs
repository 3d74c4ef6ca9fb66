//! What the web console reads: a merchant's orders filtered and paged by keyset, refunds paged
//! the same way (for exports), sales and refunds summed, wallet calls of the last hour, and
//! what needs a person's attention.
//!
//! Paging is by `(created_at, key)` descending on the index `(merchant_id, created_at, key)`:
//! a page costs the same at the millionth order as at the first (no `OFFSET`).

use chrono::{DateTime, Utc};
use qrgate_domain::{MerchantId, Order, OrderStatus, Refund, Wallet};
use sqlx::any::AnyArguments;
use sqlx::{Arguments, Row};

use crate::orders::{order_from_row, ORDER_COLUMNS};
use crate::refunds::{refund_from_row, REFUND_COLUMNS};
use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

/// Which of a merchant's orders to list. Every field narrows the list; `None` or empty does
/// not.
#[derive(Debug, Clone)]
pub struct OrderFilter {
    pub merchant_id: MerchantId,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// Any of these statuses.
    pub statuses: Vec<OrderStatus>,
    pub wallet: Option<Wallet>,
    /// Made on one of these terminals (a shop's terminals, or one terminal). `Some(empty)`
    /// matches nothing.
    pub terminal_nos: Option<Vec<String>>,
    pub operator_id: Option<String>,
    /// Bounds on amount + tip, in minor units, inclusive.
    pub total_min: Option<i64>,
    pub total_max: Option<i64>,
    /// Our order key, the merchant's order id or the wallet's reference, exactly.
    pub search: Option<String>,
}

impl OrderFilter {
    pub fn new(merchant_id: MerchantId) -> OrderFilter {
        OrderFilter {
            merchant_id,
            from: None,
            to: None,
            statuses: Vec::new(),
            wallet: None,
            terminal_nos: None,
            operator_id: None,
            total_min: None,
            total_max: None,
            search: None,
        }
    }
}

/// Where a page starts: after this row in `(created_at, key)` descending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: DateTime<Utc>,
    pub key: String,
}

/// Paid orders of one wallet and terminal over a span of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesGroup {
    pub wallet: Wallet,
    pub terminal_no: Option<String>,
    pub count: i64,
    /// Amount + tip, in the merchant's currency.
    pub gross_minor: i64,
}

/// Succeeded refunds of one wallet over a span of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundGroup {
    pub wallet: Wallet,
    pub count: i64,
    pub amount_minor: i64,
}

/// A wallet's calls over a span of time, from the orders' timelines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletCalls {
    pub wallet: Wallet,
    pub calls: i64,
    /// Calls that ended without a wallet's answer or with a broken one (unknown outcome,
    /// unavailable, bad response, rejected, credentials, not supported).
    pub errors: i64,
    pub latency_ms_avg: i64,
    pub latency_ms_max: i64,
    pub last_at: Option<DateTime<Utc>>,
}

/// The outcomes on a timeline that are errors (not a wallet's business answer).
pub const ERROR_OUTCOMES: [&str; 6] = [
    "outcome_unknown",
    "unavailable",
    "bad_response",
    "rejected",
    "credentials",
    "not_supported",
];

/// A notification that keeps failing or was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingCallback {
    pub order_key: String,
    pub merchant_id: MerchantId,
    pub order_id: String,
    pub status: String,
    pub attempts: i64,
    pub url: String,
}

fn push<'q, T>(args: &mut AnyArguments<'q>, value: T) -> Result<usize, StoreError>
where
    T: 'q + sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    args.add(value)
        .map_err(|e| StoreError::corrupt(format!("cannot bind a query argument: {e}")))?;
    Ok(args.len())
}

impl Store {
    /// A page of the merchant's orders matching `filter`, newest first, starting after
    /// `after`, at most `limit`.
    pub async fn search_orders(
        &self,
        filter: &OrderFilter,
        after: Option<&PageCursor>,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError> {
        let mut args = AnyArguments::default();
        let mut sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = ${}",
            push(&mut args, filter.merchant_id.as_str().to_owned())?
        );
        if let Some(from) = filter.from {
            let n = push(&mut args, to_millis(from))?;
            sql.push_str(&format!(" AND created_at >= ${n}"));
        }
        if let Some(to) = filter.to {
            let n = push(&mut args, to_millis(to))?;
            sql.push_str(&format!(" AND created_at < ${n}"));
        }
        if !filter.statuses.is_empty() {
            let mut marks = Vec::new();
            for s in &filter.statuses {
                marks.push(format!("${}", push(&mut args, s.as_str().to_owned())?));
            }
            sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
        }
        if let Some(w) = filter.wallet {
            let n = push(&mut args, w.as_str().to_owned())?;
            sql.push_str(&format!(" AND wallet = ${n}"));
        }
        if let Some(terminals) = &filter.terminal_nos {
            if terminals.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::new();
            for t in terminals {
                marks.push(format!("${}", push(&mut args, t.clone())?));
            }
            sql.push_str(&format!(" AND terminal_no IN ({})", marks.join(", ")));
        }
        if let Some(op) = &filter.operator_id {
            let n = push(&mut args, op.clone())?;
            sql.push_str(&format!(" AND operator_id = ${n}"));
        }
        if let Some(min) = filter.total_min {
            let n = push(&mut args, min)?;
            sql.push_str(&format!(" AND amount + tip >= ${n}"));
        }
        if let Some(max) = filter.total_max {
            let n = push(&mut args, max)?;
            sql.push_str(&format!(" AND amount + tip <= ${n}"));
        }
        if let Some(q) = &filter.search {
            let a = push(&mut args, q.clone())?;
            let b = push(&mut args, q.clone())?;
            let c = push(&mut args, q.clone())?;
            sql.push_str(&format!(
                " AND (key = ${a} OR order_id = ${b} OR channel_ref = ${c})"
            ));
        }
        if let Some(cursor) = after {
            let t = push(&mut args, to_millis(cursor.created_at))?;
            let t2 = push(&mut args, to_millis(cursor.created_at))?;
            let k = push(&mut args, cursor.key.clone())?;
            sql.push_str(&format!(
                " AND created_at <= ${t} AND (created_at, key) < (${t2}, ${k})"
            ));
        }
        let n = push(&mut args, limit)?;
        sql.push_str(&format!(" ORDER BY created_at DESC, key DESC LIMIT ${n}"));
        let rows = sqlx::query_with(&sql, args)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        rows.iter().map(order_from_row).collect()
    }

    /// A page of the merchant's refunds created in `[from, to)`, newest first, after `after`.
    pub async fn search_refunds(
        &self,
        merchant_id: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&PageCursor>,
        limit: i64,
    ) -> Result<Vec<Refund>, StoreError> {
        let (t, k) = match after {
            Some(c) => (to_millis(c.created_at), c.key.clone()),
            // Past every row: `key < '~'` holds for every key (letters and digits).
            None => (to_millis(to), "~".to_owned()),
        };
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = $1 AND created_at >= $2 \
             AND created_at < $3 AND created_at <= $4 AND (created_at, key) < ($4, $5) \
             ORDER BY created_at DESC, key DESC LIMIT $6"
        ))
        .bind(merchant_id.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .bind(t)
        .bind(k)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "refund"))?;
        rows.iter().map(refund_from_row).collect()
    }

    /// The merchant's paid orders created in `[from, to)`, summed by wallet and terminal.
    pub async fn sales_groups(
        &self,
        merchant_id: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SalesGroup>, StoreError> {
        let rows = sqlx::query(
            "SELECT wallet, terminal_no, COUNT(*) AS n, CAST(SUM(amount + tip) AS BIGINT) AS gross \
             FROM orders WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3 \
             AND status = 'paid' GROUP BY wallet, terminal_no ORDER BY wallet, terminal_no",
        )
        .bind(merchant_id.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        rows.iter()
            .map(|r| {
                let wallet: String = r.try_get("wallet").map_err(StoreError::corrupt)?;
                Ok(SalesGroup {
                    wallet: Wallet::parse(&wallet)
                        .ok_or_else(|| StoreError::corrupt("order: bad wallet"))?,
                    terminal_no: r.try_get("terminal_no").map_err(StoreError::corrupt)?,
                    count: r.try_get("n").map_err(StoreError::corrupt)?,
                    gross_minor: r.try_get("gross").map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }

    /// The merchant's paid sales (amount + tip) created in `[from, to)`: one sum.
    pub async fn sales_total(
        &self,
        merchant_id: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let total: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(amount + tip) AS BIGINT) FROM orders WHERE merchant_id = $1 \
             AND created_at >= $2 AND created_at < $3 AND status = 'paid'",
        )
        .bind(merchant_id.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        Ok(total.unwrap_or(0))
    }

    /// The merchant's refunds that succeeded in `[from, to)`, summed by wallet.
    pub async fn refund_groups(
        &self,
        merchant_id: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RefundGroup>, StoreError> {
        let rows = sqlx::query(
            "SELECT wallet, COUNT(*) AS n, CAST(SUM(amount) AS BIGINT) AS total FROM refunds \
             WHERE merchant_id = $1 AND status = 'succeeded' AND finished_at >= $2 \
             AND finished_at < $3 GROUP BY wallet ORDER BY wallet",
        )
        .bind(merchant_id.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "refund"))?;
        rows.iter()
            .map(|r| {
                let wallet: String = r.try_get("wallet").map_err(StoreError::corrupt)?;
                Ok(RefundGroup {
                    wallet: Wallet::parse(&wallet)
                        .ok_or_else(|| StoreError::corrupt("refund: bad wallet"))?,
                    count: r.try_get("n").map_err(StoreError::corrupt)?,
                    amount_minor: r.try_get("total").map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }

    /// Every wallet's calls since `since`, from the orders' timelines.
    pub async fn wallet_calls_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<WalletCalls>, StoreError> {
        let errors = ERROR_OUTCOMES
            .iter()
            .map(|o| format!("'{o}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT o.wallet AS wallet, COUNT(*) AS calls, \
             CAST(SUM(CASE WHEN e.outcome IN ({errors}) THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
             CAST(SUM(e.latency_ms) AS BIGINT) AS latency_sum, \
             CAST(MAX(e.latency_ms) AS BIGINT) AS latency_max, \
             CAST(MAX(e.created_at) AS BIGINT) AS last_at \
             FROM order_events e JOIN orders o ON o.key = e.order_key \
             WHERE e.created_at >= $1 GROUP BY o.wallet ORDER BY o.wallet"
        ))
        .bind(to_millis(since))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order event"))?;
        rows.iter()
            .map(|r| {
                let wallet: String = r.try_get("wallet").map_err(StoreError::corrupt)?;
                let calls: i64 = r.try_get("calls").map_err(StoreError::corrupt)?;
                let sum: i64 = r.try_get("latency_sum").map_err(StoreError::corrupt)?;
                let last: Option<i64> = r.try_get("last_at").map_err(StoreError::corrupt)?;
                Ok(WalletCalls {
                    wallet: Wallet::parse(&wallet)
                        .ok_or_else(|| StoreError::corrupt("order: bad wallet"))?,
                    calls,
                    errors: r.try_get("errors").map_err(StoreError::corrupt)?,
                    latency_ms_avg: if calls > 0 { sum / calls } else { 0 },
                    latency_ms_max: r.try_get("latency_max").map_err(StoreError::corrupt)?,
                    last_at: last.map(from_millis).transpose()?,
                })
            })
            .collect()
    }

    /// Orders still open that should have settled: unknown, paying or reversing and created
    /// before `settle_cutoff`, or pending past their expiry before `now`. Oldest first.
    pub async fn stuck_orders(
        &self,
        settle_cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE \
             (status IN ('unknown', 'paying', 'reversing') AND created_at < $1) \
             OR (status = 'pending' AND expires_at IS NOT NULL AND expires_at < $2 \
                 AND created_at < $1) \
             ORDER BY created_at LIMIT $3"
        ))
        .bind(to_millis(settle_cutoff))
        .bind(to_millis(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        rows.iter().map(order_from_row).collect()
    }

    /// Refunds still processing that were created before `cutoff`, oldest first.
    pub async fn stuck_refunds(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Refund>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE status = 'processing' AND created_at < $1 \
             ORDER BY created_at LIMIT $2"
        ))
        .bind(to_millis(cutoff))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "refund"))?;
        rows.iter().map(refund_from_row).collect()
    }

    /// Notifications given up, or still pending after at least `min_attempts` attempts.
    pub async fn failing_callbacks(
        &self,
        min_attempts: i64,
        limit: i64,
    ) -> Result<Vec<FailingCallback>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.order_key, c.merchant_id, o.order_id, c.status, c.attempts, c.url \
             FROM callbacks c JOIN orders o ON o.key = c.order_key \
             WHERE c.status = 'dead' OR (c.status = 'pending' AND c.attempts >= $1) \
             ORDER BY c.updated_at DESC LIMIT $2",
        )
        .bind(min_attempts)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "callback"))?;
        rows.iter()
            .map(|r| {
                let merchant: String = r.try_get("merchant_id").map_err(StoreError::corrupt)?;
                Ok(FailingCallback {
                    order_key: r.try_get("order_key").map_err(StoreError::corrupt)?,
                    merchant_id: MerchantId::parse(&merchant).map_err(StoreError::corrupt)?,
                    order_id: r.try_get("order_id").map_err(StoreError::corrupt)?,
                    status: r.try_get("status").map_err(StoreError::corrupt)?,
                    attempts: r.try_get("attempts").map_err(StoreError::corrupt)?,
                    url: r.try_get("url").map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }

    /// The merchant's notification of an order, if any (by the gateway's order key).
    pub async fn callback_of_merchant(
        &self,
        merchant_id: &MerchantId,
        order_key: &str,
    ) -> Result<Option<crate::Callback>, StoreError> {
        Ok(self
            .callback(order_key)
            .await?
            .filter(|c| &c.merchant_id == merchant_id))
    }
}
