//! RSA PKCS#1 v1.5 with SHA-256 (Alipay's RSA2, UnionPay's `signMethod=01`), computed by
//! `ring`.
//!
//! Keys come in as DER (wallet modules read the PEM): private keys as PKCS#8 or PKCS#1,
//! which `ring` reads itself; public keys as SubjectPublicKeyInfo or PKCS#1, the former
//! unwrapped with the `spki` crate. The `rsa` crate is not used (RUSTSEC-2023-0071); so keys
//! `ring` refuses are refused here when loaded, with the reason: moduli under 2048 bits (over
//! 4096 to sign, 8192 to verify), public exponents under 65537 to sign, multi-prime keys.
//!
//! Wallet modules build one [`RsaSha256Signer`] or [`RsaSha256Verifier`] per key and keep it;
//! nothing here knows a wire format.

use ring::signature::{
    RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};

/// The smallest and largest moduli `ring` verifies with (`RSA_PKCS1_2048_8192_SHA256`).
const RING_VERIFY_MODULUS_BITS_MIN: usize = 2048;
const RING_VERIFY_MODULUS_BITS_MAX: usize = 8192;
/// The largest public exponent `ring` accepts (2^33 - 1).
const RING_PUBLIC_EXPONENT_MAX: u64 = (1 << 33) - 1;

/// The `rsaEncryption` algorithm (PKCS#1), as it appears in a SubjectPublicKeyInfo.
const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";

/// The signature could not be computed (no randomness for `ring`'s blinding).
#[derive(Debug, thiserror::Error)]
#[error("RSA-SHA256 signing failed")]
pub(crate) struct RsaSignError;

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RsaKeyError {
    #[error("not an RSA key in that encoding")]
    Malformed,
    /// `ring`'s reason, or ours for a public key (see [`RsaSha256Verifier::from_pkcs1_der`]).
    #[error("an RSA key ring does not take: {0}")]
    Refused(String),
}

/// A private key ready to sign; build it once per key.
pub(crate) struct RsaSha256Signer {
    key_pair: RsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl RsaSha256Signer {
    /// From PKCS#8 PrivateKeyInfo DER (`BEGIN PRIVATE KEY`).
    pub(crate) fn from_pkcs8_der(der: &[u8]) -> Result<RsaSha256Signer, RsaKeyError> {
        Self::checked(RsaKeyPair::from_pkcs8(der))
    }

    /// From PKCS#1 RSAPrivateKey DER (`BEGIN RSA PRIVATE KEY`).
    pub(crate) fn from_pkcs1_der(der: &[u8]) -> Result<RsaSha256Signer, RsaKeyError> {
        Self::checked(RsaKeyPair::from_der(der))
    }

    fn checked(
        key_pair: Result<RsaKeyPair, ring::error::KeyRejected>,
    ) -> Result<RsaSha256Signer, RsaKeyError> {
        // `ring`'s reasons are short names ("InvalidEncoding", "TooSmall", ...).
        let key_pair = key_pair.map_err(|rejected| RsaKeyError::Refused(rejected.to_string()))?;
        let signer = RsaSha256Signer {
            key_pair,
            rng: ring::rand::SystemRandom::new(),
        };
        // `ring` checks each signature against the public key (not the public exponent
        // against the private parts when loading): one signature now refuses a key whose
        // parts do not belong together before it is used.
        signer
            .sign(b"sandbox key check")
            .map_err(|_| RsaKeyError::Refused("InconsistentComponents".to_owned()))?;
        Ok(signer)
    }

    /// The signature of `message` (hashed with SHA-256 here), as many bytes as the modulus.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RsaSignError> {
        let mut signature = vec![0; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .map_err(|_| RsaSignError)?;
        Ok(signature)
    }

    /// The public key as PKCS#1 RSAPublicKey DER.
    #[cfg(test)]
    pub(crate) fn public_key_pkcs1_der(&self) -> Vec<u8> {
        self.key_pair.public().as_ref().to_vec()
    }
}

/// A public key ready to verify; build it once per key.
#[derive(Debug, Clone)]
pub(crate) struct RsaSha256Verifier {
    key: UnparsedPublicKey<Vec<u8>>,
}

impl RsaSha256Verifier {
    /// From SubjectPublicKeyInfo DER (`BEGIN PUBLIC KEY`, or a certificate's key).
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<RsaSha256Verifier, RsaKeyError> {
        use spki::der::Decode;
        let info =
            spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| RsaKeyError::Malformed)?;
        if info.algorithm.oid.to_string() != RSA_ENCRYPTION_OID {
            return Err(RsaKeyError::Malformed);
        }
        let pkcs1 = info
            .subject_public_key
            .as_bytes()
            .ok_or(RsaKeyError::Malformed)?;
        Self::from_pkcs1_der(pkcs1)
    }

    /// From PKCS#1 RSAPublicKey DER (`BEGIN RSA PUBLIC KEY`).
    ///
    /// `ring` parses a public key only when it verifies, and then cannot tell a key it
    /// refuses from a wrong signature, so its limits are checked here (a little more strictly
    /// than `ring` does: it rounds the modulus length up to whole bytes).
    pub(crate) fn from_pkcs1_der(der: &[u8]) -> Result<RsaSha256Verifier, RsaKeyError> {
        use pkcs1::der::{Decode, Encode};
        let key = pkcs1::RsaPublicKey::from_der(der).map_err(|_| RsaKeyError::Malformed)?;
        check_ring_verify_limits(key.modulus.as_bytes(), key.public_exponent.as_bytes())?;
        let canonical = key.to_der().map_err(|_| RsaKeyError::Malformed)?;
        Ok(RsaSha256Verifier {
            key: UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, canonical),
        })
    }

    /// Whether `signature` is a valid signature of `message` (hashed with SHA-256 here).
    /// A signature of the wrong length simply does not verify.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify(message, signature).is_ok()
    }

    /// The public key as PKCS#1 RSAPublicKey DER.
    #[cfg(test)]
    pub(crate) fn public_key_pkcs1_der(&self) -> &[u8] {
        self.key.as_ref()
    }
}

/// `ring`'s conditions on a public key for `RSA_PKCS1_2048_8192_SHA256`: an odd modulus of
/// 2048 to 8192 bits, an odd public exponent from 3 to 2^33 - 1. Both numbers are big-endian
/// without leading zero bytes (as `der` gives them).
fn check_ring_verify_limits(n: &[u8], e: &[u8]) -> Result<(), RsaKeyError> {
    let bits = |number: &[u8]| {
        number.first().map_or(0, |top| {
            number.len() * 8 - usize::try_from(top.leading_zeros()).unwrap_or(8)
        })
    };
    let odd = |number: &[u8]| number.last().is_some_and(|lowest| lowest & 1 == 1);
    if !(RING_VERIFY_MODULUS_BITS_MIN..=RING_VERIFY_MODULUS_BITS_MAX).contains(&bits(n)) {
        return Err(RsaKeyError::Refused(
            "modulus not of 2048 to 8192 bits".to_owned(),
        ));
    }
    if !odd(n) {
        return Err(RsaKeyError::Refused("even modulus".to_owned()));
    }
    let exponent = (e.len() <= 8).then(|| {
        e.iter()
            .fold(0u64, |value, byte| (value << 8) | u64::from(*byte))
    });
    match exponent {
        Some(e) if odd(&e.to_be_bytes()) && (3..=RING_PUBLIC_EXPONENT_MAX).contains(&e) => Ok(()),
        _ => Err(RsaKeyError::Refused(
            "public exponent not odd or not in 3..=2^33-1".to_owned(),
        )),
    }
}

#[cfg(test)]
mod unit;
