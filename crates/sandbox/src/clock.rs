//! The sandbox's clock: the system time plus an offset that tests and people can move
//! forward through the control API, so "confirmed after 10 s" or "revoked after 45 s" happen
//! without waiting.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock forward (never back: wallets' state only moves forward in time).
    pub fn advance(&self, by: Duration) {
        let ms = by.num_milliseconds().max(0);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock `by` further in the past. Only for a sandbox that holds no trade yet
    /// (its state must never see time go back): tests that replay days already over in real
    /// time, because a gateway never asks for the bill of a day that has not ended.
    pub fn start_earlier(&self, by: Duration) {
        let ms = by.num_milliseconds().max(0);
        self.offset_ms.fetch_sub(ms, Ordering::SeqCst);
    }

    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}
