//! The simulated Alipay OpenAPI (`wallets.md` §2): one merchant app, the `gateway.do`
//! endpoint speaking form-encoded requests and signed JSON answers, and `trade_status_sync`
//! notifications. Written from the protocol notes, independently of the gateway's connector,
//! so that a misunderstanding shared by both cannot pass the tests.
//!
//! * `mod.rs` — the [`AlipayModule`] the sandbox core mounts, the merchant account and the
//!   parsed-key cache.
//! * `sign.rs` — the string-to-sign and RSA2 (SHA256withRSA) signatures.
//! * `wire.rs` — codes, errors, amounts, timestamps and `biz_content` access.
//! * `gateway.rs` — the HTTP endpoint: common parameters, request signature, the signed
//!   response envelope.
//! * `trade.rs` — the seven trade methods mapped onto the core's operations.
//! * `notify.rs` — the asynchronous payment notification.
//! * `keys/` — the fixed sandbox test key pairs.

mod bill;
mod gateway;
mod notify;
mod sign;
mod trade;
mod wire;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::Router;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::{Trade, Wallet};
use crate::rsa_sha256::{RsaSha256Signer, RsaSha256Verifier};
use crate::state::digits;
use crate::{Sandbox, WalletModule};
use sign::AlipayKeyError;

/// The merchant app's key pair (test fixture; see `keys/README.md`).
const APP_PRIVATE_KEY_PEM: &str = include_str!("keys/app_private.pem");
const APP_PUBLIC_KEY_PEM: &str = include_str!("keys/app_public.pem");
/// The sandbox's own "Alipay" key pair (test fixture).
const ALIPAY_PRIVATE_KEY_PEM: &str = include_str!("keys/alipay_private.pem");
const ALIPAY_PUBLIC_KEY_PEM: &str = include_str!("keys/alipay_public.pem");

/// The module for [`crate::Sandbox::new`].
pub fn module() -> Arc<dyn WalletModule> {
    Arc::new(AlipayModule::default())
}

/// The sandbox's one Alipay merchant app, as stored in the state's accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlipayAccount {
    /// `2021` + 12 digits.
    pub app_id: String,
    /// The merchant's Alipay user id (PID): `2088` + 12 digits.
    pub seller_id: String,
    /// The gateway signs requests with this key; the sandbox keeps it only to hand it out
    /// through the credentials.
    pub app_private_key_pem: String,
    /// The sandbox verifies requests with this key.
    pub app_public_key_pem: String,
    /// The sandbox signs answers and notifications with this key.
    pub alipay_private_key_pem: String,
    /// The gateway verifies answers and notifications with this key.
    pub alipay_public_key_pem: String,
}

impl AlipayAccount {
    /// The account the sandbox stored, if it has a usable one.
    pub fn of(sandbox: &Sandbox) -> Option<AlipayAccount> {
        serde_json::from_value(sandbox.accounts(Wallet::Alipay)).ok()
    }
}

/// Keys ready to sign or verify, by PEM text: parsing a 2048-bit key and handing it to
/// `ring` is not free (noticeably so in debug builds), and the same few keys are used for
/// every call.
#[derive(Default)]
pub(crate) struct AlipayKeyCache {
    private: Mutex<Vec<(String, Arc<RsaSha256Signer>)>>,
    public: Mutex<Vec<(String, Arc<RsaSha256Verifier>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The cache holds only parsed keys: a panic elsewhere leaves nothing half-written.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AlipayKeyCache {
    pub fn private(&self, pem: &str) -> Result<Arc<RsaSha256Signer>, AlipayKeyError> {
        if let Some((_, key)) = lock(&self.private).iter().find(|(p, _)| p == pem) {
            return Ok(key.clone());
        }
        let key = Arc::new(sign::private_key_from_pem(pem)?);
        lock(&self.private).push((pem.to_owned(), key.clone()));
        Ok(key)
    }

    pub fn public(&self, pem: &str) -> Result<Arc<RsaSha256Verifier>, AlipayKeyError> {
        if let Some((_, key)) = lock(&self.public).iter().find(|(p, _)| p == pem) {
            return Ok(key.clone());
        }
        let key = Arc::new(sign::public_key_from_pem(pem)?);
        lock(&self.public).push((pem.to_owned(), key.clone()));
        Ok(key)
    }
}

/// The Alipay wallet module.
#[derive(Default)]
pub struct AlipayModule {
    keys: Arc<AlipayKeyCache>,
}

/// What the gateway's handlers share: the sandbox and the key cache.
#[derive(Clone)]
pub(crate) struct AlipayContext {
    pub sandbox: Sandbox,
    pub keys: Arc<AlipayKeyCache>,
}

impl WalletModule for AlipayModule {
    fn wallet(&self) -> Wallet {
        Wallet::Alipay
    }

    fn upgrade_accounts(&self, _accounts: &mut Value) {
        // Nothing of this wallet's accounts changed since states were first saved.
    }

    fn create_accounts(&self, rng: &mut ChaCha8Rng) -> Value {
        let account = AlipayAccount {
            app_id: format!("2021{}", digits(rng, 12)),
            seller_id: format!("2088{}", digits(rng, 12)),
            app_private_key_pem: APP_PRIVATE_KEY_PEM.to_owned(),
            app_public_key_pem: APP_PUBLIC_KEY_PEM.to_owned(),
            alipay_private_key_pem: ALIPAY_PRIVATE_KEY_PEM.to_owned(),
            alipay_public_key_pem: ALIPAY_PUBLIC_KEY_PEM.to_owned(),
        };
        serde_json::to_value(account).unwrap_or(Value::Null)
    }

    fn router(&self, sandbox: Sandbox) -> Router {
        let context = AlipayContext {
            sandbox,
            keys: self.keys.clone(),
        };
        Router::new()
            // The real gateway takes GET with every parameter in the query string too, and
            // some SDKs (python-alipay-sdk) call it that way.
            .route("/gateway.do", post(gateway::gateway).get(gateway::gateway))
            // Where `bill_download_url` points (Alipay's own is on another host).
            .route(
                "/downloadBillFile.resource",
                axum::routing::get(bill::download_file),
            )
            .with_state(context)
    }

    fn notification(
        &self,
        sandbox: &Sandbox,
        trade: &Trade,
        forged: bool,
    ) -> Option<(String, Vec<u8>)> {
        let account = AlipayAccount::of(sandbox)?;
        let key = match self.keys.private(&account.alipay_private_key_pem) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(error = %e, "alipay: cannot sign notifications");
                return None;
            }
        };
        let amountless = sandbox.take_amountless(Wallet::Alipay, trade.paid_at.is_some());
        let body = notify::body(&account, &key, trade, forged, amountless, sandbox.now())?;
        Some((
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            body.into_bytes(),
        ))
    }

    fn acknowledged(&self, status: u16, body: &str) -> bool {
        // Alipay wants the plain seven characters `success`; anything else is a failure
        // and the notification is sent again.
        (200..300).contains(&status) && body.trim() == "success"
    }

    fn credentials(&self, sandbox: &Sandbox) -> Value {
        let Some(account) = AlipayAccount::of(sandbox) else {
            return Value::Null;
        };
        json!({
            "gateway_url": format!("{}/alipay/gateway.do", sandbox.base_url()),
            "app_id": account.app_id,
            "seller_id": account.seller_id,
            "app_private_key_pem": account.app_private_key_pem,
            "alipay_public_key_pem": account.alipay_public_key_pem,
            "sign_type": "RSA2",
        })
    }
}
