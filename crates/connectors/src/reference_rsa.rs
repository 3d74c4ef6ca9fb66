//! The wallets' side of RSA in unit tests: PKCS#1 v1.5 / SHA-256 signatures made and checked
//! with `ring` directly, independently of `crate::rsa_pkcs1` (the code under test). The keys
//! are the fixtures' PKCS#8 PEM files, read here with `der`'s PEM decoder and handed to
//! `ring` as PKCS#8; certificates' keys are taken from their SubjectPublicKeyInfo here too.

use ring::rand::SystemRandom;
use ring::signature::{
    RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use x509_cert::der::DecodePem;

/// A private key that signs as a wallet (or a merchant) would.
pub(crate) struct ReferenceSigner(RsaKeyPair);

impl ReferenceSigner {
    /// From a `BEGIN PRIVATE KEY` (PKCS#8) PEM fixture.
    pub(crate) fn from_pkcs8_pem(pem: &str) -> Self {
        let (label, der) = x509_cert::der::pem::decode_vec(pem.trim().as_bytes()).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        ReferenceSigner(RsaKeyPair::from_pkcs8(&der).unwrap())
    }

    /// The RSA PKCS#1 v1.5 signature of `message` with SHA-256.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .unwrap();
        signature
    }
}

/// Whether `signature` is the RSA PKCS#1 v1.5 / SHA-256 signature of `message` by the key of
/// the PEM certificate `cert_pem`.
pub(crate) fn verify_with_certificate(cert_pem: &str, message: &[u8], signature: &[u8]) -> bool {
    let cert = x509_cert::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let spki = &cert.tbs_certificate.subject_public_key_info;
    assert_eq!(spki.algorithm.oid.to_string(), "1.2.840.113549.1.1.1");
    let pkcs1 = spki.subject_public_key.raw_bytes();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pkcs1)
        .verify(message, signature)
        .is_ok()
}
