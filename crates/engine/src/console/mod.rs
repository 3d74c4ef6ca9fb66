//! The web console's use cases (docs/CONSOLE.md): its users and sessions, what each role may
//! see and change, the audit log, and the merchant's and provider's pages' data. The console
//! crate renders; the rules live here.
//!
//! - **Scope before permission.** Every use case that names a merchant first checks that the
//!   actor sees that merchant ([`Scope::sees`]); one that does not gets
//!   [`ConsoleError::NotFound`], exactly as for an id that does not exist, so that a merchant's
//!   user cannot learn which ids exist elsewhere. Only then is the role's permission checked
//!   ([`ConsoleError::Forbidden`]).
//! - **The same rules as everywhere.** A refund is [`Engine::refund`], onboarding
//!   [`Engine::create_merchant`], a key rotation [`Engine::rotate_sign_key`], a PIN
//!   [`Engine::set_operator_pin`]: the console adds who may, and the audit entry.
//! - **Every change is audited**: who, what, when, from which address, before and after
//!   (never a password, a key or a secret). The entry is written after the change succeeded;
//!   if writing it fails, the change stands and the failure is logged as an error.

mod auth;
mod demo;
mod merchant;
mod provider;

pub use auth::{
    console_sign_in_nonce, ConsoleSession, ConsoleSignInError, ConsoleSignedIn, SignInLink,
    TotpEnrollment, CONSOLE_SESSION_IDLE, CONSOLE_SESSION_LIFETIME, MAX_PASSWORD_FAILURES,
    PASSWORD_LOCK, PASSWORD_MAX_LEN, PASSWORD_MIN_LEN, SIGN_IN_LINK_LIFETIME,
};
pub use demo::{DemoConsoleUsers, DEMO_CONSOLE_PASSWORD};
pub(crate) use merchant::start_of_day;
pub use merchant::{
    Dashboard, DaySales, OrderDetail, OrderQuery, OrdersPage, Summary, WalletSummary, EXPORT_PAGE,
    MAX_PAGE,
};
pub use provider::{Attention, WalletHealth};

use qrgate_domain::{ConsoleRole, MerchantId, Permission, Scope};
use qrgate_store::{ConsoleUser, NewAuditEntry};

use crate::{Engine, EngineError, RefundError};

/// Who makes a change from the console (or the CLI), and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `None` for the CLI, which may do anything (it has the database anyway).
    pub user: Option<ConsoleUser>,
    /// The client's address, or `cli`.
    pub ip: String,
}

impl Actor {
    /// The provider's command line: every permission, audited as `cli`.
    pub fn cli() -> Actor {
        Actor {
            user: None,
            ip: "cli".into(),
        }
    }

    pub fn console(user: ConsoleUser, ip: &str) -> Actor {
        Actor {
            user: Some(user),
            ip: ip.to_owned(),
        }
    }

    /// Whose data the actor sees.
    pub fn scope(&self) -> Scope {
        match &self.user {
            None => Scope::Provider,
            Some(u) => match &u.merchant_id {
                Some(m) if !u.role.is_provider() => Scope::Merchant(m.clone()),
                _ => Scope::Provider,
            },
        }
    }

    pub fn may(&self, what: Permission) -> bool {
        self.user.as_ref().is_none_or(|u| u.role.may(what))
    }

    pub fn role(&self) -> Option<ConsoleRole> {
        self.user.as_ref().map(|u| u.role)
    }

    fn name(&self) -> String {
        self.user
            .as_ref()
            .map_or_else(|| "cli".to_owned(), |u| u.email.as_str().to_owned())
    }

    /// `NotFound` unless the actor sees `merchant`, then `Forbidden` unless it may `what`.
    pub fn check(&self, merchant: &MerchantId, what: Permission) -> Result<(), ConsoleError> {
        if !self.scope().sees(merchant) {
            return Err(ConsoleError::NotFound("merchant"));
        }
        if !self.may(what) {
            return Err(ConsoleError::Forbidden);
        }
        Ok(())
    }

    /// For the provider's pages: `NotFound` (not `Forbidden`) for a merchant's user, so that
    /// the provider's pages do not show they exist; `Forbidden` for support asked to change.
    pub fn check_provider(&self, what: Permission) -> Result<(), ConsoleError> {
        if self.scope() != Scope::Provider {
            return Err(ConsoleError::NotFound("page"));
        }
        if !self.may(what) {
            return Err(ConsoleError::Forbidden);
        }
        Ok(())
    }
}

/// Why a console use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No such thing, or not one the actor may see (deliberately the same answer).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The actor sees it but its role may not do this.
    #[error("your role may not do this")]
    Forbidden,
    /// The input breaks a rule; the message says which, for the person to read (from shared
    /// engine rules, in English; or already in the reader's language, from the console).
    #[error("{0}")]
    Invalid(String),
    /// The input breaks one of the console's own rules: typed, so that each page says it in
    /// the reader's language (the console's catalogue has a message per rule).
    #[error(transparent)]
    Rule(#[from] ConsoleRule),
    /// Too many password checks at once: try again in a moment.
    #[error("too many sign-ins at once: try again in a moment")]
    Busy,
    #[error(transparent)]
    Refund(RefundError),
    #[error(transparent)]
    Engine(EngineError),
}

/// A rule of the console's use cases that an input breaks. `id` names its message in the
/// console's catalogues (English and Chinese), `args` fills it; `Display` is the English, for
/// logs and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleRule {
    #[error("a password is {min} to {max} characters")]
    PasswordLength { min: usize, max: usize },
    #[error("a provider role belongs to no merchant")]
    ProviderRoleHasNoMerchant,
    #[error("a merchant role needs its merchant")]
    MerchantRoleNeedsMerchant,
    #[error("an email address is 3 to 254 characters with one @ and no spaces")]
    EmailInvalid,
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("you cannot disable yourself")]
    CannotDisableYourself,
    #[error("start setting up two-factor sign-in first")]
    TotpNotStarted,
    #[error("that code is not right: check the app's clock and try the next code")]
    TotpWrongCode,
    #[error("amounts are in the merchant's currency, {currency}")]
    AmountCurrency { currency: String },
    #[error("search for one order id or wallet reference (at most {max} characters)")]
    SearchTooLong { max: usize },
    #[error("no such shop")]
    NoSuchShop,
    #[error("give a reason of 1 to {max} characters")]
    ReasonLength { max: usize },
    #[error("the reason has a control character")]
    ReasonControl,
    #[error("a refund id is 1 to 32 letters, digits, '_' or '-'")]
    RefundIdInvalid,
    #[error("the merchant is disabled: enable it before refunding")]
    MerchantDisabled,
}

impl ConsoleRule {
    /// The message id in the console's catalogues.
    pub fn id(&self) -> &'static str {
        match self {
            ConsoleRule::PasswordLength { .. } => "rule-password-length",
            ConsoleRule::ProviderRoleHasNoMerchant => "rule-provider-role-no-merchant",
            ConsoleRule::MerchantRoleNeedsMerchant => "rule-merchant-role-needs-merchant",
            ConsoleRule::EmailInvalid => "rule-email-invalid",
            ConsoleRule::EmailTaken => "rule-email-taken",
            ConsoleRule::CannotDisableYourself => "rule-cannot-disable-yourself",
            ConsoleRule::TotpNotStarted => "rule-totp-not-started",
            ConsoleRule::TotpWrongCode => "rule-totp-wrong-code",
            ConsoleRule::AmountCurrency { .. } => "rule-amount-currency",
            ConsoleRule::SearchTooLong { .. } => "rule-search-too-long",
            ConsoleRule::NoSuchShop => "rule-no-such-shop",
            ConsoleRule::ReasonLength { .. } => "rule-reason-length",
            ConsoleRule::ReasonControl => "rule-reason-control",
            ConsoleRule::RefundIdInvalid => "rule-refund-id-invalid",
            ConsoleRule::MerchantDisabled => "rule-merchant-disabled",
        }
    }

    /// The message's arguments.
    pub fn args(&self) -> Vec<(&'static str, String)> {
        match self {
            ConsoleRule::PasswordLength { min, max } => {
                vec![("min", min.to_string()), ("max", max.to_string())]
            }
            ConsoleRule::AmountCurrency { currency } => vec![("currency", currency.clone())],
            ConsoleRule::SearchTooLong { max } | ConsoleRule::ReasonLength { max } => {
                vec![("max", max.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// One of each rule, for tests that check every rule has its messages.
    pub fn samples() -> Vec<ConsoleRule> {
        let all = vec![
            ConsoleRule::PasswordLength { min: 12, max: 128 },
            ConsoleRule::ProviderRoleHasNoMerchant,
            ConsoleRule::MerchantRoleNeedsMerchant,
            ConsoleRule::EmailInvalid,
            ConsoleRule::EmailTaken,
            ConsoleRule::CannotDisableYourself,
            ConsoleRule::TotpNotStarted,
            ConsoleRule::TotpWrongCode,
            ConsoleRule::AmountCurrency {
                currency: "CAD".into(),
            },
            ConsoleRule::SearchTooLong { max: 64 },
            ConsoleRule::NoSuchShop,
            ConsoleRule::ReasonLength { max: 200 },
            ConsoleRule::ReasonControl,
            ConsoleRule::RefundIdInvalid,
            ConsoleRule::MerchantDisabled,
        ];
        // No wildcard: a new rule does not compile until it is listed here, and above.
        for rule in &all {
            match rule {
                ConsoleRule::PasswordLength { .. }
                | ConsoleRule::ProviderRoleHasNoMerchant
                | ConsoleRule::MerchantRoleNeedsMerchant
                | ConsoleRule::EmailInvalid
                | ConsoleRule::EmailTaken
                | ConsoleRule::CannotDisableYourself
                | ConsoleRule::TotpNotStarted
                | ConsoleRule::TotpWrongCode
                | ConsoleRule::AmountCurrency { .. }
                | ConsoleRule::SearchTooLong { .. }
                | ConsoleRule::NoSuchShop
                | ConsoleRule::ReasonLength { .. }
                | ConsoleRule::ReasonControl
                | ConsoleRule::RefundIdInvalid
                | ConsoleRule::MerchantDisabled => {}
            }
        }
        all
    }
}

impl From<EngineError> for ConsoleError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => ConsoleError::Invalid(m),
            EngineError::NotFound(what) => ConsoleError::NotFound(what),
            other => ConsoleError::Engine(other),
        }
    }
}

impl From<qrgate_store::StoreError> for ConsoleError {
    fn from(e: qrgate_store::StoreError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<RefundError> for ConsoleError {
    fn from(e: RefundError) -> Self {
        match e {
            RefundError::Engine(e) => e.into(),
            RefundError::OrderNotFound(_) => ConsoleError::NotFound("order"),
            other => ConsoleError::Refund(other),
        }
    }
}

/// A change for the audit log.
pub(crate) struct Change<'a> {
    pub merchant: Option<&'a MerchantId>,
    pub action: &'static str,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl Engine {
    /// Writes `change` made by `actor` to the audit log. A failure is logged, not returned:
    /// the change itself has been made.
    pub(crate) async fn audit(&self, actor: &Actor, change: Change<'_>) {
        let entry = NewAuditEntry {
            user_id: actor.user.as_ref().map(|u| u.id),
            actor: actor.name(),
            merchant_id: change.merchant.cloned(),
            action: change.action.to_owned(),
            target: change.target,
            ip: actor.ip.clone(),
            before: change.before.map(|v| v.to_string()),
            after: change.after.map(|v| v.to_string()),
        };
        if let Err(e) = self.store.insert_audit(&entry, self.now()).await {
            tracing::error!(error = %e, audit.action = %entry.action, audit.target = %entry.target, "cannot write the audit entry of a change that was made");
        }
    }

    /// The audit log the actor may see: a merchant's (its owner, or the provider naming it),
    /// or everything (the provider), newest first, before the entry `before_id`.
    pub async fn console_audit(
        &self,
        actor: &Actor,
        merchant: Option<&MerchantId>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<qrgate_store::AuditEntry>, ConsoleError> {
        match merchant {
            Some(m) => actor.check(m, Permission::ViewAudit)?,
            None => actor.check_provider(Permission::ViewProvider)?,
        }
        Ok(self
            .store
            .audit_entries(merchant, before_id, limit.clamp(1, MAX_PAGE))
            .await?)
    }
}
