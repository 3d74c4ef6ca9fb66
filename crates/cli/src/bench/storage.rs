//! The storage limit: a PASSIVEPAY's statements replayed straight against the database.
//!
//! Each simulated payment makes the same store calls, with the same transactions, as the
//! gateway's PASSIVEPAY path for a code the wallet pays at once: read the merchant's keys
//! (authentication), insert the order (`paying`), and write it `paid` with the wallet call on
//! its timeline and its ledger posting in one transaction. No HTTP, no codec, no wallet:
//! what the database alone allows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use qrgate_domain::{Currency, MerchantOrderId, Money, Order, OrderStatus, PaymentMode, Wallet};
use qrgate_engine::{Engine, MasterKey, MerchantRequest, SystemClock};
use qrgate_store::{OrderEvent, Store};
use rand::Rng;

use super::BenchArgs;

pub struct StorageFigures {
    pub database: &'static str,
    pub writers: usize,
    pub measured: Duration,
    pub payments: u64,
    pub latencies: Vec<Duration>,
    pub errors: u64,
    /// SQLite: group commits made and the writes they held, over the whole run.
    pub group_commits: Option<(u64, u64)>,
}

fn order_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..12)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("Q{}{tail}", Utc::now().format("%y%m%d%H%M%S"))
}

/// One payment's statements, as the gateway makes them.
async fn one_payment(store: &Store, merchant: &qrgate_domain::MerchantId) -> anyhow::Result<()> {
    store
        .merchant_keys(merchant)
        .await?
        .context("the bench merchant is gone")?;
    let now = Utc::now();
    let key = order_key();
    let amount = Money::new(rand::thread_rng().gen_range(100..10_000), Currency::Cad);
    let order = Order {
        key: key.clone(),
        merchant_id: merchant.clone(),
        order_id: MerchantOrderId::parse(&key).map_err(|e| anyhow::anyhow!("{e}"))?,
        mode: PaymentMode::Passive,
        wallet: Wallet::WechatPay,
        amount,
        tip: Money::new(0, Currency::Cad),
        cny_amount: None,
        rate: None,
        operator_id: Some("0000000001".into()),
        terminal_no: None,
        sale_num: None,
        status: OrderStatus::Paying,
        wallet_code: None,
        wallet_message: None,
        channel_ref: None,
        buyer: None,
        paid_at: None,
        wallet_created_at: now,
        next_check_at: Some(now + chrono::Duration::seconds(15)),
        request_digest: format!("{key}-digest"),
        code_url: None,
        expires_at: None,
        call_back_url: None,
        refund_reserved: Money::new(0, Currency::Cad),
        refunded: Money::new(0, Currency::Cad),
        cancel_requested_at: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_order(&order).await?;
    let event = OrderEvent {
        at: now,
        operation: "pay".into(),
        outcome: "paid".into(),
        wallet_code: None,
        detail: Some(format!("{amount} with a wechatpay payment code")),
        latency_ms: 0,
        worker: None,
    };
    let mut paid = order.clone();
    paid.status = OrderStatus::Paid;
    paid.channel_ref = Some(format!("4200{key}"));
    paid.paid_at = Some(now);
    paid.cny_amount = Some(Money::new(amount.minor() * 52 / 10, Currency::Cny));
    paid.next_check_at = None;
    paid.updated_at = Utc::now();
    anyhow::ensure!(
        store
            .update_order_recorded(&paid, OrderStatus::Paying, None, Utc::now(), Some(&event))
            .await?,
        "the order was not written paid"
    );
    Ok(())
}

pub async fn run(
    work: &Path,
    database_url: Option<&str>,
    max_connections: u32,
    args: &BenchArgs,
) -> anyhow::Result<StorageFigures> {
    let (store, database) = match database_url {
        Some(url) => (Store::connect(url, max_connections).await?, "postgresql"),
        None => (
            Store::open_sqlite_with(&work.join("storage.db"), max_connections).await?,
            "sqlite",
        ),
    };
    store.migrate().await?;
    let engine = Engine::new(store.clone(), MasterKey::generate(), Arc::new(SystemClock))
        .await
        .context("the bench database was made with another master key: use an empty one")?;
    let merchant = engine
        .create_merchant(&MerchantRequest {
            name: "Bench Tea".into(),
            currency: Currency::Cad,
            time_zone: "America/Toronto"
                .parse()
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            id_prefix: "BN".into(),
        })
        .await?
        .merchant
        .id;
    let progress = super::report::progress(args);
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let mut tasks = Vec::new();
    for _ in 0..args.terminals {
        let store = store.clone();
        let merchant = merchant.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let result = one_payment(&store, &merchant).await;
                if began >= measure_from && Instant::now() <= end {
                    match result {
                        Ok(()) => latencies.push(began.elapsed()),
                        Err(e) => {
                            errors += 1;
                            tracing::debug!(error = %e, "storage bench payment failed");
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let ticker = {
        let progress = progress.clone();
        let duration = args.duration;
        tokio::spawn(async move {
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = Instant::now();
                if now >= measure_from {
                    let elapsed = (now - measure_from).min(duration);
                    progress.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(0));
                } else {
                    progress.set_message("warming up");
                }
            }
        })
    };
    let mut figures = StorageFigures {
        database,
        writers: args.terminals,
        measured: args.duration,
        payments: 0,
        latencies: Vec::new(),
        errors: 0,
        group_commits: None,
    };
    for task in tasks {
        let (latencies, errors) = task.await.context("a writer failed")?;
        figures.payments += latencies.len() as u64;
        figures.latencies.extend(latencies);
        figures.errors += errors;
    }
    let _ = ticker.await;
    progress.finish_and_clear();
    figures.group_commits = store.group_commits();
    store.close().await;
    Ok(figures)
}
