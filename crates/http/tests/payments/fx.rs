//! EX_RATE_QUERY from the wallets' published rates (WeChat Pay `queryexchagerate` in the
//! sandbox), with the provider's rate as the fallback once they are stale.

use chrono::Duration;
use qrgate_domain::{Currency, FxRate};
use qrgate_testkit::{backend_tests, TestDb};
use serde_json::json;

use super::{data, World};

impl World {
    async fn rate(&self, fee_type: &str) -> qrgate_testkit::pos::PosResponse {
        self.pos
            .call("EX_RATE_QUERY", json!({"fee_type": fee_type}))
            .await
    }
}

async fn exchange_rates_come_from_the_wallets_until_they_are_stale(db: TestDb) {
    let w = World::start(db).await;
    // The provider's own rate for CAD; none for USD.
    w.engine
        .set_fx_rate(Currency::Cad, FxRate::from_scaled(500_000_000).unwrap())
        .await
        .unwrap();
    assert_eq!(data(&w.rate("CAD").await)["rate"], "500000000");

    // WeChat Pay publishes CAD and USD (Alipay and UnionPay have no rate query).
    assert_eq!(w.engine.refresh_wallet_rates().await.unwrap(), 2);
    assert_eq!(data(&w.rate("CAD").await)["rate"], "520000000");
    assert_eq!(data(&w.rate("USD").await)["rate"], "710000000");

    // The wallet moves its rate: the next refresh follows.
    w.http
        .put(format!("{}/control/rates", w.running.url()))
        .json(&json!({"CAD": 531234567}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    w.engine.refresh_wallet_rates().await.unwrap();
    assert_eq!(data(&w.rate("CAD").await)["rate"], "531234567");

    // A day and three hours without a refresh: the wallets' rates are stale. CAD falls back
    // to the provider's rate; USD has none, and says why.
    w.clock.advance(Duration::hours(27));
    assert_eq!(data(&w.rate("CAD").await)["rate"], "500000000");
    let usd = w.rate("USD").await;
    assert_eq!(usd.rsp_code, "FAIL", "{usd:?}");
    assert!(usd.rsp_msg.contains("staleness bound"), "{usd:?}");

    // A payment keeps the rate the wallet charged it at, whatever the rate later becomes.
    let customer = w.customer(100_000).await;
    let code = w
        .code(&customer, "wechat", json!({"kind": "instant"}))
        .await;
    assert_eq!(
        w.pay("FX1", "1000", &code, "WECHATPAY").await.rsp_code,
        "SUCCESS"
    );
    let order = w.order("FX1").await;
    assert_eq!(order.rate, FxRate::from_scaled(531_234_567));
    assert_eq!(
        order.cny_amount.map(|m| m.minor()),
        Some(5844),
        "11.00 CAD × 5.31234567 = 58.4358 CNY"
    );
}

backend_tests!(exchange_rates_come_from_the_wallets_until_they_are_stale);
