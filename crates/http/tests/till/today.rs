//! Today's list follows the day: a fingerprint the page's script polls changes when a sale is
//! started, paid or refunded; failed sales say why.

use super::*;

async fn todays_state_follows_sales_and_refunds_and_failed_sales_say_why(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut till = w.till();
    till.sign_in().await;
    let state = |page: &Page| -> String {
        serde_json::from_str::<Value>(&page.body).unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let poor = w.code(&customer, "wechat", "insufficient_balance").await;
    let (_, failed) = till.sell("30", "", ("code", &poor)).await;
    let today = till.get("/pos/today").await;
    assert!(today.body.contains(&failed));
    assert!(
        today
            .body
            .contains("class=\"muted reason\">Insufficient balance"),
        "{}",
        today.body
    );
    let first = state(&till.get("/pos/today/state").await);
    assert_eq!(today.attribute("data-state"), first);

    let (_, sale) = till.sell("10", "", ("wallet", "alipay")).await;
    let started = state(&till.get("/pos/today/state").await);
    assert_ne!(started, first, "a new sale changes the list");
    let url = till
        .get(&format!("/pos/orders/{sale}"))
        .await
        .attribute("data-code-url");
    let (paid, _) = w
        .control("/qr/pay", json!({"code_url": url, "customer_id": customer}))
        .await;
    assert!(paid.is_success());
    w.advance(2).await;
    let after_paid = state(&till.get("/pos/today/state").await);
    assert_ne!(after_paid, started, "a payment changes the list");
    assert_eq!(
        state(&till.get("/pos/today/state").await),
        after_paid,
        "nothing changed, nothing to reload"
    );
    w.engine
        .set_refund_approval_above(
            &w.merchant.merchant.id,
            qrgate_domain::Money::new(100_000, Currency::Cad),
        )
        .await
        .unwrap();
    let form = till.get(&format!("/pos/orders/{sale}/refund")).await;
    till.post(
        &format!("/pos/orders/{sale}/refund"),
        &[
            ("csrf", &form.field("csrf")),
            ("refund_id", &form.field("refund_id")),
            ("amount", "4"),
        ],
    )
    .await;
    w.advance(2).await;
    assert_ne!(
        state(&till.get("/pos/today/state").await),
        after_paid,
        "a refund changes the list"
    );
    // Signed out: no state.
    let mut stranger = w.till();
    assert_eq!(
        stranger.get("/pos/today/state").await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn the_days_close_counts_and_sums_by_wallet_and_operator_with_refunds_and_net(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut till = w.till();
    till.sign_in().await;
    let alipay = w.code(&customer, "alipay", "instant").await;
    let (_, a) = till.sell("12", "", ("code", &alipay)).await;
    let wechat = w.code(&customer, "wechat", "instant").await;
    till.sell("8", "1", ("code", &wechat)).await;
    let poor = w.code(&customer, "wechat", "insufficient_balance").await;
    till.sell("30", "", ("code", &poor)).await;
    w.engine
        .set_refund_approval_above(
            &w.merchant.merchant.id,
            qrgate_domain::Money::new(100_000, Currency::Cad),
        )
        .await
        .unwrap();
    let form = till.get(&format!("/pos/orders/{a}/refund")).await;
    till.post(
        &format!("/pos/orders/{a}/refund"),
        &[
            ("csrf", &form.field("csrf")),
            ("refund_id", &form.field("refund_id")),
            ("amount", "5"),
        ],
    )
    .await;
    w.advance(2).await;
    let z = till.get("/pos/z-report?paper=58").await;
    assert_eq!(z.status, StatusCode::OK, "{}", z.body);
    let text = z.body.replace(['\n'], "");
    for expected in [
        "Alipay ×1</th><td class=\"num\">CA$12.00",
        "WeChat Pay ×1</th><td class=\"num\">CA$9.00",
        "0000000001 ×2</th><td class=\"num\">CA$21.00",
        "id=\"z-paid\">CA$21.00<",
        "id=\"z-refunded\">-CA$5.00<",
        "id=\"z-net\">CA$16.00<",
        "data-paper=\"58\"",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    // Another day has nothing; a day that is not a day is refused.
    let empty = till.get("/pos/z-report?day=2020-01-01").await;
    assert!(
        empty.body.contains("id=\"z-net\">CA$0.00<"),
        "{}",
        empty.body
    );
    let bad = till.get("/pos/z-report?day=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("That is not a day"));
    let zh = till.get("/pos/z-report?lang=zh").await;
    assert!(zh.body.contains("日结报表"), "{}", zh.body);
}

backend_tests!(
    todays_state_follows_sales_and_refunds_and_failed_sales_say_why,
    the_days_close_counts_and_sums_by_wallet_and_operator_with_refunds_and_net,
);
