//! OTTPAY wire codec for in-store (retail) QR payments.
//!
//! This crate turns OTTPAY messages into bytes and back, for the `qrgate` gateway and for
//! POS integrators alike:
//!
//! - the §4 cryptography: [`digest`] (the `md5` field), [`derive_aes_key`], [`seal`] and
//!   [`open`] (AES-128-ECB, PKCS#7, base64, with the receiver-side tolerances of §4.4/§4.6);
//! - the outer envelopes of §3: [`RequestEnvelope`], [`ResponseEnvelope`],
//!   [`CallbackEnvelope`];
//! - the wire enumerations [`Action`] and [`RspCode`];
//! - typed transaction data in [`messages`] (re-exported here), e.g. [`ActivePayRequest`].
//!
//! It performs **no IO**: no network, no files, no clock, no randomness, no async runtime.
//! Everything is a pure function of its inputs, so it can be embedded anywhere. Order ids,
//! timestamps, key lookup and transport are the caller's business.
//!
//! Section numbers (§) refer to the protocol reference `ottpay.md`.
//!
//! # Example
//!
//! A POS seals an `ACTIVEPAY` request; the gateway opens it and answers; the POS opens the
//! answer.
//!
//! ```
//! use qrgate_ottpay::{
//!     Action, ActivePayRequest, ActivePayResponse, BizType, Cents, RequestEnvelope,
//!     ResponseEnvelope, RspCode, SignKey,
//! };
//!
//! let key = SignKey::new("6698851A525C9433");
//!
//! // POS side: build and send the request.
//! let request = ActivePayRequest {
//!     order_id: Some("POS20240101120000".into()),
//!     operator_id: Some("0000000696".into()),
//!     amount: Cents(100),
//!     tip: None,
//!     biz_type: BizType::WechatPay,
//!     call_back_url: "https://merchant.example/ottpay/notify".into(),
//! };
//! let body = RequestEnvelope::seal(
//!     Action::ActivePay,
//!     "ON00004652",
//!     None,
//!     Some("0000000696"),
//!     &request.to_data(),
//!     &key,
//! )
//! .to_json();
//!
//! // Gateway side: parse, look up the key by merchant id, open, read.
//! let envelope = RequestEnvelope::parse(body.as_bytes()).unwrap();
//! assert_eq!(envelope.action(), Some(Action::ActivePay));
//! let data = envelope.open(&key).unwrap();
//! let received = ActivePayRequest::from_data(&data).unwrap();
//! assert_eq!(received, request);
//!
//! let answer = ActivePayResponse {
//!     code_url: "weixin://wxpay/bizpayurl?pr=AbCdEfG".into(),
//!     order_id: "POS20240101120000".into(),
//!     bizpay_order_id: None,
//! };
//! let reply = ResponseEnvelope::sealed(RspCode::Success, "success", &answer.to_data(), &key)
//!     .to_json();
//!
//! // POS side: check the code, then open the data.
//! let response = ResponseEnvelope::parse(reply.as_bytes()).unwrap();
//! assert_eq!(response.code(), Some(RspCode::Success));
//! let opened = ActivePayResponse::from_data(&response.open(&key).unwrap()).unwrap();
//! assert_eq!(opened.code_url, "weixin://wxpay/bizpayurl?pr=AbCdEfG");
//! ```

#![warn(missing_docs)]

mod codes;
mod crypto;
mod envelope;
pub mod messages;

pub use codes::{Action, RspCode, UnknownName};
pub use crypto::{
    decrypt_with_md5, derive_aes_key, digest, digest_java_style, encrypt_with_md5, open, seal,
    Data, OpenError, Sealed, SignKey, EMPTY_DIGEST,
};
pub use envelope::{
    wire_safe_msg, CallbackEnvelope, EnvelopeError, RequestEnvelope, ResponseEnvelope,
};
pub use messages::{
    ActivePayRequest, ActivePayResponse, BizType, CallbackData, Cents, CentsError,
    ExRateQueryRequest, ExRateQueryResponse, FieldError, Message, OrderStatus, PassivePayRequest,
    PassivePayResponse, RefundQueryRequest, RefundRequest, RefundResponse, StatusQueryRequest,
    StatusQueryResponse,
};
