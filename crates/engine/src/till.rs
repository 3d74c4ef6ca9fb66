//! The web till's use cases: operators' PINs, signing in and out, sessions, and a day of a
//! merchant's orders. The HTTP layer renders the pages; the rules live here.
//!
//! - A PIN is 4 to 12 digits, stored only as an argon2id hash (a salted, deliberately slow
//!   hash: a copy of the database does not give PINs away cheaply).
//! - Wrong credentials get one answer whatever was wrong (unknown merchant, unknown operator,
//!   no PIN set, wrong PIN), so the till does not tell which ids exist. After
//!   [`MAX_PIN_FAILURES`] wrong PINs for one operator within [`PIN_FAILURE_WINDOW`], that
//!   operator is refused for [`PIN_LOCK`], counted in the database (so across restarts and
//!   nodes).
//! - A session is a random 32-byte token held by the browser; the database keeps only its
//!   SHA-256. It ends [`SESSION_LIFETIME`] after sign-in, after [`SESSION_IDLE`] unused, or at
//!   sign-out. Each session has a CSRF token derived from it with the gateway's digest key.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use qrgate_domain::{Merchant, MerchantId, MerchantStatus, Operator, OperatorId, Order};
use qrgate_store::TillSessionRecord;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::payments::keyed_digest;
use crate::{Engine, EngineError};

/// A session ends this long after sign-in, used or not.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// A session unused for this long ends.
pub const SESSION_IDLE: Duration = Duration::minutes(30);
/// Wrong PINs for one operator within [`PIN_FAILURE_WINDOW`] that lock it.
pub const MAX_PIN_FAILURES: i64 = 5;
pub const PIN_FAILURE_WINDOW: Duration = Duration::minutes(5);
/// How long a locked operator is refused.
pub const PIN_LOCK: Duration = Duration::minutes(5);
/// The most orders one day's list shows.
pub const MAX_ORDERS_OF_DAY: i64 = 500;
/// A session's last use is written at most this often (status polling would write every
/// second otherwise).
const TOUCH_EVERY: Duration = Duration::seconds(15);

/// Why signing in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown merchant or operator, no PIN set, or a wrong PIN: deliberately one answer.
    #[error("merchant id, operator id or PIN is wrong")]
    WrongCredentials,
    /// Too many wrong PINs for this operator.
    #[error("too many wrong PINs: this operator can sign in again at {until}")]
    Locked { until: DateTime<Utc> },
    /// The PIN was right but the merchant is disabled.
    #[error("this merchant is disabled")]
    MerchantDisabled,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<qrgate_store::StoreError> for SignInError {
    fn from(e: qrgate_store::StoreError) -> Self {
        SignInError::Engine(e.into())
    }
}

/// Why a session token does not open the till.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such session (never was, signed out, or removed long ago).
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

/// What signing in gives: the token for the browser's cookie (shown nowhere else, stored
/// nowhere), and the session.
#[derive(Clone)]
pub struct SignedIn {
    pub token: String,
    pub session: TillSession,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("token", &"***")
            .field("session", &self.session)
            .finish()
    }
}

/// Checks a PIN's shape: 4 to 12 digits.
pub fn check_pin(pin: &str) -> Result<(), EngineError> {
    if (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(EngineError::Invalid("a PIN is 4 to 12 digits".into()))
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

fn pin_matches(pin: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(pin.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Runs argon2 off the async threads: it takes tens of milliseconds by design.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Invalid(format!("PIN check failed: {e}")))
}

/// The SHA-256 of a session token, as stored.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A hash of no PIN (it is not digits), verified when the operator is unknown or has no PIN,
/// so that refusing an unknown id takes as long as refusing a wrong PIN.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| hash_pin("not a PIN").unwrap_or_default())
        .clone()
}

impl Engine {
    /// Sets (or replaces) an operator's till PIN, and lifts any lock.
    pub async fn set_operator_pin(
        &self,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        pin: &str,
    ) -> Result<(), EngineError> {
        check_pin(pin)?;
        let pin = pin.to_owned();
        let hash = blocking(move || hash_pin(&pin)).await??;
        self.store
            .set_operator_pin_hash(merchant_id, operator_id, &hash, self.now())
            .await?;
        tracing::info!(merchant.id = %merchant_id, operator.id = %operator_id, "till PIN set");
        Ok(())
    }

    /// Whether `pin` is the operator's PIN (no lock or count involved; for the demo).
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
        let pin = pin.to_owned();
        blocking(move || pin_matches(&pin, &hash)).await
    }

    /// Signs an operator in to the till. Ids are taken as typed (surrounding spaces ignored).
    pub async fn sign_in_operator(
        &self,
        merchant_id: &str,
        operator_id: &str,
        pin: &str,
    ) -> Result<SignedIn, SignInError> {
        let ids = MerchantId::parse(merchant_id.trim())
            .ok()
            .zip(OperatorId::parse(operator_id.trim()).ok());
        let found = match &ids {
            Some((m, o)) => self.store.operator_pin(m, o).await?,
            None => None,
        };
        let now = self.now();
        if let Some(until) = found.as_ref().and_then(|f| f.locked_until) {
            if until > now {
                return Err(SignInError::Locked { until });
            }
        }
        let hash = found
            .as_ref()
            .and_then(|f| f.pin_hash.clone())
            .unwrap_or_default();
        let pin_owned = pin.to_owned();
        let right = blocking(move || {
            let hash = if hash.is_empty() { dummy_hash() } else { hash };
            pin_matches(&pin_owned, &hash)
        })
        .await?;
        let (found, merchant_id, operator_id) = match (found, ids) {
            (Some(found), Some((m, o))) if right => (found, m, o),
            (Some(_), Some((m, o))) => {
                let locked = self
                    .store
                    .record_pin_failure(
                        &m,
                        &o,
                        now - PIN_FAILURE_WINDOW,
                        MAX_PIN_FAILURES,
                        now + PIN_LOCK,
                        now,
                    )
                    .await?;
                if let Some(until) = locked {
                    tracing::warn!(merchant.id = %m, operator.id = %o, "till operator locked after wrong PINs");
                    return Err(SignInError::Locked { until });
                }
                return Err(SignInError::WrongCredentials);
            }
            _ => return Err(SignInError::WrongCredentials),
        };
        self.store
            .clear_pin_failures(&merchant_id, &operator_id, now)
            .await?;
        let merchant = self.merchant(&merchant_id).await?;
        if merchant.status != MerchantStatus::Active {
            return Err(SignInError::MerchantDisabled);
        }
        // Housekeeping: sessions that ended are of no use to anyone.
        self.store
            .delete_expired_till_sessions(now - SESSION_IDLE, now)
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
        tracing::info!(merchant.id = %merchant_id, operator.id = %operator_id, "till operator signed in");
        Ok(SignedIn {
            session: TillSession {
                merchant,
                operator: found.operator,
                csrf_token: self.csrf_token(&hash),
                expires_at: record.expires_at,
            },
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
        if merchant.status != MerchantStatus::Active {
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

    /// The merchant's orders created on `day` in its time zone, newest first (at most
    /// [`MAX_ORDERS_OF_DAY`]), every state included.
    pub async fn orders_of_day(
        &self,
        merchant: &Merchant,
        day: NaiveDate,
    ) -> Result<Vec<Order>, EngineError> {
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
        Ok(self
            .store
            .orders_between(
                &merchant.id,
                start_of(day)?,
                start_of(next)?,
                MAX_ORDERS_OF_DAY,
            )
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
