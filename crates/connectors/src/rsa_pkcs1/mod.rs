//! RSA keys and RSA PKCS#1 v1.5 signatures (Alipay RSA2, UnionPay ACP and the certificates
//! that vouch for UnionPay's keys).
//!
//! Keys are read with RustCrypto's encoding crates (`pem-rfc7468` through `der`, `pkcs8`,
//! `spki`, `pkcs1`), which only decode ASN.1, and every signature is made and verified with
//! `ring`. No RSA arithmetic is done outside `ring`: the `rsa` crate is not a dependency
//! (RUSTSEC-2023-0071, a timing side channel in its private-key operations, has no fixed
//! release; `deny.toml` bans it).
//!
//! Whatever the encoding a key arrives in, it is reduced here to PKCS#1 DER (RSAPrivateKey or
//! RSAPublicKey), which is what `ring` reads. Wallet modules say which encodings they accept
//! and turn `None` / [`RsaKeyRefused`] into their own configuration errors.

use der::pem::PemLabel;
use der::{Decode, Encode, Tagged};
use ring::rand::SystemRandom;
use ring::signature::{
    RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384,
    RSA_PKCS1_2048_8192_SHA512, RSA_PKCS1_SHA256,
};
use spki::SubjectPublicKeyInfoRef;
use zeroize::Zeroizing;

/// The smallest modulus `ring` verifies with, in bytes (2048 bits, rounded up to bytes as
/// `ring` does).
const RING_MIN_MODULUS_BYTES: usize = 256;
/// The largest modulus `ring` verifies with, in bits.
const RING_MAX_MODULUS_BITS: usize = 8192;
/// The largest public exponent `ring` verifies with (2^33 - 1).
const RING_MAX_PUBLIC_EXPONENT: u64 = (1 << 33) - 1;

/// `rsaEncryption` (RFC 8017 appendix C), the algorithm of an RSA key in PKCS#8 and SPKI.
const RSA_ENCRYPTION: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Why a well-formed RSA key cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RsaKeyRefused {
    /// A modulus shorter than 2048 bits.
    TooShort,
    /// Anything else `ring` refuses: a modulus over 8192 bits (over 4096 to sign), an even
    /// modulus, a public exponent that is even or outside `3..=2^33-1` (under 65537 to sign),
    /// a private key whose parts do not belong together, more than two primes.
    Unusable,
}

// ---------------------------------------------------------------------------------------------
// Reading keys

/// A key read from its text: the PEM label (`None` for bare Base64) and the DER.
struct KeyText {
    label: Option<String>,
    der: Zeroizing<Vec<u8>>,
}

/// Reads `text` as one PEM block, or (with `bare_base64`) as Base64 DER without armour, with
/// line breaks and spaces from copy-paste ignored.
fn key_text(text: &str, bare_base64: bool) -> Option<KeyText> {
    let text = text.trim();
    if text.contains("-----BEGIN") {
        let (label, der) = der::pem::decode_vec(text.as_bytes()).ok()?;
        return Some(KeyText {
            label: Some(label.to_owned()),
            der: Zeroizing::new(der),
        });
    }
    if !bare_base64 {
        return None;
    }
    use base64::Engine as _;
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()?;
    Some(KeyText {
        label: None,
        der: Zeroizing::new(der),
    })
}

/// Whether an algorithm identifier is `rsaEncryption` with NULL (or, tolerated, absent)
/// parameters.
fn is_rsa_encryption(algorithm: &spki::AlgorithmIdentifierRef<'_>) -> bool {
    algorithm.oid == RSA_ENCRYPTION
        && algorithm
            .parameters
            .as_ref()
            .is_none_or(|p| p.tag() == der::Tag::Null && p.value().is_empty())
}

/// The PKCS#1 RSAPrivateKey inside a PKCS#8 PrivateKeyInfo, if it holds an RSA key.
fn pkcs8_to_pkcs1(der: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let info = pkcs8::PrivateKeyInfo::from_der(der).ok()?;
    if !is_rsa_encryption(&info.algorithm) {
        return None;
    }
    // Checked here so that the caller can tell "not a key" from "a key ring refuses".
    pkcs1::RsaPrivateKey::from_der(info.private_key).ok()?;
    Some(Zeroizing::new(info.private_key.to_vec()))
}

/// `der` itself when it is a PKCS#1 RSAPrivateKey.
fn pkcs1_private(der: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    pkcs1::RsaPrivateKey::from_der(der).ok()?;
    Some(Zeroizing::new(der.to_vec()))
}

/// An RSA private key as PKCS#1 DER, from PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
/// (`BEGIN RSA PRIVATE KEY`) PEM, or, with `bare_base64`, from the Base64 of either DER
/// (what Alipay's key tool prints). `None` when the text is none of these.
pub(crate) fn read_private_key(text: &str, bare_base64: bool) -> Option<Zeroizing<Vec<u8>>> {
    let KeyText { label, der } = key_text(text, bare_base64)?;
    match label.as_deref() {
        Some(pkcs8::PrivateKeyInfo::PEM_LABEL) => pkcs8_to_pkcs1(&der),
        Some(pkcs1::RsaPrivateKey::PEM_LABEL) => pkcs1_private(&der),
        Some(_) => None,
        None => pkcs8_to_pkcs1(&der).or_else(|| pkcs1_private(&der)),
    }
}

/// The PKCS#1 RSAPublicKey inside a SubjectPublicKeyInfo, if it holds an RSA key.
fn spki_to_pkcs1(spki: &SubjectPublicKeyInfoRef<'_>) -> Option<Vec<u8>> {
    if !is_rsa_encryption(&spki.algorithm) {
        return None;
    }
    let bits = spki.subject_public_key.as_bytes()?;
    pkcs1::RsaPublicKey::from_der(bits).ok()?;
    Some(bits.to_vec())
}

fn spki_der_to_pkcs1(der: &[u8]) -> Option<Vec<u8>> {
    spki_to_pkcs1(&SubjectPublicKeyInfoRef::from_der(der).ok()?)
}

fn pkcs1_public(der: &[u8]) -> Option<Vec<u8>> {
    pkcs1::RsaPublicKey::from_der(der).ok()?;
    Some(der.to_vec())
}

/// An RSA public key as PKCS#1 DER, from SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`) or PKCS#1
/// (`BEGIN RSA PUBLIC KEY`) PEM, or, with `bare_base64`, from the Base64 of either DER (what
/// Alipay's open platform shows). `None` when the text is none of these.
pub(crate) fn read_public_key(text: &str, bare_base64: bool) -> Option<Vec<u8>> {
    let KeyText { label, der } = key_text(text, bare_base64)?;
    match label.as_deref() {
        Some(spki::SubjectPublicKeyInfoRef::PEM_LABEL) => spki_der_to_pkcs1(&der),
        Some(pkcs1::RsaPublicKey::PEM_LABEL) => pkcs1_public(&der),
        Some(_) => None,
        None => spki_der_to_pkcs1(&der).or_else(|| pkcs1_public(&der)),
    }
}

/// The RSA public key of a certificate's SubjectPublicKeyInfo (DER) as PKCS#1 DER; `None`
/// when it is not an RSA key.
pub(crate) fn spki_public_key(spki_der: &[u8]) -> Option<Vec<u8>> {
    spki_der_to_pkcs1(spki_der)
}

// ---------------------------------------------------------------------------------------------
// Signing

pub(crate) struct RsaSha256Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl RsaSha256Signer {
    /// A signer for a PKCS#1 RSAPrivateKey (as [`read_private_key`] gives). `ring` signs with
    /// keys of 2048 to 4096 bits whose public exponent is at least 65537; the key's parts
    /// must belong together.
    pub(crate) fn from_pkcs1_der(der: &[u8]) -> Result<Self, RsaKeyRefused> {
        let parts = pkcs1::RsaPrivateKey::from_der(der).map_err(|_| RsaKeyRefused::Unusable)?;
        if parts.modulus.as_bytes().len() < RING_MIN_MODULUS_BYTES {
            return Err(RsaKeyRefused::TooShort);
        }
        let key = RsaKeyPair::from_der(der).map_err(|_| RsaKeyRefused::Unusable)?;
        let signer = RsaSha256Signer {
            key,
            rng: SystemRandom::new(),
        };
        // `ring` does not check the public exponent against the private parts when it reads
        // a key, but checks every signature it makes against the public key; one signature
        // now turns a key whose parts do not belong together into an error at load time
        // rather than at the first payment.
        signer
            .sign(b"qrgate: key check")
            .ok_or(RsaKeyRefused::Unusable)?;
        Ok(signer)
    }

    /// The signature of `message` (hashed with SHA-256 here).
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .ok()?;
        Some(signature)
    }
}

// ---------------------------------------------------------------------------------------------
// Verifying

/// The hash inside a PKCS#1 v1.5 signature. Answers are signed with SHA-256; certificates may
/// also be signed with SHA-384 or SHA-512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RsaPkcs1Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// A public key that verifies RSA PKCS#1 v1.5 signatures with `ring`.
///
/// `ring` reads the key again on each verification (its public API keeps no parsed public
/// key) and then cannot tell a key it refuses from a wrong signature; so its conditions on
/// the key are checked once, here, and a key accepted here is one `ring` verifies with.
pub(crate) struct RsaPkcs1Verifier {
    pkcs1_der: Vec<u8>,
}

impl RsaPkcs1Verifier {
    /// A verifier for a PKCS#1 RSAPublicKey (as [`read_public_key`] gives), refused unless
    /// `ring` takes it: an odd modulus of 2048 (rounded up to whole bytes, as `ring` does) to
    /// 8192 bits, an odd public exponent in `3..=2^33-1`.
    pub(crate) fn from_pkcs1_der(der: &[u8]) -> Result<Self, RsaKeyRefused> {
        let key = pkcs1::RsaPublicKey::from_der(der).map_err(|_| RsaKeyRefused::Unusable)?;
        // `UintRef` holds the big-endian bytes without leading zeros.
        let n = key.modulus.as_bytes();
        let e = key.public_exponent.as_bytes();
        if n.len() < RING_MIN_MODULUS_BYTES {
            return Err(RsaKeyRefused::TooShort);
        }
        // With no leading zero byte, the modulus has more than 8192 bits exactly when it has
        // more than 1024 bytes.
        let n_too_long = n.len() > RING_MAX_MODULUS_BITS / 8;
        let n_odd = n.last().is_some_and(|low| low & 1 == 1);
        let e_value = (e.len() <= 8).then(|| {
            e.iter()
                .fold(0u64, |value, byte| (value << 8) | u64::from(*byte))
        });
        let e_ok =
            e_value.is_some_and(|e| e % 2 == 1 && (3..=RING_MAX_PUBLIC_EXPONENT).contains(&e));
        if n_too_long || !n_odd || !e_ok {
            return Err(RsaKeyRefused::Unusable);
        }
        // Re-encoded, so that `ring` reads canonical DER whatever the input's was.
        let pkcs1_der = key.to_der().map_err(|_| RsaKeyRefused::Unusable)?;
        Ok(RsaPkcs1Verifier { pkcs1_der })
    }

    /// Whether `signature` is this key's PKCS#1 v1.5 signature of `message` (which `ring`
    /// hashes with `hash`). A signature of the wrong length simply does not verify.
    pub(crate) fn verify(&self, hash: RsaPkcs1Hash, message: &[u8], signature: &[u8]) -> bool {
        let algorithm = match hash {
            RsaPkcs1Hash::Sha256 => &RSA_PKCS1_2048_8192_SHA256,
            RsaPkcs1Hash::Sha384 => &RSA_PKCS1_2048_8192_SHA384,
            RsaPkcs1Hash::Sha512 => &RSA_PKCS1_2048_8192_SHA512,
        };
        UnparsedPublicKey::new(algorithm, &self.pkcs1_der)
            .verify(message, signature)
            .is_ok()
    }

    /// [`Self::verify`] with SHA-256, what Alipay's and UnionPay's messages are signed with.
    pub(crate) fn verify_sha256(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify(RsaPkcs1Hash::Sha256, message, signature)
    }
}

#[cfg(test)]
mod tests;
