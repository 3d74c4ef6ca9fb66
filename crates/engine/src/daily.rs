//! The daily reconciliation job that `serve` runs: each enabled wallet's bill of yesterday
//! (and the day before, for a node that was down) is reconciled once the wallet has
//! published it, retried while it is not ready, by one node among several.
//!
//! One row per wallet and bill day (`recon_schedule`) is claimed like the loops' rows (a
//! holder name and a lease, `FOR UPDATE SKIP LOCKED` on PostgreSQL), so a day is worked by
//! one node at a time; a node that dies leaves it to the next claim once the lease runs out,
//! and running a day again is harmless (`Engine::reconcile_day` is idempotent).

use std::time::Duration as StdDuration;

use chrono::Duration;
use qrgate_domain::{bill_day, bill_day_start, Wallet};

use crate::loops::Lease;
use crate::{Engine, EngineError, ReconcileError, ReconcileSettings};

/// The lease on one day's job: the whole run (downloads and matching) fits well within it.
const JOB_LEASE: Duration = Duration::minutes(10);
/// The longest one run may take; the lease outlasts it.
const JOB_TIMEOUT: StdDuration = StdDuration::from_secs(9 * 60);
/// When a wallet's bill of day T is first asked for: 10:00 Beijing on T+1 (every wallet
/// publishes by then; WeChat Pay makes bills from 09:00).
const FIRST_ASK_AFTER_DAY_END: Duration = Duration::hours(10);
/// While a bill is not ready: ask again hourly, at most this many times (two days).
const NOT_READY_RETRY: Duration = Duration::hours(1);
const MAX_ATTEMPTS: i64 = 48;
/// How often the job looks for due work.
const ROUND_PAUSE: StdDuration = StdDuration::from_secs(60);

impl Engine {
    /// One round of the daily job: schedules the last two bill days of each enabled wallet,
    /// claims the due ones and reconciles each. Returns how many runs it recorded. Safe on
    /// several nodes at once.
    pub async fn reconcile_round(
        &self,
        settings: &ReconcileSettings,
    ) -> Result<usize, EngineError> {
        let now = self.now();
        for w in self.wallets.enabled() {
            let today = bill_day(w, now);
            for back in 1..=2 {
                let day = today - Duration::days(back);
                let due = bill_day_start(Wallet::WechatPay, day + Duration::days(1))
                    + FIRST_ASK_AFTER_DAY_END;
                self.store.schedule_recon(w, day, due, now).await?;
            }
        }
        let lease = Lease::new(&self.worker, now + JOB_LEASE);
        let claimed = self
            .store
            .claim_due_recon(now, &lease.holder, lease.until, 8)
            .await?;
        let mut ran = 0;
        for (key, wallet, day, attempts) in claimed {
            let run_by = format!("job:{}", self.worker);
            let result = tokio::time::timeout(
                JOB_TIMEOUT,
                self.reconcile_day(wallet, day, settings, &run_by),
            )
            .await;
            let retry = || (attempts + 1 < MAX_ATTEMPTS).then(|| self.now() + NOT_READY_RETRY);
            let (next, error) = match result {
                Ok(Ok(_)) => {
                    ran += 1;
                    (None, None)
                }
                Ok(Err(e @ ReconcileError::NotReady { .. })) => (retry(), Some(e.to_string())),
                Ok(Err(e)) => {
                    tracing::error!(wallet = %wallet, day = %day, error = %e, "daily reconciliation failed; retrying in an hour");
                    (retry(), Some(e.to_string()))
                }
                Err(_) => (retry(), Some("the run took too long".to_owned())),
            };
            if next.is_none() {
                if let Some(e) = &error {
                    tracing::error!(wallet = %wallet, day = %day, error = %e, "daily reconciliation given up: run it by hand (qrgate reconcile run)");
                }
            }
            if !self
                .store
                .finish_recon_attempt(&key, &lease.holder, next, error.as_deref(), self.now())
                .await?
            {
                tracing::warn!(wallet = %wallet, day = %day, "the daily reconciliation's claim ran out; its next holder runs it again");
            }
        }
        Ok(ran)
    }

    /// The daily job, until `stop` turns true: a round every minute.
    pub async fn run_reconcile_loop(
        &self,
        settings: ReconcileSettings,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if let Err(e) = self.reconcile_round(&settings).await {
                tracing::warn!(error = %e, "daily reconciliation round failed; retrying");
            }
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return; },
                () = tokio::time::sleep(ROUND_PAUSE) => {}
            }
        }
    }
}
