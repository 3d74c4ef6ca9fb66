//! Alipay's notification endpoint: any body, as a form, through `verify_callback` (form
//! parsing, the parameters, the Base64 signature and its RSA2 check with the test Alipay key).
//! The fuzzer cannot forge an RSA signature, so what it reaches is everything in front of the
//! check: a panic or a hang there is what this looks for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qrgate_connector_api::{Connector, HttpClientConfig};
use qrgate_connectors::alipay::{AlipayConfig, AlipayConnector};
use secrecy::SecretString;
use std::sync::OnceLock;

fn connector() -> &'static AlipayConnector {
    static C: OnceLock<AlipayConnector> = OnceLock::new();
    C.get_or_init(|| {
        AlipayConnector::new(AlipayConfig {
            gateway_url: "http://127.0.0.1:9/gateway.do".into(),
            app_id: "2014072300007148".into(),
            app_private_key_pem: SecretString::from(include_str!(
                "../../crates/connectors/src/alipay/fixtures/test_app_private_key_pkcs8.pem"
            )),
            alipay_public_key_pem: include_str!(
                "../../crates/connectors/src/alipay/fixtures/test_alipay_public_key.pem"
            )
            .into(),
            seller_id: Some("2088102146225131".into()),
            cross_border: false,
            http: HttpClientConfig::default(),
        })
        .expect("the fuzz connector")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = connector().verify_callback(Some("application/x-www-form-urlencoded"), data);
});
