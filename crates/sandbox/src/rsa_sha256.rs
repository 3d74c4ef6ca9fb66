//! RSA PKCS#1 v1.5 with SHA-256 (Alipay's RSA2, UnionPay's `signMethod=01`), computed by
//! `ring` where it can and by the `rsa` crate otherwise.
//!
//! Under load the `rsa` crate's big-number arithmetic was most of the sandbox's CPU, so the
//! keys, still parsed and checked by the `rsa` crate (every PEM form), are handed to `ring`
//! once, when they are loaded. `ring` refuses some keys the `rsa` crate takes (moduli under
//! 2048 bits, private keys over 4096 bits or with a public exponent under 65537, multi-prime
//! keys); those keep the `rsa` crate's slower path, so every key that worked before still
//! works. PKCS#1 v1.5 is deterministic: both paths give the same bytes (tested below).
//!
//! Wallet modules build one [`RsaSha256Signer`] or [`RsaSha256Verifier`] per key and keep it;
//! nothing here parses PEM or knows a wire format.

use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// The smallest and largest moduli `ring` verifies with (`RSA_PKCS1_2048_8192_SHA256`).
const RING_VERIFY_MODULUS_BITS_MIN: usize = 2048;
const RING_VERIFY_MODULUS_BITS_MAX: usize = 8192;
/// The largest public exponent `ring` accepts (2^33 - 1).
const RING_PUBLIC_EXPONENT_MAX: u64 = (1 << 33) - 1;

/// The signature could not be computed (no randomness for `ring`'s blinding, or a key the
/// `rsa` crate cannot use after all).
#[derive(Debug, thiserror::Error)]
#[error("RSA-SHA256 signing failed")]
pub(crate) struct RsaSignError;

/// A private key ready to sign; build it once per key.
pub(crate) struct RsaSha256Signer {
    backend: SignerBackend,
}

enum SignerBackend {
    Ring {
        key_pair: ring::signature::RsaKeyPair,
        rng: ring::rand::SystemRandom,
    },
    RsaCrate(SigningKey<Sha256>),
}

impl RsaSha256Signer {
    /// Hands `key` to `ring` if `ring` takes it, else keeps it for the `rsa` crate.
    pub(crate) fn new(key: &RsaPrivateKey) -> RsaSha256Signer {
        let ring_key_pair = key
            .to_pkcs1_der()
            .ok()
            .and_then(|der| ring::signature::RsaKeyPair::from_der(der.as_bytes()).ok());
        let backend = match ring_key_pair {
            Some(key_pair) => SignerBackend::Ring {
                key_pair,
                rng: ring::rand::SystemRandom::new(),
            },
            None => SignerBackend::RsaCrate(SigningKey::new(key.clone())),
        };
        RsaSha256Signer { backend }
    }

    /// The signature of `message` (hashed with SHA-256 here), as many bytes as the modulus.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RsaSignError> {
        match &self.backend {
            SignerBackend::Ring { key_pair, rng } => {
                let mut signature = vec![0; key_pair.public().modulus_len()];
                key_pair
                    .sign(
                        &ring::signature::RSA_PKCS1_SHA256,
                        rng,
                        message,
                        &mut signature,
                    )
                    .map_err(|_| RsaSignError)?;
                Ok(signature)
            }
            SignerBackend::RsaCrate(key) => key
                .try_sign(message)
                .map(|signature| signature.to_vec())
                .map_err(|_| RsaSignError),
        }
    }

    /// Whether `ring` signs with this key (for tests).
    #[cfg(test)]
    fn uses_ring(&self) -> bool {
        matches!(self.backend, SignerBackend::Ring { .. })
    }
}

/// A public key ready to verify; build it once per key.
#[derive(Debug, Clone)]
pub(crate) struct RsaSha256Verifier {
    backend: VerifierBackend,
}

#[derive(Debug, Clone)]
enum VerifierBackend {
    Ring(ring::signature::UnparsedPublicKey<Vec<u8>>),
    RsaCrate(VerifyingKey<Sha256>),
}

impl RsaSha256Verifier {
    /// Uses `ring` for a key within `ring`'s limits, else the `rsa` crate.
    ///
    /// `ring` parses a public key only when it verifies, and then cannot tell a key it
    /// refuses from a wrong signature, so its limits are checked here (a little more strictly
    /// than `ring` does: it rounds the modulus length up to whole bytes).
    pub(crate) fn new(key: &RsaPublicKey) -> RsaSha256Verifier {
        let ring_der = if within_ring_verify_limits(key) {
            key.to_pkcs1_der().ok()
        } else {
            None
        };
        let backend = match ring_der {
            Some(der) => VerifierBackend::Ring(ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                der.as_bytes().to_vec(),
            )),
            None => VerifierBackend::RsaCrate(VerifyingKey::new(key.clone())),
        };
        RsaSha256Verifier { backend }
    }

    /// Whether `signature` is a valid signature of `message` (hashed with SHA-256 here).
    /// A signature of the wrong length simply does not verify.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.backend {
            VerifierBackend::Ring(key) => key.verify(message, signature).is_ok(),
            VerifierBackend::RsaCrate(key) => {
                let Ok(signature) = Signature::try_from(signature) else {
                    return false;
                };
                key.verify(message, &signature).is_ok()
            }
        }
    }

    /// Whether `ring` verifies with this key (for tests).
    #[cfg(test)]
    fn uses_ring(&self) -> bool {
        matches!(self.backend, VerifierBackend::Ring(_))
    }
}

/// `ring`'s conditions on a public key for `RSA_PKCS1_2048_8192_SHA256`: an odd modulus of
/// 2048 to 8192 bits, an odd public exponent from 3 to 2^33 - 1.
fn within_ring_verify_limits(key: &RsaPublicKey) -> bool {
    let n = key.n();
    let e = key.e();
    (RING_VERIFY_MODULUS_BITS_MIN..=RING_VERIFY_MODULUS_BITS_MAX).contains(&n.bits())
        && is_odd(n)
        && is_odd(e)
        && *e >= BigUint::from(3u8)
        && *e <= BigUint::from(RING_PUBLIC_EXPONENT_MAX)
}

fn is_odd(number: &BigUint) -> bool {
    number
        .to_bytes_le()
        .first()
        .is_some_and(|lowest| lowest & 1 == 1)
}

#[cfg(test)]
mod unit {
    use rsa::pkcs8::DecodePrivateKey;

    use super::*;

    /// Every fixture private key of the sandbox (all RSA-2048, PKCS#8).
    const FIXTURE_KEYS: [&str; 4] = [
        include_str!("alipay/keys/app_private.pem"),
        include_str!("alipay/keys/alipay_private.pem"),
        include_str!("unionpay/pki/merchant_key.pem"),
        include_str!("unionpay/pki/signing_key.pem"),
    ];

    /// A throwaway RSA-1024 key (`openssl genpkey`), used only here.
    const TEST_KEY_1024_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIICdQIBADANBgkqhkiG9w0BAQEFAASCAl8wggJbAgEAAoGBAOQLzoRjV7OhI6NL
UiL9ntR8WZgm9VZ+utvk/g9AXMJ42t9teSuJKQn3ruwnioMyzA1+Vi8h7xoFr68W
RYAbhlm4Zk1j30Vo2VnOzhAwEfkELNhah7Ps7FFWH11tH4qRW3YdxkHUC7L9o+RC
eBcSCwkN3HjccsdB/AZ4cZ1QXvWhAgMBAAECgYASSDgIOQag6fw3bSRqlbaUBlwQ
bJ8ijgpg8pzDkD9ff9zcKKScLuTRXb/yQsFB/2KIemZiZPAMQARznu93c71zcSW6
Eciakzm4RkfpRo0XnOlr9VT+YHSj0Q2ypmp06VRPBlNdV72wce6ivHpENry86+c0
ajRs1H94fM7LRD2heQJBAPtJoYbHNxNxCmRzKHela3rtSjjTov92bykZ9HkvB2Hv
UkoP4VkCdrKWDWSFst/A52ywiBdXEbTF23/XQ8fGLjMCQQDoUplfQPei3ZD/vHlJ
myAykLAzyFmN6Q487dd0hN0LTn9/AoBK8XLiJUrHGEP9OwsWZbZtKvVWCl1vuKcm
hNDbAkBYmFMss5wFbLtfQwKnfFjylCqw8lzreJQkh5QcDaqqqrf2iLbIrQewWxsJ
r+Gq5dYyCeNRZ09EzuVeo0SwcHzlAkBys91fhy78rVIawY5MhheGf6NPXbrBcvCB
qpg2wiZ0n6QZLD31QnKLLwhVdiiTTWRzAXLpQU1x1po9P7jfLrIDAkBytZ/LNzuY
TcEspIg6BNMyNMFVzmN73shFyYWfOxmZ+bOWunKzkGIt4Ac2q1VS71VXsSxX+AXU
EFqWnX2H2x7a
-----END PRIVATE KEY-----
";

    const MESSAGES: [&[u8]; 4] = [
        b"",
        b"a",
        b"app_id=2021000000000001&biz_content={\"out_trade_no\":\"1\"}&charset=utf-8",
        "45a01fa62a785e6689d2f8a25b597e3d42a00934eb53035244fd63eef5ac7ea4 \u{4e2d}".as_bytes(),
    ];

    fn rsa_crate_signature(key: &RsaPrivateKey, message: &[u8]) -> Vec<u8> {
        SigningKey::<Sha256>::new(key.clone())
            .sign(message)
            .to_vec()
    }

    fn rsa_crate_verifies(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::try_from(signature) else {
            return false;
        };
        VerifyingKey::<Sha256>::new(key.clone())
            .verify(message, &signature)
            .is_ok()
    }

    #[test]
    fn ring_signs_the_fixture_keys_byte_for_byte_as_the_rsa_crate() {
        for pem in FIXTURE_KEYS {
            let key = RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
            let signer = RsaSha256Signer::new(&key);
            assert!(signer.uses_ring());
            for message in MESSAGES {
                let signature = signer.sign(message).unwrap();
                assert_eq!(signature.len(), 256);
                assert_eq!(signature, rsa_crate_signature(&key, message));
            }
        }
    }

    #[test]
    fn ring_verifies_good_signatures_and_refuses_tampered_ones() {
        for pem in FIXTURE_KEYS {
            let key = RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
            let public = RsaPublicKey::from(&key);
            let verifier = RsaSha256Verifier::new(&public);
            assert!(verifier.uses_ring());
            for message in MESSAGES {
                let signature = rsa_crate_signature(&key, message);
                assert!(verifier.verify(message, &signature));

                let mut flipped = signature.clone();
                flipped[17] ^= 0x01;
                assert!(!verifier.verify(message, &flipped));
                assert!(!rsa_crate_verifies(&public, message, &flipped));

                let mut other_message = message.to_vec();
                other_message.push(b'&');
                assert!(!verifier.verify(&other_message, &signature));

                assert!(!verifier.verify(message, &signature[1..]));
                assert!(!verifier.verify(message, &[]));
            }
        }
        // Another key's signature does not verify.
        let one = RsaPrivateKey::from_pkcs8_pem(FIXTURE_KEYS[0]).unwrap();
        let other = RsaPrivateKey::from_pkcs8_pem(FIXTURE_KEYS[1]).unwrap();
        let verifier = RsaSha256Verifier::new(&RsaPublicKey::from(&other));
        assert!(!verifier.verify(b"a", &rsa_crate_signature(&one, b"a")));
    }

    #[test]
    fn keys_ring_refuses_keep_the_rsa_crate() {
        // Too small for ring, still usable as before.
        let key = RsaPrivateKey::from_pkcs8_pem(TEST_KEY_1024_PEM).unwrap();
        let public = RsaPublicKey::from(&key);
        let signer = RsaSha256Signer::new(&key);
        let verifier = RsaSha256Verifier::new(&public);
        assert!(!signer.uses_ring());
        assert!(!verifier.uses_ring());
        for message in MESSAGES {
            let signature = signer.sign(message).unwrap();
            assert_eq!(signature, rsa_crate_signature(&key, message));
            assert!(verifier.verify(message, &signature));
            let mut flipped = signature.clone();
            flipped[0] ^= 0x01;
            assert!(!verifier.verify(message, &flipped));
        }
    }
}
