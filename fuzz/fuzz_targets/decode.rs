//! Fuzz target `decode`: everything a gateway does with untrusted request bytes.
//!
//! 1. The whole input as an envelope body: `RequestEnvelope::parse` (also
//!    `ResponseEnvelope::parse`/`CallbackEnvelope::parse`); on success `open` with a fixed
//!    key and `from_data` of every message type on the result.
//! 2. The input split at the first two `\n` into `data`, `md5` and a sign key: `open`
//!    with the fixed key and with the key taken from the input, then `from_data`.
//! 3. The input used as a plaintext, encrypted under the key derived from an md5 taken
//!    from the input, then opened: this drives arbitrary bytes through the decrypted-side
//!    code (JSON parsing, digest check with the number retries, typed messages), which
//!    1 and 2 rarely reach because the ciphertext must decrypt correctly.
//!
//! Checked: no panic anywhere; any data that opens re-seals and re-opens to the same
//! object; typed messages that parse round-trip through `to_data`/`from_data`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qrgate_ottpay::messages::*;
use qrgate_ottpay::{
    digest, encrypt_with_md5, open, seal, CallbackEnvelope, Data, RequestEnvelope,
    ResponseEnvelope, SignKey,
};

const FIXED_KEY: &str = "6698851A525C9433";

fn round_trip<T: Message + PartialEq + std::fmt::Debug>(d: &Data) {
    if let Ok(v) = T::from_data(d) {
        let out = v.to_data();
        assert!(
            out.values().all(|x| x.is_string()),
            "to_data emitted a non-string"
        );
        let again = T::from_data(&out).expect("to_data output must parse");
        assert_eq!(again, v);
    }
}

fn typed(d: &Data) {
    round_trip::<ActivePayRequest>(d);
    round_trip::<ActivePayResponse>(d);
    round_trip::<PassivePayRequest>(d);
    round_trip::<PassivePayResponse>(d);
    round_trip::<StatusQueryRequest>(d);
    round_trip::<StatusQueryResponse>(d);
    round_trip::<RefundRequest>(d);
    round_trip::<RefundResponse>(d);
    round_trip::<RefundQueryRequest>(d);
    round_trip::<ExRateQueryRequest>(d);
    round_trip::<ExRateQueryResponse>(d);
    round_trip::<CallbackData>(d);
}

/// Data that opened must seal and open again to the same object.
fn opened(d: &Data, key: &SignKey) {
    let s = seal(d, key);
    let back = open(&s.data, &s.md5, key).expect("re-sealed data must open");
    assert_eq!(&back, d);
    typed(d);
}

fn try_open(data: &str, md5: &str, key: &SignKey) {
    if let Ok(d) = open(data, md5, key) {
        opened(&d, key);
    }
}

fuzz_target!(|input: &[u8]| {
    let fixed = SignKey::new(FIXED_KEY);

    // 1. Envelope bodies.
    if let Ok(env) = RequestEnvelope::parse(input) {
        let _ = env.action();
        assert_eq!(
            RequestEnvelope::parse(env.to_json().as_bytes()).as_ref(),
            Ok(&env)
        );
        if let Ok(d) = env.open(&fixed) {
            opened(&d, &fixed);
        }
    }
    if let Ok(env) = ResponseEnvelope::parse(input) {
        let _ = env.code();
        if let Ok(d) = env.open(&fixed) {
            opened(&d, &fixed);
        }
    }
    if let Ok(env) = CallbackEnvelope::parse(input) {
        if let Ok(d) = env.open(&fixed) {
            opened(&d, &fixed);
        }
    }

    // 2. Split into data / md5 / key.
    let text = String::from_utf8_lossy(input);
    let mut parts = text.splitn(3, '\n');
    let data = parts.next().unwrap_or("");
    let md5 = parts.next().unwrap_or("");
    let key = SignKey::new(parts.next().unwrap_or(""));
    try_open(data, md5, &fixed);
    try_open(data, md5, &key);

    // 3. Arbitrary plaintext under a correctly derived key. The md5 is either taken from
    //    the first 32 bytes (when they are hex) or the digest of the parsed plaintext.
    let (md5, plaintext) = match input.get(..32).and_then(|h| std::str::from_utf8(h).ok()) {
        Some(h) if h.bytes().all(|b| b.is_ascii_hexdigit()) => (h.to_owned(), &input[32..]),
        _ => {
            let md5 = serde_json::from_slice::<Data>(input)
                .map(|d| digest(&d))
                .unwrap_or_else(|_| "D41D8CD98F00B204E9800998ECF8427E".to_owned());
            (md5, input)
        }
    };
    let ct = encrypt_with_md5(plaintext, &md5, &fixed);
    try_open(&ct, &md5, &fixed);
});
