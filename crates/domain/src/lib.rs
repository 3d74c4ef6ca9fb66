//! qrgate's domain: the types every other crate speaks in.
//!
//! Money is an integer of minor units with a [`Currency`]; ids are validated newtypes; states
//! are enums. This crate does no IO at all (no database, network, files or clock), so that its
//! rules can be tested exhaustively and reused by every entry point: HTTP, CLI and workers.

mod console;
mod fx;
mod ids;
mod ledger;
mod merchant;
mod money;
mod order;
mod recon;
mod refund;
mod wallet;

pub use console::{ConsoleRole, Email, EmailError, Permission, Scope, UserStatus};
pub use fx::{FxQuote, FxRate, FxRateParseError, FX_SCALE};
pub use ids::{IdError, MerchantId, OperatorId, ShopId, TerminalNo};
pub use ledger::{
    payment_posting, payment_txn, refund_posting, refund_txn, settlement_posting, settlement_txn,
    wallet_fee_posting, wallet_fee_txn, Account, AccountParseError, Entry, FeeRate, FeeRateError,
    LedgerError, Posting, PostingKind, RefundBasis,
};
pub use merchant::{
    validate_name, Merchant, MerchantStatus, MerchantTimeZone, NameError, Operator, OperatorRole,
    OperatorStatus, Shop, Terminal, TimeZoneParseError,
};
pub use money::{AmountParseError, Currency, CurrencyParseError, Money};
pub use order::{
    DeclineReason, InvalidTransition, MerchantOrderId, Order, OrderIdError, OrderStatus,
    PaymentMode, RefundState,
};
pub use recon::{bill_day, bill_day_start, BreakKind, BreakStatus};
pub use refund::{Refund, RefundStatus};
pub use wallet::Wallet;
