//! Refunds with a second look (docs/TILL.md, "Refunds"): from the sale's refund screen, the
//! amount typed, and above the merchant's limit a supervisor's PIN on the same screen.

use super::*;

async fn a_refund_above_the_limit_needs_a_supervisors_pin_and_records_both(db: TestDb) {
    let w = World::start(db).await;
    let customer = w.customer(100_000).await;
    let merchant_id = w.merchant.merchant.id.clone();
    let supervisor = w
        .engine
        .add_operator(&merchant_id, "Wang Jing")
        .await
        .unwrap();
    w.engine
        .set_operator_pin(&merchant_id, &supervisor.id, "975310")
        .await
        .unwrap();
    w.engine
        .set_operator_role(
            &merchant_id,
            &supervisor.id,
            qrgate_domain::OperatorRole::Supervisor,
        )
        .await
        .unwrap();
    let mut till = w.till();
    till.sign_in().await;
    let code = w.code(&customer, "alipay", "instant").await;
    let (_, paid) = till.sell("12", "", ("code", &code)).await;
    let path = format!("/pos/orders/{paid}/refund");
    let form = till.get(&path).await;
    // By default every refund needs a supervisor.
    assert!(
        form.body.contains("Every refund needs a supervisor"),
        "{}",
        form.body
    );
    assert_eq!(form.field("amount"), "");
    let csrf = form.field("csrf");
    let refund_id = form.field("refund_id");
    let send = |amount: &'static str, who: &'static str, pin: &'static str| {
        let (csrf, refund_id) = (csrf.clone(), refund_id.clone());
        (csrf, refund_id, amount, who, pin)
    };
    let attempts = [
        // (amount, supervisor, PIN, what the screen says)
        send("5", "", ""),
        send("5", "0000000001", PIN),
        send("5", "0000000002", "000000"),
        send("abc", "0000000002", "975310"),
    ];
    let says = [
        "This refund needs a supervisor's approval",
        "This operator cannot approve refunds",
        "Supervisor id or PIN is wrong",
        "The amount is not a number",
    ];
    for ((csrf, refund_id, amount, who, pin), said) in attempts.iter().zip(says) {
        let page = till
            .post(
                &path,
                &[
                    ("csrf", csrf),
                    ("refund_id", refund_id),
                    ("amount", amount),
                    ("supervisor", who),
                    ("supervisor_pin", pin),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert!(page.body.contains(said), "{said}: {}", page.body);
        // The screen keeps the amount typed, never the PIN.
        assert!(!page.body.contains("975310"));
        let order = w.order(&paid).await.unwrap();
        assert_eq!(order.refund_reserved.minor(), 0, "nothing refunded");
    }
    let done = till
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("refund_id", &refund_id),
                ("amount", "5"),
                ("supervisor", "0000000002"),
                ("supervisor_pin", "975310"),
            ],
        )
        .await;
    assert!(done.body.contains("Refunded CA$5.00."), "{}", done.body);
    assert!(
        done.body
            .contains("Asked by 0000000001 · approved by 0000000002"),
        "{}",
        done.body
    );
    let order = w.order(&paid).await.unwrap();
    let refunds = w.engine.refunds_of_order(&order.key).await.unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].operator_id.as_deref(), Some("0000000001"));
    assert_eq!(refunds[0].approved_by.as_deref(), Some("0000000002"));
    let receipt = till
        .get(&format!("/pos/orders/{paid}/receipt?paper=80"))
        .await;
    assert!(receipt.body.contains("Asked by"), "{}", receipt.body);
    assert!(receipt.body.contains("Approved by"));
    assert!(receipt.body.contains("0000000002"));

    // Under a limit the merchant sets, no approval is asked.
    w.engine
        .set_refund_approval_above(&merchant_id, qrgate_domain::Money::new(300, Currency::Cad))
        .await
        .unwrap();
    let form = till.get(&path).await;
    let small = till
        .post(
            &path,
            &[
                ("csrf", &form.field("csrf")),
                ("refund_id", &form.field("refund_id")),
                ("amount", "3"),
            ],
        )
        .await;
    assert!(small.body.contains("Refunded CA$3.00."), "{}", small.body);
    let refunds = w.engine.refunds_of_order(&order.key).await.unwrap();
    let small = refunds.iter().find(|r| r.amount.minor() == 300).unwrap();
    assert_eq!(small.approved_by, None);
    assert_eq!(w.order(&paid).await.unwrap().refunded.minor(), 800);
}

backend_tests!(a_refund_above_the_limit_needs_a_supervisors_pin_and_records_both,);
