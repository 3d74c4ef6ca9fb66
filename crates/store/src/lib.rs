//! qrgate's storage: one [`Store`] over SQLite (the default, one file in the data directory)
//! or PostgreSQL (production, several gateway nodes).
//!
//! Both backends run the same SQL through sqlx's `Any` driver; where they differ (locking,
//! claiming rows), the difference stays inside one method, branching on [`Backend`]. Each
//! backend has its own migration directory, embedded in the binary. Row types are private:
//! the public API speaks domain types only, and no sqlx type escapes (see [`StoreError`]).
//!
//! Conventions: money as integer minor units, currencies as ISO codes, statuses as text with a
//! `CHECK` listing the enum's values, timestamps as UTC milliseconds since the epoch, and
//! `created_at` / `updated_at` on every table.

mod callback_history;
mod callbacks;
mod claims;
mod console;
mod console_queries;
mod error;
mod fx;
mod ledger;
mod merchants;
mod meta;
mod orders;
mod pool;
mod recon;
mod refunds;
mod settle;
mod till;
mod time;
mod writer;

pub use callback_history::CallbackRecord;
pub use callbacks::{Callback, CallbackAttempt, CallbackStatus};
pub use claims::Claim;
pub use console::{
    AuditEntry, ConsoleSessionRecord, ConsoleUser, ConsoleUserAuth, NewAuditEntry, NewConsoleUser,
};
pub use console_queries::{
    FailingCallback, OrderFilter, PageCursor, RefundGroup, SalesGroup, WalletCalls, ERROR_OUTCOMES,
};
pub use error::StoreError;
pub use ledger::{AccountBalance, LedgerEntry};
pub use merchants::{MerchantKeys, NewMerchant, NewMerchantCreated, ALLOCATION_ATTEMPTS};
pub use orders::{LatePayment, OrderEvent};
pub use pool::{Backend, Store};
pub use recon::{LineKind, NewBreak, NewReconRun, ReconBreak, ReconLine, ReconRun, RunOutcome};
pub use refunds::RefundReservation;
pub use settle::{Settlement, StatementLine};
pub use till::{DayLine, LockSchedule, OperatorPin, PinAttempt, TillDevice, TillSessionRecord};
