//! Alipay RSA2 signatures (`wallets.md` §2.2): SHA256withRSA, PKCS#1 v1.5, Base64.
//!
//! Three things are signed or verified, each over a different byte string:
//! * requests: every parameter except `sign`, empty values dropped, sorted by key, joined as
//!   `k=v&…` with raw (not URL-encoded) values — [`request_sign_content`];
//! * synchronous responses: the exact raw text of the `*_response` member as received, which
//!   `wire.rs` cuts out of the body — [`AlipayVerifier::verify`] takes those bytes as they are;
//! * async notifications: like requests, but `sign_type` is removed too —
//!   [`notification_sign_content`].
//!
//! This module holds keys and does cryptography only; it never decides what a reply means.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use qrgate_connector_api::ConnectorError;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::rsa_pkcs1::{RsaPkcs1Verifier, RsaSha256Signer};

/// RSA2 requires 2048-bit keys; anything shorter is a configuration mistake.
const MIN_MODULUS_BYTES: usize = 256;

/// The parameter that carries the signature; never part of what is signed.
const SIGN: &str = "sign";
/// Excluded from the notification string-to-sign (but included in request signing).
const SIGN_TYPE: &str = "sign_type";

/// Our application private key, used to sign requests.
pub(super) struct AlipaySigner {
    key: RsaSha256Signer,
}

/// Alipay's public key, used to verify responses and notifications (with `ring`).
pub(super) struct AlipayVerifier {
    key: RsaPkcs1Verifier,
}

impl AlipaySigner {
    /// Parses the application private key: PKCS#8 or PKCS#1 PEM, or the bare Base64 DER that
    /// Alipay's key tool prints (merchants often paste that form).
    pub(super) fn from_text(text: &str) -> Result<Self, ConnectorError> {
        let key = parse_private_key(text)?;
        check_modulus(key.size(), "app_private_key_pem")?;
        let key = RsaSha256Signer::new(&key).ok_or_else(|| {
            ConnectorError::Credentials(
                "app_private_key_pem cannot sign (an RSA key of 2048 to 8192 bits is needed)"
                    .into(),
            )
        })?;
        Ok(AlipaySigner { key })
    }

    /// Signs `content` and returns the Base64 signature as the `sign` parameter wants it.
    pub(super) fn sign(&self, content: &str) -> Result<String, ConnectorError> {
        let signature = self
            .key
            .sign(content.as_bytes())
            .ok_or_else(|| ConnectorError::Credentials("cannot sign with the app key".into()))?;
        Ok(BASE64.encode(signature))
    }
}

impl AlipayVerifier {
    /// Parses Alipay's public key: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 PEM, or bare Base64
    /// SPKI DER as shown on Alipay's open platform.
    pub(super) fn from_text(text: &str) -> Result<Self, ConnectorError> {
        let key = parse_public_key(text)?;
        check_modulus(key.size(), "alipay_public_key_pem")?;
        let key = RsaPkcs1Verifier::new(&key).ok_or_else(|| {
            ConnectorError::Credentials(
                "alipay_public_key_pem cannot verify (an RSA key of 2048 to 8192 bits is needed)"
                    .into(),
            )
        })?;
        Ok(AlipayVerifier { key })
    }

    /// Whether `sign_base64` is Alipay's signature over exactly `content`.
    ///
    /// A signature that is not valid Base64 or has the wrong length simply does not verify.
    pub(super) fn verify(&self, content: &[u8], sign_base64: &str) -> bool {
        let Ok(bytes) = BASE64.decode(sign_base64.trim()) else {
            return false;
        };
        self.key.verify_sha256(content, &bytes)
    }
}

/// The request string-to-sign: all parameters but `sign`, empty values dropped, sorted by key
/// in byte order, `k=v` joined with `&`, values raw.
pub(super) fn request_sign_content<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    sorted_join(params, &[SIGN])
}

/// The notification string-to-sign: as for requests, but `sign_type` is removed as well
/// (Alipay excludes it from notification signatures only).
pub(super) fn notification_sign_content<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    sorted_join(params, &[SIGN, SIGN_TYPE])
}

fn sorted_join<'a, I>(params: I, excluded: &[&str]) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut kept: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && !excluded.contains(k))
        .collect();
    // `str` ordering is byte order, which is the ASCII order Alipay specifies. Keys are
    // unique (callers reject duplicates), so a stable sort on keys alone is deterministic.
    kept.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (i, (k, v)) in kept.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn parse_private_key(text: &str) -> Result<RsaPrivateKey, ConnectorError> {
    let text = text.trim();
    let parsed = if text.contains("-----BEGIN") {
        RsaPrivateKey::from_pkcs8_pem(text)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(text))
            .ok()
    } else {
        bare_der(text).and_then(|der| {
            RsaPrivateKey::from_pkcs8_der(&der)
                .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
                .ok()
        })
    };
    // The parse errors are deliberately not echoed: they say nothing useful and we never want
    // key material anywhere near a log line.
    parsed.ok_or_else(|| {
        ConnectorError::Credentials(
            "app_private_key_pem is not an RSA private key (PKCS#8 or PKCS#1, PEM or Base64 DER)"
                .into(),
        )
    })
}

fn parse_public_key(text: &str) -> Result<RsaPublicKey, ConnectorError> {
    let text = text.trim();
    let parsed = if text.contains("-----BEGIN") {
        RsaPublicKey::from_public_key_pem(text)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(text))
            .ok()
    } else {
        bare_der(text).and_then(|der| {
            RsaPublicKey::from_public_key_der(&der)
                .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
                .ok()
        })
    };
    parsed.ok_or_else(|| {
        ConnectorError::Credentials(
            "alipay_public_key_pem is not an RSA public key (SPKI or PKCS#1, PEM or Base64 DER)"
                .into(),
        )
    })
}

/// Base64 DER without PEM armour; line breaks and spaces from copy-paste are ignored.
fn bare_der(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    BASE64.decode(compact).ok()
}

fn check_modulus(size_bytes: usize, field: &str) -> Result<(), ConnectorError> {
    if size_bytes < MIN_MODULUS_BYTES {
        return Err(ConnectorError::Credentials(format!(
            "{field}: RSA2 needs a key of at least 2048 bits"
        )));
    }
    Ok(())
}
