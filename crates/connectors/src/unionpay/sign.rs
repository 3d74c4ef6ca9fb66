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
//! A certificate that chains to the root is not yet UnionPay's: the same CA issues merchants'
//! certificates, so anyone holding one could sign a notification with it. The signing
//! certificate must also be UnionPay's own ([`UnionPaySigningPin`]): the owner field of its
//! subject's CN (UnionPay's CNs read `041@Z12@<owner>@00000001`; the owner is
//! `中国银联股份有限公司` in production, `00040000:SIGN` on UnionPay's test bed) must equal the
//! configured one, as UnionPay's own SDKs check, and, when fingerprints are configured, its
//! SHA-256 fingerprint must be one of them.
//!
//! UnionPay sends the same signing certificate with every answer, so the outcome of the chain
//! check is remembered for a few certificates, by their exact text: a certificate seen before
//! is only checked against the clock (its validity and its anchor's, as on the first time),
//! then its key verifies the answer. All RSA work is done with `ring` (`crate::rsa_pkcs1`).
//!
//! This module does cryptography only; it never decides what an answer means.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use qrgate_connector_api::ConnectorError;
use sha2::{Digest, Sha256};
use x509_cert::der::{self, Decode, Encode, Reader, SliceReader, Tag, Tagged};
use x509_cert::time::Time;
use x509_cert::Certificate;

use crate::rsa_pkcs1::{
    read_private_key, spki_public_key, RsaKeyRefused, RsaPkcs1Hash, RsaPkcs1Verifier,
    RsaSha256Signer,
};

/// The field that carries the signature; never part of what is signed.
pub(super) const SIGNATURE: &str = "signature";
/// The field that carries UnionPay's signing certificate (PEM); it *is* signed.
pub(super) const SIGN_PUB_KEY_CERT: &str = "signPubKeyCert";

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";
const PEM_LABEL: &str = "CERTIFICATE";

/// How many signing certificates that passed the chain check are remembered. UnionPay signs
/// with one certificate at a time (two while it changes them); the rest is headroom.
const CHECKED_CERTIFICATES: usize = 4;

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
    key: RsaSha256Signer,
}

impl UnionPaySigner {
    /// Parses the merchant private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) PEM, RSA of at least 2048 bits. (UnionPay hands merchants a
    /// PKCS#12 file; the operator exports its key to PEM once.)
    pub(super) fn from_pem(text: &str) -> Result<Self, ConnectorError> {
        // The parse error is not echoed: it says nothing useful and must stay away from
        // anything near key material.
        let der = read_private_key(text, false).ok_or_else(|| {
            ConnectorError::Credentials(
                "merchant_private_key_pem is not an RSA private key (PKCS#8 or PKCS#1 PEM)".into(),
            )
        })?;
        let key = RsaSha256Signer::from_pkcs1_der(&der).map_err(|refused| {
            ConnectorError::Credentials(match refused {
                RsaKeyRefused::TooShort => {
                    "merchant_private_key_pem: UnionPay needs an RSA key of at least 2048 bits"
                        .into()
                }
                RsaKeyRefused::Unusable => "merchant_private_key_pem cannot sign (an RSA key of \
                                            2048 to 4096 bits with a public exponent of at \
                                            least 65537 is needed)"
                    .into(),
            })
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
    #[error("signPubKeyCert is not UnionPay's signing certificate (owner {owner:?})")]
    NotUnionPays { owner: String },
    #[error("signPubKeyCert is not one of the pinned signing certificates")]
    NotPinned,
    #[error("signPubKeyCert or its root is outside its validity period")]
    CertificateOutOfValidity,
    #[error("the signature does not verify with signPubKeyCert")]
    Mismatch,
}

/// The certificates UnionPay's signing certificates must be issued by, and the signing
/// certificates already found to be issued by one of them.
pub(super) struct UnionPayTrust {
    anchors: Vec<UnionPayAnchor>,
    pin: UnionPaySigningPin,
    checked: UnionPayCheckedCertificates,
}

/// What makes a certificate issued by the anchors UnionPay's own signing certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnionPaySigningPin {
    /// The third `@`-separated field of the subject's CN, compared exactly.
    pub owner: String,
    /// SHA-256 fingerprints of the DER of the accepted signing certificates; empty accepts
    /// any certificate with the right owner.
    pub fingerprints: Vec<[u8; 32]>,
}

impl UnionPaySigningPin {
    /// Parses fingerprints written as 64 hex digits, with or without `:` between bytes.
    pub(super) fn new(owner: &str, fingerprints: &[String]) -> Result<Self, ConnectorError> {
        let owner = owner.trim();
        if owner.is_empty() || owner.contains('@') {
            return Err(ConnectorError::Credentials(
                "signing_cert_owner must be the owner field of UnionPay's signing certificate \
                 (中国银联股份有限公司 in production), without '@'"
                    .into(),
            ));
        }
        let fingerprints = fingerprints
            .iter()
            .map(|text| {
                let digits: String = text.chars().filter(|c| *c != ':').collect();
                hex::decode(digits.trim())
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| {
                        ConnectorError::Credentials(format!(
                            "signing_cert_sha256: {text:?} is not a SHA-256 fingerprint (64 hex digits)"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(UnionPaySigningPin {
            owner: owner.to_owned(),
            fingerprints,
        })
    }

    /// Whether `cert` (with its exact DER) is the signing certificate this pin names.
    fn check(&self, cert: &UnionPayCertificate) -> Result<(), UnionPaySignatureError> {
        let owner = certificate_owner(&cert.cert).unwrap_or_default();
        if owner != self.owner {
            return Err(UnionPaySignatureError::NotUnionPays { owner });
        }
        if !self.fingerprints.is_empty() {
            let fingerprint: [u8; 32] = Sha256::digest(&cert.der).into();
            if !self.fingerprints.contains(&fingerprint) {
                return Err(UnionPaySignatureError::NotPinned);
            }
        }
        Ok(())
    }
}

/// The owner field of a UnionPay certificate: the third `@`-separated field of the subject's
/// (first) CN, or `None` when there is no CN of that shape.
fn certificate_owner(cert: &Certificate) -> Option<String> {
    const COMMON_NAME: der::asn1::ObjectIdentifier =
        der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");
    let cn = cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == COMMON_NAME)?;
    let text = der::asn1::Utf8StringRef::try_from(&cn.value)
        .map(|s| s.as_str().to_owned())
        .or_else(|_| {
            der::asn1::PrintableStringRef::try_from(&cn.value).map(|s| s.as_str().to_owned())
        })
        .ok()?;
    text.split('@').nth(2).map(str::to_owned)
}

/// One configured issuer: the UnionPay root, or (production) the middle certificate that
/// actually issues UnionPay's signing certificates.
struct UnionPayAnchor {
    subject_der: Vec<u8>,
    key: RsaPkcs1Verifier,
    validity: UnionPayValidity,
}

/// A signing certificate that passed the chain check: everything needed to trust it again
/// without redoing that check. What depends on the time is kept to be checked again.
struct UnionPayCheckedCertificate {
    /// The exact `signPubKeyCert` value it was read from.
    pem: Box<str>,
    key: RsaPkcs1Verifier,
    validity: UnionPayValidity,
    /// The validity of the anchor that issued it.
    anchor_validity: UnionPayValidity,
}

impl UnionPayCheckedCertificate {
    /// The per-answer check: the certificate and its anchor are both valid at `now`.
    fn check_validity(&self, now: DateTime<Utc>) -> Result<(), UnionPaySignatureError> {
        if self.validity.contains(now) && self.anchor_validity.contains(now) {
            Ok(())
        } else {
            Err(UnionPaySignatureError::CertificateOutOfValidity)
        }
    }
}

/// A small cache of checked signing certificates, keyed by their exact text and compared
/// in full (no hash to collide). When full, the oldest entry goes.
struct UnionPayCheckedCertificates {
    entries: Mutex<VecDeque<Arc<UnionPayCheckedCertificate>>>,
    /// How many certificates were put through the chain check, for the tests.
    #[cfg(test)]
    chain_checks: std::sync::atomic::AtomicUsize,
}

impl UnionPayCheckedCertificates {
    fn new() -> Self {
        UnionPayCheckedCertificates {
            entries: Mutex::new(VecDeque::with_capacity(CHECKED_CERTIFICATES)),
            #[cfg(test)]
            chain_checks: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn get(&self, pem: &str) -> Option<Arc<UnionPayCheckedCertificate>> {
        // Nothing panics while the lock is held; a poisoned lock still holds whole entries.
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().find(|e| *e.pem == *pem).cloned()
    }

    fn insert(&self, checked: Arc<UnionPayCheckedCertificate>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Two answers with a new certificate may have been checked at the same time.
        if entries.iter().any(|e| e.pem == checked.pem) {
            return;
        }
        while entries.len() >= CHECKED_CERTIFICATES {
            entries.pop_front();
        }
        entries.push_back(checked);
    }
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
    pub(super) fn from_pem(text: &str, pin: UnionPaySigningPin) -> Result<Self, ConnectorError> {
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
            let key = parsed.verifier().map_err(|e| credentials(e.to_string()))?;
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
        Ok(UnionPayTrust {
            anchors,
            pin,
            checked: UnionPayCheckedCertificates::new(),
        })
    }

    /// Checks a signed message: `signPubKeyCert` must be issued by an anchor, be UnionPay's
    /// own signing certificate (the pin), both valid at `now`, and `signature` must verify with its key over the 5.1.0 digest of all fields.
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
        let certificate = self.signing_certificate(cert_pem, now)?;
        // A `+` that was not percent-encoded arrives as a space after form decoding; Base64
        // has no spaces, so mapping them back cannot make a wrong signature right.
        let signature = BASE64
            .decode(signature.trim().replace(' ', "+"))
            .map_err(|_| UnionPaySignatureError::Mismatch)?;
        let digest = digest_hex(&sign_content(fields));
        if certificate.key.verify_sha256(digest.as_bytes(), &signature) {
            Ok(())
        } else {
            Err(UnionPaySignatureError::Mismatch)
        }
    }

    /// A signing certificate that chains to one of the anchors, both valid at `now`. The
    /// chain check is done once per certificate text (then remembered); the validity periods
    /// of the certificate and of its anchor are checked every time.
    fn signing_certificate(
        &self,
        cert_pem: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<UnionPayCheckedCertificate>, UnionPaySignatureError> {
        if let Some(checked) = self.checked.get(cert_pem) {
            checked.check_validity(now)?;
            return Ok(checked);
        }
        let checked = Arc::new(self.check_certificate(cert_pem, now)?);
        self.checked.insert(Arc::clone(&checked));
        Ok(checked)
    }

    /// The full check of a signing certificate not seen before: readable, issued by an
    /// anchor (issuer name and signature), UnionPay's own (the pin), both valid at `now`, an
    /// RSA key `ring` takes. Only a certificate that passes all of it is remembered.
    fn check_certificate(
        &self,
        cert_pem: &str,
        now: DateTime<Utc>,
    ) -> Result<UnionPayCheckedCertificate, UnionPaySignatureError> {
        #[cfg(test)]
        self.checked
            .chain_checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        self.pin.check(&parsed)?;
        let validity = UnionPayValidity::of(&parsed.cert)
            .ok_or_else(|| unreadable(&"unreadable validity period"))?;
        let anchor_validity = anchor.validity;
        if !validity.contains(now) || !anchor_validity.contains(now) {
            return Err(UnionPaySignatureError::CertificateOutOfValidity);
        }
        let key = parsed.verifier().map_err(|e| unreadable(&e))?;
        Ok(UnionPayCheckedCertificate {
            pem: cert_pem.into(),
            key,
            validity,
            anchor_validity,
        })
    }

    /// How many signing certificates were put through the chain check so far.
    #[cfg(test)]
    pub(super) fn chain_checks(&self) -> usize {
        self.checked
            .chain_checks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many checked signing certificates are remembered.
    #[cfg(test)]
    pub(super) fn checked_certificates(&self) -> usize {
        self.checked
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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

/// Signature algorithms accepted on certificates: RSA PKCS#1 v1.5 with SHA-2
/// (sha256/384/512WithRSAEncryption). SHA-1 and MD5 certificates are refused as forgeable.
fn cert_signature_hash(oid: &der::asn1::ObjectIdentifier) -> Option<RsaPkcs1Hash> {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.11" => Some(RsaPkcs1Hash::Sha256),
        "1.2.840.113549.1.1.12" => Some(RsaPkcs1Hash::Sha384),
        "1.2.840.113549.1.1.13" => Some(RsaPkcs1Hash::Sha512),
        _ => None,
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

    /// The certificate's RSA public key, refused below 2048 bits (or when `ring` cannot use it).
    fn verifier(&self) -> Result<RsaPkcs1Verifier, String> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| e.to_string())?;
        let key = spki_public_key(&spki).ok_or("the certificate's key is not RSA")?;
        RsaPkcs1Verifier::from_pkcs1_der(&key).map_err(|refused| {
            match refused {
                RsaKeyRefused::TooShort => "the certificate's RSA key is shorter than 2048 bits",
                RsaKeyRefused::Unusable => "the certificate's RSA key is unusable",
            }
            .to_owned()
        })
    }

    /// Whether `issuer_key` made this certificate's signature.
    fn is_signed_by(&self, issuer_key: &RsaPkcs1Verifier) -> bool {
        let outer = &self.cert.signature_algorithm;
        // RFC 5280 §4.1.1.2: the outer algorithm must equal the one inside the signed part,
        // or an attacker could relabel the signature.
        if *outer != self.cert.tbs_certificate.signature || !params_absent_or_null(outer) {
            return false;
        }
        let Some(hash) = cert_signature_hash(&outer.oid) else {
            return false;
        };
        let Some(signature) = self.cert.signature.as_bytes() else {
            return false;
        };
        let Ok(tbs) = signed_part(&self.der) else {
            return false;
        };
        // `ring` hashes the signed part itself.
        issuer_key.verify(hash, tbs, signature)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pin() -> UnionPaySigningPin {
        UnionPaySigningPin::new(crate::unionpay::UNIONPAY_SIGNING_CERT_OWNER, &[]).unwrap()
    }

    /// A remembered certificate is refused once its anchor (not only itself) has expired,
    /// as the full check would.
    #[test]
    fn a_remembered_certificate_is_refused_once_its_anchor_expired() {
        let fields: Vec<(String, String)> =
            url::form_urlencoded::parse(include_bytes!("fixtures/consume_paid.form"))
                .into_owned()
                .collect();
        let pairs = || fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let now: DateTime<Utc> = "2024-03-15T04:00:05Z".parse().unwrap();
        let mut trust =
            UnionPayTrust::from_pem(include_str!("fixtures/test_root_ca.pem"), pin()).unwrap();
        // The root ends ten seconds from `now`; the signing certificate runs until 2044.
        for anchor in &mut trust.anchors {
            anchor.validity.not_after = now.timestamp() + 10;
        }
        assert_eq!(trust.verify(pairs(), now), Ok(()));
        assert_eq!(trust.checked_certificates(), 1);
        let later = now + chrono::Duration::seconds(11);
        assert_eq!(
            trust.verify(pairs(), later),
            Err(UnionPaySignatureError::CertificateOutOfValidity)
        );
        assert_eq!(trust.chain_checks(), 1, "answered from the cache");
        // A trust that never saw the certificate says the same.
        let mut fresh =
            UnionPayTrust::from_pem(include_str!("fixtures/test_root_ca.pem"), pin()).unwrap();
        for anchor in &mut fresh.anchors {
            anchor.validity.not_after = now.timestamp() + 10;
        }
        assert_eq!(
            fresh.verify(pairs(), later),
            Err(UnionPaySignatureError::CertificateOutOfValidity)
        );
    }
}
