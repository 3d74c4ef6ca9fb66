//! The web till's storage: operators' PIN hashes and status, PIN attempts counted per typed
//! pair of ids, sign-in sessions (by the hash of their token, never the token), and a
//! merchant's orders over a span of time.

use chrono::{DateTime, Utc};
use qrgate_domain::{MerchantId, Operator, OperatorId, OperatorRole, OperatorStatus, Order};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::merchants::operator_from_row;
use crate::orders::{opt_ms, order_from_row, ORDER_COLUMNS};
use crate::time::{from_millis, to_millis};
use crate::{Backend, Store, StoreError};

/// An operator with what signing in checks.
#[derive(Debug, Clone)]
pub struct OperatorPin {
    pub operator: Operator,
    /// The argon2 PHC string; `None` until a PIN is set.
    pub pin_hash: Option<String>,
    pub role: OperatorRole,
}

/// Where a PIN attempt comes from, for counting: a browser that has signed in to the merchant
/// before, or any other. The two are counted apart, so that guessing from elsewhere cannot
/// lock the shop's own till out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TillDevice {
    KnownTill,
    Other,
}

impl TillDevice {
    pub fn as_str(self) -> &'static str {
        match self {
            TillDevice::KnownTill => "known_till",
            TillDevice::Other => "other",
        }
    }
}

/// What counting a PIN attempt gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinAttempt {
    /// Refused without counting: the pair of ids is locked until then.
    Locked { until: DateTime<Utc> },
    /// Counted: the attempt is the `failures`-th of its window. When that number sets a lock,
    /// `locked_until` is its end: it applies to the attempts after this one.
    Counted {
        failures: i64,
        locked_until: Option<DateTime<Utc>>,
    },
}

/// How long the `n`-th attempt of a window locks the pair of ids for, if at all.
pub type LockSchedule = fn(i64) -> Option<chrono::Duration>;

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

/// Deletes an operator's till sessions; returns how many.
async fn end_sessions_of(
    conn: &mut sqlx::AnyConnection,
    merchant_id: &MerchantId,
    operator_id: &OperatorId,
) -> Result<u64, StoreError> {
    sqlx::query("DELETE FROM till_sessions WHERE merchant_id = $1 AND operator_id = $2")
        .bind(merchant_id.as_str())
        .bind(operator_id.as_str())
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| StoreError::from_sqlx(e, "till session"))
}

/// One line of a day's close: how many and how much, for a wallet and an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayLine {
    pub wallet: qrgate_domain::Wallet,
    pub operator_id: Option<String>,
    pub count: i64,
    /// Minor units of the merchant's currency.
    pub total_minor: i64,
}

fn day_lines(rows: &[AnyRow]) -> Result<Vec<DayLine>, StoreError> {
    rows.iter()
        .map(|row| {
            let wallet: String = row.try_get("wallet").map_err(StoreError::corrupt)?;
            Ok(DayLine {
                wallet: qrgate_domain::Wallet::parse(&wallet)
                    .ok_or_else(|| StoreError::corrupt(format!("wallet {wallet:?}")))?,
                operator_id: row.try_get("operator_id").map_err(StoreError::corrupt)?,
                count: row.try_get("n").map_err(StoreError::corrupt)?,
                total_minor: row.try_get("total").map_err(StoreError::corrupt)?,
            })
        })
        .collect()
}

impl Store {
    /// The operator with its PIN hash, or `None` if the merchant has no such operator.
    pub async fn operator_pin(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
    ) -> Result<Option<OperatorPin>, StoreError> {
        let row = sqlx::query(
            "SELECT merchant_id, id, name, status, created_at, pin_hash, role FROM operators \
             WHERE merchant_id = $1 AND id = $2",
        )
        .bind(merchant_id.as_str())
        .bind(operator_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "operator"))?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role").map_err(StoreError::corrupt)?;
        Ok(Some(OperatorPin {
            operator: operator_from_row(&row)?,
            pin_hash: row.try_get("pin_hash").map_err(StoreError::corrupt)?,
            role: OperatorRole::parse(&role)
                .ok_or_else(|| StoreError::corrupt(format!("operator role {role:?}")))?,
        }))
    }

    /// A merchant's payments made in `[from, to)` (by their payment time), counted and summed
    /// by wallet and operator, in the database (any number of sales).
    pub async fn paid_lines_between(
        &self,
        merchant_id: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DayLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT wallet, operator_id, COUNT(*) AS n, CAST(SUM(amount + tip) AS BIGINT) AS total \
             FROM orders WHERE merchant_id = $1 AND status = 'paid' AND paid_at >= $2 \
             AND paid_at < $3 GROUP BY wallet, operator_id ORDER BY wallet, operator_id",
        )
        .bind(merchant_id.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        day_lines(&rows)
    }

    /// A merchant's refunds that succeeded in `[from, to)`, counted and summed by wallet and
    /// the operator who asked.
    pub async fn refund_lines_between(
        &self,
        merchant_id: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DayLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT wallet, operator_id, COUNT(*) AS n, CAST(SUM(amount) AS BIGINT) AS total \
             FROM refunds WHERE merchant_id = $1 AND status = 'succeeded' AND finished_at >= $2 \
             AND finished_at < $3 GROUP BY wallet, operator_id ORDER BY wallet, operator_id",
        )
        .bind(merchant_id.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "refund"))?;
        day_lines(&rows)
    }

    /// Sets an operator's role. [`StoreError::NotFound`] if the merchant has no such operator.
    pub async fn set_operator_role(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        role: OperatorRole,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (m, o) = (
            merchant_id.as_str().to_owned(),
            operator_id.as_str().to_owned(),
        );
        let done = self
            .write_statement("operator", move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE operators SET role = $3, updated_at = $4 \
                         WHERE merchant_id = $1 AND id = $2",
                    )
                    .bind(&m)
                    .bind(&o)
                    .bind(role.as_str())
                    .bind(to_millis(now))
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| StoreError::from_sqlx(e, "operator"))
                })
            })
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound("operator"));
        }
        Ok(())
    }

    /// The amount (minor units of the merchant's currency) above which a refund on the till
    /// needs a supervisor's approval; 0: every refund. `None` for an unknown merchant.
    pub async fn refund_approval_above(
        &self,
        merchant_id: &MerchantId,
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT refund_approval_above FROM merchants WHERE id = $1")
            .bind(merchant_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "merchant"))
    }

    /// Sets the merchant's refund approval limit (minor units, at least 0).
    pub async fn set_refund_approval_above(
        &self,
        merchant_id: &MerchantId,
        above_minor: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let m = merchant_id.as_str().to_owned();
        let done = self
            .write_statement("merchant", move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE merchants SET refund_approval_above = $2, updated_at = $3 \
                         WHERE id = $1",
                    )
                    .bind(&m)
                    .bind(above_minor)
                    .bind(to_millis(now))
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| StoreError::from_sqlx(e, "merchant"))
                })
            })
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound("merchant"));
        }
        Ok(())
    }

    /// Sets an operator's PIN hash, ends their till sessions and forgets the PIN attempts
    /// counted for their ids (lifting any lock), in one transaction. Returns how many sessions
    /// ended. [`StoreError::NotFound`] if the merchant has no such operator.
    pub async fn set_operator_pin_hash(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        pin_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (merchant_id, operator_id, pin_hash) = (
            merchant_id.clone(),
            operator_id.clone(),
            pin_hash.to_owned(),
        );
        self.write("operator", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE operators SET pin_hash = $1, updated_at = $2 \
                     WHERE merchant_id = $3 AND id = $4",
                )
                .bind(&pin_hash)
                .bind(to_millis(now))
                .bind(merchant_id.as_str())
                .bind(operator_id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "operator"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("operator"));
                }
                sqlx::query(
                    "DELETE FROM till_pin_attempts WHERE merchant_id = $1 AND operator_id = $2",
                )
                .bind(merchant_id.as_str())
                .bind(operator_id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "PIN attempts"))?;
                end_sessions_of(conn, &merchant_id, &operator_id).await
            })
        })
        .await
    }

    /// Enables or disables an operator; disabling ends their till sessions, in the same
    /// transaction. Returns how many sessions ended. [`StoreError::NotFound`] if the merchant
    /// has no such operator.
    pub async fn set_operator_status(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        status: OperatorStatus,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (merchant_id, operator_id) = (merchant_id.clone(), operator_id.clone());
        self.write("operator", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE operators SET status = $1, updated_at = $2 \
                     WHERE merchant_id = $3 AND id = $4",
                )
                .bind(status.as_str())
                .bind(to_millis(now))
                .bind(merchant_id.as_str())
                .bind(operator_id.as_str())
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "operator"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("operator"));
                }
                match status {
                    OperatorStatus::Disabled => {
                        end_sessions_of(conn, &merchant_id, &operator_id).await
                    }
                    OperatorStatus::Active => Ok(0),
                }
            })
        })
        .await
    }

    /// Counts a PIN attempt for the typed pair of ids (which need not exist) from `device`,
    /// before the PIN is checked, unless the pair is locked: then it is refused and nothing is
    /// counted. The window starts again at `now` when it began before `window_cutoff`; the
    /// attempt's number in its window, through `lock_after`, may lock the pair. One transaction
    /// reads and counts (the row locked on PostgreSQL; SQLite has one writer), so attempts at
    /// once on several gateway nodes are all counted and none slips past a lock.
    pub async fn claim_pin_attempt(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        device: TillDevice,
        window_cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        lock_after: LockSchedule,
    ) -> Result<PinAttempt, StoreError> {
        let (merchant_id, operator_id) = (merchant_id.clone(), operator_id.clone());
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        self.write("PIN attempts", move |conn| {
            Box::pin(async move {
                let err = |e| StoreError::from_sqlx(e, "PIN attempts");
                let now_ms = to_millis(now);
                sqlx::query(
                    "INSERT INTO till_pin_attempts (merchant_id, operator_id, device, failures, \
                     window_start, locked_until, created_at, updated_at) \
                     VALUES ($1, $2, $3, 0, $4, NULL, $4, $4) \
                     ON CONFLICT (merchant_id, operator_id, device) DO NOTHING",
                )
                .bind(merchant_id.as_str())
                .bind(operator_id.as_str())
                .bind(device.as_str())
                .bind(now_ms)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
                let row = sqlx::query(&format!(
                    "SELECT failures, window_start, locked_until FROM till_pin_attempts \
                     WHERE merchant_id = $1 AND operator_id = $2 AND device = $3{lock}"
                ))
                .bind(merchant_id.as_str())
                .bind(operator_id.as_str())
                .bind(device.as_str())
                .fetch_one(&mut *conn)
                .await
                .map_err(err)?;
                if let Some(until) = opt_ms(&row, "locked_until")? {
                    if until > now {
                        return Ok(PinAttempt::Locked { until });
                    }
                }
                let failures: i64 = row.try_get("failures").map_err(StoreError::corrupt)?;
                let window_start = from_millis(
                    row.try_get::<i64, _>("window_start")
                        .map_err(StoreError::corrupt)?,
                )?;
                let (failures, window_start) = if window_start < window_cutoff {
                    (1, now)
                } else {
                    (failures.saturating_add(1), window_start)
                };
                let locked_until = lock_after(failures).map(|d| now + d);
                sqlx::query(
                    "UPDATE till_pin_attempts SET failures = $1, window_start = $2, \
                     locked_until = $3, updated_at = $4 \
                     WHERE merchant_id = $5 AND operator_id = $6 AND device = $7",
                )
                .bind(failures)
                .bind(to_millis(window_start))
                .bind(locked_until.map(to_millis))
                .bind(now_ms)
                .bind(merchant_id.as_str())
                .bind(operator_id.as_str())
                .bind(device.as_str())
                .execute(&mut *conn)
                .await
                .map_err(err)?;
                Ok(PinAttempt::Counted {
                    failures,
                    locked_until,
                })
            })
        })
        .await
    }

    /// Forgets the PIN attempts counted for the pair of ids from `device` (after a right PIN).
    pub async fn forget_pin_attempts(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        device: TillDevice,
    ) -> Result<(), StoreError> {
        let (merchant_id, operator_id) = (merchant_id.clone(), operator_id.clone());
        self.write_statement("PIN attempts", move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "DELETE FROM till_pin_attempts \
                     WHERE merchant_id = $1 AND operator_id = $2 AND device = $3",
                )
                .bind(merchant_id.as_str())
                .bind(operator_id.as_str())
                .bind(device.as_str())
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(|e| StoreError::from_sqlx(e, "PIN attempts"))
            })
        })
        .await
    }

    /// Deletes the counts whose window began before `window_cutoff` and whose lock, if any, is
    /// over at `now`; returns how many.
    pub async fn delete_stale_pin_attempts(
        &self,
        window_cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.write_statement("PIN attempts", move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "DELETE FROM till_pin_attempts WHERE window_start < $1 \
                     AND (locked_until IS NULL OR locked_until <= $2)",
                )
                .bind(to_millis(window_cutoff))
                .bind(to_millis(now))
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| StoreError::from_sqlx(e, "PIN attempts"))
            })
        })
        .await
    }

    /// The PIN attempts counted for a pair of ids from `device`: the count, and the lock's end
    /// if one was set (for tests and operators' tools).
    pub async fn pin_attempts(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        device: TillDevice,
    ) -> Result<Option<(i64, Option<DateTime<Utc>>)>, StoreError> {
        let row = sqlx::query(
            "SELECT failures, locked_until FROM till_pin_attempts \
             WHERE merchant_id = $1 AND operator_id = $2 AND device = $3",
        )
        .bind(merchant_id.as_str())
        .bind(operator_id.as_str())
        .bind(device.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "PIN attempts"))?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((
            row.try_get("failures").map_err(StoreError::corrupt)?,
            opt_ms(&row, "locked_until")?,
        )))
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
