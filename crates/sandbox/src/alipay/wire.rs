//! Alipay's wire vocabulary: gateway codes and the error value every handler returns, yuan
//! amounts (parsed with integer arithmetic only), Beijing-time timestamps, `timeout_express`
//! durations, the masked buyer ids, and typed access to `biz_content` fields.

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, Offset, TimeZone, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The gateway's result codes (`wallets.md` §2.1) with the `msg` Alipay pairs them with.
pub const SUCCESS: (&str, &str) = ("10000", "Success");
pub const PAYING: (&str, &str) = ("10003", "order success pay inprocess");
pub const MISSING: (&str, &str) = ("40001", "Missing Required Arguments");
pub const INVALID: (&str, &str) = ("40002", "Invalid Arguments");
pub const BUSINESS: (&str, &str) = ("40004", "Business Failed");

/// A failed call: code, msg, sub_code, sub_msg, plus business fields some failures still
/// carry (`out_trade_no`, cancel's `retry_flag`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlipayError {
    pub code: &'static str,
    pub msg: &'static str,
    pub sub_code: String,
    pub sub_msg: String,
    /// A list rather than a map keeps the error small enough to return by value.
    pub extra: Vec<(&'static str, Value)>,
}

impl AlipayError {
    fn new(
        pair: (&'static str, &'static str),
        sub_code: &str,
        sub_msg: impl Into<String>,
    ) -> AlipayError {
        AlipayError {
            code: pair.0,
            msg: pair.1,
            sub_code: sub_code.to_owned(),
            sub_msg: sub_msg.into(),
            extra: Vec::new(),
        }
    }

    /// 40001 for a missing common parameter: `isv.missing-<what>`.
    pub fn missing(what: &str, sub_msg: impl Into<String>) -> AlipayError {
        AlipayError::new(MISSING, &format!("isv.missing-{what}"), sub_msg)
    }

    /// 40002 for an invalid common parameter: `isv.invalid-<what>`.
    pub fn invalid(what: &str, sub_msg: impl Into<String>) -> AlipayError {
        AlipayError::new(INVALID, &format!("isv.invalid-{what}"), sub_msg)
    }

    /// 40002 with `ACQ.INVALID_PARAMETER`: a business parameter is missing or malformed.
    pub fn parameter(sub_msg: impl Into<String>) -> AlipayError {
        AlipayError::new(INVALID, "ACQ.INVALID_PARAMETER", sub_msg)
    }

    /// 40004 with an `ACQ.*` sub_code: the business result of the call.
    pub fn business(sub_code: &str, sub_msg: impl Into<String>) -> AlipayError {
        AlipayError::new(BUSINESS, sub_code, sub_msg)
    }

    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> AlipayError {
        self.extra.push((key, value.into()));
        self
    }

    /// The body of the `*_response` (or `error_response`) member.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("code".to_owned(), Value::from(self.code));
        out.insert("msg".to_owned(), Value::from(self.msg));
        out.insert("sub_code".to_owned(), Value::from(self.sub_code.clone()));
        out.insert("sub_msg".to_owned(), Value::from(self.sub_msg.clone()));
        for (k, v) in &self.extra {
            out.insert((*k).to_owned(), v.clone());
        }
        out
    }
}

/// A successful call's body, starting with `code` and `msg`.
pub fn success(pair: (&'static str, &'static str)) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("code".to_owned(), Value::from(pair.0));
    out.insert("msg".to_owned(), Value::from(pair.1));
    out
}

/// The largest amount Alipay takes: 100 000 000 yuan, in minor units.
const MAX_MINOR: i64 = 10_000_000_000;

/// Parses a yuan (or other two-decimal currency) amount like `88.88`, `88.8` or `88` into
/// minor units, strictly: digits, at most two decimals, no sign, no exponent, no leading
/// zeros, within 0.01–100000000. Integer arithmetic only, so `0.29` is exactly 29.
pub fn parse_amount(text: &str) -> Option<i64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || whole.len() > 9 || (whole.len() > 1 && whole.starts_with('0')) {
        return None;
    }
    let mut minor = whole.parse::<i64>().ok()?.checked_mul(100)?;
    if let Some(f) = fraction {
        if !all_digits(f) || f.len() > 2 {
            return None;
        }
        let cents = f.parse::<i64>().ok()?;
        minor = minor.checked_add(if f.len() == 1 { cents * 10 } else { cents })?;
    }
    (1..=MAX_MINOR).contains(&minor).then_some(minor)
}

/// Minor units as Alipay writes amounts: always two decimals (`88.80`).
pub fn format_amount(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A rate ×10^8 as a decimal with eight places (`520000000` → `5.20000000`).
pub fn format_rate(rate_e8: i64) -> String {
    let abs = rate_e8.unsigned_abs();
    let sign = if rate_e8 < 0 { "-" } else { "" };
    format!("{sign}{}.{:08}", abs / 100_000_000, abs % 100_000_000)
}

/// China Standard Time, in which Alipay writes every timestamp.
fn beijing() -> FixedOffset {
    // 8 h is always a valid offset; UTC only as a formal fallback.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Whether `text` is a timestamp in the request format `yyyy-MM-dd HH:mm:ss`.
pub fn is_timestamp(text: &str) -> bool {
    text.len() == 19 && chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").is_ok()
}

/// When a `timeout_express` value (`90m`, `2h`, `1d`, or `1c` = the end of today in Beijing)
/// counted from `now` ends; `None` for a malformed value or one outside 1m–15d.
pub fn parse_timeout(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if text == "1c" {
        let local = now.with_timezone(&beijing());
        let tomorrow = local.date_naive().succ_opt()?.and_time(NaiveTime::MIN);
        return beijing()
            .from_local_datetime(&tomorrow)
            .single()
            .map(|t| t.with_timezone(&Utc));
    }
    let split = text.len().checked_sub(1)?;
    let (number, unit) = (text.get(..split)?, text.get(split..)?);
    if number.is_empty() || number.len() > 5 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = number.parse().ok()?;
    let span = match unit {
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return None,
    };
    (span >= Duration::minutes(1) && span <= Duration::days(15)).then(|| now + span)
}

/// Twelve digits derived from `seed`: stable ids for sandbox customers without storing them.
fn digits_from(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    digest
        .iter()
        .take(12)
        .map(|b| char::from(b'0' + b % 10))
        .collect()
}

/// The buyer's Alipay user id (`2088` + 12 digits), stable per sandbox customer.
pub fn buyer_id(customer_id: &str) -> String {
    format!("2088{}", digits_from(customer_id))
}

/// The buyer's logon id as Alipay shows it to merchants: a masked phone number.
pub fn buyer_logon_id(customer_id: &str) -> String {
    let digits = digits_from(&format!("logon/{customer_id}"));
    let tail = digits.get(..4).unwrap_or("0000");
    format!("138****{tail}")
}

/// A digest of the business fields that make two requests "the same", for idempotency.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hasher.update(part.len().to_string().as_bytes());
        hasher.update(b":");
        hasher.update(part.as_bytes());
        hasher.update(b";");
    }
    hex::encode(hasher.finalize())
}

/// Typed access to `biz_content`'s fields. Alipay documents every field used here as a
/// string; an absent, `null` or empty one counts as not given.
pub struct AlipayBiz(pub Map<String, Value>);

impl AlipayBiz {
    /// Parses the `biz_content` JSON text, which must be an object.
    pub fn parse(text: &str) -> Result<AlipayBiz, AlipayError> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(AlipayBiz(map)),
            Ok(_) => Err(AlipayError::parameter("biz_content must be a JSON object")),
            Err(e) => Err(AlipayError::parameter(format!(
                "biz_content is not valid JSON: {e}"
            ))),
        }
    }

    pub fn optional(&self, name: &str) -> Result<Option<&str>, AlipayError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(AlipayError::parameter(format!("{name} must be a string"))),
        }
    }

    pub fn required(&self, name: &str) -> Result<&str, AlipayError> {
        self.optional(name)?
            .ok_or_else(|| AlipayError::parameter(format!("{name} is required")))
    }

    /// A required amount field in minor units.
    pub fn amount(&self, name: &str) -> Result<i64, AlipayError> {
        let text = self.required(name)?;
        parse_amount(text).ok_or_else(|| {
            AlipayError::parameter(format!(
                "{name} must be a decimal string with at most 2 decimals within 0.01-100000000, got {text:?}"
            ))
        })
    }
}

/// Whether `out_trade_no` (or `out_request_no`) has Alipay's shape: 1–64 letters, digits and
/// underscores.
pub fn is_merchant_no(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `auth_code` is an Alipay payment code: 16–24 digits starting 25–30 (§4).
pub fn is_auth_code(code: &str) -> bool {
    let digits_only = code.bytes().all(|b| b.is_ascii_digit());
    let prefix_ok = code
        .get(..2)
        .and_then(|p| p.parse::<u8>().ok())
        .is_some_and(|p| (25..=30).contains(&p));
    digits_only && (16..=24).contains(&code.len()) && prefix_ok
}
