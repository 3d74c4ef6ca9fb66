//! `qrgate callbacks list|show|retry` against notifications a running gateway really sent:
//! orders named by the gateway's key or by the merchant's own order_id, every attempt shown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::crash::{send, start_sandbox, write_config};
use crate::Install;

fn json_of(install: &Install, args: &[&str]) -> Value {
    serde_json::from_str(&install.ok(args)).unwrap()
}

/// Waits until `done` holds for `callbacks list --json`, or fails after a minute.
fn wait_for_list(install: &Install, config: &str, what: &str, done: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = json_of(
            install,
            &["callbacks", "list", "--json", "--config", config],
        );
        let list = list.as_array().unwrap();
        if done(list) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {list:#?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

async fn the_callbacks_commands_take_either_order_id(install: Install) {
    let sandbox = start_sandbox(&install).await;
    let config = write_config(&install, &sandbox).await;
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("allow_private_callbacks = true\n{text}")).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut merchants = Vec::new();
    for name in ["A", "B"] {
        let created = json_of(
            &install,
            &[
                "merchant",
                "create",
                "--name",
                name,
                "--currency",
                "CAD",
                "--json",
                "--config",
                &config,
            ],
        );
        merchants.push((
            created["merchant_id"].as_str().unwrap().to_owned(),
            created["sign_key"].as_str().unwrap().to_owned(),
        ));
    }
    let (a, b) = (merchants[0].0.clone(), merchants[1].0.clone());

    // The merchants' endpoint: "busy" (HTTP 500) until told to accept.
    let accept = Arc::new(AtomicBool::new(false));
    let accepting = accept.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let accepting = accepting.clone();
            async move {
                if accepting.load(Ordering::SeqCst) {
                    (axum::http::StatusCode::OK, "OK")
                } else {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "busy")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let server = install.serve(&["--config", &config]);
    let customer = reqwest::Client::new()
        .post(format!("{}/control/customers", sandbox.url))
        .json(&json!({"name": "c", "balance_fen": 1_000_000}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (merchant, key, order_id) in [
        (&merchants[0].0, &merchants[0].1, "SAME-1"),
        (&merchants[1].0, &merchants[1].1, "SAME-1"),
        (&merchants[0].0, &merchants[0].1, "A-ONLY"),
    ] {
        let data = json!({"order_id": order_id, "amount": "100", "biz_type": "ALIPAY", "call_back_url": receiver});
        let (code, answer) = send(&server.endpoint(), merchant, key, "ACTIVEPAY", data)
            .await
            .unwrap();
        assert_eq!(code, "SUCCESS", "{answer}");
        reqwest::Client::new()
            .post(format!("{}/control/qr/pay", sandbox.url))
            .json(&json!({"code_url": answer["code_url"], "customer_id": customer}))
            .send()
            .await
            .unwrap();
    }
    wait_for_list(&install, &config, "three notifications tried", |list| {
        list.len() == 3 && list.iter().all(|n| n["attempts"].as_i64() >= Some(1))
    });

    // The list shows the merchant's order_id beside the gateway's key.
    let list = json_of(
        &install,
        &["callbacks", "list", "--json", "--config", &config],
    );
    let key_of = |merchant: &str, order_id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|n| n["merchant_id"] == merchant && n["order_id"] == order_id)
            .unwrap_or_else(|| panic!("{merchant} {order_id} not listed: {list:#}"))["order_key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a_same, b_same, a_only) = (
        key_of(&a, "SAME-1"),
        key_of(&b, "SAME-1"),
        key_of(&a, "A-ONLY"),
    );
    let listed = install.ok(&["callbacks", "list", "--config", &config]);
    for needle in ["A-ONLY", "SAME-1", &a_only, &a, &b] {
        assert!(listed.contains(needle), "{needle} not in\n{listed}");
    }

    // Show: by the merchant's order_id or by the gateway's key, every attempt with its answer.
    let shown = json_of(
        &install,
        &["callbacks", "show", "A-ONLY", "--json", "--config", &config],
    );
    assert_eq!(
        (
            &shown["order_key"],
            &shown["order_id"],
            &shown["merchant_id"]
        ),
        (&json!(a_only), &json!("A-ONLY"), &json!(a))
    );
    assert_eq!(shown["attempts"][0]["http_status"], 500, "{shown:#}");
    assert_eq!(shown["attempts"][0]["answer"], "busy");
    assert!(shown["attempts"][0]["at"].is_string());
    assert_eq!(
        json_of(
            &install,
            &["callbacks", "show", &b_same, "--json", "--config", &config]
        )["order_id"],
        "SAME-1"
    );
    let text = install.ok(&["callbacks", "show", &a_only, "--config", &config]);
    assert!(
        text.contains("A-ONLY") && text.contains("HTTP 500") && text.contains("\"busy\""),
        "{text}"
    );

    // An order_id two merchants used is ambiguous until the merchant is named.
    let out = install.run(&["callbacks", "show", "SAME-1", "--config", &config]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("SAME-1 names several notifications")
            && stderr.contains(&a_same)
            && stderr.contains(&b_same),
        "{stderr}"
    );
    assert_eq!(
        json_of(
            &install,
            &[
                "callbacks",
                "show",
                "SAME-1",
                "--merchant",
                &b,
                "--json",
                "--config",
                &config
            ]
        )["order_key"],
        json!(b_same)
    );

    // Retry: by order_id, by key, by order_id with the merchant; all delivered now.
    accept.store(true, Ordering::SeqCst);
    for args in [
        vec!["callbacks", "retry", "A-ONLY"],
        vec!["callbacks", "retry", &a_same],
        vec!["callbacks", "retry", "SAME-1", "--merchant", &b],
    ] {
        let args = [args, vec!["--config", &config]].concat();
        assert!(install.ok(&args).contains("will be sent again now"));
    }
    wait_for_list(
        &install,
        &config,
        "all delivered after the retries",
        |list| list.iter().all(|n| n["status"] == "delivered"),
    );
    let shown = json_of(
        &install,
        &["callbacks", "show", &a_only, "--json", "--config", &config],
    );
    let attempts = shown["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{shown:#}");
    assert_eq!(attempts[0]["http_status"], 500);
    let last = attempts.last().unwrap();
    assert_eq!(
        (&last["http_status"], &last["answer"]),
        (&json!(200), &json!("OK"))
    );

    // Bad names: refused with the reason.
    for (args, code, needle) in [
        (
            vec!["callbacks", "show", "NOPE"],
            1,
            "notification for that order not found",
        ),
        (
            vec!["callbacks", "retry", "NOPE"],
            1,
            "notification for that order not found",
        ),
        (
            vec!["callbacks", "retry", "SAME-1"],
            1,
            "names several notifications",
        ),
        (
            vec!["callbacks", "show", "no spaces"],
            2,
            "invalid order_id",
        ),
        (
            vec!["callbacks", "show", "A-ONLY", "--merchant", "ON99999999"],
            1,
            "merchant not found",
        ),
        (
            vec!["callbacks", "show", "A-ONLY", "--merchant", &b],
            1,
            "notification for that order not found",
        ),
    ] {
        let args = [args, vec!["--config", &config]].concat();
        let out = install.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_callbacks_commands_take_either_order_id_on_sqlite() {
    the_callbacks_commands_take_either_order_id(Install::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_callbacks_commands_take_either_order_id_on_postgres() {
    if let Some(install) =
        Install::postgres("e2e::callbacks::the_callbacks_commands_take_either_order_id_on_postgres")
            .await
    {
        the_callbacks_commands_take_either_order_id(install).await;
    }
}
