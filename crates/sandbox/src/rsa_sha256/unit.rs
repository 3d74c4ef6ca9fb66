//! Signatures checked against reference signatures made by the `openssl` command line
//! (`fixtures/README.md`), and the keys `ring` refuses refused when loaded.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use pkcs1::der::{Decode, Encode};

use super::*;

/// The PKCS#8 fixture keys of the sandbox, by the names `openssl_signatures.txt` uses.
fn fixture_key(name: &str) -> &'static str {
    match name {
        "app" => include_str!("../alipay/keys/app_private.pem"),
        "alipay" => include_str!("../alipay/keys/alipay_private.pem"),
        "merchant" => include_str!("../unionpay/pki/merchant_key.pem"),
        "signing" => include_str!("../unionpay/pki/signing_key.pem"),
        other => panic!("unknown key {other}"),
    }
}

/// The messages of `fixtures/make_openssl_signatures.sh`, by name.
fn message(name: &str) -> &'static [u8] {
    match name {
        "empty" => b"",
        "a" => b"a",
        "params" => b"app_id=2021000000000001&biz_content={\"out_trade_no\":\"1\"}&charset=utf-8",
        "digest" => {
            "45a01fa62a785e6689d2f8a25b597e3d42a00934eb53035244fd63eef5ac7ea4 \u{4e2d}".as_bytes()
        }
        other => panic!("unknown message {other}"),
    }
}

/// (key name, message, signature) for each line of `openssl_signatures.txt`.
fn references() -> Vec<(&'static str, &'static [u8], Vec<u8>)> {
    let lines: Vec<_> = include_str!("fixtures/openssl_signatures.txt")
        .lines()
        .map(|line| {
            let mut fields = line.split(' ');
            let (Some(key), Some(name), Some(signature), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                panic!("bad line {line:?}");
            };
            (key, message(name), BASE64.decode(signature).unwrap())
        })
        .collect();
    assert_eq!(lines.len(), 16);
    lines
}

/// The DER of the one PEM block in `pem`, read independently of the wallet modules.
fn pem_der(pem: &str) -> (String, Vec<u8>) {
    let (label, der) = pkcs1::der::pem::decode_vec(pem.trim().as_bytes()).unwrap();
    (label.to_owned(), der)
}

fn signer(name: &str) -> RsaSha256Signer {
    let (label, der) = pem_der(fixture_key(name));
    assert_eq!(label, "PRIVATE KEY");
    RsaSha256Signer::from_pkcs8_der(&der).unwrap()
}

fn verifier_of(signer: &RsaSha256Signer) -> RsaSha256Verifier {
    RsaSha256Verifier::from_pkcs1_der(&signer.public_key_pkcs1_der()).unwrap()
}

#[test]
fn ring_signs_the_fixture_keys_byte_for_byte_as_openssl() {
    for (key, message, signature) in references() {
        let ours = signer(key).sign(message).unwrap();
        assert_eq!(ours.len(), 256);
        assert_eq!(ours, signature, "{key}, message of {} bytes", message.len());
    }
}

#[test]
fn openssl_signatures_verify_and_tampered_ones_do_not() {
    for (key, message, signature) in references() {
        let verifier = verifier_of(&signer(key));
        assert!(verifier.verify(message, &signature), "{key}");

        let mut flipped = signature.clone();
        flipped[17] ^= 0x01;
        assert!(!verifier.verify(message, &flipped));

        let mut other_message = message.to_vec();
        other_message.push(b'&');
        assert!(!verifier.verify(&other_message, &signature));

        assert!(!verifier.verify(message, &signature[1..]));
        assert!(!verifier.verify(message, &[]));

        // Another key's verifier.
        let other = if key == "app" { "alipay" } else { "app" };
        assert!(!verifier_of(&signer(other)).verify(message, &signature));
    }
}

#[test]
fn public_keys_read_from_spki_and_pkcs1_are_the_private_keys() {
    let app = signer("app");
    let (label, spki) = pem_der(include_str!("../alipay/keys/app_public.pem"));
    assert_eq!(label, "PUBLIC KEY");
    let from_spki = RsaSha256Verifier::from_spki_der(&spki).unwrap();
    assert_eq!(from_spki.public_key_pkcs1_der(), app.public_key_pkcs1_der());
    let (label, pkcs1) = pem_der(include_str!("fixtures/app_public_pkcs1.pem"));
    assert_eq!(label, "RSA PUBLIC KEY");
    let from_pkcs1 = RsaSha256Verifier::from_pkcs1_der(&pkcs1).unwrap();
    assert_eq!(
        from_pkcs1.public_key_pkcs1_der(),
        app.public_key_pkcs1_der()
    );
    // The same key as PKCS#1 signs identically.
    let (label, der) = pem_der(include_str!("fixtures/app_private_pkcs1.pem"));
    assert_eq!(label, "RSA PRIVATE KEY");
    let app_pkcs1 = RsaSha256Signer::from_pkcs1_der(&der).unwrap();
    assert_eq!(app_pkcs1.sign(b"a").unwrap(), app.sign(b"a").unwrap());
    // A private key is not a public key, nor the other way round.
    let (_, app_pkcs8) = pem_der(fixture_key("app"));
    assert_eq!(
        RsaSha256Verifier::from_spki_der(&app_pkcs8).err(),
        Some(RsaKeyError::Malformed)
    );
    assert!(RsaSha256Signer::from_pkcs8_der(&spki).is_err());
}

/// A PKCS#1 RSAPublicKey with these big-endian parts.
fn public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(n).unwrap(),
        public_exponent: pkcs1::UintRef::new(e).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn keys_ring_refuses_are_refused_when_loaded() {
    // Too small for ring.
    let (_, der) = pem_der(include_str!("fixtures/test_rsa1024_private_key.pem"));
    assert_eq!(
        RsaSha256Signer::from_pkcs8_der(&der).err(),
        Some(RsaKeyError::Refused("TooSmall".into()))
    );
    // e = 3: ring verifies with it, but does not sign with it.
    let (_, der) = pem_der(include_str!("fixtures/test_rsa_e3_private_key.pem"));
    assert!(RsaSha256Signer::from_pkcs8_der(&der).is_err());
    let info = pkcs8::PrivateKeyInfo::from_der(&der).unwrap();
    let e3_public = pkcs1::RsaPrivateKey::from_der(info.private_key)
        .unwrap()
        .public_key()
        .to_der()
        .unwrap();
    assert!(RsaSha256Verifier::from_pkcs1_der(&e3_public).is_ok());

    // Public keys: a good one, then each of ring's conditions broken.
    let good = signer("app").public_key_pkcs1_der();
    let parts = pkcs1::RsaPublicKey::from_der(&good).unwrap();
    let n = parts.modulus.as_bytes();
    assert!(RsaSha256Verifier::from_pkcs1_der(&public_key_der(n, &[1, 0, 1])).is_ok());
    for e in [&[1][..], &[2], &[1, 0, 0], &[2, 0, 0, 0, 1]] {
        assert!(
            RsaSha256Verifier::from_pkcs1_der(&public_key_der(n, e)).is_err(),
            "{e:?}"
        );
    }
    let mut even = n.to_vec();
    *even.last_mut().unwrap() &= 0xfe;
    assert!(RsaSha256Verifier::from_pkcs1_der(&public_key_der(&even, &[1, 0, 1])).is_err());
    assert!(RsaSha256Verifier::from_pkcs1_der(&public_key_der(&n[1..], &[1, 0, 1])).is_err());
    let mut long = vec![0x9d; 1024];
    long.extend_from_slice(n);
    assert!(RsaSha256Verifier::from_pkcs1_der(&public_key_der(&long, &[1, 0, 1])).is_err());
    assert!(RsaSha256Verifier::from_pkcs1_der(b"not DER").is_err());
}

#[test]
fn a_private_key_whose_parts_do_not_belong_together_is_refused() {
    let (_, der) = pem_der(include_str!("fixtures/app_private_pkcs1.pem"));
    let mut key = pkcs1::RsaPrivateKey::from_der(&der).unwrap();
    let other_e = [1, 0, 3];
    key.public_exponent = pkcs1::UintRef::new(&other_e).unwrap();
    assert_eq!(
        RsaSha256Signer::from_pkcs1_der(&key.to_der().unwrap()).err(),
        Some(RsaKeyError::Refused("InconsistentComponents".into()))
    );
}
