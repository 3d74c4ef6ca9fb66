//! Code payments waiting on their wallet call while another path may settle the order first
//! (the wallet's notification, the closing loop's query, another node). A waiting payment
//! registers its order; whoever writes a final state for that order on this node wakes it;
//! a slow poll of the database covers a settlement written by another node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// The orders whose code payment is waiting, each with the handle that wakes it.
#[derive(Default)]
pub(crate) struct SettleWatch {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A registration; dropping it stops the watch (the payment returned, or gave up).
pub(crate) struct Watching<'a> {
    watch: &'a SettleWatch,
    key: String,
    pub(crate) notify: Arc<Notify>,
}

impl SettleWatch {
    /// Watches `key` until the returned registration is dropped.
    pub(crate) fn watch(&self, key: &str) -> Watching<'_> {
        let notify = Arc::new(Notify::new());
        self.lock().insert(key.to_owned(), Arc::clone(&notify));
        Watching {
            watch: self,
            key: key.to_owned(),
            notify,
        }
    }

    /// The order `key` reached a final state: wakes its waiting payment, if any. A wake-up
    /// before the payment waits is kept (a `Notify` permit), so none is lost.
    pub(crate) fn settled(&self, key: &str) {
        if let Some(notify) = self.lock().get(key) {
            notify.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        // Nothing panics while the lock is held; a poisoned map is still whole.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.watch.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_settlement_wakes_only_its_own_payment_and_is_not_lost() {
        let watch = SettleWatch::default();
        let a = watch.watch("A");
        let b = watch.watch("B");
        // Settled before anyone waits: the permit is kept.
        watch.settled("A");
        tokio::time::timeout(std::time::Duration::from_secs(1), a.notify.notified())
            .await
            .expect("A is woken");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), b.notify.notified())
                .await
                .is_err(),
            "B is not woken by A"
        );
        drop(a);
        watch.settled("A"); // nobody waits: nothing happens
        assert_eq!(watch.lock().len(), 1);
        drop(b);
        assert!(watch.lock().is_empty());
    }
}
