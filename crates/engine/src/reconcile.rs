//! Reconciliation: a wallet's bill of one day matched against our orders and refunds, every
//! difference recorded as a break, and the ones the gateway can settle by itself worked
//! (docs/RECONCILIATION.md, ARCHITECTURE.md "Reconciliation").
//!
//! Running a day again is safe at any point: the day's lines are replaced in one
//! transaction, breaks are unique per (wallet, kind, subject), and working an order goes
//! through the closing loop's claim, so a crash in the middle leaves a state the next run
//! completes.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use qrgate_connector_api::{BillError, BillLine, BillLineKind, BillLineStatus, WalletBill};
use qrgate_domain::{
    bill_day, bill_day_start, wallet_fee_posting, wallet_fee_txn, BreakKind, BreakStatus, Currency,
    Money, Order, OrderStatus, RefundStatus, Wallet,
};
use qrgate_store::{LineKind, NewBreak, NewReconRun, ReconBreak, ReconLine, ReconRun, RunOutcome};

use crate::loops::{Lease, CLAIM_LEASE};
use crate::{Engine, EngineError};

/// How reconciliation judges a bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// How many bill days an item of ours that no bill lists is held before it becomes a
    /// `missing_at_wallet` break (0: at once).
    pub hold_days: u32,
    /// Each wallet's fee rate in millionths of the amount (6000 = 0.60 %), rounded half up
    /// per line; a line whose fee differs is a `fee` break.
    pub fee_ppm: BTreeMap<Wallet, u32>,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            hold_days: 2,
            fee_ppm: Wallet::ALL.into_iter().map(|w| (w, 6000)).collect(),
        }
    }
}

/// Why a day could not be reconciled. Nothing was recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The wallet has not made the bill yet: try again later.
    #[error("the {wallet} bill of {day} is not ready yet: {detail}")]
    NotReady {
        wallet: Wallet,
        day: NaiveDate,
        detail: String,
    },
    #[error("{0} is not enabled on this gateway")]
    WalletNotEnabled(Wallet),
    /// The download or the file failed; the message says how.
    #[error("the {wallet} bill of {day} could not be read: {detail}")]
    Bill {
        wallet: Wallet,
        day: NaiveDate,
        detail: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<qrgate_store::StoreError> for ReconcileError {
    fn from(e: qrgate_store::StoreError) -> Self {
        ReconcileError::Engine(EngineError::from(e))
    }
}

/// A merchant's fees on one day in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeMargin {
    /// What the provider charged (net of fees given back on refunds).
    pub ours: Money,
    /// What the wallets kept, by their bills.
    pub wallets: Money,
    pub margin: Money,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct ReconcileReport {
    pub run: ReconRun,
    /// The breaks this run recorded for the first time.
    pub new_breaks: Vec<NewBreak>,
}

/// Running counts of one run.
#[derive(Default)]
struct Tally {
    matched: i64,
    held: i64,
    found: i64,
    worked: i64,
    new_breaks: Vec<NewBreak>,
}

/// One of our paid orders or succeeded refunds: kind, key, its order's key (refunds), amount,
/// when it happened.
type OurItem = (
    LineKind,
    String,
    Option<String>,
    Money,
    chrono::DateTime<chrono::Utc>,
);

/// A break about to be recorded, before its wallet and day.
struct Found {
    kind: BreakKind,
    subject: String,
    order_key: Option<String>,
    refund_key: Option<String>,
    wallet_ref: Option<String>,
    ours: String,
    theirs: String,
    status: BreakStatus,
    note: Option<String>,
}

impl Found {
    fn open(kind: BreakKind, subject: &str, ours: String, theirs: String) -> Found {
        Found {
            kind,
            subject: subject.to_owned(),
            order_key: None,
            refund_key: None,
            wallet_ref: None,
            ours,
            theirs,
            status: BreakStatus::Open,
            note: None,
        }
    }
}

/// `amount × ppm / 10^6`, rounded half up (non-negative amounts).
fn fee_on(amount: i64, ppm: u32) -> i64 {
    let v = (i128::from(amount) * i128::from(ppm) * 2 + 1_000_000) / 2_000_000;
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn line_kind(kind: BillLineKind) -> LineKind {
    match kind {
        BillLineKind::Payment => LineKind::Payment,
        BillLineKind::Refund => LineKind::Refund,
        BillLineKind::Reversal => LineKind::Reversal,
    }
}

fn status_text(s: BillLineStatus) -> &'static str {
    match s {
        BillLineStatus::Succeeded => "succeeded",
        BillLineStatus::Processing => "processing",
        BillLineStatus::Failed => "failed",
        BillLineStatus::Unknown => "unknown",
    }
}

/// Our number a line names: the refund's on refund lines, the order's on the others; the
/// wallet's own number when the line names none of ours.
fn subject_of(line: &BillLine) -> String {
    let ours = match line.kind {
        BillLineKind::Refund => line.out_refund_no.as_ref(),
        BillLineKind::Payment | BillLineKind::Reversal => line.out_trade_no.as_ref(),
    };
    ours.cloned().unwrap_or_else(|| line.wallet_ref.clone())
}

/// Sums of amounts by kind and currency, in words (`payments 3: CAD 12.34; refunds 1: …`).
fn totals_text(items: &[(LineKind, Money)]) -> String {
    let mut sums: BTreeMap<(&'static str, Currency), (i64, i64)> = BTreeMap::new();
    for (kind, m) in items {
        let e = sums.entry((kind.as_str(), m.currency())).or_default();
        e.0 += 1;
        e.1 += m.minor();
    }
    sums.into_iter()
        .map(|((kind, c), (n, sum))| format!("{kind} {n}: {}", Money::new(sum, c)))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Engine {
    /// Reconciles `wallet`'s bill of `day` (the wallet's bill day: Beijing calendar, UnionPay's
    /// settle date): downloads it, records the run and the bill's lines, matches every line
    /// against our records and our paid orders and succeeded refunds against the stored lines,
    /// records each break once, and works those the gateway can settle itself (an order it
    /// holds unknown or pending that the bill shows paid: the closing loop's step, which asks
    /// the wallet and posts the payment). `run_by` names who ran it (a person, or the node).
    ///
    /// Idempotent: a second run of the same day finds the same breaks and records none again.
    pub async fn reconcile_day(
        &self,
        wallet: Wallet,
        day: NaiveDate,
        settings: &ReconcileSettings,
        run_by: &str,
    ) -> Result<ReconcileReport, ReconcileError> {
        if run_by.trim().is_empty() {
            return Err(ReconcileError::Invalid(
                "a run must say who ran it".to_owned(),
            ));
        }
        let connector = self
            .wallets
            .connector(wallet)
            .cloned()
            .ok_or(ReconcileError::WalletNotEnabled(wallet))?;
        let downloaded = connector.download_bill(day).await;
        let now = self.now();
        let (bill, outcome) = match downloaded {
            Ok(bill) => (Some(bill), RunOutcome::Reconciled),
            Err(BillError::NoBill { .. }) => (None, RunOutcome::NoBill),
            Err(BillError::NotReady { code, message }) => {
                return Err(ReconcileError::NotReady {
                    wallet,
                    day,
                    detail: format!("{code} {message}"),
                })
            }
            Err(BillError::TotalsMismatch { mismatches, bill }) => {
                return self
                    .record_totals_mismatch(wallet, day, *bill, &mismatches, run_by)
                    .await
            }
            Err(e) => {
                return Err(ReconcileError::Bill {
                    wallet,
                    day,
                    detail: e.to_string(),
                })
            }
        };
        let mut tally = Tally::default();
        let lines: Vec<BillLine> = bill.as_ref().map(|b| b.lines.clone()).unwrap_or_default();
        let stored: Vec<ReconLine> = lines
            .iter()
            .map(|l| ReconLine {
                wallet,
                day,
                kind: line_kind(l.kind),
                subject: subject_of(l),
                order_key: l.out_trade_no.clone(),
                wallet_ref: l.wallet_ref.clone(),
                amount: l.amount,
                fee_milli: l.fee.map(|f| f.exact_milli_minor()),
                status: status_text(l.status).to_owned(),
                at: l.time,
            })
            .collect();
        self.store
            .replace_recon_lines(wallet, day, stored, now)
            .await?;

        for line in &lines {
            let found = self.judge_line(wallet, line, settings, &mut tally).await?;
            match found {
                Some(f) => self.record_break(wallet, day, f, &mut tally).await?,
                None => tally.matched += 1,
            }
        }
        let our_items = self.judge_ours(wallet, day, settings, &mut tally).await?;

        let bill_items: Vec<(LineKind, Money)> = lines
            .iter()
            .map(|l| (line_kind(l.kind), l.amount))
            .collect();
        let run = ReconRun {
            id: 0,
            wallet,
            day,
            outcome,
            file_name: bill.as_ref().map(|b| b.file.name().to_owned()),
            file_sha256: bill.as_ref().map(|b| b.file.sha256_hex()),
            bill_lines: i64::try_from(lines.len()).unwrap_or(i64::MAX),
            bill_totals: totals_text(&bill_items),
            our_items: i64::try_from(our_items.len()).unwrap_or(i64::MAX),
            our_totals: totals_text(&our_items),
            matched: tally.matched,
            held: tally.held,
            breaks_found: tally.found,
            worked: tally.worked,
            run_by: run_by.to_owned(),
            at: now,
        };
        let file_bytes = bill.map(|b| b.file.into_bytes());
        let id = self
            .store
            .insert_recon_run(NewReconRun {
                run: run.clone(),
                file_bytes,
            })
            .await?;
        tracing::info!(wallet = %wallet, day = %day, matched = run.matched, held = run.held, breaks = run.breaks_found, worked = run.worked, "bill reconciled");
        Ok(ReconcileReport {
            run: ReconRun { id, ..run },
            new_breaks: tally.new_breaks,
        })
    }

    async fn record_totals_mismatch(
        &self,
        wallet: Wallet,
        day: NaiveDate,
        bill: WalletBill,
        mismatches: &[qrgate_connector_api::BillMismatch],
        run_by: &str,
    ) -> Result<ReconcileReport, ReconcileError> {
        let mut tally = Tally::default();
        let summed = mismatches
            .iter()
            .map(|m| format!("{} {}", m.figure, m.summed))
            .collect::<Vec<_>>()
            .join("; ");
        let stated = mismatches
            .iter()
            .map(|m| format!("{} {}", m.figure, m.stated))
            .collect::<Vec<_>>()
            .join("; ");
        let found = Found::open(
            BreakKind::Totals,
            &format!("totals:{day}"),
            format!("the lines sum to {summed}"),
            format!("the summary states {stated}"),
        );
        self.record_break(wallet, day, found, &mut tally).await?;
        let items: Vec<(LineKind, Money)> = bill
            .lines
            .iter()
            .map(|l| (line_kind(l.kind), l.amount))
            .collect();
        let run = ReconRun {
            id: 0,
            wallet,
            day,
            outcome: RunOutcome::TotalsMismatch,
            file_name: Some(bill.file.name().to_owned()),
            file_sha256: Some(bill.file.sha256_hex()),
            bill_lines: i64::try_from(bill.lines.len()).unwrap_or(i64::MAX),
            bill_totals: totals_text(&items),
            our_items: 0,
            our_totals: String::new(),
            matched: 0,
            held: 0,
            breaks_found: tally.found,
            worked: 0,
            run_by: run_by.to_owned(),
            at: self.now(),
        };
        let id = self
            .store
            .insert_recon_run(NewReconRun {
                run: run.clone(),
                file_bytes: Some(bill.file.into_bytes()),
            })
            .await?;
        tracing::error!(wallet = %wallet, day = %day, "the bill's summary disagrees with its lines; recorded, not matched");
        Ok(ReconcileReport {
            run: ReconRun { id, ..run },
            new_breaks: tally.new_breaks,
        })
    }

    async fn record_break(
        &self,
        wallet: Wallet,
        day: NaiveDate,
        f: Found,
        tally: &mut Tally,
    ) -> Result<(), ReconcileError> {
        let b = NewBreak {
            wallet,
            day,
            kind: f.kind,
            subject: f.subject,
            order_key: f.order_key,
            refund_key: f.refund_key,
            wallet_ref: f.wallet_ref,
            ours: f.ours,
            theirs: f.theirs,
            status: f.status,
            note: f.note,
        };
        if f.status == BreakStatus::Open {
            tally.found += 1;
        }
        if self.store.insert_recon_break(&b, self.now()).await? {
            tracing::warn!(wallet = %wallet, day = %day, kind = b.kind.as_str(), subject = %b.subject, "reconciliation break");
            tally.new_breaks.push(b);
        }
        Ok(())
    }

    /// One bill line against our records: `None` when they agree.
    async fn judge_line(
        &self,
        wallet: Wallet,
        line: &BillLine,
        settings: &ReconcileSettings,
        tally: &mut Tally,
    ) -> Result<Option<Found>, ReconcileError> {
        let subject = subject_of(line);
        let theirs_words = format!(
            "{} {} {} ({})",
            line_kind(line.kind).as_str(),
            line.amount,
            line.wallet_status,
            line.wallet_ref
        );
        let missing = |what: &str| {
            let mut f = Found::open(
                BreakKind::MissingAtOurs,
                &subject,
                format!("no {what} {subject}"),
                theirs_words.clone(),
            );
            f.wallet_ref = Some(line.wallet_ref.clone());
            // A refund we never made of one of our payments names that order, so that the
            // merchant's day is not settled while it is open.
            f.order_key = line.out_trade_no.clone();
            f
        };
        match line.kind {
            BillLineKind::Refund => {
                let Some(refund_key) = line.out_refund_no.as_deref() else {
                    return Ok(Some(missing("refund")));
                };
                let Some(mut refund) = self.store.refund(refund_key).await? else {
                    return Ok(Some(missing("refund")));
                };
                let mut worked_note = None;
                if line.status == BillLineStatus::Succeeded
                    && refund.status == RefundStatus::Processing
                {
                    if let Some(now_refund) = self.work_open_refund(refund_key).await? {
                        refund = now_refund;
                    }
                    worked_note = Some(format!(
                        "the bill shows it refunded while we held it processing; the wallet was \
                         queried through the refund loop: now {}",
                        refund.status.as_str()
                    ));
                }
                if let Some(note) = worked_note.clone() {
                    if refund.status == RefundStatus::Succeeded {
                        tally.worked += 1;
                        let mut w = Found::open(
                            BreakKind::Status,
                            &subject,
                            "refund processing".to_owned(),
                            theirs_words.clone(),
                        );
                        w.status = BreakStatus::Worked;
                        w.note = Some(note);
                        w.order_key = Some(refund.order_key.clone());
                        w.refund_key = Some(refund.key.clone());
                        w.wallet_ref = Some(line.wallet_ref.clone());
                        self.record_break(wallet, line_day(wallet, line), w, tally)
                            .await?;
                        worked_note = None;
                    }
                }
                let mut f = None;
                let wallet_done = line.status != BillLineStatus::Failed;
                let ours_done = refund.status == RefundStatus::Succeeded;
                if wallet_done != ours_done {
                    f = Some(Found::open(
                        BreakKind::Status,
                        &subject,
                        format!("refund {}", refund.status.as_str()),
                        theirs_words.clone(),
                    ));
                } else if ours_done {
                    f = compare_amount(line, refund.amount, refund.cny_amount, &subject, None);
                    self.post_line_fee(wallet, line, &refund.order_key, Some(&refund.key))
                        .await?;
                }
                Ok(f.map(|mut f| {
                    f.note = f.note.take().or(worked_note);
                    f.order_key = Some(refund.order_key.clone());
                    f.refund_key = Some(refund.key.clone());
                    f.wallet_ref = Some(line.wallet_ref.clone());
                    f
                }))
            }
            BillLineKind::Payment | BillLineKind::Reversal => {
                let Some(key) = line.out_trade_no.as_deref() else {
                    return Ok(Some(missing("order")));
                };
                let Some(mut order) = self.store.order(key).await? else {
                    return Ok(Some(missing("order")));
                };
                let mut worked_note = None;
                if line.kind == BillLineKind::Payment
                    && line.status == BillLineStatus::Succeeded
                    && !order.status.is_final()
                {
                    let before = order.status;
                    if let Some(now_order) = self.work_open_order(key).await? {
                        order = now_order;
                    }
                    worked_note = Some(format!(
                        "the bill shows it paid while we held it {before}; the wallet was queried \
                         through the closing loop: now {}",
                        order.status
                    ));
                }
                let mut f = self
                    .judge_order_line(wallet, line, &order, settings)
                    .await?;
                if line.kind == BillLineKind::Payment
                    && line.status == BillLineStatus::Succeeded
                    && order.status == OrderStatus::Paid
                {
                    self.post_line_fee(wallet, line, &order.key, None).await?;
                }
                if let Some(note) = worked_note {
                    if order.status == OrderStatus::Paid {
                        tally.worked += 1;
                        let mut w = Found::open(
                            BreakKind::Status,
                            &subject,
                            "unknown or pending".to_owned(),
                            theirs_words.clone(),
                        );
                        w.status = BreakStatus::Worked;
                        w.note = Some(note);
                        w.order_key = Some(order.key.clone());
                        w.wallet_ref = Some(line.wallet_ref.clone());
                        // Recorded for the trail; the line is judged again as paid below.
                        self.record_break(wallet, line_day(wallet, line), w, tally)
                            .await?;
                    } else if let Some(f) = f.as_mut() {
                        f.note = Some(note);
                    }
                }
                Ok(f.map(|mut f| {
                    f.order_key = Some(order.key.clone());
                    f.wallet_ref = Some(line.wallet_ref.clone());
                    f
                }))
            }
        }
    }

    /// A payment or reversal line against its order.
    async fn judge_order_line(
        &self,
        wallet: Wallet,
        line: &BillLine,
        order: &Order,
        settings: &ReconcileSettings,
    ) -> Result<Option<Found>, ReconcileError> {
        let subject = &order.key;
        let theirs = format!(
            "{} {} {}",
            line_kind(line.kind).as_str(),
            line.amount,
            line.wallet_status
        );
        let status_break = |ours: String| {
            Some(Found::open(
                BreakKind::Status,
                subject,
                ours,
                theirs.clone(),
            ))
        };
        match (line.kind, order.status) {
            (BillLineKind::Payment, OrderStatus::Paid) => {
                if line.status != BillLineStatus::Succeeded {
                    return Ok(status_break("paid".to_owned()));
                }
                let ppm = settings.fee_ppm.get(&wallet).copied();
                Ok(compare_amount(
                    line,
                    order.total(),
                    order.cny_amount,
                    subject,
                    ppm,
                ))
            }
            (BillLineKind::Payment, OrderStatus::Reversed) => {
                // Paid and taken back: consistent when a reversal line for it is stored.
                let lines = self.store.recon_lines_of(wallet, subject).await?;
                if lines.iter().any(|l| l.kind == LineKind::Reversal) {
                    Ok(None)
                } else {
                    Ok(status_break("reversed".to_owned()))
                }
            }
            (BillLineKind::Payment, status) => Ok(status_break(status.to_string())),
            // A reversal of a payment we hold paid: the wallet took it back, we did not.
            (BillLineKind::Reversal, OrderStatus::Paid) => {
                Ok(status_break("paid, not reversed".to_owned()))
            }
            (BillLineKind::Reversal, _) => Ok(None),
            (BillLineKind::Refund, _) => Ok(None),
        }
    }

    /// Posts the fee a bill line states (`wallet_fees` against `wallet_clearing`), once per
    /// line: for payments of orders paid at ours and refunds done at ours, whatever else the
    /// line disagrees on, since it is what the wallet keeps.
    async fn post_line_fee(
        &self,
        wallet: Wallet,
        line: &BillLine,
        order_key: &str,
        refund_key: Option<&str>,
    ) -> Result<(), ReconcileError> {
        let Some(fee) = line.fee else {
            return Ok(());
        };
        let fee = fee.rounded();
        if fee.minor() == 0 {
            return Ok(());
        }
        let (kind, subject) = match refund_key {
            Some(r) => ("refund", r),
            None => ("payment", order_key),
        };
        let posting = wallet_fee_posting(wallet, wallet_fee_txn(wallet, kind, subject), fee)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        self.store
            .post_wallet_fee(&posting, order_key, refund_key, self.now())
            .await?;
        Ok(())
    }

    /// Claims an order that is not final and moves it one closing-loop step (a query to the
    /// wallet, recorded with its posting when paid). Returns the order as it then stands, or
    /// `None` when another worker holds it (the next run looks again).
    async fn work_open_order(&self, key: &str) -> Result<Option<Order>, ReconcileError> {
        let now = self.now();
        let mut lease = Lease::new(&self.worker, now + CLAIM_LEASE);
        let Some(order) = self
            .store
            .claim_order(key, &lease.holder, now, lease.until)
            .await?
        else {
            return Ok(None);
        };
        if let Err(e) = self.settle_step(order, &mut lease).await {
            tracing::warn!(order.key = key, error = %e, "reconciliation could not settle an open order; the closing loop will");
        }
        Ok(self.store.order(key).await?)
    }

    /// Claims a refund still in progress and moves it one refund-loop step (a query to the
    /// wallet; finished with its posting when done). Returns the refund as it then stands, or
    /// `None` when another worker holds it.
    async fn work_open_refund(
        &self,
        key: &str,
    ) -> Result<Option<qrgate_domain::Refund>, ReconcileError> {
        let now = self.now();
        let mut lease = Lease::new(&self.worker, now + CLAIM_LEASE);
        let Some(refund) = self
            .store
            .claim_refund(key, now, &lease.holder, lease.until)
            .await?
        else {
            return Ok(None);
        };
        if let Err(e) = self.refund_step(refund, &mut lease).await {
            tracing::warn!(refund.key = key, error = %e, "reconciliation could not finish a refund; the refund loop will");
        }
        Ok(self.store.refund(key).await?)
    }

    /// Our paid orders and succeeded refunds of the hold window against the stored lines:
    /// those no line names are held, and become `missing_at_wallet` once the window is over.
    /// Returns our items of `day` itself, for the run's totals.
    async fn judge_ours(
        &self,
        wallet: Wallet,
        day: NaiveDate,
        settings: &ReconcileSettings,
        tally: &mut Tally,
    ) -> Result<Vec<(LineKind, Money)>, ReconcileError> {
        let hold = i64::from(settings.hold_days);
        let from = bill_day_start(wallet, day - Duration::days(hold));
        let to = bill_day_start(wallet, day + Duration::days(1));
        let mut ours = Vec::new();
        let orders = self.store.orders_paid_between(wallet, from, to).await?;
        let refunds = self
            .store
            .refunds_succeeded_between(wallet, from, to)
            .await?;
        let mut items: Vec<OurItem> = Vec::new();
        for o in orders {
            let at = o.paid_at.unwrap_or(o.updated_at);
            items.push((LineKind::Payment, o.key.clone(), None, o.total(), at));
        }
        for r in refunds {
            let at = r.finished_at.unwrap_or(r.updated_at);
            items.push((
                LineKind::Refund,
                r.key.clone(),
                Some(r.order_key.clone()),
                r.amount,
                at,
            ));
        }
        for (kind, key, order_key, amount, at) in items {
            let item_day = bill_day(wallet, at);
            if item_day == day {
                ours.push((kind, amount));
            }
            if !self.store.recon_lines_of(wallet, &key).await?.is_empty() {
                continue;
            }
            if item_day + Duration::days(hold) > day {
                tally.held += 1;
                continue;
            }
            let mut f = Found::open(
                BreakKind::MissingAtWallet,
                &key,
                format!("{} {amount} on {item_day}", kind.as_str()),
                format!("in no bill from {item_day} to {day}"),
            );
            match kind {
                LineKind::Refund => {
                    f.refund_key = Some(key.clone());
                    f.order_key = order_key;
                }
                LineKind::Payment | LineKind::Reversal => f.order_key = Some(key.clone()),
            }
            self.record_break(wallet, day, f, tally).await?;
        }
        Ok(ours)
    }

    /// The provider's margin on a merchant's day (the merchant's time zone): per currency,
    /// our fees, the wallets' fees on the same payments and refunds (posted at
    /// reconciliation), and the difference. The wallets' fees are known only for lines
    /// reconciled so far; UnionPay's are in CNY, so they sit in the CNY row.
    pub async fn fee_margin(
        &self,
        merchant: &qrgate_domain::MerchantId,
        day: NaiveDate,
    ) -> Result<Vec<FeeMargin>, EngineError> {
        let m = self.merchant(merchant).await?;
        let from = crate::console::start_of_day(&m, day)?;
        let to = crate::console::start_of_day(&m, day + Duration::days(1))?;
        Ok(self
            .store
            .fee_margin(merchant, from, to)
            .await?
            .into_iter()
            .map(|(currency, ours, wallets)| FeeMargin {
                ours: Money::new(ours, currency),
                wallets: Money::new(wallets, currency),
                margin: Money::new(ours - wallets, currency),
            })
            .collect())
    }

    /// The wallets this engine can call, whose bills can be reconciled.
    pub fn enabled_wallets(&self) -> Vec<Wallet> {
        self.wallets.enabled()
    }

    /// Breaks, newest first (at most `limit`), optionally of one day, wallet and status.
    pub async fn recon_breaks(
        &self,
        day: Option<NaiveDate>,
        wallet: Option<Wallet>,
        status: Option<BreakStatus>,
        limit: i64,
    ) -> Result<Vec<ReconBreak>, EngineError> {
        Ok(self
            .store
            .recon_breaks(day, wallet, status, limit.clamp(1, 10_000))
            .await?)
    }

    pub async fn recon_break(&self, id: i64) -> Result<ReconBreak, EngineError> {
        self.store
            .recon_break(id)
            .await?
            .ok_or(EngineError::NotFound("break"))
    }

    /// The runs of a day, oldest first.
    pub async fn recon_runs(
        &self,
        day: NaiveDate,
        wallet: Option<Wallet>,
    ) -> Result<Vec<ReconRun>, EngineError> {
        Ok(self.store.recon_runs(day, wallet).await?)
    }

    /// A person accepts an open break: `who` and `note` (why) are kept with the time. Refused
    /// (changing nothing) without a name or a note, or when the break is not open.
    pub async fn resolve_break(
        &self,
        id: i64,
        who: &str,
        note: &str,
    ) -> Result<ReconBreak, EngineError> {
        if who.trim().is_empty() {
            return Err(EngineError::Invalid(
                "say who resolves the break".to_owned(),
            ));
        }
        if note.trim().is_empty() || note.len() > 2000 {
            return Err(EngineError::Invalid(
                "a resolution needs a note (at most 2000 bytes) saying why".to_owned(),
            ));
        }
        let current = self.recon_break(id).await?;
        if current.status != BreakStatus::Open {
            return Err(EngineError::Invalid(format!(
                "break {id} is {}, not open",
                current.status.as_str()
            )));
        }
        if !self
            .store
            .resolve_recon_break(id, who.trim(), note.trim(), self.now())
            .await?
        {
            return Err(EngineError::Invalid(format!(
                "break {id} is no longer open"
            )));
        }
        self.recon_break(id).await
    }
}

/// The bill day a line belongs to.
fn line_day(wallet: Wallet, line: &BillLine) -> NaiveDate {
    bill_day(wallet, line.time)
}

/// Compares a line's currency, amount and (when `fee_ppm` is given) fee with ours: `ours` in
/// our pricing currency, `ours_cny` what the customer paid in CNY (for bills kept in CNY).
fn compare_amount(
    line: &BillLine,
    ours: Money,
    ours_cny: Option<Money>,
    subject: &str,
    fee_ppm: Option<u32>,
) -> Option<Found> {
    let expected = if line.amount.currency() == ours.currency() {
        ours
    } else if let Some(cny) = ours_cny.filter(|c| c.currency() == line.amount.currency()) {
        cny
    } else {
        return Some(Found::open(
            BreakKind::Currency,
            subject,
            format!("{ours}"),
            format!("{}", line.amount),
        ));
    };
    if expected.minor() != line.amount.minor() {
        return Some(Found::open(
            BreakKind::Amount,
            subject,
            format!("{expected}"),
            format!("{}", line.amount),
        ));
    }
    if let (Some(ppm), Some(fee)) = (fee_ppm, line.fee) {
        if fee.currency() == expected.currency() {
            let want = fee_on(expected.minor(), ppm);
            let got = fee.rounded();
            if got.minor() != want {
                return Some(Found::open(
                    BreakKind::Fee,
                    subject,
                    format!("{} at {ppm} ppm", Money::new(want, expected.currency())),
                    format!("{got}"),
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_are_rounded_half_up_per_line() {
        assert_eq!(fee_on(1000, 6000), 6);
        assert_eq!(fee_on(125, 6000), 1); // 0.75 → 1
        assert_eq!(fee_on(83, 6000), 0); // 0.498 → 0
        assert_eq!(fee_on(0, 6000), 0);
    }
}
