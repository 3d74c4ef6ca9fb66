//! Merchant notifications as the provider looks them up: by the gateway's order key (as the
//! logs show it) or by the merchant's own `order_id` (as the merchant reports it), with every
//! delivery attempt. Queries and the operator's retry only; delivery is `callbacks.rs`.

use qrgate_domain::MerchantId;
use qrgate_store::{CallbackAttempt, CallbackRecord};

use crate::{Engine, EngineError};

/// A notification and every attempt to deliver it, oldest first.
#[derive(Debug, Clone)]
pub struct CallbackHistory {
    pub record: CallbackRecord,
    pub attempts: Vec<CallbackAttempt>,
}

impl Engine {
    /// A merchant's notifications (all merchants' when `None`), newest first, at most
    /// `limit`, each with the merchant's `order_id`.
    pub async fn callback_records(
        &self,
        merchant: Option<&MerchantId>,
        limit: i64,
    ) -> Result<Vec<CallbackRecord>, EngineError> {
        Ok(self.store.callback_records(merchant, limit).await?)
    }

    /// The notification `name` means: the order's gateway key, or the merchant's `order_id`
    /// (only `merchant`'s orders when given). [`EngineError::NotFound`] when none matches;
    /// [`EngineError::Invalid`] naming the candidates when several merchants used that
    /// `order_id`.
    pub async fn find_callback(
        &self,
        name: &str,
        merchant: Option<&MerchantId>,
    ) -> Result<CallbackRecord, EngineError> {
        if let Some(id) = merchant {
            self.merchant(id).await?;
        }
        let mut found = self.store.callbacks_named(name, merchant).await?;
        match found.len() {
            0 => Err(EngineError::NotFound("notification for that order")),
            1 => Ok(found.remove(0)),
            _ => {
                let candidates: Vec<String> = found
                    .iter()
                    .map(|r| {
                        format!(
                            "{} (merchant {}, order_id {})",
                            r.callback.order_key, r.callback.merchant_id, r.order_id
                        )
                    })
                    .collect();
                Err(EngineError::Invalid(format!(
                    "{name} names several notifications: {}; name the merchant, or use the \
                     gateway's order key",
                    candidates.join(", ")
                )))
            }
        }
    }

    /// The notification `name` means (see [`Engine::find_callback`]) with every attempt.
    pub async fn callback_history(
        &self,
        name: &str,
        merchant: Option<&MerchantId>,
    ) -> Result<CallbackHistory, EngineError> {
        let record = self.find_callback(name, merchant).await?;
        let attempts = self
            .store
            .callback_attempts(&record.callback.order_key)
            .await?;
        Ok(CallbackHistory { record, attempts })
    }

    /// Sends the notification `name` means (see [`Engine::find_callback`]) again, from now:
    /// after it was given up, or to repeat one delivered.
    pub async fn retry_named_callback(
        &self,
        name: &str,
        merchant: Option<&MerchantId>,
    ) -> Result<CallbackRecord, EngineError> {
        let record = self.find_callback(name, merchant).await?;
        if !self
            .store
            .retry_callback(&record.callback.order_key, self.now())
            .await?
        {
            return Err(EngineError::NotFound("notification for that order"));
        }
        tracing::info!(order.key = %record.callback.order_key, merchant.id = %record.callback.merchant_id, "merchant notification queued again by the provider");
        Ok(record)
    }
}
