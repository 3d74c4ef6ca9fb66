//! Claiming rows due for work (orders to check, refunds to finish, notifications to send)
//! with a lease, so that one worker among several nodes takes each.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use crate::time::to_millis;
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
    /// The columns returned for each claimed row.
    pub columns: &'static str,
    /// What the rows are, for errors.
    pub what: &'static str,
}

impl Store {
    /// Claims up to `limit` rows due at `now` for `worker` until `lease_until`, skipping rows
    /// whose lease still runs, and returns them. Safe with several gateway nodes: on
    /// PostgreSQL the candidate rows are locked with `FOR UPDATE SKIP LOCKED`; SQLite has one
    /// writer at a time, so its single `UPDATE … RETURNING` is already exclusive.
    pub(crate) async fn claim_due(
        &self,
        rows: DueRows,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
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
            columns,
            what,
        } = rows;
        let sql = format!(
            "UPDATE {table} SET claimed_by = $1, claimed_until = $2 WHERE {key} IN ( \
               SELECT {key} FROM {table} WHERE {due} \
               AND (claimed_until IS NULL OR claimed_until < $3) \
               ORDER BY {order_by} LIMIT $4 {lock}) \
             RETURNING {columns}"
        );
        let worker = worker.to_owned();
        self.write_statement("claim", move |conn| {
            Box::pin(async move {
                sqlx::query(&sql)
                    .bind(&worker)
                    .bind(to_millis(lease_until))
                    .bind(to_millis(now))
                    .bind(limit)
                    .fetch_all(conn)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, what))
            })
        })
        .await
    }
}
