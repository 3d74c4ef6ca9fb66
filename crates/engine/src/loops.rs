//! How the background loops (closing, refunds, merchant notifications) schedule their work:
//! due rows are claimed in the database and worked concurrently, bounded per lane (the
//! wallet, for orders and refunds; the merchant, for notifications) and in total, so that one
//! slow wallet or one slow merchant never holds up the others.
//!
//! Rules:
//! - Claim only what can start now: a claim takes at most as many rows as there are free
//!   slots, skips the lanes that are full, and never more than the fullest open lane can
//!   take, so a claimed row never waits behind a full lane while its lease runs.
//! - Each claim has a holder name of its own (`<worker>.<n>`), so two tasks of one process
//!   never pass for each other.
//! - A worker starts a wallet call only while its lease covers the call's whole timeout and
//!   a margin for clocks ([`LEASE_COVER`]), renewing it first if needed. A lease therefore
//!   never runs out during a call, and whoever claims the row after it ran out cannot act
//!   while the earlier holder still does, even if that one lost the database.
//! - On shutdown, the loop stops claiming and waits for the work in hand (the caller bounds
//!   how long).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use qrgate_domain::{MerchantId, Wallet};
use tokio::task::{Id, JoinSet};

use crate::{Engine, EngineError};

/// The lease a claim takes on an order or a refund: one wallet call (`CALL_TIMEOUT`, 20 s) and
/// a margin. Short, so that the rows of a node that died are free again soon even if it
/// never comes back; renewed before each further call of a step.
pub(crate) const CLAIM_LEASE: Duration = Duration::seconds(30);
/// How much lease must be left to start a wallet call: its timeout, and 5 s for the clocks
/// of two nodes to disagree.
pub(crate) const LEASE_COVER: Duration = Duration::seconds(25);

/// How much work one loop has in hand at once on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopBounds {
    /// In one lane (a wallet; a merchant for notifications).
    pub per_lane: usize,
    /// In all lanes together.
    pub total: usize,
}

/// The closing loop: 16 orders of each wallet at once. A wallet answering in 8 s is then
/// still asked about each of its open orders every 8 s or so, not once per round of all.
pub const CLOSING_BOUNDS: LoopBounds = LoopBounds {
    per_lane: 16,
    total: 48,
};
/// The refund loop: 8 refunds of each wallet at once.
pub const REFUND_BOUNDS: LoopBounds = LoopBounds {
    per_lane: 8,
    total: 24,
};
/// Merchant notifications: 4 at once to each merchant, 32 in all. Bounded per merchant (the
/// destination), not per wallet: what can be slow is the merchant's endpoint, and one
/// merchant's endpoint that hangs then holds 4 slots, never the others' deliveries.
pub const NOTIFICATION_BOUNDS: LoopBounds = LoopBounds {
    per_lane: 4,
    total: 32,
};

/// How long an idle loop sleeps before it looks for due work again.
const IDLE_PAUSE: StdDuration = StdDuration::from_millis(500);
/// The longest pause after failed claims (the database is away), doubling from
/// [`IDLE_PAUSE`].
const MAX_ERROR_PAUSE: StdDuration = StdDuration::from_secs(30);

/// Numbers the claims of this process, so that each has a holder name of its own.
static CLAIMS: AtomicU64 = AtomicU64::new(1);

/// A claim on one row as its holder sees it: the holder's name in the row and when the lease
/// ends.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub holder: String,
    pub until: DateTime<Utc>,
}

impl Lease {
    /// A new holder name for one claim by `worker`, with its lease.
    pub(crate) fn new(worker: &str, until: DateTime<Utc>) -> Lease {
        Lease {
            holder: format!("{worker}.{}", CLAIMS.fetch_add(1, Ordering::Relaxed)),
            until,
        }
    }
}

/// Which table a lease is on, to renew it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Leased {
    Order,
    Refund,
}

/// The work one loop has in hand: tasks, each in its lane.
pub(crate) struct InFlight<L> {
    bounds: LoopBounds,
    tasks: JoinSet<()>,
    lane_of: HashMap<Id, L>,
    per_lane: HashMap<L, usize>,
}

impl<L: Clone + Eq + Hash> InFlight<L> {
    pub(crate) fn new(bounds: LoopBounds) -> InFlight<L> {
        InFlight {
            bounds: LoopBounds {
                per_lane: bounds.per_lane.max(1),
                total: bounds.total.max(1),
            },
            tasks: JoinSet::new(),
            lane_of: HashMap::new(),
            per_lane: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// The lanes with no free slot: a claim skips their rows.
    pub(crate) fn full_lanes(&self) -> Vec<L> {
        self.per_lane
            .iter()
            .filter(|(_, n)| **n >= self.bounds.per_lane)
            .map(|(lane, _)| lane.clone())
            .collect()
    }

    /// How many rows one claim may take: no more than the free slots, and no more than the
    /// fullest lane still open can take, whichever lanes the rows turn out to be in.
    pub(crate) fn claim_limit(&self) -> usize {
        let free = self.bounds.total.saturating_sub(self.tasks.len());
        let lane_room = self
            .per_lane
            .values()
            .filter(|n| **n < self.bounds.per_lane)
            .map(|n| self.bounds.per_lane - n)
            .min()
            .unwrap_or(self.bounds.per_lane);
        free.min(lane_room)
    }

    /// Starts `work` in `lane`.
    pub(crate) fn spawn(&mut self, lane: L, work: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(work);
        self.lane_of.insert(handle.id(), lane.clone());
        *self.per_lane.entry(lane).or_default() += 1;
    }

    fn finished(&mut self, result: Result<(Id, ()), tokio::task::JoinError>) {
        let id = match result {
            Ok((id, ())) => id,
            Err(e) => {
                if e.is_panic() {
                    tracing::error!(error = %e, "a background step panicked; its row is retried when its lease runs out");
                }
                e.id()
            }
        };
        if let Some(lane) = self.lane_of.remove(&id) {
            if let Some(n) = self.per_lane.get_mut(&lane) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_lane.remove(&lane);
                }
            }
        }
    }

    /// Frees the slots of the work that has finished.
    pub(crate) fn reap(&mut self) {
        while let Some(result) = self.tasks.try_join_next_with_id() {
            self.finished(result);
        }
    }

    /// Waits until one piece of work finishes; at once if there is none.
    pub(crate) async fn one_finished(&mut self) {
        if let Some(result) = self.tasks.join_next_with_id().await {
            self.finished(result);
        }
    }

    /// Waits for all the work in hand.
    pub(crate) async fn all_finished(&mut self) {
        while let Some(result) = self.tasks.join_next_with_id().await {
            self.finished(result);
        }
    }
}

/// Paces a loop: after each attempt to start work, waits for a slot to free up, for the
/// idle pause, or (after an error) for a growing pause; and notices the stop signal.
struct Pacer {
    name: &'static str,
    error_pause: StdDuration,
}

impl Pacer {
    fn new(name: &'static str) -> Pacer {
        Pacer {
            name,
            error_pause: IDLE_PAUSE,
        }
    }

    /// Returns false when the loop must stop.
    async fn wait<L: Clone + Eq + Hash>(
        &mut self,
        started: Result<usize, EngineError>,
        in_flight: &mut InFlight<L>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        let (pause, wake_on_finish) = match started {
            Ok(_) => {
                self.error_pause = IDLE_PAUSE;
                (IDLE_PAUSE, true)
            }
            Err(e) => {
                let pause = self.error_pause;
                tracing::warn!(error = %e, pause_ms = pause.as_millis(), "{} cannot claim due work; retrying", self.name);
                self.error_pause = (self.error_pause * 2).min(MAX_ERROR_PAUSE);
                (pause, false)
            }
        };
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
            // A slot is free again: claim at once rather than after the pause.
            () = in_flight.one_finished(), if wake_on_finish && in_flight.len() > 0 => {}
            () = tokio::time::sleep(pause) => {}
        }
        !*stop.borrow()
    }
}

impl Engine {
    /// Makes sure the lease on a row covers one more wallet call ([`LEASE_COVER`]), renewing
    /// it if it would not. False when the claim was lost (its lease ran out and someone else
    /// may hold the row): the caller must not call the wallet.
    pub(crate) async fn cover_call(
        &self,
        leased: Leased,
        key: &str,
        lease: &mut Lease,
    ) -> Result<bool, EngineError> {
        let now = self.now();
        if lease.until - now >= LEASE_COVER {
            return Ok(true);
        }
        let until = now + CLAIM_LEASE;
        let renewed = match leased {
            Leased::Order => {
                self.store
                    .renew_order_claim(key, &lease.holder, now, until)
                    .await?
            }
            Leased::Refund => {
                self.store
                    .renew_refund_claim(key, &lease.holder, now, until)
                    .await?
            }
        };
        if renewed {
            lease.until = until;
        } else {
            tracing::warn!(key, holder = %lease.holder, "the claim ran out before the next wallet call; leaving the row to its new holder");
        }
        Ok(renewed)
    }

    /// Claims the due orders this worker can start now and starts each one's step, bounded
    /// per wallet. Returns how many it started.
    pub(crate) async fn start_due_orders(
        &self,
        worker: &str,
        in_flight: &mut InFlight<Wallet>,
    ) -> Result<usize, EngineError> {
        let mut started = 0;
        loop {
            in_flight.reap();
            let limit = in_flight.claim_limit();
            if limit == 0 {
                return Ok(started);
            }
            let now = self.now();
            let lease = Lease::new(worker, now + CLAIM_LEASE);
            let claimed = self
                .store
                .claim_due_orders_except(
                    now,
                    &lease.holder,
                    lease.until,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    &in_flight.full_lanes(),
                )
                .await?;
            let n = claimed.len();
            for order in claimed {
                let engine = self.clone();
                let mut lease = lease.clone();
                in_flight.spawn(order.wallet, async move {
                    let key = order.key.clone();
                    if let Err(e) = engine.settle_step(order, &mut lease).await {
                        tracing::warn!(order.key = %key, error = %e, "closing loop step failed; it will be retried");
                    }
                });
            }
            started += n;
            if n < limit {
                return Ok(started);
            }
        }
    }

    /// Claims the due refunds this worker can start now and starts each one's step, bounded
    /// per wallet. Returns how many it started.
    pub(crate) async fn start_due_refunds(
        &self,
        worker: &str,
        in_flight: &mut InFlight<Wallet>,
    ) -> Result<usize, EngineError> {
        let mut started = 0;
        loop {
            in_flight.reap();
            let limit = in_flight.claim_limit();
            if limit == 0 {
                return Ok(started);
            }
            let now = self.now();
            let lease = Lease::new(worker, now + CLAIM_LEASE);
            let claimed = self
                .store
                .claim_due_refunds_except(
                    now,
                    &lease.holder,
                    lease.until,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    &in_flight.full_lanes(),
                )
                .await?;
            let n = claimed.len();
            for refund in claimed {
                let engine = self.clone();
                let mut lease = lease.clone();
                in_flight.spawn(refund.wallet, async move {
                    let key = refund.key.clone();
                    if let Err(e) = engine.refund_step(refund, &mut lease).await {
                        tracing::warn!(refund.key = %key, error = %e, "refund loop step failed; it will be retried");
                    }
                });
            }
            started += n;
            if n < limit {
                return Ok(started);
            }
        }
    }

    /// Claims the due merchant notifications this worker can start now and starts each
    /// delivery, bounded per merchant. Returns how many it started.
    pub(crate) async fn start_due_callbacks(
        &self,
        worker: &str,
        in_flight: &mut InFlight<MerchantId>,
    ) -> Result<usize, EngineError> {
        let mut started = 0;
        loop {
            in_flight.reap();
            let limit = in_flight.claim_limit();
            if limit == 0 {
                return Ok(started);
            }
            let now = self.now();
            let lease = Lease::new(worker, now + crate::callbacks::CLAIM_LEASE);
            let claimed = self
                .store
                .claim_due_callbacks_except(
                    now,
                    &lease.holder,
                    lease.until,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    &in_flight.full_lanes(),
                )
                .await?;
            let n = claimed.len();
            for callback in claimed {
                let engine = self.clone();
                in_flight.spawn(callback.merchant_id.clone(), async move {
                    let key = callback.order_key.clone();
                    if let Err(e) = engine.deliver(callback).await {
                        tracing::warn!(order.key = %key, error = %e, "notification delivery not recorded; it will be retried");
                    }
                });
            }
            started += n;
            if n < limit {
                return Ok(started);
            }
        }
    }

    /// The closing loop: settles every order the wallets left open, until `stop` turns true,
    /// then waits for the steps in hand. Claims as this engine's worker
    /// ([`Engine::with_node`]).
    pub async fn run_closing_loop(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let worker = self.worker.to_string();
        let mut in_flight = InFlight::new(CLOSING_BOUNDS);
        let mut pacer = Pacer::new("closing loop");
        loop {
            let started = self.start_due_orders(&worker, &mut in_flight).await;
            if !pacer.wait(started, &mut in_flight, &mut stop).await {
                break;
            }
        }
        in_flight.all_finished().await;
    }

    /// The refund loop: finishes every refund the wallets have not, until `stop` turns true,
    /// then waits for the steps in hand.
    pub async fn run_refund_loop(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let worker = self.worker.to_string();
        let mut in_flight = InFlight::new(REFUND_BOUNDS);
        let mut pacer = Pacer::new("refund loop");
        loop {
            let started = self.start_due_refunds(&worker, &mut in_flight).await;
            if !pacer.wait(started, &mut in_flight, &mut stop).await {
                break;
            }
        }
        in_flight.all_finished().await;
    }

    /// Delivers merchant notifications until `stop` turns true, then waits for the
    /// deliveries in hand.
    pub async fn run_notification_loop(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let worker = self.worker.to_string();
        let mut in_flight = InFlight::new(NOTIFICATION_BOUNDS);
        let mut pacer = Pacer::new("notification loop");
        loop {
            let started = self.start_due_callbacks(&worker, &mut in_flight).await;
            if !pacer.wait(started, &mut in_flight, &mut stop).await {
                break;
            }
        }
        in_flight.all_finished().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_claim_never_takes_more_than_the_fullest_open_lane_or_the_total_can_start() {
        let mut work: InFlight<&str> = InFlight::new(LoopBounds {
            per_lane: 3,
            total: 5,
        });
        assert_eq!(work.claim_limit(), 3);
        let (open, gate) = tokio::sync::watch::channel(false);
        let wait = |mut gate: tokio::sync::watch::Receiver<bool>| async move {
            let _ = gate.wait_for(|open| *open).await;
        };
        work.spawn("a", wait(gate.clone()));
        work.spawn("a", wait(gate.clone()));
        // Lane a has room for one more; an empty lane has three, the total three.
        assert_eq!(work.claim_limit(), 1);
        work.spawn("a", wait(gate.clone()));
        assert_eq!(work.full_lanes(), vec!["a"]);
        assert_eq!(work.claim_limit(), 2, "two slots left in total");
        work.spawn("b", wait(gate.clone()));
        work.spawn("c", wait(gate.clone()));
        assert_eq!(work.claim_limit(), 0);
        open.send(true).unwrap();
        work.all_finished().await;
        assert_eq!(work.len(), 0);
        assert!(work.full_lanes().is_empty());
        assert_eq!(work.claim_limit(), 3);
    }
}
