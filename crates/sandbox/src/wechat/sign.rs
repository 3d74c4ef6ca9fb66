//! WeChat Pay v2 signatures (`wallets.md` §1.2), written for the sandbox from the
//! documentation: the non-empty fields except `sign`, sorted by name in byte order, joined as
//! `k=v&…`, then `&key=API_KEY` appended; MD5 or HMAC-SHA256 (keyed with the API key too),
//! upper-case hex.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// The two v2 signature algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WechatSignType {
    Md5,
    HmacSha256,
}

impl WechatSignType {
    /// The `sign_type` field: absent means MD5; any other spelling is refused (`None`).
    pub fn parse(field: Option<&str>) -> Option<WechatSignType> {
        match field {
            None | Some("") | Some("MD5") => Some(WechatSignType::Md5),
            Some("HMAC-SHA256") => Some(WechatSignType::HmacSha256),
            Some(_) => None,
        }
    }
}

/// `stringA` of the documentation: what is signed, before `&key=…` is appended.
pub fn string_to_sign<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    // A BTreeMap of `&str` sorts by bytes, which is the documented order.
    let sorted: BTreeMap<&str, &str> = fields
        .into_iter()
        .filter(|(k, v)| *k != "sign" && !v.is_empty())
        .collect();
    let mut out = String::new();
    for (k, v) in sorted {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The signature of `fields` (the `sign` field itself and empty values are skipped).
pub fn sign<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    api_key: &str,
    sign_type: WechatSignType,
) -> String {
    let message = format!("{}&key={api_key}", string_to_sign(fields));
    match sign_type {
        WechatSignType::Md5 => hex::encode_upper(Md5::digest(message.as_bytes())),
        WechatSignType::HmacSha256 => match Hmac::<Sha256>::new_from_slice(api_key.as_bytes()) {
            Ok(mut mac) => {
                mac.update(message.as_bytes());
                hex::encode_upper(mac.finalize().into_bytes())
            }
            // HMAC takes keys of any length; an empty string never matches a signature.
            Err(_) => String::new(),
        },
    }
}

/// Whether `fields` carry a correct `sign`. Compared exactly: the documentation prescribes
/// upper-case hex, and a connector sending lower case has a bug the sandbox should reveal.
pub fn verify(fields: &BTreeMap<String, String>, api_key: &str, sign_type: WechatSignType) -> bool {
    let Some(given) = fields.get("sign") else {
        return false;
    };
    let expected = sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        api_key,
        sign_type,
    );
    !expected.is_empty() && expected.as_bytes() == given.as_bytes()
}
