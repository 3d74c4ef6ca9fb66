//! Malformed control and wallet requests get an answer in the right shape, never a panic
//! or a 5xx.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use qrgate_sandbox::{wallet_modules, Sandbox, SandboxConfig};

const BODIES: [&[u8]; 9] = [
    b"",
    b"{",
    b"null",
    b"[]",
    b"{\"x\":1}",
    b"<xml><return_code>",
    b"a=b&c",
    b"%zz=%%&&==",
    b"\xff\xfe\x00garbage",
];

#[tokio::test]
async fn malformed_requests_get_answers_in_each_apis_own_shape() {
    let sandbox = Sandbox::new(
        SandboxConfig {
            seed: 3,
            ..Default::default()
        },
        wallet_modules(),
    )
    .unwrap();
    let running = sandbox
        .spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let control_posts = [
        "/control/customers",
        "/control/customers/c0001/top-up",
        "/control/codes",
        "/control/qr/scan",
        "/control/qr/pay",
        "/control/clock/advance",
    ];
    for path in control_posts {
        for body in BODIES {
            for content_type in ["application/json", "text/plain"] {
                let r = http
                    .post(format!("{}{path}", running.url()))
                    .header("content-type", content_type)
                    .body(body.to_vec())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                assert!(
                    (400..500).contains(&status),
                    "{path} {body:?}: {status} {text}"
                );
                let json: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{path} {body:?}: not JSON: {text}"));
                assert!(json["error"]["code"].is_string(), "{path}: {text}");
            }
        }
    }
    for path in ["/control/rates", "/control/faults/wechat"] {
        let r = http
            .put(format!("{}{path}", running.url()))
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{path}");
    }

    let wallet_posts = [
        ("/wechat/pay/micropay", "return_code"),
        ("/wechat/pay/orderquery", "return_code"),
        ("/wechat/pay/unifiedorder", "return_code"),
        ("/wechat/pay/closeorder", "return_code"),
        ("/wechat/pay/refundquery", "return_code"),
        ("/wechat/secapi/pay/reverse", "return_code"),
        ("/wechat/secapi/pay/refund", "return_code"),
        ("/alipay/gateway.do", "_response"),
        ("/unionpay/gateway/api/backTransReq.do", "respCode"),
        ("/unionpay/gateway/api/queryTrans.do", "respCode"),
    ];
    for (path, marker) in wallet_posts {
        for body in BODIES {
            let r = http
                .post(format!("{}{path}", running.url()))
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(status < 500, "{path} {body:?}: {status} {text}");
            assert!(
                text.contains(marker),
                "{path} {body:?}: the wallet's own error shape expected, got {text}"
            );
        }
    }
    running.stop().await;
}
