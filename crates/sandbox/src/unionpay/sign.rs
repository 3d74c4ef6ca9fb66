//! ACP 5.1.0 signatures (`signMethod=01`, `wallets.md` §3.1): every non-empty field except
//! `signature`, sorted by key, joined `k=v` with `&` (raw values); the lower-case hex SHA-256
//! of that string; `signature` = Base64 of RSA-SHA256-PKCS#1 v1.5 over the hex string's ASCII
//! bytes (so the message is hashed twice: once here, once by the RSA scheme). The RSA
//! arithmetic itself is `crate::rsa_sha256`'s (`ring`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::pki::UnionpayPkiError;
use super::wire::UnionpayFields;
use super::{UnionpayAccount, UnionpayKeyring};
use crate::rsa_sha256::{RsaSha256Signer, RsaSha256Verifier};

/// The string whose digest is signed.
pub(crate) fn string_to_sign(fields: &UnionpayFields) -> String {
    fields
        .iter()
        .filter(|(k, v)| k.as_str() != "signature" && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The lower-case hex SHA-256 of `text`: what the RSA key actually signs.
pub(crate) fn digest_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The `signature` value for `fields`.
pub(crate) fn sign(
    key: &RsaSha256Signer,
    fields: &UnionpayFields,
) -> Result<String, UnionpayPkiError> {
    let digest = digest_hex(&string_to_sign(fields));
    let signature = key
        .sign(digest.as_bytes())
        .map_err(|e| UnionpayPkiError::Sign(e.to_string()))?;
    Ok(BASE64.encode(signature))
}

/// Whether `fields["signature"]` is a valid signature of `fields` by `key`.
pub(crate) fn verify(key: &RsaSha256Verifier, fields: &UnionpayFields) -> bool {
    let Some(encoded) = fields.get("signature") else {
        return false;
    };
    // No repair of a `+` that arrived as a space: a sender that forgets to escape it must
    // fail here, as it would at UnionPay.
    let Ok(bytes) = BASE64.decode(encoded) else {
        return false;
    };
    let digest = digest_hex(&string_to_sign(fields));
    key.verify(digest.as_bytes(), &bytes)
}

/// Signs an answer or a notification as UnionPay does: adds `certId` (the signing
/// certificate's serial) and `signPubKeyCert` (its PEM, inside the signed set), then the
/// `signature`. `wrong` (a fault) signs other content with the right key, so the signature
/// is well-formed but does not verify.
pub(crate) fn seal(
    keys: &UnionpayKeyring,
    account: &UnionpayAccount,
    fields: &mut UnionpayFields,
    wrong: bool,
) -> Result<(), UnionpayPkiError> {
    let cert = keys.cert(&account.signing_cert_pem)?;
    fields.insert("certId".to_owned(), cert.serial.clone());
    fields.insert(
        "signPubKeyCert".to_owned(),
        account.signing_cert_pem.clone(),
    );
    let key = keys.private(&account.signing_private_key_pem)?;
    let signature = if wrong {
        let mut other = fields.clone();
        other.insert("sandboxFault".to_owned(), "bad_signature".to_owned());
        sign(&key, &other)?
    } else {
        sign(&key, fields)?
    };
    fields.insert("signature".to_owned(), signature);
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> UnionpayFields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn vector_8_pre_hash() {
        // wallets.md §7 vector 8; `signature` and empty fields are left out.
        let f = fields(&[
            ("version", "5.1.0"),
            ("txnType", "01"),
            ("encoding", "utf-8"),
            ("txnSubType", "06"),
            ("bizType", "000000"),
            ("signature", "whatever"),
            ("termId", ""),
        ]);
        let text = string_to_sign(&f);
        assert_eq!(
            text,
            "bizType=000000&encoding=utf-8&txnSubType=06&txnType=01&version=5.1.0"
        );
        assert_eq!(
            digest_hex(&text),
            "45a01fa62a785e6689d2f8a25b597e3d42a00934eb53035244fd63eef5ac7ea4"
        );
    }

    #[test]
    fn sign_then_verify() {
        let key = super::super::pki::read_private_key(super::super::pki::SIGNING_KEY_PEM).unwrap();
        let public = super::super::pki::read_cert(super::super::pki::SIGNING_CERT_PEM)
            .unwrap()
            .verifier;
        let mut f = fields(&[("merId", "123456789012345"), ("orderId", "ORDER0001")]);
        let signature = sign(&key, &f).unwrap();
        f.insert("signature".to_owned(), signature.clone());
        assert!(verify(&public, &f));
        // Deterministic: PKCS#1 v1.5.
        assert_eq!(sign(&key, &f).unwrap(), signature);
        f.insert("orderId".to_owned(), "ORDER0002".to_owned());
        assert!(!verify(&public, &f));
        f.insert("signature".to_owned(), "not base64!".to_owned());
        assert!(!verify(&public, &f));
    }
}
