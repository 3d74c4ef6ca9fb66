//! WeChat Pay API v2 connector (`wallets.md` §1): payment-code pay (micropay), merchant QR
//! orders (unifiedorder NATIVE), query, close, reverse, refund and refund query, the wallet's
//! exchange rate (queryexchagerate, §1.9), payment notifications, and the daily bill
//! (`/pay/downloadbill`, `bills.md` §1; parsed in `bill.rs`).
//!
//! This file only sequences the pure pieces around the shared HTTP client: `wire.rs` builds
//! requests and maps answers, `sign.rs` signs and verifies. `/secapi/` calls (reverse,
//! refund) go through a second client that presents the merchant's certificate.
//! The connector is stateless and never logs a body, the payment code or the API key.

mod bill;
mod sign;
mod wire;

#[cfg(test)]
mod bill_tests;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use qrgate_connector_api::{
    BillError, CallbackError, Capabilities, ChannelEvent, ChannelOrder, ChannelRefund,
    CodePaymentRequest, Connector, ConnectorError, HttpClient, HttpClientConfig, OrderRef, QrOrder,
    QrOrderRequest, RefundRef, RefundRequest, ReverseOutcome, Wallet, WalletBill, WalletRate,
};
use qrgate_domain::Currency;
use rand::distributions::Alphanumeric;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

pub use sign::WechatPaySignType;
use wire::{WechatPayMerchant, WechatPayNotification, WechatPayReply, WechatPayRequest};

/// Length of `nonce_str`: the most the field takes (§1.3).
const NONCE_LENGTH: usize = 32;
const REQUEST_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// How to reach WeChat Pay and who we are there.
#[derive(Debug, Clone)]
pub struct WechatPayConfig {
    /// Where ordinary calls go, e.g. `https://api.mch.weixin.qq.com`, an overseas host, or the
    /// sandbox's URL. Paths are appended to it.
    pub base_url: String,
    /// Where `/secapi/` calls (reverse, refund) go: the same host in production; the sandbox
    /// serves them on a separate TLS port.
    pub secapi_base_url: String,
    pub appid: String,
    pub mch_id: String,
    /// The merchant under an institution or service provider (required in cross-border
    /// institution mode, §1.9).
    pub sub_mch_id: Option<String>,
    /// The 32-character key from the merchant portal: signs every message (§1.2) and, hashed,
    /// decrypts refund notifications (§1.7).
    pub api_key: SecretString,
    pub sign_type: WechatPaySignType,
    /// Client settings for ordinary calls.
    pub http: HttpClientConfig,
    /// Client settings for `/secapi/` calls; must carry the merchant API certificate and key
    /// (PEM) for mutual TLS.
    pub secapi_http: HttpClientConfig,
}

/// The WeChat Pay v2 connector. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct WechatPayConnector {
    config: WechatPayConfig,
    http: HttpClient,
    secapi_http: HttpClient,
    capabilities: Capabilities,
}

impl WechatPayConnector {
    /// Checks the configuration and builds both HTTP clients.
    ///
    /// Errors with [`ConnectorError::Credentials`] when an id or the API key is empty, a base
    /// URL is not http(s), or a client (certificate, root) cannot be built.
    pub fn new(config: WechatPayConfig) -> Result<Self, ConnectorError> {
        check_config(&config)?;
        let http = HttpClient::new(Wallet::WechatPay.as_str(), &config.http)
            .map_err(|e| ConnectorError::Credentials(e.to_string()))?;
        let secapi_http = HttpClient::new(Wallet::WechatPay.as_str(), &config.secapi_http)
            .map_err(|e| ConnectorError::Credentials(format!("secapi client: {e}")))?;
        if config.secapi_http.client_identity_pem.is_none() {
            // Not fatal, so that a deployment without reverse/refund rights can still take
            // payments; but reverse is how the closed loop ends, so say it loudly.
            tracing::warn!(
                wallet = "wechatpay",
                "no client certificate for /secapi/: reverse and refund will fail"
            );
        }
        let capabilities = Capabilities {
            code_payment: true,
            qr_order: true,
            close: true,
            reverse: true,
            refund: true,
            // Which currencies the merchant account may price in is decided by its contract
            // (§1.9), not by the protocol; the engine checks the merchant's own currency.
            currencies: Currency::ALL.to_vec(),
        };
        Ok(WechatPayConnector {
            config,
            http,
            secapi_http,
            capabilities,
        })
    }

    fn merchant(&self) -> WechatPayMerchant<'_> {
        WechatPayMerchant {
            appid: &self.config.appid,
            mch_id: &self.config.mch_id,
            sub_mch_id: self.config.sub_mch_id.as_deref(),
            sign_type: self.config.sign_type,
        }
    }

    /// Signs and sends one request, and opens the verified answer.
    async fn call(&self, request: WechatPayRequest) -> Result<WechatPayReply, ConnectorError> {
        let operation = request.operation;
        let (client, base_url) = if operation.needs_client_certificate() {
            (&self.secapi_http, &self.config.secapi_base_url)
        } else {
            (&self.http, &self.config.base_url)
        };
        let url = format!("{}{}", base_url.trim_end_matches('/'), operation.path());
        let body = request.into_signed_xml(&self.config.api_key)?;
        let response = client
            .post(
                operation.name(),
                &url,
                REQUEST_CONTENT_TYPE,
                body.into_bytes(),
            )
            .await?;
        wire::open_response(operation, &response, &self.merchant(), &self.config.api_key)
    }
}

fn check_config(config: &WechatPayConfig) -> Result<(), ConnectorError> {
    if config.appid.is_empty() || config.mch_id.is_empty() {
        return Err(ConnectorError::Credentials(
            "appid and mch_id are required".into(),
        ));
    }
    if config.sub_mch_id.as_deref() == Some("") {
        return Err(ConnectorError::Credentials(
            "sub_mch_id, when given, must not be empty".into(),
        ));
    }
    if config.api_key.expose_secret().is_empty() {
        return Err(ConnectorError::Credentials("api_key is required".into()));
    }
    for (name, base_url) in [
        ("base_url", &config.base_url),
        ("secapi_base_url", &config.secapi_base_url),
    ] {
        let parsed = url::Url::parse(base_url)
            .map_err(|e| ConnectorError::Credentials(format!("{name} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConnectorError::Credentials(format!(
                "{name} must be http or https"
            )));
        }
    }
    Ok(())
}

/// 32 random alphanumerics for `nonce_str`.
fn new_nonce() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(NONCE_LENGTH)
        .map(char::from)
        .collect()
}

#[async_trait]
impl Connector for WechatPayConnector {
    fn wallet(&self) -> Wallet {
        Wallet::WechatPay
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn pay_with_code(
        &self,
        req: &CodePaymentRequest,
    ) -> Result<ChannelOrder, ConnectorError> {
        let request = wire::build_micropay(&self.merchant(), req, &new_nonce())?;
        let reply = self.call(request).await?;
        wire::micropay_outcome(&reply, &req.out_trade_no)
    }

    async fn create_qr_order(&self, req: &QrOrderRequest) -> Result<QrOrder, ConnectorError> {
        let request = wire::build_unifiedorder(&self.merchant(), req, &new_nonce())?;
        let reply = self.call(request).await?;
        wire::unifiedorder_outcome(&reply, &req.out_trade_no)
    }

    async fn query_order(&self, order: &OrderRef) -> Result<ChannelOrder, ConnectorError> {
        let out_trade_no = order.out_trade_no.as_str();
        let request = wire::build_orderquery(&self.merchant(), out_trade_no, &new_nonce());
        let reply = self.call(request).await?;
        wire::orderquery_outcome(&reply, out_trade_no)
    }

    async fn close_order(&self, order: &OrderRef) -> Result<(), ConnectorError> {
        let out_trade_no = order.out_trade_no.as_str();
        let request = wire::build_closeorder(&self.merchant(), out_trade_no, &new_nonce());
        let reply = self.call(request).await?;
        wire::closeorder_outcome(&reply)
    }

    async fn reverse_order(&self, order: &OrderRef) -> Result<ReverseOutcome, ConnectorError> {
        let out_trade_no = order.out_trade_no.as_str();
        let request = wire::build_reverse(&self.merchant(), out_trade_no, &new_nonce());
        let reply = self.call(request).await?;
        wire::reverse_outcome(&reply, out_trade_no)
    }

    async fn refund(&self, req: &RefundRequest) -> Result<ChannelRefund, ConnectorError> {
        let request = wire::build_refund(&self.merchant(), req, &new_nonce())?;
        let reply = self.call(request).await?;
        wire::refund_outcome(&reply, &req.out_trade_no, &req.out_refund_no)
    }

    async fn query_refund(
        &self,
        order: &OrderRef,
        refund: &RefundRef,
    ) -> Result<ChannelRefund, ConnectorError> {
        let (out_trade_no, out_refund_no) =
            (order.out_trade_no.as_str(), refund.out_refund_no.as_str());
        let request = wire::build_refundquery(&self.merchant(), out_refund_no, &new_nonce());
        let reply = self.call(request).await?;
        wire::refundquery_outcome(&reply, out_trade_no, out_refund_no)
    }

    /// Asks `/pay/queryexchagerate` for `date` as WeChat's (Beijing) calendar day; the answer's
    /// signature and merchant ids are checked like every other answer's.
    async fn exchange_rate(
        &self,
        currency: Currency,
        date: chrono::NaiveDate,
    ) -> Result<WalletRate, ConnectorError> {
        let request = wire::build_queryexchagerate(&self.merchant(), currency, date, &new_nonce());
        let reply = self.call(request).await?;
        wire::exchange_rate_outcome(&reply, currency)
    }

    /// `POST /pay/downloadbill` for the ALL bill of `day` (gzipped), read within the bill
    /// bounds (`bill_file.rs`). A day that has not ended in Beijing is `NotReady` without a
    /// call. The answer is a bill (text or gzip) or an unsigned XML error: `No Bill Exist` →
    /// `NoBill`, `Bill Creating` → `NotReady`, `SYSTEMERROR` → `Call(OutcomeUnknown)`, any
    /// other → `Call(Rejected)`; see `bill.rs` for the parsing.
    async fn download_bill(&self, day: chrono::NaiveDate) -> Result<WalletBill, BillError> {
        bill::check_day(day, chrono::Utc::now())?;
        let request = wire::build_downloadbill(&self.merchant(), day, &new_nonce());
        let operation = request.operation;
        let url = format!(
            "{}{}",
            self.config.base_url.trim_end_matches('/'),
            operation.path()
        );
        let body = request.into_signed_xml(&self.config.api_key)?;
        let response = self
            .http
            .post_bounded(
                operation.name(),
                &url,
                REQUEST_CONTENT_TYPE,
                body.into_bytes(),
                crate::bill_file::download_limit(),
            )
            .await?;
        bill::open_bill_response(&response, &self.config.mch_id, day)
    }

    /// Payment notifications become a `Paid` order; refund notifications are authenticated
    /// but refused as `Malformed`, because [`ChannelEvent`] carries payments only: refunds
    /// are settled by `query_refund`, and we never ask for refund notifications.
    fn verify_callback(
        &self,
        _content_type: Option<&str>,
        body: &[u8],
    ) -> Result<ChannelEvent, CallbackError> {
        match wire::open_notification(body, &self.merchant(), &self.config.api_key)? {
            WechatPayNotification::Payment(order) => Ok(ChannelEvent {
                order,
                ack_body: wire::WECHAT_PAY_ACK_BODY.to_owned(),
                ack_content_type: wire::WECHAT_PAY_ACK_CONTENT_TYPE,
            }),
            WechatPayNotification::Refund(notice) => {
                tracing::info!(
                    wallet = "wechatpay",
                    order.out_trade_no = %notice.out_trade_no,
                    refund.out_refund_no = %notice.out_refund_no,
                    refund.status = %notice.refund_status,
                    "refund notification received; refunds are settled by query"
                );
                Err(CallbackError::Malformed(
                    "refund notification: not a payment event; the refund is settled by query"
                        .into(),
                ))
            }
        }
    }
}
