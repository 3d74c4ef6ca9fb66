//! Cancelling a sale (docs/TILL.md, "Cancel"): through the engine and the till's buttons,
//! over the real sandbox of each wallet; late payments; and every way out of a sale.

use super::*;

impl World {
    /// The sandbox's state of our order `key` (`not_pay`, `closed`, `revoked`, `success`…).
    async fn trade_status(&self, key: &str) -> Option<String> {
        let t: Value = self
            .http
            .get(format!("{}/control/trades", self.running.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        t.as_array()
            .unwrap()
            .iter()
            .find(|t| t["out_trade_no"] == key)
            .map(|t| t["status"].as_str().unwrap().to_owned())
    }

    async fn pay_qr(&self, code_url: &str, customer: &str) -> (StatusCode, Value) {
        self.control(
            "/qr/pay",
            json!({"code_url": code_url, "customer_id": customer}),
        )
        .await
    }

    async fn cancel(&self, order_id: &str) -> qrgate_engine::Cancelled {
        self.engine
            .cancel_order(
                &self.merchant.merchant,
                &MerchantOrderId::parse(order_id).unwrap(),
                "0000000001",
            )
            .await
            .unwrap()
    }
}

impl Till<'_> {
    /// Presses one of the sale page's cancel buttons (`then`: `stay`, `new-sale`).
    async fn press_cancel(&mut self, order_id: &str, then: &str) -> Page {
        let page = self.get(&format!("/pos/orders/{order_id}")).await;
        let csrf = page.field("csrf");
        self.post(
            &format!("/pos/orders/{order_id}/cancel"),
            &[("csrf", &csrf), ("then", then)],
        )
        .await
    }
}

async fn a_cancelled_qr_is_closed_at_its_wallet_by_the_wallets_rules(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut till = w.till();
    till.sign_in().await;

    // Alipay closes a scanned QR at once: the till says cancelled only once the wallet has
    // closed it.
    let (_, alipay) = till.sell("10", "", ("wallet", "alipay")).await;
    let shown = till.get(&format!("/pos/orders/{alipay}")).await;
    let alipay_url = shown.attribute("data-code-url");
    let (scanned, _) = w.control("/qr/scan", json!({"code_url": alipay_url})).await;
    assert!(scanned.is_success());
    let page = till.press_cancel(&alipay, "stay").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location, Some(format!("/pos/orders/{alipay}")));
    let shown = till.get(&format!("/pos/orders/{alipay}")).await;
    assert!(
        shown.body.contains("Cancelled, nothing was charged"),
        "{}",
        shown.body
    );
    let order = w.order(&alipay).await.unwrap();
    assert_eq!(order.status, OrderStatus::Closed);
    assert!(order.cancel_requested_at.is_some());
    assert_eq!(w.trade_status(&order.key).await.as_deref(), Some("closed"));
    let (status, _) = w.pay_qr(&alipay_url, &customer).await;
    assert_eq!(status, StatusCode::CONFLICT, "a closed QR cannot be paid");

    // An Alipay QR nobody scanned has no trade to close: it stays payable until its expiry,
    // the till says so, and the close is tried again until then: once the customer scans,
    // the trade is closed before they can pay.
    let (_, unscanned) = till.sell("10", "", ("wallet", "alipay")).await;
    let url = till
        .get(&format!("/pos/orders/{unscanned}"))
        .await
        .attribute("data-code-url");
    let done = w.cancel(&unscanned).await;
    assert_eq!(
        done.outcome,
        qrgate_engine::CancelOutcome::Cancelling {
            closes_at: done.order.expires_at
        }
    );
    let (scanned, _) = w.control("/qr/scan", json!({"code_url": url})).await;
    assert!(scanned.is_success());
    w.advance(3).await;
    let order = w.order(&unscanned).await.unwrap();
    assert_eq!(order.status, OrderStatus::Closed);
    assert_eq!(w.trade_status(&order.key).await.as_deref(), Some("closed"));
    let (status, _) = w.pay_qr(&url, &customer).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // WeChat Pay refuses a close in the first 5 minutes: the till says "cancelling", hides
    // the QR, and the closing loop closes it when WeChat allows.
    let (_, wechat) = till.sell("10", "", ("wallet", "wechatpay")).await;
    let done = w.cancel(&wechat).await;
    assert!(
        matches!(done.outcome, qrgate_engine::CancelOutcome::Cancelling { closes_at: Some(at) }
            if at >= done.order.wallet_created_at + Duration::minutes(5)),
        "{:?}",
        done.outcome
    );
    let shown = till.get(&format!("/pos/orders/{wechat}")).await;
    assert!(shown.body.contains("Cancelling…"), "{}", shown.body);
    assert!(!shown.body.contains("<svg class=\"qr\""), "no QR to scan");
    assert_eq!(
        w.trade_status(&done.order.key).await.as_deref(),
        Some("not_pay")
    );
    w.advance(5 * 60 + 15).await;
    let order = w.order(&wechat).await.unwrap();
    assert_eq!(order.status, OrderStatus::Closed);
    assert_eq!(w.trade_status(&order.key).await.as_deref(), Some("closed"));

    // UnionPay has no close: the QR stays payable until its expiry, and the till says so.
    let (_, unionpay) = till.sell("10", "", ("wallet", "unionpay")).await;
    let done = w.cancel(&unionpay).await;
    let expiry = done.order.expires_at.unwrap();
    assert_eq!(
        done.outcome,
        qrgate_engine::CancelOutcome::Cancelling {
            closes_at: Some(expiry)
        }
    );
    for _ in 0..2 {
        w.advance(8 * 60).await;
        till.get("/pos/today").await;
    }
    assert_eq!(
        w.order(&unionpay).await.unwrap().status,
        OrderStatus::Closed
    );
    // Nothing was charged anywhere; cancelling again says how it ended.
    assert_eq!(w.balance(&customer).await, 100_000);
    let again = w.cancel(&alipay).await;
    assert_eq!(again.outcome, qrgate_engine::CancelOutcome::AlreadyEnded);
    assert_eq!(w.engine.store().open_order_count().await.unwrap(), 0);
}

async fn a_waiting_code_payment_is_reversed_when_cancelled_at_each_wallet(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut till = w.till();
    till.sign_in().await;
    for wallet in ["wechat", "alipay", "unionpay"] {
        let code = w.code(&customer, wallet, "never_confirm").await;
        let (_, order_id) = till.sell("8", "", ("code", &code)).await;
        let waiting = till.get(&format!("/pos/orders/{order_id}")).await;
        assert!(
            waiting.body.contains("Waiting for the customer to confirm"),
            "{wallet}: {}",
            waiting.body
        );
        assert!(waiting.body.contains("Cancel the payment"));
        let page = till.press_cancel(&order_id, "stay").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        // A reversal the wallet asks to repeat is finished by the closing loop.
        w.advance(2).await;
        let order = w.order(&order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Reversed, "{wallet}");
        let shown = till.get(&format!("/pos/orders/{order_id}")).await;
        assert!(
            shown.body.contains("Cancelled, nothing was charged"),
            "{wallet}: {}",
            shown.body
        );
        assert!(shown.body.contains("reversed at the wallet"));
        let trade = w.trade_status(&order.key).await;
        assert!(
            matches!(trade.as_deref(), Some("revoked" | "closed")),
            "{wallet}: {trade:?}"
        );
    }
    assert_eq!(w.balance(&customer).await, 100_000, "balance untouched");
}

async fn a_qr_left_and_paid_after_all_raises_a_late_payment_to_refund_or_keep(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut till = w.till();
    till.sign_in().await;
    // Two WeChat QRs left with "New sale": WeChat keeps them payable for 5 minutes.
    let mut left = Vec::new();
    for _ in 0..2 {
        let (_, order_id) = till.sell("10", "", ("wallet", "wechatpay")).await;
        let url = till
            .get(&format!("/pos/orders/{order_id}"))
            .await
            .attribute("data-code-url");
        let page = till.press_cancel(&order_id, "new-sale").await;
        assert_eq!(page.location.as_deref(), Some("/pos"), "{}", page.body);
        left.push((order_id, url));
    }
    let sale = till.get("/pos").await;
    assert!(!sale.body.contains("class=\"notice error late\""));
    for (_, url) in &left {
        let (status, body) = w.pay_qr(url, &customer).await;
        assert!(status.is_success(), "{body}");
    }
    w.advance(3).await;
    for (order_id, _) in &left {
        assert_eq!(w.order(order_id).await.unwrap().status, OrderStatus::Paid);
    }
    // Every screen shows both, with the amount; the script's fragment too.
    let sale = till.get("/pos").await;
    for (order_id, _) in &left {
        assert!(
            sale.body.contains(&format!(
                "class=\"notice error late\" role=\"alert\" data-order-id=\"{order_id}\""
            )),
            "{}",
            sale.body
        );
    }
    assert!(sale
        .body
        .contains("A cancelled sale was paid after all: CA$10.00."));
    let fragment = till.get("/pos/late-payments").await;
    assert!(fragment.body.contains(&left[0].0));
    let today = till.get("/pos/today").await;
    assert!(today.body.contains(&left[1].0));

    // Refund the first from its notice (sent twice: refunded once), keep the second.
    let csrf = sale.field("csrf");
    let refund_id = sale.field("refund_id");
    for _ in 0..2 {
        let page = till
            .post(
                &format!("/pos/orders/{}/late-payment", left[0].0),
                &[
                    ("csrf", &csrf),
                    ("action", "refund"),
                    ("refund_id", &refund_id),
                ],
            )
            .await;
        assert!(
            [StatusCode::OK, StatusCode::ACCEPTED, StatusCode::NOT_FOUND].contains(&page.status),
            "{}",
            page.body
        );
    }
    for _ in 0..30 {
        if w.order(&left[0].0).await.unwrap().refunded.minor() > 0 {
            break;
        }
        w.advance(5).await;
    }
    let refunded = w.order(&left[0].0).await.unwrap();
    assert_eq!(refunded.refunded, refunded.total());
    assert_eq!(w.balance(&customer).await, 100_000 - 5200);
    let page = till
        .post(
            &format!("/pos/orders/{}/late-payment", left[1].0),
            &[("csrf", &csrf), ("action", "keep")],
        )
        .await;
    assert!(page.body.contains("The payment is kept."), "{}", page.body);
    let sale = till.get("/pos").await;
    assert!(!sale.body.contains("class=\"notice error late\""));
    assert!(w
        .engine
        .late_payments(&w.merchant.merchant)
        .await
        .unwrap()
        .is_empty());
}

async fn cancelling_a_sale_the_customer_has_paid_answers_paid(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let mut till = w.till();
    till.sign_in().await;
    let (_, order_id) = till.sell("10", "", ("wallet", "alipay")).await;
    let url = till
        .get(&format!("/pos/orders/{order_id}"))
        .await
        .attribute("data-code-url");
    // Paid at the wallet; the gateway has not heard yet when the cashier cancels.
    let (status, _) = w.pay_qr(&url, &customer).await;
    assert!(status.is_success());
    let done = w.cancel(&order_id).await;
    assert_eq!(done.outcome, qrgate_engine::CancelOutcome::Paid);
    assert_eq!(done.order.status, OrderStatus::Paid);
    // The sale page says paid; it is a late payment for someone to decide on.
    let page = till.get(&format!("/pos/orders/{order_id}")).await;
    assert!(page.body.contains("id=\"result\">Paid<"), "{}", page.body);
    assert_eq!(
        w.engine
            .late_payments(&w.merchant.merchant)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Every way a cashier can leave a sale on the till, as the browser sends it.
#[derive(Debug, Clone, Copy)]
enum WayOut {
    CancelButton,
    NewSaleButton,
    SignOut,
    /// The tab closed, a link followed, another address typed: the page's beacon.
    PageLeft,
    /// Nothing done: the QR runs out.
    Expiry,
}

async fn no_way_out_of_a_sale_leaves_an_order_open_that_the_till_does_not_show(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let ways = [
        WayOut::CancelButton,
        WayOut::NewSaleButton,
        WayOut::SignOut,
        WayOut::PageLeft,
        WayOut::Expiry,
    ];
    let mut sales = Vec::new();
    let mut till = w.till();
    till.sign_in().await;
    for wallet in ["alipay", "wechatpay", "unionpay"] {
        for way in ways {
            let (_, order_id) = till.sell("4", "", ("wallet", wallet)).await;
            let page = till.get(&format!("/pos/orders/{order_id}")).await;
            let csrf = page.field("csrf");
            let cancel = format!("/pos/orders/{order_id}/cancel");
            let answer = match way {
                WayOut::CancelButton => {
                    till.post(&cancel, &[("csrf", &csrf), ("then", "stay")])
                        .await
                }
                WayOut::NewSaleButton => {
                    till.post(&cancel, &[("csrf", &csrf), ("then", "new-sale")])
                        .await
                }
                WayOut::SignOut => {
                    // The sign-out form of a QR's page names the sale.
                    assert_eq!(page.field("order_id"), order_id);
                    let out = till
                        .post("/pos/sign-out", &[("csrf", &csrf), ("order_id", &order_id)])
                        .await;
                    till.sign_in().await;
                    out
                }
                WayOut::PageLeft => {
                    assert_eq!(page.attribute("data-cancel-url"), cancel);
                    till.post(&cancel, &[("csrf", &csrf), ("then", "leave")])
                        .await
                }
                WayOut::Expiry => till.get("/pos/today").await,
            };
            assert!(
                answer.status.is_redirection()
                    || answer.status == StatusCode::NO_CONTENT
                    || answer.status == StatusCode::OK,
                "{wallet} {way:?}: {} {}",
                answer.status,
                answer.body
            );
            let order = w.order(&order_id).await.unwrap();
            // Left by the cashier: the cancel is recorded and the wallet asked (or due).
            if !matches!(way, WayOut::Expiry) {
                assert!(
                    order.cancel_requested_at.is_some(),
                    "{wallet} {way:?} left the order uncancelled"
                );
            }
            sales.push((wallet, way, order_id));
        }
    }
    // Whatever is still open is on the till: Today lists every sale with its state, and an
    // open sale's page says what it waits for.
    let today = till.get("/pos/today").await;
    for (wallet, way, order_id) in &sales {
        let order = w.order(order_id).await.unwrap();
        assert!(
            today.body.contains(&format!(
                "data-order-id=\"{order_id}\" data-status=\"{}\"",
                order.status
            )),
            "{wallet} {way:?} not on Today"
        );
        if !order.status.is_final() {
            let page = till.get(&format!("/pos/orders/{order_id}")).await;
            assert!(
                page.body.contains("Cancelling…") || page.body.contains("<svg class=\"qr\""),
                "{wallet} {way:?}: {}",
                page.body
            );
        }
    }
    // And each one ends closed once its wallet allows, none charged.
    for _ in 0..3 {
        w.advance(6 * 60).await;
        till.get("/pos/today").await;
    }
    for (wallet, way, order_id) in &sales {
        let order = w.order(order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Closed, "{wallet} {way:?}");
    }
    assert_eq!(w.engine.store().open_order_count().await.unwrap(), 0);
    assert_eq!(w.balance(&customer).await, 100_000);
}

backend_tests!(
    a_cancelled_qr_is_closed_at_its_wallet_by_the_wallets_rules,
    a_waiting_code_payment_is_reversed_when_cancelled_at_each_wallet,
    a_qr_left_and_paid_after_all_raises_a_late_payment_to_refund_or_keep,
    cancelling_a_sale_the_customer_has_paid_answers_paid,
    no_way_out_of_a_sale_leaves_an_order_open_that_the_till_does_not_show,
);
