//! RSA PKCS#1 v1.5 signatures (Alipay RSA2, UnionPay ACP and the certificates that vouch for
//! UnionPay's keys): keys are parsed and checked with the `rsa` crate (every PEM form
//! merchants paste), signatures are made and verified with `ring`, whose assembly big-number
//! code is much faster. RSA signing was half the gateway's CPU under load, and verifying the
//! wallets' answers with the `rsa` crate a tenth more (docs/BENCHMARKS.md). PKCS#1 v1.5 is
//! deterministic: the signature is the same whichever library makes it, and a signature
//! verifies with one library exactly when it verifies with the other (tested below).

use ring::rand::SystemRandom;
use ring::signature::{
    RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384,
    RSA_PKCS1_2048_8192_SHA512, RSA_PKCS1_SHA256,
};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

/// The smallest modulus `ring` verifies with, in bytes (2048 bits, rounded up to bytes as
/// `ring` does).
const RING_MIN_MODULUS_BYTES: usize = 256;
/// The largest modulus `ring` verifies with, in bytes (8192 bits).
const RING_MAX_MODULUS_BYTES: usize = 1024;

pub(crate) struct RsaSha256Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl RsaSha256Signer {
    /// `None` when the key cannot be used for signing (ring takes 2048- to 8192-bit keys).
    pub(crate) fn new(key: &RsaPrivateKey) -> Option<Self> {
        let der = key.to_pkcs1_der().ok()?;
        let key = RsaKeyPair::from_der(der.as_bytes()).ok()?;
        Some(RsaSha256Signer {
            key,
            rng: SystemRandom::new(),
        })
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
/// The key's PKCS#1 DER is computed once, here; `ring` reads it again on each verification
/// (its public API keeps no parsed public key), which costs little next to the `rsa` crate's
/// modular exponentiation that this replaces.
pub(crate) struct RsaPkcs1Verifier {
    pkcs1_der: Vec<u8>,
}

impl RsaPkcs1Verifier {
    /// `None` when `ring` would refuse the key: a modulus outside 2048..=8192 bits (rounded
    /// up to whole bytes, as `ring` does). The connectors refuse keys under 2048 bits anyway,
    /// and the `rsa` crate builds no key over 4096 bits. `ring`'s other conditions (odd
    /// modulus, odd exponent in `3..=2^33-1`) are the `rsa` crate's too, checked when it
    /// built `key`. So a key accepted here is one `ring` verifies with, and no verification
    /// fails because of the key rather than the signature.
    pub(crate) fn new(key: &RsaPublicKey) -> Option<Self> {
        if !(RING_MIN_MODULUS_BYTES..=RING_MAX_MODULUS_BYTES).contains(&key.size()) {
            return None;
        }
        let der = key.to_pkcs1_der().ok()?;
        Some(RsaPkcs1Verifier {
            pkcs1_der: der.as_bytes().to_vec(),
        })
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
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
    use rsa::signature::{SignatureEncoding, Signer, Verifier};
    use sha2::{Sha256, Sha384, Sha512};

    fn messages() -> [&'static [u8]; 3] {
        [
            &b""[..],
            b"app_id=2021&method=alipay.trade.pay",
            &[0xff; 3000],
        ]
    }

    #[test]
    fn signatures_are_those_of_the_rsa_crate() {
        let mut rng = rand::thread_rng();
        let key = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let ours = RsaSha256Signer::new(&key).unwrap();
        let reference = SigningKey::<Sha256>::new(key);
        for message in messages() {
            assert_eq!(
                ours.sign(message).unwrap(),
                reference.sign(message).to_vec()
            );
        }
    }

    /// What the `rsa` crate says of `signature` over `message`.
    fn rsa_crate_verifies(
        key: &RsaPublicKey,
        hash: RsaPkcs1Hash,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let Ok(signature) = Signature::try_from(signature) else {
            return false;
        };
        let key = key.clone();
        match hash {
            RsaPkcs1Hash::Sha256 => VerifyingKey::<Sha256>::new(key)
                .verify(message, &signature)
                .is_ok(),
            RsaPkcs1Hash::Sha384 => VerifyingKey::<Sha384>::new(key)
                .verify(message, &signature)
                .is_ok(),
            RsaPkcs1Hash::Sha512 => VerifyingKey::<Sha512>::new(key)
                .verify(message, &signature)
                .is_ok(),
        }
    }

    fn rsa_crate_signs(key: &RsaPrivateKey, hash: RsaPkcs1Hash, message: &[u8]) -> Vec<u8> {
        let key = key.clone();
        match hash {
            RsaPkcs1Hash::Sha256 => SigningKey::<Sha256>::new(key).sign(message).to_vec(),
            RsaPkcs1Hash::Sha384 => SigningKey::<Sha384>::new(key).sign(message).to_vec(),
            RsaPkcs1Hash::Sha512 => SigningKey::<Sha512>::new(key).sign(message).to_vec(),
        }
    }

    /// Asserts that ring and the rsa crate give the same answer, and that it is `expected`.
    fn assert_both(
        ours: &RsaPkcs1Verifier,
        key: &RsaPublicKey,
        hash: RsaPkcs1Hash,
        message: &[u8],
        signature: &[u8],
        expected: bool,
    ) {
        let reference = rsa_crate_verifies(key, hash, message, signature);
        let ring = ours.verify(hash, message, signature);
        assert_eq!(
            (ring, reference),
            (expected, expected),
            "{hash:?}, message of {} bytes, signature of {} bytes",
            message.len(),
            signature.len()
        );
    }

    /// Two of the test keys (the Alipay fixtures'); generating keys is slow in debug builds.
    fn fixture_keys() -> (RsaPrivateKey, RsaPrivateKey) {
        use rsa::pkcs8::DecodePrivateKey;
        let app = include_str!("alipay/fixtures/test_app_private_key_pkcs8.pem");
        let alipay = include_str!("alipay/fixtures/test_alipay_private_key_pkcs8.pem");
        (
            RsaPrivateKey::from_pkcs8_pem(app).unwrap(),
            RsaPrivateKey::from_pkcs8_pem(alipay).unwrap(),
        )
    }

    #[test]
    fn verification_agrees_with_the_rsa_crate() {
        let (first, second) = fixture_keys();
        for (key, other) in [(&first, &second), (&second, &first)] {
            let public = key.to_public_key();
            let ours = RsaPkcs1Verifier::new(&public).unwrap();
            for hash in [
                RsaPkcs1Hash::Sha256,
                RsaPkcs1Hash::Sha384,
                RsaPkcs1Hash::Sha512,
            ] {
                for message in messages() {
                    let signature = rsa_crate_signs(key, hash, message);
                    assert_both(&ours, &public, hash, message, &signature, true);

                    // A tampered message: one bit flipped, one byte added.
                    let mut flipped = message.to_vec();
                    match flipped.first_mut() {
                        Some(byte) => *byte ^= 0x01,
                        None => flipped.push(0),
                    }
                    assert_both(&ours, &public, hash, &flipped, &signature, false);
                    let mut longer = message.to_vec();
                    longer.push(b'&');
                    assert_both(&ours, &public, hash, &longer, &signature, false);

                    // A tampered signature: a bit flipped at either end, truncated,
                    // lengthened, empty, all zeros.
                    for index in [0, signature.len() - 1] {
                        let mut tampered = signature.clone();
                        tampered[index] ^= 0x01;
                        assert_both(&ours, &public, hash, message, &tampered, false);
                    }
                    let cut = &signature[..signature.len() - 1];
                    assert_both(&ours, &public, hash, message, cut, false);
                    let mut padded = vec![0];
                    padded.extend_from_slice(&signature);
                    assert_both(&ours, &public, hash, message, &padded, false);
                    assert_both(&ours, &public, hash, message, &[], false);
                    let zeros = vec![0; signature.len()];
                    assert_both(&ours, &public, hash, message, &zeros, false);

                    // Another key's signature, and another hash's.
                    let foreign = rsa_crate_signs(other, hash, message);
                    assert_both(&ours, &public, hash, message, &foreign, false);
                    let other_hash = match hash {
                        RsaPkcs1Hash::Sha256 => RsaPkcs1Hash::Sha512,
                        _ => RsaPkcs1Hash::Sha256,
                    };
                    assert_both(&ours, &public, other_hash, message, &signature, false);
                }
            }
            // Our own signer's signatures verify too.
            let signer = RsaSha256Signer::new(key).unwrap();
            let signature = signer.sign(b"txnAmt=1000").unwrap();
            assert!(ours.verify_sha256(b"txnAmt=1000", &signature));
            assert!(!ours.verify_sha256(b"txnAmt=1001", &signature));
        }
    }

    #[test]
    fn keys_ring_would_refuse_are_refused_when_loaded() {
        let mut rng = rand::thread_rng();
        let small = RsaPrivateKey::new(&mut rng, 1024).unwrap().to_public_key();
        assert!(RsaPkcs1Verifier::new(&small).is_none());
        let good = fixture_keys().0.to_public_key();
        assert!(RsaPkcs1Verifier::new(&good).is_some());
        // The rsa crate already refuses what ring would refuse besides the size.
        let n = good.n().clone();
        for e in [1u32, 2, 65536] {
            assert!(
                RsaPublicKey::new(n.clone(), rsa::BigUint::from(e)).is_err(),
                "{e}"
            );
        }
        assert!(RsaPublicKey::new(n + 1u32, rsa::BigUint::from(65537u32)).is_err());
    }
}
