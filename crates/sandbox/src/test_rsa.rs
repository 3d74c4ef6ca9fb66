//! The test-side clients' RSA: PKCS#1 v1.5 / SHA-256 with `ring` directly, independently of
//! `crate::rsa_sha256` and of the wallet modules' key reading (the code under test).

use ring::signature::{
    RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use spki::der::Decode;

/// A private key as a test-side client holds it.
pub(crate) struct TestKey(RsaKeyPair);

impl TestKey {
    /// From a `BEGIN PRIVATE KEY` (PKCS#8) PEM text.
    pub(crate) fn from_pkcs8_pem(pem: &str) -> TestKey {
        let (label, der) = spki::der::pem::decode_vec(pem.trim().as_bytes()).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        TestKey(RsaKeyPair::from_pkcs8(&der).unwrap())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .unwrap();
        signature
    }

    /// The public key as PKCS#1 RSAPublicKey DER.
    pub(crate) fn public_pkcs1(&self) -> Vec<u8> {
        self.0.public().as_ref().to_vec()
    }
}

/// A public key as a test-side client holds it: PKCS#1 RSAPublicKey DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestPublicKey(pub Vec<u8>);

impl TestPublicKey {
    /// From SubjectPublicKeyInfo DER (an RSA key).
    pub(crate) fn from_spki_der(der: &[u8]) -> TestPublicKey {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der).unwrap();
        assert_eq!(spki.algorithm.oid.to_string(), "1.2.840.113549.1.1.1");
        TestPublicKey(spki.subject_public_key.raw_bytes().to_vec())
    }

    /// From a `BEGIN PUBLIC KEY` PEM text.
    pub(crate) fn from_spki_pem(pem: &str) -> TestPublicKey {
        let (label, der) = spki::der::pem::decode_vec(pem.trim().as_bytes()).unwrap();
        assert_eq!(label, "PUBLIC KEY");
        Self::from_spki_der(&der)
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}
