//! Alipay OpenAPI connector (`wallets.md` §2): face-to-face payment-code pay
//! (`alipay.trade.pay`, scene `bar_code`), dynamic QR (`alipay.trade.precreate`), query,
//! cancel (our "reverse"), close, refund and refund query, payment notifications, and the
//! daily `trade` bill (`alipay.data.dataservice.bill.downloadurl.query`, then a GET of the zip;
//! `bills.md` §2, parsed in `bill.rs`).
//!
//! Layout: `wire.rs` builds requests and maps replies (pure), `units.rs` converts amounts,
//! rates and times, `raw_json.rs` cuts the signed text out of replies, `sign.rs` holds the
//! RSA2 keys and the string-to-sign rules, and this file only sequences them around the
//! shared [`HttpClient`]. Key mode only: public-key certificates (`app_cert_sn`) are not
//! supported.
//!
//! Currency: CNY pricing always works. Non-CNY pricing (CAD, USD) needs a cross-border
//! account (`cross_border = true`), where `total_amount` is in the pricing currency and
//! `trans_currency`/`settle_currency` name it; on a domestic account it is `NotSupported`.

mod bill;
mod raw_json;
mod sign;
mod units;
mod wire;

#[cfg(test)]
mod bill_tests;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use chrono::Utc;
use qrgate_connector_api::{
    CallbackError, Capabilities, ChannelEvent, ChannelOrder, ChannelRefund, CodePaymentRequest,
    Connector, ConnectorError, HttpClient, HttpClientConfig, OrderRef, QrOrder, QrOrderRequest,
    RefundRef, RefundRequest, ReverseOutcome, Wallet,
};
use qrgate_domain::Currency;
use secrecy::{ExposeSecret, SecretString};

use sign::{AlipaySigner, AlipayVerifier};
use wire::{AlipayCallContext, AlipayMethod, AlipayRequest};

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";
/// Alipay stops redelivering a notification once it reads exactly this body.
const NOTIFICATION_ACK: &str = "success";

/// How to reach and authenticate with one Alipay app.
#[derive(Debug, Clone)]
pub struct AlipayConfig {
    /// The gateway: `https://openapi.alipay.com/gateway.do`, the sandbox's
    /// `https://openapi-sandbox.dl.alipaydev.com/gateway.do`, the cross-border
    /// `https://globalopenapi.alipay.com/gateway.do`, or our simulator.
    pub gateway_url: String,
    pub app_id: String,
    /// Our application private key: PKCS#8 or PKCS#1, PEM (bare Base64 DER is accepted too).
    pub app_private_key_pem: SecretString,
    /// Alipay's public key for this app: SPKI PEM (bare Base64 DER is accepted too).
    pub alipay_public_key_pem: String,
    /// The merchant's Alipay user id (`2088…`), sent as `seller_id` and checked on
    /// notifications when set.
    pub seller_id: Option<String>,
    /// A cross-border account: non-CNY pricing is sent with `trans_currency`/`settle_currency`.
    pub cross_border: bool,
    pub http: HttpClientConfig,
}

/// The Alipay connector. Stateless apart from its parsed keys; cheap to share in an `Arc`.
pub struct AlipayConnector {
    gateway_url: String,
    app_id: String,
    seller_id: Option<String>,
    cross_border: bool,
    signer: AlipaySigner,
    verifier: AlipayVerifier,
    http: HttpClient,
    capabilities: Capabilities,
}

impl std::fmt::Debug for AlipayConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlipayConnector")
            .field("gateway_url", &self.gateway_url)
            .field("app_id", &self.app_id)
            .field("seller_id", &self.seller_id)
            .field("cross_border", &self.cross_border)
            .finish_non_exhaustive()
    }
}

impl AlipayConnector {
    /// Parses both keys once and builds the HTTP client.
    ///
    /// Errors: `Credentials` for an unusable key (not RSA, not PEM/DER, shorter than 2048
    /// bits), an empty `app_id`, a `gateway_url` that is not an absolute http(s) URL, or an
    /// HTTP client that cannot be built from `http`.
    pub fn new(config: AlipayConfig) -> Result<Self, ConnectorError> {
        let signer = AlipaySigner::from_text(config.app_private_key_pem.expose_secret())?;
        let verifier = AlipayVerifier::from_text(&config.alipay_public_key_pem)?;
        if config.app_id.trim().is_empty() {
            return Err(ConnectorError::Credentials("alipay app_id is empty".into()));
        }
        check_gateway_url(&config.gateway_url)?;
        let http = HttpClient::new(Wallet::Alipay.as_str(), &config.http)
            .map_err(|e| ConnectorError::Credentials(e.to_string()))?;
        let currencies = if config.cross_border {
            Currency::ALL.to_vec()
        } else {
            vec![Currency::Cny]
        };
        Ok(AlipayConnector {
            gateway_url: config.gateway_url,
            app_id: config.app_id,
            seller_id: config.seller_id.filter(|s| !s.is_empty()),
            cross_border: config.cross_border,
            signer,
            verifier,
            http,
            capabilities: Capabilities {
                code_payment: true,
                qr_order: true,
                close: true,
                reverse: true,
                refund: true,
                currencies,
            },
        })
    }

    fn call_context(&self) -> AlipayCallContext<'_> {
        AlipayCallContext {
            app_id: &self.app_id,
            seller_id: self.seller_id.as_deref(),
            cross_border: self.cross_border,
            now: Utc::now(),
        }
    }

    /// Signs, posts and opens one request; the reply is verified before it is returned.
    async fn send(&self, request: AlipayRequest) -> Result<wire::AlipayReply, ConnectorError> {
        let sign = self.signer.sign(&request.sign_content())?;
        let body = request.form_body(&sign);
        let method = request.method;
        let response = self
            .http
            .post(
                method.name(),
                &self.gateway_url,
                FORM_CONTENT_TYPE,
                body.into_bytes(),
            )
            .await?;
        wire::open_reply(method, response.status, &response.body, &self.verifier)
    }
}

fn check_gateway_url(gateway_url: &str) -> Result<(), ConnectorError> {
    match url::Url::parse(gateway_url) {
        Ok(url) if matches!(url.scheme(), "https" | "http") => Ok(()),
        _ => Err(ConnectorError::Credentials(format!(
            "alipay gateway_url {gateway_url:?} is not an absolute http(s) URL"
        ))),
    }
}

#[async_trait]
impl Connector for AlipayConnector {
    fn wallet(&self) -> Wallet {
        Wallet::Alipay
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn pay_with_code(
        &self,
        req: &CodePaymentRequest,
    ) -> Result<ChannelOrder, ConnectorError> {
        let request = wire::pay_request(&self.call_context(), req)?;
        let reply = self.send(request).await?;
        wire::pay_outcome(&reply, req)
    }

    async fn create_qr_order(&self, req: &QrOrderRequest) -> Result<QrOrder, ConnectorError> {
        let request = wire::precreate_request(&self.call_context(), req)?;
        let reply = self.send(request).await?;
        wire::precreate_outcome(&reply, &req.out_trade_no)
    }

    /// `ACQ.TRADE_NOT_EXIST` comes back as `PendingUser` with that wallet code; see
    /// `wire::query_outcome` for why the engine, not the connector, interprets it.
    async fn query_order(&self, order: &OrderRef) -> Result<ChannelOrder, ConnectorError> {
        let out_trade_no = order.out_trade_no.as_str();
        let request = wire::trade_request(&self.call_context(), AlipayMethod::Query, out_trade_no)?;
        let reply = self.send(request).await?;
        wire::query_outcome(&reply, out_trade_no)
    }

    async fn close_order(&self, order: &OrderRef) -> Result<(), ConnectorError> {
        let out_trade_no = order.out_trade_no.as_str();
        let request = wire::trade_request(&self.call_context(), AlipayMethod::Close, out_trade_no)?;
        let reply = self.send(request).await?;
        wire::close_outcome(&reply, out_trade_no)
    }

    async fn reverse_order(&self, order: &OrderRef) -> Result<ReverseOutcome, ConnectorError> {
        let out_trade_no = order.out_trade_no.as_str();
        let request =
            wire::trade_request(&self.call_context(), AlipayMethod::Cancel, out_trade_no)?;
        let reply = self.send(request).await?;
        wire::cancel_outcome(&reply, out_trade_no)
    }

    async fn refund(&self, req: &RefundRequest) -> Result<ChannelRefund, ConnectorError> {
        let request = wire::refund_request(&self.call_context(), req)?;
        let reply = self.send(request).await?;
        wire::refund_outcome(&reply, req)
    }

    async fn query_refund(
        &self,
        order: &OrderRef,
        refund: &RefundRef,
    ) -> Result<ChannelRefund, ConnectorError> {
        let (out_trade_no, out_refund_no) =
            (order.out_trade_no.as_str(), refund.out_refund_no.as_str());
        let request =
            wire::refund_query_request(&self.call_context(), out_trade_no, out_refund_no)?;
        let reply = self.send(request).await?;
        // A domestic account refunds in yuan; a cross-border reply without a currency leaves
        // the amount unknown rather than guessed.
        let fallback = (!self.cross_border).then_some(Currency::Cny);
        wire::refund_query_outcome(&reply, out_trade_no, out_refund_no, fallback)
    }

    /// The download-URL query (signed, its answer verified like every other), then a GET of
    /// `bill_download_url` within the bill bounds; the zip is parsed in `bill.rs`. A day that
    /// has not ended in Beijing is `NotReady` without a call; `isp.bill_not_exist` is
    /// `NotReady` or `NoBill` by `wire::bill_surely_due`.
    async fn download_bill(
        &self,
        day: chrono::NaiveDate,
    ) -> Result<qrgate_connector_api::WalletBill, qrgate_connector_api::BillError> {
        let now = Utc::now();
        if crate::bill_file::beijing_day_not_over(day, now) {
            return Err(crate::bill_file::too_recent(day));
        }
        let request = wire::bill_url_request(&self.call_context(), day)?;
        let reply = self.send(request).await?;
        let url = wire::bill_url_outcome(&reply, day, now)?;
        // The URL is short-lived and carries a token: fetched at once, never logged.
        let response = self
            .http
            .get_bounded(
                "alipay.bill.download",
                &url,
                crate::bill_file::download_limit(),
            )
            .await?;
        bill::open_bill_download(&response, &url, day)
    }

    fn verify_callback(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<ChannelEvent, CallbackError> {
        if let Some(content_type) = content_type {
            if !content_type
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
            {
                return Err(CallbackError::Malformed(format!(
                    "expected a form body, got {content_type}"
                )));
            }
        }
        let order = wire::notification_order(
            body,
            &self.verifier,
            &self.app_id,
            self.seller_id.as_deref(),
        )?;
        Ok(ChannelEvent {
            order,
            ack_body: NOTIFICATION_ACK.to_owned(),
            ack_content_type: "text/plain",
        })
    }
}
