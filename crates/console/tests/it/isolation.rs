//! A merchant's user never sees or changes another merchant's data: every route of the
//! console (the list comes from the router itself, `qrgate_console::route_table`), asked by
//! merchant A's owner and staff with merchant B's ids, answers 404, and nothing changes.
//! The same routes with A's own ids answer (so the 404s are not a broken console).

use qrgate_console::{route_table, Access};
use qrgate_testkit::{backend_tests, TestDb};

use crate::world::{Tenant, World};

/// Fills a route's path parameters with `t`'s ids (and `user` for `{user}`).
fn path_for(path: &str, t: &Tenant, user: i64) -> String {
    path.replace("{merchant}", t.merchant.id.as_str())
        .replace("{order}", &t.order_key)
        .replace("{operator}", &t.operator)
        .replace("{user}", &user.to_string())
        .replace("{token}", "0000")
}

/// Form fields a POST may read, naming `t`'s things.
fn fields_for(t: &Tenant) -> Vec<(&'static str, String)> {
    vec![
        ("amount", "1.00".into()),
        ("reason", "isolation test".into()),
        ("refund_id", "CISOLATION1".into()),
        ("name", "Isolation".into()),
        ("terminal_no", "ISO-1".into()),
        ("shop", t.shop.clone()),
        ("pin", "135791".into()),
        ("grace_hours", "1".into()),
        ("email", "iso@b.example".into()),
        ("role", "merchant_staff".into()),
        ("merchant_id", t.merchant.id.to_string()),
        ("status", "disabled".into()),
        ("bps", "50".into()),
        ("currency", "CAD".into()),
        ("rate", "5.5".into()),
        ("time_zone", "America/Toronto".into()),
        ("prefix", "ON".into()),
    ]
}

async fn a_user_of_merchant_a_gets_404_for_every_route_with_merchant_b_ids(db: TestDb) {
    let w = World::start(db).await;
    let table = route_table();
    assert!(
        table.len() > 40,
        "the route table lists every route: {}",
        table.len()
    );
    let before_audit = w.audit_count().await;
    let before_b_users = w
        .engine
        .store()
        .console_users(Some(&w.b.merchant.id))
        .await
        .unwrap();
    let before_b_order = w.engine.store().order(&w.b.order_key).await.unwrap();
    let mut checked = 0;
    for who in [&w.a.owner, &w.a.staff] {
        let client = w.sign_in(who.email.as_str()).await;
        for route in &table {
            if matches!(route.access, Access::Public | Access::Signed) {
                continue;
            }
            let path = path_for(route.path, &w.b, w.b.owner.id);
            let (status, body) = match route.method {
                "GET" => client.get(&path).await,
                _ => {
                    let fields = fields_for(&w.b);
                    let refs: Vec<(&str, &str)> =
                        fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    client.post(&path, &refs).await
                }
            };
            assert_eq!(
                status,
                404,
                "{} {} as {} must be 404, got {status}: {}",
                route.method,
                path,
                who.email,
                &body[..body.len().min(300)]
            );
            assert!(
                !body.contains(w.b.merchant.name.as_str()),
                "{path} shows B's name"
            );
            checked += 1;
        }
        // The same merchant pages with A's own ids answer.
        for route in table
            .iter()
            .filter(|r| r.access == Access::Merchant && r.method == "GET")
        {
            let path = path_for(route.path, &w.a, w.a.owner.id);
            let (status, body) = client.get(&path).await;
            assert!(
                status == 200 || (status == 403 && who.role.as_str() == "merchant_staff"),
                "GET {path} as {}: {status} {}",
                who.email,
                &body[..body.len().min(300)]
            );
        }
    }
    assert!(checked > 60, "{checked}");
    assert_eq!(
        w.audit_count().await,
        before_audit,
        "a refused request wrote to the audit log"
    );
    assert_eq!(
        w.engine
            .store()
            .console_users(Some(&w.b.merchant.id))
            .await
            .unwrap(),
        before_b_users
    );
    assert_eq!(
        w.engine.store().order(&w.b.order_key).await.unwrap(),
        before_b_order
    );
}

async fn the_provider_sees_every_merchant_and_support_changes_nothing(db: TestDb) {
    let w = World::start(db).await;
    let support = w.sign_in(w.support.email.as_str()).await;
    for path in [
        format!("/console/m/{}", w.b.merchant.id),
        format!("/console/m/{}/orders/{}", w.b.merchant.id, w.b.order_key),
        "/console/provider/merchants".to_owned(),
        "/console/provider/audit".to_owned(),
    ] {
        let (status, _) = support.get(&path).await;
        assert_eq!(status, 200, "{path}");
    }
    let before = w.audit_count().await;
    let (status, _) = support
        .post(
            &format!("/console/provider/merchants/{}/fee", w.b.merchant.id),
            &[("bps", "99")],
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = support
        .post(
            &format!(
                "/console/m/{}/orders/{}/refund/confirmed",
                w.b.merchant.id, w.b.order_key
            ),
            &[
                ("amount", "1.00"),
                ("reason", "x"),
                ("refund_id", "CSUPPORT1"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(w.audit_count().await, before);
    assert_eq!(
        w.engine
            .merchant(&w.b.merchant.id)
            .await
            .unwrap()
            .fee_rate
            .bps(),
        0
    );
}

async fn the_route_table_is_the_router(db: TestDb) {
    // Every listed route answers something other than the console's catch-all 404 for a
    // signed-in provider admin (so the table and the router cannot drift apart).
    let w = World::start(db).await;
    let admin = w.sign_in(w.admin.email.as_str()).await;
    for route in route_table()
        .iter()
        .filter(|r| r.method == "GET" && r.access != Access::Public)
    {
        let path = path_for(route.path, &w.a, w.a.owner.id);
        let (status, body) = admin.get(&path).await;
        assert!(
            status == 200 || status == 303,
            "GET {path}: {status} {}",
            &body[..body.len().min(200)]
        );
    }
}

backend_tests!(
    a_user_of_merchant_a_gets_404_for_every_route_with_merchant_b_ids,
    the_provider_sees_every_merchant_and_support_changes_nothing,
    the_route_table_is_the_router,
);
