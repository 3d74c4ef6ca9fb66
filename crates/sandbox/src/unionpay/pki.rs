//! The sandbox's fixed UnionPay test PKI (`pki/`, see its README) and the little X.509
//! reading the sandbox needs: a certificate's serial number (the merchant's `certId`) and its
//! RSA public key.
//!
//! The keys were generated once with the `openssl` command line and are embedded: `ring`
//! cannot generate RSA keys, and a seeded sandbox must sign byte-identically on every run.
//! The certificate reader is a minimal DER walker of its own (the crate has no X.509
//! dependency); it reads only the fields above and trusts nothing else in the certificate.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::rsa_sha256::{RsaSha256Signer, RsaSha256Verifier};

/// UnionPay's root CA certificate (self-signed; the gateway is configured with it).
pub(crate) const ROOT_CERT_PEM: &str = include_str!("pki/root_cert.pem");
/// UnionPay's signing certificate, issued by the root; sent as `signPubKeyCert`.
pub(crate) const SIGNING_CERT_PEM: &str = include_str!("pki/signing_cert.pem");
/// The key that signs answers and notifications.
pub(crate) const SIGNING_KEY_PEM: &str = include_str!("pki/signing_key.pem");
/// The merchant's certificate, issued by the root; its serial is the `certId`.
pub(crate) const MERCHANT_CERT_PEM: &str = include_str!("pki/merchant_cert.pem");
/// The merchant's key, handed to the gateway through the credentials.
pub(crate) const MERCHANT_KEY_PEM: &str = include_str!("pki/merchant_key.pem");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnionpayPkiError {
    #[error("no `{0}` PEM block")]
    NoPemBlock(&'static str),
    #[error("the PEM body is not Base64")]
    BadBase64,
    #[error("the certificate's DER is not what X.509 prescribes")]
    BadDer,
    #[error("the certificate's key is not an RSA key: {0}")]
    BadPublicKey(String),
    #[error("the private key is not a PKCS#8 RSA key: {0}")]
    BadPrivateKey(String),
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// The DER of the first `-----BEGIN {label}-----` block.
pub(crate) fn pem_block(pem: &str, label: &'static str) -> Result<Vec<u8>, UnionpayPkiError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .map(|i| i + begin.len())
        .ok_or(UnionpayPkiError::NoPemBlock(label))?;
    let stop = pem[start..]
        .find(&end)
        .map(|i| start + i)
        .ok_or(UnionpayPkiError::NoPemBlock(label))?;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64.decode(body).map_err(|_| UnionpayPkiError::BadBase64)
}

/// One DER element: its tag, its content, and everything it spans (header included).
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Reads the DER element at the start of `input`; returns it and the rest.
fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    // Multi-byte tags do not occur in the fields read here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + count)? {
            len = len.checked_mul(256)?.checked_add(usize::from(*b))?;
        }
        (len, 2 + count)
    };
    let end = header.checked_add(len)?;
    let content = input.get(header..end)?;
    let whole = input.get(..end)?;
    let rest = input.get(end..)?;
    Some((
        Tlv {
            tag,
            content,
            whole,
        },
        rest,
    ))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const EXPLICIT_0: u8 = 0xa0;

/// The two things the sandbox reads from a certificate.
#[derive(Debug, Clone)]
pub(crate) struct UnionpayCert {
    /// The serial number in decimal: UnionPay's `certId`.
    pub serial: String,
    /// The certificate's RSA public key, ready to verify signatures.
    pub verifier: RsaSha256Verifier,
}

/// Reads a PEM certificate's serial number and RSA public key.
pub(crate) fn read_cert(pem: &str) -> Result<UnionpayCert, UnionpayPkiError> {
    let (serial, spki) = read_serial_and_spki(pem)?;
    let verifier = RsaSha256Verifier::from_spki_der(&spki)
        .map_err(|e| UnionpayPkiError::BadPublicKey(e.to_string()))?;
    Ok(UnionpayCert { serial, verifier })
}

/// A certificate's serial number (in decimal) and SubjectPublicKeyInfo (DER).
fn read_serial_and_spki(pem: &str) -> Result<(String, Vec<u8>), UnionpayPkiError> {
    let der = pem_block(pem, "CERTIFICATE")?;
    let (cert, _) = read_tlv(&der).ok_or(UnionpayPkiError::BadDer)?;
    let (tbs, _) = read_tlv(cert.content).ok_or(UnionpayPkiError::BadDer)?;
    if cert.tag != SEQUENCE || tbs.tag != SEQUENCE {
        return Err(UnionpayPkiError::BadDer);
    }
    // tbsCertificate: [0] version (optional), serialNumber, signature, issuer, validity,
    // subject, subjectPublicKeyInfo, …
    let mut rest = tbs.content;
    let (mut element, mut after) = read_tlv(rest).ok_or(UnionpayPkiError::BadDer)?;
    if element.tag == EXPLICIT_0 {
        (element, after) = read_tlv(after).ok_or(UnionpayPkiError::BadDer)?;
    }
    if element.tag != INTEGER {
        return Err(UnionpayPkiError::BadDer);
    }
    let serial = decimal(element.content);
    rest = after;
    for _ in 0..4 {
        let (_, next) = read_tlv(rest).ok_or(UnionpayPkiError::BadDer)?;
        rest = next;
    }
    let (spki, _) = read_tlv(rest).ok_or(UnionpayPkiError::BadDer)?;
    if spki.tag != SEQUENCE {
        return Err(UnionpayPkiError::BadDer);
    }
    Ok((serial, spki.whole.to_vec()))
}

/// A non-negative big-endian integer in decimal (serials may exceed 64 bits).
fn decimal(big_endian: &[u8]) -> String {
    let mut number: Vec<u8> = big_endian.iter().copied().skip_while(|b| *b == 0).collect();
    let mut digits = Vec::new();
    while !number.is_empty() {
        // Divide the base-256 number by 10, keeping the remainder as the next digit.
        let mut remainder = 0u32;
        let mut quotient = Vec::with_capacity(number.len());
        for byte in &number {
            let current = remainder * 256 + u32::from(*byte);
            let q = current / 10;
            remainder = current % 10;
            if !(quotient.is_empty() && q == 0) {
                quotient.push(u8::try_from(q).unwrap_or(0));
            }
        }
        digits.push(char::from_digit(remainder, 10).unwrap_or('0'));
        number = quotient;
    }
    if digits.is_empty() {
        return "0".to_owned();
    }
    digits.iter().rev().collect()
}

/// A PKCS#8 PEM RSA private key, ready to sign.
pub(crate) fn read_private_key(pem: &str) -> Result<RsaSha256Signer, UnionpayPkiError> {
    let der = pem_block(pem, "PRIVATE KEY")?;
    RsaSha256Signer::from_pkcs8_der(&der)
        .map_err(|e| UnionpayPkiError::BadPrivateKey(e.to_string()))
}

#[cfg(test)]
mod unit {
    use super::*;

    /// The PKCS#1 public key of a certificate's SubjectPublicKeyInfo.
    fn public_key(spki: &[u8]) -> Vec<u8> {
        RsaSha256Verifier::from_spki_der(spki)
            .unwrap()
            .public_key_pkcs1_der()
            .to_vec()
    }

    #[test]
    fn fixtures_parse_and_match() {
        let (serial, merchant) = read_serial_and_spki(MERCHANT_CERT_PEM).unwrap();
        assert_eq!(serial, super::super::MERCHANT_CERT_ID);
        assert_eq!(read_cert(MERCHANT_CERT_PEM).unwrap().serial, serial);
        let (serial, signing) = read_serial_and_spki(SIGNING_CERT_PEM).unwrap();
        assert_eq!(serial, "69115910859");
        let (serial, root) = read_serial_and_spki(ROOT_CERT_PEM).unwrap();
        assert_eq!(serial, "1");
        // RSA-2048: a 256-byte modulus.
        let root = public_key(&root);
        let modulus = pkcs1::RsaPublicKey::try_from(root.as_slice())
            .unwrap()
            .modulus;
        assert_eq!(modulus.as_bytes().len(), 256);
        let merchant_key = read_private_key(MERCHANT_KEY_PEM).unwrap();
        assert_eq!(merchant_key.public_key_pkcs1_der(), public_key(&merchant));
        let signing_key = read_private_key(SIGNING_KEY_PEM).unwrap();
        assert_eq!(signing_key.public_key_pkcs1_der(), public_key(&signing));
        assert_ne!(public_key(&merchant), public_key(&signing));
    }

    #[test]
    fn decimal_serials() {
        assert_eq!(decimal(&[]), "0");
        assert_eq!(decimal(&[0]), "0");
        assert_eq!(decimal(&[0x00, 0xff]), "255");
        assert_eq!(decimal(&[0x10, 0x17, 0xa1, 0x1a, 0xcb]), "69115910859");
        // 2^64 + 1: beyond u64.
        assert_eq!(
            decimal(&[1, 0, 0, 0, 0, 0, 0, 0, 1]),
            "18446744073709551617"
        );
    }

    #[test]
    fn broken_inputs_are_errors() {
        assert!(matches!(
            read_cert("nothing"),
            Err(UnionpayPkiError::NoPemBlock(_))
        ));
        assert!(read_cert("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err());
        assert!(read_cert("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----").is_err());
        assert!(
            read_private_key("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }
}
