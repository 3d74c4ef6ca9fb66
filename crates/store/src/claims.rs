//! Claiming rows due for work (orders to check, refunds to finish, notifications to send)
//! with a lease, so that one worker among several nodes takes each.
//!
//! A claim is `claimed_by` (the holder's name, unique to one claim) and `claimed_until` (the
//! lease). Nobody claims a row whose lease runs, and only the holder, within its lease, may
//! write the row's next state. A holder renews its lease before each wallet call, and a
//! node's claims are released when the node starts again after dying
//! ([`Store::release_claims`]).

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_millis, to_millis};
use crate::{Backend, Store, StoreError};

/// Which rows of which table are due, and what to read back.
pub(crate) struct DueRows {
    pub table: &'static str,
    /// The table's key column.
    pub key: &'static str,
    /// The condition that makes a row due, with `$3` for now.
    pub due: &'static str,
    /// The column that orders due rows, oldest first.
    pub order_by: &'static str,
    /// The column that says which lane a row is worked in (its wallet, its merchant): a claim
    /// can skip the lanes whose work is at its bound.
    pub lane: &'static str,
    /// The columns returned for each claimed row.
    pub columns: &'static str,
    /// What the rows are, for errors.
    pub what: &'static str,
}

/// The tables whose rows are claimed, with their key column and the column that is set while
/// a row may still need work (only such rows can hold a claim).
const CLAIMED_TABLES: [(&str, &str, &str); 4] = [
    ("orders", "key", "next_check_at"),
    ("refunds", "key", "next_check_at"),
    ("callbacks", "order_key", "next_attempt_at"),
    ("recon_schedule", "key", "next_attempt_at"),
];

/// A claim as stored on a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub holder: String,
    pub until: DateTime<Utc>,
}

impl Store {
    /// Claims up to `limit` rows due at `now` for `worker` until `lease_until`, skipping rows
    /// whose lease still runs and rows in the lanes `skip`, and returns them. Safe with
    /// several gateway nodes: on PostgreSQL the candidate rows are locked with `FOR UPDATE
    /// SKIP LOCKED`; SQLite has one writer at a time, so its single `UPDATE … RETURNING` is
    /// already exclusive.
    pub(crate) async fn claim_due(
        &self,
        rows: DueRows,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
        skip: &[&str],
    ) -> Result<Vec<AnyRow>, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let DueRows {
            table,
            key,
            due,
            order_by,
            lane,
            columns,
            what,
        } = rows;
        let skipped = if skip.is_empty() {
            String::new()
        } else {
            let params: Vec<String> = (0..skip.len()).map(|i| format!("${}", i + 5)).collect();
            format!("AND {lane} NOT IN ({}) ", params.join(", "))
        };
        let sql = format!(
            "UPDATE {table} SET claimed_by = $1, claimed_until = $2 WHERE {key} IN ( \
               SELECT {key} FROM {table} WHERE {due} \
               AND (claimed_until IS NULL OR claimed_until < $3) {skipped}\
               ORDER BY {order_by} LIMIT $4 {lock}) \
             RETURNING {columns}"
        );
        let worker = worker.to_owned();
        let skip: Vec<String> = skip.iter().map(|s| (*s).to_owned()).collect();
        self.write_statement("claim", move |conn| {
            Box::pin(async move {
                let mut query = sqlx::query(&sql)
                    .bind(&worker)
                    .bind(to_millis(lease_until))
                    .bind(to_millis(now))
                    .bind(limit);
                for lane in &skip {
                    query = query.bind(lane);
                }
                query
                    .fetch_all(conn)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, what))
            })
        })
        .await
    }

    /// Extends `holder`'s lease on one row to `until`, only while `holder` still holds it
    /// (its lease has not run out). Returns whether it did.
    pub(crate) async fn renew_claim(
        &self,
        table: &'static str,
        key_column: &'static str,
        key: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {table} SET claimed_until = $1 WHERE {key_column} = $2 \
             AND claimed_by = $3 AND claimed_until >= $4"
        );
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.write_statement("claim", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(&sql)
                    .bind(to_millis(until))
                    .bind(&key)
                    .bind(&holder)
                    .bind(to_millis(now))
                    .execute(conn)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "claim"))?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Releases every claim whose holder's name starts with `prefix`, on orders, refunds and
    /// notifications, and returns how many it released. For a node starting again after it
    /// died: its earlier run's claims would otherwise park their rows until their leases run
    /// out. Only safe when no live process holds claims under `prefix`: the caller proves
    /// that (the node's identity is locked to one process). An empty prefix releases nothing.
    pub async fn release_claims(&self, prefix: &str) -> Result<u64, StoreError> {
        // An empty prefix would release everybody's claims: nothing is released.
        if prefix.is_empty() {
            return Ok(0);
        }
        let mut released = 0;
        for (table, _, open) in CLAIMED_TABLES {
            // `substr … = prefix` rather than LIKE: no wildcard in a name can widen it, and it
            // is case-sensitive on both backends.
            let done = sqlx::query(&format!(
                "UPDATE {table} SET claimed_by = NULL, claimed_until = NULL \
                 WHERE {open} IS NOT NULL AND claimed_by IS NOT NULL \
                 AND substr(claimed_by, 1, length($1)) = $1"
            ))
            .bind(prefix)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "claim"))?;
            released += done.rows_affected();
        }
        Ok(released)
    }

    /// The claim on an order, if any (running or run out), for tests and for looking into a
    /// stuck order.
    pub async fn order_claim(&self, key: &str) -> Result<Option<Claim>, StoreError> {
        let row = sqlx::query(
            "SELECT claimed_by, claimed_until FROM orders WHERE key = $1 \
             AND claimed_by IS NOT NULL AND claimed_until IS NOT NULL",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        row.map(|row| {
            Ok(Claim {
                holder: row.try_get("claimed_by").map_err(StoreError::corrupt)?,
                until: from_millis(row.try_get("claimed_until").map_err(StoreError::corrupt)?)?,
            })
        })
        .transpose()
    }
}
