//! The one outbound HTTP client every connector uses: bounded timeouts, optional client
//! certificate (WeChat's `/secapi/`), request ids, and logging that never prints bodies.

use std::time::{Duration, Instant};

use crate::ConnectorError;

/// Settings of the outbound client.
#[derive(Clone)]
pub struct HttpClientConfig {
    /// Time to establish a connection; failing here means nothing was sent.
    pub connect_timeout: Duration,
    /// Time for the whole exchange; failing after connecting means the outcome is unknown.
    pub request_timeout: Duration,
    /// A client certificate and key (PEM, concatenated), for mutual TLS.
    pub client_identity_pem: Option<secrecy::SecretSlice<u8>>,
    /// Extra root certificates (PEM) to trust, e.g. the sandbox's CA.
    pub extra_root_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for HttpClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field(
                "client_identity_pem",
                &self.client_identity_pem.as_ref().map(|_| "***"),
            )
            .field(
                "extra_root_pem",
                &self.extra_root_pem.as_ref().map(Vec::len),
            )
            .finish()
    }
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(15),
            client_identity_pem: None,
            extra_root_pem: None,
        }
    }
}

/// A response as connectors need it: status and raw body bytes (signatures cover raw bytes).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// The shared outbound client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    wallet: &'static str,
}

impl HttpClient {
    pub fn new(wallet: &'static str, config: &HttpClientConfig) -> Result<Self, HttpError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .use_rustls_tls();
        if let Some(pem) = &config.client_identity_pem {
            use secrecy::ExposeSecret;
            let identity = reqwest::Identity::from_pem(pem.expose_secret())
                .map_err(|e| HttpError::Build(format!("client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        if let Some(pem) = &config.extra_root_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| HttpError::Build(format!("root certificate: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let inner = builder
            .build()
            .map_err(|e| HttpError::Build(e.to_string()))?;
        Ok(HttpClient { inner, wallet })
    }

    /// POSTs `body` to `url`. Errors are classed: a failure to connect is
    /// [`ConnectorError::Unavailable`] (nothing sent); a timeout or a broken exchange after
    /// connecting is [`ConnectorError::OutcomeUnknown`]. A 5xx is returned as a response; the
    /// connector decides (usually unknown). The body is never logged: `operation` names the
    /// call instead.
    pub async fn post(
        &self,
        operation: &'static str,
        url: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<HttpResponse, ConnectorError> {
        let request = self
            .inner
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.exchange(operation, request, None)
            .await
            .map_err(|e| match e {
                BoundedCallError::Call(e) => e,
                // No limit was set, so the body was never cut short.
                BoundedCallError::TooLarge { limit_bytes } => {
                    ConnectorError::BadResponse(format!("answer larger than {limit_bytes} bytes"))
                }
            })
    }

    /// Like [`HttpClient::post`], but the answer may take `limit.timeout` (instead of the
    /// client's request timeout) and is read only up to `limit.max_body_bytes`: a longer one
    /// is [`BoundedCallError::TooLarge`], and no more of it is read. For large answers (bills).
    pub async fn post_bounded(
        &self,
        operation: &'static str,
        url: &str,
        content_type: &'static str,
        body: Vec<u8>,
        limit: ResponseLimit,
    ) -> Result<HttpResponse, BoundedCallError> {
        let request = self
            .inner
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .timeout(limit.timeout);
        self.exchange(operation, request, Some(limit.max_body_bytes))
            .await
    }

    /// GETs `url` with the bounds of [`HttpClient::post_bounded`] (Alipay's bill download
    /// URL). The URL is never logged: it may carry a token.
    pub async fn get_bounded(
        &self,
        operation: &'static str,
        url: &str,
        limit: ResponseLimit,
    ) -> Result<HttpResponse, BoundedCallError> {
        let request = self.inner.get(url).timeout(limit.timeout);
        self.exchange(operation, request, Some(limit.max_body_bytes))
            .await
    }

    async fn exchange(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
        max_body_bytes: Option<usize>,
    ) -> Result<HttpResponse, BoundedCallError> {
        let started = Instant::now();
        let result = match request.send().await {
            Ok(response) => read_response(response, max_body_bytes).await,
            Err(e) if e.is_connect() => {
                Err(ConnectorError::Unavailable(format!("cannot connect: {e}")).into())
            }
            Err(e) if e.is_timeout() => {
                Err(ConnectorError::OutcomeUnknown("timed out".into()).into())
            }
            Err(e) if e.is_builder() => Err(ConnectorError::Rejected {
                code: "REQUEST".into(),
                message: e.to_string(),
            }
            .into()),
            Err(e) => Err(ConnectorError::OutcomeUnknown(format!("exchange failed: {e}")).into()),
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(r) => tracing::info!(
                wallet = self.wallet,
                operation,
                http.status = r.status,
                latency_ms,
                "wallet call"
            ),
            Err(e) => {
                tracing::warn!(wallet = self.wallet, operation, error = %e, latency_ms, "wallet call failed")
            }
        }
        result
    }
}

/// Reads the status, content type and body; with a limit, chunk by chunk, stopping as soon as
/// the body is longer than allowed.
async fn read_response(
    mut response: reqwest::Response,
    max_body_bytes: Option<usize>,
) -> Result<HttpResponse, BoundedCallError> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let cut_off = |e: reqwest::Error| {
        BoundedCallError::Call(ConnectorError::OutcomeUnknown(format!(
            "answer cut off: {e}"
        )))
    };
    let body = match max_body_bytes {
        None => response.bytes().await.map_err(cut_off)?.to_vec(),
        Some(limit) => {
            if response
                .content_length()
                .is_some_and(|length| u64::try_from(limit).is_ok_and(|limit| length > limit))
            {
                return Err(BoundedCallError::TooLarge { limit_bytes: limit });
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(cut_off)? {
                if body.len().saturating_add(chunk.len()) > limit {
                    return Err(BoundedCallError::TooLarge { limit_bytes: limit });
                }
                body.extend_from_slice(&chunk);
            }
            body
        }
    };
    Ok(HttpResponse {
        status,
        content_type,
        body,
    })
}

/// Bounds for reading a large answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimit {
    /// The most bytes of body read; a longer body is refused.
    pub max_body_bytes: usize,
    /// The time for the whole exchange, replacing the client's request timeout.
    pub timeout: Duration,
}

/// Why a bounded call gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum BoundedCallError {
    #[error("answer larger than {limit_bytes} bytes")]
    TooLarge { limit_bytes: usize },
    #[error(transparent)]
    Call(#[from] ConnectorError),
}
