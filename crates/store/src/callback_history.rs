//! Looking up merchant notifications as a provider names them: by the gateway's order key or
//! by the merchant's own `order_id`, with that `order_id` shown beside each.

use qrgate_domain::{MerchantId, MerchantOrderId};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::callbacks::callback_from_row;
use crate::{Callback, Store, StoreError};

/// The most notifications [`Store::callbacks_named`] returns: more than one is already an
/// ambiguity for the caller to resolve.
const NAMED_LIMIT: i64 = 20;

/// A notification with the merchant's `order_id` of the order it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    pub callback: Callback,
    pub order_id: MerchantOrderId,
}

const COLUMNS: &str = "c.order_key, c.merchant_id, c.url, c.status, c.attempts, \
    c.next_attempt_at, c.created_at, o.order_id";

fn record_from_row(row: &AnyRow) -> Result<CallbackRecord, StoreError> {
    let callback = callback_from_row(row)?;
    let order_id: String = row.try_get("order_id").map_err(StoreError::corrupt)?;
    Ok(CallbackRecord {
        order_id: MerchantOrderId::parse(&order_id).map_err(|_| {
            StoreError::corrupt(format!("order {}: bad order id", callback.order_key))
        })?,
        callback,
    })
}

impl Store {
    /// A merchant's notifications (all merchants' when `None`), newest first, at most
    /// `limit`, each with its order's `order_id`.
    pub async fn callback_records(
        &self,
        merchant: Option<&MerchantId>,
        limit: i64,
    ) -> Result<Vec<CallbackRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM callbacks c JOIN orders o ON o.key = c.order_key \
             WHERE ($1 = '' OR c.merchant_id = $1) \
             ORDER BY c.created_at DESC, c.order_key DESC LIMIT $2"
        ))
        .bind(merchant.map_or("", MerchantId::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "callback"))?;
        rows.iter().map(record_from_row).collect()
    }

    /// The notifications `name` may mean: the one of the order whose gateway key is `name`,
    /// and those of orders whose merchant `order_id` is `name` (one per merchant at most),
    /// only `merchant`'s when given; newest first, at most 20.
    pub async fn callbacks_named(
        &self,
        name: &str,
        merchant: Option<&MerchantId>,
    ) -> Result<Vec<CallbackRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM callbacks c JOIN orders o ON o.key = c.order_key \
             WHERE (c.order_key = $1 OR o.order_id = $1) AND ($2 = '' OR c.merchant_id = $2) \
             ORDER BY c.created_at DESC, c.order_key DESC LIMIT $3"
        ))
        .bind(name)
        .bind(merchant.map_or("", MerchantId::as_str))
        .bind(NAMED_LIMIT)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "callback"))?;
        rows.iter().map(record_from_row).collect()
    }
}
