//! Outer envelopes (§3): request, synchronous response and call-back.

use serde_json::Value;

use crate::codes::{Action, RspCode};
use crate::crypto::{decode_base64_lenient, open, seal, to_compact_json, Data, OpenError, SignKey};

/// Why an envelope body could not be parsed.
///
/// The `Display` texts are one line of plain ASCII without `+` or `%`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The body is neither JSON nor base64 of JSON.
    #[error("body is not valid JSON")]
    NotJson,
    /// The body is JSON but not an object.
    #[error("body is not a JSON object")]
    NotObject,
    /// A required field is absent or `null`.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field is present but not a JSON string.
    #[error("field {0} must be a string")]
    NotAString(&'static str),
}

/// Parses an envelope body into its top-level object (§3, §11.1).
///
/// A leading UTF-8 BOM and whitespace are skipped. If the first byte is not `{`, the whole
/// body is also tried as (tolerant) base64 of the JSON object.
fn parse_object(body: &[u8]) -> Result<Data, EnvelopeError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    let value: Value = if first == Some(b'{') {
        serde_json::from_slice(body).map_err(|_| EnvelopeError::NotJson)?
    } else {
        let from_b64 = std::str::from_utf8(body)
            .ok()
            .and_then(|s| decode_base64_lenient(s, true))
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        match from_b64 {
            Some(v) => v,
            None => serde_json::from_slice(body).map_err(|_| EnvelopeError::NotJson)?,
        }
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(EnvelopeError::NotObject),
    }
}

/// A required string field: absent or `null` is missing, anything but a string is invalid.
fn required(map: &Data, name: &'static str) -> Result<String, EnvelopeError> {
    match map.get(name) {
        None | Some(Value::Null) => Err(EnvelopeError::MissingField(name)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(EnvelopeError::NotAString(name)),
    }
}

/// An optional string field: absent, `null` and `""` are `None`.
fn optional(map: &Data, name: &'static str) -> Result<Option<String>, EnvelopeError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(EnvelopeError::NotAString(name)),
    }
}

fn put(map: &mut Data, name: &str, value: &str) {
    map.insert(name.to_owned(), Value::String(value.to_owned()));
}

fn put_opt(map: &mut Data, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        put(map, name, v);
    }
}

/// Opens optional `data`/`md5` fields; a missing one is [`OpenError::NotJson`].
fn open_opt(data: Option<&str>, md5: Option<&str>, key: &SignKey) -> Result<Data, OpenError> {
    match (data, md5) {
        (Some(d), Some(m)) => open(d, m, key),
        _ => Err(OpenError::NotJson),
    }
}

/// Makes a message safe for an outer field (§13.7): every character that is not printable
/// ASCII, and every `+` and `%`, becomes `?`. An empty result is allowed.
pub fn wire_safe_msg(msg: &str) -> String {
    msg.chars()
        .map(|c| match c {
            '+' | '%' => '?',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// `msg` made wire-safe, or the code's default message when `msg` is empty.
fn message_for(code: RspCode, msg: &str) -> String {
    if msg.is_empty() {
        code.default_message().to_owned()
    } else {
        wire_safe_msg(msg)
    }
}

/// Request envelope, client to gateway (§3.1). Fields hold the wire strings as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEnvelope {
    /// `action`, e.g. `ACTIVEPAY` (see [`Action::parse`]).
    pub action: String,
    /// `version`, `"1.0"` for retail actions.
    pub version: String,
    /// `merchant_id`: selects the sign key.
    pub merchant_id: String,
    /// `terminal_no`, optional.
    pub terminal_no: Option<String>,
    /// `operator_id`, optional envelope copy.
    pub operator_id: Option<String>,
    /// `data`: base64 of the AES ciphertext.
    pub data: String,
    /// `md5`: digest of the transaction data.
    pub md5: String,
}

impl RequestEnvelope {
    /// Parses a request body.
    ///
    /// The body is a JSON object; if its first non-whitespace byte is not `{`, it is also
    /// accepted as base64 of that object (§11.1). `action`, `version`, `merchant_id`,
    /// `data` and `md5` are required strings (absent or `null`: `MissingField`; other
    /// types: `NotAString`). `terminal_no`/`operator_id` that are absent, `null` or `""`
    /// become `None`. Other keys are ignored. Never panics.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let map = parse_object(body)?;
        Ok(Self {
            action: required(&map, "action")?,
            version: required(&map, "version")?,
            merchant_id: required(&map, "merchant_id")?,
            terminal_no: optional(&map, "terminal_no")?,
            operator_id: optional(&map, "operator_id")?,
            data: required(&map, "data")?,
            md5: required(&map, "md5")?,
        })
    }

    /// Builds a sealed request (client side): `version` from [`Action::version`], `data`
    /// and `md5` from [`seal`]. Empty `terminal_no`/`operator_id` count as absent.
    pub fn seal(
        action: Action,
        merchant_id: &str,
        terminal_no: Option<&str>,
        operator_id: Option<&str>,
        data: &Data,
        key: &SignKey,
    ) -> Self {
        let sealed = seal(data, key);
        let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        Self {
            action: action.as_str().to_owned(),
            version: action.version().to_owned(),
            merchant_id: merchant_id.to_owned(),
            terminal_no: non_empty(terminal_no),
            operator_id: non_empty(operator_id),
            data: sealed.data,
            md5: sealed.md5,
        }
    }

    /// The action, if it is one of the retail [`Action`]s.
    pub fn action(&self) -> Option<Action> {
        Action::parse(&self.action)
    }

    /// Opens `data` with `md5` and the merchant's key; see [`open`].
    pub fn open(&self, key: &SignKey) -> Result<Data, OpenError> {
        open(&self.data, &self.md5, key)
    }

    /// Compact single-line JSON, keys in the order `action`, `version`, `merchant_id`,
    /// `terminal_no`, `operator_id`, `data`, `md5` (`None` fields omitted).
    pub fn to_json(&self) -> String {
        let mut m = Data::new();
        put(&mut m, "action", &self.action);
        put(&mut m, "version", &self.version);
        put(&mut m, "merchant_id", &self.merchant_id);
        put_opt(&mut m, "terminal_no", self.terminal_no.as_deref());
        put_opt(&mut m, "operator_id", self.operator_id.as_deref());
        put(&mut m, "data", &self.data);
        put(&mut m, "md5", &self.md5);
        to_compact_json(&m)
    }
}

/// Synchronous response envelope, gateway to client (§3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseEnvelope {
    /// `rsp_code`, see [`RspCode`].
    pub rsp_code: String,
    /// `rsp_msg`: human-readable, plain ASCII on the wire.
    pub rsp_msg: String,
    /// `data`: base64 of the AES ciphertext.
    pub data: Option<String>,
    /// `md5`: digest of the response data.
    pub md5: Option<String>,
}

impl ResponseEnvelope {
    /// A response carrying sealed `data`. `msg` is made wire-safe with [`wire_safe_msg`];
    /// an empty `msg` is replaced by [`RspCode::default_message`].
    pub fn sealed(code: RspCode, msg: &str, data: &Data, key: &SignKey) -> Self {
        let sealed = seal(data, key);
        Self {
            rsp_code: code.as_str().to_owned(),
            rsp_msg: message_for(code, msg),
            data: Some(sealed.data),
            md5: Some(sealed.md5),
        }
    }

    /// An error response (§3.2, §11.6): like [`ResponseEnvelope::sealed`] with an empty
    /// object `{}` as data, so `md5` is `D41D8CD98F00B204E9800998ECF8427E`.
    pub fn error(code: RspCode, msg: &str, key: &SignKey) -> Self {
        Self::sealed(code, msg, &Data::new(), key)
    }

    /// Compact single-line JSON, keys in the order `rsp_code`, `rsp_msg`, `data`, `md5`
    /// (`None` fields omitted). Fields are written as they are; build envelopes with
    /// [`ResponseEnvelope::sealed`] to keep `rsp_msg` wire-safe.
    pub fn to_json(&self) -> String {
        let mut m = Data::new();
        put(&mut m, "rsp_code", &self.rsp_code);
        put(&mut m, "rsp_msg", &self.rsp_msg);
        put_opt(&mut m, "data", self.data.as_deref());
        put_opt(&mut m, "md5", self.md5.as_deref());
        to_compact_json(&m)
    }

    /// Parses a response body (client side). `rsp_code` is a required string; a missing or
    /// `null` `rsp_msg` becomes `""`; `data`/`md5` that are absent, `null` or `""` become
    /// `None`. Other keys are ignored. Never panics.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let map = parse_object(body)?;
        Ok(Self {
            rsp_code: required(&map, "rsp_code")?,
            rsp_msg: optional(&map, "rsp_msg")?.unwrap_or_default(),
            data: optional(&map, "data")?,
            md5: optional(&map, "md5")?,
        })
    }

    /// Opens the response data; see [`open`]. A missing `data` or `md5` is
    /// [`OpenError::NotJson`].
    pub fn open(&self, key: &SignKey) -> Result<Data, OpenError> {
        open_opt(self.data.as_deref(), self.md5.as_deref(), key)
    }

    /// The response code, if it is one of [`RspCode::ALL`].
    pub fn code(&self) -> Option<RspCode> {
        RspCode::parse(&self.rsp_code)
    }
}

/// Call-back envelope, gateway to the merchant's `call_back_url` (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackEnvelope {
    /// `rsp_code`, `SUCCESS` for a paid order.
    pub rsp_code: String,
    /// `rsp_msg`, `success` for a paid order.
    pub rsp_msg: String,
    /// `merchant_id`: whose key seals the data.
    pub merchant_id: String,
    /// `data`: base64 of the AES ciphertext.
    pub data: String,
    /// `md5`: digest of the call-back data.
    pub md5: String,
}

impl CallbackEnvelope {
    /// A call-back carrying sealed `data`. `msg` is made wire-safe; an empty `msg` is
    /// replaced by [`RspCode::default_message`].
    pub fn sealed(code: RspCode, msg: &str, merchant_id: &str, data: &Data, key: &SignKey) -> Self {
        let sealed = seal(data, key);
        Self {
            rsp_code: code.as_str().to_owned(),
            rsp_msg: message_for(code, msg),
            merchant_id: merchant_id.to_owned(),
            data: sealed.data,
            md5: sealed.md5,
        }
    }

    /// The usual paid-order call-back: `SUCCESS` / `success`.
    pub fn success(merchant_id: &str, data: &Data, key: &SignKey) -> Self {
        Self::sealed(RspCode::Success, "success", merchant_id, data, key)
    }

    /// Compact single-line JSON, keys in the order `rsp_code`, `rsp_msg`, `merchant_id`,
    /// `data`, `md5`.
    pub fn to_json(&self) -> String {
        let mut m = Data::new();
        put(&mut m, "rsp_code", &self.rsp_code);
        put(&mut m, "rsp_msg", &self.rsp_msg);
        put(&mut m, "merchant_id", &self.merchant_id);
        put(&mut m, "data", &self.data);
        put(&mut m, "md5", &self.md5);
        to_compact_json(&m)
    }

    /// Parses a call-back body (merchant side). `rsp_code`, `merchant_id`, `data` and
    /// `md5` are required strings; a missing or `null` `rsp_msg` becomes `""`. Other keys
    /// (e.g. clear-text `order_id`, §11.11) are ignored. Never panics.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let map = parse_object(body)?;
        Ok(Self {
            rsp_code: required(&map, "rsp_code")?,
            rsp_msg: optional(&map, "rsp_msg")?.unwrap_or_default(),
            merchant_id: required(&map, "merchant_id")?,
            data: required(&map, "data")?,
            md5: required(&map, "md5")?,
        })
    }

    /// Opens the call-back data with the merchant's own key; see [`open`].
    pub fn open(&self, key: &SignKey) -> Result<Data, OpenError> {
        open(&self.data, &self.md5, key)
    }

    /// The response code, if it is one of [`RspCode::ALL`].
    pub fn code(&self) -> Option<RspCode> {
        RspCode::parse(&self.rsp_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::EMPTY_DIGEST;

    fn key() -> SignKey {
        SignKey::new("6698851A525C9433")
    }

    #[test]
    fn request_round_trip() {
        let mut d = Data::new();
        d.insert("fee_type".into(), "CAD".into());
        let env = RequestEnvelope::seal(
            Action::ExRateQuery,
            "ON00004652",
            Some("T1"),
            Some(""),
            &d,
            &key(),
        );
        let json = env.to_json();
        assert!(json.starts_with(r#"{"action":"EX_RATE_QUERY","version":"1.0","merchant_id":"ON00004652","terminal_no":"T1","data":""#));
        let back = RequestEnvelope::parse(json.as_bytes()).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.action(), Some(Action::ExRateQuery));
        assert_eq!(back.open(&key()).unwrap(), d);
    }

    #[test]
    fn request_parse_errors() {
        assert_eq!(RequestEnvelope::parse(b""), Err(EnvelopeError::NotJson));
        assert_eq!(RequestEnvelope::parse(b"{"), Err(EnvelopeError::NotJson));
        assert_eq!(
            RequestEnvelope::parse(b"[1]"),
            Err(EnvelopeError::NotObject)
        );
        assert_eq!(
            RequestEnvelope::parse(b"\"x\""),
            Err(EnvelopeError::NotObject)
        );
        assert_eq!(
            RequestEnvelope::parse(br#"{"action":"ACTIVEPAY"}"#),
            Err(EnvelopeError::MissingField("version"))
        );
        assert_eq!(
            RequestEnvelope::parse(br#"{"action":1}"#),
            Err(EnvelopeError::NotAString("action"))
        );
        assert_eq!(
            RequestEnvelope::parse(
                br#"{"action":"A","version":"1.0","merchant_id":"M","terminal_no":5,"data":"x","md5":"y"}"#
            ),
            Err(EnvelopeError::NotAString("terminal_no"))
        );
    }

    #[test]
    fn request_parse_lenient() {
        let body = br#" {"md5":"M","data":"D","merchant_id":"QC1","version":"1.0","action":"ACTIVEPAY","terminal_no":null,"operator_id":"","extra":[1]}"#;
        let env = RequestEnvelope::parse(body).unwrap();
        assert_eq!(env.terminal_no, None);
        assert_eq!(env.operator_id, None);
        assert_eq!(env.merchant_id, "QC1");
        // The same body base64-encoded (§11.1).
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&body[1..]);
        assert_eq!(RequestEnvelope::parse(b64.as_bytes()).unwrap(), env);
    }

    #[test]
    fn error_response() {
        let r = ResponseEnvelope::error(RspCode::ParamInvalid, "unknown merchant", &key());
        assert_eq!(r.md5.as_deref(), Some(EMPTY_DIGEST));
        assert_eq!(r.open(&key()).unwrap(), Data::new());
        let json = r.to_json();
        assert!(json
            .starts_with(r#"{"rsp_code":"PARAM_INVALID","rsp_msg":"unknown merchant","data":""#));
        let back = ResponseEnvelope::parse(json.as_bytes()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.code(), Some(RspCode::ParamInvalid));
    }

    #[test]
    fn response_msg_is_wire_safe() {
        let r = ResponseEnvelope::error(RspCode::Fail, "50% off + tip\u{e9}\n", &key());
        assert_eq!(r.rsp_msg, "50? off ? tip??");
        let r = ResponseEnvelope::error(RspCode::Fail, "", &key());
        assert_eq!(r.rsp_msg, "failure.");
    }

    #[test]
    fn response_missing_data() {
        let r = ResponseEnvelope::parse(br#"{"rsp_code":"FAIL"}"#).unwrap();
        assert_eq!(r.rsp_msg, "");
        assert_eq!(r.data, None);
        assert_eq!(r.open(&key()), Err(OpenError::NotJson));
        assert_eq!(
            ResponseEnvelope::parse(br#"{"rsp_msg":"x"}"#),
            Err(EnvelopeError::MissingField("rsp_code"))
        );
    }

    #[test]
    fn callback_round_trip() {
        let mut d = Data::new();
        d.insert("order_id".into(), "A1".into());
        let cb = CallbackEnvelope::success("ON00004652", &d, &key());
        let json = cb.to_json();
        assert!(json.starts_with(
            r#"{"rsp_code":"SUCCESS","rsp_msg":"success","merchant_id":"ON00004652","data":""#
        ));
        let back = CallbackEnvelope::parse(json.as_bytes()).unwrap();
        assert_eq!(back, cb);
        assert_eq!(back.open(&key()).unwrap(), d);
        assert_eq!(back.code(), Some(RspCode::Success));
    }

    #[test]
    fn error_messages_are_wire_safe() {
        let all = [
            EnvelopeError::NotJson.to_string(),
            EnvelopeError::NotObject.to_string(),
            EnvelopeError::MissingField("merchant_id").to_string(),
            EnvelopeError::NotAString("md5").to_string(),
            OpenError::Base64.to_string(),
            OpenError::Length.to_string(),
            OpenError::Padding.to_string(),
            OpenError::NotJson.to_string(),
            OpenError::NotObject.to_string(),
            OpenError::DigestMismatch.to_string(),
            OpenError::BadDigestField.to_string(),
        ];
        for m in all {
            assert_eq!(wire_safe_msg(&m), m);
            assert!(!m.is_empty());
        }
    }
}
