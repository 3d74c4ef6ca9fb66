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
        let started = Instant::now();
        let sent = self
            .inner
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await;
        let result = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match response.bytes().await {
                    Ok(bytes) => Ok(HttpResponse {
                        status,
                        content_type,
                        body: bytes.to_vec(),
                    }),
                    Err(e) => Err(ConnectorError::OutcomeUnknown(format!(
                        "answer cut off: {e}"
                    ))),
                }
            }
            Err(e) if e.is_connect() => {
                Err(ConnectorError::Unavailable(format!("cannot connect: {e}")))
            }
            Err(e) if e.is_timeout() => Err(ConnectorError::OutcomeUnknown("timed out".into())),
            Err(e) if e.is_builder() => Err(ConnectorError::Rejected {
                code: "REQUEST".into(),
                message: e.to_string(),
            }),
            Err(e) => Err(ConnectorError::OutcomeUnknown(format!(
                "exchange failed: {e}"
            ))),
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
