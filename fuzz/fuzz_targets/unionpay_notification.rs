//! UnionPay's notification endpoint: any body, as a form, through `verify_callback` (form
//! parsing, `signPubKeyCert` — a certificate the sender chooses, parsed and checked against
//! the test root and the signing-certificate owner pin — and the signature). The fuzzer cannot
//! forge the signature; it reaches the form and certificate parsing in front of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qrgate_connector_api::{Connector, HttpClientConfig};
use qrgate_connectors::unionpay::{UnionPayConfig, UnionPayConnector, UNIONPAY_SIGNING_CERT_OWNER};
use secrecy::SecretString;
use std::sync::OnceLock;

fn connector() -> &'static UnionPayConnector {
    static C: OnceLock<UnionPayConnector> = OnceLock::new();
    C.get_or_init(|| {
        UnionPayConnector::new(UnionPayConfig {
            base_url: "http://127.0.0.1:9".into(),
            mer_id: "777290058110048".into(),
            cert_id: "68759529225".into(),
            merchant_private_key_pem: SecretString::from(include_str!(
                "../../crates/connectors/src/unionpay/fixtures/test_merchant_key.pem"
            )),
            root_cert_pem: include_str!(
                "../../crates/connectors/src/unionpay/fixtures/test_root_ca.pem"
            )
            .into(),
            signing_cert_owner: UNIONPAY_SIGNING_CERT_OWNER.into(),
            signing_cert_sha256: Vec::new(),
            back_url: "http://127.0.0.1:9/notify/unionpay".into(),
            file_base_url: "http://127.0.0.1:9/".into(),
            http: HttpClientConfig::default(),
        })
        .expect("the fuzz connector")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = connector().verify_callback(Some("application/x-www-form-urlencoded"), data);
});
