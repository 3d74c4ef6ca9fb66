//! Test helpers shared by the workspace's test suites (a dev-dependency only).
//!
//! - [`TestDb`]: a fresh, migrated database per test, on SQLite always and on PostgreSQL when
//!   one is reachable ([`postgres_admin_url`]). Suites write each test once and run it on both
//!   with [`backend_tests!`].
//! - [`pos`]: a POS client written from `ottpay.md` alone, deliberately not using
//!   `qrgate-ottpay`, so that a mistake shared by our codec and our server cannot pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod console;
pub mod pos;

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use qrgate_store::Store;
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

/// The environment variable naming a PostgreSQL server the tests may create databases on
/// (a URL whose user may `CREATE DATABASE`).
pub const PG_URL_VAR: &str = "QRGATE_TEST_DATABASE_URL";
/// When set to `1`, a PostgreSQL test that cannot find a server fails instead of skipping.
pub const PG_REQUIRED_VAR: &str = "QRGATE_TEST_REQUIRE_POSTGRES";
/// Tried when [`PG_URL_VAR`] is unset: the usual local server with trust authentication.
const PG_DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Prints a line that `cargo test` does not capture, so a skip is visible in the run's output.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The PostgreSQL admin URL for tests, or `None` (after saying so) when there is none.
/// Panics when [`PG_REQUIRED_VAR`] is `1` and no server answers.
pub async fn postgres_admin_url(test: &str) -> Option<String> {
    static PROBE: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();
    let found = PROBE
        .get_or_init(|| async {
            let url = std::env::var(PG_URL_VAR).unwrap_or_else(|_| PG_DEFAULT_URL.to_owned());
            let probe =
                tokio::time::timeout(std::time::Duration::from_secs(3), Store::connect(&url, 1))
                    .await;
            match probe {
                Ok(Ok(store)) => {
                    store.close().await;
                    Some(url)
                }
                _ => None,
            }
        })
        .await
        .clone();
    if found.is_none() {
        if std::env::var(PG_REQUIRED_VAR).as_deref() == Ok("1") {
            panic!(
                "{test}: PostgreSQL is required ({PG_REQUIRED_VAR}=1) but none answers at \
                 {PG_URL_VAR} or {PG_DEFAULT_URL}"
            );
        }
        say(&format!(
            "SKIPPED {test}: no PostgreSQL reachable (set {PG_URL_VAR}; {PG_REQUIRED_VAR}=1 makes this a failure)"
        ));
    }
    found
}

/// A database for one test. Dropping it removes the SQLite files; PostgreSQL databases are
/// dropped by the next test process (see [`TestDb::postgres`]).
pub struct TestDb {
    pub url: String,
    pub store: Store,
    /// Kept so the SQLite directory lives as long as the test.
    pub dir: Option<TempDir>,
}

impl TestDb {
    /// A migrated SQLite database in a fresh temporary directory.
    pub async fn sqlite() -> TestDb {
        let db = TestDb::sqlite_unmigrated().await;
        db.store.migrate().await.unwrap();
        db
    }

    /// An empty SQLite database, not migrated (for tests of upgrades from older schemas).
    pub async fn sqlite_unmigrated() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qrgate.db");
        let store = Store::open_sqlite(&path).await.unwrap();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        TestDb {
            url,
            store,
            dir: Some(dir),
        }
    }

    /// A migrated database of its own on the test PostgreSQL server, or `None` when there is
    /// no server (the skip has been reported). Databases are named `qrgate_t_<pid>_<n>`; the
    /// first call in a process drops those left by processes that are gone.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let db = TestDb::postgres_unmigrated(test).await?;
        db.store.migrate().await.unwrap();
        Some(db)
    }

    /// As [`TestDb::postgres`], but an empty database, not migrated.
    pub async fn postgres_unmigrated(test: &str) -> Option<TestDb> {
        let admin_url = postgres_admin_url(test).await?;
        static CLEANED: OnceLock<()> = OnceLock::new();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        if CLEANED.set(()).is_ok() {
            drop_stale_databases(&mut admin).await;
        }
        let name = format!(
            "qrgate_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let _ = admin.close().await;
        let url = replace_database(&admin_url, &name);
        let store = Store::connect(&url, 5).await.unwrap();
        Some(TestDb {
            url,
            store,
            dir: None,
        })
    }
}

async fn drop_stale_databases(admin: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'qrgate_t_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Writes each test once and runs it on SQLite and on PostgreSQL: for every
/// `async fn name(db: TestDb)` listed, generates `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::TestDb::postgres(concat!(module_path!(), "::", stringify!($name))).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            super::replace_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            super::replace_database("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }
}
