use chrono::{DateTime, Utc};
use qrgate_domain::MerchantId;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::claims::DueRows;
use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

/// Where a merchant notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackStatus {
    Pending,
    Delivered,
    /// Given up after the retry schedule; `qrgate callbacks retry` sends it again.
    Dead,
}

impl CallbackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Pending => "pending",
            CallbackStatus::Delivered => "delivered",
            CallbackStatus::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(CallbackStatus::Pending),
            "delivered" => Some(CallbackStatus::Delivered),
            "dead" => Some(CallbackStatus::Dead),
            _ => None,
        }
    }
}

/// A notification owed to a merchant for one paid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub order_key: String,
    pub merchant_id: MerchantId,
    pub url: String,
    pub status: CallbackStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One delivery attempt: the merchant's HTTP status (none if the request failed), how long it
/// took, and a short excerpt of the answer or of the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAttempt {
    pub at: DateTime<Utc>,
    pub http_status: Option<i64>,
    pub latency_ms: i64,
    pub excerpt: String,
}

const COLUMNS: &str = "order_key, merchant_id, url, status, attempts, next_attempt_at, created_at";

pub(crate) fn callback_from_row(row: &AnyRow) -> Result<Callback, StoreError> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(StoreError::corrupt);
    let next: Option<i64> = row
        .try_get("next_attempt_at")
        .map_err(StoreError::corrupt)?;
    Ok(Callback {
        order_key: text("order_key")?,
        merchant_id: MerchantId::parse(&text("merchant_id")?).map_err(StoreError::corrupt)?,
        url: text("url")?,
        status: CallbackStatus::parse(&text("status")?)
            .ok_or_else(|| StoreError::corrupt("callback status"))?,
        attempts: row.try_get("attempts").map_err(StoreError::corrupt)?,
        next_attempt_at: next.map(from_millis).transpose()?,
        created_at: from_millis(row.try_get("created_at").map_err(StoreError::corrupt)?)?,
    })
}

impl Store {
    /// Claims up to `limit` pending notifications due at `now` for `worker` until
    /// `lease_until` (exclusive across nodes, as [`Store::claim_due_orders`]).
    pub async fn claim_due_callbacks(
        &self,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Callback>, StoreError> {
        self.claim_due_callbacks_except(now, worker, lease_until, limit, &[])
            .await
    }

    /// [`Store::claim_due_callbacks`], leaving the notifications of the merchants in `skip`
    /// alone (this worker is delivering as many of theirs as it may).
    pub async fn claim_due_callbacks_except(
        &self,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
        skip: &[MerchantId],
    ) -> Result<Vec<Callback>, StoreError> {
        let rows = DueRows {
            table: "callbacks",
            key: "order_key",
            due: "status = 'pending' AND next_attempt_at <= $3",
            order_by: "next_attempt_at",
            lane: "merchant_id",
            columns: COLUMNS,
            what: "callback",
        };
        let skip: Vec<&str> = skip.iter().map(MerchantId::as_str).collect();
        let rows = self
            .claim_due(rows, now, worker, lease_until, limit, &skip)
            .await?;
        rows.iter().map(callback_from_row).collect()
    }

    /// Records an attempt and the notification's next state, in one transaction; releases
    /// the claim.
    pub async fn record_callback_attempt(
        &self,
        order_key: &str,
        attempt: &CallbackAttempt,
        status: CallbackStatus,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let order_key = order_key.to_owned();
        let attempt = attempt.clone();
        self.write("callback", move |conn| {
            Box::pin(async move {
                let err = |e| StoreError::from_sqlx(e, "callback");
                sqlx::query(
                    "INSERT INTO callback_attempts (order_key, http_status, latency_ms, excerpt, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(&order_key)
                .bind(attempt.http_status)
                .bind(attempt.latency_ms)
                .bind(&attempt.excerpt)
                .bind(to_millis(attempt.at))
                .execute(&mut *conn)
                .await
                .map_err(err)?;
                sqlx::query(
                    "UPDATE callbacks SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
                     claimed_by = NULL, claimed_until = NULL, updated_at = $3 WHERE order_key = $4",
                )
                .bind(status.as_str())
                .bind(next_attempt_at.map(to_millis))
                .bind(to_millis(attempt.at))
                .bind(&order_key)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
                Ok(())
            })
        })
        .await
    }

    /// A merchant's notifications (all merchants' when `None`), newest first, at most `limit`.
    pub async fn callbacks(
        &self,
        merchant: Option<&MerchantId>,
        limit: i64,
    ) -> Result<Vec<Callback>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM callbacks WHERE ($1 = '' OR merchant_id = $1) \
             ORDER BY created_at DESC LIMIT $2"
        ))
        .bind(merchant.map_or("", MerchantId::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "callback"))?;
        rows.iter().map(callback_from_row).collect()
    }

    pub async fn callback(&self, order_key: &str) -> Result<Option<Callback>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM callbacks WHERE order_key = $1"
        ))
        .bind(order_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "callback"))?;
        row.as_ref().map(callback_from_row).transpose()
    }

    pub async fn callback_attempts(
        &self,
        order_key: &str,
    ) -> Result<Vec<CallbackAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT http_status, latency_ms, excerpt, created_at FROM callback_attempts \
             WHERE order_key = $1 ORDER BY id",
        )
        .bind(order_key)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "callback"))?;
        rows.iter()
            .map(|r| {
                Ok(CallbackAttempt {
                    at: from_millis(r.try_get("created_at").map_err(StoreError::corrupt)?)?,
                    http_status: r.try_get("http_status").map_err(StoreError::corrupt)?,
                    latency_ms: r.try_get("latency_ms").map_err(StoreError::corrupt)?,
                    excerpt: r.try_get("excerpt").map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }

    /// Sends a notification again from now (after it died, or to repeat a delivered one).
    pub async fn retry_callback(
        &self,
        order_key: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE callbacks SET status = 'pending', next_attempt_at = $1, updated_at = $1 \
             WHERE order_key = $2",
        )
        .bind(to_millis(now))
        .bind(order_key)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "callback"))?;
        Ok(done.rows_affected() == 1)
    }
}
