//! RSA2 signing as the Alipay OpenAPI does it (`wallets.md` §2.2), written from the
//! documentation: the string-to-sign of a parameter set, SHA256withRSA (PKCS#1 v1.5) with
//! Base64 signatures, and PEM key loading. The RSA arithmetic itself is `crate::rsa_sha256`'s
//! (`ring`).
//!
//! The same string-to-sign serves requests (which keep `sign_type` in the signed set) and
//! notifications (which drop it): the caller says which keys to leave out.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::rsa_sha256::{RsaKeyError, RsaSha256Signer, RsaSha256Verifier};

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AlipayKeyError {
    #[error("not a PKCS#8 or PKCS#1 RSA private key in PEM that ring can use: {0}")]
    BadPrivateKey(RsaKeyError),
    #[error("not a SubjectPublicKeyInfo or PKCS#1 RSA public key in PEM that ring can use: {0}")]
    BadPublicKey(RsaKeyError),
    #[error("RSA signing failed")]
    SigningFailed,
}

/// The string-to-sign: every parameter except those in `exclude` and those with an empty
/// value, sorted by key (byte order, which a `BTreeMap<String, _>` already is), joined as
/// `k=v` with `&`, values raw (decoded, not URL-encoded).
pub fn string_to_sign<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    exclude: &[&str],
) -> String {
    let sorted: BTreeMap<&str, &str> = params
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && !exclude.contains(k))
        .collect();
    let mut out = String::new();
    for (k, v) in sorted {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The label and DER of a PEM text (one block, surrounding whitespace ignored).
fn pem(text: &str) -> Result<(String, Vec<u8>), RsaKeyError> {
    let (label, der) =
        der::pem::decode_vec(text.trim().as_bytes()).map_err(|_| RsaKeyError::Malformed)?;
    Ok((label.to_owned(), der))
}

/// Reads an RSA private key from PEM, ready to sign: PKCS#8 (`BEGIN PRIVATE KEY`, what
/// Alipay's key tool and `openssl genpkey` give) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub(crate) fn private_key_from_pem(text: &str) -> Result<RsaSha256Signer, AlipayKeyError> {
    let (label, der) = pem(text).map_err(AlipayKeyError::BadPrivateKey)?;
    match label.as_str() {
        "PRIVATE KEY" => RsaSha256Signer::from_pkcs8_der(&der),
        "RSA PRIVATE KEY" => RsaSha256Signer::from_pkcs1_der(&der),
        _ => Err(RsaKeyError::Malformed),
    }
    .map_err(AlipayKeyError::BadPrivateKey)
}

/// Reads an RSA public key from PEM, ready to verify: SubjectPublicKeyInfo
/// (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
pub(crate) fn public_key_from_pem(text: &str) -> Result<RsaSha256Verifier, AlipayKeyError> {
    let (label, der) = pem(text).map_err(AlipayKeyError::BadPublicKey)?;
    match label.as_str() {
        "PUBLIC KEY" => RsaSha256Verifier::from_spki_der(&der),
        "RSA PUBLIC KEY" => RsaSha256Verifier::from_pkcs1_der(&der),
        _ => Err(RsaKeyError::Malformed),
    }
    .map_err(AlipayKeyError::BadPublicKey)
}

/// `Base64(SHA256withRSA(key, text))`. PKCS#1 v1.5 signatures are deterministic, so the same
/// key and text always give the same signature.
pub(crate) fn sign(key: &RsaSha256Signer, text: &str) -> Result<String, AlipayKeyError> {
    let signature = key
        .sign(text.as_bytes())
        .map_err(|_| AlipayKeyError::SigningFailed)?;
    Ok(BASE64.encode(signature))
}

/// A signature that looks right but does not verify: the real one with its first byte
/// flipped (the `bad_signature_next` and forged-notification faults).
pub fn forge(signature: &str) -> String {
    match BASE64.decode(signature) {
        Ok(mut bytes) => {
            if let Some(first) = bytes.first_mut() {
                *first ^= 0x5a;
            }
            BASE64.encode(bytes)
        }
        // Not reachable with our own signatures; still a wrong one.
        Err(_) => BASE64.encode(b"forged"),
    }
}

/// Whether `signature` (Base64) is a valid SHA256withRSA signature of `text` under `key`.
/// Surrounding whitespace is tolerated; anything else malformed is simply "not valid".
pub(crate) fn verify(key: &RsaSha256Verifier, text: &str, signature: &str) -> bool {
    let Ok(bytes) = BASE64.decode(signature.trim()) else {
        return false;
    };
    key.verify(text.as_bytes(), &bytes)
}
