//! The conformance battery: one set of wallet scenarios, written once and run by each
//! wallet's connector against its simulator over real HTTP (the sandbox in this process, the
//! connector talking to it through sockets, customers and faults set through the control API).
//!
//! The sandbox and the connectors share no code: a field the connector names wrongly, or a
//! signature it computes wrongly, fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod world;

use std::time::Duration;

use chrono::Utc;
use qrgate_connector_api::{
    ChannelStatus, CodePaymentRequest, Connector, ConnectorError, OrderRef, QrOrderRequest,
    RefundRef, RefundRequest, RefundStatus, ReverseOutcome,
};
use qrgate_domain::{Currency, Money};
use serde_json::json;
use world::{Kind, World};

fn cny(fen: i64) -> Money {
    Money::new(fen, Currency::Cny)
}

fn code_payment(out_trade_no: &str, amount: Money, auth_code: &str) -> CodePaymentRequest {
    CodePaymentRequest {
        out_trade_no: out_trade_no.to_owned(),
        amount,
        auth_code: auth_code.to_owned(),
        subject: "Maple Tea".into(),
        terminal_id: Some("TILL1".into()),
        client_ip: "127.0.0.1".into(),
        created_at: Utc::now(),
    }
}

fn qr_order(
    out_trade_no: String,
    amount: Money,
    notify_url: &str,
    valid_for: chrono::Duration,
) -> QrOrderRequest {
    QrOrderRequest {
        out_trade_no,
        amount,
        subject: "Maple Tea".into(),
        notify_url: notify_url.to_owned(),
        expires_at: Utc::now() + valid_for,
        terminal_id: None,
        client_ip: "127.0.0.1".into(),
        created_at: Utc::now(),
    }
}

fn order_ref(req: &CodePaymentRequest, channel_ref: Option<String>) -> OrderRef {
    OrderRef {
        out_trade_no: req.out_trade_no.clone(),
        created_at: req.created_at,
        channel_ref,
    }
}

/// Reverses until the wallet stops asking to call again.
async fn reverse(connector: &dyn Connector, order: &OrderRef) -> ReverseOutcome {
    for _ in 0..5 {
        match connector.reverse_order(order).await.unwrap() {
            ReverseOutcome::CallAgain => continue,
            done => return done,
        }
    }
    panic!("the wallet kept asking to reverse again");
}

async fn instant_payment(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, json!({"kind": "instant"})).await;
    let req = code_payment(&w.order_no(), cny(1234), &code);
    let order = c.pay_with_code(&req).await.unwrap();
    assert_eq!(order.status, ChannelStatus::Paid, "{order:?}");
    assert!(order.channel_ref.is_some());
    assert_eq!(w.balance(&customer).await, 100_000 - 1234);
    let queried = c
        .query_order(&order_ref(&req, order.channel_ref.clone()))
        .await
        .unwrap();
    assert_eq!(queried.status, ChannelStatus::Paid);
    assert_eq!(queried.amount, Some(cny(1234)));
}

async fn cross_border_payment_is_converted_at_the_wallets_rate(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, json!({"kind": "instant"})).await;
    // 10.00 CAD at the sandbox's 5.2 = 52.00 CNY.
    let req = code_payment(&w.order_no(), Money::new(1000, Currency::Cad), &code);
    let order = c.pay_with_code(&req).await.unwrap();
    assert_eq!(order.status, ChannelStatus::Paid, "{order:?}");
    assert_eq!(w.balance(&customer).await, 100_000 - 5200);
    let queried = c
        .query_order(&order_ref(&req, order.channel_ref.clone()))
        .await
        .unwrap();
    assert_eq!(queried.amount, Some(Money::new(1000, Currency::Cad)));
    assert_eq!(queried.payer_amount, Some(cny(5200)), "{queried:?}");
}

async fn password_then_success(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let code = w
        .code(&customer, json!({"kind": "password", "after_secs": 5}))
        .await;
    let req = code_payment(&w.order_no(), cny(500), &code);
    let order = c.pay_with_code(&req).await.unwrap();
    assert_eq!(order.status, ChannelStatus::PendingUser, "{order:?}");
    assert_eq!(
        w.balance(&customer).await,
        100_000,
        "nothing taken before the password"
    );
    w.advance(6).await;
    let queried = c
        .query_order(&order_ref(&req, order.channel_ref))
        .await
        .unwrap();
    assert_eq!(queried.status, ChannelStatus::Paid, "{queried:?}");
    assert_eq!(w.balance(&customer).await, 99_500);
}

async fn never_confirmed_then_reversed_leaves_the_balance_untouched(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, json!({"kind": "never_confirm"})).await;
    let req = code_payment(&w.order_no(), cny(800), &code);
    let order = c.pay_with_code(&req).await.unwrap();
    assert_eq!(order.status, ChannelStatus::PendingUser, "{order:?}");
    w.advance(20).await;
    let still = c
        .query_order(&order_ref(&req, order.channel_ref.clone()))
        .await
        .unwrap();
    assert_eq!(still.status, ChannelStatus::PendingUser, "{still:?}");
    let r = order_ref(&req, still.channel_ref.clone().or(order.channel_ref));
    assert_eq!(reverse(c.as_ref(), &r).await, ReverseOutcome::Done);
    let after = c.query_order(&r).await.unwrap();
    assert!(
        matches!(
            after.status,
            ChannelStatus::Reversed | ChannelStatus::Closed
        ),
        "{after:?}"
    );
    assert_eq!(w.balance(&customer).await, 100_000);
    // Reversing again is harmless.
    assert_eq!(reverse(c.as_ref(), &r).await, ReverseOutcome::Done);
}

async fn a_wallet_that_asks_to_reverse_again_is_obeyed(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, json!({"kind": "never_confirm"})).await;
    let req = code_payment(&w.order_no(), cny(800), &code);
    let order = c.pay_with_code(&req).await.unwrap();
    w.faults(json!({"reverse_call_again_next": 1})).await;
    let r = order_ref(&req, order.channel_ref);
    let r = match c.query_order(&r).await.unwrap().channel_ref {
        Some(id) => OrderRef {
            channel_ref: Some(id),
            ..r
        },
        None => r,
    };
    assert_eq!(
        c.reverse_order(&r).await.unwrap(),
        ReverseOutcome::CallAgain
    );
    assert_eq!(reverse(c.as_ref(), &r).await, ReverseOutcome::Done);
    assert_eq!(w.balance(&customer).await, 100_000);
}

async fn system_error_but_paid_is_found_by_query(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, json!({"kind": "system_error"})).await;
    let req = code_payment(&w.order_no(), cny(700), &code);
    match c.pay_with_code(&req).await {
        Ok(o) => assert_eq!(o.status, ChannelStatus::Unknown, "{o:?}"),
        Err(ConnectorError::OutcomeUnknown(_)) => {}
        other => panic!("a system error must leave the outcome unknown: {other:?}"),
    }
    let queried = c.query_order(&order_ref(&req, None)).await.unwrap();
    assert_eq!(queried.status, ChannelStatus::Paid, "{queried:?}");
    assert_eq!(w.balance(&customer).await, 99_300);
}

async fn timeout_then_query_resolves_it(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_millis(1500));
    let customer = w.customer(100_000).await;

    let paid_code = w
        .code(&customer, json!({"kind": "timeout", "paid": true}))
        .await;
    let paid = code_payment(&w.order_no(), cny(300), &paid_code);
    assert!(matches!(
        c.pay_with_code(&paid).await,
        Err(ConnectorError::OutcomeUnknown(_))
    ));
    assert_eq!(
        c.query_order(&order_ref(&paid, None)).await.unwrap().status,
        ChannelStatus::Paid
    );

    let lost_code = w
        .code(&customer, json!({"kind": "timeout", "paid": false}))
        .await;
    let lost = code_payment(&w.order_no(), cny(300), &lost_code);
    assert!(matches!(
        c.pay_with_code(&lost).await,
        Err(ConnectorError::OutcomeUnknown(_))
    ));
    let queried = c.query_order(&order_ref(&lost, None)).await.unwrap();
    assert_ne!(queried.status, ChannelStatus::Paid, "{queried:?}");
    assert!(
        queried.wallet_code.is_some(),
        "the wallet says it does not know the order: {queried:?}"
    );
    assert_eq!(w.balance(&customer).await, 99_700);
}

async fn expired_reused_and_unknown_codes_are_declined(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let expired = w.code(&customer, json!({"kind": "expired"})).await;
    let r = c
        .pay_with_code(&code_payment(&w.order_no(), cny(100), &expired))
        .await;
    assert!(matches!(r, Err(ConnectorError::Declined { .. })), "{r:?}");

    let code = w.code(&customer, json!({"kind": "instant"})).await;
    c.pay_with_code(&code_payment(&w.order_no(), cny(100), &code))
        .await
        .unwrap();
    let reused = c
        .pay_with_code(&code_payment(&w.order_no(), cny(100), &code))
        .await;
    assert!(
        matches!(reused, Err(ConnectorError::Declined { .. })),
        "{reused:?}"
    );

    let unknown = w.kind.unknown_code();
    let r = c
        .pay_with_code(&code_payment(&w.order_no(), cny(100), &unknown))
        .await;
    assert!(matches!(r, Err(ConnectorError::Declined { .. })), "{r:?}");
    assert_eq!(w.balance(&customer).await, 99_900);
}

async fn insufficient_balance_is_declined(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(500).await;
    let code = w.code(&customer, json!({"kind": "instant"})).await;
    let r = c
        .pay_with_code(&code_payment(&w.order_no(), cny(501), &code))
        .await;
    match r {
        Err(ConnectorError::Declined { code, .. }) => {
            assert_eq!(code, w.kind.insufficient_balance_code())
        }
        other => panic!("expected a decline: {other:?}"),
    }
    assert_eq!(w.balance(&customer).await, 500);
}

async fn resubmitting_the_same_payment_charges_once(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, json!({"kind": "instant"})).await;
    let req = code_payment(&w.order_no(), cny(250), &code);
    c.pay_with_code(&req).await.unwrap();
    let again = c.pay_with_code(&req).await;
    assert!(
        !matches!(
            again,
            Err(ConnectorError::Declined { .. }) | Err(ConnectorError::Rejected { .. })
        ),
        "{again:?}"
    );
    assert_eq!(
        c.query_order(&order_ref(&req, None)).await.unwrap().status,
        ChannelStatus::Paid
    );
    assert_eq!(w.balance(&customer).await, 99_750);
}

async fn qr_order_scanned_paid_and_notified(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let receiver = w.receiver(c.clone()).await;
    let customer = w.customer(100_000).await;
    let req = qr_order(
        w.order_no(),
        cny(1888),
        &receiver.url,
        chrono::Duration::minutes(30),
    );
    let qr = c.create_qr_order(&req).await.unwrap();
    assert!(
        qr.code_url.starts_with(&format!("{}/pay/", w.url())),
        "{}",
        qr.code_url
    );
    let r = OrderRef {
        out_trade_no: req.out_trade_no.clone(),
        created_at: req.created_at,
        channel_ref: None,
    };
    let before = c.query_order(&r).await.unwrap();
    assert_eq!(before.status, ChannelStatus::PendingUser, "{before:?}");

    w.pay_qr(&qr.code_url, &customer).await;
    let after = c.query_order(&r).await.unwrap();
    assert_eq!(after.status, ChannelStatus::Paid, "{after:?}");
    assert_eq!(w.balance(&customer).await, 100_000 - 1888);

    w.tick().await;
    let events = receiver.verified().await;
    assert_eq!(events.len(), 1, "one verified notification: {events:?}");
    assert_eq!(events[0].order.out_trade_no, req.out_trade_no);
    assert_eq!(events[0].order.status, ChannelStatus::Paid);
    assert!(
        w.notifications_delivered().await >= 1,
        "the sandbox counts it as acknowledged"
    );
}

async fn forged_notifications_are_rejected(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let receiver = w.receiver(c.clone()).await;
    let customer = w.customer(100_000).await;
    w.faults(json!({"forged_notifications": true})).await;
    let req = qr_order(
        w.order_no(),
        cny(100),
        &receiver.url,
        chrono::Duration::minutes(30),
    );
    let qr = c.create_qr_order(&req).await.unwrap();
    w.pay_qr(&qr.code_url, &customer).await;
    w.tick().await;
    assert!(receiver.verified().await.is_empty());
    assert!(
        receiver.rejected().await >= 1,
        "the forged notification reached the receiver and was refused"
    );
    assert_eq!(
        w.notifications_delivered().await,
        0,
        "a refused notification is not acknowledged"
    );
}

async fn unpaid_qr_order_is_closed(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let req = qr_order(
        w.order_no(),
        cny(990),
        "http://127.0.0.1:9/unused",
        chrono::Duration::minutes(10),
    );
    let qr = c.create_qr_order(&req).await.unwrap();
    w.scan_qr(&qr.code_url).await;
    // WeChat refuses to close an order younger than 5 minutes.
    w.advance(301).await;
    let r = OrderRef {
        out_trade_no: req.out_trade_no.clone(),
        created_at: req.created_at,
        channel_ref: None,
    };
    c.close_order(&r).await.unwrap();
    // Past the QR's expiry every wallet reports it closed, whether closed by the call or by
    // the expiry (UnionPay has no close).
    w.advance(600).await;
    let after = c.query_order(&r).await.unwrap();
    assert_eq!(after.status, ChannelStatus::Closed, "{after:?}");
    let customer = w.customer(100_000).await;
    assert!(
        w.try_pay_qr(&qr.code_url, &customer).await.is_err(),
        "a closed QR cannot be paid"
    );
}

async fn partial_and_full_refunds_with_queries(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, json!({"kind": "instant"})).await;
    let pay = code_payment(&w.order_no(), cny(1000), &code);
    let order = c.pay_with_code(&pay).await.unwrap();
    let r = order_ref(&pay, order.channel_ref);
    let refund = |no: &str, amount: i64| RefundRequest {
        out_trade_no: pay.out_trade_no.clone(),
        out_refund_no: no.to_owned(),
        order_amount: cny(1000),
        refund_amount: cny(amount),
        reason: Some("returned".into()),
        order: r.clone(),
        created_at: Utc::now(),
    };
    let first = refund(&w.refund_no(1), 300);
    let accepted = c.refund(&first).await.unwrap();
    assert!(
        matches!(
            accepted.status,
            RefundStatus::Processing | RefundStatus::Succeeded
        ),
        "{accepted:?}"
    );
    w.advance(5).await;
    let q = c
        .query_refund(
            &r,
            &RefundRef {
                out_refund_no: first.out_refund_no.clone(),
                created_at: first.created_at,
            },
        )
        .await
        .unwrap();
    assert_eq!(q.status, RefundStatus::Succeeded, "{q:?}");
    assert_eq!(w.balance(&customer).await, 99_000 + 300);

    // The same refund again moves nothing more.
    let again = c.refund(&first).await.unwrap();
    assert_ne!(again.status, RefundStatus::Failed);
    w.advance(5).await;
    assert_eq!(w.balance(&customer).await, 99_300);

    // More than what is left is refused; the rest is fine.
    let too_much = c.refund(&refund(&w.refund_no(2), 701)).await;
    assert!(
        matches!(
            too_much,
            Err(ConnectorError::Declined { .. }) | Err(ConnectorError::Rejected { .. })
        ),
        "{too_much:?}"
    );
    let rest = refund(&w.refund_no(3), 700);
    c.refund(&rest).await.unwrap();
    w.advance(5).await;
    let q = c
        .query_refund(
            &r,
            &RefundRef {
                out_refund_no: rest.out_refund_no.clone(),
                created_at: rest.created_at,
            },
        )
        .await
        .unwrap();
    assert_eq!(q.status, RefundStatus::Succeeded, "{q:?}");
    assert_eq!(
        w.balance(&customer).await,
        100_000,
        "a full refund gives everything back"
    );
}

async fn bad_response_signatures_are_never_trusted(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, json!({"kind": "instant"})).await;
    w.faults(json!({"bad_signature_next": 1})).await;
    let req = code_payment(&w.order_no(), cny(100), &code);
    let r = c.pay_with_code(&req).await;
    assert!(matches!(r, Err(ConnectorError::BadResponse(_))), "{r:?}");
    // The payment did happen; a query (now signed correctly) finds it.
    assert_eq!(
        c.query_order(&order_ref(&req, None)).await.unwrap().status,
        ChannelStatus::Paid
    );
}

async fn wallet_outages_are_classed(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    w.faults(json!({"fail_next": 1})).await;
    let customer = w.customer(100_000).await;
    let code = w.code(&customer, json!({"kind": "instant"})).await;
    let r = c
        .pay_with_code(&code_payment(&w.order_no(), cny(100), &code))
        .await;
    assert!(
        matches!(r, Err(ConnectorError::OutcomeUnknown(_))),
        "an HTTP 500 leaves the outcome unknown: {r:?}"
    );
    assert_eq!(w.balance(&customer).await, 100_000);
}

async fn exchange_rates_are_the_wallets_own_or_not_supported(kind: Kind) {
    let w = World::start(kind).await;
    let c = w.connector(Duration::from_secs(10));
    let today = Utc::now().date_naive();
    if !kind.quotes_exchange_rates() {
        let r = c.exchange_rate(Currency::Cad, today).await;
        assert!(
            matches!(r, Err(ConnectorError::NotSupported(_))),
            "no rate query in this wallet's protocol: {r:?}"
        );
        return;
    }
    // The sandbox's default CAD rate is 5.2, and what it publishes is what it quotes.
    let published = w.rates().await;
    let cad = c.exchange_rate(Currency::Cad, today).await.unwrap();
    assert_eq!(cad.currency, Currency::Cad);
    assert_eq!(cad.rate_e8, 520_000_000, "{cad:?}");
    assert_eq!(published["CAD"].as_i64(), Some(cad.rate_e8));
    assert!(cad.rate_time.is_some(), "{cad:?}");

    // A rate changed at the wallet is the one quoted next; the others stay.
    w.set_rates(json!({"CAD": 515_432_100})).await;
    let moved = c.exchange_rate(Currency::Cad, today).await.unwrap();
    assert_eq!(moved.rate_e8, 515_432_100, "{moved:?}");
    let usd = c.exchange_rate(Currency::Usd, today).await.unwrap();
    assert_eq!(Some(usd.rate_e8), published["USD"].as_i64(), "{usd:?}");

    // An answer whose signature does not verify is never a rate.
    w.faults(json!({"bad_signature_next": 1})).await;
    let forged = c.exchange_rate(Currency::Cad, today).await;
    assert!(
        matches!(forged, Err(ConnectorError::BadResponse(_))),
        "{forged:?}"
    );

    // A request signed with another key is refused by the wallet.
    let refused = w
        .wechat_connector_with_another_key()
        .exchange_rate(Currency::Cad, today)
        .await;
    assert!(
        matches!(refused, Err(ConnectorError::Rejected { .. })),
        "{refused:?}"
    );
}

macro_rules! battery {
    ($wallet:ident, $kind:expr) => {
        mod $wallet {
            use super::*;
            battery!(@tests $kind;
                instant_payment,
                cross_border_payment_is_converted_at_the_wallets_rate,
                password_then_success,
                never_confirmed_then_reversed_leaves_the_balance_untouched,
                a_wallet_that_asks_to_reverse_again_is_obeyed,
                system_error_but_paid_is_found_by_query,
                timeout_then_query_resolves_it,
                expired_reused_and_unknown_codes_are_declined,
                insufficient_balance_is_declined,
                resubmitting_the_same_payment_charges_once,
                qr_order_scanned_paid_and_notified,
                forged_notifications_are_rejected,
                unpaid_qr_order_is_closed,
                partial_and_full_refunds_with_queries,
                bad_response_signatures_are_never_trusted,
                wallet_outages_are_classed,
                exchange_rates_are_the_wallets_own_or_not_supported,
            );
        }
    };
    (@tests $kind:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($kind).await;
            }
        )*
    };
}

battery!(wechat, Kind::Wechat);
battery!(alipay, Kind::Alipay);
battery!(unionpay, Kind::Unionpay);
