//! The simulated WeChat Pay API v2 (`wallets.md` §1), written from the documentation and
//! independently of the gateway's connector.
//!
//! * `mod.rs` (this file): the merchant account, the [`WechatModule`] the sandbox core
//!   mounts under `/wechat`, the payment notification and its acknowledgement rule.
//! * `api.rs`: the endpoints (`/pay/micropay`, `/pay/orderquery`, `/pay/unifiedorder`,
//!   `/pay/closeorder`, `/pay/refundquery`, `/pay/queryexchagerate`, `/secapi/pay/reverse`,
//!   `/secapi/pay/refund`) translated to and from the core's operations.
//! * `sign.rs`: v2 signatures (MD5 and HMAC-SHA256).
//! * `xml.rs`: the `<xml>` envelope, parsed safely and written with CDATA.
//! * `tls.rs`: the sandbox CA, the merchant's client certificate, and [`serve_secapi`], the
//!   mutual-TLS listener `/secapi/*` needs (over plain HTTP those paths refuse).

mod api;
mod bill;
mod sign;
mod tls;
mod xml;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{any, MethodRouter};
use axum::Router;
use rand::distributions::Alphanumeric;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::model::{Trade, Wallet};
use crate::state::digits;
use crate::{Sandbox, WalletModule};

pub use tls::{serve_secapi, SecapiServer};

use api::WechatApi;
use sign::WechatSignType;

/// The WeChat Pay module for [`Sandbox::new`].
pub fn module() -> Arc<dyn WalletModule> {
    Arc::new(WechatModule)
}

/// The simulated WeChat Pay v2 wallet. Stateless: the merchant account, its certificates
/// and the secapi address live in the sandbox state (`accounts.wechat`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WechatModule;

/// The merchant account, as stored in `accounts.wechat`.
#[derive(Debug, Clone)]
pub(crate) struct WechatAccount {
    pub(crate) appid: String,
    pub(crate) mch_id: String,
    pub(crate) api_key: String,
    pub(crate) sub_mch_id: String,
    /// The stored JSON, for the per-order extras (`order_attach`).
    raw: Value,
}

impl WechatAccount {
    pub(crate) fn load(sandbox: &Sandbox) -> Option<WechatAccount> {
        WechatAccount::from_json(sandbox.accounts(Wallet::Wechat))
    }

    fn from_json(raw: Value) -> Option<WechatAccount> {
        let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(WechatAccount {
            appid: text("appid")?,
            mch_id: text("mch_id")?,
            api_key: text("api_key")?,
            sub_mch_id: text("sub_mch_id").unwrap_or_default(),
            raw,
        })
    }

    /// The `attach` the merchant gave when creating the order, echoed in queries and
    /// notifications (the core's trade has no place for it).
    pub(crate) fn attach(&self, out_trade_no: &str) -> Option<&str> {
        self.raw.get("order_attach")?.get(out_trade_no)?.as_str()
    }

    /// The `device_info` the merchant gave when creating the order (the bill's 设备号).
    pub(crate) fn device(&self, out_trade_no: &str) -> Option<&str> {
        self.raw.get("order_device")?.get(out_trade_no)?.as_str()
    }
}

/// What the handlers share: the sandbox, and whether the call arrived over mutual TLS.
#[derive(Clone)]
pub(crate) struct WechatCtx {
    pub(crate) sandbox: Sandbox,
    pub(crate) tls: bool,
}

fn endpoint(api: WechatApi) -> MethodRouter<WechatCtx> {
    // Every method reaches the handler, which answers REQUIRE_POST_METHOD in XML as WeChat
    // does instead of a bare 405.
    any(
        move |State(ctx): State<WechatCtx>, method: Method, body: Bytes| {
            api::handle(ctx, api, method, body)
        },
    )
}

/// The WeChat routes; `tls` says whether `/secapi/*` may be served (mutual-TLS listener).
pub(crate) fn wechat_router(sandbox: Sandbox, tls: bool) -> Router {
    Router::new()
        .route("/pay/micropay", endpoint(WechatApi::Micropay))
        .route("/pay/orderquery", endpoint(WechatApi::OrderQuery))
        .route("/pay/unifiedorder", endpoint(WechatApi::UnifiedOrder))
        .route("/pay/closeorder", endpoint(WechatApi::CloseOrder))
        .route("/pay/refundquery", endpoint(WechatApi::RefundQuery))
        .route(
            "/pay/queryexchagerate",
            endpoint(WechatApi::QueryExchangeRate),
        )
        .route("/pay/downloadbill", any(bill::download_bill))
        .route("/secapi/pay/reverse", endpoint(WechatApi::Reverse))
        .route("/secapi/pay/refund", endpoint(WechatApi::Refund))
        .with_state(WechatCtx { sandbox, tls })
}

fn alphanumerics(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect()
}

fn lower_hex(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect()
}

impl WalletModule for WechatModule {
    fn wallet(&self) -> Wallet {
        Wallet::Wechat
    }

    fn upgrade_accounts(&self, _accounts: &mut Value) {
        // Nothing of this wallet's accounts changed since states were first saved.
    }

    fn create_accounts(&self, rng: &mut ChaCha8Rng) -> Value {
        // Shapes of real accounts: appid `wx` + 16 hex, 10-digit merchant numbers starting 1,
        // a 32-character API key. Certificates are made at first use (not deterministic, and
        // not needed until someone asks for credentials or starts the secapi listener).
        json!({
            "appid": format!("wx{}", lower_hex(rng, 16)),
            "mch_id": format!("1{}", digits(rng, 9)),
            "sub_mch_id": format!("1{}", digits(rng, 9)),
            "api_key": alphanumerics(rng, 32),
            "merchant_name": "qrgate sandbox merchant",
        })
    }

    fn router(&self, sandbox: Sandbox) -> Router {
        wechat_router(sandbox, false)
    }

    fn notification(
        &self,
        sandbox: &Sandbox,
        trade: &Trade,
        forged: bool,
    ) -> Option<(String, Vec<u8>)> {
        if trade.wallet != Wallet::Wechat || trade.paid_at.is_none() {
            return None;
        }
        let account = WechatAccount::load(sandbox)?;
        if trade.merchant != account.mch_id {
            return None;
        }
        let mut fields: Vec<(String, String)> = vec![
            ("return_code".to_owned(), "SUCCESS".to_owned()),
            ("return_msg".to_owned(), "OK".to_owned()),
            ("appid".to_owned(), account.appid.clone()),
            ("mch_id".to_owned(), account.mch_id.clone()),
            (
                "nonce_str".to_owned(),
                sandbox.with(|_, rng, _| api::nonce(rng)),
            ),
            ("result_code".to_owned(), "SUCCESS".to_owned()),
        ];
        fields.extend(api::paid_fields(&account, trade));
        api::drop_amount_if_faulted(sandbox, &mut fields);
        // MD5, the v2 default: the request's sign type is not kept with the order (open
        // point 1), and no `sign_type` field is sent.
        let signature = api::sign_fields(&fields, &account.api_key, WechatSignType::Md5, forged);
        fields.push(("sign".to_owned(), signature));
        Some(("text/xml".to_owned(), xml::render(&fields).into_bytes()))
    }

    fn acknowledged(&self, status: u16, body: &str) -> bool {
        (200..300).contains(&status)
            && xml::parse(body).is_ok_and(|f| f.get("return_code").is_some_and(|c| c == "SUCCESS"))
    }

    fn credentials(&self, sandbox: &Sandbox) -> Value {
        let account = WechatAccount::load(sandbox);
        let pki = match tls::ensure_pki(sandbox) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the WeChat sandbox certificates");
                None
            }
        };
        let secapi = tls::secapi_base_url(sandbox);
        json!({
            "base_url": format!("{}/wechat", sandbox.base_url()),
            "secapi_base_url": secapi,
            "appid": account.as_ref().map(|a| a.appid.clone()),
            "mch_id": account.as_ref().map(|a| a.mch_id.clone()),
            "sub_mch_id": account.as_ref().map(|a| a.sub_mch_id.clone()),
            "api_key": account.as_ref().map(|a| a.api_key.clone()),
            "sign_type": "MD5",
            "client_cert_pem": pki.as_ref().map(|p| p.client_cert_pem.clone()),
            "client_key_pem": pki.as_ref().map(|p| p.client_key_pem.clone()),
            "ca_cert_pem": pki.as_ref().map(|p| p.ca_cert_pem.clone()),
        })
    }
}
