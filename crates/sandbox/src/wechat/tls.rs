//! Mutual TLS for `/secapi/*` (§1.1): a sandbox CA, a server certificate for
//! 127.0.0.1/localhost and the merchant's client certificate, all made with rcgen at first
//! use and kept in the sandbox state (`accounts.wechat.pki`) so they survive restarts; and
//! the listener that demands a client certificate issued by that CA and serves every WeChat
//! path (so a connector can use it as its only base URL).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{anyhow, Context};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::wechat_router;
use crate::model::Wallet;
use crate::Sandbox;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// The sandbox's WeChat certificates, PEM encoded.
#[derive(Debug, Clone)]
pub(crate) struct WechatPki {
    pub(crate) ca_cert_pem: String,
    pub(crate) server_cert_pem: String,
    pub(crate) server_key_pem: String,
    pub(crate) client_cert_pem: String,
    pub(crate) client_key_pem: String,
}

impl WechatPki {
    fn from_json(v: &Value) -> Option<WechatPki> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(WechatPki {
            ca_cert_pem: text("ca_cert_pem")?,
            server_cert_pem: text("server_cert_pem")?,
            server_key_pem: text("server_key_pem")?,
            client_cert_pem: text("client_cert_pem")?,
            client_key_pem: text("client_key_pem")?,
        })
    }

    fn to_json(&self) -> Value {
        serde_json::json!({
            "ca_cert_pem": self.ca_cert_pem,
            "server_cert_pem": self.server_cert_pem,
            "server_key_pem": self.server_key_pem,
            "client_cert_pem": self.client_cert_pem,
            "client_key_pem": self.client_key_pem,
        })
    }

    /// A CA, and the server and merchant certificates it issues. The CA's key is not kept:
    /// nothing else is ever issued, so it is discarded with this function's locals.
    fn generate(mch_id: &str) -> anyhow::Result<WechatPki> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name = name("qrgate sandbox WeChat Pay CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "::1".to_owned(),
        ])?;
        server.distinguished_name = name("qrgate sandbox api.mch.weixin.qq.com");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;

        // Like WeChat's merchant API certificate, the subject names the merchant number.
        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client.distinguished_name = name(mch_id);
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &ca_cert, &ca_key)?;

        Ok(WechatPki {
            ca_cert_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "qrgate sandbox");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The certificates, made and stored on first use. Check and creation happen under one
/// state lock, so concurrent first uses agree on a single CA.
pub(crate) fn ensure_pki(sandbox: &Sandbox) -> anyhow::Result<WechatPki> {
    if let Some(pki) = WechatPki::from_json(&sandbox.accounts(Wallet::Wechat)["pki"]) {
        return Ok(pki);
    }
    sandbox.with(|s, _, _| {
        let Some(Value::Object(account)) = s.accounts.get_mut(&Wallet::Wechat) else {
            return Err(anyhow!("the sandbox has no WeChat merchant account"));
        };
        if let Some(pki) = account.get("pki").and_then(WechatPki::from_json) {
            return Ok(pki);
        }
        let mch_id = account
            .get("mch_id")
            .and_then(Value::as_str)
            .unwrap_or("merchant")
            .to_owned();
        let pki = WechatPki::generate(&mch_id)
            .context("cannot generate the WeChat sandbox certificates")?;
        account.insert("pki".to_owned(), pki.to_json());
        Ok(pki)
    })
}

/// The secapi base URL while the listener runs.
pub(crate) fn secapi_base_url(sandbox: &Sandbox) -> Option<String> {
    sandbox
        .accounts(Wallet::Wechat)
        .get("secapi_base_url")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Records (or, with `None`, forgets) the running listener's URL. Forgetting only removes
/// `only_if`'s own URL, so a stopped listener never erases a newer one's.
fn set_secapi_base_url(sandbox: &Sandbox, url: Option<&str>, only_if: Option<&str>) {
    sandbox.with(|s, _, _| {
        let Some(Value::Object(account)) = s.accounts.get_mut(&Wallet::Wechat) else {
            return;
        };
        if only_if.is_some() && account.get("secapi_base_url").and_then(Value::as_str) != only_if {
            return;
        }
        match url {
            Some(u) => account.insert("secapi_base_url".to_owned(), Value::String(u.to_owned())),
            None => account.remove("secapi_base_url"),
        };
    });
}

/// The URL a client on this machine uses for a listener bound to `addr`: a wildcard
/// address is reached over loopback, which the server certificate names (127.0.0.1, ::1,
/// localhost).
fn local_base_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("https://{host}:{}/wechat", addr.port())
}

fn server_config(pki: &WechatPki) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(
        CertificateDer::from_pem_slice(pki.ca_cert_pem.as_bytes())
            .context("bad sandbox CA certificate")?,
    )?;
    // Any certificate chained to the sandbox CA; without one the handshake fails, which is
    // how a connector that forgot its client certificate finds out.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("cannot build the client certificate verifier")?;
    let chain = vec![
        CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes())
            .context("bad server certificate")?,
    ];
    let key =
        PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).context("bad server key")?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The mutual-TLS listener; stops (and forgets its address) when dropped.
pub struct SecapiServer {
    addr: SocketAddr,
    base_url: String,
    sandbox: Sandbox,
    task: JoinHandle<()>,
}

impl SecapiServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>/wechat` (what `credentials()` reports as `secapi_base_url`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

impl std::fmt::Debug for SecapiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecapiServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SecapiServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open connection.
        self.task.abort();
        set_secapi_base_url(&self.sandbox, None, Some(&self.base_url));
    }
}

/// Serves the WeChat paths, `/secapi/*` included, over TLS with a required client
/// certificate at `addr` (port 0 for any); `credentials()` reports
/// `https://127.0.0.1:<port>/wechat` as `secapi_base_url` while it runs.
pub async fn serve_secapi(sandbox: Sandbox, addr: SocketAddr) -> anyhow::Result<SecapiServer> {
    let pki = ensure_pki(&sandbox)?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&pki)?));
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // The same fault knobs as the plain listener (the core applies its own there).
    let app = Router::new()
        .nest("/wechat", wechat_router(sandbox.clone(), true))
        .layer(axum::middleware::from_fn_with_state(
            sandbox.clone(),
            faults,
        ));
    let task = tokio::spawn(accept_loop(listener, acceptor, app));
    let base_url = local_base_url(local);
    set_secapi_base_url(&sandbox, Some(&base_url), None);
    Ok(SecapiServer {
        addr: local,
        base_url,
        sandbox,
        task,
    })
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, app: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, acceptor.clone(), app.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "secapi accept failed");
                    tokio::time::sleep(StdDuration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, acceptor: TlsAcceptor, app: Router) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "secapi TLS handshake refused");
            return;
        }
        Err(_) => return,
    };
    let service = TowerToHyperService::new(app);
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(error = %e, "secapi connection ended with an error");
    }
}

/// Latency, "fail next" and "drop next" faults, as the core applies them on the plain
/// listener (its middleware is private to the core).
async fn faults(State(sandbox): State<Sandbox>, request: Request, next: Next) -> Response {
    let latency_ms = sandbox.with(|s, _, _| s.faults(Wallet::Wechat).latency_ms);
    if latency_ms > 0 {
        tokio::time::sleep(StdDuration::from_millis(latency_ms)).await;
    }
    if sandbox.take_fault(Wallet::Wechat, |f| &mut f.fail_next) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "sandbox fault: internal error",
        )
            .into_response();
    }
    let drop_answer = sandbox.take_fault(Wallet::Wechat, |f| &mut f.drop_next);
    let response = next.run(request).await;
    if drop_answer {
        tokio::time::sleep(StdDuration::from_secs(120)).await;
        return (StatusCode::GATEWAY_TIMEOUT, Body::empty()).into_response();
    }
    response
}
