//! qrgate's use cases, written once and called by every entry point: the HTTP server, the CLI
//! and the background workers.
//!
//! The engine owns the rules (who may call, which key is valid, where a rate comes from); it
//! speaks domain types and knows nothing of HTTP or of the OTTPAY wire format, which live in
//! `qrgate-http`. It never logs secrets: sign keys leave it only as [`SignKeyPlain`], whose
//! `Debug` is redacted.

mod callback_history;
mod callbacks;
mod cancel;
mod clock;
mod console;
mod daily;
mod demo;
mod error;
mod fx;
mod import;
mod keys;
mod loops;
mod merchants;
mod payments;
mod qr_orders;
mod reconcile;
mod refunds;
mod settle;
mod settle_watch;
mod till;
mod till_guard;
mod timing;

pub use callback_history::CallbackHistory;
pub use callbacks::{check_callback_url, is_special, CallbackSettings, NotificationFormat};
pub use cancel::{
    CancelError, CancelOutcome, Cancelled, LatePaymentAction, LatePaymentError, MAX_LATE_PAYMENTS,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use console::{
    console_sign_in_nonce, Actor, Attention, ConsoleError, ConsoleRule, ConsoleSession,
    ConsoleSignInError, ConsoleSignedIn, Dashboard, DaySales, DemoConsoleUsers, OrderDetail,
    OrderQuery, OrdersPage, SignInLink, Summary, TotpEnrollment, WalletHealth, WalletSummary,
    CONSOLE_SESSION_IDLE, CONSOLE_SESSION_LIFETIME, DEMO_CONSOLE_PASSWORD, EXPORT_PAGE, MAX_PAGE,
    MAX_PASSWORD_FAILURES, PASSWORD_LOCK, PASSWORD_MAX_LEN, PASSWORD_MIN_LEN,
    SIGN_IN_LINK_LIFETIME,
};
pub use demo::{DemoMerchant, DEMO_TILL_PIN};
pub use error::EngineError;
pub use fx::FxError;
pub use import::{
    ImportError, ImportRefusal, ImportRefusalReason, ImportedMerchant, MerchantImport,
    MAX_IMPORT_MERCHANTS,
};
pub use keys::{
    MasterKey, MasterKeyError, SignKeyFormatError, SignKeyPlain, SIGN_KEY_MAX_LEN, SIGN_KEY_MIN_LEN,
};
pub use loops::{LoopBounds, CLOSING_BOUNDS, NOTIFICATION_BOUNDS, REFUND_BOUNDS};
pub use merchants::{CreatedMerchant, MerchantRequest, PosAuthError, PosCredentials, RotatedKey};
pub use payments::{ClosingPolicy, CodePayment, PaymentError, Wallets, MAX_AMOUNT_MINOR};
pub use qr_orders::{payable_until, NotificationError, QrPayment};
pub use reconcile::{FeeMargin, ReconcileError, ReconcileReport, ReconcileSettings};
pub use refunds::{RefundError, RefundOrder, RefundView, MAX_REFUND_SENDS, REFUND_FOLLOW_UP};
pub use settle::{
    payout_csv, statement_csv, statement_html, statement_of, Language, SettleOutcome,
};
pub use till::{
    check_pin, ApprovalError, SessionError, SignInAttempt, SignInError, SignedIn, TillSession,
    ZReport, FIRST_PIN_LOCK, KNOWN_TILL_LIFETIME, LOCKING_PIN_ATTEMPT, MAX_PIN_LOCK,
    PIN_ATTEMPT_WINDOW, SESSION_IDLE, SESSION_LIFETIME,
};
pub use till_guard::SignInLimits;
pub use timing::timed;

/// The store's records that the console's use cases return, so that the console depends on
/// the engine alone.
pub use qrgate_store::{
    AuditEntry, Callback, CallbackAttempt, CallbackRecord, ConsoleUser, DayLine, FailingCallback,
    LatePayment, LedgerEntry, NewBreak, OrderEvent, PageCursor, ReconBreak, ReconRun, RunOutcome,
    Settlement, StatementLine, WalletCalls,
};

use std::sync::Arc;

use qrgate_store::Store;

/// The engine: a store, the master key that protects sign keys, and a clock.
/// Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    /// The node this process runs as, if it has a lasting identity ([`Engine::with_node`]).
    node: Option<Arc<str>>,
    /// This process's name in claims and on timelines: `<node>#<run>`, the run being new at
    /// every start.
    worker: Arc<str>,
    wallets: Arc<Wallets>,
    callback_settings: Arc<CallbackSettings>,
    /// Delivers merchant notifications; built from `callback_settings`.
    callback_client: reqwest::Client,
    /// Code payments waiting on their wallet call, woken when their order settles otherwise.
    settle_watch: Arc<settle_watch::SettleWatch>,
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
            node: None,
            worker: format!("p{}#{}", std::process::id(), run_token()).into(),
            wallets: Arc::new(Wallets::default()),
            callback_client: callbacks::client(&CallbackSettings::default())
                .map_err(EngineError::HttpClient)?,
            callback_settings: Arc::new(CallbackSettings::default()),
            settle_watch: Arc::default(),
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
    pub fn with_callback_settings(
        mut self,
        settings: CallbackSettings,
    ) -> Result<Engine, EngineError> {
        self.callback_client = callbacks::client(&settings).map_err(EngineError::HttpClient)?;
        self.callback_settings = Arc::new(settings);
        Ok(self)
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

    /// The same engine running as `node`: a name that outlives the process (kept in its
    /// data directory, say), at most 64 letters, digits, `.`, `_` or `-`. Its claims carry it,
    /// so that [`Engine::release_earlier_claims`] can free what an earlier run of the same
    /// node held when it died. The caller must make sure that no two live processes run as
    /// one node.
    pub fn with_node(mut self, node: &str) -> Result<Engine, EngineError> {
        let valid = !node.is_empty()
            && node.len() <= 64
            && node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(EngineError::Invalid(format!(
                "invalid node name {node:?}: 1 to 64 letters, digits, '.', '_' or '-'"
            )));
        }
        self.worker = format!("{node}#{}", run_token()).into();
        self.node = Some(node.into());
        Ok(self)
    }

    /// This process's name in claims and on timelines.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Releases the claims an earlier run of this node held on orders, refunds and
    /// notifications (it died with them: `kill -9`, a crash, a power cut), so that they are
    /// worked again at once rather than when their leases run out. Call it at start, before
    /// the loops, and only as the node's one live process. Nothing without a node.
    pub async fn release_earlier_claims(&self) -> Result<u64, EngineError> {
        let Some(node) = &self.node else {
            return Ok(0);
        };
        Ok(self.store.release_claims(&format!("{node}#")).await?)
    }
}

/// A short random name for one run of the process.
fn run_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}
