//! The orders list pages by keyset: following `next` visits every order once, newest first,
//! even when many share one creation time; the dashboard's sums and the CSV export agree with
//! the orders.

use chrono::Duration;
use qrgate_domain::{Money, OrderStatus, Wallet};
use qrgate_engine::{Actor, OrderQuery};
use qrgate_testkit::{backend_tests, TestDb};

use crate::world::{paid_order, World};

async fn following_the_cursor_visits_every_order_once(db: TestDb) {
    let w = World::start(db).await;
    let m = &w.a.merchant;
    // Eleven more paid orders; the store's clock gives several the same millisecond.
    let mut keys = vec![w.a.order_key.clone()];
    for i in 0..11 {
        keys.push(paid_order(&w.engine, m, &format!("p{i}"), 100 + i).await);
    }
    let actor = Actor::console(w.a.owner.clone(), "test");
    let all = OrderQuery::default();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = w
            .engine
            .console_orders(&actor, &m.id, &all, after.as_ref(), 5)
            .await
            .unwrap();
        assert!(page.orders.len() <= 5);
        seen.extend(page.orders.iter().map(|o| (o.created_at, o.key.clone())));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut expected = seen.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected, "newest first, ties by key");
    let mut got: Vec<String> = seen.into_iter().map(|(_, k)| k).collect();
    got.sort();
    keys.sort();
    assert_eq!(got, keys, "every order once");

    // Filters narrow; a filter on B's terminal cannot reach B's orders.
    let alipay = OrderQuery {
        wallet: Some(Wallet::Alipay),
        total_min: Some(Money::new(105, m.currency)),
        total_max: Some(Money::new(108, m.currency)),
        ..OrderQuery::default()
    };
    let page = w
        .engine
        .console_orders(&actor, &m.id, &alipay, None, 50)
        .await
        .unwrap();
    assert_eq!(page.orders.len(), 4);
    let failed = OrderQuery {
        statuses: vec![OrderStatus::Failed],
        ..OrderQuery::default()
    };
    assert!(w
        .engine
        .console_orders(&actor, &m.id, &failed, None, 50)
        .await
        .unwrap()
        .orders
        .is_empty());
    let future = OrderQuery {
        from: Some(w.engine.now() + Duration::days(1)),
        ..OrderQuery::default()
    };
    assert!(w
        .engine
        .console_orders(&actor, &m.id, &future, None, 50)
        .await
        .unwrap()
        .orders
        .is_empty());
}

async fn the_dashboard_sums_the_merchants_own_paid_orders(db: TestDb) {
    let w = World::start(db).await;
    let actor = Actor::console(w.a.owner.clone(), "test");
    paid_order(&w.engine, &w.a.merchant, "x1", 750).await;
    let d = w.engine.dashboard(&actor, &w.a.merchant.id).await.unwrap();
    assert_eq!(d.today.sales.minor(), 1250 + 750, "B's sales are not A's");
    assert_eq!(d.today.sales_count, 2);
    assert_eq!(d.today.net.minor(), 2000);
    assert_eq!(d.month.sales.minor(), 2000);
    assert_eq!(d.days.len(), 30);
    assert_eq!(d.days.last().unwrap().sales.minor(), 2000);
    assert_eq!(d.today.by_wallet.len(), 1);
    assert_eq!(d.today.by_terminal[0].1, "TILL-1");
}

async fn the_csv_export_has_a_row_per_order_with_the_accountants_columns(db: TestDb) {
    let w = World::start(db).await;
    let owner = w.sign_in(w.a.owner.email.as_str()).await;
    for i in 0..3 {
        paid_order(&w.engine, &w.a.merchant, &format!("c{i}"), 1000 + i).await;
    }
    let r = owner
        .http
        .get(w.url(&format!("/console/m/{}/orders.csv", w.a.merchant.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let text = r.text().await.unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0].len(), 19);
    assert_eq!(rows[0][3], "merchant_order_id");
    assert_eq!(
        rows.len(),
        5,
        "header + 4 of A's orders, none of B's: {text}"
    );
    let c2 = rows.iter().find(|r| r[3] == "c2").unwrap();
    assert_eq!(
        (c2[5], c2[6], c2[11], c2[12], c2[14], c2[16]),
        ("paid", "alipay", "CAD", "10.02", "10.02", "10.02")
    );
    assert!(!text.contains("b1"));
    let refunds = owner
        .http
        .get(w.url(&format!(
            "/console/m/{}/refunds.csv?from=2020-01-01",
            w.a.merchant.id
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(refunds.lines().count(), 1, "only the header: {refunds}");
}

backend_tests!(
    following_the_cursor_visits_every_order_once,
    the_dashboard_sums_the_merchants_own_paid_orders,
    the_csv_export_has_a_row_per_order_with_the_accountants_columns,
);
