//! The web console's storage: its users (password hashes, one-time sign-in links, second
//! factor, wrong-password counts), their sessions (by the hash of their token, never the
//! token), and the audit log. Console writes are rare: they use the pool, not the writer.

use chrono::{DateTime, Utc};
use qrgate_domain::{ConsoleRole, Email, MerchantId, UserStatus};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::orders::opt_ms;
use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

/// A console user, without secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleUser {
    pub id: i64,
    pub email: Email,
    pub role: ConsoleRole,
    /// The merchant of a merchant role; `None` for the provider's roles.
    pub merchant_id: Option<MerchantId>,
    pub status: UserStatus,
    /// Whether a password was set (the one-time link was used).
    pub has_password: bool,
    pub totp_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A console user with what signing in checks.
#[derive(Clone)]
pub struct ConsoleUserAuth {
    pub user: ConsoleUser,
    /// The argon2 PHC string; `None` until the sign-in link was used.
    pub password_hash: Option<String>,
    /// The TOTP secret, sealed under the master key.
    pub totp_secret_enc: Option<Vec<u8>>,
    /// The last time step a code was accepted for.
    pub totp_last_step: Option<i64>,
    pub locked_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ConsoleUserAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleUserAuth")
            .field("user", &self.user)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

/// A user to create, with the hash of their one-time sign-in link's token.
#[derive(Debug, Clone)]
pub struct NewConsoleUser {
    pub email: Email,
    pub role: ConsoleRole,
    pub merchant_id: Option<MerchantId>,
    pub setup_token_hash: String,
    pub setup_expires_at: DateTime<Utc>,
}

/// A console session as stored (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRecord {
    pub user_id: i64,
    /// Signed in with the password, the second factor still to give.
    pub pending_totp: bool,
    /// The address it was opened from.
    pub ip: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// One change, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    /// The console user who made it; `None` for the CLI.
    pub user_id: Option<i64>,
    /// The user's email, or `cli`.
    pub actor: String,
    pub merchant_id: Option<MerchantId>,
    /// What was done: `refund`, `key.rotate`, `merchant.fee`, …
    pub action: String,
    /// What it was done to: an order key, a merchant id, a user's email…
    pub target: String,
    pub ip: String,
    /// The state before and after, as JSON.
    pub before: Option<String>,
    pub after: Option<String>,
    pub at: DateTime<Utc>,
}

/// A change to record.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub user_id: Option<i64>,
    pub actor: String,
    pub merchant_id: Option<MerchantId>,
    pub action: String,
    pub target: String,
    pub ip: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

const USER_COLUMNS: &str = "id, email, role, merchant_id, status, password_hash, \
    totp_secret_enc, totp_enabled, totp_last_step, locked_until, created_at, updated_at";

fn user_from_row(row: &AnyRow) -> Result<ConsoleUserAuth, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let int = |col: &str| row.try_get::<i64, _>(col).map_err(StoreError::corrupt);
    let id = int("id")?;
    let bad = |what: &str| StoreError::corrupt(format!("console user {id}: bad {what}"));
    let merchant: Option<String> = row.try_get("merchant_id").map_err(StoreError::corrupt)?;
    let password_hash: Option<String> =
        row.try_get("password_hash").map_err(StoreError::corrupt)?;
    let user = ConsoleUser {
        id,
        email: Email::parse(&text("email")?).map_err(|_| bad("email"))?,
        role: ConsoleRole::parse(&text("role")?).ok_or_else(|| bad("role"))?,
        merchant_id: merchant
            .map(|m| MerchantId::parse(&m))
            .transpose()
            .map_err(|_| bad("merchant id"))?,
        status: UserStatus::parse(&text("status")?).ok_or_else(|| bad("status"))?,
        has_password: password_hash.is_some(),
        totp_enabled: int("totp_enabled")? == 1,
        created_at: from_millis(int("created_at")?)?,
        updated_at: from_millis(int("updated_at")?)?,
    };
    if user.role.is_provider() != user.merchant_id.is_none() {
        return Err(bad("merchant for its role"));
    }
    Ok(ConsoleUserAuth {
        user,
        password_hash,
        totp_secret_enc: row
            .try_get("totp_secret_enc")
            .map_err(StoreError::corrupt)?,
        totp_last_step: row.try_get("totp_last_step").map_err(StoreError::corrupt)?,
        locked_until: opt_ms(row, "locked_until")?,
    })
}

fn session_from_row(row: &AnyRow) -> Result<ConsoleSessionRecord, StoreError> {
    let int = |col: &str| row.try_get::<i64, _>(col).map_err(StoreError::corrupt);
    Ok(ConsoleSessionRecord {
        user_id: int("user_id")?,
        pending_totp: int("pending_totp")? == 1,
        ip: row.try_get("ip").map_err(StoreError::corrupt)?,
        created_at: from_millis(int("created_at")?)?,
        expires_at: from_millis(int("expires_at")?)?,
        last_seen_at: from_millis(int("last_seen_at")?)?,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let merchant: Option<String> = row.try_get("merchant_id").map_err(StoreError::corrupt)?;
    Ok(AuditEntry {
        id: row.try_get("id").map_err(StoreError::corrupt)?,
        user_id: row.try_get("user_id").map_err(StoreError::corrupt)?,
        actor: text("actor")?,
        merchant_id: merchant
            .map(|m| MerchantId::parse(&m))
            .transpose()
            .map_err(StoreError::corrupt)?,
        action: text("action")?,
        target: text("target")?,
        ip: text("ip")?,
        before: row.try_get("before_json").map_err(StoreError::corrupt)?,
        after: row.try_get("after_json").map_err(StoreError::corrupt)?,
        at: from_millis(row.try_get("created_at").map_err(StoreError::corrupt)?)?,
    })
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

impl Store {
    /// Creates a console user who signs in first through a one-time link.
    /// [`StoreError::Conflict`] `console user` when the email is taken.
    pub async fn insert_console_user(
        &self,
        new: &NewConsoleUser,
        now: DateTime<Utc>,
    ) -> Result<ConsoleUser, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO console_users (email, role, merchant_id, status, setup_token_hash, \
             setup_expires_at, created_at, updated_at) VALUES ($1, $2, $3, 'active', $4, $5, $6, $6) \
             RETURNING id",
        )
        .bind(new.email.as_str())
        .bind(new.role.as_str())
        .bind(new.merchant_id.as_ref().map(MerchantId::as_str))
        .bind(&new.setup_token_hash)
        .bind(to_millis(new.setup_expires_at))
        .bind(to_millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(err("console user"))?;
        self.console_user(id)
            .await?
            .ok_or(StoreError::NotFound("console user"))
    }

    pub async fn console_user(&self, id: i64) -> Result<Option<ConsoleUser>, StoreError> {
        Ok(self.console_user_auth(id).await?.map(|a| a.user))
    }

    pub async fn console_user_auth(&self, id: i64) -> Result<Option<ConsoleUserAuth>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM console_users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("console user"))?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn console_user_auth_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<ConsoleUserAuth>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM console_users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(err("console user"))?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user whose one-time link has this token hash, with the link's end.
    pub async fn console_user_by_setup_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(ConsoleUser, DateTime<Utc>)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, setup_expires_at FROM console_users WHERE setup_token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("console user"))?;
        let Some(row) = row else { return Ok(None) };
        let until: i64 = row
            .try_get("setup_expires_at")
            .map_err(StoreError::corrupt)?;
        Ok(Some((user_from_row(&row)?.user, from_millis(until)?)))
    }

    /// Users of a merchant (every user when `None`), by email.
    pub async fn console_users(
        &self,
        merchant: Option<&MerchantId>,
    ) -> Result<Vec<ConsoleUser>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM console_users WHERE ($1 = '' OR merchant_id = $1) \
             ORDER BY email"
        ))
        .bind(merchant.map_or("", MerchantId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(err("console user"))?;
        rows.iter()
            .map(|r| user_from_row(r).map(|a| a.user))
            .collect()
    }

    /// Sets the user's password hash and uses up their sign-in link (one statement: a link
    /// used twice at once sets one password). Returns whether the link was still there.
    pub async fn set_console_password(
        &self,
        user_id: i64,
        setup_token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE console_users SET password_hash = $1, setup_token_hash = NULL, \
             setup_expires_at = NULL, failures = 0, failure_window_start = NULL, \
             locked_until = NULL, updated_at = $2 WHERE id = $3 AND setup_token_hash = $4",
        )
        .bind(password_hash)
        .bind(to_millis(now))
        .bind(user_id)
        .bind(setup_token_hash)
        .execute(&self.pool)
        .await
        .map_err(err("console user"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the user a new one-time sign-in link (the old one stops working).
    pub async fn set_console_setup_token(
        &self,
        user_id: i64,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE console_users SET setup_token_hash = $1, setup_expires_at = $2, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(token_hash)
        .bind(to_millis(expires_at))
        .bind(to_millis(now))
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(err("console user"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("console user"));
        }
        Ok(())
    }

    /// Enables or disables a user; disabling ends their sessions in the same transaction.
    pub async fn set_console_user_status(
        &self,
        user_id: i64,
        status: UserStatus,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(err("console user"))?;
        let done =
            sqlx::query("UPDATE console_users SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.as_str())
                .bind(to_millis(now))
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(err("console user"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("console user"));
        }
        if status == UserStatus::Disabled {
            sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(err("console session"))?;
        }
        tx.commit().await.map_err(err("console user"))
    }

    /// Sets (or, with `None`, removes) the user's sealed TOTP secret; `enabled` says whether
    /// sign-in asks for a code. Removing it also forgets the last step used.
    pub async fn set_console_totp(
        &self,
        user_id: i64,
        secret_enc: Option<&[u8]>,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE console_users SET totp_secret_enc = $1, totp_enabled = $2, \
             totp_last_step = CASE WHEN $1 IS NULL THEN NULL ELSE totp_last_step END, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(secret_enc.map(<[u8]>::to_vec))
        .bind(i64::from(enabled))
        .bind(to_millis(now))
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(err("console user"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("console user"));
        }
        Ok(())
    }

    /// Records that a code of time step `step` was accepted, only if no code of that step or
    /// a later one was: returns `false` for a code used again.
    pub async fn use_console_totp_step(
        &self,
        user_id: i64,
        step: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE console_users SET totp_last_step = $1, updated_at = $2 \
             WHERE id = $3 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(to_millis(now))
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(err("console user"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts a wrong password (or code) as [`Store::record_pin_failure`] counts wrong PINs;
    /// returns the lock's end when this failure set it.
    pub async fn record_console_failure(
        &self,
        user_id: i64,
        window_cutoff: DateTime<Utc>,
        max_failures: i64,
        lock_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let failures: Option<i64> = sqlx::query_scalar(
            "UPDATE console_users SET \
               failures = CASE WHEN failure_window_start IS NULL \
                 OR failure_window_start < $1 THEN 1 ELSE failures + 1 END, \
               failure_window_start = CASE WHEN failure_window_start IS NULL \
                 OR failure_window_start < $1 THEN $2 ELSE failure_window_start END, \
               updated_at = $2 WHERE id = $3 RETURNING failures",
        )
        .bind(to_millis(window_cutoff))
        .bind(to_millis(now))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("console user"))?;
        match failures {
            Some(n) if n >= max_failures => {
                sqlx::query(
                    "UPDATE console_users SET locked_until = $1, failures = 0, \
                     failure_window_start = NULL, updated_at = $2 WHERE id = $3",
                )
                .bind(to_millis(lock_until))
                .bind(to_millis(now))
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(err("console user"))?;
                Ok(Some(lock_until))
            }
            _ => Ok(None),
        }
    }

    /// Forgets a user's wrong passwords (after a right one) and lifts a lock.
    pub async fn clear_console_failures(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_users SET failures = 0, failure_window_start = NULL, \
             locked_until = NULL, updated_at = $1 \
             WHERE id = $2 AND (failures <> 0 OR locked_until IS NOT NULL)",
        )
        .bind(to_millis(now))
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(err("console user"))
    }

    pub async fn insert_console_session(
        &self,
        token_hash: &str,
        session: &ConsoleSessionRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, user_id, pending_totp, ip, created_at, \
             expires_at, last_seen_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(token_hash)
        .bind(session.user_id)
        .bind(i64::from(session.pending_totp))
        .bind(&session.ip)
        .bind(to_millis(session.created_at))
        .bind(to_millis(session.expires_at))
        .bind(to_millis(session.last_seen_at))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(err("console session"))
    }

    pub async fn console_session(
        &self,
        token_hash: &str,
    ) -> Result<Option<ConsoleSessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, pending_totp, ip, created_at, expires_at, last_seen_at \
             FROM console_sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("console session"))?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Records that the session was used at `now`.
    pub async fn touch_console_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_sessions SET last_seen_at = $1, updated_at = $1 WHERE token_hash = $2",
        )
        .bind(to_millis(now))
        .bind(token_hash)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(err("console session"))
    }

    /// The second factor was given: the session opens the console.
    pub async fn verify_console_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_sessions SET pending_totp = 0, last_seen_at = $1, updated_at = $1 \
             WHERE token_hash = $2",
        )
        .bind(to_millis(now))
        .bind(token_hash)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(err("console session"))
    }

    pub async fn delete_console_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(err("console session"))
    }

    /// Ends every session of a user; returns how many.
    pub async fn delete_console_sessions_of(&self, user_id: i64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(err("console session"))
    }

    /// Deletes sessions past their end or idle since before `idle_cutoff`.
    pub async fn delete_expired_console_sessions(
        &self,
        idle_cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at < $2")
            .bind(to_millis(now))
            .bind(to_millis(idle_cutoff))
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(err("console session"))
    }

    /// Appends to the audit log.
    pub async fn insert_audit(
        &self,
        entry: &NewAuditEntry,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (user_id, actor, merchant_id, action, target, ip, \
             before_json, after_json, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(entry.user_id)
        .bind(&entry.actor)
        .bind(entry.merchant_id.as_ref().map(MerchantId::as_str))
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.ip)
        .bind(entry.before.as_deref())
        .bind(entry.after.as_deref())
        .bind(to_millis(now))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(err("audit entry"))
    }

    /// The audit log of a merchant (everything when `None`), newest first, entries older than
    /// `before_id` when given, at most `limit`.
    pub async fn audit_entries(
        &self,
        merchant: Option<&MerchantId>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_id, actor, merchant_id, action, target, ip, before_json, \
             after_json, created_at FROM audit_log \
             WHERE ($1 = '' OR merchant_id = $1) AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(merchant.map_or("", MerchantId::as_str))
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(err("audit entry"))?;
        rows.iter().map(audit_from_row).collect()
    }
}
