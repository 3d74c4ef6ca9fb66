//! The console's orders list and export on a generated database of a million orders (one
//! merchant, a year of sales), on SQLite or, with `QRGATE_BENCH_DATABASE_URL`, PostgreSQL.
//! Ignored by default; figures are printed, never asserted (docs/BENCHMARKS.md):
//!
//! ```sh
//! cargo test --release -p qrgate-console --test bench -- --ignored --nocapture
//! QRGATE_BENCH_ORDERS=100000 cargo test --release -p qrgate-console --test bench -- --ignored --nocapture
//! ```
// Byte and row counts become floats only to print rates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::as_conversions
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use qrgate_console::{ConsoleConfig, ConsoleState};
use qrgate_domain::{ConsoleRole, Currency, OrderStatus, Wallet};
use qrgate_engine::{Actor, Engine, MasterKey, MerchantRequest, OrderQuery, SystemClock};
use qrgate_store::Store;
use sqlx::any::AnyPoolOptions;

const PASSWORD: &str = "bench password 1";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn timed<F, Fut, T>(runs: usize, mut f: F) -> (Duration, Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f().await);
        times.push(t.elapsed());
    }
    let max = *times.iter().max().unwrap();
    (median(times), max, last.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "generates a million orders: run with --ignored --nocapture (docs/BENCHMARKS.md)"]
async fn orders_list_and_export_at_a_million_orders() {
    let n: i64 = std::env::var("QRGATE_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (url, store) = match std::env::var("QRGATE_BENCH_DATABASE_URL") {
        Ok(url) => (url.clone(), Store::connect(&url, 8).await.unwrap()),
        Err(_) => {
            let path = dir.path().join("bench.db");
            (
                format!("sqlite://{}?mode=rwc", path.display()),
                Store::open_sqlite(&path).await.unwrap(),
            )
        }
    };
    store.migrate().await.unwrap();
    let backend = store.backend();
    let engine = Engine::new(store.clone(), MasterKey::generate(), Arc::new(SystemClock))
        .await
        .unwrap();
    let created = engine
        .create_merchant(&MerchantRequest {
            name: "Busy Bakery".into(),
            currency: Currency::Cad,
            time_zone: "America/Toronto".parse().unwrap(),
            id_prefix: "ON".into(),
        })
        .await
        .unwrap();
    let m = created.merchant;
    for i in 1..=8 {
        engine
            .add_terminal(
                &m.id,
                &qrgate_domain::TerminalNo::parse(&format!("TILL-{i}")).unwrap(),
                Some(&created.shop.id),
                None,
            )
            .await
            .unwrap();
    }

    // Generate: one statement per 100,000 orders, spread evenly over the last 365 days.
    let generate = Instant::now();
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let span_ms: i64 = 365 * 24 * 3600 * 1000;
    let step = (span_ms / n).max(1);
    let chunk = 100_000i64;
    let mut done = 0i64;
    while done < n {
        let count = chunk.min(n - done);
        let series = match backend {
            qrgate_store::Backend::Sqlite => format!(
                "WITH RECURSIVE seq(i) AS (SELECT {s} UNION ALL SELECT i + 1 FROM seq WHERE i < {e}) ",
                s = done + 1,
                e = done + count
            ),
            qrgate_store::Backend::Postgres => format!(
                "WITH seq(i) AS (SELECT generate_series({s}::BIGINT, {e}::BIGINT)) ",
                s = done + 1,
                e = done + count
            ),
        };
        let sql = format!(
            "{series}INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, \
             amount, tip, cny_amount, rate_e8, operator_id, terminal_no, sale_num, status, \
             wallet_code, wallet_message, channel_ref, buyer, paid_at, wallet_created_at, \
             next_check_at, claimed_by, claimed_until, request_digest, created_at, updated_at, \
             code_url, expires_at, call_back_url, refund_reserved, refunded) \
             SELECT 'Q' || CAST(1000000000000 + i AS TEXT) || 'BENCHBENCHBE', '{mid}', \
             'B' || CAST(i AS TEXT), 'passive', \
             CASE i % 3 WHEN 0 THEN 'wechatpay' WHEN 1 THEN 'alipay' ELSE 'unionpay' END, \
             'CAD', 100 + (i % 9000), 0, 500 + (i % 45000), NULL, '0000000001', \
             'TILL-' || CAST(1 + i % 8 AS TEXT), NULL, \
             CASE WHEN i % 100 < 90 THEN 'paid' WHEN i % 100 < 95 THEN 'failed' \
                  WHEN i % 100 < 98 THEN 'closed' ELSE 'reversed' END, \
             NULL, NULL, 'W' || CAST(i AS TEXT), NULL, NULL, {start} + i * {step}, NULL, NULL, \
             NULL, 'd' || CAST(i AS TEXT), {start} + i * {step}, {start} + i * {step}, NULL, \
             NULL, NULL, 0, 0 FROM seq",
            mid = m.id,
            start = now_ms - span_ms,
        );
        sqlx::query(&sql).execute(&pool).await.unwrap();
        done += count;
    }
    if backend == qrgate_store::Backend::Postgres {
        sqlx::query("ANALYZE orders").execute(&pool).await.unwrap();
    } else {
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    }
    let generated = generate.elapsed();

    let (owner, link) = engine
        .create_console_user(
            &Actor::cli(),
            "owner@busy.example",
            ConsoleRole::MerchantOwner,
            Some(&m.id),
        )
        .await
        .unwrap();
    engine
        .set_password_with_link(&link.token, PASSWORD, "bench")
        .await
        .unwrap();
    let actor = Actor::console(owner, "bench");

    let all = OrderQuery::default();
    let (first, first_max, page) =
        timed(20, || engine.console_orders(&actor, &m.id, &all, None, 50)).await;
    let page = page.unwrap();
    assert_eq!(page.orders.len(), 50);
    let filtered_q = OrderQuery {
        statuses: vec![OrderStatus::Failed],
        wallet: Some(Wallet::Alipay),
        ..OrderQuery::default()
    };
    let (filtered, filtered_max, fpage) = timed(20, || {
        engine.console_orders(&actor, &m.id, &filtered_q, None, 50)
    })
    .await;
    assert_eq!(fpage.unwrap().orders.len(), 50);
    let rare_q = OrderQuery {
        statuses: vec![OrderStatus::Reversed],
        terminal_no: Some(qrgate_domain::TerminalNo::parse("TILL-3").unwrap()),
        ..OrderQuery::default()
    };
    let (rare, rare_max, _) = timed(20, || {
        engine.console_orders(&actor, &m.id, &rare_q, None, 50)
    })
    .await;
    // A page in the middle: follow a cursor taken half-way through the year.
    let middle = qrgate_engine::PageCursor {
        created_at: chrono::DateTime::from_timestamp_millis(now_ms - span_ms / 2).unwrap(),
        key: "Z".into(),
    };
    let (deep, deep_max, _) = timed(20, || {
        engine.console_orders(&actor, &m.id, &all, Some(&middle), 50)
    })
    .await;
    let search_q = OrderQuery {
        search: Some(format!("W{}", n / 3)),
        ..OrderQuery::default()
    };
    let (search, search_max, spage) = timed(20, || {
        engine.console_orders(&actor, &m.id, &search_q, None, 50)
    })
    .await;
    assert_eq!(spage.unwrap().orders.len(), 1);

    // The export through HTTP, as a browser downloads it: the whole year, streamed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = qrgate_http::AppState::new(engine.clone(), qrgate_http::HttpConfig::default());
    let console =
        qrgate_console::router(ConsoleState::new(engine.clone(), ConsoleConfig::default()));
    tokio::spawn(qrgate_http::serve_with(
        listener,
        state,
        console,
        std::future::pending(),
    ));
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{addr}");
    let r = qrgate_testkit::console::console_sign_in(&http, &base, "owner@busy.example", PASSWORD)
        .await;
    assert_eq!(r.status(), 303);
    let rss_before = rss_kib();
    let export = Instant::now();
    let r = http
        .get(format!("http://{addr}/console/m/{}/orders.csv", m.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let (mut lines, mut bytes, mut peak) = (0u64, 0u64, rss_before);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        peak = peak.max(rss_kib());
    }
    let exported = export.elapsed();
    assert_eq!(lines, u64::try_from(n).unwrap() + 1, "header + every order");

    println!(
        "\nconsole orders benchmark: {} orders of one merchant over 365 days, {}",
        n,
        backend.name()
    );
    println!("  generated in {:.1} s", generated.as_secs_f64());
    println!(
        "  first page (50, no filter)              median {:>8.2} ms   max {:>8.2} ms",
        ms(first),
        ms(first_max)
    );
    println!(
        "  filtered page (failed, Alipay; 50)      median {:>8.2} ms   max {:>8.2} ms",
        ms(filtered),
        ms(filtered_max)
    );
    println!(
        "  rare filter (reversed, one terminal)    median {:>8.2} ms   max {:>8.2} ms",
        ms(rare),
        ms(rare_max)
    );
    println!(
        "  page half a year deep (cursor)          median {:>8.2} ms   max {:>8.2} ms",
        ms(deep),
        ms(deep_max)
    );
    println!(
        "  search by wallet reference              median {:>8.2} ms   max {:>8.2} ms",
        ms(search),
        ms(search_max)
    );
    println!(
        "  export (HTTP, streamed): {} rows, {:.1} MiB in {:.1} s = {:.0} rows/s; process RSS {} -> peak {} MiB",
        lines - 1,
        bytes as f64 / 1048576.0,
        exported.as_secs_f64(),
        (lines - 1) as f64 / exported.as_secs_f64(),
        rss_before / 1024,
        peak / 1024
    );
    store.close().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// This process's resident memory in KiB (Linux), 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
