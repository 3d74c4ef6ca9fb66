//! Exchange rates to CNY: the wallets' own published rates, refreshed in the background,
//! and the provider's rates (`qrgate fx set`) as the fallback once the wallets' are stale.

use chrono::Duration;
use qrgate_connector_api::ConnectorError;
use qrgate_domain::{Currency, FxQuote, FxRate, Merchant};

use crate::payments::CALL_TIMEOUT;
use crate::{Engine, EngineError};

/// WeChat Pay publishes its rates once a day (10:00 Beijing time, `wallets.md` §1.9): a rate
/// fetched within the last 26 hours survives one missed refresh and a little clock skew.
pub const DEFAULT_WALLET_RATE_MAX_AGE: Duration = Duration::hours(26);

/// The source recorded for rates set with `qrgate fx set`.
pub const PROVIDER_SOURCE: &str = "provider";

/// Why no rate can be given.
#[derive(Debug, thiserror::Error)]
pub enum FxError {
    #[error("no exchange rate is set for {0}")]
    Missing(Currency),
    #[error("the wallets' rate for {currency} was fetched {age_hours} hours ago, beyond the staleness bound, and the provider has set no rate")]
    Stale { currency: Currency, age_hours: i64 },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    /// Sets the provider's rate of `currency` to CNY. CNY itself is always 1 and cannot be set.
    pub async fn set_fx_rate(
        &self,
        currency: Currency,
        rate: FxRate,
    ) -> Result<FxQuote, EngineError> {
        if currency == Currency::Cny {
            return Err(EngineError::Invalid(
                "the rate of CNY to CNY is always 1".into(),
            ));
        }
        let quote = FxQuote {
            currency,
            rate,
            source: PROVIDER_SOURCE.into(),
            updated_at: self.now(),
        };
        self.store.set_fx_rate(&quote).await?;
        tracing::info!(fx.currency = %currency, fx.rate = %rate, "exchange rate set");
        Ok(quote)
    }

    /// Every rate the gateway holds.
    pub async fn fx_rates(&self) -> Result<Vec<FxQuote>, EngineError> {
        Ok(self.store.fx_rates().await?)
    }

    /// The rate to CNY for `currency`, as a merchant asks for it; CNY is 1 by definition.
    pub async fn exchange_rate(
        &self,
        _merchant: &Merchant,
        currency: Currency,
    ) -> Result<FxQuote, FxError> {
        if currency == Currency::Cny {
            return Ok(FxQuote {
                currency,
                rate: FxRate::ONE,
                source: "identity".into(),
                updated_at: self.now(),
            });
        }
        let now = self.now();
        let wallet_rates = self
            .store
            .wallet_fx_rates(currency)
            .await
            .map_err(EngineError::from)?;
        let freshest = wallet_rates.into_iter().next();
        if let Some(q) = &freshest {
            if now - q.updated_at <= self.wallets.fx_max_age {
                return Ok(q.clone());
            }
        }
        if let Some(q) = self
            .store
            .fx_rate(currency)
            .await
            .map_err(EngineError::from)?
        {
            return Ok(q);
        }
        match freshest {
            Some(q) => Err(FxError::Stale {
                currency,
                age_hours: (now - q.updated_at).num_hours(),
            }),
            None => Err(FxError::Missing(currency)),
        }
    }

    /// Fetches every enabled wallet's published rate of each pricing currency and keeps it
    /// with the time it was fetched. Wallets without a rate query are skipped; a failing
    /// wallet is logged and leaves its previous rate in place. Returns how many rates were
    /// stored.
    pub async fn refresh_wallet_rates(&self) -> Result<usize, EngineError> {
        let date = self
            .now()
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .date_naive();
        let mut stored = 0;
        for wallet in self.wallets.enabled() {
            let Some(connector) = self.wallets.connector(wallet).cloned() else {
                continue;
            };
            for currency in [Currency::Cad, Currency::Usd] {
                let result =
                    tokio::time::timeout(CALL_TIMEOUT, connector.exchange_rate(currency, date))
                        .await;
                match result {
                    Ok(Ok(r)) => {
                        let Some(rate) = FxRate::from_scaled(r.rate_e8) else {
                            tracing::warn!(wallet = %wallet, fx.currency = %currency, rate = r.rate_e8, "the wallet published an unusable rate; ignored");
                            continue;
                        };
                        self.store
                            .set_wallet_fx_rate(
                                wallet,
                                currency,
                                rate,
                                r.rate_time.as_deref(),
                                self.now(),
                            )
                            .await?;
                        tracing::info!(wallet = %wallet, fx.currency = %currency, fx.rate = %rate, "wallet exchange rate refreshed");
                        stored += 1;
                    }
                    Ok(Err(ConnectorError::NotSupported(_))) => break,
                    Ok(Err(e)) => {
                        tracing::warn!(wallet = %wallet, fx.currency = %currency, error = %e, "cannot refresh the wallet's exchange rate; the previous one stays")
                    }
                    Err(_) => {
                        tracing::warn!(wallet = %wallet, fx.currency = %currency, "no answer to the exchange rate query; the previous rate stays")
                    }
                }
            }
        }
        Ok(stored)
    }
}
