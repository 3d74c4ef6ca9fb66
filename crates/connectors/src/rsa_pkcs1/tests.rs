//! Key reading in every accepted encoding, and signatures checked against reference
//! signatures made by the `openssl` command line (`fixtures/README.md`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::*;

const APP_PRIVATE_PKCS8: &str = include_str!("../alipay/fixtures/test_app_private_key_pkcs8.pem");
const APP_PRIVATE_PKCS1: &str = include_str!("../alipay/fixtures/test_app_private_key_pkcs1.pem");
const APP_PUBLIC_SPKI: &str = include_str!("../alipay/fixtures/test_app_public_key.pem");
const APP_PUBLIC_PKCS1: &str = include_str!("fixtures/test_app_public_key_pkcs1.pem");
const ALIPAY_PRIVATE_PKCS8: &str =
    include_str!("../alipay/fixtures/test_alipay_private_key_pkcs8.pem");
const ALIPAY_PUBLIC_SPKI: &str = include_str!("../alipay/fixtures/test_alipay_public_key.pem");
const RSA_1024_PRIVATE: &str = include_str!("fixtures/test_rsa1024_private_key.pem");
const RSA_E3_PRIVATE: &str = include_str!("fixtures/test_rsa_e3_private_key.pem");
const EC_PRIVATE: &str = include_str!("fixtures/test_ec_private_key.pem");
const EC_PUBLIC: &str = include_str!("fixtures/test_ec_public_key.pem");
const OPENSSL_SIGNATURES: &str = include_str!("fixtures/openssl_signatures.txt");

/// The messages of `fixtures/make_openssl_signatures.sh`, by name.
fn message(name: &str) -> Vec<u8> {
    match name {
        "empty" => Vec::new(),
        "params" => b"app_id=2021&method=alipay.trade.pay".to_vec(),
        "ff3000" => vec![0xff; 3000],
        other => panic!("unknown message {other}"),
    }
}

fn hash(name: &str) -> RsaPkcs1Hash {
    match name {
        "sha256" => RsaPkcs1Hash::Sha256,
        "sha384" => RsaPkcs1Hash::Sha384,
        "sha512" => RsaPkcs1Hash::Sha512,
        other => panic!("unknown hash {other}"),
    }
}

/// (private key PEM, public key PEM) of the fixture key called `name`.
fn key_pair(name: &str) -> (&'static str, &'static str) {
    match name {
        "app" => (APP_PRIVATE_PKCS8, APP_PUBLIC_SPKI),
        "alipay" => (ALIPAY_PRIVATE_PKCS8, ALIPAY_PUBLIC_SPKI),
        other => panic!("unknown key {other}"),
    }
}

/// One line of `openssl_signatures.txt`.
struct Reference {
    key: &'static str,
    hash: RsaPkcs1Hash,
    message: Vec<u8>,
    signature: Vec<u8>,
}

fn references() -> Vec<Reference> {
    let references: Vec<Reference> = OPENSSL_SIGNATURES
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let [key, hash_name, message_name, signature] = fields[..] else {
                panic!("bad line {line:?}");
            };
            Reference {
                key,
                hash: hash(hash_name),
                message: message(message_name),
                signature: BASE64.decode(signature).unwrap(),
            }
        })
        .collect();
    assert_eq!(references.len(), 18);
    references
}

fn signer(private_pem: &str) -> RsaSha256Signer {
    RsaSha256Signer::from_pkcs1_der(&read_private_key(private_pem, false).unwrap()).unwrap()
}

fn verifier(public_pem: &str) -> RsaPkcs1Verifier {
    RsaPkcs1Verifier::from_pkcs1_der(&read_public_key(public_pem, false).unwrap()).unwrap()
}

/// The PEM body of `pem` on one line: the bare Base64 form merchants paste.
fn bare(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[test]
fn signatures_are_those_of_openssl() {
    let references = references();
    let sha256: Vec<&Reference> = references
        .iter()
        .filter(|r| r.hash == RsaPkcs1Hash::Sha256)
        .collect();
    assert_eq!(sha256.len(), 6);
    for reference in sha256 {
        let ours = signer(key_pair(reference.key).0);
        assert_eq!(
            ours.sign(&reference.message).unwrap(),
            reference.signature,
            "{} key, message of {} bytes",
            reference.key,
            reference.message.len()
        );
    }
}

#[test]
fn openssl_signatures_verify_and_tampered_ones_do_not() {
    for reference in references() {
        let Reference {
            key,
            hash,
            message,
            signature,
        } = &reference;
        let ours = verifier(key_pair(key).1);
        let context = format!("{key} {hash:?}, message of {} bytes", message.len());
        assert!(ours.verify(*hash, message, signature), "{context}");

        // A tampered message: one bit flipped, one byte added.
        let mut flipped = message.clone();
        match flipped.first_mut() {
            Some(byte) => *byte ^= 0x01,
            None => flipped.push(0),
        }
        assert!(!ours.verify(*hash, &flipped, signature), "{context}");
        let mut longer = message.clone();
        longer.push(b'&');
        assert!(!ours.verify(*hash, &longer, signature), "{context}");

        // A tampered signature: a bit flipped at either end, truncated, lengthened, empty,
        // all zeros.
        for index in [0, signature.len() - 1] {
            let mut tampered = signature.clone();
            tampered[index] ^= 0x01;
            assert!(!ours.verify(*hash, message, &tampered), "{context}");
        }
        let cut = &signature[..signature.len() - 1];
        assert!(!ours.verify(*hash, message, cut), "{context}");
        let mut padded = vec![0];
        padded.extend_from_slice(signature);
        assert!(!ours.verify(*hash, message, &padded), "{context}");
        assert!(!ours.verify(*hash, message, &[]), "{context}");
        assert!(
            !ours.verify(*hash, message, &vec![0; signature.len()]),
            "{context}"
        );

        // The other key's verifier, and another hash.
        let other_key = if *key == "app" { "alipay" } else { "app" };
        assert!(
            !verifier(key_pair(other_key).1).verify(*hash, message, signature),
            "{context}"
        );
        let other_hash = match hash {
            RsaPkcs1Hash::Sha256 => RsaPkcs1Hash::Sha512,
            _ => RsaPkcs1Hash::Sha256,
        };
        assert!(!ours.verify(other_hash, message, signature), "{context}");
    }
    // Our own signer's signatures verify too.
    let signature = signer(APP_PRIVATE_PKCS8).sign(b"txnAmt=1000").unwrap();
    let ours = verifier(APP_PUBLIC_SPKI);
    assert!(ours.verify_sha256(b"txnAmt=1000", &signature));
    assert!(!ours.verify_sha256(b"txnAmt=1001", &signature));
}

#[test]
fn every_accepted_encoding_reads_to_the_same_key() {
    // Private: PKCS#8 and PKCS#1, PEM and bare Base64.
    let pkcs1 = read_private_key(APP_PRIVATE_PKCS1, false).unwrap();
    for (text, bare_base64) in [
        (APP_PRIVATE_PKCS8.to_owned(), false),
        (bare(APP_PRIVATE_PKCS8), true),
        (bare(APP_PRIVATE_PKCS1), true),
        // Copy-paste: surrounding blank lines, and a bare key still broken into lines.
        (format!("\n\n{APP_PRIVATE_PKCS8}\n"), false),
        (
            APP_PRIVATE_PKCS8
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<Vec<_>>()
                .join("\r\n"),
            true,
        ),
    ] {
        assert_eq!(
            read_private_key(&text, bare_base64)
                .as_deref()
                .map(Vec::as_slice),
            Some(&pkcs1[..])
        );
    }
    // Public: SPKI and PKCS#1, PEM and bare Base64.
    let public = read_public_key(APP_PUBLIC_PKCS1, false).unwrap();
    for (text, bare_base64) in [
        (APP_PUBLIC_SPKI.to_owned(), false),
        (bare(APP_PUBLIC_SPKI), true),
        (bare(APP_PUBLIC_PKCS1), true),
    ] {
        assert_eq!(read_public_key(&text, bare_base64), Some(public.clone()));
    }
    // The public key is the private key's, as `ring` computes it from the private key.
    let pair = ring::signature::RsaKeyPair::from_der(&pkcs1).unwrap();
    assert_eq!(pair.public().as_ref(), &public[..]);
    // Bare Base64 only where the caller accepts it.
    assert!(read_private_key(&bare(APP_PRIVATE_PKCS8), false).is_none());
    assert!(read_public_key(&bare(APP_PUBLIC_SPKI), false).is_none());
}

#[test]
fn what_is_not_an_rsa_key_of_the_right_kind_is_not_read() {
    for text in [
        "",
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----",
        EC_PRIVATE,
        // A public key where a private one is wanted, and a certificate.
        APP_PUBLIC_SPKI,
        include_str!("../unionpay/fixtures/test_root_ca.pem"),
    ] {
        assert!(read_private_key(text, true).is_none(), "{text}");
    }
    assert!(read_private_key(&bare(EC_PRIVATE), true).is_none());
    for text in [
        "",
        "not a key",
        EC_PUBLIC,
        APP_PRIVATE_PKCS8,
        APP_PRIVATE_PKCS1,
    ] {
        assert!(read_public_key(text, true).is_none(), "{text}");
    }
    assert!(read_public_key(&bare(EC_PUBLIC), true).is_none());
    // A PKCS#1 body under the PKCS#8 label, and the other way round.
    let relabel = |pem: &str, from: &str, to: &str| pem.replace(from, to);
    assert!(read_private_key(
        &relabel(APP_PRIVATE_PKCS1, "RSA PRIVATE KEY", "PRIVATE KEY"),
        false
    )
    .is_none());
    assert!(read_public_key(
        &relabel(APP_PUBLIC_SPKI, "PUBLIC KEY", "RSA PUBLIC KEY"),
        false
    )
    .is_none());
}

/// A PKCS#1 RSAPublicKey with these big-endian parts.
fn public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    pkcs1::RsaPublicKey {
        modulus: der::asn1::UintRef::new(n).unwrap(),
        public_exponent: der::asn1::UintRef::new(e).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn keys_ring_would_refuse_are_refused_when_loaded() {
    let good = read_public_key(APP_PUBLIC_SPKI, false).unwrap();
    let parts = pkcs1::RsaPublicKey::from_der(&good).unwrap();
    let n = parts.modulus.as_bytes();
    assert_eq!(n.len(), 256);
    assert!(RsaPkcs1Verifier::from_pkcs1_der(&public_key_der(n, &[1, 0, 1])).is_ok());

    // Exponents ring refuses: 1, even ones, over 2^33 - 1.
    for e in [
        &[1][..],
        &[2],
        &[1, 0, 0],
        &[2, 0, 0, 0, 1],
        &[1, 0, 0, 0, 0, 0, 0, 0, 1],
    ] {
        assert_eq!(
            RsaPkcs1Verifier::from_pkcs1_der(&public_key_der(n, e)).err(),
            Some(RsaKeyRefused::Unusable),
            "{e:?}"
        );
    }
    // The largest and smallest exponents it takes.
    for e in [&[3][..], &[1, 0xff, 0xff, 0xff, 0xff]] {
        assert!(RsaPkcs1Verifier::from_pkcs1_der(&public_key_der(n, e)).is_ok());
    }
    // An even modulus.
    let mut even = n.to_vec();
    *even.last_mut().unwrap() ^= 1;
    assert_eq!(
        RsaPkcs1Verifier::from_pkcs1_der(&public_key_der(&even, &[1, 0, 1])).err(),
        Some(RsaKeyRefused::Unusable)
    );
    // Moduli under 2048 bits and over 8192 bits (odd, so only the length is wrong).
    let short = &n[..255];
    assert_eq!(
        RsaPkcs1Verifier::from_pkcs1_der(&public_key_der(short, &[1, 0, 1])).err(),
        Some(RsaKeyRefused::TooShort)
    );
    let mut long = vec![0xc5; 1024];
    long.extend_from_slice(n);
    assert_eq!(
        RsaPkcs1Verifier::from_pkcs1_der(&public_key_der(&long, &[1, 0, 1])).err(),
        Some(RsaKeyRefused::Unusable)
    );
    let longest = &long[long.len() - 1024..];
    assert!(RsaPkcs1Verifier::from_pkcs1_der(&public_key_der(longest, &[1, 0, 1])).is_ok());

    // Private keys: a 1024-bit key is too short; a key with e = 3 is one ring verifies with
    // but will not sign with.
    let short = read_private_key(RSA_1024_PRIVATE, false).unwrap();
    assert_eq!(
        RsaSha256Signer::from_pkcs1_der(&short).err(),
        Some(RsaKeyRefused::TooShort)
    );
    let e3 = read_private_key(RSA_E3_PRIVATE, false).unwrap();
    assert_eq!(
        RsaSha256Signer::from_pkcs1_der(&e3).err(),
        Some(RsaKeyRefused::Unusable)
    );
    let e3_public = pkcs1::RsaPrivateKey::from_der(&e3)
        .unwrap()
        .public_key()
        .to_der()
        .unwrap();
    assert!(RsaPkcs1Verifier::from_pkcs1_der(&e3_public).is_ok());
}

#[test]
fn a_private_key_whose_parts_do_not_belong_together_is_refused() {
    // The app key with its public exponent replaced: still well-formed PKCS#1.
    let der = read_private_key(APP_PRIVATE_PKCS1, false).unwrap();
    let mut key = pkcs1::RsaPrivateKey::from_der(&der).unwrap();
    let other_e = [1, 0, 3];
    key.public_exponent = der::asn1::UintRef::new(&other_e).unwrap();
    let broken = key.to_der().unwrap();
    assert_eq!(
        RsaSha256Signer::from_pkcs1_der(&broken).err(),
        Some(RsaKeyRefused::Unusable)
    );
}
