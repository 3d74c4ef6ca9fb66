//! Group commit for SQLite: one writer task, one connection, many writes per commit.
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` every commit waits for an
//! fsync. When each request committed on its own pooled connection, concurrent writers
//! queued on SQLite's lock (whose busy handler sleeps and retries) and the storage did about
//! one fsync per write. Here the writes of the busy paths (payments, refunds, notifications,
//! claims, till sessions) are sent to a single writer task,
//! which takes every write waiting when it starts a transaction (up to [`MAX_BATCH`]), runs
//! each inside its own savepoint, and commits them together: one fsync for the batch.
//!
//! Each write behaves as its own transaction: a write that fails (or panics) is rolled back
//! to its savepoint and gets its error, the others go on. A write of one statement needs no
//! savepoint: SQLite undoes a statement refused by a constraint alone, and an error of ours
//! (no row, a bad value) changes nothing; any other failure of it rolls the whole batch back,
//! as SQLite itself may have. A caller hears `Ok` only after the commit that holds its write,
//! so nothing is acknowledged that a crash could lose, and a crash before the commit loses
//! the whole batch, acknowledged to nobody; when a batch does not commit, every caller hears
//! it, even one whose own write had been refused (the refusal may have been caused by a write
//! that is now undone). A write sees the earlier writes of its batch, as it would have had
//! they committed just before it. A write queued is made even if its caller goes away.
//!
//! PostgreSQL needs none of this (its own group commit works across connections): there a
//! write is a plain transaction on the pool.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use std::pin::Pin;

use sqlx::{AnyConnection, AnyPool, Executor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::StoreError;

/// A future borrowing the connection it runs on.
pub(crate) type ConnFuture<'c, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;

/// The most writes committed together. Bounds the time a write waits for the others of its
/// batch, and the work lost to a failed commit.
const MAX_BATCH: usize = 128;

/// How many writes may wait for the writer before senders wait too.
const QUEUE: usize = 1024;

/// What the writer does with a write once its batch's commit is known: hand the caller its
/// result (`Err` with why its write did not commit).
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A write, type-erased. Given the writer's connection, it runs and says whether it
/// succeeded, with what to do once the batch is committed (or not); given an error instead,
/// it did not run and tells its caller why.
type Job = Box<dyn for<'c> FnOnce(Result<&'c mut AnyConnection, String>) -> JobFuture<'c> + Send>;
type JobFuture<'c> = Pin<Box<dyn Future<Output = (Ran, Finish)> + Send + 'c>>;

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Succeeded,
    /// Refused without harm to the transaction: a constraint (which SQLite undoes for the
    /// statement alone), or an error of ours before or after the statement (a row not
    /// found, a value that does not decode).
    Refused,
    Failed,
}

/// Whether a write's error leaves the batch's transaction as it was, apart from the failed
/// statement: SQLite undoes a statement refused by a constraint (primary code 19) alone;
/// errors that are not the database's (no row, a bad value) change nothing. Anything else
/// (a full disk, an I/O error, the database busy) may have rolled back more.
fn statement_level(error: &StoreError) -> bool {
    match error {
        StoreError::Conflict { .. }
        | StoreError::NotFound(_)
        | StoreError::Corrupt(_)
        | StoreError::Invalid(_)
        | StoreError::Exhausted(_) => true,
        StoreError::Unavailable { source, .. } => match source {
            Some(sqlx::Error::Database(db)) => db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| code & 0xff == 19),
            Some(sqlx::Error::RowNotFound | sqlx::Error::ColumnDecode { .. }) => true,
            _ => false,
        },
        StoreError::Migration(_) => false,
    }
}

/// A write waiting for the writer.
struct Queued {
    job: Job,
    /// One statement, which SQLite makes atomic by itself: no savepoint needed around it
    /// (two round trips fewer), since a statement refused by a constraint is undone alone
    /// and the transaction goes on.
    single_statement: bool,
}

/// The handle every clone of a SQLite [`crate::Store`] shares.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Queued>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    counts: Arc<Counts>,
}

/// How many batches were committed, holding how many writes: their ratio is what group
/// commit saves (reported by `qrgate bench --storage`).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    commits: AtomicU64,
    writes: AtomicU64,
    /// Times the writer took a fresh connection after a batch went wrong.
    reconnects: AtomicU64,
}

impl Writer {
    /// Starts the writer task on `conn`, a connection set up like the pool's; `pool` gives it
    /// a fresh one whenever a batch goes wrong.
    pub(crate) fn start(conn: AnyConnection, pool: AnyPool) -> Writer {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(run(conn, pool, rx, stopped, counts.clone()));
        Writer {
            jobs,
            stop,
            task: Mutex::new(Some(task)),
            counts,
        }
    }

    /// Whether the writer takes writes (false once closed, or if its task ended).
    pub(crate) fn is_running(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// Batches committed and the writes they held, since the start.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.commits.load(Ordering::Relaxed),
            self.counts.writes.load(Ordering::Relaxed),
        )
    }

    /// Takes no more writes, commits those already queued, and closes the connection.
    pub(crate) async fn close(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Runs `write` in the next batch and returns its result once that batch is committed.
    /// `single_statement`: `write` runs one statement (see [`Queued`]).
    pub(crate) async fn write<T, F>(
        &self,
        what: &'static str,
        single_statement: bool,
        write: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> ConnFuture<'c, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let unavailable = move |message: String| StoreError::Unavailable {
            message: format!("{what}: {message}"),
            source: None,
        };
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let conn = match conn {
                    Ok(conn) => conn,
                    Err(message) => {
                        // The caller may have gone (its request was dropped): nothing to do.
                        let _ = reply.send(Err(unavailable(message)));
                        let nothing: Finish = Box::new(|_| {});
                        return (Ran::Failed, nothing);
                    }
                };
                // A panic in a write must not take the writer down with it: it counts as a
                // failure (its statements may have run half-way), undone with its savepoint,
                // or, for a one-statement write, with the whole batch.
                let outcome = match AssertUnwindSafe(write(conn)).catch_unwind().await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        tracing::error!(write = what, "a database write panicked");
                        let _ = reply.send(Err(unavailable("the write panicked".into())));
                        let nothing: Finish = Box::new(|_| {});
                        return (Ran::Failed, nothing);
                    }
                };
                let ran = match &outcome {
                    Ok(_) => Ran::Succeeded,
                    Err(e) if statement_level(e) => Ran::Refused,
                    Err(_) => Ran::Failed,
                };
                let finish: Finish = Box::new(move |committed| {
                    let result = match (outcome, committed) {
                        (Ok(value), Ok(())) => Ok(value),
                        (Err(e), Ok(())) => Err(e),
                        // The batch did not commit: whatever this write found (a conflict
                        // with another write of the batch, say) may not be so any more.
                        (Ok(_), Err(message)) => {
                            Err(unavailable(format!("the commit failed: {message}")))
                        }
                        (Err(e), Err(message)) => Err(unavailable(format!(
                            "{e}; then its batch did not commit: {message}"
                        ))),
                    };
                    let _ = reply.send(result);
                });
                (ran, finish)
            })
        });
        let gone = || StoreError::Unavailable {
            message: format!("{what}: the database writer has stopped"),
            source: None,
        };
        let queued = Queued {
            job,
            single_statement,
        };
        self.jobs.send(queued).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn run(
    mut conn: AnyConnection,
    pool: AnyPool,
    mut rx: mpsc::Receiver<Queued>,
    mut stop: watch::Receiver<bool>,
    counts: Arc<Counts>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    break;
                }
                let finishes = commit_batch(&mut conn, &mut batch).await;
                let written = finishes
                    .iter()
                    .filter(|done| done.made && done.told.is_ok())
                    .count();
                if written > 0 {
                    counts.commits.fetch_add(1, Ordering::Relaxed);
                    counts.writes.fetch_add(u64::try_from(written).unwrap_or(u64::MAX), Ordering::Relaxed);
                }
                // A write told of a failure of its transaction (not of its own refusal):
                // the connection may be left in a state of its own (a transaction open after
                // a failed rollback). Start again on a fresh one; the old one, closed, rolls
                // back whatever it still had.
                let troubled = finishes.iter().any(|done| done.told.is_err());
                for done in finishes {
                    (done.finish)(done.told);
                }
                if troubled {
                    match pool.acquire().await {
                        Ok(fresh) => {
                            let old = std::mem::replace(&mut conn, fresh.detach());
                            let _ = sqlx::Connection::close(old).await;
                            counts.reconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("the database writer took a fresh connection after a failed batch");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the database writer cannot get a fresh connection");
                        }
                    }
                }
            }
            // Closing: refuse new writes; those queued are still received, then `recv_many`
            // gives 0 and the loop ends.
            _ = stop.changed(), if !stopping => {
                stopping = true;
                rx.close();
            }
        }
    }
    // Closed, or every store handle is gone: let SQLite checkpoint and close the file.
    let _ = sqlx::Connection::close(conn).await;
}

/// Runs the writes of `batch` (emptying it) in one transaction. Returns each write's
/// finisher with what its caller must be told about the commit.
async fn commit_batch(conn: &mut AnyConnection, batch: &mut Vec<Queued>) -> Vec<Done> {
    if batch.len() == 1 {
        if let Some(queued) = batch.pop() {
            return vec![commit_alone(conn, queued).await];
        }
    }
    let mut finishes = Vec::with_capacity(batch.len());
    if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
        let message = e.to_string();
        tracing::warn!(error = %message, writes = batch.len(), "cannot start a write batch");
        // Nothing runs: each caller hears the error, its write not made.
        for queued in batch.drain(..) {
            let _ = (queued.job)(Err(message.clone())).await;
        }
        return finishes;
    }
    // Set when the transaction can no longer be trusted (a savepoint would not roll back):
    // the rest of the batch does not run, and the batch is rolled back.
    let mut broken: Option<String> = None;
    // Whether the last write's savepoint is still to be released. Its `RELEASE` travels with
    // the next statement the writer sends (the next write's `SAVEPOINT`, or the `COMMIT`):
    // one round trip fewer per write. If it fails, the transaction is not what it should be
    // and the whole batch is rolled back.
    let mut release_pending = false;
    for Queued {
        job,
        single_statement,
    } in batch.drain(..)
    {
        if let Some(message) = &broken {
            let _ = job(Err(message.clone())).await;
            continue;
        }
        if single_statement {
            if release_pending {
                release_pending = false;
                if let Err(e) = conn.execute("RELEASE w").await {
                    broken = Some(e.to_string());
                    let _ = job(Err(e.to_string())).await;
                    continue;
                }
            }
            let (ran, finish) = job(Ok(&mut *conn)).await;
            if ran == Ran::Failed {
                // Not a constraint nor an error of ours: SQLite may have rolled back more than
                // the statement (a full disk, an I/O error). Trust nothing of this batch.
                broken = Some("a write failed: the batch is rolled back".into());
            }
            finishes.push(Done::new(finish, Ok(()), ran == Ran::Succeeded));
            continue;
        }
        let savepoint = if release_pending {
            "RELEASE w; SAVEPOINT w"
        } else {
            "SAVEPOINT w"
        };
        release_pending = false;
        if let Err(e) = conn.execute(savepoint).await {
            broken = Some(e.to_string());
            let _ = job(Err(e.to_string())).await;
            continue;
        }
        let (ran, finish) = job(Ok(&mut *conn)).await;
        if ran == Ran::Succeeded {
            release_pending = true;
        } else if let Err(undone) = undo(conn).await {
            // The write failed and could not be undone alone.
            broken = Some(undone);
        }
        // A failed write's caller hears its own error whatever the commit does.
        finishes.push(Done::new(finish, Ok(()), ran == Ran::Succeeded));
    }
    let committed = match &broken {
        Some(message) => {
            tracing::error!(error = %message, writes = finishes.len(), "a write batch is rolled back");
            let _ = conn.execute("ROLLBACK").await;
            Err(message.clone())
        }
        // `execute` stops at the first error: no commit if the release fails.
        None => match conn
            .execute(if release_pending {
                "RELEASE w; COMMIT"
            } else {
                "COMMIT"
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = e.to_string();
                tracing::error!(error = %message, writes = finishes.len(), "a write batch did not commit");
                let _ = conn.execute("ROLLBACK").await;
                Err(message)
            }
        },
    };
    finishes
        .into_iter()
        .map(|done| Done {
            told: done.told.and(committed.clone()),
            ..done
        })
        .collect()
}

/// A write run: what to tell its caller once the commit is known, whether the commit held it,
/// and whether the write itself succeeded (for the counts).
struct Done {
    finish: Finish,
    told: Result<(), String>,
    made: bool,
}

impl Done {
    fn new(finish: Finish, told: Result<(), String>, made: bool) -> Done {
        Done { finish, told, made }
    }
}

/// A write with no other waiting (light load): committed on its own, without the batch's
/// savepoints. One statement runs in SQLite's autocommit mode (itself a durable transaction:
/// one round trip instead of three); more run between `BEGIN IMMEDIATE` and `COMMIT`, or
/// `ROLLBACK` if the write fails.
async fn commit_alone(conn: &mut AnyConnection, queued: Queued) -> Done {
    let Queued {
        job,
        single_statement,
    } = queued;
    if single_statement {
        // Failed or not, nothing is left open: a failed statement is undone whole.
        let (ran, finish) = job(Ok(&mut *conn)).await;
        return Done::new(finish, Ok(()), ran == Ran::Succeeded);
    }
    if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
        let message = e.to_string();
        tracing::warn!(error = %message, "cannot start a write");
        // A transaction may be open after all: leave none behind.
        let _ = conn.execute("ROLLBACK").await;
        let (_, finish) = job(Err(message.clone())).await;
        return Done::new(finish, Err(message), false);
    }
    let (ran, finish) = job(Ok(&mut *conn)).await;
    if ran != Ran::Succeeded {
        // Its caller hears its own error; nothing of it stays.
        if let Err(e) = conn.execute("ROLLBACK").await {
            tracing::error!(error = %e, "cannot roll a failed write back");
        }
        return Done::new(finish, Ok(()), false);
    }
    match conn.execute("COMMIT").await {
        Ok(_) => Done::new(finish, Ok(()), true),
        Err(e) => {
            // Also when the write ended the transaction itself (a bug): never `Ok` for
            // what may not be stored.
            let message = e.to_string();
            tracing::error!(error = %message, "a write did not commit");
            let _ = conn.execute("ROLLBACK").await;
            Done::new(finish, Err(message), true)
        }
    }
}

/// Rolls the current write back to its savepoint. `Err` when it could not be: SQLite may
/// have rolled back the whole transaction after a serious error (a full disk, an I/O error).
async fn undo(conn: &mut AnyConnection) -> Result<(), String> {
    // `execute` stops at the first error: no release of a savepoint not rolled back to.
    conn.execute("ROLLBACK TO w; RELEASE w")
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot roll a failed write back: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use sqlx::{Connection, Row};

    struct TempDb(std::path::PathBuf);

    impl Drop for TempDb {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }

    async fn open(name: &str) -> (TempDb, AnyConnection, AnyConnection, AnyPool) {
        sqlx::any::install_default_drivers();
        let path = std::env::temp_dir().join(format!(
            "qrgate-writer-{name}-{}-{}.db",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut a = AnyConnection::connect(&url).await.unwrap();
        a.execute(
            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
             CREATE TABLE t (k TEXT PRIMARY KEY CHECK (length(k) < 10))",
        )
        .await
        .unwrap();
        let b = AnyConnection::connect(&url).await.unwrap();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        (TempDb(path), a, b, pool)
    }

    /// A writer whose task is not started yet, so that writes can queue first.
    struct Paused {
        conn: AnyConnection,
        pool: AnyPool,
        rx: mpsc::Receiver<Queued>,
        stopped: watch::Receiver<bool>,
        counts: Arc<Counts>,
    }

    impl Paused {
        /// Waits until `n` writes are in the queue (not merely reserved a place in it).
        async fn wait_queued(&self, n: usize) {
            while self.rx.len() < n {
                tokio::task::yield_now().await;
            }
        }

        fn start(self) {
            tokio::spawn(run(
                self.conn,
                self.pool,
                self.rx,
                self.stopped,
                self.counts,
            ));
        }
    }

    fn paused(conn: AnyConnection, pool: AnyPool) -> (Writer, Paused) {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let writer = Writer {
            jobs,
            stop,
            task: Mutex::new(None),
            counts: counts.clone(),
        };
        let queue = Paused {
            conn,
            pool,
            rx,
            stopped,
            counts,
        };
        (writer, queue)
    }

    fn insert(k: String) -> impl for<'c> FnOnce(&'c mut AnyConnection) -> ConnFuture<'c, ()> {
        move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (k) VALUES ($1)")
                    .bind(k)
                    .execute(conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| StoreError::from_sqlx(e, "t"))
            })
        }
    }

    async fn keys(conn: &mut AnyConnection) -> Vec<String> {
        sqlx::query("SELECT k FROM t ORDER BY k")
            .fetch_all(conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("k"))
            .collect()
    }

    /// Sends `write` from a task of its own; its result comes back on the handle.
    fn send<T, F>(
        writer: &Arc<Writer>,
        single_statement: bool,
        write: F,
    ) -> JoinHandle<Result<T, StoreError>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> ConnFuture<'c, T> + Send + 'static,
    {
        let writer = writer.clone();
        tokio::spawn(async move { writer.write("t", single_statement, write).await })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_writes_commit_together_and_a_failing_one_spoils_none() {
        let (_db, conn, mut reader, pool) = open("batch").await;
        let (writer, queue) = paused(conn, pool);
        let writer = Arc::new(writer);
        let mut handles = Vec::new();
        // Half as single statements (no savepoint), half in savepoints.
        for n in 0..50 {
            handles.push(send(&writer, n % 2 == 0, insert(format!("k{n:02}"))));
        }
        // The same keys again: refused by the primary key, inside the same batch, alone.
        handles.push(send(&writer, true, insert("k07".into())));
        handles.push(send(&writer, false, insert("k08".into())));
        // Two statements, the second refused (by a key there before the batch, whatever the
        // order the writes are queued in): the first is undone with it.
        insert("pre".into())(&mut reader).await.unwrap();
        handles.push(send(
            &writer,
            false,
            |conn: &mut AnyConnection| -> ConnFuture<'_, ()> {
                Box::pin(async move {
                    insert("k99".into())(&mut *conn).await?;
                    insert("pre".into())(conn).await
                })
            },
        ));
        queue.wait_queued(53).await;
        queue.start();
        let mut conflicts = 0;
        for handle in handles {
            match handle.await.unwrap() {
                Ok(()) => {}
                Err(StoreError::Conflict { what: "t" }) => conflicts += 1,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(conflicts, 3);
        let mut expected: Vec<String> = (0..50).map(|n| format!("k{n:02}")).collect();
        expected.push("pre".into());
        assert_eq!(keys(&mut reader).await, expected);
        assert_eq!(
            writer.counts(),
            (1, 50),
            "one commit for the 50 writes made"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_breaks_the_transaction_leaves_nothing_acknowledged() {
        let (_db, conn, mut reader, pool) = open("broken").await;
        let (writer, queue) = paused(conn, pool);
        let writer = Arc::new(writer);
        let before = send(&writer, true, insert("before".into()));
        queue.wait_queued(1).await;
        // Refused because of `before`, which will not be committed: told so, not "conflict".
        let twin = send(&writer, true, insert("before".into()));
        queue.wait_queued(2).await;
        // A write that ends the batch's transaction under the writer's feet.
        let rogue = send(
            &writer,
            false,
            |conn: &mut AnyConnection| -> ConnFuture<'_, ()> {
                Box::pin(async move {
                    conn.execute("ROLLBACK")
                        .await
                        .map(|_| ())
                        .map_err(|e| StoreError::from_sqlx(e, "t"))
                })
            },
        );
        queue.wait_queued(3).await;
        let after = send(&writer, true, insert("after".into()));
        queue.wait_queued(4).await;
        queue.start();
        for handle in [before, twin, rogue, after] {
            assert!(matches!(
                handle.await.unwrap(),
                Err(StoreError::Unavailable { .. })
            ));
        }
        assert!(keys(&mut reader).await.is_empty(), "nothing was written");
        // The writer goes on with the next batch, on a fresh connection.
        writer
            .write("t", true, insert("next".into()))
            .await
            .unwrap();
        assert_eq!(keys(&mut reader).await, ["next"]);
        assert_eq!(writer.counts.reconnects.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_statement_failing_other_than_by_a_constraint_rolls_the_batch_back() {
        let (_db, conn, mut reader, pool) = open("single").await;
        let (writer, queue) = paused(conn, pool);
        let writer = Arc::new(writer);
        let before = send(&writer, true, insert("before".into()));
        queue.wait_queued(1).await;
        // Not a constraint (no such table): SQLite might have undone more than the
        // statement, so the writer trusts nothing of the batch.
        let failing = send(
            &writer,
            true,
            |conn: &mut AnyConnection| -> ConnFuture<'_, ()> {
                Box::pin(async move {
                    sqlx::query("INSERT INTO missing (k) VALUES ('x')")
                        .execute(conn)
                        .await
                        .map(|_| ())
                        .map_err(|e| StoreError::from_sqlx(e, "t"))
                })
            },
        );
        queue.wait_queued(2).await;
        let after = send(&writer, false, insert("after".into()));
        queue.wait_queued(3).await;
        queue.start();
        for handle in [before, failing, after] {
            assert!(matches!(
                handle.await.unwrap(),
                Err(StoreError::Unavailable { .. })
            ));
        }
        assert!(keys(&mut reader).await.is_empty(), "nothing was written");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_refusal_or_an_error_of_ours_spoils_no_other_write() {
        let (_db, conn, mut reader, pool) = open("refused").await;
        let (writer, queue) = paused(conn, pool);
        let writer = Arc::new(writer);
        let a = send(&writer, true, insert("a".into()));
        queue.wait_queued(1).await;
        // A CHECK constraint: SQLite undoes the statement alone.
        let long = send(&writer, true, insert("far-too-long-a-key".into()));
        queue.wait_queued(2).await;
        // An error of ours, after a statement that ran: in a savepoint, undone alone.
        let ours = send(
            &writer,
            false,
            |conn: &mut AnyConnection| -> ConnFuture<'_, ()> {
                Box::pin(async move {
                    insert("gone".into())(&mut *conn).await?;
                    Err(StoreError::NotFound("thing"))
                })
            },
        );
        queue.wait_queued(3).await;
        let b = send(&writer, true, insert("b".into()));
        queue.wait_queued(4).await;
        queue.start();
        a.await.unwrap().unwrap();
        assert!(matches!(
            long.await.unwrap(),
            Err(StoreError::Unavailable { ref message, .. }) if message.contains("CHECK")
        ));
        assert!(matches!(
            ours.await.unwrap(),
            Err(StoreError::NotFound("thing"))
        ));
        b.await.unwrap().unwrap();
        assert_eq!(keys(&mut reader).await, ["a", "b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_panics_is_undone_and_the_writer_goes_on() {
        let (_db, conn, mut reader, pool) = open("panic").await;
        let (writer, queue) = paused(conn, pool);
        let writer = Arc::new(writer);
        let before = send(&writer, true, insert("before".into()));
        queue.wait_queued(1).await;
        let panics = send(
            &writer,
            false,
            |conn: &mut AnyConnection| -> ConnFuture<'_, ()> {
                Box::pin(async move {
                    insert("half".into())(&mut *conn).await?;
                    panic!("a bug in a write");
                })
            },
        );
        queue.wait_queued(2).await;
        queue.start();
        assert!(matches!(
            panics.await.unwrap(),
            Err(StoreError::Unavailable { ref message, .. }) if message.contains("panicked")
        ));
        // Its half-made write was rolled back to its savepoint; the other write stands.
        before.await.unwrap().unwrap();
        assert_eq!(keys(&mut reader).await, ["before"]);
        writer
            .write("t", true, insert("next".into()))
            .await
            .unwrap();
        assert_eq!(keys(&mut reader).await, ["before", "next"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_alone_is_committed_or_undone_whole() {
        let (_db, conn, mut reader, pool) = open("alone").await;
        let writer = Writer::start(conn, pool);
        writer.write("t", true, insert("a".into())).await.unwrap();
        let refused = writer.write("t", true, insert("a".into())).await;
        assert!(matches!(refused, Err(StoreError::Conflict { .. })));
        writer
            .write(
                "t",
                false,
                |conn: &mut AnyConnection| -> ConnFuture<'_, ()> {
                    Box::pin(async move {
                        insert("b".into())(&mut *conn).await?;
                        insert("c".into())(conn).await
                    })
                },
            )
            .await
            .unwrap();
        // Two statements, the second refused: the first is undone with it.
        let half = writer
            .write(
                "t",
                false,
                |conn: &mut AnyConnection| -> ConnFuture<'_, ()> {
                    Box::pin(async move {
                        insert("d".into())(&mut *conn).await?;
                        insert("a".into())(conn).await
                    })
                },
            )
            .await;
        assert!(matches!(half, Err(StoreError::Conflict { .. })));
        // A write that ends its own transaction is never told `Ok`.
        let rogue = writer
            .write(
                "t",
                false,
                |conn: &mut AnyConnection| -> ConnFuture<'_, ()> {
                    Box::pin(async move {
                        insert("e".into())(&mut *conn).await?;
                        conn.execute("ROLLBACK")
                            .await
                            .map(|_| ())
                            .map_err(|e| StoreError::from_sqlx(e, "t"))
                    })
                },
            )
            .await;
        assert!(matches!(rogue, Err(StoreError::Unavailable { .. })));
        assert_eq!(keys(&mut reader).await, ["a", "b", "c"]);
        assert_eq!(
            writer.counts(),
            (2, 2),
            "the two writes made, each its own commit"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_writer_refuses_writes_and_keeps_those_made() {
        let (_db, conn, mut reader, pool) = open("close").await;
        let writer = Arc::new(Writer::start(conn, pool));
        writer.write("t", true, insert("a".into())).await.unwrap();
        assert!(writer.is_running());
        writer.close().await;
        assert!(!writer.is_running());
        let refused = writer.write("t", true, insert("b".into())).await;
        assert!(
            matches!(&refused, Err(StoreError::Unavailable { message, .. }) if message.contains("stopped")),
            "{refused:?}"
        );
        assert_eq!(keys(&mut reader).await, ["a"]);
    }
}
