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

use crate::rsa_pkcs1::{
    read_private_key, read_public_key, RsaKeyRefused, RsaPkcs1Verifier, RsaSha256Signer,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use qrgate_connector_api::ConnectorError;

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
        // The parse errors are deliberately not echoed: they say nothing useful and we never
        // want key material anywhere near a log line.
        let der = read_private_key(text, true).ok_or_else(|| {
            ConnectorError::Credentials(
                "app_private_key_pem is not an RSA private key (PKCS#8 or PKCS#1, PEM or Base64 DER)"
                    .into(),
            )
        })?;
        let key = RsaSha256Signer::from_pkcs1_der(&der).map_err(|refused| {
            key_refused(
                refused,
                "app_private_key_pem",
                "app_private_key_pem cannot sign (an RSA key of 2048 to 4096 bits with a public \
                 exponent of at least 65537 is needed)",
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
        let der = read_public_key(text, true).ok_or_else(|| {
            ConnectorError::Credentials(
                "alipay_public_key_pem is not an RSA public key (SPKI or PKCS#1, PEM or Base64 DER)"
                    .into(),
            )
        })?;
        let key = RsaPkcs1Verifier::from_pkcs1_der(&der).map_err(|refused| {
            key_refused(
                refused,
                "alipay_public_key_pem",
                "alipay_public_key_pem cannot verify (an RSA key of 2048 to 8192 bits is needed)",
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

/// The error for a well-formed key of the setting `field` that cannot be used.
fn key_refused(refused: RsaKeyRefused, field: &str, unusable: &str) -> ConnectorError {
    ConnectorError::Credentials(match refused {
        RsaKeyRefused::TooShort => format!("{field}: RSA2 needs a key of at least 2048 bits"),
        RsaKeyRefused::Unusable => unusable.to_owned(),
    })
}
