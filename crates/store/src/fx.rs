use chrono::{DateTime, Utc};
use qrgate_domain::{Currency, FxQuote, FxRate, Wallet};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

fn quote_from_row(row: &AnyRow) -> Result<FxQuote, StoreError> {
    let currency: String = row.try_get("currency").map_err(StoreError::corrupt)?;
    let scaled: i64 = row.try_get("rate_e8").map_err(StoreError::corrupt)?;
    Ok(FxQuote {
        currency: currency.parse().map_err(StoreError::corrupt)?,
        rate: FxRate::from_scaled(scaled)
            .ok_or_else(|| StoreError::corrupt(format!("rate {scaled} for {currency}")))?,
        source: row.try_get("source").map_err(StoreError::corrupt)?,
        updated_at: from_millis(row.try_get("updated_at").map_err(StoreError::corrupt)?)?,
    })
}

impl Store {
    /// Sets the rate of `quote.currency` to CNY, replacing any previous one.
    pub async fn set_fx_rate(&self, quote: &FxQuote) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fx_rates (currency, rate_e8, source, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (currency) DO UPDATE SET rate_e8 = excluded.rate_e8, \
             source = excluded.source, updated_at = excluded.updated_at",
        )
        .bind(quote.currency.code())
        .bind(quote.rate.scaled())
        .bind(&quote.source)
        .bind(to_millis(quote.updated_at))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::from_sqlx(e, "exchange rate"))
    }

    pub async fn fx_rate(&self, currency: Currency) -> Result<Option<FxQuote>, StoreError> {
        let row = sqlx::query(
            "SELECT currency, rate_e8, source, updated_at FROM fx_rates WHERE currency = $1",
        )
        .bind(currency.code())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "exchange rate"))?;
        row.as_ref().map(quote_from_row).transpose()
    }

    pub async fn fx_rates(&self) -> Result<Vec<FxQuote>, StoreError> {
        let rows = sqlx::query(
            "SELECT currency, rate_e8, source, updated_at FROM fx_rates ORDER BY currency",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "exchange rate"))?;
        rows.iter().map(quote_from_row).collect()
    }

    /// Records a rate a wallet published, replacing that wallet's previous rate for the
    /// currency. `fetched_at` is when the gateway read it (the staleness bound counts from
    /// it); `rate_time` is the wallet's own statement of when the rate was set.
    pub async fn set_wallet_fx_rate(
        &self,
        wallet: Wallet,
        currency: Currency,
        rate: FxRate,
        rate_time: Option<&str>,
        fetched_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO wallet_fx_rates (wallet, currency, rate_e8, rate_time, fetched_at, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5, $5) \
             ON CONFLICT (wallet, currency) DO UPDATE SET rate_e8 = excluded.rate_e8, \
             rate_time = excluded.rate_time, fetched_at = excluded.fetched_at, \
             updated_at = excluded.updated_at",
        )
        .bind(wallet.as_str())
        .bind(currency.code())
        .bind(rate.scaled())
        .bind(rate_time)
        .bind(to_millis(fetched_at))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::from_sqlx(e, "exchange rate"))
    }

    /// The wallets' rates for `currency`, freshest first; `source` is the wallet's name and
    /// `updated_at` when it was fetched.
    pub async fn wallet_fx_rates(&self, currency: Currency) -> Result<Vec<FxQuote>, StoreError> {
        let rows = sqlx::query(
            "SELECT currency, rate_e8, wallet AS source, fetched_at AS updated_at \
             FROM wallet_fx_rates WHERE currency = $1 ORDER BY fetched_at DESC, wallet",
        )
        .bind(currency.code())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "exchange rate"))?;
        rows.iter().map(quote_from_row).collect()
    }

    /// For every table, its row count and newest `updated_at`: tests take it before and
    /// after a rejected request to prove nothing was inserted or updated (every write sets
    /// `updated_at`, and tests move their clock forward first).
    pub async fn row_counts(&self) -> Result<Vec<(&'static str, i64, i64)>, StoreError> {
        let mut counts = Vec::new();
        for table in [
            "meta",
            "merchants",
            "shops",
            "operators",
            "terminals",
            "fx_rates",
            "orders",
            "order_events",
            "callbacks",
            "callback_attempts",
            "refunds",
            "ledger_entries",
            "wallet_fx_rates",
        ] {
            let row = sqlx::query(&format!(
                "SELECT COUNT(*) AS n, COALESCE(MAX(updated_at), 0) AS stamp FROM {table}"
            ))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "row count"))?;
            let n: i64 = row.try_get("n").map_err(StoreError::corrupt)?;
            let stamp: i64 = row.try_get("stamp").map_err(StoreError::corrupt)?;
            counts.push((table, n, stamp));
        }
        Ok(counts)
    }
}
