//! The simulated UnionPay: China UnionPay ACP 5.1.0 "QR code payment" (`wallets.md` §3.1)
//! with the profile qrgate fixed where the notes are silent. Written from the protocol notes
//! and the profile, independently of the gateway's connector, so that a misunderstanding
//! shared by both cannot pass the tests.
//!
//! # The profile (shared with the connector)
//!
//! * **Transport.** `POST` form-urlencoded (`application/x-www-form-urlencoded;charset=UTF-8`)
//!   both ways; answers are form-urlencoded text too, values URL-encoded. Paths under the base
//!   URL (`<sandbox>/unionpay`): `/gateway/api/backTransReq.do` (consume, apply-QR, cancel,
//!   refund) and `/gateway/api/queryTrans.do` (query). Answers are HTTP 200 whatever the
//!   `respCode`.
//! * **Common request fields.** `version=5.1.0`, `encoding=utf-8`, `signMethod=01`, `certId`
//!   (decimal serial of the merchant's certificate), `signature`, `txnType`, `txnSubType`,
//!   `bizType=000000`, `accessType=0`, `channelType=08` (required on `backTransReq.do`,
//!   optional on queries), `merId` (15 digits), `orderId` (8–32 alphanumerics), `txnTime`
//!   (`yyyyMMddHHmmss`, Beijing); money-moving calls add `txnAmt` (integer minor units of
//!   `currencyCode`) and `currencyCode` (156 CNY, 124 CAD, 840 USD); `backUrl` is required on
//!   consume and apply-QR; `termId`, `reqReserved` optional (`reqReserved` is echoed).
//! * **Transactions.** Consume 01/06 with `qrNo` (19 digits starting 62) → `respCode`,
//!   `queryId` when the order exists. Apply-QR 01/07 with optional `payTimeout` → `qrCode`
//!   (the sandbox pay page `<sandbox>/pay/<token>`). Query 00/00 by `orderId` + `txnTime` of
//!   a consume, apply-QR, cancel or refund order → `respCode=00` and `origRespCode`,
//!   `origRespMsg`, `queryId`, `txnAmt`, `currencyCode`, `settleAmt` (CNY fen),
//!   `settleCurrencyCode=156`, `exchangeRate` (rate to CNY ×10^8 as an integer string),
//!   `traceTime`. Cancel 31/00 with a new `orderId`, `origQryId`, `txnAmt` = the original
//!   amount. Refund 04/00 with a new `orderId` (the core's `out_refund_no`), `origQryId`,
//!   `txnAmt` ≤ what remains.
//! * **Codes.** 00 success; 03/04/05 processing (a consume waiting for the password answers
//!   05); 10 format error, 11 signature failed, 13 field missing, 30 not supported; 12
//!   duplicate `orderId` with other content; 34 original not found; 35 state forbids; 36
//!   amount exceeds; 61 code invalid or used; 64 code expired; 65 insufficient balance. In a
//!   query: `origRespCode` 00 paid/done, 05 still waiting, 31 cancelled or revoked (the
//!   wallet revokes an unconfirmed consume after 60 s), 65 failed at confirmation.
//! * **Signatures.** Non-empty fields except `signature`, sorted, `k=v&…`, raw values; the
//!   lower-hex SHA-256 of that; Base64 RSA-SHA256-PKCS#1 v1.5 of the hex string. Requests:
//!   the merchant key, `certId` = its certificate's serial. Answers and notifications: the
//!   UnionPay signing key, with `signPubKeyCert` (the signing certificate's PEM, part of the
//!   signed set) that must chain to the UnionPay root (`root_cert_pem` in the credentials).
//! * **Notifications.** After a consume or a QR order is paid: the signed form to `backUrl`
//!   (`respCode=00`, `queryId`, amounts, settlement); acknowledged by HTTP 200, retried
//!   otherwise.
//!
//! # The sandbox's own decisions
//!
//! * An unknown (well-formed) `merId` answers 30; `signMethod` other than 01 or a `certId`
//!   that is not the merchant certificate's serial answers 11; a wrong constant field
//!   (`version`, `encoding`, `bizType`, `accessType`, `channelType`) answers 10; an unknown
//!   `txnType`/`txnSubType` for the path answers 30; a numeric `currencyCode` other than the
//!   three answers 30, a non-numeric one 10; `txnAmt` 0 on a consume or apply-QR answers 10.
//! * A `qrNo` that is not 19 digits starting 62 answers 61 (a scanned code of another wallet).
//! * `payTimeout` is read relative to the request's `txnTime` (validity = `payTimeout` −
//!   `txnTime`), never against the sandbox clock, which tests move forward; it must be later
//!   than `txnTime` (else 10).
//! * Orders are identified by `orderId` (one merchant) and a query must name the same
//!   `txnTime`, else 34. A resend with the same `orderId`, `txnTime` and content is
//!   idempotent; anything else with that `orderId` answers 12.
//! * A query answer's `txnType`/`txnSubType` are the queried order's (e.g. 01/06).
//! * Final outcomes (declines, refused cancels and refunds) are recorded so a query of that
//!   order answers `origRespCode` = that code; request errors (10–13, 30) and "call again"
//!   (a cancel answering 05) are not, so they can be resent.
//! * A cancel's `currencyCode` and a refund's are optional; when sent they must be the
//!   original's (else 30). A cancel's `txnAmt` must equal the original amount (else 36).
//! * "No answer" outcomes (the `timeout` code behaviour) hold the connection for 120 s and
//!   then answer HTTP 504 with an empty body.
//!
//! # Files
//!
//! * `mod.rs` — the [`UnionpayModule`], the merchant account, the parsed-key cache.
//! * `pki.rs` and `pki/` — the fixed test PKI and the certificate reading.
//! * `sign.rs` — the 5.1.0 string-to-sign and RSA signatures.
//! * `wire.rs` — strict form parsing, answers, codes, currencies, times.
//! * `orders.rs` — the `orderId` ledger (cancel and refund orders, `txnTime`s).
//! * `gateway.rs` — the two endpoints: parsing, common checks, the request signature, the
//!   signed answer.
//! * `trans.rs` — the five transactions mapped onto the core's operations.
//! * `notify.rs` — the payment notification.

mod bill;
mod gateway;
mod notify;
mod orders;
mod pki;
mod sign;
mod trans;
mod wire;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::Router;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::{Trade, Wallet};
use crate::rsa_sha256::RsaSha256Signer;
use crate::state::{digits, State};
use crate::{Sandbox, WalletModule};
use pki::{UnionpayCert, UnionpayPkiError};

/// The serial number (decimal) of `pki/merchant_cert.pem`: the merchant's `certId`.
pub(crate) const MERCHANT_CERT_ID: &str = "73840215968";

/// The owner field of the sandbox's signing certificate's CN (`041@Z12@<owner>@00000001`),
/// as on UnionPay's own test bed: the gateway must be configured with it
/// (`signing_cert_owner`), and refuses any other certificate the root issued.
pub(crate) const SIGNING_CERT_OWNER: &str = "00040000:SIGN";

/// The module for [`crate::Sandbox::new`].
pub fn module() -> Arc<dyn WalletModule> {
    Arc::new(UnionpayModule::default())
}

/// The sandbox's one UnionPay merchant, as stored in the state's accounts (next to the
/// `orders` ledger, see `orders.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnionpayAccount {
    /// 15 digits.
    pub mer_id: String,
    /// The decimal serial of the merchant certificate.
    pub cert_id: String,
    /// The gateway signs requests with this key; the sandbox only hands it out.
    pub merchant_private_key_pem: String,
    /// The sandbox verifies requests with this certificate's key.
    pub merchant_cert_pem: String,
    /// The gateway checks `signPubKeyCert` against this root.
    pub root_cert_pem: String,
    /// Sent as `signPubKeyCert`.
    pub signing_cert_pem: String,
    /// Signs answers and notifications.
    pub signing_private_key_pem: String,
}

impl UnionpayAccount {
    /// The stored account, read in place (the ledger next to it is not copied).
    pub(crate) fn of_state(state: &State) -> Option<UnionpayAccount> {
        let value = state.accounts.get(&Wallet::Unionpay)?;
        UnionpayAccount::deserialize(value).ok()
    }

    pub fn of(sandbox: &Sandbox) -> Option<UnionpayAccount> {
        sandbox.with(|state, _, _| UnionpayAccount::of_state(state))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The cache holds only parsed keys: a panic elsewhere leaves nothing half-written.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keys ready to sign and certificates ready to verify with, by PEM text: parsing RSA keys
/// (and handing them to `ring`) is slow in debug builds, and the same two are used on every
/// call.
#[derive(Default)]
pub(crate) struct UnionpayKeyring {
    private: Mutex<Vec<(String, Arc<RsaSha256Signer>)>>,
    certs: Mutex<Vec<(String, Arc<UnionpayCert>)>>,
}

impl UnionpayKeyring {
    pub(crate) fn private(&self, pem: &str) -> Result<Arc<RsaSha256Signer>, UnionpayPkiError> {
        if let Some((_, key)) = lock(&self.private).iter().find(|(p, _)| p == pem) {
            return Ok(key.clone());
        }
        let key = Arc::new(pki::read_private_key(pem)?);
        lock(&self.private).push((pem.to_owned(), key.clone()));
        Ok(key)
    }

    pub(crate) fn cert(&self, pem: &str) -> Result<Arc<UnionpayCert>, UnionpayPkiError> {
        if let Some((_, cert)) = lock(&self.certs).iter().find(|(p, _)| p == pem) {
            return Ok(cert.clone());
        }
        let cert = Arc::new(pki::read_cert(pem)?);
        lock(&self.certs).push((pem.to_owned(), cert.clone()));
        Ok(cert)
    }
}

/// What the endpoints share.
#[derive(Clone)]
pub(crate) struct UnionpayContext {
    pub sandbox: Sandbox,
    pub keys: Arc<UnionpayKeyring>,
}

/// The UnionPay wallet module.
#[derive(Default)]
pub struct UnionpayModule {
    keys: Arc<UnionpayKeyring>,
}

impl WalletModule for UnionpayModule {
    fn wallet(&self) -> Wallet {
        Wallet::Unionpay
    }

    fn create_accounts(&self, rng: &mut ChaCha8Rng) -> Value {
        // 15 digits, the first not 0 so that no one mistakes it for a shorter number.
        let first: u8 = rng.gen_range(1..=9);
        let account = UnionpayAccount {
            mer_id: format!("{first}{}", digits(rng, 14)),
            cert_id: MERCHANT_CERT_ID.to_owned(),
            merchant_private_key_pem: pki::MERCHANT_KEY_PEM.to_owned(),
            merchant_cert_pem: pki::MERCHANT_CERT_PEM.to_owned(),
            root_cert_pem: pki::ROOT_CERT_PEM.to_owned(),
            signing_cert_pem: pki::SIGNING_CERT_PEM.to_owned(),
            signing_private_key_pem: pki::SIGNING_KEY_PEM.to_owned(),
        };
        serde_json::to_value(account).unwrap_or(Value::Null)
    }

    fn upgrade_accounts(&self, accounts: &mut Value) {
        // The test PKI is the code's, not the state's: a state saved by an older sandbox
        // carries certificates that were re-issued since (the owner field of their CN).
        let Ok(mut account) = UnionpayAccount::deserialize(&*accounts) else {
            return;
        };
        account.merchant_cert_pem = pki::MERCHANT_CERT_PEM.to_owned();
        account.merchant_private_key_pem = pki::MERCHANT_KEY_PEM.to_owned();
        account.cert_id = MERCHANT_CERT_ID.to_owned();
        account.root_cert_pem = pki::ROOT_CERT_PEM.to_owned();
        account.signing_cert_pem = pki::SIGNING_CERT_PEM.to_owned();
        account.signing_private_key_pem = pki::SIGNING_KEY_PEM.to_owned();
        if let (Ok(Value::Object(fresh)), Value::Object(stored)) =
            (serde_json::to_value(account), accounts)
        {
            // Only the account's own fields are replaced; whatever else the state keeps next
            // to them (the orders ledger) stays.
            for (key, value) in fresh {
                stored.insert(key, value);
            }
        }
    }

    fn router(&self, sandbox: Sandbox) -> Router {
        let context = UnionpayContext {
            sandbox,
            keys: self.keys.clone(),
        };
        Router::new()
            .route("/gateway/api/backTransReq.do", post(gateway::back_trans))
            .route("/gateway/api/queryTrans.do", post(gateway::query_trans))
            // File transfer (`txnType=76`), on its own host at UnionPay
            // (filedownload.95516.com): here under `/unionpay/filedownload`.
            .route("/filedownload", post(bill::file_transfer))
            .route("/filedownload/", post(bill::file_transfer))
            .with_state(context)
    }

    fn notification(
        &self,
        sandbox: &Sandbox,
        trade: &Trade,
        forged: bool,
    ) -> Option<(String, Vec<u8>)> {
        let body = notify::body(sandbox, &self.keys, trade, forged)?;
        Some((
            wire::UNIONPAY_FORM_CONTENT_TYPE.to_owned(),
            body.into_bytes(),
        ))
    }

    fn acknowledged(&self, status: u16, _body: &str) -> bool {
        // UnionPay reads only the HTTP status; the body is irrelevant.
        status == 200
    }

    fn credentials(&self, sandbox: &Sandbox) -> Value {
        let Some(account) = UnionpayAccount::of(sandbox) else {
            return Value::Null;
        };
        json!({
            "base_url": format!("{}/unionpay", sandbox.base_url()),
            "mer_id": account.mer_id,
            "cert_id": account.cert_id,
            "merchant_private_key_pem": account.merchant_private_key_pem,
            "root_cert_pem": account.root_cert_pem,
            "signing_cert_owner": SIGNING_CERT_OWNER,
        })
    }
}
