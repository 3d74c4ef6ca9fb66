//! REFUND, REFUND_QUERY and the ledger end to end: the POS over real HTTP, the sandbox's
//! wallets, both databases. The ledger is checked against the wallets' own movements.

use std::collections::BTreeMap;

use qrgate_domain::{Account, FeeRate, Wallet};
use qrgate_testkit::pos::PosResponse;
use qrgate_testkit::{backend_tests, TestDb};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{data, World, WALLETS};

impl World {
    async fn refund(&self, ori: &str, amount: &str, refund_id: Option<&str>) -> PosResponse {
        let mut d = json!({"ori_order_id": ori, "refund_amt": amount});
        if let Some(id) = refund_id {
            d["order_id"] = json!(id);
        }
        self.pos.call("REFUND", d).await
    }

    async fn refund_query(&self, refund_id: &str) -> PosResponse {
        self.pos
            .call("REFUND_QUERY", json!({"order_id": refund_id}))
            .await
    }

    async fn sandbox_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/control{path}", self.running.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every ledger balance, by account name.
    async fn balances(&self) -> BTreeMap<String, (i64, Option<i64>)> {
        self.engine
            .store()
            .ledger_balances()
            .await
            .unwrap()
            .into_iter()
            .map(|b| {
                (
                    b.account.to_string(),
                    (b.balance.minor(), b.payer_balance.map(|p| p.minor())),
                )
            })
            .collect()
    }

    async fn assert_ledger_holds(&self) {
        let broken = self.engine.store().check_ledger().await.unwrap();
        assert!(broken.is_empty(), "ledger invariants broken: {broken:#?}");
    }

    /// Runs the loops until every refund is final (wallets finish within seconds).
    async fn settle_refunds(&self) {
        for _ in 0..10 {
            self.advance(5).await;
        }
    }
}

async fn paid_order(w: &World, customer: &str, wallet: &str, biz: &str, order_id: &str) {
    let code = w.code(customer, wallet, json!({"kind": "instant"})).await;
    let r = w.pay(order_id, "1000", &code, biz).await;
    assert_eq!(r.rsp_code, "SUCCESS", "{wallet}: {r:?}");
}

async fn partial_then_full_refunds_with_each_wallet(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let before = w.balance(&customer).await;
        let order_id = format!("PAY{i}");
        paid_order(&w, &customer, wallet, biz, &order_id).await;
        let paid = before - w.balance(&customer).await;
        assert!(paid > 0);

        // A partial refund: done at once (Alipay) or accepted and finished by the loop.
        let r = w.refund(&order_id, "300", Some(&format!("RF{i}A"))).await;
        assert!(
            ["SUCCESS", "PROCESSING"].contains(&r.rsp_code.as_str()),
            "{wallet}: {r:?}"
        );
        let d = data(&r);
        assert_eq!(d["order_id"], format!("RF{i}A").as_str());
        assert_eq!(d["ori_order_id"], order_id.as_str());
        assert_eq!(d["refund_amt"], "300");
        w.settle_refunds().await;
        let q = data(&w.refund_query(&format!("RF{i}A")).await);
        assert_eq!(q["order_status"], "success", "{wallet}: {q:?}");
        let s = data(&w.status(&order_id).await);
        assert_eq!(s["order_status"], "partial_refunded", "{wallet}");
        assert_eq!(s["refund_amount"], "300");
        // 300 of 1100 paid: the customer gets the same share of the CNY back, rounded down.
        let back = w.balance(&customer).await - (before - paid);
        assert_eq!(back, paid * 300 / 1100, "{wallet}");

        // More than is left (800): refused, and nothing changes.
        let counts = w.engine.store().row_counts().await.unwrap();
        let r = w.refund(&order_id, "801", None).await;
        assert_eq!(r.rsp_code, "PARAM_INVALID", "{r:?}");
        assert!(
            r.rsp_msg.contains("exceeds the refundable amount 800"),
            "{r:?}"
        );
        assert_eq!(w.engine.store().row_counts().await.unwrap(), counts);

        // The rest, with a generated refund order id.
        let r = w.refund(&order_id, "800", None).await;
        let generated = data(&r)["order_id"].as_str().unwrap().to_owned();
        assert!(!generated.is_empty());
        w.settle_refunds().await;
        assert_eq!(
            data(&w.refund_query(&generated).await)["order_status"],
            "success"
        );
        let s = data(&w.status(&order_id).await);
        assert_eq!(s["order_status"], "fully_refunded", "{wallet}");
        assert_eq!(s["refund_amount"], "1100");
        assert_eq!(
            w.balance(&customer).await,
            before,
            "{wallet}: all money back"
        );
        // Nothing left to refund.
        let r = w.refund(&order_id, "1", None).await;
        assert_eq!(r.rsp_code, "PARAM_INVALID", "{r:?}");
    }
    w.assert_ledger_holds().await;
    // Everything was refunded and no fee is set: every account is back to zero.
    for (account, (balance, payer)) in w.balances().await {
        assert_eq!(balance, 0, "{account}");
        assert!(payer.is_none_or(|p| p == 0), "{account}: {payer:?}");
    }
}

async fn a_replayed_refund_and_a_resent_refund_id_refund_once(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    paid_order(&w, &customer, "alipay", "ALIPAY", "REPLAY1").await;
    let start = w.balance(&customer).await;

    // The same envelope, byte for byte, twice (no order_id: the gateway makes one).
    let envelope = w.pos.envelope(
        "REFUND",
        json!({"ori_order_id": "REPLAY1", "refund_amt": "200"})
            .as_object()
            .unwrap(),
    );
    let bytes = serde_json::to_vec(&envelope).unwrap();
    let first = w.pos.post(bytes.clone()).await;
    let again = w.pos.post(bytes).await;
    assert_eq!(first.rsp_code, "SUCCESS", "{first:?}");
    assert_eq!(again.rsp_code, "SUCCESS", "{again:?}");
    assert_eq!(data(&first)["order_id"], data(&again)["order_id"]);
    let after_replay = w.balance(&customer).await;
    assert!(after_replay > start);

    // A refund order id resent in a new envelope: the same refund.
    let r1 = w.refund("REPLAY1", "300", Some("RID-1")).await;
    let r2 = w.refund("REPLAY1", "300", Some("RID-1")).await;
    assert_eq!(r1.rsp_code, "SUCCESS", "{r1:?}");
    assert_eq!(r2.rsp_code, "SUCCESS", "{r2:?}");
    // The same id for another amount is another refund: refused.
    let r3 = w.refund("REPLAY1", "400", Some("RID-1")).await;
    assert_eq!(r3.rsp_code, "ORDER_USED", "{r3:?}");
    // A refund id may not take a payment's id either.
    let r4 = w.refund("REPLAY1", "100", Some("REPLAY1")).await;
    assert_eq!(r4.rsp_code, "ORDER_USED", "{r4:?}");

    let s = data(&w.status("REPLAY1").await);
    assert_eq!(s["refund_amount"], "500", "200 + 300, once each");
    let trades = w.sandbox_json("/trades").await;
    let refunds: usize = trades
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["refunds"].as_array().unwrap().len())
        .sum();
    assert_eq!(refunds, 2, "the wallet saw two refunds");
    w.assert_ledger_holds().await;
}

async fn refunds_that_cannot_be_made_are_refused_and_change_nothing(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    paid_order(&w, &customer, "wechat", "WECHATPAY", "OK1").await;
    let declined = w
        .code(&customer, "wechat", json!({"kind": "insufficient_balance"}))
        .await;
    let r = w.pay("DECLINED1", "1000", &declined, "WECHATPAY").await;
    assert_eq!(r.rsp_code, "FAIL");
    w.advance(1).await;
    let counts = w.engine.store().row_counts().await.unwrap();

    let cases: [(Value, &str, &str); 7] = [
        (
            json!({"ori_order_id": "NOPE", "refund_amt": "100"}),
            "PARAM_INVALID",
            "unknown ori_order_id",
        ),
        (
            json!({"ori_order_id": "DECLINED1", "refund_amt": "100"}),
            "FAIL",
            "not paid",
        ),
        (
            json!({"ori_order_id": "OK1", "refund_amt": "0"}),
            "PARAM_INVALID",
            "refund_amt",
        ),
        (
            json!({"ori_order_id": "OK1", "refund_amt": "1101"}),
            "PARAM_INVALID",
            "exceeds the refundable amount 1100",
        ),
        (
            json!({"ori_order_id": "OK1", "refund_amt": "12.5"}),
            "PARAM_INVALID",
            "refund_amt",
        ),
        (
            json!({"ori_order_id": "OK1"}),
            "PARAM_INVALID",
            "refund_amt",
        ),
        (
            json!({"ori_order_id": "OK1", "refund_amt": "100", "order_id": "bad id!"}),
            "PARAM_INVALID",
            "order_id",
        ),
    ];
    for (request, code, words) in cases {
        let r = w.pos.call("REFUND", request.clone()).await;
        assert_eq!(r.rsp_code, code, "{request}: {r:?}");
        assert!(r.rsp_msg.contains(words), "{request}: {r:?}");
    }
    let q = w.refund_query("NOSUCH").await;
    assert_eq!(q.rsp_code, "PARAM_INVALID", "{q:?}");
    assert_eq!(w.engine.store().row_counts().await.unwrap(), counts);
}

async fn fees_are_taken_on_payments_and_given_back_in_proportion(db: TestDb) {
    let w = World::start(db).await;
    w.engine
        .set_merchant_fee_rate(&w.merchant.merchant.id, FeeRate::from_bps(60).unwrap())
        .await
        .unwrap();
    let customer = w.customer(100_000).await;
    paid_order(&w, &customer, "alipay", "ALIPAY", "FEE1").await;
    let merchant = Account::MerchantPayable(w.merchant.merchant.id.clone()).to_string();
    let clearing = Account::WalletClearing(Wallet::Alipay).to_string();
    let fees = Account::ProviderFees.to_string();
    // 0.6 % of 11.00 = 0.066 → 0.07.
    let b = w.balances().await;
    assert_eq!(b[&clearing].0, 1100);
    assert_eq!(b[&merchant].0, -1093);
    assert_eq!(b[&fees].0, -7);
    // Half back: the fee given back is round_half_up(7 × 550 / 1100) = 4 (3.5 rounds up).
    assert_eq!(
        w.refund("FEE1", "550", Some("FEE1-R1")).await.rsp_code,
        "SUCCESS"
    );
    let b = w.balances().await;
    assert_eq!(
        (b[&clearing].0, b[&merchant].0, b[&fees].0),
        (550, -547, -3)
    );
    // The same content again without its own refund order id is the same request (an
    // envelope carries no nonce): it finds the first refund and refunds nothing more.
    let again = w.refund("FEE1", "550", Some("FEE1-R1")).await;
    assert_eq!(data(&again)["order_id"], "FEE1-R1");
    assert_eq!(w.balances().await[&clearing].0, 550);
    // The rest, under its own id: the whole fee is given back, no cent more.
    assert_eq!(
        w.refund("FEE1", "550", Some("FEE1-R2")).await.rsp_code,
        "SUCCESS"
    );
    let b = w.balances().await;
    assert_eq!((b[&clearing].0, b[&merchant].0, b[&fees].0), (0, 0, 0));
    w.assert_ledger_holds().await;
}

async fn faults(w: &World, wallet: &str, faults: Value) {
    w.http
        .put(format!("{}/control/faults/{wallet}", w.running.url()))
        .json(&faults)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// A refund whose answer is lost (the wallet did it) is found by the refund loop; one that
/// never reached the wallet (HTTP 500 before processing) is sent again under the same number.
/// Either way the customer gets the money back once.
async fn refunds_lost_on_the_way_are_found_or_sent_again_and_refund_once(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    for (i, (wallet, biz)) in WALLETS.into_iter().enumerate() {
        let order_id = format!("LOST{i}");
        let before = w.balance(&customer).await;
        paid_order(&w, &customer, wallet, biz, &order_id).await;
        let paid = before - w.balance(&customer).await;

        // The answer is lost: the POS hears "processing", the loop finds the refund.
        faults(&w, wallet, json!({"drop_next": 1})).await;
        let r = w
            .refund(&order_id, "400", Some(&format!("LOST{i}-A")))
            .await;
        assert_eq!(r.rsp_code, "PROCESSING", "{wallet}: {r:?}");
        assert_eq!(data(&r)["order_status"], "processing");
        w.settle_refunds().await;
        assert_eq!(
            data(&w.refund_query(&format!("LOST{i}-A")).await)["order_status"],
            "success",
            "{wallet}"
        );

        // The request never reaches the wallet: the loop learns the wallet has no such
        // refund and sends it again.
        faults(&w, wallet, json!({"fail_next": 1})).await;
        let r = w
            .refund(&order_id, "700", Some(&format!("LOST{i}-B")))
            .await;
        assert_eq!(r.rsp_code, "PROCESSING", "{wallet}: {r:?}");
        w.settle_refunds().await;
        assert_eq!(
            data(&w.refund_query(&format!("LOST{i}-B")).await)["order_status"],
            "success",
            "{wallet}"
        );
        assert_eq!(
            w.balance(&customer).await,
            before,
            "{wallet}: {paid} back once"
        );
        let timeline = w
            .engine
            .order_timeline(&w.order(&order_id).await.key)
            .await
            .unwrap();
        let sends = timeline.iter().filter(|e| e.operation == "refund").count();
        assert!(
            sends >= 3,
            "{wallet}: refund B was sent again: {timeline:#?}"
        );
    }
    w.assert_ledger_holds().await;
}

/// Random sequences of payments (paid, declined, confirmed late, never confirmed and
/// reversed, paid behind a timeout), partial and full refunds, refused over-refunds, across
/// the three wallets. At the end the ledger equals the wallets' own records to the cent: per
/// wallet, the clearing account equals what its trades took less what its refunds gave back
/// (CAD), and its CNY column equals its customer's balance movements.
async fn random_sequences_leave_the_ledger_equal_to_the_wallets(db: TestDb) {
    let w = World::start(db).await;
    w.engine
        .set_merchant_fee_rate(&w.merchant.merchant.id, FeeRate::from_bps(125).unwrap())
        .await
        .unwrap();
    let mut customers = BTreeMap::new();
    for (wallet, _) in WALLETS {
        customers.insert(wallet, w.customer(10_000_000).await);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9a7e_2026);
    let mut orders: Vec<(String, i64)> = Vec::new();
    for step in 0..40 {
        if orders.is_empty() || rng.gen_bool(0.5) {
            let (wallet, biz) = WALLETS[rng.gen_range(0..3)];
            let behaviour = match rng.gen_range(0..10) {
                0 => json!({"kind": "insufficient_balance"}),
                1 => json!({"kind": "never_confirm"}),
                2 => json!({"kind": "password", "after_secs": 3}),
                3 => json!({"kind": "system_error"}),
                _ => json!({"kind": "instant"}),
            };
            let code = w.code(&customers[wallet], wallet, behaviour).await;
            let amount = rng.gen_range(1..50_000);
            let order_id = format!("S{step}");
            w.pay(&order_id, &amount.to_string(), &code, biz).await;
            orders.push((order_id, amount + 100));
        } else {
            let (order_id, total) = orders[rng.gen_range(0..orders.len())].clone();
            let amount = match rng.gen_range(0..4) {
                0 => total,
                1 => total + 1,
                _ => rng.gen_range(1..=total),
            };
            // Any answer is fine here: over-refunds and refunds of unpaid orders are refused;
            // the books are checked at the end.
            w.refund(&order_id, &amount.to_string(), None).await;
        }
        if rng.gen_bool(0.3) {
            w.advance(rng.gen_range(1..30)).await;
        }
    }
    // Let everything settle: pending payments confirm or are reversed, refunds finish.
    for _ in 0..30 {
        w.advance(10).await;
    }
    w.assert_ledger_holds().await;
    assert_eq!(w.engine.store().open_order_count().await.unwrap(), 0);

    let balances = w.balances().await;
    let trades = w.sandbox_json("/trades").await;
    // The sequence did what it is for: payments of each kind, and refunds.
    let statuses: Vec<&str> = trades
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.iter().filter(|s| **s == "success").count() >= 10,
        "{statuses:?}"
    );
    assert!(statuses.contains(&"revoked"), "{statuses:?}");
    let refunds: usize = trades
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["refunds"].as_array().unwrap().len())
        .sum();
    assert!(refunds >= 5, "only {refunds} refunds");
    for (wallet, _) in WALLETS {
        let domain_wallet = match wallet {
            "wechat" => Wallet::WechatPay,
            "alipay" => Wallet::Alipay,
            _ => Wallet::UnionPay,
        };
        let mut taken = 0;
        for t in trades.as_array().unwrap() {
            if t["wallet"] != wallet || t["status"] != "success" {
                continue;
            }
            assert_eq!(t["currency"], "CAD");
            taken += t["total"].as_i64().unwrap();
            for r in t["refunds"].as_array().unwrap() {
                assert_eq!(r["status"], "success", "every refund finished: {r}");
                taken -= r["amount"].as_i64().unwrap();
            }
        }
        let customer = w
            .sandbox_json(&format!("/customers/{}", customers[wallet]))
            .await;
        let moved: i64 = customer["movements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] != "top_up")
            .map(|m| m["amount_fen"].as_i64().unwrap())
            .sum();
        let account = Account::WalletClearing(domain_wallet).to_string();
        let (ledger, payer) = balances.get(&account).copied().unwrap_or((0, None));
        assert_eq!(
            ledger, taken,
            "{wallet}: clearing (CAD) vs the wallet's trades"
        );
        assert_eq!(
            payer.unwrap_or(0),
            -moved,
            "{wallet}: clearing (CNY) vs the customer's movements"
        );
    }
    // The books close: the wallets owe what the merchant and the provider are owed.
    let total: i64 = balances.values().map(|(b, _)| b).sum();
    assert_eq!(total, 0);
}

backend_tests!(
    partial_then_full_refunds_with_each_wallet,
    a_replayed_refund_and_a_resent_refund_id_refund_once,
    refunds_lost_on_the_way_are_found_or_sent_again_and_refund_once,
    refunds_that_cannot_be_made_are_refused_and_change_nothing,
    fees_are_taken_on_payments_and_given_back_in_proportion,
    random_sequences_leave_the_ledger_equal_to_the_wallets,
);
