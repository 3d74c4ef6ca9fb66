//! Wallet settings as they appear in qrgate's configuration (`[wallets.wechatpay]`, …) and in
//! the sandbox's `GET /control/credentials`, so that pointing the gateway at the sandbox or at
//! a real wallet is the same paste. Building a connector from them validates everything once.

use std::sync::Arc;
use std::time::Duration;

use qrgate_connector_api::{Connector, ConnectorError, HttpClientConfig};
use secrecy::{SecretSlice, SecretString};
use serde::Deserialize;

use crate::alipay::{AlipayConfig, AlipayConnector};
use crate::unionpay::{UnionPayConfig, UnionPayConnector, UNIONPAY_SIGNING_CERT_OWNER};
use crate::wechat_pay::{WechatPayConfig, WechatPayConnector, WechatPaySignType};

/// Timeouts shared by every wallet call.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutSettings {
    pub connect_timeout_ms: u64,
    /// Generous: a payment-code call can be held while the customer types a password.
    pub request_timeout_ms: u64,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        TimeoutSettings {
            connect_timeout_ms: 3_000,
            request_timeout_ms: 15_000,
        }
    }
}

impl TimeoutSettings {
    fn http(&self) -> HttpClientConfig {
        HttpClientConfig {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            client_identity_pem: None,
            extra_root_pem: None,
        }
    }
}

/// `[wallets.wechatpay]`. Unknown keys are refused, so a misspelt one fails at start-up
/// instead of being silently left at its default.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatPaySettings {
    pub base_url: String,
    /// Where `/secapi/*` (reverse, refund) go; defaults to `base_url`.
    #[serde(default)]
    pub secapi_base_url: Option<String>,
    pub appid: String,
    #[serde(deserialize_with = "digits")]
    pub mch_id: String,
    #[serde(default, deserialize_with = "optional_digits")]
    pub sub_mch_id: Option<String>,
    pub api_key: SecretString,
    /// `MD5` (default) or `HMAC-SHA256`.
    #[serde(default)]
    pub sign_type: Option<String>,
    /// The merchant API certificate and key (PEM) for `/secapi/*`.
    #[serde(default)]
    pub client_cert_pem: Option<String>,
    #[serde(default)]
    pub client_key_pem: Option<SecretString>,
    /// An extra CA to trust (the sandbox's); production uses the system's roots.
    #[serde(default)]
    pub ca_cert_pem: Option<String>,
}

/// `[wallets.alipay]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlipaySettings {
    pub gateway_url: String,
    #[serde(deserialize_with = "digits")]
    pub app_id: String,
    #[serde(default, deserialize_with = "optional_digits")]
    pub seller_id: Option<String>,
    pub app_private_key_pem: SecretString,
    pub alipay_public_key_pem: String,
    /// `RSA2` (the default and the only one accepted: SHA256withRSA).
    #[serde(default)]
    pub sign_type: Option<String>,
    /// Send `trans_currency` for prices in CAD/USD (cross-border acquiring).
    #[serde(default = "yes")]
    pub cross_border: bool,
}

/// Merchant numbers are digits; configuration from environment variables turns them into
/// numbers, so both a string and an integer are read as the same text.
fn digits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        N(u64),
    }
    Ok(match Text::deserialize(d)? {
        Text::S(s) => s,
        Text::N(n) => n.to_string(),
    })
}

fn optional_digits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    digits(d).map(Some)
}

fn yes() -> bool {
    true
}

/// `[wallets.unionpay]` (ACP 5.1.0 QR payments).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnionPaySettings {
    pub base_url: String,
    #[serde(deserialize_with = "digits")]
    pub mer_id: String,
    /// The serial number of the merchant's signing certificate.
    #[serde(deserialize_with = "digits")]
    pub cert_id: String,
    pub merchant_private_key_pem: SecretString,
    /// UnionPay's root (and middle) certificates that answers must chain to.
    pub root_cert_pem: String,
    /// The owner field of UnionPay's signing certificate (`041@Z12@<owner>@…` in its CN);
    /// defaults to production's `中国银联股份有限公司`. The sandbox and UnionPay's test bed
    /// use `00040000:SIGN`.
    #[serde(default)]
    pub signing_cert_owner: Option<String>,
    /// Optional SHA-256 fingerprints of the accepted signing certificates.
    #[serde(default)]
    pub signing_cert_sha256: Vec<String>,
    /// Where UnionPay posts payment results; defaults to the gateway's own
    /// `<public_url>/notify/unionpay` (filled in by the binary, which knows that URL).
    #[serde(default)]
    pub back_url: Option<String>,
    /// Where the daily reconciliation file is asked for (the 76/01 file transfer, POSTed to
    /// this URL as it is). Defaults from `base_url`: UnionPay's production gateway
    /// (`gateway.95516.com`) → `https://filedownload.95516.com/`, its test bed
    /// (`gateway.test.95516.com`) → `https://filedownload.test.95516.com/`, any other
    /// `base_url` (the sandbox) → `base_url` itself with a trailing `/`.
    #[serde(default)]
    pub file_base_url: Option<String>,
}

/// The default of [`UnionPaySettings::file_base_url`].
pub(crate) fn default_unionpay_file_base_url(base_url: &str) -> String {
    match url::Url::parse(base_url)
        .ok()
        .as_ref()
        .and_then(url::Url::host_str)
    {
        Some("gateway.95516.com") => "https://filedownload.95516.com/".to_owned(),
        Some("gateway.test.95516.com") => "https://filedownload.test.95516.com/".to_owned(),
        _ => format!("{}/", base_url.trim_end_matches('/')),
    }
}

impl UnionPaySettings {
    pub fn build(&self, timeouts: &TimeoutSettings) -> Result<UnionPayConnector, ConnectorError> {
        UnionPayConnector::new(UnionPayConfig {
            base_url: self.base_url.clone(),
            mer_id: self.mer_id.clone(),
            cert_id: self.cert_id.clone(),
            merchant_private_key_pem: self.merchant_private_key_pem.clone(),
            root_cert_pem: self.root_cert_pem.clone(),
            signing_cert_owner: self
                .signing_cert_owner
                .clone()
                .unwrap_or_else(|| UNIONPAY_SIGNING_CERT_OWNER.to_owned()),
            signing_cert_sha256: self.signing_cert_sha256.clone(),
            back_url: self.back_url.clone().ok_or_else(|| {
                ConnectorError::Credentials(
                    "unionpay back_url is not set (the gateway's <public_url>/notify/unionpay)"
                        .into(),
                )
            })?,
            file_base_url: self
                .file_base_url
                .clone()
                .unwrap_or_else(|| default_unionpay_file_base_url(&self.base_url)),
            http: timeouts.http(),
        })
    }
}

/// The wallets a gateway talks to; each is optional.
#[derive(Clone, Default, Deserialize)]
pub struct WalletSettings {
    #[serde(default)]
    pub wechatpay: Option<WechatPaySettings>,
    #[serde(default)]
    pub alipay: Option<AlipaySettings>,
    #[serde(default)]
    pub unionpay: Option<UnionPaySettings>,
    #[serde(default)]
    pub timeouts: TimeoutSettings,
}

impl std::fmt::Debug for WalletSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletSettings")
            .field("wechatpay", &self.wechatpay.as_ref().map(|w| &w.mch_id))
            .field("alipay", &self.alipay.as_ref().map(|a| &a.app_id))
            .field("unionpay", &self.unionpay.as_ref().map(|u| &u.mer_id))
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl WechatPaySettings {
    pub fn build(&self, timeouts: &TimeoutSettings) -> Result<WechatPayConnector, ConnectorError> {
        let sign_type = match self.sign_type.as_deref().unwrap_or("MD5") {
            "MD5" => WechatPaySignType::Md5,
            "HMAC-SHA256" => WechatPaySignType::HmacSha256,
            other => {
                return Err(ConnectorError::Credentials(format!(
                    "wechatpay sign_type {other:?}: expected MD5 or HMAC-SHA256"
                )))
            }
        };
        let mut http = timeouts.http();
        http.extra_root_pem = self.ca_cert_pem.as_ref().map(|p| p.as_bytes().to_vec());
        let mut secapi_http = http.clone();
        if let (Some(cert), Some(key)) = (&self.client_cert_pem, &self.client_key_pem) {
            use secrecy::ExposeSecret;
            let identity = format!("{}\n{}", key.expose_secret().trim(), cert.trim());
            secapi_http.client_identity_pem = Some(SecretSlice::from(identity.into_bytes()));
        }
        WechatPayConnector::new(WechatPayConfig {
            secapi_base_url: self
                .secapi_base_url
                .clone()
                .unwrap_or_else(|| self.base_url.clone()),
            base_url: self.base_url.clone(),
            appid: self.appid.clone(),
            mch_id: self.mch_id.clone(),
            sub_mch_id: self.sub_mch_id.clone(),
            api_key: self.api_key.clone(),
            sign_type,
            http,
            secapi_http,
        })
    }
}

impl AlipaySettings {
    pub fn build(&self, timeouts: &TimeoutSettings) -> Result<AlipayConnector, ConnectorError> {
        match self.sign_type.as_deref() {
            None | Some("RSA2") => {}
            Some(other) => {
                return Err(ConnectorError::Credentials(format!(
                    "alipay sign_type {other:?}: only RSA2 (SHA256withRSA) is supported"
                )))
            }
        }
        AlipayConnector::new(AlipayConfig {
            gateway_url: self.gateway_url.clone(),
            app_id: self.app_id.clone(),
            app_private_key_pem: self.app_private_key_pem.clone(),
            alipay_public_key_pem: self.alipay_public_key_pem.clone(),
            seller_id: self.seller_id.clone(),
            cross_border: self.cross_border,
            http: timeouts.http(),
        })
    }
}

impl WalletSettings {
    /// A connector for every configured wallet.
    pub fn build(&self) -> Result<Vec<Arc<dyn Connector>>, ConnectorError> {
        let mut out: Vec<Arc<dyn Connector>> = Vec::new();
        if let Some(w) = &self.wechatpay {
            out.push(Arc::new(w.build(&self.timeouts)?));
        }
        if let Some(a) = &self.alipay {
            out.push(Arc::new(a.build(&self.timeouts)?));
        }
        if let Some(u) = &self.unionpay {
            out.push(Arc::new(u.build(&self.timeouts)?));
        }
        Ok(out)
    }
}
