//! The provider's console: merchants (onboarding, status, fees), exchange rates, the
//! wallets' health, and what needs a person's attention.

use chrono::{DateTime, Duration, Utc};
use qrgate_domain::{
    Currency, FeeRate, FxQuote, FxRate, Merchant, MerchantId, MerchantStatus, Order, Permission,
    Refund, Wallet,
};
use qrgate_store::{FailingCallback, WalletCalls};

use super::{Actor, Change, ConsoleError};
use crate::{CreatedMerchant, Engine, MerchantRequest};

/// Open orders older than this are shown under *Attention* (a wallet's confirmation window
/// is 40 s at most, and the closing loop checks every few seconds).
const STUCK_ORDER_AFTER: Duration = Duration::minutes(2);
/// Refunds still processing after this are shown under *Attention*.
const STUCK_REFUND_AFTER: Duration = Duration::minutes(10);
/// Notifications still failing after this many attempts are shown under *Attention*.
const FAILING_CALLBACK_ATTEMPTS: i64 = 3;
/// The most rows of each kind *Attention* lists.
const ATTENTION_LIMIT: i64 = 100;

/// A wallet's health over the last hour.
#[derive(Debug, Clone)]
pub struct WalletHealth {
    pub wallet: Wallet,
    /// Whether this gateway is configured to use it.
    pub enabled: bool,
    pub calls: Option<WalletCalls>,
}

/// What needs a person.
#[derive(Debug, Clone)]
pub struct Attention {
    pub stuck_orders: Vec<Order>,
    pub stuck_refunds: Vec<Refund>,
    pub failing_callbacks: Vec<FailingCallback>,
}

fn merchant_json(m: &Merchant) -> serde_json::Value {
    serde_json::json!({
        "merchant_id": m.id.as_str(),
        "name": m.name,
        "currency": m.currency.code(),
        "time_zone": m.time_zone.name(),
        "status": m.status.as_str(),
        "fee_bps": m.fee_rate.bps(),
    })
}

impl Engine {
    /// Every merchant whose id or name contains `search` (case-insensitive), by id.
    pub async fn console_merchants(
        &self,
        actor: &Actor,
        search: Option<&str>,
    ) -> Result<Vec<Merchant>, ConsoleError> {
        actor.check_provider(Permission::ViewProvider)?;
        let needle = search.map(|s| s.trim().to_lowercase()).unwrap_or_default();
        Ok(self
            .merchants()
            .await?
            .into_iter()
            .filter(|m| {
                needle.is_empty()
                    || m.id.as_str().to_lowercase().contains(&needle)
                    || m.name.to_lowercase().contains(&needle)
            })
            .collect())
    }

    /// Onboards a merchant by [`Engine::create_merchant`]'s rules (as `qrgate merchant
    /// create`). The sign key is in the result only.
    pub async fn console_create_merchant(
        &self,
        actor: &Actor,
        req: &MerchantRequest,
    ) -> Result<CreatedMerchant, ConsoleError> {
        actor.check_provider(Permission::ManageProvider)?;
        let created = self.create_merchant(req).await?;
        self.audit(
            actor,
            Change {
                merchant: Some(&created.merchant.id),
                action: "merchant.create",
                target: created.merchant.id.to_string(),
                before: None,
                after: Some(merchant_json(&created.merchant)),
            },
        )
        .await;
        Ok(created)
    }

    pub async fn console_set_merchant_status(
        &self,
        actor: &Actor,
        id: &MerchantId,
        status: MerchantStatus,
    ) -> Result<Merchant, ConsoleError> {
        actor.check_provider(Permission::ManageProvider)?;
        let before = self.merchant(id).await?;
        let after = self.set_merchant_status(id, status).await?;
        self.audit(
            actor,
            Change {
                merchant: Some(id),
                action: "merchant.status",
                target: id.to_string(),
                before: Some(serde_json::json!({"status": before.status.as_str()})),
                after: Some(serde_json::json!({"status": after.status.as_str()})),
            },
        )
        .await;
        Ok(after)
    }

    pub async fn console_set_fee(
        &self,
        actor: &Actor,
        id: &MerchantId,
        fee: FeeRate,
    ) -> Result<Merchant, ConsoleError> {
        actor.check_provider(Permission::ManageProvider)?;
        let before = self.merchant(id).await?;
        let after = self.set_merchant_fee_rate(id, fee).await?;
        self.audit(
            actor,
            Change {
                merchant: Some(id),
                action: "merchant.fee",
                target: id.to_string(),
                before: Some(serde_json::json!({"fee_bps": before.fee_rate.bps()})),
                after: Some(serde_json::json!({"fee_bps": after.fee_rate.bps()})),
            },
        )
        .await;
        Ok(after)
    }

    /// The provider's rates, and each wallet's published rate per currency.
    pub async fn console_rates(
        &self,
        actor: &Actor,
    ) -> Result<(Vec<FxQuote>, Vec<(Wallet, FxQuote)>), ConsoleError> {
        actor.check_provider(Permission::ViewProvider)?;
        let provider = self.fx_rates().await?;
        let mut wallets = Vec::new();
        for currency in [Currency::Cad, Currency::Usd] {
            for q in self.store.wallet_fx_rates(currency).await? {
                let wallet = Wallet::parse(&q.source).unwrap_or(Wallet::WechatPay);
                wallets.push((wallet, q));
            }
        }
        Ok((provider, wallets))
    }

    pub async fn console_set_rate(
        &self,
        actor: &Actor,
        currency: Currency,
        rate: FxRate,
    ) -> Result<FxQuote, ConsoleError> {
        actor.check_provider(Permission::ManageProvider)?;
        let before = self
            .fx_rates()
            .await?
            .into_iter()
            .find(|q| q.currency == currency);
        let quote = self.set_fx_rate(currency, rate).await?;
        self.audit(
            actor,
            Change {
                merchant: None,
                action: "fx.rate",
                target: currency.code().to_owned(),
                before: before.map(|q| serde_json::json!({"rate": q.rate.to_string()})),
                after: Some(serde_json::json!({"rate": quote.rate.to_string()})),
            },
        )
        .await;
        Ok(quote)
    }

    /// Each wallet's calls over the last hour, from the orders' timelines.
    pub async fn console_wallet_health(
        &self,
        actor: &Actor,
    ) -> Result<Vec<WalletHealth>, ConsoleError> {
        actor.check_provider(Permission::ViewProvider)?;
        let since = self.now() - Duration::hours(1);
        let calls = self.store.wallet_calls_since(since).await?;
        let enabled = self.wallets().enabled();
        Ok(Wallet::ALL
            .into_iter()
            .map(|wallet| WalletHealth {
                wallet,
                enabled: enabled.contains(&wallet),
                calls: calls.iter().find(|c| c.wallet == wallet).cloned(),
            })
            .collect())
    }

    /// Orders, refunds and notifications that should have settled by now.
    pub async fn console_attention(&self, actor: &Actor) -> Result<Attention, ConsoleError> {
        actor.check_provider(Permission::ViewProvider)?;
        let now = self.now();
        Ok(Attention {
            stuck_orders: self
                .store
                .stuck_orders(now - STUCK_ORDER_AFTER, now, ATTENTION_LIMIT)
                .await?,
            stuck_refunds: self
                .store
                .stuck_refunds(now - STUCK_REFUND_AFTER, ATTENTION_LIMIT)
                .await?,
            failing_callbacks: self
                .store
                .failing_callbacks(FAILING_CALLBACK_ATTEMPTS, ATTENTION_LIMIT)
                .await?,
        })
    }

    /// Runs the ledger's checks now (`qrgate ledger check`): what breaks them, one line each.
    pub async fn console_ledger_check(&self, actor: &Actor) -> Result<Vec<String>, ConsoleError> {
        actor.check_provider(Permission::ViewProvider)?;
        Ok(self.store.check_ledger().await?)
    }

    /// When a provider rate is older than this, the rates page says so.
    pub fn rate_age(&self, at: DateTime<Utc>) -> Duration {
        self.now() - at
    }
}
