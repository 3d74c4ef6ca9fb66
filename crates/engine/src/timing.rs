//! How long a request spent waiting on wallets, so that the gateway can report its own share
//! of a request's time (`Server-Timing: wallet;dur=…`, used by `qrgate bench`).
//!
//! A task-local sum: every wallet call the engine makes on behalf of a request adds its
//! latency (see `Engine::event_with`, which every wallet call goes through). Calls made
//! outside [`timed`] (the background loops) are not counted anywhere.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

tokio::task_local! {
    static WALLET_TIME: Cell<Duration>;
}

/// Runs `f`, returning its output and the time its wallet calls took.
pub async fn timed<F: Future>(f: F) -> (F::Output, Duration) {
    WALLET_TIME
        .scope(Cell::new(Duration::ZERO), async {
            let out = f.await;
            let waited = WALLET_TIME.with(Cell::get);
            (out, waited)
        })
        .await
}

/// Adds a wallet call's latency to the current request's sum, if there is one.
pub(crate) fn add(latency: Duration) {
    let _ = WALLET_TIME.try_with(|t| t.set(t.get() + latency));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wallet_time_is_summed_within_a_request_only() {
        add(Duration::from_millis(5)); // outside: ignored
        let ((), waited) = timed(async {
            add(Duration::from_millis(3));
            tokio::task::yield_now().await;
            add(Duration::from_millis(4));
        })
        .await;
        assert_eq!(waited, Duration::from_millis(7));
    }
}
