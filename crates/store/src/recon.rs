//! Reconciliation's storage: runs of wallets' bills, the bills' lines, and the breaks found
//! (docs/RECONCILIATION.md). A day run again replaces its lines and adds no break twice
//! (`UNIQUE (wallet, kind, subject)`).

use chrono::{DateTime, NaiveDate, Utc};
use qrgate_domain::{
    BreakKind, BreakStatus, Currency, MerchantId, Money, Order, Posting, Refund, Wallet,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::ledger::insert_posting;
use crate::orders::{opt_ms, order_from_row, ORDER_COLUMNS};
use crate::refunds::{refund_from_row, REFUND_COLUMNS};
use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The bill's lines were matched against ours.
    Reconciled,
    /// The wallet has no bill for the day (nothing traded): ours were matched against none.
    NoBill,
    /// The file's summary disagrees with its lines: recorded, not matched.
    TotalsMismatch,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Reconciled => "reconciled",
            RunOutcome::NoBill => "no_bill",
            RunOutcome::TotalsMismatch => "totals_mismatch",
        }
    }

    fn parse(s: &str) -> Option<RunOutcome> {
        [
            RunOutcome::Reconciled,
            RunOutcome::NoBill,
            RunOutcome::TotalsMismatch,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One run of one wallet's bill day, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconRun {
    pub id: i64,
    pub wallet: Wallet,
    pub day: NaiveDate,
    pub outcome: RunOutcome,
    pub file_name: Option<String>,
    pub file_sha256: Option<String>,
    pub bill_lines: i64,
    pub bill_totals: String,
    pub our_items: i64,
    pub our_totals: String,
    pub matched: i64,
    pub held: i64,
    pub breaks_found: i64,
    pub worked: i64,
    pub run_by: String,
    pub at: DateTime<Utc>,
}

/// A run to record: [`ReconRun`] without its id, with the file's bytes.
#[derive(Debug, Clone)]
pub struct NewReconRun {
    pub run: ReconRun,
    pub file_bytes: Option<Vec<u8>>,
}

/// What a bill line records, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    Payment,
    Refund,
    Reversal,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Payment => "payment",
            LineKind::Refund => "refund",
            LineKind::Reversal => "reversal",
        }
    }

    fn parse(s: &str) -> Option<LineKind> {
        [LineKind::Payment, LineKind::Refund, LineKind::Reversal]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One stored bill line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconLine {
    pub wallet: Wallet,
    pub day: NaiveDate,
    pub kind: LineKind,
    /// Our number the line names (order key or refund key), else the wallet's number.
    pub subject: String,
    pub order_key: Option<String>,
    pub wallet_ref: String,
    pub amount: Money,
    /// Thousandths of a minor unit of `amount`'s currency, signed from the merchant's side.
    pub fee_milli: Option<i64>,
    /// `succeeded`, `processing`, `failed` or `unknown`.
    pub status: String,
    pub at: DateTime<Utc>,
}

/// A break to record (kept only if none of its wallet, kind and subject exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBreak {
    pub wallet: Wallet,
    pub day: NaiveDate,
    pub kind: BreakKind,
    pub subject: String,
    pub order_key: Option<String>,
    pub refund_key: Option<String>,
    pub wallet_ref: Option<String>,
    /// What we have, and what the bill says, in words.
    pub ours: String,
    pub theirs: String,
    pub status: BreakStatus,
    pub note: Option<String>,
}

/// A stored break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconBreak {
    pub id: i64,
    pub wallet: Wallet,
    pub day: NaiveDate,
    pub kind: BreakKind,
    pub subject: String,
    pub order_key: Option<String>,
    pub refund_key: Option<String>,
    pub wallet_ref: Option<String>,
    pub ours: String,
    pub theirs: String,
    pub status: BreakStatus,
    pub note: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const BREAK_COLUMNS: &str = "id, wallet, day, kind, subject, order_key, refund_key, wallet_ref, \
    ours, theirs, status, note, resolved_by, resolved_at, created_at";

const RUN_COLUMNS: &str = "id, wallet, day, outcome, file_name, file_sha256, bill_lines, \
    bill_totals, our_items, our_totals, matched, held, breaks_found, worked, run_by, created_at";

fn parse_day(s: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| StoreError::corrupt(format!("bad day {s:?}")))
}

pub(crate) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn wallet_of(s: &str) -> Result<Wallet, StoreError> {
    Wallet::parse(s).ok_or_else(|| StoreError::corrupt(format!("bad wallet {s:?}")))
}

fn break_from_row(row: &AnyRow) -> Result<ReconBreak, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let opt = |col: &str| {
        row.try_get::<Option<String>, _>(col)
            .map_err(StoreError::corrupt)
    };
    Ok(ReconBreak {
        id: row.try_get("id").map_err(StoreError::corrupt)?,
        wallet: wallet_of(&text("wallet")?)?,
        day: parse_day(&text("day")?)?,
        kind: BreakKind::parse(&text("kind")?)
            .ok_or_else(|| StoreError::corrupt("bad break kind"))?,
        subject: text("subject")?,
        order_key: opt("order_key")?,
        refund_key: opt("refund_key")?,
        wallet_ref: opt("wallet_ref")?,
        ours: text("ours")?,
        theirs: text("theirs")?,
        status: BreakStatus::parse(&text("status")?)
            .ok_or_else(|| StoreError::corrupt("bad break status"))?,
        note: opt("note")?,
        resolved_by: opt("resolved_by")?,
        resolved_at: opt_ms(row, "resolved_at")?,
        created_at: from_millis(row.try_get("created_at").map_err(StoreError::corrupt)?)?,
    })
}

fn run_from_row(row: &AnyRow) -> Result<ReconRun, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let opt = |col: &str| {
        row.try_get::<Option<String>, _>(col)
            .map_err(StoreError::corrupt)
    };
    let int = |col: &str| row.try_get::<i64, _>(col).map_err(StoreError::corrupt);
    Ok(ReconRun {
        id: int("id")?,
        wallet: wallet_of(&text("wallet")?)?,
        day: parse_day(&text("day")?)?,
        outcome: RunOutcome::parse(&text("outcome")?)
            .ok_or_else(|| StoreError::corrupt("bad run outcome"))?,
        file_name: opt("file_name")?,
        file_sha256: opt("file_sha256")?,
        bill_lines: int("bill_lines")?,
        bill_totals: text("bill_totals")?,
        our_items: int("our_items")?,
        our_totals: text("our_totals")?,
        matched: int("matched")?,
        held: int("held")?,
        breaks_found: int("breaks_found")?,
        worked: int("worked")?,
        run_by: text("run_by")?,
        at: from_millis(int("created_at")?)?,
    })
}

fn line_from_row(row: &AnyRow) -> Result<ReconLine, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let currency: Currency = text("currency")?.parse().map_err(StoreError::corrupt)?;
    Ok(ReconLine {
        wallet: wallet_of(&text("wallet")?)?,
        day: parse_day(&text("day")?)?,
        kind: LineKind::parse(&text("kind")?)
            .ok_or_else(|| StoreError::corrupt("bad line kind"))?,
        subject: text("subject")?,
        order_key: row.try_get("order_key").map_err(StoreError::corrupt)?,
        wallet_ref: text("wallet_ref")?,
        amount: Money::new(
            row.try_get("amount").map_err(StoreError::corrupt)?,
            currency,
        ),
        fee_milli: row.try_get("fee_milli").map_err(StoreError::corrupt)?,
        status: text("status")?,
        at: from_millis(row.try_get("at").map_err(StoreError::corrupt)?)?,
    })
}

impl Store {
    /// Replaces the stored lines of `wallet`'s bill of `day` with `lines`, in one
    /// transaction: a crash leaves the old lines or the new, never a mix.
    pub async fn replace_recon_lines(
        &self,
        wallet: Wallet,
        day: NaiveDate,
        lines: Vec<ReconLine>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write("reconciliation lines", move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM recon_lines WHERE wallet = $1 AND day = $2")
                    .bind(wallet.as_str())
                    .bind(day_text(day))
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "reconciliation lines"))?;
                for l in &lines {
                    sqlx::query(
                        "INSERT INTO recon_lines (wallet, day, kind, subject, order_key, \
                         wallet_ref, currency, amount, fee_milli, status, at, created_at, \
                         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
                    )
                    .bind(l.wallet.as_str())
                    .bind(day_text(l.day))
                    .bind(l.kind.as_str())
                    .bind(&l.subject)
                    .bind(l.order_key.as_deref())
                    .bind(&l.wallet_ref)
                    .bind(l.amount.currency().code())
                    .bind(l.amount.minor())
                    .bind(l.fee_milli)
                    .bind(&l.status)
                    .bind(to_millis(l.at))
                    .bind(to_millis(now))
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "reconciliation lines"))?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Every stored line of `wallet` naming `subject`, on any day.
    pub async fn recon_lines_of(
        &self,
        wallet: Wallet,
        subject: &str,
    ) -> Result<Vec<ReconLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT wallet, day, kind, subject, order_key, wallet_ref, currency, amount, \
             fee_milli, status, at FROM recon_lines WHERE wallet = $1 AND subject = $2 \
             ORDER BY day, id",
        )
        .bind(wallet.as_str())
        .bind(subject)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "reconciliation lines"))?;
        rows.iter().map(line_from_row).collect()
    }

    /// Records a break unless one of the same wallet, kind and subject exists; an open break
    /// where the gateway had worked one reopens it with the new facts (it is not settled
    /// after all). Returns whether it recorded or reopened one.
    pub async fn insert_recon_break(
        &self,
        b: &NewBreak,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let b = b.clone();
        self.write("reconciliation break", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "INSERT INTO recon_breaks (wallet, day, kind, subject, order_key, refund_key, \
                     wallet_ref, ours, theirs, status, note, created_at, updated_at) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
                     ON CONFLICT (wallet, kind, subject) DO UPDATE SET status = 'open', \
                     day = excluded.day, ours = excluded.ours, theirs = excluded.theirs, \
                     note = excluded.note, updated_at = excluded.updated_at \
                     WHERE recon_breaks.status = 'worked' AND excluded.status = 'open'",
                )
                .bind(b.wallet.as_str())
                .bind(day_text(b.day))
                .bind(b.kind.as_str())
                .bind(&b.subject)
                .bind(b.order_key.as_deref())
                .bind(b.refund_key.as_deref())
                .bind(b.wallet_ref.as_deref())
                .bind(&b.ours)
                .bind(&b.theirs)
                .bind(b.status.as_str())
                .bind(b.note.as_deref())
                .bind(to_millis(now))
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "reconciliation break"))?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Breaks, newest first, optionally of one day, one wallet, one status; at most `limit`.
    pub async fn recon_breaks(
        &self,
        day: Option<NaiveDate>,
        wallet: Option<Wallet>,
        status: Option<BreakStatus>,
        limit: i64,
    ) -> Result<Vec<ReconBreak>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE ($1 = '' OR day = $1) \
             AND ($2 = '' OR wallet = $2) AND ($3 = '' OR status = $3) \
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(day.map(day_text).unwrap_or_default())
        .bind(wallet.map_or("", Wallet::as_str))
        .bind(status.map_or("", BreakStatus::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "reconciliation breaks"))?;
        rows.iter().map(break_from_row).collect()
    }

    pub async fn recon_break(&self, id: i64) -> Result<Option<ReconBreak>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "reconciliation break"))?;
        row.as_ref().map(break_from_row).transpose()
    }

    /// Marks an open break resolved by `who` with `note`. Returns false (and changes nothing)
    /// when the break is not open.
    pub async fn resolve_recon_break(
        &self,
        id: i64,
        who: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (who, note) = (who.to_owned(), note.to_owned());
        self.write("reconciliation break", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE recon_breaks SET status = 'resolved', resolved_by = $1, note = $2, \
                     resolved_at = $3, updated_at = $3 WHERE id = $4 AND status = 'open'",
                )
                .bind(&who)
                .bind(&note)
                .bind(to_millis(now))
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "reconciliation break"))?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Records a run; returns its id.
    pub async fn insert_recon_run(&self, new: NewReconRun) -> Result<i64, StoreError> {
        self.write("reconciliation run", move |conn| {
            Box::pin(async move {
                let r = &new.run;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO recon_runs (wallet, day, outcome, file_name, file_bytes, \
                     file_sha256, bill_lines, bill_totals, our_items, our_totals, matched, held, \
                     breaks_found, worked, run_by, created_at, updated_at) VALUES ($1, $2, $3, \
                     $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) RETURNING id",
                )
                .bind(r.wallet.as_str())
                .bind(day_text(r.day))
                .bind(r.outcome.as_str())
                .bind(r.file_name.as_deref())
                .bind(new.file_bytes.as_deref())
                .bind(r.file_sha256.as_deref())
                .bind(r.bill_lines)
                .bind(&r.bill_totals)
                .bind(r.our_items)
                .bind(&r.our_totals)
                .bind(r.matched)
                .bind(r.held)
                .bind(r.breaks_found)
                .bind(r.worked)
                .bind(&r.run_by)
                .bind(to_millis(r.at))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "reconciliation run"))?;
                Ok(id)
            })
        })
        .await
    }

    /// The runs of a day (every wallet when `wallet` is `None`), oldest first.
    pub async fn recon_runs(
        &self,
        day: NaiveDate,
        wallet: Option<Wallet>,
    ) -> Result<Vec<ReconRun>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM recon_runs WHERE day = $1 AND ($2 = '' OR wallet = $2) \
             ORDER BY id"
        ))
        .bind(day_text(day))
        .bind(wallet.map_or("", Wallet::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "reconciliation runs"))?;
        rows.iter().map(run_from_row).collect()
    }

    /// The bill file a run kept, as downloaded.
    pub async fn recon_run_file(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let bytes: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT file_bytes FROM recon_runs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "reconciliation run"))?;
        Ok(bytes.flatten())
    }

    /// The orders of `wallet` paid in `[from, to)`: our side of a bill's payments.
    pub async fn orders_paid_between(
        &self,
        wallet: Wallet,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Order>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE wallet = $1 AND status = 'paid' \
             AND paid_at >= $2 AND paid_at < $3 ORDER BY paid_at, key"
        ))
        .bind(wallet.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "orders"))?;
        rows.iter().map(order_from_row).collect()
    }

    /// The refunds of `wallet` that succeeded in `[from, to)`: our side of a bill's refunds.
    pub async fn refunds_succeeded_between(
        &self,
        wallet: Wallet,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Refund>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE wallet = $1 AND status = 'succeeded' \
             AND finished_at >= $2 AND finished_at < $3 ORDER BY finished_at, key"
        ))
        .bind(wallet.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "refunds"))?;
        rows.iter().map(refund_from_row).collect()
    }

    /// Claims one refund for `worker` until `lease_until` if it is still in progress and
    /// nobody's lease on it runs; returns it, or `None`.
    pub async fn claim_refund(
        &self,
        key: &str,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Refund>, StoreError> {
        let sql = format!(
            "UPDATE refunds SET claimed_by = $1, claimed_until = $2 WHERE key = $4 \
             AND status = 'processing' AND (claimed_until IS NULL OR claimed_until < $3) \
             RETURNING {REFUND_COLUMNS}"
        );
        let (key, worker) = (key.to_owned(), worker.to_owned());
        let row = self
            .write_statement("claim", move |conn| {
                Box::pin(async move {
                    sqlx::query(&sql)
                        .bind(&worker)
                        .bind(to_millis(lease_until))
                        .bind(to_millis(now))
                        .bind(&key)
                        .fetch_optional(conn)
                        .await
                        .map_err(|e| StoreError::from_sqlx(e, "refund"))
                })
            })
            .await?;
        row.as_ref().map(refund_from_row).transpose()
    }

    /// Writes a wallet fee's posting unless one of that name exists (running a day again posts
    /// nothing twice). Returns whether it wrote it.
    pub async fn post_wallet_fee(
        &self,
        posting: &Posting,
        order_key: &str,
        refund_key: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let posting = posting.clone();
        let (order_key, refund_key) = (order_key.to_owned(), refund_key.map(str::to_owned));
        self.write("wallet fee posting", move |conn| {
            Box::pin(async move {
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM ledger_entries WHERE txn = $1 LIMIT 1")
                        .bind(posting.txn())
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(|e| StoreError::from_sqlx(e, "wallet fee posting"))?;
                if exists.is_some() {
                    return Ok(false);
                }
                insert_posting(conn, &posting, &order_key, refund_key.as_deref(), now).await?;
                Ok(true)
            })
        })
        .await
    }

    /// A merchant's fees between `from` and `to`, by currency: what the provider charged
    /// (`provider_fees`, net of fees given back) and what the wallets kept on the same
    /// payments and refunds (`wallet_fees`), each dated by the payment or refund it belongs
    /// to. Returns `(currency, ours, wallets')` in minor units.
    pub async fn fee_margin(
        &self,
        merchant: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(Currency, i64, i64)>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            // PostgreSQL sums BIGINT as NUMERIC: cast back.
            "SELECT e.currency, \
               CAST(COALESCE(SUM(CASE WHEN e.account = 'provider_fees' THEN -e.amount ELSE 0 END), 0) AS BIGINT), \
               CAST(COALESCE(SUM(CASE WHEN e.account LIKE 'wallet_fees:%' THEN e.amount ELSE 0 END), 0) AS BIGINT) \
             FROM ledger_entries e JOIN orders o ON o.key = e.order_key \
             WHERE o.merchant_id = $1 AND (e.account = 'provider_fees' OR e.account LIKE 'wallet_fees:%') \
             AND COALESCE((SELECT MIN(p.created_at) FROM ledger_entries p WHERE p.txn = \
                 CASE WHEN e.refund_key IS NULL THEN 'payment:' || e.order_key \
                 ELSE 'refund:' || e.refund_key END), e.created_at) >= $2 \
             AND COALESCE((SELECT MIN(p.created_at) FROM ledger_entries p WHERE p.txn = \
                 CASE WHEN e.refund_key IS NULL THEN 'payment:' || e.order_key \
                 ELSE 'refund:' || e.refund_key END), e.created_at) < $3 \
             GROUP BY e.currency ORDER BY e.currency",
        )
        .bind(merchant.as_str())
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "ledger entry"))?;
        rows.into_iter()
            .map(|(c, ours, theirs)| Ok((c.parse().map_err(StoreError::corrupt)?, ours, theirs)))
            .collect()
    }

    /// Schedules the daily job for `wallet`'s bill `day` at `due`, unless it is scheduled
    /// already (done or not).
    pub async fn schedule_recon(
        &self,
        wallet: Wallet,
        day: NaiveDate,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write_statement("reconciliation schedule", move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO recon_schedule (key, wallet, day, next_attempt_at, attempts, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $5) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(format!("{}:{}", wallet.as_str(), day_text(day)))
                .bind(wallet.as_str())
                .bind(day_text(day))
                .bind(to_millis(due))
                .bind(to_millis(now))
                .execute(conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "reconciliation schedule"))?;
                Ok(())
            })
        })
        .await
    }

    /// Claims up to `limit` due days of the daily job for `worker` until `lease_until`
    /// (exclusive across nodes, like the loops' claims). Returns `(key, wallet, day,
    /// attempts)`.
    pub async fn claim_due_recon(
        &self,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(String, Wallet, NaiveDate, i64)>, StoreError> {
        let rows = crate::claims::DueRows {
            table: "recon_schedule",
            key: "key",
            due: "next_attempt_at IS NOT NULL AND next_attempt_at <= $3",
            order_by: "next_attempt_at",
            lane: "wallet",
            columns: "key, wallet, day, attempts",
            what: "reconciliation schedule",
        };
        let rows = self
            .claim_due(rows, now, worker, lease_until, limit, &[])
            .await?;
        rows.iter()
            .map(|r| {
                let text = |c: &str| r.try_get::<String, _>(c).map_err(StoreError::corrupt);
                Ok((
                    text("key")?,
                    wallet_of(&text("wallet")?)?,
                    parse_day(&text("day")?)?,
                    r.try_get("attempts").map_err(StoreError::corrupt)?,
                ))
            })
            .collect()
    }

    /// Records an attempt of the daily job by the claim's holder and releases the claim:
    /// `next` is the next attempt (`None`: done or given up). False when the claim was lost.
    pub async fn finish_recon_attempt(
        &self,
        key: &str,
        holder: &str,
        next: Option<DateTime<Utc>>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (key, holder, error) = (key.to_owned(), holder.to_owned(), error.map(str::to_owned));
        self.write_statement("reconciliation schedule", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE recon_schedule SET next_attempt_at = $1, attempts = attempts + 1, \
                     last_error = $2, claimed_by = NULL, claimed_until = NULL, updated_at = $3 \
                     WHERE key = $4 AND claimed_by = $5",
                )
                .bind(next.map(to_millis))
                .bind(error.as_deref())
                .bind(to_millis(now))
                .bind(&key)
                .bind(&holder)
                .execute(conn)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "reconciliation schedule"))?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }
}
