//! The web till's storage: operators' PIN hashes and wrong-PIN counts, sign-in sessions (by
//! the hash of their token, never the token), and a merchant's orders over a span of time.

use chrono::{DateTime, Utc};
use qrgate_domain::{MerchantId, Operator, OperatorId, Order};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::merchants::operator_from_row;
use crate::orders::{opt_ms, order_from_row, ORDER_COLUMNS};
use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

/// An operator with what signing in checks.
#[derive(Debug, Clone)]
pub struct OperatorPin {
    pub operator: Operator,
    /// The argon2 PHC string; `None` until a PIN is set.
    pub pin_hash: Option<String>,
    /// Sign-in is refused until then (after too many wrong PINs).
    pub locked_until: Option<DateTime<Utc>>,
}

/// A till's sign-in session as stored (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TillSessionRecord {
    pub merchant_id: MerchantId,
    pub operator_id: OperatorId,
    pub created_at: DateTime<Utc>,
    /// The absolute end of the session.
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

fn session_from_row(row: &AnyRow) -> Result<TillSessionRecord, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let ms = |col: &str| from_millis(row.try_get::<i64, _>(col).map_err(StoreError::corrupt)?);
    Ok(TillSessionRecord {
        merchant_id: MerchantId::parse(&text("merchant_id")?).map_err(StoreError::corrupt)?,
        operator_id: OperatorId::parse(&text("operator_id")?).map_err(StoreError::corrupt)?,
        created_at: ms("created_at")?,
        expires_at: ms("expires_at")?,
        last_seen_at: ms("last_seen_at")?,
    })
}

impl Store {
    /// The operator with its PIN hash and lock, or `None` if the merchant has no such operator.
    pub async fn operator_pin(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
    ) -> Result<Option<OperatorPin>, StoreError> {
        let row = sqlx::query(
            "SELECT merchant_id, id, name, created_at, pin_hash, pin_locked_until FROM operators \
             WHERE merchant_id = $1 AND id = $2",
        )
        .bind(merchant_id.as_str())
        .bind(operator_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "operator"))?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(OperatorPin {
            operator: operator_from_row(&row)?,
            pin_hash: row.try_get("pin_hash").map_err(StoreError::corrupt)?,
            locked_until: opt_ms(&row, "pin_locked_until")?,
        }))
    }

    /// Sets an operator's PIN hash, and lifts any lock and wrong-PIN count.
    /// [`StoreError::NotFound`] if the merchant has no such operator.
    pub async fn set_operator_pin_hash(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        pin_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE operators SET pin_hash = $1, pin_failures = 0, pin_failure_window_start = NULL, \
             pin_locked_until = NULL, updated_at = $2 WHERE merchant_id = $3 AND id = $4",
        )
        .bind(pin_hash)
        .bind(to_millis(now))
        .bind(merchant_id.as_str())
        .bind(operator_id.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "operator"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("operator"));
        }
        Ok(())
    }

    /// Counts a wrong PIN: in the window that began after `window_cutoff`, or in a new one
    /// from `now`. At `max_failures` the operator is locked until `lock_until` and the count
    /// starts again. Returns the lock's end when this failure set it. One statement counts,
    /// so two wrong PINs at once are both counted.
    pub async fn record_pin_failure(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        window_cutoff: DateTime<Utc>,
        max_failures: i64,
        lock_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (merchant_id, operator_id) = (merchant_id.clone(), operator_id.clone());
        self.write("operator", move |conn| {
            Box::pin(async move {
                let err = |e| StoreError::from_sqlx(e, "operator");
                let failures: Option<i64> = sqlx::query_scalar(
                    "UPDATE operators SET \
               pin_failures = CASE WHEN pin_failure_window_start IS NULL \
                 OR pin_failure_window_start < $1 THEN 1 ELSE pin_failures + 1 END, \
               pin_failure_window_start = CASE WHEN pin_failure_window_start IS NULL \
                 OR pin_failure_window_start < $1 THEN $2 ELSE pin_failure_window_start END, \
               updated_at = $2 \
             WHERE merchant_id = $3 AND id = $4 RETURNING pin_failures",
                )
                .bind(to_millis(window_cutoff))
                .bind(to_millis(now))
                .bind(merchant_id.as_str())
                .bind(operator_id.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(err)?;
                match failures {
                    Some(n) if n >= max_failures => {
                        sqlx::query(
                            "UPDATE operators SET pin_locked_until = $1, pin_failures = 0, \
                     pin_failure_window_start = NULL, updated_at = $2 \
                     WHERE merchant_id = $3 AND id = $4",
                        )
                        .bind(to_millis(lock_until))
                        .bind(to_millis(now))
                        .bind(merchant_id.as_str())
                        .bind(operator_id.as_str())
                        .execute(&mut *conn)
                        .await
                        .map_err(err)?;
                        Ok(Some(lock_until))
                    }
                    _ => Ok(None),
                }
            })
        })
        .await
    }

    /// Forgets an operator's wrong PINs (after a right one).
    pub async fn clear_pin_failures(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (merchant_id, operator_id) = (merchant_id.clone(), operator_id.clone());
        self.write_statement("operator", move |conn| {
            Box::pin(async move {
        sqlx::query(
            "UPDATE operators SET pin_failures = 0, pin_failure_window_start = NULL, \
             pin_locked_until = NULL, updated_at = $1 \
             WHERE merchant_id = $2 AND id = $3 AND (pin_failures <> 0 OR pin_locked_until IS NOT NULL)",
        )
        .bind(to_millis(now))
        .bind(merchant_id.as_str())
        .bind(operator_id.as_str())
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::from_sqlx(e, "operator"))
            })
        })
        .await
    }

    /// Stores a new session under the hash of its token.
    pub async fn insert_till_session(
        &self,
        token_hash: &str,
        session: &TillSessionRecord,
    ) -> Result<(), StoreError> {
        let (token_hash, session) = (token_hash.to_owned(), session.clone());
        self.write_statement("till session", move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO till_sessions (token_hash, merchant_id, operator_id, created_at, \
             expires_at, last_seen_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(&token_hash)
                .bind(session.merchant_id.as_str())
                .bind(session.operator_id.as_str())
                .bind(to_millis(session.created_at))
                .bind(to_millis(session.expires_at))
                .bind(to_millis(session.last_seen_at))
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(|e| StoreError::from_sqlx(e, "till session"))
            })
        })
        .await
    }

    pub async fn till_session(
        &self,
        token_hash: &str,
    ) -> Result<Option<TillSessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT merchant_id, operator_id, created_at, expires_at, last_seen_at \
             FROM till_sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "till session"))?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Records that the session was used at `now` (its idle time starts again).
    pub async fn touch_till_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.write_statement("till session", move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE till_sessions SET last_seen_at = $1, updated_at = $1 \
                     WHERE token_hash = $2",
                )
                .bind(to_millis(now))
                .bind(&token_hash)
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(|e| StoreError::from_sqlx(e, "till session"))
            })
        })
        .await
    }

    pub async fn delete_till_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.write_statement("till session", move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM till_sessions WHERE token_hash = $1")
                    .bind(&token_hash)
                    .execute(conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| StoreError::from_sqlx(e, "till session"))
            })
        })
        .await
    }

    /// Deletes sessions past their end at `now` or idle since before `idle_cutoff`; returns
    /// how many.
    pub async fn delete_expired_till_sessions(
        &self,
        idle_cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.write_statement("till session", move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM till_sessions WHERE expires_at <= $1 OR last_seen_at < $2")
                    .bind(to_millis(now))
                    .bind(to_millis(idle_cutoff))
                    .execute(conn)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| StoreError::from_sqlx(e, "till session"))
            })
        })
        .await
    }

    /// The merchant's orders created in `[from, to)`, newest first, at most `limit`.
    pub async fn orders_between(
        &self,
        merchant_id: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1 AND created_at >= $2 \
             AND created_at < $3 ORDER BY created_at DESC, key DESC LIMIT $4"
        ))
        .bind(merchant_id.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        rows.iter().map(order_from_row).collect()
    }
}
