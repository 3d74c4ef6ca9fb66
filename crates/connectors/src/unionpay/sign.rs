//! UnionPay ACP 5.1.0 signatures (`wallets.md` §3.1, signMethod `01`) and the certificate
//! check that comes before trusting one.
//!
//! One algorithm covers requests, answers and notifications:
//! 1. take every field with a non-empty value except `signature`, sort by key (byte order),
//!    join as `k=v` with `&`, values raw (not URL-encoded) — [`sign_content`];
//! 2. hash that string with SHA-256 and write the digest as LOWER-case hex — [`digest_hex`];
//! 3. sign the 64 ASCII bytes of that hex string with RSA PKCS#1 v1.5 / SHA-256 and Base64 the
//!    result. So SHA-256 is applied twice: once by us (step 2) and once inside the RSA scheme.
//!
//! Requests are signed with the merchant key (its certificate's serial goes in `certId`).
//! Answers and notifications carry UnionPay's signing certificate in `signPubKeyCert`, which
//! is itself one of the signed fields. Before its key is used, [`UnionPayTrust`] checks that
//! the certificate was issued by a configured trust anchor (issuer name equals the anchor's
//! subject, and the certificate's signature verifies with the anchor's key) and that both are
//! within their validity period at `now`. Nothing else of X.509 path validation is attempted
//! (no revocation, no policy, no name constraints): the anchors are few and configured by hand.
//!
//! This module does cryptography only; it never decides what an answer means.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use qrgate_connector_api::ConnectorError;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::der::{self, Decode, Encode, Reader, SliceReader, Tag, Tagged};
use x509_cert::time::Time;
use x509_cert::Certificate;

/// The field that carries the signature; never part of what is signed.
pub(super) const SIGNATURE: &str = "signature";
/// The field that carries UnionPay's signing certificate (PEM); it *is* signed.
pub(super) const SIGN_PUB_KEY_CERT: &str = "signPubKeyCert";

/// UnionPay issues 2048-bit keys; anything shorter is a configuration mistake or a forgery.
const MIN_MODULUS_BYTES: usize = 256;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";
const PEM_LABEL: &str = "CERTIFICATE";

/// The 5.1.0 string-to-sign: non-empty fields except `signature`, sorted by key in byte
/// order (ASCII for UnionPay's field names), `k=v` joined with `&`, values raw.
pub(super) fn sign_content<'a, I>(fields: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut kept: Vec<(&str, &str)> = fields
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && *k != SIGNATURE)
        .collect();
    // Callers refuse duplicate keys, so sorting on the key alone is deterministic.
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

/// The lower-case hex SHA-256 of the string-to-sign: what the RSA signature is made over.
pub(super) fn digest_hex(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Signing requests

/// The merchant's signing key.
pub(super) struct UnionPaySigner {
    key: crate::rsa_sign::RsaSha256Signer,
}

impl UnionPaySigner {
    /// Parses the merchant private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) PEM, RSA of at least 2048 bits. (UnionPay hands merchants a
    /// PKCS#12 file; the operator exports its key to PEM once.)
    pub(super) fn from_pem(text: &str) -> Result<Self, ConnectorError> {
        let text = text.trim();
        let key = RsaPrivateKey::from_pkcs8_pem(text)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(text))
            // The parse error is not echoed: it says nothing useful and must stay away from
            // anything near key material.
            .map_err(|_| {
                ConnectorError::Credentials(
                    "merchant_private_key_pem is not an RSA private key (PKCS#8 or PKCS#1 PEM)"
                        .into(),
                )
            })?;
        if key.size() < MIN_MODULUS_BYTES {
            return Err(ConnectorError::Credentials(
                "merchant_private_key_pem: UnionPay needs an RSA key of at least 2048 bits".into(),
            ));
        }
        let key = crate::rsa_sign::RsaSha256Signer::new(&key).ok_or_else(|| {
            ConnectorError::Credentials(
                "merchant_private_key_pem cannot sign (an RSA key of 2048 to 8192 bits is needed)"
                    .into(),
            )
        })?;
        Ok(UnionPaySigner { key })
    }

    /// The `signature` value for these fields (which must not contain `signature` itself;
    /// it would be ignored anyway).
    pub(super) fn sign<'a, I>(&self, fields: I) -> Result<String, ConnectorError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let digest = digest_hex(&sign_content(fields));
        let signature = self.key.sign(digest.as_bytes()).ok_or_else(|| {
            ConnectorError::Credentials("cannot sign with the merchant key".into())
        })?;
        Ok(BASE64.encode(signature))
    }
}

// ---------------------------------------------------------------------------------------------
// Verifying answers and notifications

/// Why a signed message was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum UnionPaySignatureError {
    #[error("no signature")]
    Unsigned,
    #[error("no signPubKeyCert")]
    NoCertificate,
    #[error("signPubKeyCert is not a readable certificate: {0}")]
    UnreadableCertificate(String),
    #[error("signPubKeyCert was not issued by a configured UnionPay root")]
    UntrustedCertificate,
    #[error("signPubKeyCert or its root is outside its validity period")]
    CertificateOutOfValidity,
    #[error("the signature does not verify with signPubKeyCert")]
    Mismatch,
}

/// The certificates UnionPay's signing certificates must be issued by.
pub(super) struct UnionPayTrust {
    anchors: Vec<UnionPayAnchor>,
}

/// One configured issuer: the UnionPay root, or (production) the middle certificate that
/// actually issues UnionPay's signing certificates.
struct UnionPayAnchor {
    subject_der: Vec<u8>,
    key: RsaPublicKey,
    validity: UnionPayValidity,
}

/// A certificate's validity period in Unix seconds, inclusive at both ends (RFC 5280 §4.1.2.5).
#[derive(Debug, Clone, Copy)]
struct UnionPayValidity {
    not_before: i64,
    not_after: i64,
}

impl UnionPayValidity {
    fn of(cert: &Certificate) -> Option<Self> {
        let validity = &cert.tbs_certificate.validity;
        Some(UnionPayValidity {
            not_before: unix_seconds(validity.not_before)?,
            not_after: unix_seconds(validity.not_after)?,
        })
    }

    fn contains(self, now: DateTime<Utc>) -> bool {
        (self.not_before..=self.not_after).contains(&now.timestamp())
    }
}

fn unix_seconds(time: Time) -> Option<i64> {
    i64::try_from(time.to_unix_duration().as_secs()).ok()
}

impl UnionPayTrust {
    /// Parses the configured root certificate(s): one or more PEM `CERTIFICATE` blocks, each
    /// trusted as an issuer of signing certificates. A self-issued block must carry a valid
    /// self-signature, so a corrupted root fails here and not on the first payment.
    ///
    /// Errors: `Credentials` when there is no block, a block is not an RSA certificate, or a
    /// self-signature does not verify. Validity periods are checked per message, not here, so
    /// a gateway started just before a root change still starts.
    pub(super) fn from_pem(text: &str) -> Result<Self, ConnectorError> {
        let credentials =
            |what: String| ConnectorError::Credentials(format!("root_cert_pem: {what}"));
        let blocks = pem_blocks(text);
        if blocks.is_empty() {
            return Err(credentials("no PEM certificate found".into()));
        }
        let mut anchors = Vec::with_capacity(blocks.len());
        for block in blocks {
            let parsed =
                UnionPayCertificate::parse(block).map_err(|e| credentials(e.to_string()))?;
            let key = parsed.rsa_key().map_err(|e| credentials(e.to_string()))?;
            let subject_der = parsed
                .cert
                .tbs_certificate
                .subject
                .to_der()
                .map_err(|e| credentials(e.to_string()))?;
            let issuer_der = parsed
                .cert
                .tbs_certificate
                .issuer
                .to_der()
                .map_err(|e| credentials(e.to_string()))?;
            if issuer_der == subject_der && !parsed.is_signed_by(&key) {
                return Err(credentials(
                    "a self-issued certificate whose self-signature does not verify".into(),
                ));
            }
            let validity = UnionPayValidity::of(&parsed.cert)
                .ok_or_else(|| credentials("unreadable validity period".into()))?;
            anchors.push(UnionPayAnchor {
                subject_der,
                key,
                validity,
            });
        }
        Ok(UnionPayTrust { anchors })
    }

    /// Checks a signed message: `signPubKeyCert` must be issued by an anchor, both valid at
    /// `now`, and `signature` must verify with its key over the 5.1.0 digest of all fields.
    pub(super) fn verify<'a, I>(
        &self,
        fields: I,
        now: DateTime<Utc>,
    ) -> Result<(), UnionPaySignatureError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    {
        let value = |name: &str| {
            fields
                .clone()
                .into_iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty())
        };
        let signature = value(SIGNATURE).ok_or(UnionPaySignatureError::Unsigned)?;
        let cert_pem = value(SIGN_PUB_KEY_CERT).ok_or(UnionPaySignatureError::NoCertificate)?;
        let key = self.signing_key(cert_pem, now)?;
        // A `+` that was not percent-encoded arrives as a space after form decoding; Base64
        // has no spaces, so mapping them back cannot make a wrong signature right.
        let signature = BASE64
            .decode(signature.trim().replace(' ', "+"))
            .map_err(|_| UnionPaySignatureError::Mismatch)?;
        let signature = Signature::try_from(signature.as_slice())
            .map_err(|_| UnionPaySignatureError::Mismatch)?;
        let digest = digest_hex(&sign_content(fields));
        key.verify(digest.as_bytes(), &signature)
            .map_err(|_| UnionPaySignatureError::Mismatch)
    }

    /// The verifying key of a signing certificate that chains to one of the anchors.
    fn signing_key(
        &self,
        cert_pem: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifyingKey<Sha256>, UnionPaySignatureError> {
        let unreadable = |e: &dyn std::fmt::Display| {
            UnionPaySignatureError::UnreadableCertificate(e.to_string())
        };
        let parsed = UnionPayCertificate::parse(cert_pem).map_err(|e| unreadable(&e))?;
        let issuer_der = parsed
            .cert
            .tbs_certificate
            .issuer
            .to_der()
            .map_err(|e| unreadable(&e))?;
        // Several anchors may share a subject (a renewed root); any one that signed it will do.
        let anchor = self
            .anchors
            .iter()
            .filter(|a| a.subject_der == issuer_der)
            .find(|a| parsed.is_signed_by(&a.key))
            .ok_or(UnionPaySignatureError::UntrustedCertificate)?;
        let validity = UnionPayValidity::of(&parsed.cert)
            .ok_or_else(|| unreadable(&"unreadable validity period"))?;
        if !validity.contains(now) || !anchor.validity.contains(now) {
            return Err(UnionPaySignatureError::CertificateOutOfValidity);
        }
        let key = parsed.rsa_key().map_err(|e| unreadable(&e))?;
        Ok(VerifyingKey::new(key))
    }
}

/// The text of each `BEGIN/END CERTIFICATE` block in `text`, in order.
fn pem_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(PEM_BEGIN) {
        let Some(tail) = rest.get(start..) else { break };
        let Some(end) = tail.find(PEM_END) else { break };
        let block_end = end + PEM_END.len();
        if let Some(block) = tail.get(..block_end) {
            blocks.push(block);
        }
        rest = tail.get(block_end..).unwrap_or("");
    }
    blocks
}

/// Signature algorithms accepted on certificates: RSA PKCS#1 v1.5 with SHA-2. SHA-1 and
/// MD5 certificates are refused as forgeable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnionPayCertAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl UnionPayCertAlgorithm {
    fn from_oid(oid: &der::asn1::ObjectIdentifier) -> Option<Self> {
        match oid.to_string().as_str() {
            "1.2.840.113549.1.1.11" => Some(UnionPayCertAlgorithm::Sha256),
            "1.2.840.113549.1.1.12" => Some(UnionPayCertAlgorithm::Sha384),
            "1.2.840.113549.1.1.13" => Some(UnionPayCertAlgorithm::Sha512),
            _ => None,
        }
    }
}

/// A parsed certificate together with the exact DER it came from, because the issuer's
/// signature covers the received bytes of `tbsCertificate`, not a re-encoding of them.
struct UnionPayCertificate {
    der: Vec<u8>,
    cert: Certificate,
}

impl UnionPayCertificate {
    fn parse(pem: &str) -> Result<Self, String> {
        let (label, der) =
            der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| format!("PEM: {e}"))?;
        if label != PEM_LABEL {
            return Err(format!("PEM label {label}, expected {PEM_LABEL}"));
        }
        let cert = Certificate::from_der(&der).map_err(|e| format!("X.509: {e}"))?;
        Ok(UnionPayCertificate { der, cert })
    }

    /// The certificate's RSA public key, refused below 2048 bits.
    fn rsa_key(&self) -> Result<RsaPublicKey, String> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| e.to_string())?;
        let key = RsaPublicKey::from_public_key_der(&spki)
            .map_err(|_| "the certificate's key is not RSA".to_owned())?;
        if key.size() < MIN_MODULUS_BYTES {
            return Err("the certificate's RSA key is shorter than 2048 bits".into());
        }
        Ok(key)
    }

    /// Whether `issuer_key` made this certificate's signature.
    fn is_signed_by(&self, issuer_key: &RsaPublicKey) -> bool {
        let outer = &self.cert.signature_algorithm;
        // RFC 5280 §4.1.1.2: the outer algorithm must equal the one inside the signed part,
        // or an attacker could relabel the signature.
        if *outer != self.cert.tbs_certificate.signature || !params_absent_or_null(outer) {
            return false;
        }
        let Some(algorithm) = UnionPayCertAlgorithm::from_oid(&outer.oid) else {
            return false;
        };
        let Some(signature) = self.cert.signature.as_bytes() else {
            return false;
        };
        let Ok(tbs) = signed_part(&self.der) else {
            return false;
        };
        let verified = match algorithm {
            UnionPayCertAlgorithm::Sha256 => issuer_key.verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(tbs),
                signature,
            ),
            UnionPayCertAlgorithm::Sha384 => issuer_key.verify(
                Pkcs1v15Sign::new::<Sha384>(),
                &Sha384::digest(tbs),
                signature,
            ),
            UnionPayCertAlgorithm::Sha512 => issuer_key.verify(
                Pkcs1v15Sign::new::<Sha512>(),
                &Sha512::digest(tbs),
                signature,
            ),
        };
        verified.is_ok()
    }
}

/// PKCS#1 signature algorithms take NULL parameters (or, tolerated, none).
fn params_absent_or_null(algorithm: &x509_cert::spki::AlgorithmIdentifierOwned) -> bool {
    match &algorithm.parameters {
        None => true,
        Some(any) => any.tag() == Tag::Null && any.value().is_empty(),
    }
}

/// The raw `tbsCertificate` TLV of a DER certificate (`SEQUENCE { tbs, algorithm, value }`).
fn signed_part(der: &[u8]) -> der::Result<&[u8]> {
    let mut reader = SliceReader::new(der)?;
    let tbs = reader.sequence(|cert| {
        let tbs = cert.tlv_bytes()?;
        cert.tlv_bytes()?;
        cert.tlv_bytes()?;
        Ok(tbs)
    })?;
    reader.finish(tbs)
}
