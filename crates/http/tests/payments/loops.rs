//! The notification loop as `serve` runs it: a merchant whose endpoint is slow holds at most
//! its own slots, and another merchant's notification goes out at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qrgate_domain::Currency;
use qrgate_engine::{MerchantRequest, NOTIFICATION_BOUNDS};
use qrgate_testkit::pos::PosClient;
use qrgate_testkit::{backend_tests, TestDb};
use serde_json::json;

use super::{data, World};

/// Pays a QR order of `pos`'s merchant notifying `url`, as the customer would.
async fn paid_qr_order(w: &World, pos: &PosClient, order_id: &str, url: &str, customer: &str) {
    let r = pos
        .call(
            "ACTIVEPAY",
            json!({"order_id": order_id, "amount": "100", "biz_type": "ALIPAY", "call_back_url": url}),
        )
        .await;
    assert_eq!(r.rsp_code, "SUCCESS", "{r:?}");
    w.control(
        "/qr/pay",
        json!({"code_url": data(&r)["code_url"], "customer_id": customer}),
    )
    .await;
}

async fn a_slow_merchant_endpoint_delays_no_other_merchants_notification(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(10_000_000).await;

    // Merchant A's endpoint is slow: every delivery takes 1.8 s (under the 2 s timeout). It
    // counts how many deliveries it holds at once.
    let (in_hand, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (held, peak) = (in_hand.clone(), most.clone());
    let slow = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let (held, peak) = (held.clone(), peak.clone());
            async move {
                let n = held.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1800)).await;
                held.fetch_sub(1, Ordering::SeqCst);
                "OK"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, slow).await });
    // Merchant B's answers at once, and notes when.
    let arrived: Arc<Mutex<Option<Instant>>> = Arc::default();
    let noted = arrived.clone();
    let fast = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let noted = noted.clone();
            async move {
                noted.lock().unwrap().get_or_insert_with(Instant::now);
                "OK"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fast_url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, fast).await });

    // 40 of A's orders paid first (more than the loop's total bound), then one of B's: B's
    // notification is the last one due.
    for i in 0..40 {
        paid_qr_order(&w, &w.pos, &format!("A{i}"), &slow_url, &customer).await;
    }
    w.sandbox.tick().await;
    let b = w
        .engine
        .create_merchant(&MerchantRequest {
            name: "Other Tea".into(),
            currency: Currency::Cad,
            time_zone: "America/Toronto".parse().unwrap(),
            id_prefix: "ON".into(),
        })
        .await
        .unwrap();
    let b_pos = PosClient::new(&w.pos.endpoint, b.merchant.id.as_str(), b.sign_key.expose());
    paid_qr_order(&w, &b_pos, "B0", &fast_url, &customer).await;
    w.sandbox.tick().await;
    let queued = w.engine.callbacks(None, 100).await.unwrap();
    assert_eq!(queued.len(), 41, "every paid order owes a notification");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let engine = w.engine.clone();
    let started = Instant::now();
    let notifier = tokio::spawn(async move { engine.run_notification_loop(stopped).await });
    let deadline = started + Duration::from_secs(30);
    let b_after = loop {
        if let Some(at) = *arrived.lock().unwrap() {
            break at - started;
        }
        assert!(Instant::now() < deadline, "B's notification never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // One at a time, A's 40 would hold B for 72 s; in rounds of 8 (the loop before), for 9 s;
    // bounded in total only, for 1.8 s. Bounded per merchant, B's goes out beside A's first
    // ones.
    eprintln!("B notified {b_after:?} after the loop started, beside 40 of A's taking 1.8 s each");
    assert!(
        b_after < Duration::from_millis(1200),
        "B notified after {b_after:?}"
    );
    // A never holds more than its bound, and is given that much.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(most.load(Ordering::SeqCst), NOTIFICATION_BOUNDS.per_lane);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), notifier)
        .await
        .unwrap()
        .unwrap();
    assert!(in_hand.load(Ordering::SeqCst) <= NOTIFICATION_BOUNDS.per_lane);
}

backend_tests!(a_slow_merchant_endpoint_delays_no_other_merchants_notification);
