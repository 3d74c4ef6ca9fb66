//! UnionPay connector: China UnionPay ACP 5.1.0 QR payments (`wallets.md` §3.1), following
//! the UnionPay profile the project fixed for both this connector and the sandbox.
//!
//! Layout: `wire.rs` builds requests and maps answers (pure), `sign.rs` signs requests and
//! checks the certificate and signature of answers and notifications, and this file only
//! sequences them around the shared [`HttpClient`].
//!
//! The profile's decisions, as this connector applies them:
//! * Transport: form bodies both ways (`application/x-www-form-urlencoded;charset=UTF-8`,
//!   values URL-encoded), POSTed to `<base_url>/gateway/api/backTransReq.do` (consume,
//!   apply-QR, cancel, refund) or `<base_url>/gateway/api/queryTrans.do` (query).
//! * Common fields: `version=5.1.0`, `encoding=utf-8`, `signMethod=01`, `certId` (decimal
//!   serial of the merchant certificate), `txnType`/`txnSubType`, `bizType=000000`,
//!   `accessType=0`, `channelType=08`, `merId`, `orderId` (8–32 alphanumerics; checked before
//!   sending), `txnTime` (Beijing `yyyyMMddHHmmss`, from the engine's `created_at`, so the
//!   same order can be found again); money as `txnAmt` (integer minor units) and
//!   `currencyCode` (numeric ISO 4217: 156 CNY, 124 CAD, 840 USD).
//! * Signatures: SHA-256 lower-hex of the sorted `k=v&…` string, RSA-signed (`sign.rs`).
//!   Answers and notifications must carry `signPubKeyCert` issued by the configured root and
//!   valid now; an unsigned or badly signed answer is a `BadResponse`, never an outcome.
//! * Codes: see `wire.rs`. A consume answering `00` is paid (the profile's reading of
//!   `wallets.md` open point 11); `05` waits for the customer; `03`/`04` are unknown.
//! * `orderId` = `out_trade_no` for orders and `out_refund_no` for refunds; a cancel gets a
//!   fresh `orderId` (`C` + its `txnTime` + 17 random alphanumerics).
//!
//! What UnionPay does not have, and what the connector does instead:
//! * No close for an unpaid QR order: [`Connector::close_order`] queries; unpaid or unknown
//!   to UnionPay → `Ok(())`, because the QR stops being payable at its `payTimeout`, which
//!   is the engine's `expires_at`; paid → `Declined { ORDER_PAID }`.
//! * A cancel needs the original `txnAmt`, which `OrderRef` does not carry, so
//!   [`Connector::reverse_order`] always queries first; a consume UnionPay never saw, or
//!   one already cancelled or failed, needs no cancel (`Done`).
//! * `origRespCode=31` does not say whether a consume was cancelled or a QR order closed:
//!   the query returns `Closed` with wallet code `31` and the engine reads it for its order.
//! * Payment notifications are acknowledged by HTTP 200; the body (`ok`) is irrelevant.
//! * Bills: the 76/01 file transfer (`bills.md` §3) goes to `file_base_url` (production:
//!   `https://filedownload.95516.com/`), its answer verified like every other; the ZM file in
//!   it is parsed in `bill.rs`.

mod bill;
mod sign;
mod wire;

#[cfg(test)]
mod bill_tests;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use qrgate_connector_api::{
    CallbackError, Capabilities, ChannelEvent, ChannelOrder, ChannelRefund, CodePaymentRequest,
    Connector, ConnectorError, HttpClient, HttpClientConfig, OrderRef, QrOrder, QrOrderRequest,
    RefundRef, RefundRequest, ReverseOutcome, Wallet,
};
use qrgate_domain::Currency;
use rand::distributions::Alphanumeric;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

use sign::{UnionPaySigner, UnionPaySigningPin, UnionPayTrust};
use wire::{
    UnionPayAnswer, UnionPayMerchant, UnionPayQueried, UnionPayRequest, UnionPayReversePlan,
};

/// The owner field of China UnionPay's production signing certificates.
pub const UNIONPAY_SIGNING_CERT_OWNER: &str = "中国银联股份有限公司";

/// UnionPay only needs HTTP 200; the body is for people reading logs.
const NOTIFICATION_ACK: &str = "ok";
const NOTIFICATION_ACK_CONTENT_TYPE: &str = "text/plain";

/// How to reach UnionPay and who we are there.
#[derive(Debug, Clone)]
pub struct UnionPayConfig {
    /// `https://gateway.95516.com` in production, `https://gateway.test.95516.com` for
    /// UnionPay's test bed, `<sandbox>/unionpay` for ours. Paths are appended to it.
    pub base_url: String,
    /// The merchant number (`merId`, 15 digits at UnionPay).
    pub mer_id: String,
    /// The decimal serial number of the merchant's signing certificate (`certId`).
    pub cert_id: String,
    /// The merchant's RSA private key (PKCS#8 or PKCS#1 PEM) matching that certificate.
    pub merchant_private_key_pem: SecretString,
    /// The UnionPay root certificate (PEM) every answer's `signPubKeyCert` must be issued by.
    /// More than one PEM block may be given; each is trusted as an issuer (in production,
    /// UnionPay's middle certificate is the direct issuer of its signing certificates).
    pub root_cert_pem: String,
    /// The owner field of UnionPay's signing certificate (the third `@`-separated field of
    /// its subject's CN): [`UNIONPAY_SIGNING_CERT_OWNER`] in production, `00040000:SIGN` on
    /// UnionPay's test bed and in the sandbox. A `signPubKeyCert` issued by the root to anyone
    /// else (a merchant) is refused.
    pub signing_cert_owner: String,
    /// Optional SHA-256 fingerprints (hex) of the accepted signing certificates; empty
    /// accepts any certificate of the right owner issued by the root.
    pub signing_cert_sha256: Vec<String>,
    /// The notification URL sent when a request has none of its own (a consume).
    pub back_url: String,
    /// Where the file transfer (76/01, the daily reconciliation file) is POSTed, as is: a
    /// different host from `base_url` in production (`https://filedownload.95516.com/`; test
    /// bed `https://filedownload.test.95516.com/`). [`crate::UnionPaySettings`] fills it in.
    pub file_base_url: String,
    pub http: HttpClientConfig,
}

/// The UnionPay connector. Stateless apart from its parsed keys and the few UnionPay signing
/// certificates it has already checked (`sign.rs`); cheap to share in an `Arc`.
pub struct UnionPayConnector {
    base_url: String,
    mer_id: String,
    cert_id: String,
    back_url: String,
    file_base_url: String,
    signer: UnionPaySigner,
    trust: UnionPayTrust,
    http: HttpClient,
    capabilities: Capabilities,
}

impl std::fmt::Debug for UnionPayConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnionPayConnector")
            .field("base_url", &self.base_url)
            .field("mer_id", &self.mer_id)
            .field("cert_id", &self.cert_id)
            .field("back_url", &self.back_url)
            .finish_non_exhaustive()
    }
}

impl UnionPayConnector {
    /// Parses the merchant key and the root certificate(s) once and builds the HTTP client.
    ///
    /// Errors: `Credentials` for an unusable key (not RSA PEM, under 2048 bits), a root that
    /// is not an RSA certificate (or whose self-signature fails), an empty `mer_id`, a
    /// `cert_id` that is not a decimal serial, a `base_url` or `back_url` that is not an
    /// absolute http(s) URL, or an HTTP client that cannot be built.
    pub fn new(config: UnionPayConfig) -> Result<Self, ConnectorError> {
        let signer = UnionPaySigner::from_pem(config.merchant_private_key_pem.expose_secret())?;
        let pin = UnionPaySigningPin::new(&config.signing_cert_owner, &config.signing_cert_sha256)?;
        let trust = UnionPayTrust::from_pem(&config.root_cert_pem, pin)?;
        if config.mer_id.trim().is_empty() {
            return Err(ConnectorError::Credentials(
                "unionpay mer_id is empty".into(),
            ));
        }
        if config.cert_id.is_empty() || !config.cert_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConnectorError::Credentials(
                "unionpay cert_id must be the certificate's decimal serial number".into(),
            ));
        }
        check_url("base_url", &config.base_url)?;
        check_url("back_url", &config.back_url)?;
        check_url("file_base_url", &config.file_base_url)?;
        let http = HttpClient::new(Wallet::UnionPay.as_str(), &config.http)
            .map_err(|e| ConnectorError::Credentials(e.to_string()))?;
        Ok(UnionPayConnector {
            base_url: config.base_url,
            mer_id: config.mer_id,
            cert_id: config.cert_id,
            back_url: config.back_url,
            file_base_url: config.file_base_url,
            signer,
            trust,
            http,
            capabilities: Capabilities {
                code_payment: true,
                qr_order: true,
                close: true,
                reverse: true,
                refund: true,
                // `currencyCode` names the pricing currency; which ones a merchant may use is
                // its acquiring contract's business, checked by the engine.
                currencies: Currency::ALL.to_vec(),
            },
        })
    }

    fn merchant(&self) -> UnionPayMerchant<'_> {
        UnionPayMerchant {
            mer_id: &self.mer_id,
            cert_id: &self.cert_id,
            back_url: &self.back_url,
        }
    }

    /// Signs, posts and opens one request; the answer is verified before it is returned.
    async fn call(&self, request: &UnionPayRequest) -> Result<UnionPayAnswer, ConnectorError> {
        let signature = self.signer.sign(request.fields())?;
        let body = request.form_body(&signature);
        let url = format!(
            "{}{}",
            self.base_url.trim_end_matches('/'),
            request.txn.path()
        );
        let response = self
            .http
            .post(
                request.txn.name(),
                &url,
                wire::FORM_CONTENT_TYPE,
                body.into_bytes(),
            )
            .await?;
        wire::open_answer(
            request,
            response.status,
            &response.body,
            &self.trust,
            Utc::now(),
            &self.mer_id,
        )
    }

    /// Queries the transaction sent as `order_id` at `txn_time`.
    async fn query(
        &self,
        order_id: &str,
        txn_time: DateTime<Utc>,
    ) -> Result<UnionPayQueried, ConnectorError> {
        let request = wire::query_request(&self.merchant(), order_id, txn_time)?;
        let answer = self.call(&request).await?;
        wire::parse_query(&answer)
    }
}

fn check_url(name: &str, value: &str) -> Result<(), ConnectorError> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "https" | "http") => Ok(()),
        _ => Err(ConnectorError::Credentials(format!(
            "unionpay {name} {value:?} is not an absolute http(s) URL"
        ))),
    }
}

/// The random part of a cancel's `orderId`.
fn cancel_suffix() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(wire::CANCEL_ORDER_ID_SUFFIX_LEN)
        .map(char::from)
        .collect()
}

#[async_trait]
impl Connector for UnionPayConnector {
    fn wallet(&self) -> Wallet {
        Wallet::UnionPay
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn pay_with_code(
        &self,
        req: &CodePaymentRequest,
    ) -> Result<ChannelOrder, ConnectorError> {
        let request = wire::consume_request(&self.merchant(), req)?;
        let answer = self.call(&request).await?;
        wire::consume_outcome(&answer, &req.out_trade_no)
    }

    async fn create_qr_order(&self, req: &QrOrderRequest) -> Result<QrOrder, ConnectorError> {
        let request = wire::apply_qr_request(&self.merchant(), req)?;
        let answer = self.call(&request).await?;
        wire::apply_qr_outcome(&answer, &req.out_trade_no)
    }

    /// See `wire::query_order_outcome`: `34` comes back as `Failed` with wallet code `34`,
    /// and `origRespCode=31` as `Closed` with wallet code `31`; the engine reads both in the
    /// light of the order it asked about.
    async fn query_order(&self, order: &OrderRef) -> Result<ChannelOrder, ConnectorError> {
        let queried = self.query(&order.out_trade_no, order.created_at).await?;
        Ok(wire::query_order_outcome(&queried, &order.out_trade_no))
    }

    /// A query, since UnionPay cannot close an unpaid QR (module docs, `wire::close_outcome`).
    async fn close_order(&self, order: &OrderRef) -> Result<(), ConnectorError> {
        let queried = self.query(&order.out_trade_no, order.created_at).await?;
        wire::close_outcome(&queried)
    }

    /// Query, then cancel (31/00) when there is something to cancel (`wire::reverse_plan`).
    async fn reverse_order(&self, order: &OrderRef) -> Result<ReverseOutcome, ConnectorError> {
        let queried = self.query(&order.out_trade_no, order.created_at).await?;
        let (orig_qry_id, amount) =
            match wire::reverse_plan(&queried, order.channel_ref.as_deref())? {
                UnionPayReversePlan::Settled(outcome) => return Ok(outcome),
                UnionPayReversePlan::Cancel {
                    orig_qry_id,
                    amount,
                } => (orig_qry_id, amount),
            };
        let now = Utc::now();
        let cancel_order_id = wire::cancel_order_id(now, &cancel_suffix())?;
        tracing::info!(
            wallet = "unionpay",
            order.out_trade_no = %order.out_trade_no,
            cancel.order_id = %cancel_order_id,
            "cancelling consume"
        );
        let request = wire::cancel_request(
            &self.merchant(),
            &cancel_order_id,
            now,
            &orig_qry_id,
            amount,
        )?;
        let answer = self.call(&request).await?;
        wire::cancel_outcome(&answer)
    }

    /// 04/00 by the order's `queryId`; when the engine does not know it yet, one query of
    /// the order finds it first (`wire::refund_orig_qry_id`).
    async fn refund(&self, req: &RefundRequest) -> Result<ChannelRefund, ConnectorError> {
        let orig_qry_id = match req.order.channel_ref.as_deref().filter(|r| !r.is_empty()) {
            Some(query_id) => query_id.to_owned(),
            None => {
                let queried = self
                    .query(&req.order.out_trade_no, req.order.created_at)
                    .await?;
                wire::refund_orig_qry_id(&queried)?
            }
        };
        let request = wire::refund_request(&self.merchant(), req, &orig_qry_id)?;
        let answer = self.call(&request).await?;
        wire::refund_outcome(&answer, &req.out_refund_no)
    }

    /// A query of the refund's own `orderId` + `txnTime`; the order is not needed.
    async fn query_refund(
        &self,
        _order: &OrderRef,
        refund: &RefundRef,
    ) -> Result<ChannelRefund, ConnectorError> {
        let queried = self.query(&refund.out_refund_no, refund.created_at).await?;
        Ok(wire::refund_query_outcome(&queried, &refund.out_refund_no))
    }

    /// The 76/01 file transfer of the settle date `day` to `file_base_url`, read within the
    /// bill bounds, its answer verified with the pinned signing certificate like every other.
    /// A settle date not over yet (UnionPay's day ends at 23:00 Beijing) is `NotReady`
    /// without a call; `98` is `NotReady`, `34` `NoBill` (`bill.rs`).
    async fn download_bill(
        &self,
        day: chrono::NaiveDate,
    ) -> Result<qrgate_connector_api::WalletBill, qrgate_connector_api::BillError> {
        let now = Utc::now();
        if bill::settle_day_not_over(day, now) {
            return Err(crate::bill_file::too_recent(day));
        }
        let request = UnionPayRequest::file_transfer(&self.merchant(), day, now)?;
        let signature = self.signer.sign(request.fields())?;
        let body = request.form_body(&signature);
        let response = self
            .http
            .post_bounded(
                request.txn.name(),
                &self.file_base_url,
                wire::FORM_CONTENT_TYPE,
                body.into_bytes(),
                crate::bill_file::download_limit(),
            )
            .await?;
        let answer = wire::open_answer(
            &request,
            response.status,
            &response.body,
            &self.trust,
            Utc::now(),
            &self.mer_id,
        )?;
        bill::open_file_answer(&answer, day, &self.mer_id)
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
        // Reading the clock is not IO; certificate validity needs "now".
        let order = wire::notification_order(body, &self.trust, Utc::now(), &self.mer_id)?;
        Ok(ChannelEvent {
            order,
            ack_body: NOTIFICATION_ACK.to_owned(),
            ack_content_type: NOTIFICATION_ACK_CONTENT_TYPE,
        })
    }
}
