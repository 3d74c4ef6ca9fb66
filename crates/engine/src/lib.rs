//! qrgate's use cases, written once and called by every entry point: the HTTP server, the CLI
//! and the background workers.
//!
//! The engine owns the rules (who may call, which key is valid, where a rate comes from); it
//! speaks domain types and knows nothing of HTTP or of the OTTPAY wire format, which live in
//! `qrgate-http`. It never logs secrets: sign keys leave it only as [`SignKeyPlain`], whose
//! `Debug` is redacted.

mod callbacks;
mod clock;
mod demo;
mod error;
mod fx;
mod keys;
mod merchants;
mod payments;
mod qr_orders;
mod refunds;
mod till;
mod till_guard;
mod timing;

pub use callbacks::{check_callback_url, is_private, CallbackSettings, NotificationFormat};
pub use clock::{Clock, FixedClock, SystemClock};
pub use demo::{DemoMerchant, DEMO_TILL_PIN};
pub use error::EngineError;
pub use fx::FxError;
pub use keys::{MasterKey, MasterKeyError, SignKeyPlain};
pub use merchants::{CreatedMerchant, MerchantRequest, PosAuthError, PosCredentials, RotatedKey};
pub use payments::{ClosingPolicy, CodePayment, PaymentError, Wallets};
pub use qr_orders::{NotificationError, QrPayment};
pub use refunds::{RefundError, RefundOrder, RefundView, MAX_REFUND_SENDS, REFUND_FOLLOW_UP};
pub use till::{
    check_pin, SessionError, SignInAttempt, SignInError, SignedIn, TillSession, FIRST_PIN_LOCK,
    KNOWN_TILL_LIFETIME, LOCKING_PIN_ATTEMPT, MAX_PIN_LOCK, PIN_ATTEMPT_WINDOW, SESSION_IDLE,
    SESSION_LIFETIME,
};
pub use till_guard::SignInLimits;
pub use timing::timed;

use std::sync::Arc;

use qrgate_store::Store;

/// The engine: a store, the master key that protects sign keys, and a clock.
/// Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    wallets: Arc<Wallets>,
    callback_settings: Arc<CallbackSettings>,
    http: reqwest::Client,
    till_guard: Arc<till::TillGuard>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine over a migrated store. Checks that `master` is the key this database's
    /// sign keys were encrypted with (recording its check value on first use), so that a wrong
    /// master key fails at start-up rather than on the first payment.
    pub async fn new(
        store: Store,
        master: MasterKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        let check = master.check_value();
        let recorded = store
            .meta_insert_if_absent(keys::MASTER_KEY_CHECK, &check, clock.now())
            .await?;
        if recorded != check {
            return Err(EngineError::MasterKey(MasterKeyError::Mismatch));
        }
        Ok(Engine {
            store,
            master: Arc::new(master),
            clock,
            wallets: Arc::new(Wallets::default()),
            callback_settings: Arc::new(CallbackSettings::default()),
            http: reqwest::Client::new(),
            till_guard: Arc::new(till::TillGuard::new(&SignInLimits::default())),
        })
    }

    /// Checks `master` against the value recorded in `store` without writing anything:
    /// `Some(true)` matches, `Some(false)` differs, `None` when none is recorded yet.
    pub async fn check_master_key(
        store: &Store,
        master: &MasterKey,
    ) -> Result<Option<bool>, EngineError> {
        let recorded = store.meta(keys::MASTER_KEY_CHECK).await?;
        Ok(recorded.map(|r| r == master.check_value()))
    }

    /// The same engine charging through `wallets`.
    pub fn with_wallets(mut self, wallets: Wallets) -> Engine {
        self.wallets = Arc::new(wallets);
        self
    }

    /// The same engine with these limits on signing in to the till (in this process; the
    /// count of PIN attempts in the database is not affected).
    pub fn with_sign_in_limits(mut self, limits: &SignInLimits) -> Engine {
        self.till_guard = Arc::new(till::TillGuard::new(limits));
        self
    }

    /// The same engine sending merchant notifications with `settings`.
    pub fn with_callback_settings(mut self, settings: CallbackSettings) -> Engine {
        self.callback_settings = Arc::new(settings);
        self
    }

    pub fn callback_settings(&self) -> &CallbackSettings {
        &self.callback_settings
    }

    pub fn wallets(&self) -> &Wallets {
        &self.wallets
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
