//! The UnionPay wire format: strict form-urlencoded parsing, form-urlencoded answers, the
//! response-code table, currencies, amounts and Beijing timestamps.
//!
//! Parsing is deliberately stricter than a browser's: a body that is not UTF-8, a pair
//! without `=`, a broken `%` escape or a repeated key is a format error (respCode 10), so
//! that a connector that builds its forms carelessly fails in tests instead of in
//! production.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

/// The fields of a request or an answer, sorted by key (ASCII), as the signature wants them.
pub(crate) type UnionpayFields = BTreeMap<String, String>;

/// The content type of answers and notifications.
pub(crate) const UNIONPAY_FORM_CONTENT_TYPE: &str =
    "application/x-www-form-urlencoded;charset=UTF-8";

/// The protocol constants of the profile.
pub(crate) const VERSION: &str = "5.1.0";
pub(crate) const ENCODING: &str = "utf-8";
pub(crate) const SIGN_METHOD: &str = "01";
pub(crate) const BIZ_TYPE: &str = "000000";
pub(crate) const ACCESS_TYPE: &str = "0";
pub(crate) const CHANNEL_TYPE: &str = "08";
/// `settleCurrencyCode`: UnionPay settles with the merchant in CNY.
pub(crate) const SETTLE_CURRENCY: &str = "156";

/// Why a body is not a well-formed form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnionpayFormError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not UTF-8 text")]
    NotUtf8,
    #[error("`{0}` is not a key=value pair")]
    NotAPair(String),
    #[error("a key is empty")]
    EmptyKey,
    #[error("a `%` escape is broken")]
    BadEscape,
    #[error("a decoded key or value is not UTF-8")]
    DecodedNotUtf8,
    #[error("the key `{0}` appears twice")]
    DuplicateKey(String),
}

/// Decodes one form component: `+` is a space, `%XY` a byte; the bytes must be UTF-8.
fn decode_component(raw: &str) -> Result<String, UnionpayFormError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| char::from(*b).to_digit(16));
                let lo = bytes.get(i + 2).and_then(|b| char::from(*b).to_digit(16));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(UnionpayFormError::BadEscape);
                };
                let byte = u8::try_from(hi * 16 + lo).map_err(|_| UnionpayFormError::BadEscape)?;
                out.push(byte);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| UnionpayFormError::DecodedNotUtf8)
}

/// Parses a form-urlencoded body strictly (see the module docs).
pub(crate) fn parse_form(body: &[u8]) -> Result<UnionpayFields, UnionpayFormError> {
    let text = std::str::from_utf8(body).map_err(|_| UnionpayFormError::NotUtf8)?;
    let text = text.trim_end_matches(['\r', '\n']);
    if text.trim().is_empty() {
        return Err(UnionpayFormError::Empty);
    }
    let mut fields = UnionpayFields::new();
    // Empty segments (`a=1&&b=2`, a trailing `&`) carry nothing and are tolerated.
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let Some((raw_key, raw_value)) = pair.split_once('=') else {
            let excerpt: String = pair.chars().take(40).collect();
            return Err(UnionpayFormError::NotAPair(excerpt));
        };
        let key = decode_component(raw_key)?;
        if key.is_empty() {
            return Err(UnionpayFormError::EmptyKey);
        }
        let value = decode_component(raw_value)?;
        if fields.contains_key(&key) {
            return Err(UnionpayFormError::DuplicateKey(key));
        }
        fields.insert(key, value);
    }
    Ok(fields)
}

/// Encodes fields as a form-urlencoded body (values URL-encoded, as the profile says).
pub(crate) fn encode_form(fields: &UnionpayFields) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter())
        .finish()
}

/// The profile's response codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnionpayCode {
    Success,
    /// 03: status unknown (the sandbox uses it for "system error, but in fact paid").
    Unknown,
    /// 05: processing, e.g. waiting for the customer's password.
    Processing,
    FormatError,
    SignatureFailed,
    DuplicateOrder,
    FieldMissing,
    NotSupported,
    /// 31: cancelled / closed (in a query's `origRespCode`).
    Cancelled,
    OriginalNotFound,
    StateForbids,
    AmountExceeds,
    CodeInvalid,
    CodeExpired,
    InsufficientBalance,
    /// 98: the file asked for does not exist (yet) (file transfer, `bills.md` §3.1).
    FileNotFound,
}

impl UnionpayCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UnionpayCode::Success => "00",
            UnionpayCode::Unknown => "03",
            UnionpayCode::Processing => "05",
            UnionpayCode::FormatError => "10",
            UnionpayCode::SignatureFailed => "11",
            UnionpayCode::DuplicateOrder => "12",
            UnionpayCode::FieldMissing => "13",
            UnionpayCode::NotSupported => "30",
            UnionpayCode::Cancelled => "31",
            UnionpayCode::OriginalNotFound => "34",
            UnionpayCode::StateForbids => "35",
            UnionpayCode::AmountExceeds => "36",
            UnionpayCode::CodeInvalid => "61",
            UnionpayCode::CodeExpired => "64",
            UnionpayCode::InsufficientBalance => "65",
            UnionpayCode::FileNotFound => "98",
        }
    }

    pub(crate) fn parse(code: &str) -> Option<UnionpayCode> {
        [
            UnionpayCode::Success,
            UnionpayCode::Unknown,
            UnionpayCode::Processing,
            UnionpayCode::FormatError,
            UnionpayCode::SignatureFailed,
            UnionpayCode::DuplicateOrder,
            UnionpayCode::FieldMissing,
            UnionpayCode::NotSupported,
            UnionpayCode::Cancelled,
            UnionpayCode::OriginalNotFound,
            UnionpayCode::StateForbids,
            UnionpayCode::AmountExceeds,
            UnionpayCode::CodeInvalid,
            UnionpayCode::CodeExpired,
            UnionpayCode::InsufficientBalance,
            UnionpayCode::FileNotFound,
        ]
        .into_iter()
        .find(|c| c.as_str() == code)
    }

    /// The default `respMsg`; the sandbox's own English wording.
    pub(crate) fn message(self) -> &'static str {
        match self {
            UnionpayCode::Success => "Success",
            UnionpayCode::Unknown => "Transaction status unknown, query later",
            UnionpayCode::Processing => "Transaction processing, query later",
            UnionpayCode::FormatError => "Message format error",
            UnionpayCode::SignatureFailed => "Signature verification failed",
            UnionpayCode::DuplicateOrder => {
                "Duplicate order: orderId already used with other content"
            }
            UnionpayCode::FieldMissing => "Required field missing",
            UnionpayCode::NotSupported => "Transaction not supported",
            UnionpayCode::Cancelled => "Transaction cancelled or closed",
            UnionpayCode::OriginalNotFound => "Original transaction not found",
            UnionpayCode::StateForbids => "Original transaction state does not allow this",
            UnionpayCode::AmountExceeds => "Amount exceeds the original or remaining amount",
            UnionpayCode::CodeInvalid => "Payment code invalid or already used",
            UnionpayCode::CodeExpired => "Payment code expired",
            UnionpayCode::InsufficientBalance => "Insufficient balance",
            UnionpayCode::FileNotFound => "File does not exist (yet)",
        }
    }
}

/// A numeric ISO 4217 `currencyCode` to the core's alphabetic code (the three the profile
/// names).
pub(crate) fn currency_from_numeric(code: &str) -> Option<&'static str> {
    match code {
        "156" => Some("CNY"),
        "124" => Some("CAD"),
        "840" => Some("USD"),
        _ => None,
    }
}

/// The core's alphabetic currency to the numeric `currencyCode`.
pub(crate) fn currency_to_numeric(code: &str) -> Option<&'static str> {
    match code {
        "CNY" => Some("156"),
        "CAD" => Some("124"),
        "USD" => Some("840"),
        _ => None,
    }
}

/// An amount field: integer minor units, digits only, at most 12 of them.
pub(crate) fn parse_amount(raw: &str) -> Option<i64> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// `yyyyMMddHHmmss` (Beijing time, kept naive: the sandbox only compares such times with each
/// other, never with its own clock, which tests move forward).
pub(crate) fn parse_time(raw: &str) -> Option<NaiveDateTime> {
    if raw.len() != 14 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(raw, "%Y%m%d%H%M%S").ok()
}

/// `orderId`: 8–32 ASCII letters and digits (no `-` or `_`).
pub(crate) fn valid_order_id(raw: &str) -> bool {
    (8..=32).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `merId`: 15 digits.
pub(crate) fn valid_mer_id(raw: &str) -> bool {
    raw.len() == 15 && raw.bytes().all(|b| b.is_ascii_digit())
}

/// `backUrl`: an absolute http(s) URL.
pub(crate) fn valid_back_url(raw: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// A UTC instant as Beijing wall-clock time in the given `chrono` format.
pub(crate) fn beijing(at: DateTime<Utc>, format: &str) -> String {
    (at + Duration::hours(8)).format(format).to_string()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn parses_strict_forms() {
        let fields = parse_form(b"b=2&a=x+y%2B%E4%B8%AD&&c=").unwrap();
        assert_eq!(fields["a"], "x y+中");
        assert_eq!(fields["b"], "2");
        assert_eq!(fields["c"], "");
        assert_eq!(parse_form(b""), Err(UnionpayFormError::Empty));
        assert_eq!(parse_form(b"\xff=1"), Err(UnionpayFormError::NotUtf8));
        assert!(matches!(
            parse_form(b"{\"a\":1}"),
            Err(UnionpayFormError::NotAPair(_))
        ));
        assert_eq!(parse_form(b"a=%zz"), Err(UnionpayFormError::BadEscape));
        assert_eq!(parse_form(b"a=%4"), Err(UnionpayFormError::BadEscape));
        assert_eq!(parse_form(b"a=%ff"), Err(UnionpayFormError::DecodedNotUtf8));
        assert_eq!(parse_form(b"=1"), Err(UnionpayFormError::EmptyKey));
        assert_eq!(
            parse_form(b"a=1&a=2"),
            Err(UnionpayFormError::DuplicateKey("a".to_owned()))
        );
    }

    #[test]
    fn encodes_and_round_trips() {
        let mut fields = UnionpayFields::new();
        fields.insert(
            "signPubKeyCert".to_owned(),
            "-----BEGIN X-----\nab+/=\n".to_owned(),
        );
        fields.insert("respMsg".to_owned(), "成功 ok&more".to_owned());
        let text = encode_form(&fields);
        assert!(!text.contains('\n'));
        assert_eq!(parse_form(text.as_bytes()).unwrap(), fields);
    }

    #[test]
    fn field_formats() {
        assert_eq!(parse_amount("000123"), Some(123));
        assert_eq!(parse_amount("-1"), None);
        assert_eq!(parse_amount("1.00"), None);
        assert_eq!(parse_amount("1234567890123"), None);
        assert!(parse_time("20240229235959").is_some());
        assert!(parse_time("20230229235959").is_none());
        assert!(parse_time("2024022923595").is_none());
        assert!(valid_order_id("ABCdef12"));
        assert!(!valid_order_id("ABC-def12"));
        assert!(!valid_order_id("short"));
        assert!(valid_mer_id("777290058110048"));
        assert!(!valid_mer_id("77729005811004"));
        assert!(valid_back_url("http://127.0.0.1:9/notify"));
        assert!(!valid_back_url("ftp://x/y"));
        assert!(!valid_back_url("notify"));
        for code in [
            "00", "03", "05", "10", "11", "12", "13", "30", "31", "34", "35", "36", "61", "64",
            "65", "98",
        ] {
            assert_eq!(
                UnionpayCode::parse(code).map(UnionpayCode::as_str),
                Some(code)
            );
        }
        assert_eq!(currency_from_numeric("124"), Some("CAD"));
        assert_eq!(currency_to_numeric("USD"), Some("840"));
        assert_eq!(currency_from_numeric("978"), None);
    }
}
