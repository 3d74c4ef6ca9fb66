//! An OTTPAY POS client: what a till, a kiosk or a shop back-office uses to take in-store
//! QR payments through `qrgate` (or any gateway that speaks the OTTPAY retail protocol).
//!
//! [`PosClient`] seals each request with the merchant's sign key ([`qrgate_ottpay`] does
//! the cryptography), POSTs it to the gateway's endpoint, and opens and verifies the
//! answer. It has no business rules of its own: it tells you what the gateway said,
//! and what it could not find out.
//!
//! - Every call returns an [`Answer`]: the gateway's `rsp_code` ([`Code`]), its `rsp_msg`,
//!   and the answer's `data`, opened with the sign key and its digest verified. A
//!   `SUCCESS` whose data does not verify is an error ([`ClientError::Unverified`]);
//!   a refusal whose data does not open (gateways seal refusals that happen before
//!   authentication with the empty key) simply has no data.
//! - [`ClientError`] says whether the request can have reached the gateway:
//!   [`ClientError::Unavailable`] means it was never sent, so sending it again is safe;
//!   [`ClientError::OutcomeUnknown`] (a timeout or a broken connection after sending)
//!   means the payment may have gone through: **ask with
//!   [`status_query`](PosClient::status_query) for the same `order_id` before doing
//!   anything else**. That is why a POS should choose its order ids itself
//!   ([`new_order_id`]) rather than let the gateway generate them.
//! - Helpers a POS needs around a payment: [`detect_wallet`] (which wallet a scanned
//!   payment code belongs to), [`mask_code`] (a payment code fit for a screen or a log),
//!   [`parse_amount`] and [`format_amount`] (amounts as people type and read them,
//!   without floating point).
//!
//! The typed messages and enumerations of the codec are re-exported, so this crate is the
//! only dependency a POS needs.
//!
//! # Example
//!
//! Charge a scanned payment code, and wait for the customer's confirmation when the
//! wallet asks for their password:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use qrgate_client::{
//!     detect_wallet, new_order_id, parse_amount, ClientError, OrderStatus, PassivePayRequest,
//!     PosClient, PosConfig, RspCode,
//! };
//!
//! # async fn till() -> Result<(), Box<dyn std::error::Error>> {
//! let client = PosClient::new(PosConfig {
//!     operator_id: Some("0000000696".into()),
//!     ..PosConfig::new("http://127.0.0.1:8080/processV2", "ON00004652", "6698851A525C9433")
//! })?;
//!
//! let scanned = "134567890123456789"; // what the barcode scanner typed
//! let Some(wallet) = detect_wallet(scanned) else {
//!     return Err("not a payment code".into());
//! };
//! let order_id = new_order_id();
//! let request = PassivePayRequest {
//!     order_id: Some(order_id.clone()),
//!     operator_id: None, // the client fills in the configured operator
//!     amount: parse_amount("12.34")?,
//!     tip: None,
//!     sale_num: None,
//!     auth_code: scanned.to_owned(),
//!     biz_type: wallet,
//! };
//!
//! let mut pending = match client.passive_pay(&request).await {
//!     Ok(answer) if answer.rsp_code == RspCode::Success => return Ok(()), // paid
//!     Ok(answer) if answer.rsp_code == RspCode::Processing => true,       // customer confirming
//!     Ok(answer) => return Err(format!("declined: {}", answer.rsp_msg).into()),
//!     // Never sent: nothing happened, the cashier may try again.
//!     Err(e @ ClientError::Unavailable { .. }) => return Err(e.into()),
//!     // Sent, but no usable answer: do NOT charge again, ask for this order's status.
//!     Err(e) if e.may_have_been_processed() => true,
//!     Err(e) => return Err(e.into()),
//! };
//! while pending {
//!     tokio::time::sleep(Duration::from_secs(2)).await;
//!     if let Ok(answer) = client.status_query(&order_id).await {
//!         match answer.data.map(|d| d.order_status) {
//!             Some(OrderStatus::Success) => pending = false, // paid
//!             Some(OrderStatus::Failure | OrderStatus::OrderClosed) => {
//!                 return Err("declined".into())
//!             }
//!             _ => {} // still waiting (a real POS also gives up after a while)
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod amount;
mod client;
mod wallet;

pub use amount::{format_amount, parse_amount, AmountError};
pub use client::{Answer, ClientError, Code, PosClient, PosConfig};
pub use wallet::{detect_wallet, mask_code, new_order_id};

/// The OTTPAY codec this client is built on, for what the re-exports below do not cover.
pub use qrgate_ottpay as ottpay;
pub use qrgate_ottpay::{
    Action, ActivePayRequest, ActivePayResponse, BizType, Cents, Data, ExRateQueryRequest,
    ExRateQueryResponse, OrderStatus, PassivePayRequest, PassivePayResponse, RefundQueryRequest,
    RefundRequest, RefundResponse, RspCode, StatusQueryRequest, StatusQueryResponse,
};
