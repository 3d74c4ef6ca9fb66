//! Wallet connectors: one module per wallet, each a real client of that wallet's protocol
//! whose base URLs and credentials come from configuration, so the same code talks to the
//! sandbox in tests and demos and to the wallet in production.
//!
//! Inside each module, request building and response parsing are pure functions (`wire.rs`),
//! signing is in `sign.rs`, and the async methods only sequence them around the shared
//! [`qrgate_connector_api::HttpClient`]. Connectors are stateless and never touch the
//! database.

pub mod alipay;
mod bill_file;
#[cfg(test)]
mod reference_rsa;
mod rsa_pkcs1;
mod settings;
pub mod unionpay;
pub mod wechat_pay;

pub use settings::{
    AlipaySettings, TimeoutSettings, UnionPaySettings, WalletSettings, WechatPaySettings,
};
