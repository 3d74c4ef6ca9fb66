//! Exchange rates to CNY: set by the provider now, refreshed from the wallets later.

use qrgate_domain::{Currency, FxQuote, FxRate, Merchant};

use crate::{Engine, EngineError};

/// The source recorded for rates set with `qrgate fx set`.
pub const PROVIDER_SOURCE: &str = "provider";

/// Why no rate can be given.
#[derive(Debug, thiserror::Error)]
pub enum FxError {
    #[error("no exchange rate is set for {0}")]
    Missing(Currency),
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
        self.store
            .fx_rate(currency)
            .await
            .map_err(EngineError::from)?
            .ok_or(FxError::Missing(currency))
    }
}
