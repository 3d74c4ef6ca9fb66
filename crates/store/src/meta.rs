use chrono::{DateTime, Utc};

use crate::time::to_millis;
use crate::{Store, StoreError};

impl Store {
    /// A value of the gateway's own settings table (`meta`), if set.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar::<_, String>("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "setting"))
    }

    /// Sets `key` to `value` unless it is already set; returns the value in force afterwards.
    /// Safe when several nodes race: exactly one value wins.
    pub async fn meta_insert_if_absent(
        &self,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .bind(to_millis(now))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "setting"))?;
        self.meta(key).await?.ok_or(StoreError::NotFound("setting"))
    }
}
