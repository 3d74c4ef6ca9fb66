//! A minimal OTTPAY POS client written from `shared/protocol/ottpay.md` §3–§4 alone.
//!
//! It shares no code with `qrgate-ottpay` on purpose: tests that talk to the gateway through
//! it prove the gateway speaks the documented protocol, not merely the one our codec speaks.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Map, Value};

type AesEcbEnc = ecb::Encryptor<aes::Aes128>;
type AesEcbDec = ecb::Decryptor<aes::Aes128>;

fn md5_upper_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// §4.1: values ordered by their keys (byte order), concatenated, MD5, upper-case hex.
pub fn digest(data: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    let mut joined = String::new();
    for key in keys {
        match &data[key] {
            Value::String(s) => joined.push_str(s),
            Value::Null => {}
            other => joined.push_str(&other.to_string()),
        }
    }
    md5_upper_hex(joined.as_bytes())
}

/// §4.2: the middle 16 hex characters of MD5(md5 field ‖ sign key), as ASCII key bytes.
pub fn aes_key(md5_field: &str, sign_key: &str) -> [u8; 16] {
    let full = md5_upper_hex(format!("{md5_field}{sign_key}").as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&full.as_bytes()[8..24]);
    key
}

/// §4.3: AES-128-ECB with PKCS#7, standard base64.
pub fn encrypt(plaintext: &[u8], key: &[u8; 16]) -> String {
    let ciphertext = AesEcbEnc::new(key.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    STANDARD.encode(ciphertext)
}

pub fn decrypt(data: &str, key: &[u8; 16]) -> Result<Vec<u8>, String> {
    let bytes = STANDARD.decode(data).map_err(|e| format!("base64: {e}"))?;
    AesEcbDec::new(key.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&bytes)
        .map_err(|e| format!("padding: {e}"))
}

/// Seals `data` into `(data, md5)` as a POS does.
pub fn seal(data: &Map<String, Value>, sign_key: &str) -> (String, String) {
    let md5 = digest(data);
    let plaintext = serde_json::to_string(data).unwrap();
    (encrypt(plaintext.as_bytes(), &aes_key(&md5, sign_key)), md5)
}

/// §4.5: decrypts `data` with the key derived from `md5`, parses it and checks the digest.
pub fn open(data: &str, md5: &str, sign_key: &str) -> Result<Map<String, Value>, String> {
    let plaintext = decrypt(data, &aes_key(md5, sign_key))?;
    let parsed: Map<String, Value> =
        serde_json::from_slice(&plaintext).map_err(|e| format!("json: {e}"))?;
    let recomputed = digest(&parsed);
    if !recomputed.eq_ignore_ascii_case(md5) {
        return Err(format!("digest mismatch: got {md5}, computed {recomputed}"));
    }
    Ok(parsed)
}

/// A gateway's answer as a POS sees it.
#[derive(Debug, Clone)]
pub struct PosResponse {
    pub http_status: u16,
    pub body: Value,
    pub rsp_code: String,
    pub rsp_msg: String,
    /// The decrypted, digest-checked response data, or why it could not be opened.
    pub data: Result<Map<String, Value>, String>,
    /// The `Server-Timing` header, when sent.
    pub server_timing: Option<String>,
}

/// Talks to one gateway as one merchant.
#[derive(Debug, Clone)]
pub struct PosClient {
    pub endpoint: String,
    pub merchant_id: String,
    pub sign_key: String,
    http: reqwest::Client,
}

impl PosClient {
    /// `endpoint` is the full URL, e.g. `http://127.0.0.1:8080/processV2`.
    pub fn new(endpoint: &str, merchant_id: &str, sign_key: &str) -> Self {
        PosClient {
            endpoint: endpoint.to_owned(),
            merchant_id: merchant_id.to_owned(),
            sign_key: sign_key.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The §3.1 request envelope for `action` carrying `data`.
    pub fn envelope(&self, action: &str, data: &Map<String, Value>) -> Value {
        let (sealed, md5) = seal(data, &self.sign_key);
        serde_json::json!({
            "action": action,
            "version": "1.0",
            "merchant_id": self.merchant_id,
            "data": sealed,
            "md5": md5,
        })
    }

    /// Sends `action` with `data` and opens the answer with this client's key.
    pub async fn call(&self, action: &str, data: Value) -> PosResponse {
        let Value::Object(map) = data else {
            panic!("data must be a JSON object")
        };
        let envelope = self.envelope(action, &map);
        self.post(serde_json::to_vec(&envelope).unwrap()).await
    }

    /// Posts raw bytes as the request body and opens the answer with this client's key.
    pub async fn post(&self, body: Vec<u8>) -> PosResponse {
        let response = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("gateway reachable");
        let http_status = response.status().as_u16();
        let server_timing = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "gateway answered non-JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let data = match (
            body.get("data").and_then(Value::as_str),
            body.get("md5").and_then(Value::as_str),
        ) {
            (Some(d), Some(m)) => open(d, m, &self.sign_key),
            _ => Err("no data/md5 in the response".to_owned()),
        };
        PosResponse {
            http_status,
            rsp_code: text("rsp_code"),
            rsp_msg: text("rsp_msg"),
            data,
            body,
            server_timing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ottpay.md §4.7 TV-4, so this client is itself checked against the documented vector.
    #[test]
    fn seals_the_documented_exchange_rate_vector() {
        let data = serde_json::json!({"fee_type": "CAD"});
        let (sealed, md5) = seal(data.as_object().unwrap(), "6698851A525C9433");
        assert_eq!(md5, "ECCB0954FCA9F2005AEA084605DF5EE9");
        assert_eq!(sealed, "MteK74yzijkB6+yOakNsZMbaJl7WvkJeSx5FBDbIdmM=");
        assert_eq!(
            open(&sealed, &md5, "6698851A525C9433").unwrap(),
            *data.as_object().unwrap()
        );
    }
}
