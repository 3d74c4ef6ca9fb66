//! The store suite: every test runs on SQLite and, when a server is reachable, PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod upgrades;

use chrono::{Duration, TimeZone, Utc};
use qrgate_domain::{
    Currency, FxQuote, FxRate, MerchantId, MerchantStatus, MerchantTimeZone, ShopId, TerminalNo,
};
use qrgate_store::{NewMerchant, PinAttempt, StoreError, TillDevice};
use qrgate_testkit::{backend_tests, TestDb};

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap()
}

async fn create(
    db: &qrgate_store::Store,
    name: &str,
) -> Result<qrgate_store::NewMerchantCreated, StoreError> {
    let id = db.next_merchant_id("ON").await?;
    db.create_merchant(&new_merchant(id, name), now()).await
}

fn new_merchant(id: MerchantId, name: &str) -> NewMerchant {
    NewMerchant {
        id,
        name: name.into(),
        currency: Currency::Cad,
        time_zone: "America/Toronto".parse().unwrap(),
        sign_key_enc: vec![1, 2, 3, 4],
        first_shop_name: "Main".into(),
        first_operator_name: "Manager".into(),
    }
}

async fn merchants_get_sequential_ids_with_a_first_shop_and_operator(db: TestDb) {
    let a = create(&db.store, "Maple Tea").await.unwrap();
    let b = create(&db.store, "枫叶茶馆").await.unwrap();
    assert_eq!(a.merchant.id.as_str(), "ON00000001");
    assert_eq!(b.merchant.id.as_str(), "ON00000002");
    assert_eq!(a.shop.id.as_str(), "ON00000001001");
    assert_eq!(a.operator.id.as_str(), "0000000001");
    assert_eq!(a.merchant.status, MerchantStatus::Active);
    assert_eq!(a.merchant.created_at, now());
    assert_eq!(a.merchant.time_zone.name(), "America/Toronto");

    let listed = db.store.merchants().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].name, "枫叶茶馆");

    let keys = db
        .store
        .merchant_keys(&a.merchant.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys.current_enc, vec![1, 2, 3, 4]);
    assert_eq!(keys.version, 1);
    assert!(keys.previous.is_none());
}

async fn concurrent_merchant_creation_never_reuses_an_id(db: TestDb) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            // Callers retry a lost race, as the engine does.
            loop {
                match create(&store, &format!("m{i}")).await {
                    Err(StoreError::Conflict { .. }) => continue,
                    other => return other,
                }
            }
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap().merchant.id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8);
}

async fn a_taken_merchant_id_is_a_conflict(db: TestDb) {
    let first = create(&db.store, "a").await.unwrap();
    let again = db
        .store
        .create_merchant(&new_merchant(first.merchant.id, "b"), now())
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict { what: "merchant" })),
        "{again:?}"
    );
    assert_eq!(db.store.merchants().await.unwrap().len(), 1);
}

async fn unknown_merchants_are_absent_not_errors(db: TestDb) {
    let id = MerchantId::parse("ON99999999").unwrap();
    assert!(db.store.merchant(&id).await.unwrap().is_none());
    assert!(db.store.merchant_keys(&id).await.unwrap().is_none());
    assert!(matches!(
        db.store
            .set_merchant_status(&id, MerchantStatus::Disabled, now())
            .await,
        Err(StoreError::NotFound("merchant"))
    ));
    assert!(matches!(
        db.store.add_operator(&id, "x", now()).await,
        Err(StoreError::NotFound("merchant"))
    ));
}

async fn merchants_can_be_disabled_and_enabled(db: TestDb) {
    let m = create(&db.store, "m").await.unwrap().merchant;
    let later = now() + Duration::minutes(5);
    let disabled = db
        .store
        .set_merchant_status(&m.id, MerchantStatus::Disabled, later)
        .await
        .unwrap();
    assert_eq!(disabled.status, MerchantStatus::Disabled);
    assert_eq!(disabled.updated_at, later);
    let enabled = db
        .store
        .set_merchant_status(&m.id, MerchantStatus::Active, later)
        .await
        .unwrap();
    assert_eq!(enabled.status, MerchantStatus::Active);
}

async fn key_rotation_keeps_the_previous_key_only_with_a_grace_period(db: TestDb) {
    let m = create(&db.store, "m").await.unwrap().merchant;
    let until = now() + Duration::hours(24);
    let v = db
        .store
        .replace_sign_key(&m.id, &[9, 9], Some(until), now())
        .await
        .unwrap();
    assert_eq!(v, 2);
    let keys = db.store.merchant_keys(&m.id).await.unwrap().unwrap();
    assert_eq!(keys.current_enc, vec![9, 9]);
    assert_eq!(keys.previous, Some((vec![1, 2, 3, 4], until)));

    let v = db
        .store
        .replace_sign_key(&m.id, &[7], None, now())
        .await
        .unwrap();
    assert_eq!(v, 3);
    let keys = db.store.merchant_keys(&m.id).await.unwrap().unwrap();
    assert_eq!(keys.current_enc, vec![7]);
    assert_eq!(keys.previous, None);
}

async fn operators_shops_and_terminals_belong_to_their_merchant(db: TestDb) {
    let a = create(&db.store, "a").await.unwrap().merchant;
    let b = create(&db.store, "b").await.unwrap().merchant;
    let op = db.store.add_operator(&a.id, "Li Na", now()).await.unwrap();
    assert_eq!(op.id.as_str(), "0000000002");
    assert_eq!(db.store.operators(&a.id).await.unwrap().len(), 2);
    assert_eq!(db.store.operators(&b.id).await.unwrap().len(), 1);

    let shop = db.store.add_shop(&a.id, "Downtown", now()).await.unwrap();
    assert_eq!(shop.id.as_str(), "ON00000001002");
    assert_eq!(db.store.shops(&a.id).await.unwrap().len(), 2);

    let t = TerminalNo::parse("POS-1").unwrap();
    let term = db
        .store
        .add_terminal(&a.id, &t, Some(&shop.id), "Till 1", now())
        .await
        .unwrap();
    assert_eq!(term.shop_id, Some(shop.id.clone()));
    assert!(matches!(
        db.store.add_terminal(&a.id, &t, None, "again", now()).await,
        Err(StoreError::Conflict { what: "terminal" })
    ));
    // The same number at another merchant is fine; another merchant's shop is not.
    db.store
        .add_terminal(&b.id, &t, None, "Till", now())
        .await
        .unwrap();
    assert!(matches!(
        db.store
            .add_terminal(
                &b.id,
                &TerminalNo::parse("POS-2").unwrap(),
                Some(&shop.id),
                "x",
                now()
            )
            .await,
        Err(StoreError::NotFound("shop"))
    ));
    let missing_shop = ShopId::new(&a.id, 77).unwrap();
    assert!(matches!(
        db.store
            .add_terminal(
                &a.id,
                &TerminalNo::parse("POS-3").unwrap(),
                Some(&missing_shop),
                "x",
                now()
            )
            .await,
        Err(StoreError::NotFound("shop"))
    ));
    assert_eq!(db.store.terminals(&a.id).await.unwrap().len(), 1);
}

async fn exchange_rates_are_replaced_not_duplicated(db: TestDb) {
    assert!(db.store.fx_rate(Currency::Cad).await.unwrap().is_none());
    let q = |rate: &str, minutes| FxQuote {
        currency: Currency::Cad,
        rate: rate.parse::<FxRate>().unwrap(),
        source: "provider".into(),
        updated_at: now() + Duration::minutes(minutes),
    };
    db.store.set_fx_rate(&q("5.1234", 0)).await.unwrap();
    db.store.set_fx_rate(&q("5.2", 1)).await.unwrap();
    let got = db.store.fx_rate(Currency::Cad).await.unwrap().unwrap();
    assert_eq!(got, q("5.2", 1));
    assert_eq!(db.store.fx_rates().await.unwrap().len(), 1);
    assert!(db.store.fx_rate(Currency::Usd).await.unwrap().is_none());
}

async fn settings_keep_the_first_value_written(db: TestDb) {
    assert_eq!(db.store.meta("k").await.unwrap(), None);
    assert_eq!(
        db.store
            .meta_insert_if_absent("k", "one", now())
            .await
            .unwrap(),
        "one"
    );
    assert_eq!(
        db.store
            .meta_insert_if_absent("k", "two", now())
            .await
            .unwrap(),
        "one"
    );
}

async fn migrating_twice_is_harmless(db: TestDb) {
    db.store.migrate().await.unwrap();
    db.store.ping().await.unwrap();
    assert!(db.store.schema_version() >= 1);
    let _ = MerchantTimeZone::DEFAULT;
}

fn order(merchant: &MerchantId, n: usize, due: chrono::DateTime<Utc>) -> qrgate_domain::Order {
    use qrgate_domain::{MerchantOrderId, Money, Order, OrderStatus, PaymentMode, Wallet};
    Order {
        key: format!("Q{n:024}"),
        merchant_id: merchant.clone(),
        order_id: MerchantOrderId::parse(&format!("O{n}")).unwrap(),
        mode: PaymentMode::Passive,
        wallet: Wallet::WechatPay,
        amount: Money::new(1000, Currency::Cad),
        tip: Money::new(0, Currency::Cad),
        cny_amount: None,
        rate: None,
        operator_id: None,
        terminal_no: None,
        sale_num: None,
        status: OrderStatus::Unknown,
        wallet_code: None,
        wallet_message: None,
        channel_ref: None,
        buyer: None,
        paid_at: None,
        wallet_created_at: now(),
        next_check_at: Some(due),
        request_digest: format!("d{n}"),
        code_url: None,
        expires_at: None,
        call_back_url: None,
        refund_reserved: Money::new(0, Currency::Cad),
        refunded: Money::new(0, Currency::Cad),
        cancel_requested_at: None,
        created_at: now(),
        updated_at: now(),
    }
}

async fn due_orders_are_claimed_by_one_worker_at_a_time(db: TestDb) {
    let m = create(&db.store, "m").await.unwrap().merchant;
    for n in 0..40 {
        db.store
            .insert_order(&order(&m.id, n, now()))
            .await
            .unwrap();
    }
    // Not due yet, and final: never claimed.
    db.store
        .insert_order(&order(&m.id, 100, now() + Duration::minutes(5)))
        .await
        .unwrap();
    let mut done = order(&m.id, 101, now());
    done.next_check_at = None;
    db.store.insert_order(&done).await.unwrap();

    let mut tasks = Vec::new();
    for worker in 0..4 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_due_orders(
                        now(),
                        &format!("w{worker}"),
                        now() + Duration::seconds(60),
                        3,
                    )
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|o| o.key));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(claimed, 40, "each due order claimed exactly once");
    assert_eq!(all.len(), 40);
    // A lease that has run out makes the order claimable again; an update releases it.
    let later = now() + Duration::seconds(61);
    let again = db
        .store
        .claim_due_orders(later, "w9", later + Duration::seconds(60), 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 40);
    let mut first = again[0].clone();
    first.status = qrgate_domain::OrderStatus::Reversed;
    first.next_check_at = None;
    use qrgate_domain::OrderStatus::Unknown;
    // Only the claim's holder, within its lease, may write.
    assert!(!db
        .store
        .update_order(&first, Unknown, Some("w1"), later)
        .await
        .unwrap());
    assert!(!db
        .store
        .update_order(&first, Unknown, None, later)
        .await
        .unwrap());
    assert!(db
        .store
        .update_order(&first, Unknown, Some("w9"), later)
        .await
        .unwrap());
    assert!(
        !db.store
            .update_order(&first, Unknown, None, later)
            .await
            .unwrap(),
        "a stale update is refused"
    );
    assert_eq!(db.store.open_order_count().await.unwrap(), 40);
}

async fn claims_skip_full_lanes_are_renewed_by_their_holder_and_released_for_a_restarted_node(
    db: TestDb,
) {
    use qrgate_domain::OrderStatus::{Paid, Reversing, Unknown};
    use qrgate_domain::Wallet;
    let m = create(&db.store, "m").await.unwrap().merchant;
    // Two WeChat Pay orders and two Alipay orders, all due.
    for n in 0..4 {
        let mut o = order(&m.id, n, now());
        if n >= 2 {
            o.wallet = Wallet::Alipay;
        }
        db.store.insert_order(&o).await.unwrap();
    }
    let lease = now() + Duration::seconds(30);
    // Alipay has as much in hand as it may: a claim skips its orders.
    let wechat = db
        .store
        .claim_due_orders_except(now(), "node-a#r1.1", lease, 10, &[Wallet::Alipay])
        .await
        .unwrap();
    assert_eq!(wechat.len(), 2);
    assert!(wechat.iter().all(|o| o.wallet == Wallet::WechatPay));
    let alipay = db
        .store
        .claim_due_orders_except(now(), "node-ab#r1.1", lease, 10, &[])
        .await
        .unwrap();
    assert_eq!(alipay.len(), 2, "the WeChat Pay orders are held");
    assert!(alipay.iter().all(|o| o.wallet == Wallet::Alipay));

    // A lease is renewed by its holder only, and only while it runs.
    let key = wechat[0].key.clone();
    let later = now() + Duration::seconds(60);
    assert!(!db
        .store
        .renew_order_claim(&key, "node-b#r1.1", now(), later)
        .await
        .unwrap());
    assert!(db
        .store
        .renew_order_claim(&key, "node-a#r1.1", now(), later)
        .await
        .unwrap());
    assert_eq!(
        db.store.order_claim(&key).await.unwrap(),
        Some(qrgate_store::Claim {
            holder: "node-a#r1.1".into(),
            until: later
        })
    );
    assert!(
        !db.store
            .renew_order_claim(&key, "node-a#r1.1", later + Duration::seconds(1), later)
            .await
            .unwrap(),
        "a lease that ran out is not renewed"
    );

    // A decision written by the holder keeps the order held: nobody else claims or writes it.
    let mut reversing = wechat[0].clone();
    reversing.status = Reversing;
    reversing.next_check_at = Some(now());
    assert!(db
        .store
        .update_order_held(&reversing, Unknown, "node-a#r1.1", now(), later)
        .await
        .unwrap());
    assert_eq!(
        db.store.order(&key).await.unwrap().unwrap().status,
        Reversing
    );
    assert!(db
        .store
        .claim_due_orders(now() + Duration::seconds(1), "node-c#r1.1", lease, 10)
        .await
        .unwrap()
        .is_empty());
    let mut paid = reversing.clone();
    paid.status = Paid;
    paid.next_check_at = None;
    assert!(!db
        .store
        .update_order(&paid, Reversing, None, now() + Duration::seconds(1))
        .await
        .unwrap());
    assert_eq!(
        db.store.order_claim(&key).await.unwrap().map(|c| c.holder),
        Some("node-a#r1.1".into())
    );
    // A holder that is not the holder writes nothing either.
    assert!(!db
        .store
        .update_order_held(&reversing, Reversing, "node-b#r1.1", now(), later)
        .await
        .unwrap());

    // Node a starts again after dying: its claims, and only its, are released.
    assert_eq!(db.store.release_claims("").await.unwrap(), 0);
    assert_eq!(db.store.release_claims("node-a#").await.unwrap(), 2);
    assert_eq!(db.store.order_claim(&key).await.unwrap(), None);
    for o in &alipay {
        assert!(db.store.order_claim(&o.key).await.unwrap().is_some());
    }
    let mut again: Vec<String> = db
        .store
        .claim_due_orders(now() + Duration::seconds(1), "node-a#r2.1", lease, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    again.sort();
    let mut released: Vec<String> = wechat.iter().map(|o| o.key.clone()).collect();
    released.sort();
    assert_eq!(again, released, "due again at once");
}

async fn a_wallet_call_is_recorded_with_the_state_it_led_to_or_alone(db: TestDb) {
    let m = create(&db.store, "m").await.unwrap().merchant;
    let mut o = order(&m.id, 1, now());
    o.status = qrgate_domain::OrderStatus::Paying;
    db.store.insert_order(&o).await.unwrap();
    let event = |outcome: &str| qrgate_store::OrderEvent {
        at: now(),
        operation: "pay".into(),
        outcome: outcome.into(),
        wallet_code: None,
        detail: None,
        latency_ms: 12,
        worker: Some("node-a#r1".into()),
    };
    let mut failed = o.clone();
    failed.status = qrgate_domain::OrderStatus::Failed;
    failed.next_check_at = None;
    use qrgate_domain::OrderStatus::Paying;
    assert!(db
        .store
        .update_order_recorded(&failed, Paying, None, now(), Some(&event("declined")))
        .await
        .unwrap());
    // A stale write is refused, and the call it reports is still on the timeline.
    assert!(!db
        .store
        .update_order_recorded(&failed, Paying, None, now(), Some(&event("late")))
        .await
        .unwrap());
    let timeline = db.store.order_events(&o.key).await.unwrap();
    let outcomes: Vec<&str> = timeline.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["declined", "late"]);
    assert!(
        timeline
            .iter()
            .all(|e| e.worker.as_deref() == Some("node-a#r1")),
        "who made the call is kept: {timeline:?}"
    );
    assert_eq!(
        db.store.order(&o.key).await.unwrap().unwrap().status,
        qrgate_domain::OrderStatus::Failed
    );
}

async fn a_second_order_with_the_same_merchant_order_id_is_a_conflict(db: TestDb) {
    let m = create(&db.store, "m").await.unwrap().merchant;
    db.store
        .insert_order(&order(&m.id, 1, now()))
        .await
        .unwrap();
    let mut twin = order(&m.id, 2, now());
    twin.order_id = qrgate_domain::MerchantOrderId::parse("O1").unwrap();
    assert!(matches!(
        db.store.insert_order(&twin).await,
        Err(StoreError::Conflict { what: "order" })
    ));
    // The same request content under another order_id: a conflict too, found by its digest.
    let mut same_content = order(&m.id, 3, now());
    same_content.request_digest = "d1".into();
    assert!(matches!(
        db.store.insert_order(&same_content).await,
        Err(StoreError::Conflict { .. })
    ));
    let by_digest = db
        .store
        .order_by_request_digest(&m.id, "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_digest.order_id.as_str(), "O1");
    let back = db
        .store
        .order_by_merchant_order_id(&m.id, &twin.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        back,
        order(&m.id, 1, now()),
        "an order reads back exactly as written"
    );
}

/// Many payments written at once (on SQLite, in shared group commits): each is recorded
/// exactly as if alone, a refused write spoils none of the others, and the ledger holds.
async fn concurrent_payments_are_each_recorded_as_if_alone(db: TestDb) {
    use qrgate_domain::OrderStatus::{Paid, Paying};
    let m = create(&db.store, "m").await.unwrap().merchant;
    let paying = |n: usize| {
        let mut o = order(&m.id, n, now());
        o.status = Paying;
        o
    };
    for n in 2000..2010 {
        db.store.insert_order(&paying(n)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for n in 0..120 {
        let store = db.store.clone();
        let o = paying(n);
        tasks.push(tokio::spawn(async move {
            store.insert_order(&o).await?;
            let mut paid = o.clone();
            paid.status = Paid;
            paid.paid_at = Some(now());
            paid.next_check_at = None;
            let event = qrgate_store::OrderEvent {
                at: now(),
                operation: "pay".into(),
                outcome: "paid".into(),
                wallet_code: None,
                detail: None,
                latency_ms: 1,
                worker: None,
            };
            // Every fifth one is written from a state it is not in: refused, event kept.
            let from = if n % 5 == 0 { Paid } else { Paying };
            store
                .update_order_recorded(&paid, from, None, now(), Some(&event))
                .await
        }));
    }
    // Twins of orders already stored (same order_id): refused, in whichever batch they land.
    for n in 0..10 {
        let store = db.store.clone();
        let mut twin = paying(1000 + n);
        twin.order_id = order(&m.id, 2000 + n, now()).order_id;
        tasks.push(tokio::spawn(async move {
            store.insert_order(&twin).await.map(|()| true)
        }));
    }
    let mut written = 0;
    let mut stale = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(true) => written += 1,
            Ok(false) => stale += 1,
            Err(StoreError::Conflict { what: "order" }) => conflicts += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!((written, stale, conflicts), (96, 24, 10));
    for n in 0..120 {
        let o = db
            .store
            .order(&order(&m.id, n, now()).key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            o.status,
            if n % 5 == 0 { Paying } else { Paid },
            "order {n}"
        );
        assert_eq!(db.store.order_events(&o.key).await.unwrap().len(), 1);
    }
    for n in 0..10 {
        assert!(db
            .store
            .order(&paying(1000 + n).key)
            .await
            .unwrap()
            .is_none());
    }
    assert!(db.store.check_ledger().await.unwrap().is_empty());
    let balances = db.store.ledger_balances().await.unwrap();
    assert!(!balances.is_empty(), "the 96 payments were posted");
}

/// An import keeps the ids given, all in one transaction: one taken id (or number) leaves
/// nothing of the others; new ids are then allocated above every imported number.
async fn an_import_is_all_or_nothing_and_new_ids_come_after_it(db: TestDb) {
    let here = create(&db.store, "here").await.unwrap().merchant.id;
    let id = |s: &str| MerchantId::parse(s).unwrap();
    let list = |ids: &[&str]| {
        ids.iter()
            .map(|s| new_merchant(id(s), s))
            .collect::<Vec<_>>()
    };
    for refused in [
        list(&["QC00005496", "AB00000777", here.as_str()]),
        // The same number under another prefix: numbers are unique across prefixes.
        list(&["QC00005496", "QC00000001"]),
        list(&["QC00005496", "AB00005496"]),
    ] {
        let r = db.store.import_merchants(&refused, now()).await;
        assert!(
            matches!(r, Err(StoreError::Conflict { what: "merchant" })),
            "{r:?}"
        );
        assert_eq!(db.store.merchants().await.unwrap().len(), 1);
        assert!(db.store.shops(&id("QC00005496")).await.unwrap().is_empty());
        assert!(db
            .store
            .operators(&id("QC00005496"))
            .await
            .unwrap()
            .is_empty());
    }
    let imported = db
        .store
        .import_merchants(&list(&["QC00005496", "AB00000777"]), now())
        .await
        .unwrap();
    assert_eq!(imported[0].merchant.id.as_str(), "QC00005496");
    assert_eq!(imported[0].shop.id.as_str(), "QC00005496001");
    assert_eq!(imported[0].operator.id.as_str(), "0000000001");
    assert_eq!(imported[1].merchant.name, "AB00000777");
    let keys = db
        .store
        .merchant_keys(&id("AB00000777"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((keys.current_enc, keys.version), (vec![1, 2, 3, 4], 1));
    let next = create(&db.store, "next").await.unwrap().merchant.id;
    assert_eq!(next.as_str(), "ON00005497");
}

/// A notification is found by its order's gateway key or by the merchant's order_id, for one
/// merchant or all, and is listed with that order_id.
async fn notifications_are_found_by_order_key_or_merchant_order_id(db: TestDb) {
    use qrgate_domain::{MerchantOrderId, OrderStatus};
    let a = create(&db.store, "a").await.unwrap().merchant.id;
    let b = create(&db.store, "b").await.unwrap().merchant.id;
    for (merchant, n, order_id) in [(&a, 1, "SAME"), (&b, 2, "SAME"), (&a, 3, "ONLY-A")] {
        let mut o = order(merchant, n, now());
        o.order_id = MerchantOrderId::parse(order_id).unwrap();
        o.call_back_url = Some("https://shop.example/notify".into());
        db.store.insert_order(&o).await.unwrap();
        let mut paid = o.clone();
        paid.status = OrderStatus::Paid;
        paid.paid_at = Some(now());
        paid.next_check_at = None;
        assert!(db
            .store
            .update_order_recorded(&paid, OrderStatus::Unknown, None, now(), None)
            .await
            .unwrap());
    }
    let key = |n: usize| order(&a, n, now()).key;
    let keys = |found: Vec<qrgate_store::CallbackRecord>| {
        let mut keys: Vec<String> = found.into_iter().map(|r| r.callback.order_key).collect();
        keys.sort();
        keys
    };
    let named = |name: String, merchant: Option<MerchantId>| {
        let store = db.store.clone();
        async move {
            store
                .callbacks_named(&name, merchant.as_ref())
                .await
                .unwrap()
        }
    };
    let by_key = named(key(3), None).await;
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].order_id.as_str(), "ONLY-A");
    assert_eq!(keys(named("ONLY-A".into(), None).await), vec![key(3)]);
    assert_eq!(keys(named("SAME".into(), None).await), vec![key(1), key(2)]);
    assert_eq!(
        keys(named("SAME".into(), Some(b.clone())).await),
        vec![key(2)]
    );
    assert!(named(key(1), Some(b.clone())).await.is_empty());
    assert!(named("NOPE".into(), None).await.is_empty());

    let listed = db.store.callback_records(Some(&a), 10).await.unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|r| r.order_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, vec!["ONLY-A", "SAME"]);
    assert_eq!(db.store.callback_records(None, 10).await.unwrap().len(), 3);
    assert_eq!(db.store.callback_records(None, 2).await.unwrap().len(), 2);
}

/// The till's schedule in small: four free attempts, then the fifth and later lock for a minute.
fn lock_from_the_fifth(n: i64) -> Option<Duration> {
    (n >= 5).then(|| Duration::minutes(1))
}

async fn pin_attempts_from_two_nodes_are_all_counted_and_none_passes_a_lock(db: TestDb) {
    // Two gateway nodes: two pools on the same database.
    let other = qrgate_store::Store::connect(&db.url, 4).await.unwrap();
    let m = MerchantId::parse("ON00000042").unwrap();
    let o = qrgate_domain::OperatorId::parse("0000000007").unwrap();
    let (t0, cutoff) = (now(), now() - Duration::hours(24));
    let attempts = (0..20).map(|i| {
        let store = if i % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        let (m, o) = (m.clone(), o.clone());
        tokio::spawn(async move {
            store
                .claim_pin_attempt(&m, &o, TillDevice::Other, cutoff, t0, lock_from_the_fifth)
                .await
                .unwrap()
        })
    });
    let mut counted = Vec::new();
    let mut locked = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            PinAttempt::Counted {
                failures,
                locked_until,
            } => {
                assert_eq!(locked_until.is_some(), failures >= 5);
                counted.push(failures);
            }
            PinAttempt::Locked { until } => {
                assert_eq!(until, t0 + Duration::minutes(1));
                locked += 1;
            }
        }
    }
    // The ids need not exist; every attempt was counted once, and none passed the lock.
    counted.sort_unstable();
    assert_eq!(counted, vec![1, 2, 3, 4, 5]);
    assert_eq!(locked, 15);
    // The known till's count is apart, and a lapsed lock lets the next attempt be counted.
    assert_eq!(
        db.store
            .claim_pin_attempt(
                &m,
                &o,
                TillDevice::KnownTill,
                cutoff,
                t0,
                lock_from_the_fifth
            )
            .await
            .unwrap(),
        PinAttempt::Counted {
            failures: 1,
            locked_until: None
        }
    );
    let later = t0 + Duration::minutes(1);
    assert!(matches!(
        other
            .claim_pin_attempt(
                &m,
                &o,
                TillDevice::Other,
                cutoff,
                later,
                lock_from_the_fifth
            )
            .await
            .unwrap(),
        PinAttempt::Counted { failures: 6, .. }
    ));
    // A window that began before the cutoff starts again.
    let next_day = t0 + Duration::hours(25);
    assert_eq!(
        db.store
            .claim_pin_attempt(
                &m,
                &o,
                TillDevice::Other,
                next_day - Duration::hours(24),
                next_day,
                lock_from_the_fifth
            )
            .await
            .unwrap(),
        PinAttempt::Counted {
            failures: 1,
            locked_until: None
        }
    );
    db.store
        .forget_pin_attempts(&m, &o, TillDevice::Other)
        .await
        .unwrap();
    assert_eq!(
        db.store
            .pin_attempts(&m, &o, TillDevice::Other)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.store
            .pin_attempts(&m, &o, TillDevice::KnownTill)
            .await
            .unwrap(),
        Some((1, None))
    );
    // Housekeeping forgets counts whose window and lock are over.
    let much_later = t0 + Duration::hours(30);
    assert_eq!(
        db.store
            .delete_stale_pin_attempts(much_later - Duration::hours(24), much_later)
            .await
            .unwrap(),
        1
    );
    other.close().await;
}

/// A break is recorded once per wallet, kind and subject; one the gateway worked is reopened
/// by a later open break of the same key, once; a resolved one is never reopened.
async fn breaks_are_recorded_once_and_a_worked_one_reopens(db: TestDb) {
    use qrgate_domain::{BreakKind, BreakStatus, Wallet};
    let store = db.store;
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 2, 0, 0).unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
    let b = |subject: &str, status: BreakStatus| qrgate_store::NewBreak {
        wallet: Wallet::WechatPay,
        day,
        kind: BreakKind::Status,
        subject: subject.to_owned(),
        order_key: None,
        refund_key: None,
        wallet_ref: None,
        ours: "pending".into(),
        theirs: "paid".into(),
        status,
        note: None,
    };
    assert!(store
        .insert_recon_break(&b("Q1", BreakStatus::Worked), now)
        .await
        .unwrap());
    assert!(!store
        .insert_recon_break(&b("Q1", BreakStatus::Worked), now)
        .await
        .unwrap());
    assert!(store
        .insert_recon_break(&b("Q1", BreakStatus::Open), now)
        .await
        .unwrap());
    assert!(!store
        .insert_recon_break(&b("Q1", BreakStatus::Open), now)
        .await
        .unwrap());
    let all = store.recon_breaks(None, None, None, 10).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, BreakStatus::Open);
    assert!(store
        .resolve_recon_break(all[0].id, "ops", "checked", now)
        .await
        .unwrap());
    assert!(!store
        .resolve_recon_break(all[0].id, "ops", "again", now)
        .await
        .unwrap());
    assert!(!store
        .insert_recon_break(&b("Q1", BreakStatus::Open), now)
        .await
        .unwrap());
    let again = store.recon_break(all[0].id).await.unwrap().unwrap();
    assert_eq!(again.status, BreakStatus::Resolved);
    assert_eq!(again.resolved_by.as_deref(), Some("ops"));
    assert_eq!(again.note.as_deref(), Some("checked"));
}

backend_tests!(
    breaks_are_recorded_once_and_a_worked_one_reopens,
    an_import_is_all_or_nothing_and_new_ids_come_after_it,
    notifications_are_found_by_order_key_or_merchant_order_id,
    pin_attempts_from_two_nodes_are_all_counted_and_none_passes_a_lock,
    concurrent_payments_are_each_recorded_as_if_alone,
    merchants_get_sequential_ids_with_a_first_shop_and_operator,
    concurrent_merchant_creation_never_reuses_an_id,
    a_taken_merchant_id_is_a_conflict,
    unknown_merchants_are_absent_not_errors,
    merchants_can_be_disabled_and_enabled,
    key_rotation_keeps_the_previous_key_only_with_a_grace_period,
    operators_shops_and_terminals_belong_to_their_merchant,
    exchange_rates_are_replaced_not_duplicated,
    settings_keep_the_first_value_written,
    migrating_twice_is_harmless,
    due_orders_are_claimed_by_one_worker_at_a_time,
    claims_skip_full_lanes_are_renewed_by_their_holder_and_released_for_a_restarted_node,
    a_wallet_call_is_recorded_with_the_state_it_led_to_or_alone,
    a_second_order_with_the_same_merchant_order_id_is_a_conflict,
);
