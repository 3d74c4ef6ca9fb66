//! Upgrades: a database written by the releases of every older schema, migrated to the newest,
//! keeps every row it had, and its ledger accounts for every cent (`Store::check_ledger`, as
//! `qrgate ledger check`). The fixtures and how to add the next are in
//! `crates/store/tests/upgrades/README.md`.
//!
//! For each fixture version `N` (the oldest supported first), a fresh database is taken up to
//! schema `N` one release at a time: at each fixture's version, the migrations up to it are
//! applied and then the fixture, as that release would have written it. Then the store's own
//! migration brings it to the newest schema.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use qrgate_domain::{
    Account, Currency, MerchantOrderId, Money, OrderStatus, PostingKind, Refund, RefundStatus,
};
use qrgate_store::{Backend, RefundReservation, Store};
use qrgate_testkit::TestDb;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{AnyPool, Row};

/// Columns a migration deliberately rewrites, as `(table, column)`: left out of the
/// comparison of the rows before and after. None so far.
const REWRITTEN_BY_MIGRATIONS: &[(&str, &str)] = &[];

/// Columns a migration deliberately drops, as `(table, column)`: left out of the comparison
/// too. 0009 replaced the per-operator PIN lock with attempts counted per typed ids
/// (`till_pin_attempts`, docs/TILL.md); the old counts are not carried over (a lock lasted
/// 20 minutes at most, and counting anew only helps the cashier).
const DROPPED_BY_MIGRATIONS: &[(&str, &str)] = &[
    ("operators", "pin_failures"),
    ("operators", "pin_failure_window_start"),
    ("operators", "pin_locked_until"),
];

struct Fixture {
    version: i64,
    file: String,
    sql: String,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The leading number of `NNNN_name.sql`.
fn version_of(file: &str) -> Option<i64> {
    let (number, rest) = file.split_once('_')?;
    (rest.ends_with(".sql") && number.len() == 4)
        .then(|| number.parse().ok())
        .flatten()
}

/// The fixtures, oldest first.
fn fixtures() -> Vec<Fixture> {
    let dir = manifest_dir().join("tests/upgrades");
    let mut fixtures: Vec<Fixture> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|file| file.ends_with(".sql"))
        .map(|file| Fixture {
            version: version_of(&file)
                .unwrap_or_else(|| panic!("{file}: fixtures are named NNNN_what.sql")),
            sql: std::fs::read_to_string(dir.join(&file)).unwrap(),
            file,
        })
        .collect();
    fixtures.sort_by_key(|f| f.version);
    for pair in fixtures.windows(2) {
        assert_ne!(
            pair[0].version, pair[1].version,
            "two fixtures for one schema"
        );
    }
    fixtures
}

fn migrations_dir(backend: Backend) -> PathBuf {
    manifest_dir().join("migrations").join(backend.name())
}

/// The fixture's SQL for `backend`: fixtures write byte strings as `X'…'` (SQLite's form),
/// which PostgreSQL spells `'\x…'::bytea`.
fn dialect(sql: &str, backend: Backend) -> String {
    if backend == Backend::Sqlite {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("X'") {
        let starts_word = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let hex_len = rest[at + 2..]
            .find('\'')
            .expect("an X'…' literal is closed");
        out.push_str(&rest[..at]);
        if starts_word {
            out.push_str("X'");
            rest = &rest[at + 2..];
            continue;
        }
        let hex = &rest[at + 2..at + 2 + hex_len];
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "X'{hex}'");
        out.push_str(&format!("'\\x{hex}'::bytea"));
        rest = &rest[at + 2 + hex_len + 1..];
    }
    out.push_str(rest);
    out
}

/// Applies this backend's migrations up to `version` only, as the release that shipped it did.
async fn migrate_to(pool: &AnyPool, backend: Backend, version: i64) {
    let migrator = Migrator::new(migrations_dir(backend)).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    conn.ensure_migrations_table().await.unwrap();
    let applied: Vec<i64> = conn
        .list_applied_migrations()
        .await
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    for m in migrator
        .iter()
        .filter(|m| m.version <= version && !applied.contains(&m.version))
    {
        conn.apply(m).await.unwrap();
    }
}

/// Every table's rows as text, by table: the columns and the rows ordered by all of them.
type Snapshot = BTreeMap<String, (Vec<String>, Vec<Vec<String>>)>;

async fn tables(pool: &AnyPool, backend: Backend) -> Vec<String> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '_sqlx_migrations' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT CAST(tablename AS TEXT) FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename <> '_sqlx_migrations' ORDER BY tablename"
        }
    };
    sqlx::query_scalar(sql).fetch_all(pool).await.unwrap()
}

async fn columns(pool: &AnyPool, backend: Backend, table: &str) -> Vec<String> {
    let sql = match backend {
        Backend::Sqlite => "SELECT name FROM pragma_table_info($1) ORDER BY cid",
        Backend::Postgres => {
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
        }
    };
    sqlx::query_scalar(sql)
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap()
}

fn cell(row: &AnyRow, i: usize) -> String {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return format!("{v:?}");
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return format!("{v:?}");
    }
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        return format!("{v:?}");
    }
    panic!("column {i} has a type the snapshot does not read")
}

async fn rows(pool: &AnyPool, table: &str, columns: &[String]) -> Vec<Vec<String>> {
    let list = columns.join(", ");
    sqlx::query(&format!("SELECT {list} FROM {table} ORDER BY {list}"))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| (0..columns.len()).map(|i| cell(row, i)).collect())
        .collect()
}

async fn snapshot(pool: &AnyPool, backend: Backend) -> Snapshot {
    let mut all = Snapshot::new();
    for table in tables(pool, backend).await {
        let columns: Vec<String> = columns(pool, backend, &table)
            .await
            .into_iter()
            .filter(|c| {
                let column = (table.as_str(), c.as_str());
                !REWRITTEN_BY_MIGRATIONS.contains(&column)
                    && !DROPPED_BY_MIGRATIONS.contains(&column)
            })
            .collect();
        let rows = rows(pool, &table, &columns).await;
        all.insert(table, (columns, rows));
    }
    all
}

/// Every table of `before` is still there with the same rows in the columns it had.
async fn assert_rows_kept(before: &Snapshot, pool: &AnyPool, from: i64) {
    for (table, (columns, old)) in before {
        let new = rows(pool, table, columns).await;
        assert_eq!(
            old.len(),
            new.len(),
            "upgrade from schema {from}: {table} had {} rows, has {}",
            old.len(),
            new.len()
        );
        for (a, b) in old.iter().zip(&new) {
            assert_eq!(
                a, b,
                "upgrade from schema {from}: a row of {table} changed (columns {columns:?})"
            );
        }
    }
}

async fn connect(url: &str) -> AnyPool {
    AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}

fn later() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

/// Takes `db` through the releases up to schema `last`, then to the newest, and checks it.
async fn upgrade_from(db: TestDb, last: i64) {
    let backend = db.store.backend();
    let pool = connect(&db.url).await;
    let chain: Vec<Fixture> = fixtures()
        .into_iter()
        .filter(|f| f.version <= last)
        .collect();
    for fixture in &chain {
        migrate_to(&pool, backend, fixture.version).await;
        let mut tx = pool.begin().await.unwrap();
        sqlx::raw_sql(&dialect(&fixture.sql, backend))
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{} on {}: {e}", fixture.file, backend.name()));
        tx.commit().await.unwrap();
    }
    assert_eq!(
        db.store.applied_schema_version().await.unwrap(),
        Some(last),
        "the database is at schema {last} before the upgrade"
    );
    let before = snapshot(&pool, backend).await;
    db.store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("upgrade from schema {last}: {e}"));
    assert_rows_kept(&before, &pool, last).await;
    let order_keys: Vec<String> = sqlx::query_scalar("SELECT key FROM orders ORDER BY key")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;

    assert_books_hold(&db.store, &order_keys, last).await;
    assert_everything_reads_back(&db.store).await;
    refund_what_is_left(&db.store, &order_keys).await;
    assert_books_hold(&db.store, &order_keys, last).await;
}

/// The ledger check is empty; every paid order has its payment posted for its amount and tip
/// (with the CNY its customer paid), and no other order moved money; each wallet's clearing
/// account holds what was paid through it less what was refunded.
async fn assert_books_hold(store: &Store, order_keys: &[String], from: i64) {
    assert_eq!(
        store.check_ledger().await.unwrap(),
        Vec::<String>::new(),
        "ledger check after the upgrade from schema {from}"
    );
    let mut owed: BTreeMap<(String, Currency), i64> = BTreeMap::new();
    for key in order_keys {
        let o = store.order(key).await.unwrap().unwrap();
        let entries = store.ledger_entries_of_order(key).await.unwrap();
        if o.status != OrderStatus::Paid {
            assert!(entries.is_empty(), "{key} is {} but moved money", o.status);
            continue;
        }
        let payment: Vec<_> = entries
            .iter()
            .filter(|e| e.kind == PostingKind::Payment)
            .collect();
        let leg = |account: &Account| payment.iter().find(|e| e.account == *account);
        let wallet = leg(&Account::WalletClearing(o.wallet))
            .unwrap_or_else(|| panic!("{key}: no payment on the wallet's account"));
        assert_eq!(
            wallet.amount,
            o.total(),
            "{key}: the wallet owes what was paid"
        );
        assert_eq!(
            wallet.payer_amount, o.cny_amount,
            "{key}: the customer's CNY"
        );
        let merchant = leg(&Account::MerchantPayable(o.merchant_id.clone()))
            .unwrap_or_else(|| panic!("{key}: no payment on the merchant's account"));
        let fee = leg(&Account::ProviderFees).map_or(0, |e| -e.amount.minor());
        assert!(fee >= 0, "{key}: a fee is income");
        assert_eq!(
            -merchant.amount.minor() + fee,
            o.total().minor(),
            "{key}: the merchant is owed the payment less the fee"
        );
        assert_eq!(
            payment.len(),
            if fee == 0 { 2 } else { 3 },
            "{key}: {payment:?}"
        );
        *owed
            .entry((
                Account::WalletClearing(o.wallet).to_string(),
                o.amount.currency(),
            ))
            .or_default() += o.total().minor() - o.refunded.minor();
    }
    let balances = store.ledger_balances().await.unwrap();
    // What the wallets kept as fees, by their bills, is not owed to the provider.
    for b in &balances {
        if let Account::WalletFees(w) = b.account {
            *owed
                .entry((Account::WalletClearing(w).to_string(), b.balance.currency()))
                .or_default() -= b.balance.minor();
        }
    }
    let clearing: BTreeMap<(String, Currency), i64> = balances
        .into_iter()
        .filter(|b| matches!(b.account, Account::WalletClearing(_)))
        .map(|b| {
            (
                (b.account.to_string(), b.balance.currency()),
                b.balance.minor(),
            )
        })
        .collect();
    assert_eq!(
        clearing, owed,
        "each wallet owes what was paid less refunds and its fees"
    );
}

/// Every row reads back through the store, whose row mapping checks the domain's rules.
async fn assert_everything_reads_back(store: &Store) {
    for m in store.merchants().await.unwrap() {
        assert!(store.merchant_keys(&m.id).await.unwrap().is_some());
        assert!(!store.shops(&m.id).await.unwrap().is_empty());
        assert!(!store.operators(&m.id).await.unwrap().is_empty());
        store.terminals(&m.id).await.unwrap();
    }
    store.fx_rates().await.unwrap();
    let callbacks = store.callbacks(None, 1000).await.unwrap();
    for cb in &callbacks {
        assert!(!store
            .callback_attempts(&cb.order_key)
            .await
            .unwrap()
            .is_empty());
    }
    assert_eq!(
        store.callback_records(None, 1000).await.unwrap().len(),
        callbacks.len()
    );
}

/// What an upgraded database is for: every paid order's remainder is refunded, posted, and a
/// payment refunded in full has given the customer back exactly the CNY paid.
async fn refund_what_is_left(store: &Store, order_keys: &[String]) {
    let now = later();
    for (n, key) in order_keys.iter().enumerate() {
        let o = store.order(key).await.unwrap().unwrap();
        if o.status != OrderStatus::Paid || o.refundable().minor() == 0 {
            continue;
        }
        let refund = Refund {
            key: format!("R{n:024}"),
            merchant_id: o.merchant_id.clone(),
            refund_order_id: MerchantOrderId::parse(&format!("UPGRADE-{n}")).unwrap(),
            order_key: o.key.clone(),
            wallet: o.wallet,
            amount: o.refundable(),
            cny_amount: None,
            status: RefundStatus::Processing,
            wallet_code: None,
            wallet_message: None,
            channel_ref: None,
            sends: 1,
            operator_id: None,
            approved_by: None,
            request_digest: format!("upgrade-{n}"),
            wallet_created_at: now,
            next_check_at: Some(now),
            finished_at: None,
            created_at: now,
            updated_at: now,
        };
        let reserved = store
            .insert_refund(
                &refund,
                "upgrade-test",
                now + chrono::Duration::minutes(1),
                now,
            )
            .await
            .unwrap();
        assert!(matches!(reserved, RefundReservation::Reserved), "{key}");
        let done = Refund {
            status: RefundStatus::Succeeded,
            channel_ref: Some(format!("wallet-refund-{n}")),
            ..refund
        };
        assert!(store
            .finish_refund(&done, Some("upgrade-test"), now)
            .await
            .unwrap()
            .is_some());
        let o = store.order(key).await.unwrap().unwrap();
        let entries = store.ledger_entries_of_order(key).await.unwrap();
        let on_wallet = |kind: PostingKind| {
            entries
                .iter()
                .filter(|e| e.kind == kind && e.account == Account::WalletClearing(o.wallet))
                .map(|e| e.amount.minor())
                .sum::<i64>()
        };
        assert_eq!(-on_wallet(PostingKind::Refund), o.refunded.minor(), "{key}");
        if o.refunded == o.total() {
            let cny: Option<i64> = entries
                .iter()
                .filter(|e| {
                    e.account == Account::WalletClearing(o.wallet)
                        && matches!(e.kind, PostingKind::Payment | PostingKind::Refund)
                })
                .map(|e| e.payer_amount.map(Money::minor))
                .sum();
            if o.cny_amount.is_some() {
                assert_eq!(
                    cny,
                    Some(0),
                    "{key}: the customer got back all the CNY paid"
                );
            }
        }
    }
}

#[test]
fn every_schema_has_its_fixture_up_to_the_newest() {
    let newest = |backend: Backend| {
        std::fs::read_dir(migrations_dir(backend))
            .unwrap()
            .filter_map(|e| version_of(&e.unwrap().file_name().into_string().unwrap()))
            .max()
            .unwrap()
    };
    let fixtures = fixtures();
    assert_eq!(newest(Backend::Sqlite), newest(Backend::Postgres));
    assert_eq!(
        fixtures.last().map(|f| f.version),
        Some(newest(Backend::Sqlite)),
        "the newest schema has no upgrade fixture: add crates/store/tests/upgrades/NNNN_what.sql \
         (see the README there)"
    );
    assert_eq!(
        fixtures[0].version, 1,
        "the oldest supported schema is 0001"
    );
}

#[test]
fn byte_strings_are_spelled_for_each_backend() {
    let sql = "VALUES (X'01AB', 'TAX'' X', MAX')";
    assert_eq!(dialect(sql, Backend::Sqlite), sql);
    assert_eq!(
        dialect("VALUES (X'01AB', 1)", Backend::Postgres),
        "VALUES ('\\x01AB'::bytea, 1)"
    );
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_of_each_older_schema_upgrades_keeping_every_row_and_cent() {
        for fixture in fixtures() {
            upgrade_from(TestDb::sqlite_unmigrated().await, fixture.version).await;
        }
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_of_each_older_schema_upgrades_keeping_every_row_and_cent() {
        for fixture in fixtures() {
            let Some(db) = TestDb::postgres_unmigrated(concat!(
                module_path!(),
                "::a_database_of_each_older_schema_upgrades_keeping_every_row_and_cent"
            ))
            .await
            else {
                return;
            };
            upgrade_from(db, fixture.version).await;
        }
    }
}
