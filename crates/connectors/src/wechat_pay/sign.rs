//! WeChat Pay API v2 signatures (`wallets.md` §1.2) and the refund-notification cipher (§1.7).
//!
//! One algorithm serves requests, responses and notifications: every non-empty field except
//! `sign`, sorted by name in byte order, joined as `k=v&…`, then `&key=<API key>`, hashed with
//! MD5 or HMAC-SHA256 (keyed with the API key too) and printed as upper-case hex. Verification
//! always runs over every field received, never over a fixed list, because WeChat adds fields.
//!
//! Nothing here logs, and every buffer that holds the API key is zeroed on drop.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyInit};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// How v2 messages are signed. MD5 is the wallet's default when `sign_type` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WechatPaySignType {
    Md5,
    HmacSha256,
}

impl WechatPaySignType {
    /// The value of the `sign_type` field.
    pub(super) fn wire_name(self) -> &'static str {
        match self {
            WechatPaySignType::Md5 => "MD5",
            WechatPaySignType::HmacSha256 => "HMAC-SHA256",
        }
    }

    pub(super) fn from_wire_name(name: &str) -> Option<Self> {
        match name {
            "MD5" => Some(WechatPaySignType::Md5),
            "HMAC-SHA256" => Some(WechatPaySignType::HmacSha256),
            _ => None,
        }
    }

    /// The algorithm a message signed with the other one would need: used only to tolerate
    /// notifications whose sign type is not stated (`wallets.md` §10, open point 1).
    pub(super) fn other(self) -> Self {
        match self {
            WechatPaySignType::Md5 => WechatPaySignType::HmacSha256,
            WechatPaySignType::HmacSha256 => WechatPaySignType::Md5,
        }
    }
}

/// `stringA` of §1.2: the non-empty fields except `sign`, in byte order of their names.
///
/// The caller passes the fields already sorted (a `BTreeMap` over `str` keys sorts by bytes),
/// so that the order can never depend on a hash seed.
pub(super) fn string_to_sign<'a>(
    sorted_fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut joined = String::new();
    for (name, value) in sorted_fields {
        if name == "sign" || value.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push('&');
        }
        joined.push_str(name);
        joined.push('=');
        joined.push_str(value);
    }
    joined
}

/// The signature of `string_a` (see [`string_to_sign`]) as upper-case hex.
///
/// `None` only if the HMAC cannot be keyed, which HMAC allows for any key length; callers
/// treat it as unusable credentials rather than sending or accepting an unsigned message.
pub(super) fn sign_string(
    string_a: &str,
    api_key: &SecretString,
    sign_type: WechatPaySignType,
) -> Option<String> {
    let key = api_key.expose_secret();
    // `stringSignTemp` contains the key, so it is zeroed once hashed.
    let mut message = Zeroizing::new(String::with_capacity(string_a.len() + 5 + key.len()));
    message.push_str(string_a);
    message.push_str("&key=");
    message.push_str(key);
    let digest = match sign_type {
        WechatPaySignType::Md5 => Md5::digest(message.as_bytes()).to_vec(),
        WechatPaySignType::HmacSha256 => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).ok()?;
            mac.update(message.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    Some(hex::encode_upper(digest))
}

/// Signs a set of sorted fields.
pub(super) fn sign_fields<'a>(
    sorted_fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    api_key: &SecretString,
    sign_type: WechatPaySignType,
) -> Option<String> {
    sign_string(&string_to_sign(sorted_fields), api_key, sign_type)
}

/// Whether `received_sign` is the signature of the other received fields.
///
/// The comparison is case-sensitive (WeChat sends upper-case hex) and takes the same time
/// wherever the first difference is, so that a forger learns nothing from timing.
pub(super) fn verify_fields<'a>(
    sorted_fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    received_sign: &str,
    api_key: &SecretString,
    sign_type: WechatPaySignType,
) -> bool {
    match sign_fields(sorted_fields, api_key, sign_type) {
        Some(expected) => constant_time_eq(expected.as_bytes(), received_sign.as_bytes()),
        None => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The AES-256 key of refund notifications: the lower-case hex MD5 of the API key, used as its
/// 32 ASCII bytes (not the 16 raw digest bytes).
pub(super) fn refund_notify_key(api_key: &SecretString) -> Zeroizing<String> {
    Zeroizing::new(hex::encode(Md5::digest(api_key.expose_secret().as_bytes())))
}

/// Why a refund notification's `req_info` could not be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum WechatPayReqInfoError {
    #[error("req_info is not Base64")]
    NotBase64,
    /// Wrong key or tampered ciphertext: PKCS#7 padding did not check out.
    #[error("req_info does not decrypt under this merchant's key")]
    Undecryptable,
    #[error("req_info plaintext is not UTF-8")]
    NotUtf8,
}

/// Decrypts `req_info` (Base64 of AES-256-ECB with PKCS#7 padding) into the inner XML.
///
/// ECB gives no integrity; what authenticates the message is that only a holder of the API key
/// can produce ciphertext that decrypts to well-padded XML carrying our order numbers.
pub(super) fn decrypt_req_info(
    req_info: &str,
    api_key: &SecretString,
) -> Result<String, WechatPayReqInfoError> {
    let ciphertext = base64::engine::general_purpose::STANDARD
        .decode(req_info.trim())
        .map_err(|_| WechatPayReqInfoError::NotBase64)?;
    let key = refund_notify_key(api_key);
    let decryptor = ecb::Decryptor::<aes::Aes256>::new_from_slice(key.as_bytes())
        .map_err(|_| WechatPayReqInfoError::Undecryptable)?;
    let plaintext = decryptor
        .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
        .map_err(|_| WechatPayReqInfoError::Undecryptable)?;
    String::from_utf8(plaintext).map_err(|_| WechatPayReqInfoError::NotUtf8)
}
