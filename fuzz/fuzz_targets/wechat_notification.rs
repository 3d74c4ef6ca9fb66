//! WeChat Pay's notification endpoint: any body, as XML, through `verify_callback` (XML
//! parsing, the signature check, then the fields). Inputs whose first byte is odd are signed
//! with the test key first (wallets.md §1.2, computed here, not by the connector), so that the
//! parsing behind the signature is fuzzed too, not only the refusal in front of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};
use qrgate_connector_api::{Connector, HttpClientConfig};
use qrgate_connectors::wechat_pay::{WechatPayConfig, WechatPayConnector, WechatPaySignType};
use secrecy::SecretString;
use std::sync::OnceLock;

/// wallets.md §7's example merchant (public test values).
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn connector() -> &'static WechatPayConnector {
    static C: OnceLock<WechatPayConnector> = OnceLock::new();
    C.get_or_init(|| {
        WechatPayConnector::new(WechatPayConfig {
            base_url: "http://127.0.0.1:9".into(),
            secapi_base_url: "http://127.0.0.1:9".into(),
            appid: "wxd930ea5d5a258f4f".into(),
            mch_id: "10000100".into(),
            sub_mch_id: None,
            api_key: SecretString::from(KEY),
            sign_type: WechatPaySignType::Md5,
            http: HttpClientConfig::default(),
            secapi_http: HttpClientConfig::default(),
        })
        .expect("the fuzz connector")
    })
}

/// Pairs of `<name>value</name>` (CDATA or not) at the top level, in order: a rough reading,
/// enough to sign what the fuzzer made.
fn fields(xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(end) = rest.find('>') else { break };
        let name = &rest[..end];
        if name.is_empty() || name.starts_with(['/', '!', '?']) || name == "xml" {
            continue;
        }
        let close = format!("</{name}>");
        let Some(stop) = rest.find(&close) else {
            continue;
        };
        let value = &rest[end + 1..stop];
        let value = value
            .strip_prefix("<![CDATA[")
            .and_then(|v| v.strip_suffix("]]>"))
            .unwrap_or(value);
        out.push((name.to_owned(), value.to_owned()));
        rest = &rest[stop + close.len()..];
    }
    out
}

fn signed(xml: &str) -> String {
    let mut pairs: Vec<_> = fields(xml)
        .into_iter()
        .filter(|(k, v)| k != "sign" && !v.is_empty())
        .collect();
    pairs.sort();
    let mut text: String = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    text.push_str("&key=");
    text.push_str(KEY);
    let sign: String = Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let body: String = pairs
        .iter()
        .map(|(k, v)| format!("<{k}><![CDATA[{v}]]></{k}>"))
        .collect();
    format!("<xml>{body}<sign>{sign}</sign></xml>")
}

fuzz_target!(|data: &[u8]| {
    let c = connector();
    let _ = c.verify_callback(Some("text/xml"), data);
    if data.first().is_some_and(|b| b % 2 == 1) {
        if let Ok(text) = std::str::from_utf8(&data[1..]) {
            let _ = c.verify_callback(Some("text/xml"), signed(text).as_bytes());
        }
    }
});
