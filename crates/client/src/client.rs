//! [`PosClient`]: one OTTPAY exchange per call, over HTTP.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use qrgate_ottpay::{
    Action, ActivePayRequest, ActivePayResponse, Data, ExRateQueryRequest, ExRateQueryResponse,
    FieldError, OrderStatus, PassivePayRequest, PassivePayResponse, RefundQueryRequest,
    RefundRequest, RefundResponse, RequestEnvelope, ResponseEnvelope, RspCode, SignKey,
    StatusQueryRequest, StatusQueryResponse,
};
use reqwest::header::{ACCEPT, CONTENT_TYPE};

/// How to reach the gateway and who the POS is.
#[derive(Clone)]
pub struct PosConfig {
    /// The gateway's OTTPAY endpoint, e.g. `https://pay.example.com/processV2`.
    pub endpoint: String,
    /// The merchant id (`ON00004652`): selects the sign key on the gateway's side.
    pub merchant_id: String,
    /// The merchant's sign key, used verbatim. Never sent; `Debug` does not show it.
    pub sign_key: String,
    /// The terminal number, sent in every envelope when set.
    pub terminal_no: Option<String>,
    /// The operator (10 digits, e.g. `0000000696`): sent in every envelope, and in the data
    /// of `PASSIVEPAY` and `ACTIVEPAY` requests that name no operator of their own.
    pub operator_id: Option<String>,
    /// How long one exchange may take, from connecting to the last byte of the answer.
    /// A payment can wait on the wallet: allow some tens of seconds.
    pub timeout: Duration,
}

impl PosConfig {
    /// A configuration without terminal or operator, with a 30 s timeout.
    pub fn new(
        endpoint: impl Into<String>,
        merchant_id: impl Into<String>,
        sign_key: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            merchant_id: merchant_id.into(),
            sign_key: sign_key.into(),
            terminal_no: None,
            operator_id: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for PosConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosConfig")
            .field("endpoint", &self.endpoint)
            .field("merchant_id", &self.merchant_id)
            .field("sign_key", &"***")
            .field("terminal_no", &self.terminal_no)
            .field("operator_id", &self.operator_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The answer's `rsp_code`: one of the codes of the protocol, or the text as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    /// A code of the protocol (Appendix B).
    Known(RspCode),
    /// Any other text, exactly as received.
    Unknown(String),
}

impl Code {
    /// Reads a wire `rsp_code`.
    pub fn parse(text: &str) -> Self {
        match RspCode::parse(text) {
            Some(code) => Self::Known(code),
            None => Self::Unknown(text.to_owned()),
        }
    }

    /// The wire text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(code) => code.as_str(),
            Self::Unknown(text) => text,
        }
    }

    /// The protocol's code, if it is one.
    pub fn known(&self) -> Option<RspCode> {
        match self {
            Self::Known(code) => Some(*code),
            Self::Unknown(_) => None,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<RspCode> for Code {
    fn eq(&self, other: &RspCode) -> bool {
        self.known() == Some(*other)
    }
}

/// What the gateway answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    /// The outcome, e.g. `SUCCESS`, `PROCESSING`, `FAIL`.
    pub rsp_code: Code,
    /// The gateway's message (`success`, or why it refused).
    pub rsp_msg: String,
    /// The answer's data as the action's typed response, when the data opened with the
    /// sign key, its digest verified, and it has that type's fields. Always present on
    /// `SUCCESS`. On other codes it is `None` when the data does not open (a refusal
    /// sealed with the empty key) or has another shape (e.g. `{}`, or a `PROCESSING`
    /// payment's `{order_id, order_status}`): see [`Answer::raw`].
    pub data: Option<T>,
    /// The answer's data as a JSON object, whatever its shape, when it opened with the sign
    /// key and its digest verified; `None` when it did not.
    pub raw: Option<Data>,
}

impl<T> Answer<T> {
    /// True when `rsp_code` is `SUCCESS`.
    pub fn is_success(&self) -> bool {
        self.rsp_code == RspCode::Success
    }

    /// True when `rsp_code` is `PROCESSING` (e.g. the customer is entering their wallet
    /// password): ask with `STATUS_QUERY` until the order is final.
    pub fn is_processing(&self) -> bool {
        self.rsp_code == RspCode::Processing
    }

    /// `order_id` of the verified data, whatever its shape.
    pub fn order_id(&self) -> Option<&str> {
        self.raw.as_ref()?.get("order_id")?.as_str()
    }

    /// `order_status` of the verified data, whatever its shape, when it is a known status.
    pub fn order_status(&self) -> Option<OrderStatus> {
        OrderStatus::parse(self.raw.as_ref()?.get("order_status")?.as_str()?)
    }
}

/// Why a call has no [`Answer`].
///
/// What matters most to a POS is whether the request can have been processed:
/// [`ClientError::may_have_been_processed`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration cannot be used (e.g. the endpoint is not an http(s) URL).
    #[error("invalid POS configuration: {0}")]
    Config(String),
    /// The gateway could not be reached (no connection could be made): **the request was
    /// not sent**, nothing happened, it is safe to send it again.
    #[error("cannot reach the gateway at {endpoint}: {reason} (the request was not sent)")]
    Unavailable {
        /// The endpoint called.
        endpoint: String,
        /// What went wrong, e.g. `connection refused`.
        reason: String,
    },
    /// The request was sent but no complete answer came back in time (a timeout, or the
    /// connection broke). **The gateway may have processed it**: for a payment, ask with
    /// `STATUS_QUERY` for the same `order_id`; never send the payment again blindly.
    #[error(
        "no answer to {action} from the gateway: {reason} (it may have been processed; \
         ask with STATUS_QUERY before sending it again)"
    )]
    OutcomeUnknown {
        /// The action sent.
        action: Action,
        /// What went wrong, e.g. `operation timed out`.
        reason: String,
    },
    /// Something answered, but not with an OTTPAY envelope (e.g. a proxy's error page).
    /// The request may have been processed behind it.
    #[error("the answer to {action} is not an OTTPAY envelope (HTTP {http_status}): {reason}")]
    NotOttpay {
        /// The action sent.
        action: Action,
        /// The answer's HTTP status.
        http_status: u16,
        /// Why the body is not an envelope.
        reason: String,
    },
    /// A `SUCCESS` answer whose data does not open with the sign key or whose digest does
    /// not match: a wrong key, or a tampered or forged answer. Do not trust it.
    #[error("the SUCCESS answer to {action} does not verify with the sign key: {reason}")]
    Unverified {
        /// The action sent.
        action: Action,
        /// Why it does not verify.
        reason: String,
    },
    /// A `SUCCESS` answer that verified but lacks a field of the action's response, or
    /// has an invalid one.
    #[error("the SUCCESS answer to {action} verified, but its data is not valid: {reason}")]
    BadData {
        /// The action sent.
        action: Action,
        /// Which field is wrong.
        reason: String,
    },
}

impl ClientError {
    /// True when the request may have reached the gateway and been acted on: every error
    /// but [`ClientError::Config`] and [`ClientError::Unavailable`]. After a payment
    /// request, such an error means: ask with `STATUS_QUERY`, do not charge again.
    pub fn may_have_been_processed(&self) -> bool {
        !matches!(self, Self::Config(_) | Self::Unavailable { .. })
    }
}

/// An OTTPAY POS client for one merchant (and optionally one terminal and operator).
///
/// Cheap to clone (the HTTP connection pool is shared). Each method is one request and
/// one answer; nothing is retried, since only the caller knows whether retrying is safe.
#[derive(Clone)]
pub struct PosClient {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    merchant_id: String,
    key: SignKey,
    terminal_no: Option<String>,
    operator_id: Option<String>,
}

impl fmt::Debug for PosClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("merchant_id", &self.merchant_id)
            .field("terminal_no", &self.terminal_no)
            .field("operator_id", &self.operator_id)
            .finish_non_exhaustive()
    }
}

impl PosClient {
    /// A client for `config`. Fails with [`ClientError::Config`] when the endpoint is not
    /// an `http` or `https` URL or the merchant id or sign key is empty.
    pub fn new(config: PosConfig) -> Result<Self, ClientError> {
        let endpoint = reqwest::Url::parse(config.endpoint.trim()).map_err(|e| {
            ClientError::Config(format!("endpoint {:?} is not a URL: {e}", config.endpoint))
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "endpoint {:?} must start with http:// or https://",
                config.endpoint
            )));
        }
        if config.merchant_id.is_empty() {
            return Err(ClientError::Config("the merchant id is empty".into()));
        }
        if config.sign_key.is_empty() {
            return Err(ClientError::Config("the sign key is empty".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(Self {
            http,
            endpoint,
            merchant_id: config.merchant_id,
            key: SignKey::new(config.sign_key),
            terminal_no: non_empty(config.terminal_no),
            operator_id: non_empty(config.operator_id),
        })
    }

    /// The endpoint called.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// The merchant id.
    pub fn merchant_id(&self) -> &str {
        &self.merchant_id
    }

    /// The configured operator, if any.
    pub fn operator_id(&self) -> Option<&str> {
        self.operator_id.as_deref()
    }

    /// The configured terminal, if any.
    pub fn terminal_no(&self) -> Option<&str> {
        self.terminal_no.as_deref()
    }

    /// `PASSIVEPAY`: charge a payment code scanned from the customer's phone.
    ///
    /// Answers: `SUCCESS` (paid; data says so), `PROCESSING` (the customer must confirm:
    /// poll [`PosClient::status_query`]), or a refusal. The configured operator fills in
    /// a missing `operator_id`. Set `order_id` yourself ([`crate::new_order_id`]) so that
    /// an [`ClientError::OutcomeUnknown`] can be followed by a status query.
    pub async fn passive_pay(
        &self,
        request: &PassivePayRequest,
    ) -> Result<Answer<PassivePayResponse>, ClientError> {
        let mut request = request.clone();
        if request.operator_id.is_none() {
            request.operator_id.clone_from(&self.operator_id);
        }
        let envelope_operator = self
            .operator_id
            .as_deref()
            .or(request.operator_id.as_deref());
        self.exchange(
            Action::PassivePay,
            envelope_operator,
            &request.to_data(),
            PassivePayResponse::from_data,
        )
        .await
    }

    /// `STATUS_QUERY`: the state of an order (payment) by its `order_id`.
    pub async fn status_query(
        &self,
        order_id: &str,
    ) -> Result<Answer<StatusQueryResponse>, ClientError> {
        let request = StatusQueryRequest {
            order_id: order_id.to_owned(),
        };
        self.exchange(
            Action::StatusQuery,
            self.operator_id.as_deref(),
            &request.to_data(),
            StatusQueryResponse::from_data,
        )
        .await
    }

    /// `EX_RATE_QUERY`: the exchange rate to CNY of `fee_type` (`CAD`, `USD`, `CNY`), or
    /// with `None` whatever the gateway answers without one (qrgate: the merchant's own
    /// currency).
    pub async fn exchange_rate(
        &self,
        fee_type: Option<&str>,
    ) -> Result<Answer<ExRateQueryResponse>, ClientError> {
        let request = ExRateQueryRequest {
            fee_type: fee_type.map(str::to_owned),
        };
        self.exchange(
            Action::ExRateQuery,
            self.operator_id.as_deref(),
            &request.to_data(),
            ExRateQueryResponse::from_data,
        )
        .await
    }

    /// `ACTIVEPAY`: create an order and get the QR content (`code_url`) for the customer
    /// to scan; the outcome comes by call-back or [`PosClient::status_query`]. The
    /// configured operator fills in a missing `operator_id`.
    pub async fn active_pay(
        &self,
        request: &ActivePayRequest,
    ) -> Result<Answer<ActivePayResponse>, ClientError> {
        let mut request = request.clone();
        if request.operator_id.is_none() {
            request.operator_id.clone_from(&self.operator_id);
        }
        let envelope_operator = self
            .operator_id
            .as_deref()
            .or(request.operator_id.as_deref());
        self.exchange(
            Action::ActivePay,
            envelope_operator,
            &request.to_data(),
            ActivePayResponse::from_data,
        )
        .await
    }

    /// `REFUND`: refund (part of) a paid order.
    pub async fn refund(
        &self,
        request: &RefundRequest,
    ) -> Result<Answer<RefundResponse>, ClientError> {
        self.exchange(
            Action::Refund,
            self.operator_id.as_deref(),
            &request.to_data(),
            RefundResponse::from_data,
        )
        .await
    }

    /// `REFUND_QUERY`: the state of a refund by the refund's `order_id`.
    pub async fn refund_query(
        &self,
        refund_order_id: &str,
    ) -> Result<Answer<RefundResponse>, ClientError> {
        let request = RefundQueryRequest {
            order_id: refund_order_id.to_owned(),
        };
        self.exchange(
            Action::RefundQuery,
            self.operator_id.as_deref(),
            &request.to_data(),
            RefundResponse::from_data,
        )
        .await
    }

    /// Any action with data of your own (e.g. a key the typed requests do not have); the
    /// answer's data is returned as the verified JSON object.
    pub async fn call(&self, action: Action, data: &Data) -> Result<Answer<Data>, ClientError> {
        self.exchange(action, self.operator_id.as_deref(), data, |d| Ok(d.clone()))
            .await
    }

    /// Seals, sends, reads, opens.
    async fn exchange<T>(
        &self,
        action: Action,
        operator_id: Option<&str>,
        data: &Data,
        read: fn(&Data) -> Result<T, FieldError>,
    ) -> Result<Answer<T>, ClientError> {
        let envelope = RequestEnvelope::seal(
            action,
            &self.merchant_id,
            self.terminal_no.as_deref(),
            operator_id,
            data,
            &self.key,
        );
        let response = self
            .http
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(envelope.to_json())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    // No connection was made (refused, unreachable, TLS handshake, connect
                    // timeout): not a byte of the request left.
                    ClientError::Unavailable {
                        endpoint: self.endpoint.to_string(),
                        reason: describe(&e),
                    }
                } else {
                    ClientError::OutcomeUnknown {
                        action,
                        reason: describe(&e),
                    }
                }
            })?;
        let http_status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::OutcomeUnknown {
                action,
                reason: describe(&e),
            })?;
        let envelope = ResponseEnvelope::parse(&body).map_err(|e| ClientError::NotOttpay {
            action,
            http_status,
            reason: e.to_string(),
        })?;
        let rsp_code = Code::parse(&envelope.rsp_code);
        let opened = envelope.open(&self.key);
        if rsp_code == RspCode::Success {
            let raw = opened.map_err(|e| ClientError::Unverified {
                action,
                reason: e.to_string(),
            })?;
            let typed = read(&raw).map_err(|e| ClientError::BadData {
                action,
                reason: e.to_string(),
            })?;
            return Ok(Answer {
                rsp_code,
                rsp_msg: envelope.rsp_msg,
                data: Some(typed),
                raw: Some(raw),
            });
        }
        // A refusal, or PROCESSING: data is whatever verified, if anything did.
        let raw = opened.ok();
        Ok(Answer {
            rsp_code,
            rsp_msg: envelope.rsp_msg,
            data: raw.as_ref().and_then(|d| read(d).ok()),
            raw,
        })
    }
}

/// An error and its causes on one line: reqwest's own message is only "error sending
/// request for url (…)", the cause (refused, timed out, reset) is in its sources.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(Code::parse("SUCCESS"), Code::Known(RspCode::Success));
        assert_eq!(Code::parse("SUCCESS"), RspCode::Success);
        assert_eq!(Code::parse("WEIRD"), Code::Unknown("WEIRD".into()));
        assert_ne!(Code::parse("success"), RspCode::Success);
        assert_eq!(Code::parse("WEIRD").to_string(), "WEIRD");
        assert_eq!(Code::parse("PROCESSING").known(), Some(RspCode::Processing));
    }

    #[test]
    fn config_is_checked_and_the_key_never_shown() {
        let bad = |endpoint: &str| {
            matches!(
                PosClient::new(PosConfig::new(endpoint, "ON00004652", "K")),
                Err(ClientError::Config(_))
            )
        };
        assert!(bad("127.0.0.1:8080/processV2"));
        assert!(bad("ftp://127.0.0.1/processV2"));
        assert!(bad(""));
        assert!(matches!(
            PosClient::new(PosConfig::new("http://127.0.0.1:1/", "", "K")),
            Err(ClientError::Config(_))
        ));
        assert!(matches!(
            PosClient::new(PosConfig::new("http://127.0.0.1:1/", "ON00004652", "")),
            Err(ClientError::Config(_))
        ));
        let config = PosConfig::new("http://127.0.0.1:1/", "ON00004652", "6698851A525C9433");
        assert!(!format!("{config:?}").contains("6698851A525C9433"));
        let client = PosClient::new(config).unwrap();
        assert!(!format!("{client:?}").contains("6698851A525C9433"));
    }

    #[test]
    fn which_errors_may_have_been_processed() {
        let unavailable = ClientError::Unavailable {
            endpoint: "e".into(),
            reason: "r".into(),
        };
        assert!(!unavailable.may_have_been_processed());
        assert!(!ClientError::Config("c".into()).may_have_been_processed());
        let unknown = ClientError::OutcomeUnknown {
            action: Action::PassivePay,
            reason: "operation timed out".into(),
        };
        assert!(unknown.may_have_been_processed());
        assert!(unknown.to_string().contains("STATUS_QUERY"));
    }
}
