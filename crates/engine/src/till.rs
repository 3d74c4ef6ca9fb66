//! The web till's use cases: operators' PINs, signing in and out, sessions, and a day of a
//! merchant's orders. The HTTP layer renders the pages; the rules live here.
//!
//! - A new PIN is 6 to 12 digits (PINs of 4 or 5 digits set before keep working until they
//!   are changed), stored only as an argon2id hash (a salted, deliberately slow hash: a copy
//!   of the database does not give PINs away cheaply).
//! - Wrong credentials get one answer whatever was wrong (unknown merchant, unknown operator,
//!   no PIN set, wrong PIN), with the same work behind it (a dummy hash is
//!   checked when there is no real one, and the attempt is counted either way), so the till
//!   does not tell which ids exist.
//! - Guessing is bounded in the database, per typed pair of ids whether they exist or not:
//!   the [`LOCKING_PIN_ATTEMPT`]-th attempt within [`PIN_ATTEMPT_WINDOW`] locks the pair for
//!   [`FIRST_PIN_LOCK`], each one after for twice as long, up to [`MAX_PIN_LOCK`]. Browsers that
//!   signed in to the merchant before (known tills, by a signed cookie) are counted apart from
//!   all others, so guessing from elsewhere never locks the shop's own till out. In process,
//!   each source address has a rate and a pause after repeated failures, and PIN checks run a
//!   few at a time (`till_guard.rs`). docs/TILL.md gives the reasoning.
//! - A session is a random 32-byte token held by the browser; the database keeps only its
//!   SHA-256. It ends [`SESSION_LIFETIME`] after sign-in, after [`SESSION_IDLE`] unused, at
//!   sign-out, when the operator's PIN changes or the operator is disabled. Each session has a
//!   CSRF token derived from it with the gateway's digest key.

use std::net::IpAddr;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use qrgate_domain::{
    Merchant, MerchantId, MerchantStatus, Money, Operator, OperatorId, OperatorRole,
    OperatorStatus, Order,
};
use qrgate_store::{PinAttempt, TillDevice, TillSessionRecord};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::payments::keyed_digest;
use crate::till_guard::{PinChecker, SignInLimits, SourceLimits};
use crate::{Engine, EngineError};

/// A session ends this long after sign-in, used or not.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// A session unused for this long ends.
pub const SESSION_IDLE: Duration = Duration::minutes(30);
/// The PIN attempt for one pair of ids (from known tills, or from other browsers) within
/// [`PIN_ATTEMPT_WINDOW`] that first locks the pair, for [`FIRST_PIN_LOCK`]: the ones before
/// lock nothing. A right PIN forgets them all.
pub const LOCKING_PIN_ATTEMPT: i64 = 5;
pub const PIN_ATTEMPT_WINDOW: Duration = Duration::hours(24);
/// The lock after the last free attempt; each attempt more doubles it, up to [`MAX_PIN_LOCK`].
pub const FIRST_PIN_LOCK: Duration = Duration::minutes(1);
pub const MAX_PIN_LOCK: Duration = Duration::hours(1);
/// How long a browser stays a known till of a merchant after its last sign-in there.
pub const KNOWN_TILL_LIFETIME: Duration = Duration::days(180);
/// The most orders one day's list shows.
pub const MAX_ORDERS_OF_DAY: i64 = 500;
/// A session's last use is written at most this often (status polling would write every
/// second otherwise).
const TOUCH_EVERY: Duration = Duration::seconds(15);

/// An argon2id hash with the default costs, of nothing anyone can type (its output is made
/// up): checked when an operator is unknown or has no PIN, so that refusing costs what
/// refusing a wrong PIN does.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$cXJnYXRlIG5vIFBJTiAAAQ$\
                          AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// How long the `n`-th PIN attempt of a window locks its pair of ids for.
fn pin_lock_after(n: i64) -> Option<Duration> {
    if n < LOCKING_PIN_ATTEMPT {
        return None;
    }
    let beyond = n.saturating_sub(LOCKING_PIN_ATTEMPT);
    let doublings = u32::try_from(beyond.clamp(0, 16)).unwrap_or(16);
    Some(
        FIRST_PIN_LOCK
            .checked_mul(1 << doublings)
            .unwrap_or(MAX_PIN_LOCK)
            .min(MAX_PIN_LOCK),
    )
}

/// The till's in-process defences: PIN checks a few at a time, limits per source address.
#[derive(Debug)]
pub(crate) struct TillGuard {
    checker: PinChecker,
    sources: SourceLimits,
}

impl TillGuard {
    pub(crate) fn new(limits: &SignInLimits) -> TillGuard {
        TillGuard {
            checker: PinChecker::new(limits),
            sources: SourceLimits::new(limits),
        }
    }
}

/// Why signing in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown merchant or operator, no PIN set, or a wrong PIN: deliberately one answer.
    #[error("merchant id, operator id or PIN is wrong")]
    WrongCredentials,
    /// Too many PIN attempts for these ids from browsers like this one; the same for ids that
    /// do not exist. Nothing was checked.
    #[error("too many wrong PINs for these ids: try again at {until}")]
    Locked { until: DateTime<Utc> },
    /// Too many attempts, or wrong ones, from this source address. Nothing was checked.
    #[error("too many sign-in attempts from this address: try again at {until}")]
    SourcePaused { until: DateTime<Utc> },
    /// Too many sign-ins in progress at once. Nothing was checked.
    #[error("too many sign-ins at once: try again in a moment")]
    Busy,
    /// The PIN was right but the merchant is disabled.
    #[error("this merchant is disabled")]
    MerchantDisabled,
    /// The PIN was right but the operator is disabled.
    #[error("this operator is disabled")]
    OperatorDisabled,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A day's close: payments and succeeded refunds, by wallet and operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZReport {
    pub day: NaiveDate,
    pub currency: qrgate_domain::Currency,
    pub paid: Vec<qrgate_store::DayLine>,
    pub refunds: Vec<qrgate_store::DayLine>,
}

impl ZReport {
    fn sum(lines: &[qrgate_store::DayLine]) -> (i64, i64) {
        lines.iter().fold((0, 0), |(n, t), l| {
            (n.saturating_add(l.count), t.saturating_add(l.total_minor))
        })
    }

    /// (count, total) of the payments.
    pub fn paid_total(&self) -> (i64, Money) {
        let (n, t) = Self::sum(&self.paid);
        (n, Money::new(t, self.currency))
    }

    /// (count, total) of the refunds.
    pub fn refund_total(&self) -> (i64, Money) {
        let (n, t) = Self::sum(&self.refunds);
        (n, Money::new(t, self.currency))
    }

    /// Payments less refunds.
    pub fn net(&self) -> Money {
        let paid = Self::sum(&self.paid).1;
        let refunded = Self::sum(&self.refunds).1;
        Money::new(paid.saturating_sub(refunded), self.currency)
    }

    /// Lines grouped by `key` (a wallet or an operator), in order of first appearance.
    pub fn group<K: PartialEq + Clone>(
        lines: &[qrgate_store::DayLine],
        key: impl Fn(&qrgate_store::DayLine) -> K,
    ) -> Vec<(K, i64, i64)> {
        let mut out: Vec<(K, i64, i64)> = Vec::new();
        for l in lines {
            let k = key(l);
            match out.iter_mut().find(|(g, _, _)| *g == k) {
                Some(g) => {
                    g.1 = g.1.saturating_add(l.count);
                    g.2 = g.2.saturating_add(l.total_minor);
                }
                None => out.push((k, l.count, l.total_minor)),
            }
        }
        out
    }
}

/// Why a supervisor's approval of a refund was refused. Nothing was refunded.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Unknown operator, no PIN set, or a wrong PIN: one answer, as at sign-in.
    #[error("supervisor id or PIN is wrong")]
    WrongCredentials,
    /// Too many wrong PINs for this operator id (counted with their sign-ins).
    #[error("too many wrong PINs for this operator id: try again at {until}")]
    Locked { until: DateTime<Utc> },
    /// The PIN was right, but the operator is no supervisor (or is disabled).
    #[error("this operator cannot approve refunds")]
    NotSupervisor,
    /// Too many PIN checks at once.
    #[error("too many PIN checks at once: try again in a moment")]
    Busy,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<qrgate_store::StoreError> for ApprovalError {
    fn from(e: qrgate_store::StoreError) -> Self {
        ApprovalError::Engine(EngineError::from(e))
    }
}

impl From<qrgate_store::StoreError> for SignInError {
    fn from(e: qrgate_store::StoreError) -> Self {
        SignInError::Engine(e.into())
    }
}

/// Why a session token does not open the till.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such session (never was, signed out, ended by a PIN change, or removed long ago).
    #[error("not signed in")]
    Unknown,
    /// It was a session, and it ended (12 h, or 30 min unused).
    #[error("the session expired")]
    Expired,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<qrgate_store::StoreError> for SessionError {
    fn from(e: qrgate_store::StoreError) -> Self {
        SessionError::Engine(e.into())
    }
}

/// A signed-in till: who, for which merchant, and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct TillSession {
    pub merchant: Merchant,
    pub operator: Operator,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// A sign-in as typed, with where it came from.
pub struct SignInAttempt<'a> {
    pub merchant_id: &'a str,
    pub operator_id: &'a str,
    pub pin: &'a str,
    /// The source address: the peer, or the client a trusted proxy named.
    pub source: IpAddr,
    /// The browser's known-till cookie, if it sent one ([`SignedIn::known_till`]).
    pub known_till: Option<&'a str>,
}

impl std::fmt::Debug for SignInAttempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInAttempt")
            .field("merchant_id", &self.merchant_id)
            .field("operator_id", &self.operator_id)
            .field("pin", &"***")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What signing in gives: the token for the browser's cookie (shown nowhere else, stored
/// nowhere), the session, and a fresh known-till mark for the browser to keep.
#[derive(Clone)]
pub struct SignedIn {
    pub token: String,
    pub session: TillSession,
    /// Marks the browser as a known till of the merchant for [`KNOWN_TILL_LIFETIME`]: an
    /// HMAC under the gateway's digest key, stored nowhere.
    pub known_till: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("token", &"***")
            .field("session", &self.session)
            .field("known_till", &"***")
            .finish()
    }
}

/// Checks a new PIN's shape: 6 to 12 digits.
pub fn check_pin(pin: &str) -> Result<(), EngineError> {
    if (6..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(EngineError::Invalid("a PIN is 6 to 12 digits".into()))
    }
}

fn hash_pin(pin: &str) -> Result<String, EngineError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| EngineError::Invalid(e.to_string()))?;
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| EngineError::Invalid(format!("cannot hash the PIN: {e}")))
}

/// The SHA-256 of a session token, as stored.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two strings in a time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Engine {
    /// Sets (or replaces) an operator's till PIN: 6 to 12 digits. Ends the operator's open till
    /// sessions and lifts any lock on their ids.
    pub async fn set_operator_pin(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        pin: &str,
    ) -> Result<(), EngineError> {
        check_pin(pin)?;
        let pin = pin.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_pin(&pin))
            .await
            .map_err(|e| EngineError::Invalid(format!("cannot hash the PIN: {e}")))??;
        let ended = self
            .store
            .set_operator_pin_hash(merchant_id, operator_id, &hash, self.now())
            .await?;
        tracing::info!(
            merchant.id = %merchant_id,
            operator.id = %operator_id,
            sessions_ended = ended,
            "till PIN set"
        );
        Ok(())
    }

    /// Enables or disables an operator. A disabled operator cannot sign in to the till, and
    /// their open sessions end now.
    pub async fn set_operator_status(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        status: OperatorStatus,
    ) -> Result<(), EngineError> {
        let ended = self
            .store
            .set_operator_status(merchant_id, operator_id, status, self.now())
            .await?;
        tracing::info!(
            merchant.id = %merchant_id,
            operator.id = %operator_id,
            status = status.as_str(),
            sessions_ended = ended,
            "operator status set"
        );
        Ok(())
    }

    /// Sets what an operator may do on the till (a supervisor approves refunds).
    pub async fn set_operator_role(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        role: OperatorRole,
    ) -> Result<(), EngineError> {
        self.store
            .set_operator_role(merchant_id, operator_id, role, self.now())
            .await?;
        tracing::info!(merchant.id = %merchant_id, operator.id = %operator_id, role = role.as_str(), "operator role set");
        Ok(())
    }

    /// Sets the amount above which a refund on the till needs a supervisor's approval
    /// (`Money` in the merchant's currency; 0: every refund).
    pub async fn set_refund_approval_above(
        &self,
        merchant_id: &MerchantId,
        above: Money,
    ) -> Result<(), EngineError> {
        let merchant = self.merchant(merchant_id).await?;
        if above.currency() != merchant.currency || above.minor() < 0 {
            return Err(EngineError::Invalid(format!(
                "the refund approval limit must be an amount of at least 0 in {}",
                merchant.currency.code()
            )));
        }
        self.store
            .set_refund_approval_above(merchant_id, above.minor(), self.now())
            .await?;
        Ok(())
    }

    /// The amount above which a refund on the till needs a supervisor's approval.
    pub async fn refund_approval_above(&self, merchant: &Merchant) -> Result<Money, EngineError> {
        let above = self
            .store
            .refund_approval_above(&merchant.id)
            .await?
            .ok_or(EngineError::NotFound("merchant"))?;
        Ok(Money::new(above, merchant.currency))
    }

    /// Checks a supervisor's PIN typed on the till to approve a refund, and returns their id.
    /// The attempt is counted and locked as their sign-ins are (the same counts, as a known
    /// till), so approving cannot be used to guess a PIN faster than signing in.
    pub async fn approve_refund(
        &self,
        merchant: &Merchant,
        supervisor_id: &str,
        pin: &str,
    ) -> Result<OperatorId, ApprovalError> {
        let now = self.now();
        let checker = &self.till_guard.checker;
        let Some(_place) = checker.admit() else {
            return Err(ApprovalError::Busy);
        };
        let Ok(operator_id) = OperatorId::parse(supervisor_id.trim()) else {
            checker.check(pin, DUMMY_HASH).await?;
            return Err(ApprovalError::WrongCredentials);
        };
        let lock = match self
            .store
            .claim_pin_attempt(
                &merchant.id,
                &operator_id,
                TillDevice::KnownTill,
                now - PIN_ATTEMPT_WINDOW,
                now,
                pin_lock_after,
            )
            .await?
        {
            PinAttempt::Locked { until } => return Err(ApprovalError::Locked { until }),
            PinAttempt::Counted { locked_until, .. } => locked_until,
        };
        let found = self.store.operator_pin(&merchant.id, &operator_id).await?;
        let hash = found.as_ref().and_then(|f| f.pin_hash.clone());
        let right = checker
            .check(pin, hash.as_deref().unwrap_or(DUMMY_HASH))
            .await?;
        let found = match found {
            Some(found) if right && hash.is_some() => found,
            _ => {
                tracing::warn!(merchant.id = %merchant.id, operator.id = %operator_id, "refund approval refused: wrong PIN");
                return Err(match lock {
                    Some(until) => ApprovalError::Locked { until },
                    None => ApprovalError::WrongCredentials,
                });
            }
        };
        self.store
            .forget_pin_attempts(&merchant.id, &operator_id, TillDevice::KnownTill)
            .await?;
        if found.role != OperatorRole::Supervisor || found.operator.status != OperatorStatus::Active
        {
            tracing::warn!(merchant.id = %merchant.id, operator.id = %operator_id, "refund approval refused: not a supervisor");
            return Err(ApprovalError::NotSupervisor);
        }
        Ok(operator_id)
    }

    /// Whether `pin` is the operator's PIN (nothing counted; for the demo).
    pub async fn operator_pin_is(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        pin: &str,
    ) -> Result<bool, EngineError> {
        let Some(hash) = self
            .store
            .operator_pin(merchant_id, operator_id)
            .await?
            .and_then(|o| o.pin_hash)
        else {
            return Ok(false);
        };
        self.till_guard.checker.check(pin, &hash).await
    }

    /// How many PINs this process has checked (argon2 runs), for tests and metrics.
    pub fn pin_checks(&self) -> u64 {
        self.till_guard.checker.runs()
    }

    /// A known-till mark for a browser that just signed in to `merchant_id`.
    fn known_till_mark(&self, merchant_id: &MerchantId, now: DateTime<Utc>) -> String {
        let issued = now.timestamp_millis().to_string();
        let mac = keyed_digest(
            &self.master.digest_key(),
            &["till-known", merchant_id.as_str(), &issued],
        );
        format!("{merchant_id}.{issued}.{mac}")
    }

    /// Whether `mark` is a known-till mark of `merchant_id` still in its lifetime.
    fn is_known_till(&self, mark: &str, merchant_id: &MerchantId, now: DateTime<Utc>) -> bool {
        let mut parts = mark.split('.');
        let (Some(merchant), Some(issued), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let expected = keyed_digest(
            &self.master.digest_key(),
            &["till-known", merchant_id.as_str(), issued],
        );
        let Some(issued_at) = issued
            .parse::<i64>()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
        else {
            return false;
        };
        same_secret(mac, &expected)
            && merchant == merchant_id.as_str()
            && issued_at <= now + Duration::minutes(5)
            && now - issued_at < KNOWN_TILL_LIFETIME
    }

    /// Signs an operator in to the till. Ids are taken as typed (surrounding spaces ignored).
    /// Every refusal but [`SignInError::Busy`] and [`SignInError::SourcePaused`] is logged
    /// with the source address (never the PIN).
    pub async fn sign_in_operator(
        &self,
        attempt: &SignInAttempt<'_>,
    ) -> Result<SignedIn, SignInError> {
        let now = self.now();
        let ids = MerchantId::parse(attempt.merchant_id.trim())
            .ok()
            .zip(OperatorId::parse(attempt.operator_id.trim()).ok());
        let known_till = match (&ids, attempt.known_till) {
            (Some((m, _)), Some(mark)) => self.is_known_till(mark, m, now),
            _ => false,
        };
        let device = if known_till {
            TillDevice::KnownTill
        } else {
            TillDevice::Other
        };
        let guard = &self.till_guard;
        if let Err(paused) = guard.sources.admit(attempt.source, known_till, now) {
            tracing::info!(source = %attempt.source, until = %paused.until, "till sign-in refused: too many attempts from this address");
            return Err(SignInError::SourcePaused {
                until: paused.until,
            });
        }
        let Some(_place) = guard.checker.admit() else {
            tracing::info!(source = %attempt.source, "till sign-in refused: too many sign-ins at once");
            return Err(SignInError::Busy);
        };
        let result = self
            .sign_in_admitted(attempt.pin, ids.clone(), device, now)
            .await;
        if let Err(e @ (SignInError::WrongCredentials | SignInError::Locked { .. })) = &result {
            let paused = guard.sources.failed(attempt.source, now);
            let (merchant, operator) = match &ids {
                Some((m, o)) => (m.as_str(), o.as_str()),
                None => ("(not an id)", "(not an id)"),
            };
            tracing::warn!(
                source = %attempt.source,
                merchant.id = merchant,
                operator.id = operator,
                device = device.as_str(),
                source_paused_until = ?paused,
                "till sign-in failed: {e}"
            );
        }
        result
    }

    async fn sign_in_admitted(
        &self,
        pin: &str,
        ids: Option<(MerchantId, OperatorId)>,
        device: TillDevice,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, SignInError> {
        let checker = &self.till_guard.checker;
        let Some((merchant_id, operator_id)) = ids else {
            // Ids that are not ids exist nowhere; checked all the same, to take as long.
            checker.check(pin, DUMMY_HASH).await?;
            return Err(SignInError::WrongCredentials);
        };
        let lock = match self
            .store
            .claim_pin_attempt(
                &merchant_id,
                &operator_id,
                device,
                now - PIN_ATTEMPT_WINDOW,
                now,
                pin_lock_after,
            )
            .await?
        {
            PinAttempt::Locked { until } => return Err(SignInError::Locked { until }),
            PinAttempt::Counted { locked_until, .. } => locked_until,
        };
        let found = self.store.operator_pin(&merchant_id, &operator_id).await?;
        let hash = found.as_ref().and_then(|f| f.pin_hash.clone());
        let right = checker
            .check(pin, hash.as_deref().unwrap_or(DUMMY_HASH))
            .await?;
        let found = match found {
            Some(found) if right && hash.is_some() => found,
            _ => {
                return Err(match lock {
                    Some(until) => SignInError::Locked { until },
                    None => SignInError::WrongCredentials,
                })
            }
        };
        self.store
            .forget_pin_attempts(&merchant_id, &operator_id, device)
            .await?;
        if found.operator.status != OperatorStatus::Active {
            tracing::warn!(merchant.id = %merchant_id, operator.id = %operator_id, "till sign-in refused: the operator is disabled");
            return Err(SignInError::OperatorDisabled);
        }
        let merchant = self.merchant(&merchant_id).await?;
        if merchant.status != MerchantStatus::Active {
            return Err(SignInError::MerchantDisabled);
        }
        // Housekeeping: sessions that ended and counts that lapsed are of no use to anyone.
        self.store
            .delete_expired_till_sessions(now - SESSION_IDLE, now)
            .await?;
        self.store
            .delete_stale_pin_attempts(now - PIN_ATTEMPT_WINDOW, now)
            .await?;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let hash = token_hash(&token);
        let record = TillSessionRecord {
            merchant_id: merchant_id.clone(),
            operator_id: operator_id.clone(),
            created_at: now,
            expires_at: now + SESSION_LIFETIME,
            last_seen_at: now,
        };
        self.store.insert_till_session(&hash, &record).await?;
        tracing::info!(merchant.id = %merchant_id, operator.id = %operator_id, device = device.as_str(), "till operator signed in");
        Ok(SignedIn {
            session: TillSession {
                merchant,
                operator: found.operator,
                csrf_token: self.csrf_token(&hash),
                expires_at: record.expires_at,
            },
            known_till: self.known_till_mark(&merchant_id, now),
            token,
        })
    }

    fn csrf_token(&self, token_hash: &str) -> String {
        keyed_digest(&self.master.digest_key(), &["till-csrf", token_hash])
    }

    /// The session of a token, if it is still running; using it restarts its idle time.
    pub async fn till_session(&self, token: &str) -> Result<TillSession, SessionError> {
        let hash = token_hash(token);
        let record = self
            .store
            .till_session(&hash)
            .await?
            .ok_or(SessionError::Unknown)?;
        let now = self.now();
        if now >= record.expires_at || now - record.last_seen_at > SESSION_IDLE {
            self.store.delete_till_session(&hash).await?;
            return Err(SessionError::Expired);
        }
        let merchant = self.merchant(&record.merchant_id).await?;
        let operator = self
            .store
            .operator_pin(&record.merchant_id, &record.operator_id)
            .await?
            .ok_or(SessionError::Unknown)?
            .operator;
        if merchant.status != MerchantStatus::Active || operator.status != OperatorStatus::Active {
            self.store.delete_till_session(&hash).await?;
            return Err(SessionError::Unknown);
        }
        if now - record.last_seen_at >= TOUCH_EVERY {
            self.store.touch_till_session(&hash, now).await?;
        }
        Ok(TillSession {
            merchant,
            operator,
            csrf_token: self.csrf_token(&hash),
            expires_at: record.expires_at,
        })
    }

    /// Ends a session (nothing happens for an unknown token).
    pub async fn sign_out(&self, token: &str) -> Result<(), EngineError> {
        Ok(self.store.delete_till_session(&token_hash(token)).await?)
    }

    /// The merchant's calendar day at `at`, in its time zone.
    pub fn merchant_day(&self, merchant: &Merchant, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&merchant.time_zone.tz()).date_naive()
    }

    /// The day's close (a Z report) of `day` in the merchant's time zone: payments by their
    /// payment time and refunds by the time they succeeded, counted and summed by wallet and
    /// operator in the database.
    pub async fn z_report(
        &self,
        merchant: &Merchant,
        day: NaiveDate,
    ) -> Result<ZReport, EngineError> {
        let (from, to) = self.day_bounds(merchant, day)?;
        let paid = self
            .store
            .paid_lines_between(&merchant.id, from, to)
            .await?;
        let refunds = self
            .store
            .refund_lines_between(&merchant.id, from, to)
            .await?;
        Ok(ZReport {
            day,
            currency: merchant.currency,
            paid,
            refunds,
        })
    }

    /// The first instant of `day` and of the day after, in the merchant's time zone.
    fn day_bounds(
        &self,
        merchant: &Merchant,
        day: NaiveDate,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), EngineError> {
        let tz = merchant.time_zone.tz();
        let start_of = |d: NaiveDate| -> Result<DateTime<Utc>, EngineError> {
            let midnight = d.and_hms_opt(0, 0, 0).ok_or(EngineError::NotFound("day"))?;
            // A day that starts inside a DST gap starts at the gap's end.
            tz.from_local_datetime(&midnight)
                .earliest()
                .or_else(|| {
                    tz.from_local_datetime(&(midnight + Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc))
                .ok_or(EngineError::NotFound("day"))
        };
        let next = day.succ_opt().ok_or(EngineError::NotFound("day"))?;
        Ok((start_of(day)?, start_of(next)?))
    }

    /// The merchant's orders created on `day` in its time zone, newest first (at most
    /// [`MAX_ORDERS_OF_DAY`]), every state included.
    pub async fn orders_of_day(
        &self,
        merchant: &Merchant,
        day: NaiveDate,
    ) -> Result<Vec<Order>, EngineError> {
        let (from, to) = self.day_bounds(merchant, day)?;
        Ok(self
            .store
            .orders_between(&merchant.id, from, to, MAX_ORDERS_OF_DAY)
            .await?)
    }

    /// A fresh order number for a till's sale or refund: `prefix`, the time and 8 random
    /// letters and digits (at most 21 characters). Rendered into the till's form before the
    /// sale, so that a form sent twice (a network drop, a double click) is the same request.
    pub fn new_till_order_id(
        &self,
        prefix: char,
    ) -> Result<qrgate_domain::MerchantOrderId, EngineError> {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::thread_rng();
        let tail: String = (0..8)
            .map(|_| {
                let i = usize::try_from(rng.next_u32()).unwrap_or(0) % ALPHABET.len();
                char::from(ALPHABET[i])
            })
            .collect();
        let id = format!("{prefix}{}{tail}", self.now().format("%y%m%d%H%M%S"));
        qrgate_domain::MerchantOrderId::parse(&id).map_err(|e| EngineError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHash;

    #[test]
    fn the_lock_starts_at_the_fifth_attempt_and_doubles_up_to_an_hour() {
        assert_eq!(pin_lock_after(1), None);
        assert_eq!(pin_lock_after(4), None);
        assert_eq!(pin_lock_after(5), Some(Duration::minutes(1)));
        assert_eq!(pin_lock_after(6), Some(Duration::minutes(2)));
        assert_eq!(pin_lock_after(10), Some(Duration::minutes(32)));
        assert_eq!(pin_lock_after(11), Some(MAX_PIN_LOCK));
        assert_eq!(pin_lock_after(i64::MAX), Some(MAX_PIN_LOCK));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let real_hash = hash_pin("135790").unwrap();
        let real = PasswordHash::new(&real_hash).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.unwrap().len(), real.hash.unwrap().len());
        // No digits match it (it would take breaking argon2 to find what does).
        let mut memory = Vec::new();
        assert!(!crate::till_guard::pin_matches_in(
            "000000",
            DUMMY_HASH,
            &mut memory
        ));
    }

    #[test]
    fn a_new_pin_is_six_to_twelve_digits() {
        for ok in ["123456", "123456789012"] {
            assert!(check_pin(ok).is_ok(), "{ok}");
        }
        for refused in ["", "1234", "12345", "1234567890123", "12345a", "١٢٣٤٥٦"] {
            assert!(check_pin(refused).is_err(), "{refused}");
        }
    }
}
