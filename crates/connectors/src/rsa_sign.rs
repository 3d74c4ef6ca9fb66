//! RSA PKCS#1 v1.5 with SHA-256 signing (Alipay RSA2, UnionPay ACP): keys are parsed and
//! checked with the `rsa` crate (every PEM form merchants paste), signatures are made with
//! `ring`, whose assembly big-number code is much faster. RSA signing was half the gateway's
//! CPU under load (docs/BENCHMARKS.md). PKCS#1 v1.5 is deterministic: the signature is the
//! same whichever library makes it.

use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::RsaPrivateKey;

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

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::SigningKey;
    use rsa::signature::{SignatureEncoding, Signer};

    #[test]
    fn signatures_are_those_of_the_rsa_crate() {
        let mut rng = rand::thread_rng();
        let key = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let ours = RsaSha256Signer::new(&key).unwrap();
        let reference = SigningKey::<sha2::Sha256>::new(key);
        for message in [
            &b""[..],
            b"app_id=2021&method=alipay.trade.pay",
            &[0xff; 3000],
        ] {
            assert_eq!(
                ours.sign(message).unwrap(),
                reference.sign(message).to_vec()
            );
        }
    }
}
