//! Group commit for SQLite: one writer task, one connection, many writes per commit.
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` every commit waits for an
//! fsync. When each request committed on its own pooled connection, concurrent writers
//! queued on SQLite's lock (whose busy handler sleeps and retries) and the storage did about
//! one fsync per write. Here the payment paths' writes are sent to a single writer task,
//! which takes every write waiting when it starts a transaction (up to [`MAX_BATCH`]), runs
//! each inside its own savepoint, and commits them together: one fsync for the batch.
//!
//! Each write behaves as its own transaction: a write that fails is rolled back to its
//! savepoint and gets its error, the others go on (a write of one statement needs no
//! savepoint: SQLite undoes a statement refused by a constraint alone; any other failure of
//! it rolls the whole batch back, as SQLite itself may have); a caller hears `Ok` only after the
//! commit that holds its write, so nothing is acknowledged that a crash could lose, and a
//! crash before the commit loses the whole batch, acknowledged to nobody. A write sees the
//! earlier writes of its batch, as it would have had they committed just before it.
//!
//! PostgreSQL needs none of this (its own group commit works across connections): there a
//! write is a plain transaction on the pool.

use std::future::Future;
use std::pin::Pin;

use sqlx::{AnyConnection, Executor};
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
    /// Refused by a uniqueness rule.
    Conflicted,
    Failed,
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
}

impl Writer {
    /// Starts the writer task on `conn`, a connection set up like the pool's.
    pub(crate) fn start(conn: AnyConnection) -> Writer {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(run(conn, rx, stopped, counts.clone()));
        Writer {
            jobs,
            stop,
            task: Mutex::new(Some(task)),
            counts,
        }
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
                let outcome = write(conn).await;
                let ran = match &outcome {
                    Ok(_) => Ran::Succeeded,
                    Err(StoreError::Conflict { .. }) => Ran::Conflicted,
                    Err(_) => Ran::Failed,
                };
                let finish: Finish = Box::new(move |committed| {
                    let result = match (outcome, committed) {
                        (Err(e), _) => Err(e),
                        (Ok(value), Ok(())) => Ok(value),
                        (Ok(_), Err(message)) => {
                            Err(unavailable(format!("the commit failed: {message}")))
                        }
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
                let written = finishes.iter().filter(|(_, told)| told.is_ok()).count();
                if written > 0 {
                    counts.commits.fetch_add(1, Ordering::Relaxed);
                    counts.writes.fetch_add(u64::try_from(written).unwrap_or(u64::MAX), Ordering::Relaxed);
                }
                for (finish, committed) in finishes {
                    finish(committed);
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
async fn commit_batch(
    conn: &mut AnyConnection,
    batch: &mut Vec<Queued>,
) -> Vec<(Finish, Result<(), String>)> {
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
                // Not a constraint: SQLite may have rolled back more than the statement (a
                // full disk, an I/O error). Trust nothing of this batch.
                broken = Some("a write failed: the batch is rolled back".into());
            }
            finishes.push((finish, Ok(())));
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
        finishes.push((finish, Ok(())));
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
        .map(|(finish, own)| (finish, own.and(committed.clone())))
        .collect()
}

/// Rolls the current write back to its savepoint. `Err` when it could not be: SQLite may
/// have rolled back the whole transaction after a serious error (a full disk, an I/O error).
async fn undo(conn: &mut AnyConnection) -> Result<(), String> {
    conn.execute("ROLLBACK TO w")
        .await
        .map_err(|e| format!("cannot roll a failed write back: {e}"))?;
    conn.execute("RELEASE w")
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

    async fn open(name: &str) -> (TempDb, AnyConnection, AnyConnection) {
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
             CREATE TABLE t (k TEXT PRIMARY KEY)",
        )
        .await
        .unwrap();
        let b = AnyConnection::connect(&url).await.unwrap();
        (TempDb(path), a, b)
    }

    /// A writer whose task is not started yet, so that writes can queue first.
    fn paused(conn: AnyConnection) -> (Writer, impl FnOnce()) {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let start = {
            let counts = counts.clone();
            move || {
                tokio::spawn(run(conn, rx, stopped, counts));
            }
        };
        let writer = Writer {
            jobs,
            stop,
            task: Mutex::new(None),
            counts,
        };
        (writer, start)
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

    async fn wait_queued(writer: &Writer, n: usize) {
        while QUEUE - writer.jobs.capacity() < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_writes_commit_together_and_a_failing_one_spoils_none() {
        let (_db, conn, mut reader) = open("batch").await;
        let (writer, start) = paused(conn);
        let writer = Arc::new(writer);
        let mut handles = Vec::new();
        // Half as single statements (no savepoint), half in savepoints.
        for n in 0..50 {
            handles.push(send(&writer, n % 2 == 0, insert(format!("k{n:02}"))));
        }
        // The same keys again: refused by the primary key, inside the same batch, alone.
        handles.push(send(&writer, true, insert("k07".into())));
        handles.push(send(&writer, false, insert("k08".into())));
        // Two statements, the second refused: the first is undone with it.
        handles.push(send(
            &writer,
            false,
            |conn: &mut AnyConnection| -> ConnFuture<'_, ()> {
                Box::pin(async move {
                    insert("k99".into())(&mut *conn).await?;
                    insert("k00".into())(conn).await
                })
            },
        ));
        wait_queued(&writer, 53).await;
        start();
        let mut conflicts = 0;
        for handle in handles {
            match handle.await.unwrap() {
                Ok(()) => {}
                Err(StoreError::Conflict { what: "t" }) => conflicts += 1,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(conflicts, 3);
        let expected: Vec<String> = (0..50).map(|n| format!("k{n:02}")).collect();
        assert_eq!(keys(&mut reader).await, expected);
        assert_eq!(writer.counts(), (1, 53), "one commit for the 53 writes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_breaks_the_transaction_leaves_nothing_acknowledged() {
        let (_db, conn, mut reader) = open("broken").await;
        let (writer, start) = paused(conn);
        let writer = Arc::new(writer);
        let before = send(&writer, true, insert("before".into()));
        wait_queued(&writer, 1).await;
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
        wait_queued(&writer, 2).await;
        let after = send(&writer, true, insert("after".into()));
        wait_queued(&writer, 3).await;
        start();
        for handle in [before, rogue, after] {
            assert!(matches!(
                handle.await.unwrap(),
                Err(StoreError::Unavailable { .. })
            ));
        }
        assert!(keys(&mut reader).await.is_empty(), "nothing was written");
        // The writer goes on with the next batch.
        writer
            .write("t", true, insert("next".into()))
            .await
            .unwrap();
        assert_eq!(keys(&mut reader).await, ["next"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_statement_failing_other_than_by_a_constraint_rolls_the_batch_back() {
        let (_db, conn, mut reader) = open("single").await;
        let (writer, start) = paused(conn);
        let writer = Arc::new(writer);
        let before = send(&writer, true, insert("before".into()));
        wait_queued(&writer, 1).await;
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
        wait_queued(&writer, 2).await;
        let after = send(&writer, false, insert("after".into()));
        wait_queued(&writer, 3).await;
        start();
        for handle in [before, failing, after] {
            assert!(matches!(
                handle.await.unwrap(),
                Err(StoreError::Unavailable { .. })
            ));
        }
        assert!(keys(&mut reader).await.is_empty(), "nothing was written");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_writer_refuses_writes_and_keeps_those_made() {
        let (_db, conn, mut reader) = open("close").await;
        let writer = Arc::new(Writer::start(conn));
        writer.write("t", true, insert("a".into())).await.unwrap();
        writer.close().await;
        let refused = writer.write("t", true, insert("b".into())).await;
        assert!(
            matches!(&refused, Err(StoreError::Unavailable { message, .. }) if message.contains("stopped")),
            "{refused:?}"
        );
        assert_eq!(keys(&mut reader).await, ["a"]);
    }
}
