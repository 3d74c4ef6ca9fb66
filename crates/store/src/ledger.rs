//! The ledger's storage: postings written inside the caller's transaction, balances and the
//! invariant checks (docs/LEDGER.md).

use chrono::{DateTime, Utc};
use qrgate_domain::{Account, Currency, Money, Posting, PostingKind};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

/// One stored ledger line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub txn: String,
    pub kind: PostingKind,
    pub account: Account,
    /// Debit positive, credit negative.
    pub amount: Money,
    pub payer_amount: Option<Money>,
    pub order_key: String,
    pub refund_key: Option<String>,
    pub at: DateTime<Utc>,
}

/// The balance of one account in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalance {
    pub account: Account,
    /// Debits minus credits.
    pub balance: Money,
    /// For a wallet's clearing account: the CNY its customers paid, less what went back.
    pub payer_balance: Option<Money>,
    pub entries: i64,
}

/// Writes a posting's entries on `conn`, inside the caller's transaction. A posting is
/// balanced by construction ([`Posting::new`]); `UNIQUE (txn, account)` makes a second write
/// of the same posting fail instead of counting money twice.
pub(crate) async fn insert_posting(
    conn: &mut sqlx::AnyConnection,
    posting: &Posting,
    order_key: &str,
    refund_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // One statement for the whole posting: one round trip, whatever its number of legs.
    let entries = posting.entries();
    let rows: Vec<String> = (0..entries.len())
        .map(|i| {
            let n: Vec<String> = (1..=9).map(|k| format!("${}", i * 9 + k)).collect();
            format!("({}, {})", n.join(", "), n[8])
        })
        .collect();
    let sql = format!(
        "INSERT INTO ledger_entries (txn, kind, account, currency, amount, payer_amount, \
         order_key, refund_key, created_at, updated_at) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for e in entries {
        query = query
            .bind(posting.txn())
            .bind(posting.kind().as_str())
            .bind(e.account.to_string())
            .bind(e.amount.currency().code())
            .bind(e.amount.minor())
            .bind(e.payer_amount.map(Money::minor))
            .bind(order_key)
            .bind(refund_key)
            .bind(to_millis(now));
    }
    query
        .execute(&mut *conn)
        .await
        .map_err(|err| StoreError::from_sqlx(err, "ledger posting"))?;
    Ok(())
}

fn entry_from_row(row: &AnyRow) -> Result<LedgerEntry, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let currency: Currency = text("currency")?.parse().map_err(StoreError::corrupt)?;
    let payer: Option<i64> = row.try_get("payer_amount").map_err(StoreError::corrupt)?;
    Ok(LedgerEntry {
        txn: text("txn")?,
        kind: text("kind")?.parse().map_err(StoreError::corrupt)?,
        account: text("account")?.parse().map_err(StoreError::corrupt)?,
        amount: Money::new(
            row.try_get("amount").map_err(StoreError::corrupt)?,
            currency,
        ),
        payer_amount: payer.map(|p| Money::new(p, Currency::Cny)),
        order_key: text("order_key")?,
        refund_key: row.try_get("refund_key").map_err(StoreError::corrupt)?,
        at: from_millis(row.try_get("created_at").map_err(StoreError::corrupt)?)?,
    })
}

/// The invariant checks: each query lists what breaks one rule, as `(rule, subject)`.
const CHECKS: [(&str, &str); 13] = [
    (
        "a posting does not balance",
        "SELECT txn FROM ledger_entries GROUP BY txn HAVING SUM(amount) <> 0",
    ),
    (
        "a posting mixes currencies",
        "SELECT txn FROM ledger_entries GROUP BY txn HAVING COUNT(DISTINCT currency) > 1",
    ),
    (
        "money moved for an order that is not paid (closed, reversed or failed orders move none)",
        "SELECT DISTINCT e.order_key FROM ledger_entries e JOIN orders o ON o.key = e.order_key \
         WHERE o.status <> 'paid'",
    ),
    (
        "a paid order has no payment posting",
        "SELECT o.key FROM orders o WHERE o.status = 'paid' AND NOT EXISTS \
         (SELECT 1 FROM ledger_entries e WHERE e.txn = 'payment:' || o.key)",
    ),
    (
        "refunds exceed the payment",
        "SELECT key FROM orders WHERE refunded > amount + tip OR refund_reserved > amount + tip \
         OR refunded > refund_reserved OR refunded < 0",
    ),
    (
        "an order's refunded amount differs from its refund postings",
        "SELECT o.key FROM orders o WHERE o.refunded <> COALESCE((SELECT -SUM(e.amount) \
         FROM ledger_entries e WHERE e.order_key = o.key AND e.kind = 'refund' \
         AND e.account LIKE 'wallet_clearing:%'), 0)",
    ),
    (
        "an order's reserved refunds differ from its refunds in progress and done",
        "SELECT o.key FROM orders o WHERE o.refund_reserved <> COALESCE((SELECT SUM(r.amount) \
         FROM refunds r WHERE r.order_key = o.key AND r.status <> 'failed'), 0)",
    ),
    (
        "a succeeded refund has no posting, or another refund has one",
        "SELECT r.key FROM refunds r WHERE (r.status = 'succeeded') <> EXISTS \
         (SELECT 1 FROM ledger_entries e WHERE e.txn = 'refund:' || r.key)",
    ),
    (
        "money moved without a wallet behind it (a posting without a wallet leg)",
        "SELECT DISTINCT t.txn FROM ledger_entries t WHERE t.kind <> 'settlement' AND NOT EXISTS \
         (SELECT 1 FROM ledger_entries w WHERE w.txn = t.txn AND w.account LIKE 'wallet_clearing:%')",
    ),
    (
        "a wallet fee posting touches an account other than a wallet's fees and clearing",
        "SELECT DISTINCT txn FROM ledger_entries WHERE kind = 'wallet_fee' AND \
         account NOT LIKE 'wallet_fees:%' AND account NOT LIKE 'wallet_clearing:%'",
    ),
    (
        "a wallet fee is posted for a line no stored bill holds (or for a refund not done)",
        "SELECT DISTINCT e.txn FROM ledger_entries e WHERE e.kind = 'wallet_fee' AND (NOT EXISTS \
         (SELECT 1 FROM recon_lines l WHERE e.txn = 'wallet_fee:' || l.wallet || ':' || l.kind \
         || ':' || l.subject) OR (e.refund_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM \
         refunds r WHERE r.key = e.refund_key AND r.status = 'succeeded')))",
    ),
    (
        "a settlement posting does not move exactly what its payment or refund left payable",
        "SELECT DISTINCT s.txn FROM ledger_entries s WHERE s.kind = 'settlement' AND (s.account \
         NOT LIKE 'merchant_%' OR (s.account LIKE 'merchant_settled:%' AND s.amount <> COALESCE(\
         (SELECT u.amount FROM ledger_entries u WHERE 'settlement:' || u.txn = s.txn \
         AND u.account LIKE 'merchant_payable:%'), 0)))",
    ),
    (
        "a statement's net differs from the settlement postings of its lines",
        "SELECT st.statement_id FROM settlements st WHERE st.net <> COALESCE((SELECT \
         CAST(-SUM(e.amount) AS BIGINT) FROM ledger_entries e JOIN settlement_lines l \
         ON e.txn = 'settlement:' || l.posting_txn WHERE l.statement_id = st.statement_id \
         AND e.account LIKE 'merchant_settled:%'), 0) OR st.net <> COALESCE((SELECT \
         CAST(SUM(l.net) AS BIGINT) FROM settlement_lines l WHERE l.statement_id = \
         st.statement_id), 0)",
    ),
];

impl Store {
    /// Every entry of an order's postings (payment and refunds), oldest first.
    pub async fn ledger_entries_of_order(
        &self,
        order_key: &str,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT txn, kind, account, currency, amount, payer_amount, order_key, refund_key, \
             created_at FROM ledger_entries WHERE order_key = $1 ORDER BY id",
        )
        .bind(order_key)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "ledger entry"))?;
        rows.iter().map(entry_from_row).collect()
    }

    /// The balance of every account, by account and currency.
    pub async fn ledger_balances(&self) -> Result<Vec<AccountBalance>, StoreError> {
        let rows = sqlx::query(
            // PostgreSQL sums BIGINT as NUMERIC: cast back.
            "SELECT account, currency, CAST(SUM(amount) AS BIGINT) AS balance, \
             CAST(SUM(payer_amount) AS BIGINT) AS payer, \
             COUNT(*) AS n FROM ledger_entries GROUP BY account, currency ORDER BY account, currency",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "ledger entry"))?;
        rows.iter()
            .map(|row| {
                let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
                let currency: Currency = text("currency")?.parse().map_err(StoreError::corrupt)?;
                let payer: Option<i64> = row.try_get("payer").map_err(StoreError::corrupt)?;
                Ok(AccountBalance {
                    account: text("account")?.parse().map_err(StoreError::corrupt)?,
                    balance: Money::new(
                        row.try_get("balance").map_err(StoreError::corrupt)?,
                        currency,
                    ),
                    payer_balance: payer.map(|p| Money::new(p, Currency::Cny)),
                    entries: row.try_get("n").map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }

    /// Checks the ledger's invariants against the orders and refunds; returns what breaks
    /// them, one line per rule and subject (empty when all hold).
    pub async fn check_ledger(&self) -> Result<Vec<String>, StoreError> {
        let mut broken = Vec::new();
        for (rule, sql) in CHECKS {
            let subjects: Vec<String> = sqlx::query_scalar(sql)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "ledger check"))?;
            broken.extend(subjects.into_iter().map(|s| format!("{rule}: {s}")));
        }
        Ok(broken)
    }
}
