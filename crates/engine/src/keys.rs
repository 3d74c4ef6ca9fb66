//! Sign keys and the master key that protects them at rest.
//!
//! A merchant's sign key is generated here (16 upper-case hex characters, the shape OTTPAY
//! issues, `ottpay.md` §2 and §13.6), shown once, and stored encrypted with AES-256-GCM under
//! the gateway's master key. The merchant id is the associated data, so an encrypted key moved
//! to another merchant's row does not decrypt.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// `meta` key under which the master key's check value is recorded.
pub(crate) const MASTER_KEY_CHECK: &str = "master_key_check";
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key must be 64 hex characters (32 bytes)")]
    InvalidFormat,
    #[error(
        "the master key does not match the one this database's sign keys were encrypted with; \
         start with the original key (QRGATE_MASTER_KEY, master_key_file, or master.key in the \
         data directory)"
    )]
    Mismatch,
    #[error("a stored sign key could not be decrypted: wrong master key or corrupt row")]
    Decrypt,
}

/// The 256-bit key that encrypts sign keys at rest. Never printed.
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        MasterKey(bytes)
    }

    /// Parses 64 hex characters (surrounding whitespace ignored, as in a key file).
    pub fn from_hex(text: &str) -> Result<MasterKey, MasterKeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| MasterKeyError::InvalidFormat)?;
        Ok(MasterKey(bytes))
    }

    /// The hex form, for writing the key file. Handle with care.
    pub fn to_hex(&self) -> SecretString {
        SecretString::from(hex::encode(self.0))
    }

    /// A value that identifies the key without revealing it: SHA-256 of a fixed label and
    /// the key (the key is 256 random bits, so the hash gives nothing away).
    pub(crate) fn check_value(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(b"qrgate master key check v1:");
        hash.update(self.0);
        hex::encode(hash.finalize())
    }

    /// A key for digests of request content (HMAC), derived so the master key itself never
    /// keys anything but encryption.
    pub(crate) fn digest_key(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(b"qrgate request digest key v1:");
        hash.update(self.0);
        hash.finalize().into()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }

    /// Encrypts `key` for `merchant_id`: version byte, 96-bit random nonce, ciphertext and tag.
    pub(crate) fn seal(&self, merchant_id: &str, key: &SignKeyPlain) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: key.expose().as_bytes(),
            aad: merchant_id.as_bytes(),
        };
        // AES-GCM encryption only fails for messages beyond 64 GiB.
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub(crate) fn open(
        &self,
        merchant_id: &str,
        sealed: &[u8],
    ) -> Result<SignKeyPlain, MasterKeyError> {
        let (version, rest) = sealed.split_first().ok_or(MasterKeyError::Decrypt)?;
        if *version != FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(MasterKeyError::Decrypt);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: merchant_id.as_bytes(),
        };
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| MasterKeyError::Decrypt)?;
        String::from_utf8(plain)
            .map(|s| SignKeyPlain(SecretString::from(s)))
            .map_err(|_| MasterKeyError::Decrypt)
    }
}

/// A merchant's sign key in clear, as it is shown once and used to encode POS messages.
/// `Debug` never prints it.
#[derive(Clone)]
pub struct SignKeyPlain(SecretString);

impl std::fmt::Debug for SignKeyPlain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignKeyPlain(***)")
    }
}

impl SignKeyPlain {
    /// A fresh key: 16 upper-case hex characters from the OS's random source (64 bits).
    pub fn generate() -> SignKeyPlain {
        let mut bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SignKeyPlain(SecretString::from(hex::encode_upper(bytes)))
    }

    /// A key the merchant already has (moved from another gateway), checked for the form
    /// OTTPAY issues: upper-case hex (`ottpay.md` §13.6: one client upper-cases its key, so
    /// a lower-case key would not work with it), 16 characters as a rule, 14 in an old sample
    /// (§2); accepted from [`SIGN_KEY_MIN_LEN`] to [`SIGN_KEY_MAX_LEN`]. Surrounding
    /// whitespace is ignored. The error never contains the key.
    pub fn parse(text: &str) -> Result<SignKeyPlain, SignKeyFormatError> {
        let key = text.trim();
        if key.is_empty() {
            return Err(SignKeyFormatError::Empty);
        }
        if !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SignKeyFormatError::NotHex);
        }
        if key.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(SignKeyFormatError::LowerCase);
        }
        if !(SIGN_KEY_MIN_LEN..=SIGN_KEY_MAX_LEN).contains(&key.len()) {
            return Err(SignKeyFormatError::Length(key.len()));
        }
        Ok(SignKeyPlain(SecretString::from(key.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// The shortest sign key accepted from another gateway (an old OTTPAY sample has 14 digits).
pub const SIGN_KEY_MIN_LEN: usize = 14;
/// The longest sign key accepted from another gateway.
pub const SIGN_KEY_MAX_LEN: usize = 64;

/// Why a sign key given to qrgate does not have the form OTTPAY keys have. Never holds the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignKeyFormatError {
    #[error("the sign key is empty")]
    Empty,
    #[error("the sign key has characters other than 0-9 and A-F (OTTPAY keys are upper-case hex)")]
    NotHex,
    #[error(
        "the sign key has lower-case letters: OTTPAY keys are upper-case hex, and some POS \
         upper-case their key before use; give it as the POS has it, in upper case"
    )]
    LowerCase,
    #[error("the sign key has {0} characters: expected 14 to 64 (OTTPAY issues 16)")]
    Length(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_keys_look_like_ottpay_keys() {
        let k = SignKeyPlain::generate();
        assert_eq!(k.expose().len(), 16);
        assert!(k
            .expose()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
        assert_ne!(k.expose(), SignKeyPlain::generate().expose());
        assert_eq!(format!("{k:?}"), "SignKeyPlain(***)");
    }

    #[test]
    fn keys_from_another_gateway_must_have_the_ottpay_form() {
        assert_eq!(
            SignKeyPlain::parse(" 6698851A525C9433\n").unwrap().expose(),
            "6698851A525C9433"
        );
        assert!(SignKeyPlain::parse("12345678901234").is_ok(), "14 digits");
        assert!(SignKeyPlain::parse(&"A".repeat(64)).is_ok());
        let refused = [
            ("", SignKeyFormatError::Empty),
            ("  ", SignKeyFormatError::Empty),
            ("6698851a525c9433", SignKeyFormatError::LowerCase),
            ("6698851A525C943G", SignKeyFormatError::NotHex),
            ("6698851A 525C9433", SignKeyFormatError::NotHex),
            ("1234567890123", SignKeyFormatError::Length(13)),
            (&*"A".repeat(65), SignKeyFormatError::Length(65)),
        ];
        for (text, error) in refused {
            let e = SignKeyPlain::parse(text).unwrap_err();
            assert_eq!(e, error, "{text:?}");
            if !text.trim().is_empty() {
                assert!(
                    !e.to_string().contains(text.trim()),
                    "the key is not echoed"
                );
            }
        }
    }

    #[test]
    fn sealed_keys_open_only_for_their_merchant_and_master_key() {
        let master = MasterKey::generate();
        let key = SignKeyPlain::generate();
        let sealed = master.seal("ON00000001", &key);
        assert_eq!(
            master.open("ON00000001", &sealed).unwrap().expose(),
            key.expose()
        );
        assert_eq!(
            master.open("ON00000002", &sealed).unwrap_err(),
            MasterKeyError::Decrypt
        );
        assert_eq!(
            MasterKey::generate()
                .open("ON00000001", &sealed)
                .unwrap_err(),
            MasterKeyError::Decrypt
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(master.open("ON00000001", &tampered).is_err());
        assert!(master.open("ON00000001", &[]).is_err());
        // The same key sealed twice gives different bytes (fresh nonce).
        assert_ne!(master.seal("ON00000001", &key), sealed);
    }

    #[test]
    fn master_keys_round_trip_through_hex() {
        let master = MasterKey::generate();
        let again =
            MasterKey::from_hex(&format!(" {}\n", master.to_hex().expose_secret())).unwrap();
        assert_eq!(again.check_value(), master.check_value());
        assert_eq!(
            MasterKey::from_hex("abc").unwrap_err(),
            MasterKeyError::InvalidFormat
        );
        assert_ne!(MasterKey::generate().check_value(), master.check_value());
    }
}
