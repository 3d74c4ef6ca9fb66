use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyPool, Executor};

use crate::writer::{ConnFuture, Writer};
use crate::StoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The gateway's storage. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// SQLite only: the group-commit writer the payment paths write through.
    writer: Option<Arc<Writer>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database file at `path`, in WAL mode.
    /// The directory must exist.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        Store::open_sqlite_with(path, 8).await
    }

    /// As [`Store::open_sqlite`], with a pool of `max_connections`.
    pub async fn open_sqlite_with(path: &Path, max_connections: u32) -> Result<Store, StoreError> {
        let path = path.to_str().ok_or_else(|| StoreError::Unavailable {
            message: format!("database path {} is not valid UTF-8", path.display()),
            source: None,
        })?;
        Store::connect(
            &format!("sqlite://{}?mode=rwc", encode_path(path)),
            max_connections,
        )
        .await
    }

    /// Connects to `url`: `postgres://…` or `sqlite://…`. Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Unavailable {
                message: "unsupported database URL: expected postgres://… or sqlite://…".into(),
                source: None,
            });
        };
        let options: AnyConnectOptions =
            url.parse()
                .map_err(|e: sqlx::Error| StoreError::Unavailable {
                    message: format!("invalid database URL: {e}"),
                    source: None,
                })?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; a writer waits up to 5 s
                        // for the lock instead of failing at once; FULL syncs every commit,
                        // so a key shown once or a payment recorded survives a power cut.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable {
                message: format!("cannot connect to the {} database: {e}", backend.name()),
                source: Some(e),
            })?;
        let writer = match backend {
            // One pooled connection, set up like the others, becomes the writer's own.
            Backend::Sqlite => {
                let conn = pool
                    .acquire()
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "database writer"))?
                    .detach();
                Some(Arc::new(Writer::start(conn, pool.clone())))
            }
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            backend,
            writer,
        })
    }

    /// Runs `write` as one transaction and returns its result once committed. On SQLite the
    /// write is committed together with the others waiting at the time (see `writer.rs`);
    /// on PostgreSQL it is a transaction of its own. `write` must not begin, commit or roll
    /// back, must not use a savepoint named `w` or `batch`, and must not call the store (it
    /// would wait for the writer it runs on). Once queued, the write is made even if the
    /// caller stops waiting.
    pub(crate) async fn write<T, F>(&self, what: &'static str, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut sqlx::AnyConnection) -> ConnFuture<'c, T> + Send + 'static,
    {
        if let Some(writer) = &self.writer {
            return writer.write(what, false, write).await;
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| StoreError::from_sqlx(e, what))?;
        let value = write(&mut tx).await?;
        tx.commit()
            .await
            .map_err(|e| StoreError::from_sqlx(e, what))?;
        Ok(value)
    }

    /// [`Store::write`] for a write of one statement, atomic by itself: on PostgreSQL it runs
    /// without `BEGIN`/`COMMIT` (two round trips fewer); on SQLite it joins a group commit.
    pub(crate) async fn write_statement<T, F>(
        &self,
        what: &'static str,
        write: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut sqlx::AnyConnection) -> ConnFuture<'c, T> + Send + 'static,
    {
        if let Some(writer) = &self.writer {
            return writer.write(what, true, write).await;
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| StoreError::from_sqlx(e, what))?;
        write(&mut conn).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// SQLite: how many group commits were made and how many writes they held, since the
    /// store was opened. `None` on PostgreSQL, where each write commits on its own.
    pub fn group_commits(&self) -> Option<(u64, u64)> {
        self.writer.as_ref().map(|writer| writer.counts())
    }

    /// Brings the schema up to date with the migrations embedded in this binary. Refuses a
    /// database that a newer qrgate has migrated further.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.map_err(|e| match e {
            MigrateError::VersionMissing(v) => StoreError::Migration(format!(
                "the database has migration {v}, which this qrgate binary does not know: \
                 it was used by a newer qrgate; run that version or a newer one"
            )),
            other => StoreError::Migration(other.to_string()),
        })
    }

    /// The schema version this binary expects (its newest embedded migration).
    pub fn schema_version(&self) -> i64 {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The newest migration applied to this database, or `None` for a database qrgate has
    /// never migrated. Reads only.
    pub async fn applied_schema_version(&self) -> Result<Option<i64>, StoreError> {
        let result = sqlx::query_scalar::<_, i64>(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE",
        )
        .fetch_optional(&self.pool)
        .await;
        match result {
            Ok(v) => Ok(v),
            // No migrations table: never migrated.
            Err(sqlx::Error::Database(_)) => Ok(None),
            Err(e) => Err(StoreError::from_sqlx(e, "schema version")),
        }
    }

    /// Whether the database answers a trivial query (for `/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        if self
            .writer
            .as_ref()
            .is_some_and(|writer| !writer.is_running())
        {
            return Err(StoreError::Unavailable {
                message: "the database writer has stopped".into(),
                source: None,
            });
        }
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_sqlx(e, "ping"))
    }

    /// Closes every connection; waits for those in use to be returned. On SQLite the writes
    /// already queued are committed first, and later ones are refused.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

/// Escapes the characters that would end or confuse the path part of a `sqlite://` URL.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}
