//! The UnionPay order ledger: every `orderId` the merchant used, with its `txnTime`, kind and
//! content digest.
//!
//! Why it exists: UnionPay identifies an order by `orderId` + `txnTime`, and cancels and
//! refunds are orders of their own that can be queried; the core knows trades by
//! `out_trade_no` only and has no cancel orders. Why it lives in the state's UnionPay
//! accounts value (under `orders`): the core has no per-wallet storage of its own, and the
//! ledger must be saved and restored with the rest of the state, atomically with the trades
//! (every read and write happens inside one `Sandbox::with`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Wallet;
use crate::state::State;

/// What an order was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UnionpayOrderKind {
    /// C2B consume with the customer's code (01/06).
    Consume,
    /// Apply for a consumption QR (01/07).
    ApplyQr,
    /// Cancel / void (31/00).
    Cancel,
    /// Refund (04/00).
    Refund,
}

impl UnionpayOrderKind {
    /// `txnType`, `txnSubType`.
    pub(crate) fn txn_type(self) -> (&'static str, &'static str) {
        match self {
            UnionpayOrderKind::Consume => ("01", "06"),
            UnionpayOrderKind::ApplyQr => ("01", "07"),
            UnionpayOrderKind::Cancel => ("31", "00"),
            UnionpayOrderKind::Refund => ("04", "00"),
        }
    }
}

/// One order of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UnionpayOrder {
    pub kind: UnionpayOrderKind,
    /// The request's `txnTime`, kept verbatim: a query must name the same one.
    pub txn_time: String,
    /// A digest of the business fields: a resend must carry the same ones.
    pub fingerprint: String,
    /// `txnAmt` as sent.
    pub txn_amt: i64,
    /// For a cancel or a refund: the original consume's `orderId` (the core's
    /// `out_trade_no`) and `queryId`.
    #[serde(default)]
    pub orig_order_id: Option<String>,
    #[serde(default)]
    pub orig_query_id: Option<String>,
    /// A cancel's own `queryId` (a refund's is the core's refund id).
    #[serde(default)]
    pub query_id: Option<String>,
    /// The final code when the core holds nothing that tells it: a declined consume, a
    /// refused cancel or refund, a done cancel.
    #[serde(default)]
    pub result: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

impl UnionpayOrder {
    /// Whether a new request with this `orderId` is a resend of this order.
    pub(crate) fn same_request(
        &self,
        kind: UnionpayOrderKind,
        txn_time: &str,
        fingerprint: &str,
    ) -> bool {
        self.kind == kind && self.txn_time == txn_time && self.fingerprint == fingerprint
    }
}

/// The order recorded under `order_id`, if any.
pub(crate) fn get(state: &State, order_id: &str) -> Option<UnionpayOrder> {
    let value = state
        .accounts
        .get(&Wallet::Unionpay)?
        .get("orders")?
        .get(order_id)?;
    UnionpayOrder::deserialize(value).ok()
}

/// Every order of the ledger, by `orderId`.
pub(crate) fn all(state: &State) -> Vec<(String, UnionpayOrder)> {
    let Some(Value::Object(map)) = state
        .accounts
        .get(&Wallet::Unionpay)
        .and_then(|a| a.get("orders"))
    else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(id, v)| Some((id.clone(), UnionpayOrder::deserialize(v).ok()?)))
        .collect()
}

/// Records (or replaces) the order under `order_id`.
pub(crate) fn put(state: &mut State, order_id: &str, order: &UnionpayOrder) {
    let Ok(value) = serde_json::to_value(order) else {
        return;
    };
    let Some(Value::Object(account)) = state.accounts.get_mut(&Wallet::Unionpay) else {
        tracing::warn!("unionpay: no merchant account to record order {order_id} in");
        return;
    };
    let orders = account
        .entry("orders")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !orders.is_object() {
        *orders = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = orders {
        map.insert(order_id.to_owned(), value);
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn round_trips_through_the_accounts_value() {
        let mut state = State::new(1);
        let order = UnionpayOrder {
            kind: UnionpayOrderKind::Refund,
            txn_time: "20250101120000".to_owned(),
            fingerprint: "f".to_owned(),
            txn_amt: 5,
            orig_order_id: Some("ORDER0001".to_owned()),
            orig_query_id: Some("q".to_owned()),
            query_id: None,
            result: None,
            recorded_at: Utc::now(),
        };
        // Without an account there is nowhere to record: nothing happens, nothing breaks.
        put(&mut state, "REFUND0001", &order);
        assert_eq!(get(&state, "REFUND0001"), None);
        state
            .accounts
            .insert(Wallet::Unionpay, serde_json::json!({"mer_id": "1"}));
        put(&mut state, "REFUND0001", &order);
        assert_eq!(get(&state, "REFUND0001"), Some(order.clone()));
        assert!(order.same_request(UnionpayOrderKind::Refund, "20250101120000", "f"));
        assert!(!order.same_request(UnionpayOrderKind::Cancel, "20250101120000", "f"));
        assert!(!order.same_request(UnionpayOrderKind::Refund, "20250101120001", "f"));
        assert_eq!(state.accounts[&Wallet::Unionpay]["mer_id"], "1");
    }
}
