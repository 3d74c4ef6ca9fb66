//! Digest, key derivation and the AES-128-ECB "seal"/"open" of transaction data
//! (ottpay.md §4).

use std::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyInit};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use serde_json::{Number, Value};

/// Transaction data: a JSON object whose insertion order is preserved
/// (`serde_json` is built with `preserve_order`).
pub type Data = serde_json::Map<String, Value>;

/// MD5 of the empty string: the `md5` of an empty data object `{}`.
pub const EMPTY_DIGEST: &str = "D41D8CD98F00B204E9800998ECF8427E";

/// A merchant sign key (ottpay.md §2).
///
/// The key is an opaque ASCII string used verbatim (no trimming, no case change).
/// `Debug` never prints it: it renders as `SignKey(***)`.
#[derive(Clone)]
pub struct SignKey(String);

impl SignKey {
    /// Wraps a sign key. The string is used exactly as given.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The key text, for the few places that really need it (key derivation, storage).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignKey(***)")
    }
}

/// Result of [`seal`]: the two envelope fields `data` and `md5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Standard base64 (single line, `=` padded) of the AES-128-ECB ciphertext.
    pub data: String,
    /// 32 upper-case hex digits: the §4.1 digest of the transaction data.
    pub md5: String,
}

/// Why [`open`] rejected a `data`/`md5` pair.
///
/// The `Display` texts are one line of plain ASCII without `+` or `%`, so they can be
/// put into an `rsp_msg` as they are.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// `data` is not base64, even after the §4.4 clean-up.
    #[error("data is not valid base64")]
    Base64,
    /// The ciphertext is empty or not a whole number of 16-byte blocks.
    #[error("data has an invalid ciphertext length")]
    Length,
    /// PKCS#7 padding is wrong after decryption: almost always a wrong sign key.
    #[error("decryption failed: wrong sign key or corrupted data")]
    Padding,
    /// The plaintext is not UTF-8 JSON, or the `data`/`md5` field is missing altogether.
    #[error("data is missing or does not decrypt to valid JSON")]
    NotJson,
    /// The plaintext is JSON but not an object.
    #[error("decrypted data is not a JSON object")]
    NotObject,
    /// The digest of the decrypted data differs from the `md5` field.
    #[error("md5 does not match the data: wrong sign key or tampered data")]
    DigestMismatch,
    /// The `md5` field is not 32 hexadecimal characters.
    #[error("md5 field is not 32 hexadecimal characters")]
    BadDigestField,
}

/// How JSON numbers are rendered in the digest input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NumberStyle {
    /// serde_json's text of the number: `100`, `100.0`, `1.5`.
    Literal,
    /// Integral numbers as `N.0` (Java `double` style): `100` -> `100.0`.
    Java,
    /// Integral numbers without a fraction: `100.0` -> `100`.
    Integer,
}

/// Upper-case hex of `bytes`.
fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Compact JSON text of a data object.
pub(crate) fn to_compact_json(data: &Data) -> String {
    // Serialising a `Map<String, Value>` cannot fail (string keys, plain values);
    // the fallback only exists to avoid a panic path.
    serde_json::to_string(data).unwrap_or_else(|_| String::from("{}"))
}

/// True for an integral finite float small enough to print exactly without exponent.
fn integral_float(f: f64) -> bool {
    f.is_finite() && f.fract() == 0.0 && f.abs() < 1e17
}

fn render_number(n: &Number, style: NumberStyle, out: &mut String) {
    use fmt::Write as _;
    let integral_int = n.is_i64() || n.is_u64();
    let float = n.as_f64().filter(|f| !integral_int && integral_float(*f));
    // Writing into a String cannot fail.
    let _ = match (style, integral_int, float) {
        (NumberStyle::Java, true, _) => write!(out, "{n}.0"),
        (NumberStyle::Java, false, Some(f)) => write!(out, "{f:.1}"),
        (NumberStyle::Integer, false, Some(f)) => write!(out, "{f:.0}"),
        _ => write!(out, "{n}"),
    };
}

fn render_value(v: &Value, style: NumberStyle, out: &mut String) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => render_number(n, style, out),
        Value::Array(_) | Value::Object(_) => out.push_str(&v.to_string()),
    }
}

fn digest_with(data: &Data, style: NumberStyle) -> String {
    let mut keys: Vec<&String> = data.keys().collect();
    // `str` ordering is byte-wise on UTF-8, as §4.1 / §11.4 require.
    keys.sort_unstable();
    let mut text = String::new();
    for k in keys {
        if let Some(v) = data.get(k) {
            render_value(v, style, &mut text);
        }
    }
    hex_upper(&Md5::digest(text.as_bytes()))
}

/// The §4.1 message digest of `data`: the values (not the keys) concatenated in byte-wise
/// ascending key order, MD5, 32 upper-case hex digits. The sign key is not involved.
///
/// Value rendering (§4.6): strings as-is; `null` and `""` contribute nothing; numbers as
/// their JSON text (`100`, `1.5`; a float that was written `100.0` renders `100.0`);
/// booleans `true`/`false`; arrays and objects as compact JSON.
pub fn digest(data: &Data) -> String {
    digest_with(data, NumberStyle::Literal)
}

/// Like [`digest`], but integral numbers render Java-double style: `100` -> `100.0`
/// (what some JavaScript clients compute, §4.6). Identical to [`digest`] when `data`
/// holds no numbers.
pub fn digest_java_style(data: &Data) -> String {
    digest_with(data, NumberStyle::Java)
}

/// AES key derivation (§4.2): `upper(hex(MD5(upper(md5) || key)))[8..24]`, the 16 ASCII
/// characters themselves being the AES-128 key bytes.
///
/// The `md5` field is ASCII-upper-cased first, as the spec states the key input is the
/// upper-case digest; it is otherwise used as given (no validation, no trimming).
pub fn derive_aes_key(md5: &str, key: &SignKey) -> [u8; 16] {
    derive_key_raw(&md5.to_ascii_uppercase(), key)
}

/// Key derivation over the `md5` text exactly as given.
fn derive_key_raw(md5: &str, key: &SignKey) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(md5.as_bytes());
    h.update(key.expose().as_bytes());
    let hex = hex_upper(&h.finalize());
    let mut out = [0u8; 16];
    for (dst, src) in out.iter_mut().zip(hex.bytes().skip(8)) {
        *dst = src;
    }
    out
}

fn encrypt_with_key(plaintext: &[u8], aes_key: &[u8; 16]) -> String {
    let ct = ecb::Encryptor::<aes::Aes128>::new(aes_key.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    STANDARD.encode(ct)
}

/// Encrypts `plaintext` under the key derived from `md5` and `key` (AES-128-ECB, PKCS#7)
/// and returns single-line standard base64.
///
/// Low-level building block of [`seal`]: the caller is responsible for `md5` being the
/// digest of `plaintext`. Useful to emulate clients that serialise JSON differently.
pub fn encrypt_with_md5(plaintext: &[u8], md5: &str, key: &SignKey) -> String {
    encrypt_with_key(plaintext, &derive_aes_key(md5, key))
}

/// Seals transaction data for an envelope (§4): compact JSON in insertion order with
/// non-ASCII characters unescaped, §4.1 digest, derived key, AES-128-ECB with PKCS#7,
/// single-line standard base64. Never fails.
///
/// To stay compatible with every client (§13.5) `data` should hold JSON strings only;
/// other values are sealed faithfully but may be digested differently by clients.
pub fn seal(data: &Data, key: &SignKey) -> Sealed {
    let md5 = digest(data);
    let plaintext = to_compact_json(data);
    let data = encrypt_with_md5(plaintext.as_bytes(), &md5, key);
    Sealed { data, md5 }
}

/// Base64 engine used for decoding: standard alphabet, padding optional, and
/// non-zero trailing bits tolerated.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// §4.4 clean-up: drop ASCII whitespace; a space becomes `+` when `space_is_plus`,
/// otherwise it is dropped too.
fn clean_base64(s: &str, space_is_plus: bool) -> String {
    s.chars()
        .filter_map(|c| match c {
            ' ' if space_is_plus => Some('+'),
            c if c.is_ascii_whitespace() => None,
            c => Some(c),
        })
        .collect()
}

/// Tolerant base64 decoding (§4.4): whitespace removed, a space taken as a `+` damaged by
/// URL decoding, `=` padding optional.
pub(crate) fn decode_base64_lenient(s: &str, space_is_plus: bool) -> Option<Vec<u8>> {
    LENIENT_B64.decode(clean_base64(s, space_is_plus)).ok()
}

fn decrypt_with_key(
    data_b64: &str,
    space_is_plus: bool,
    aes_key: &[u8; 16],
) -> Result<Vec<u8>, OpenError> {
    let ct = decode_base64_lenient(data_b64, space_is_plus).ok_or(OpenError::Base64)?;
    if ct.is_empty() || ct.len() % 16 != 0 {
        return Err(OpenError::Length);
    }
    ecb::Decryptor::<aes::Aes128>::new(aes_key.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&ct)
        .map_err(|_| OpenError::Padding)
}

/// True if `md5` is exactly 32 ASCII hex digits (either case).
fn valid_digest_field(md5: &str) -> bool {
    md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Base64-decodes (tolerantly, §4.4) and decrypts `data_b64` under the key derived from
/// `md5` and `key`, returning the plaintext bytes after PKCS#7 removal.
///
/// No JSON parsing and no digest check: use [`open`] for that.
pub fn decrypt_with_md5(data_b64: &str, md5: &str, key: &SignKey) -> Result<Vec<u8>, OpenError> {
    if !valid_digest_field(md5) {
        return Err(OpenError::BadDigestField);
    }
    decrypt_with_key(data_b64, true, &derive_aes_key(md5, key))
}

fn has_top_level_numbers(data: &Data) -> bool {
    data.values().any(Value::is_number)
}

/// Parses the plaintext and checks the digest.
fn verify(plaintext: &[u8], md5: &str) -> Result<Data, OpenError> {
    let value: Value = serde_json::from_slice(plaintext).map_err(|_| OpenError::NotJson)?;
    let Value::Object(data) = value else {
        return Err(OpenError::NotObject);
    };
    if digest(&data).eq_ignore_ascii_case(md5) {
        return Ok(data);
    }
    if has_top_level_numbers(&data)
        && (digest_with(&data, NumberStyle::Java).eq_ignore_ascii_case(md5)
            || digest_with(&data, NumberStyle::Integer).eq_ignore_ascii_case(md5))
    {
        return Ok(data);
    }
    Err(OpenError::DigestMismatch)
}

fn open_once(
    data_b64: &str,
    md5: &str,
    space_is_plus: bool,
    aes_key: &[u8; 16],
) -> Result<Data, OpenError> {
    let plaintext = decrypt_with_key(data_b64, space_is_plus, aes_key)?;
    verify(&plaintext, md5)
}

/// Opens an envelope's `data` with its `md5` field and the merchant's sign key (§4.5).
///
/// Contract:
/// - `md5` must be 32 hex digits, either case, else [`OpenError::BadDigestField`].
/// - `data` is cleaned per §4.4: ASCII whitespace is removed and a literal space is read
///   as `+` (URL-decoding damage); `=` padding is optional. If that fails and `data`
///   contains spaces, a second attempt treats the spaces as line-wrap and drops them.
/// - The ciphertext must be a non-empty multiple of 16 bytes ([`OpenError::Length`]) with
///   valid PKCS#7 padding ([`OpenError::Padding`]); the plaintext must be UTF-8 JSON
///   ([`OpenError::NotJson`]) holding an object ([`OpenError::NotObject`]).
/// - The [`digest`] of the object must equal `md5`, compared case-insensitively. If it
///   does not and the object has JSON number values, the Java-style `N.0` rendering
///   ([`digest_java_style`]) and a plain-integer rendering (`100.0` as `100`) are also
///   accepted. Otherwise [`OpenError::DigestMismatch`].
/// - The key is derived from the upper-cased `md5` ([`derive_aes_key`]); if `md5` has
///   lower-case letters and that fails, the key derived from `md5` verbatim is tried too
///   (clients that keep their digest lower-case).
///
/// On success the returned object is exactly what was encrypted (keys in their order).
pub fn open(data_b64: &str, md5: &str, key: &SignKey) -> Result<Data, OpenError> {
    if !valid_digest_field(md5) {
        return Err(OpenError::BadDigestField);
    }
    let upper = md5.to_ascii_uppercase();
    let mut keys = vec![derive_key_raw(&upper, key)];
    if upper != md5 {
        keys.push(derive_key_raw(md5, key));
    }
    let mut spaces = vec![true];
    if data_b64.contains(' ') {
        spaces.push(false);
    }
    let mut first_err = None;
    for aes_key in &keys {
        for &space_is_plus in &spaces {
            match open_once(data_b64, md5, space_is_plus, aes_key) {
                Ok(data) => return Ok(data),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    Err(first_err.unwrap_or(OpenError::DigestMismatch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_upper() {
        assert_eq!(hex_upper(&[0x00, 0xab, 0x7f]), "00AB7F");
    }

    #[test]
    fn empty_digest() {
        assert_eq!(digest(&Data::new()), EMPTY_DIGEST);
    }

    #[test]
    fn debug_hides_key() {
        assert_eq!(format!("{:?}", SignKey::new("secret")), "SignKey(***)");
    }

    #[test]
    fn number_rendering() {
        let data: Data = serde_json::from_str(
            r#"{"a":100,"b":1.5,"c":100.0,"d":-3,"e":null,"f":"","g":true,"h":[1,"x"]}"#,
        )
        .unwrap();
        let lit = {
            let mut s = String::new();
            for v in data.values() {
                render_value(v, NumberStyle::Literal, &mut s);
            }
            s
        };
        assert_eq!(lit, "1001.5100.0-3true[1,\"x\"]");
        let java = {
            let mut s = String::new();
            for v in data.values() {
                render_value(v, NumberStyle::Java, &mut s);
            }
            s
        };
        assert_eq!(java, "100.01.5100.0-3.0true[1,\"x\"]");
        let int = {
            let mut s = String::new();
            for v in data.values() {
                render_value(v, NumberStyle::Integer, &mut s);
            }
            s
        };
        assert_eq!(int, "1001.5100-3true[1,\"x\"]");
    }

    #[test]
    fn bad_digest_field() {
        let k = SignKey::new("k");
        assert_eq!(open("AAAA", "xyz", &k), Err(OpenError::BadDigestField));
        assert_eq!(
            open("AAAA", &"G".repeat(32), &k),
            Err(OpenError::BadDigestField)
        );
    }

    #[test]
    fn length_and_base64_errors() {
        let k = SignKey::new("k");
        assert_eq!(open("", EMPTY_DIGEST, &k), Err(OpenError::Length));
        assert_eq!(open("AAAA", EMPTY_DIGEST, &k), Err(OpenError::Length));
        assert_eq!(open("!!!!", EMPTY_DIGEST, &k), Err(OpenError::Base64));
    }

    #[test]
    fn lower_case_md5_with_verbatim_key() {
        let k = SignKey::new("6698851A525C9433");
        let data: Data = serde_json::from_str(r#"{"fee_type":"CAD"}"#).unwrap();
        let md5 = digest(&data).to_ascii_lowercase();
        // Client derived its key from the lower-case text.
        let ct = encrypt_with_key(br#"{"fee_type":"CAD"}"#, &derive_key_raw(&md5, &k));
        assert_eq!(open(&ct, &md5, &k).unwrap(), data);
        // And from the upper-case text.
        let ct = encrypt_with_md5(br#"{"fee_type":"CAD"}"#, &md5, &k);
        assert_eq!(open(&ct, &md5, &k).unwrap(), data);
    }

    #[test]
    fn spaces_as_line_wrap() {
        let k = SignKey::new("6698851A525C9433");
        let data: Data = serde_json::from_str(r#"{"a":"x"}"#).unwrap();
        let s = seal(&data, &k);
        let wrapped: String = s
            .data
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                if i > 0 && i % 8 == 0 {
                    vec![' ', c]
                } else {
                    vec![c]
                }
            })
            .collect();
        assert_eq!(open(&wrapped, &s.md5, &k).unwrap(), data);
    }
}
