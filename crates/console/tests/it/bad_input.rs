//! Bad input on every form (empty, too long, wrong type, three decimals, another merchant's
//! id) gets a clear message and changes nothing.

use qrgate_testkit::{backend_tests, TestDb};

use crate::world::{Client, World};

/// Who posts, where, which fields, and a word the message must contain.
type Case<'a> = (&'a Client, String, Vec<(&'a str, &'a str)>, &'a str);

async fn every_form_refuses_bad_input_with_a_message_and_changes_nothing(db: TestDb) {
    let w = World::start(db).await;
    let owner = w.sign_in(w.a.owner.email.as_str()).await;
    let admin = w.sign_in(w.admin.email.as_str()).await;
    let m = w.a.merchant.id.to_string();
    let order = w.a.order_key.clone();
    let long = "x".repeat(201);
    let b_shop = w.b.shop.clone();
    let refund = format!("/console/m/{m}/orders/{order}/refund");
    let refund_done = format!("/console/m/{m}/orders/{order}/refund/confirmed");
    let cases: Vec<Case> = vec![
        (
            &owner,
            refund.clone(),
            vec![("amount", "12.345"), ("reason", "r"), ("refund_id", "C1")],
            "2",
        ),
        (
            &owner,
            refund.clone(),
            vec![("amount", ""), ("reason", "r"), ("refund_id", "C1")],
            "required",
        ),
        (
            &owner,
            refund.clone(),
            vec![("amount", "ten"), ("reason", "r"), ("refund_id", "C1")],
            "amount like",
        ),
        (
            &owner,
            refund.clone(),
            vec![("amount", "1.00"), ("reason", ""), ("refund_id", "C1")],
            "required",
        ),
        (
            &owner,
            refund.clone(),
            vec![("amount", "1.00"), ("reason", &long), ("refund_id", "C1")],
            "longer",
        ),
        (
            &owner,
            refund.clone(),
            vec![("amount", "99.00"), ("reason", "r"), ("refund_id", "C1")],
            "At most",
        ),
        (
            &owner,
            refund_done.clone(),
            vec![("amount", "1.005"), ("reason", "r"), ("refund_id", "C1")],
            "decimals",
        ),
        (
            &owner,
            refund_done.clone(),
            vec![("amount", "0"), ("reason", "r"), ("refund_id", "C1")],
            "refund",
        ),
        (
            &owner,
            format!("/console/m/{m}/settings/shops"),
            vec![("name", "")],
            "required",
        ),
        (
            &owner,
            format!("/console/m/{m}/settings/shops"),
            vec![("name", &long)],
            "longer",
        ),
        (
            &owner,
            format!("/console/m/{m}/settings/terminals"),
            vec![("terminal_no", "")],
            "required",
        ),
        (
            &owner,
            format!("/console/m/{m}/settings/terminals"),
            vec![("terminal_no", "bad no!")],
            "terminal",
        ),
        (
            &owner,
            format!("/console/m/{m}/settings/terminals"),
            vec![("terminal_no", "T9"), ("shop", &b_shop)],
            "no such shop",
        ),
        (
            &owner,
            format!("/console/m/{m}/settings/operators"),
            vec![("name", " ")],
            "required",
        ),
        (
            &owner,
            format!("/console/m/{m}/settings/operators/{}/pin", w.a.operator),
            vec![("pin", "12ab")],
            "PIN",
        ),
        (
            &owner,
            format!("/console/m/{m}/settings/key"),
            vec![("grace_hours", "soon")],
            "not valid",
        ),
        (
            &owner,
            format!("/console/m/{m}/settings/key"),
            vec![("grace_hours", "1000")],
            "720",
        ),
        (
            &owner,
            format!("/console/m/{m}/users"),
            vec![("email", "not-an-email"), ("role", "merchant_staff")],
            "email",
        ),
        (
            &owner,
            format!("/console/m/{m}/users"),
            vec![("email", "x@a.example"), ("role", "provider_admin")],
            "not valid",
        ),
        (
            &owner,
            format!("/console/m/{m}/users"),
            vec![("email", ""), ("role", "merchant_staff")],
            "required",
        ),
        (
            &admin,
            "/console/provider/merchants".into(),
            vec![
                ("name", ""),
                ("currency", "CAD"),
                ("time_zone", "UTC"),
                ("prefix", "ON"),
            ],
            "required",
        ),
        (
            &admin,
            "/console/provider/merchants".into(),
            vec![
                ("name", "N"),
                ("currency", "EUR"),
                ("time_zone", "UTC"),
                ("prefix", "ON"),
            ],
            "not valid",
        ),
        (
            &admin,
            "/console/provider/merchants".into(),
            vec![
                ("name", "N"),
                ("currency", "CAD"),
                ("time_zone", "Mars/Base"),
                ("prefix", "ON"),
            ],
            "not valid",
        ),
        (
            &admin,
            "/console/provider/merchants".into(),
            vec![
                ("name", "N"),
                ("currency", "CAD"),
                ("time_zone", "UTC"),
                ("prefix", "1"),
            ],
            "prefix",
        ),
        (
            &admin,
            format!("/console/provider/merchants/{m}/fee"),
            vec![("bps", "lots")],
            "basis points",
        ),
        (
            &admin,
            format!("/console/provider/merchants/{m}/fee"),
            vec![("bps", "20000")],
            "basis points",
        ),
        (
            &admin,
            format!("/console/provider/merchants/{m}/status"),
            vec![("status", "maybe")],
            "not valid",
        ),
        (
            &admin,
            "/console/provider/rates".into(),
            vec![("currency", "CAD"), ("rate", "lots")],
            "rate",
        ),
        (
            &admin,
            "/console/provider/rates".into(),
            vec![("currency", "EUR"), ("rate", "5")],
            "not valid",
        ),
        (
            &admin,
            "/console/provider/users".into(),
            vec![
                ("email", "y@x.example"),
                ("role", "merchant_owner"),
                ("merchant_id", ""),
            ],
            "required",
        ),
        (
            &admin,
            "/console/provider/users".into(),
            vec![
                ("email", "y@x.example"),
                ("role", "merchant_owner"),
                ("merchant_id", "ON99999999"),
            ],
            "no such merchant",
        ),
        (
            &admin,
            "/console/provider/users".into(),
            vec![("email", "y@x.example"), ("role", "boss")],
            "not valid",
        ),
    ];
    let before = w.audit_count().await;
    let shops = w.engine.shops(&w.a.merchant.id).await.unwrap();
    let order_before = w.engine.store().order(&order).await.unwrap();
    for (client, path, fields, needle) in &cases {
        let (status, body) = client.post(path, fields).await;
        assert_eq!(status, 400, "POST {path} {fields:?}: {status}");
        assert!(body.contains("role=\"alert\""), "POST {path}: no message");
        assert!(
            body.to_lowercase().contains(&needle.to_lowercase()),
            "POST {path} {fields:?}: message lacks {needle:?}: {}",
            body.split("role=\"alert\"")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take(300)
                .collect::<String>()
        );
    }
    assert_eq!(
        w.audit_count().await,
        before,
        "a refused form wrote to the audit log"
    );
    assert_eq!(w.engine.shops(&w.a.merchant.id).await.unwrap(), shops);
    assert_eq!(w.engine.store().order(&order).await.unwrap(), order_before);
    assert_eq!(w.engine.merchants().await.unwrap().len(), 2);
}

async fn the_orders_filter_refuses_bad_input(db: TestDb) {
    let w = World::start(db).await;
    let owner = w.sign_in(w.a.owner.email.as_str()).await;
    let m = &w.a.merchant.id;
    for (query, needle) in [
        ("min=1.005", "decimals"),
        ("from=yesterday", "date"),
        (&*format!("shop={}", w.b.shop), "No such shop"),
        ("status=lost", "not valid"),
        (&*format!("q={}", "x".repeat(70)), "at most 64 characters"),
        // The engine's rules reach a Chinese page in Chinese.
        (&*format!("lang=zh&shop={}", w.b.shop), "没有此门店"),
        (&*format!("lang=zh&q={}", "x".repeat(70)), "最多 64 个字符"),
    ] {
        let (status, body) = owner.get(&format!("/console/m/{m}/orders?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(body.contains(needle), "{query}: lacks {needle}");
    }
    let (status, body) = owner
        .get(&format!("/console/m/{m}/orders?q={}", w.a.order_key))
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("a1"));
}

backend_tests!(
    every_form_refuses_bad_input_with_a_message_and_changes_nothing,
    the_orders_filter_refuses_bad_input,
);
