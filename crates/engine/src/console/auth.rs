//! Console users and sessions: one-time sign-in links, passwords (argon2id, with a bound on
//! verifications running at once), the lockout after wrong passwords, TOTP second factor
//! (RFC 6238), sessions in the database, CSRF tokens.
//!
//! - A user is created with a one-time sign-in link (valid [`SIGN_IN_LINK_LIFETIME`]); the
//!   link sets the password and is used up. A new link can be issued (a forgotten password).
//! - A password is [`PASSWORD_MIN_LEN`] to [`PASSWORD_MAX_LEN`] characters, stored only as
//!   an argon2id hash. At most as many verifications run at once as the machine has cores;
//!   beyond that sign-in answers [`ConsoleSignInError::Busy`] at once, so that a flood of
//!   sign-ins cannot exhaust memory (argon2 takes 19 MiB per verification).
//! - Wrong credentials get one answer whatever was wrong. [`MAX_PASSWORD_FAILURES`] wrong
//!   passwords or codes within the window lock the user for [`PASSWORD_LOCK`], counted in
//!   the database (across restarts and nodes).
//! - A session is a random 32-byte token in the browser; the database keeps its SHA-256. It
//!   ends [`CONSOLE_SESSION_LIFETIME`] after sign-in, after [`CONSOLE_SESSION_IDLE`] unused,
//!   at sign-out, or when the user is disabled. With TOTP on, the session opens nothing but
//!   the code's page until a code is given. A code is accepted once (its time step is kept).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use qrgate_domain::{
    ConsoleRole, Email, MerchantId, MerchantStatus, Permission, Scope, UserStatus,
};
use qrgate_store::{ConsoleSessionRecord, ConsoleUser, NewConsoleUser, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{Actor, Change, ConsoleError, ConsoleRule};
use crate::payments::keyed_digest;
use crate::{Engine, EngineError, SessionError, SignKeyPlain};

/// A session ends this long after sign-in.
pub const CONSOLE_SESSION_LIFETIME: Duration = Duration::hours(12);
/// A session unused this long ends.
pub const CONSOLE_SESSION_IDLE: Duration = Duration::minutes(30);
/// Wrong passwords or codes within [`FAILURE_WINDOW`] that lock the user.
pub const MAX_PASSWORD_FAILURES: i64 = 5;
const FAILURE_WINDOW: Duration = Duration::minutes(15);
/// How long a locked user is refused.
pub const PASSWORD_LOCK: Duration = Duration::minutes(15);
/// How long a one-time sign-in link works.
pub const SIGN_IN_LINK_LIFETIME: Duration = Duration::hours(72);
pub const PASSWORD_MIN_LEN: usize = 12;
pub const PASSWORD_MAX_LEN: usize = 128;
/// A session's last use is written at most this often.
const TOUCH_EVERY: Duration = Duration::seconds(30);
/// TOTP: 6 digits, 30-second steps, one step of clock difference either way.
const TOTP_DIGITS: usize = 6;
const TOTP_STEP_SECS: i64 = 30;

/// Password verifications (and hashings) running at once: about one per core.
fn argon2_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Semaphore::new(cores.max(1))
    })
}

/// Runs argon2 off the async threads, holding one of the bounded slots; `Busy` at once when
/// none is free.
async fn with_argon2<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ConsoleError> {
    let _slot = argon2_slots()
        .try_acquire()
        .map_err(|_| ConsoleError::Busy)?;
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ConsoleError::Engine(EngineError::Invalid(format!("password check failed: {e}")))
    })
}

fn hash_password(password: &str) -> Result<String, ConsoleError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ConsoleError::Invalid(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ConsoleError::Invalid(format!("cannot hash the password: {e}")))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash of no password, checked for unknown emails so that they take as long as a wrong
/// password.
fn dummy_hash() -> String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password("no such user, no such password").unwrap_or_default())
        .clone()
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A fresh random value for the sign-in form's double-submit token (the form has no session
/// yet to bind a CSRF token to).
pub fn console_sign_in_nonce() -> String {
    new_token()
}

/// Checks a new password's length (in characters).
fn check_password(password: &str) -> Result<(), ConsoleError> {
    let n = password.chars().count();
    if (PASSWORD_MIN_LEN..=PASSWORD_MAX_LEN).contains(&n) {
        Ok(())
    } else {
        Err(ConsoleRule::PasswordLength {
            min: PASSWORD_MIN_LEN,
            max: PASSWORD_MAX_LEN,
        }
        .into())
    }
}

/// A one-time sign-in link's token: shown once, stored only hashed. The console's address
/// for it is `/console/welcome/<token>`.
#[derive(Clone)]
pub struct SignInLink {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SignInLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInLink")
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl SignInLink {
    /// The link's path on the gateway.
    pub fn path(&self) -> String {
        format!("/console/welcome/{}", self.token)
    }
}

/// A signed-in browser: the user, the CSRF token its forms carry, and whether the second
/// factor is still to be given.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub user: ConsoleUser,
    pub csrf_token: String,
    pub pending_totp: bool,
    pub expires_at: DateTime<Utc>,
}

/// What signing in gives: the cookie's token (stored nowhere) and the session.
#[derive(Clone)]
pub struct ConsoleSignedIn {
    pub token: String,
    pub session: ConsoleSession,
}

impl std::fmt::Debug for ConsoleSignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSignedIn")
            .field("token", &"***")
            .field("session", &self.session)
            .finish()
    }
}

/// A second factor being set up: the secret to type or scan, shown once.
#[derive(Clone)]
pub struct TotpEnrollment {
    pub secret_base32: String,
    /// `otpauth://totp/…` for an authenticator app's QR.
    pub otpauth_url: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment(***)")
    }
}

/// Why signing in was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleSignInError {
    /// Unknown email, no password yet, disabled, or a wrong password or code: one answer.
    #[error("email, password or code is wrong")]
    WrongCredentials,
    #[error("too many wrong passwords: signing in is refused until {until}")]
    Locked { until: DateTime<Utc> },
    #[error("too many sign-ins at once: try again in a moment")]
    Busy,
    /// The right password, but the user's merchant is disabled: its users stay out until the
    /// provider enables it again (said only after the right password, so it tells nothing).
    #[error("this merchant is disabled: ask the provider")]
    MerchantDisabled,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for ConsoleSignInError {
    fn from(e: StoreError) -> Self {
        ConsoleSignInError::Engine(e.into())
    }
}

impl From<ConsoleError> for ConsoleSignInError {
    fn from(e: ConsoleError) -> Self {
        match e {
            ConsoleError::Busy => ConsoleSignInError::Busy,
            ConsoleError::Engine(e) => ConsoleSignInError::Engine(e),
            other => ConsoleSignInError::Engine(EngineError::Invalid(other.to_string())),
        }
    }
}

fn totp(secret: &[u8], _account: &str) -> Result<totp_rs::TOTP, ConsoleError> {
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        TOTP_DIGITS,
        1,
        30,
        secret.to_vec(),
    )
    .map_err(|e| ConsoleError::Invalid(format!("bad TOTP secret: {e}")))
}

/// The time step whose code `code` is (this step or one either side), if any.
fn totp_step_of(totp: &totp_rs::TOTP, code: &str, now: DateTime<Utc>) -> Option<i64> {
    let code = code.trim();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = now.timestamp().div_euclid(TOTP_STEP_SECS);
    [step - 1, step, step + 1].into_iter().find(|s| {
        u64::try_from(s * TOTP_STEP_SECS)
            .map(|t| {
                let expected = totp.generate(t);
                expected.len() == code.len()
                    && expected
                        .bytes()
                        .zip(code.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            })
            .unwrap_or(false)
    })
}

/// The base32 (RFC 4648, no padding) of `bytes`, as authenticator apps take secrets.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let i = usize::try_from((buffer >> bits) & 31).unwrap_or(0);
            out.push(char::from(ALPHABET[i]));
        }
    }
    if bits > 0 {
        let i = usize::try_from((buffer << (5 - bits)) & 31).unwrap_or(0);
        out.push(char::from(ALPHABET[i]));
    }
    out
}

impl Engine {
    fn console_csrf(&self, hash: &str) -> String {
        keyed_digest(&self.master.digest_key(), &["console-csrf", hash])
    }

    /// Creates a console user and their one-time sign-in link. The provider (admin, or the
    /// CLI) may create any user; a merchant's owner, users of their own merchant only.
    pub async fn create_console_user(
        &self,
        actor: &Actor,
        email: &str,
        role: ConsoleRole,
        merchant: Option<&MerchantId>,
    ) -> Result<(ConsoleUser, SignInLink), ConsoleError> {
        match (role.is_provider(), merchant) {
            (true, None) => actor.check_provider(Permission::ManageProvider)?,
            (false, Some(m)) => {
                if actor.scope() == Scope::Provider {
                    actor.check_provider(Permission::ManageProvider)?;
                    self.merchant(m).await?;
                } else {
                    actor.check(m, Permission::ManageMerchantUsers)?;
                }
            }
            (true, Some(_)) => return Err(ConsoleRule::ProviderRoleHasNoMerchant.into()),
            (false, None) => return Err(ConsoleRule::MerchantRoleNeedsMerchant.into()),
        }
        let email = Email::parse(email).map_err(|_| ConsoleRule::EmailInvalid)?;
        let token = new_token();
        let now = self.now();
        let link = SignInLink {
            token: token.clone(),
            expires_at: now + SIGN_IN_LINK_LIFETIME,
        };
        let user = self
            .store
            .insert_console_user(
                &NewConsoleUser {
                    email,
                    role,
                    merchant_id: merchant.cloned(),
                    setup_token_hash: token_hash(&token),
                    setup_expires_at: link.expires_at,
                },
                now,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => ConsoleError::Rule(ConsoleRule::EmailTaken),
                other => other.into(),
            })?;
        tracing::info!(console.user = user.id, console.role = %role, "console user created");
        self.audit(
            actor,
            Change {
                merchant,
                action: "user.create",
                target: user.email.to_string(),
                before: None,
                after: Some(user_json(&user)),
            },
        )
        .await;
        Ok((user, link))
    }

    /// A user the actor may manage: any user for the provider's admin, the users of their
    /// own merchant for an owner; `NotFound` otherwise.
    async fn managed_user(&self, actor: &Actor, user_id: i64) -> Result<ConsoleUser, ConsoleError> {
        let user = self
            .store
            .console_user(user_id)
            .await?
            .ok_or(ConsoleError::NotFound("user"))?;
        match (&user.merchant_id, actor.scope()) {
            (_, Scope::Provider) => actor.check_provider(Permission::ManageProvider)?,
            (Some(m), Scope::Merchant(_)) => actor.check(m, Permission::ManageMerchantUsers)?,
            (None, Scope::Merchant(_)) => return Err(ConsoleError::NotFound("user")),
        }
        Ok(user)
    }

    /// The users the actor may see: one merchant's, or (the provider, with `None`) all.
    pub async fn console_users(
        &self,
        actor: &Actor,
        merchant: Option<&MerchantId>,
    ) -> Result<Vec<ConsoleUser>, ConsoleError> {
        match merchant {
            Some(m) => actor.check(m, Permission::ViewSales)?,
            None => actor.check_provider(Permission::ViewProvider)?,
        }
        Ok(self.store.console_users(merchant).await?)
    }

    /// Finds a user by email, for the CLI.
    pub async fn console_user_by_email(&self, email: &str) -> Result<ConsoleUser, ConsoleError> {
        let email = Email::parse(email).map_err(|_| ConsoleRule::EmailInvalid)?;
        self.store
            .console_user_auth_by_email(&email)
            .await?
            .map(|a| a.user)
            .ok_or(ConsoleError::NotFound("user"))
    }

    /// Disables or enables a user; disabling ends their sessions at once.
    pub async fn set_console_user_status(
        &self,
        actor: &Actor,
        user_id: i64,
        status: UserStatus,
    ) -> Result<ConsoleUser, ConsoleError> {
        let user = self.managed_user(actor, user_id).await?;
        if actor.user.as_ref().is_some_and(|me| me.id == user.id) {
            return Err(ConsoleRule::CannotDisableYourself.into());
        }
        self.store
            .set_console_user_status(user_id, status, self.now())
            .await?;
        let after = self
            .store
            .console_user(user_id)
            .await?
            .ok_or(ConsoleError::NotFound("user"))?;
        self.audit(
            actor,
            Change {
                merchant: user.merchant_id.as_ref(),
                action: "user.status",
                target: user.email.to_string(),
                before: Some(serde_json::json!({"status": user.status.as_str()})),
                after: Some(serde_json::json!({"status": after.status.as_str()})),
            },
        )
        .await;
        Ok(after)
    }

    /// A new one-time sign-in link for a user (a forgotten password); the old link stops
    /// working. The password stays until the link is used.
    pub async fn new_sign_in_link(
        &self,
        actor: &Actor,
        user_id: i64,
    ) -> Result<SignInLink, ConsoleError> {
        let user = self.managed_user(actor, user_id).await?;
        let token = new_token();
        let now = self.now();
        let link = SignInLink {
            token: token.clone(),
            expires_at: now + SIGN_IN_LINK_LIFETIME,
        };
        self.store
            .set_console_setup_token(user_id, &token_hash(&token), link.expires_at, now)
            .await?;
        self.audit(
            actor,
            Change {
                merchant: user.merchant_id.as_ref(),
                action: "user.sign_in_link",
                target: user.email.to_string(),
                before: None,
                after: Some(serde_json::json!({"link_expires_at": link.expires_at.to_rfc3339()})),
            },
        )
        .await;
        Ok(link)
    }

    /// Turns a user's second factor off (they lost their phone); they sign in with the
    /// password alone until they set it up again.
    pub async fn reset_console_totp(
        &self,
        actor: &Actor,
        user_id: i64,
    ) -> Result<ConsoleUser, ConsoleError> {
        let user = self.managed_user(actor, user_id).await?;
        self.store
            .set_console_totp(user_id, None, false, self.now())
            .await?;
        self.audit(
            actor,
            Change {
                merchant: user.merchant_id.as_ref(),
                action: "user.2fa.reset",
                target: user.email.to_string(),
                before: Some(serde_json::json!({"totp": user.totp_enabled})),
                after: Some(serde_json::json!({"totp": false})),
            },
        )
        .await;
        Ok(user)
    }

    /// The user a one-time link is for, while it works.
    pub async fn sign_in_link_user(&self, token: &str) -> Result<ConsoleUser, ConsoleError> {
        let (user, until) = self
            .store
            .console_user_by_setup_token(&token_hash(token))
            .await?
            .ok_or(ConsoleError::NotFound("sign-in link"))?;
        if until <= self.now() || user.status != UserStatus::Active {
            return Err(ConsoleError::NotFound("sign-in link"));
        }
        Ok(user)
    }

    /// Sets the password of the user a one-time link is for, and uses the link up.
    pub async fn set_password_with_link(
        &self,
        token: &str,
        password: &str,
        ip: &str,
    ) -> Result<ConsoleUser, ConsoleError> {
        let user = self.sign_in_link_user(token).await?;
        check_password(password)?;
        let owned = password.to_owned();
        let hash = with_argon2(move || hash_password(&owned)).await??;
        if !self
            .store
            .set_console_password(user.id, &token_hash(token), &hash, self.now())
            .await?
        {
            return Err(ConsoleError::NotFound("sign-in link"));
        }
        self.audit(
            &Actor::console(user.clone(), ip),
            Change {
                merchant: user.merchant_id.as_ref(),
                action: "user.password",
                target: user.email.to_string(),
                before: None,
                after: Some(serde_json::json!({"password": "set"})),
            },
        )
        .await;
        Ok(user)
    }

    /// Signs a user in with email and password. With TOTP on, the session is pending until
    /// [`Engine::verify_console_totp`].
    pub async fn sign_in_console(
        &self,
        email: &str,
        password: &str,
        ip: &str,
    ) -> Result<ConsoleSignedIn, ConsoleSignInError> {
        let found = match Email::parse(email) {
            Ok(e) => self.store.console_user_auth_by_email(&e).await?,
            Err(_) => None,
        };
        let now = self.now();
        if let Some(until) = found.as_ref().and_then(|f| f.locked_until) {
            if until > now {
                return Err(ConsoleSignInError::Locked { until });
            }
        }
        let hash = found
            .as_ref()
            .and_then(|f| f.password_hash.clone())
            .unwrap_or_default();
        let password = password.to_owned();
        let right = with_argon2(move || {
            let hash = if hash.is_empty() { dummy_hash() } else { hash };
            password_matches(&password, &hash)
        })
        .await?;
        let Some(found) = found else {
            return Err(ConsoleSignInError::WrongCredentials);
        };
        if !right || found.password_hash.is_none() {
            return Err(self.console_failure(found.user.id, now).await);
        }
        if found.user.status != UserStatus::Active {
            return Err(ConsoleSignInError::WrongCredentials);
        }
        if !self.console_merchant_enabled(&found.user).await? {
            tracing::warn!(
                console.user = found.user.id,
                "console sign-in refused: the user's merchant is disabled"
            );
            return Err(ConsoleSignInError::MerchantDisabled);
        }
        self.store
            .clear_console_failures(found.user.id, now)
            .await?;
        self.store
            .delete_expired_console_sessions(now - CONSOLE_SESSION_IDLE, now)
            .await?;
        let token = new_token();
        let hash = token_hash(&token);
        let record = ConsoleSessionRecord {
            user_id: found.user.id,
            pending_totp: found.user.totp_enabled,
            ip: ip.to_owned(),
            created_at: now,
            expires_at: now + CONSOLE_SESSION_LIFETIME,
            last_seen_at: now,
        };
        self.store.insert_console_session(&hash, &record).await?;
        tracing::info!(console.user = found.user.id, "console user signed in");
        Ok(ConsoleSignedIn {
            session: ConsoleSession {
                user: found.user,
                csrf_token: self.console_csrf(&hash),
                pending_totp: record.pending_totp,
                expires_at: record.expires_at,
            },
            token,
        })
    }

    /// Whether the user's merchant (if any) may be worked on: a disabled merchant's users are
    /// signed out and kept out, as its tills and POS calls are.
    async fn console_merchant_enabled(&self, user: &ConsoleUser) -> Result<bool, StoreError> {
        let Some(merchant_id) = &user.merchant_id else {
            return Ok(true);
        };
        Ok(self
            .store
            .merchant(merchant_id)
            .await?
            .is_some_and(|m| m.status == MerchantStatus::Active))
    }

    async fn console_failure(&self, user_id: i64, now: DateTime<Utc>) -> ConsoleSignInError {
        match self
            .store
            .record_console_failure(
                user_id,
                now - FAILURE_WINDOW,
                MAX_PASSWORD_FAILURES,
                now + PASSWORD_LOCK,
                now,
            )
            .await
        {
            Ok(Some(until)) => {
                tracing::warn!(
                    console.user = user_id,
                    "console user locked after wrong passwords"
                );
                ConsoleSignInError::Locked { until }
            }
            Ok(None) => ConsoleSignInError::WrongCredentials,
            Err(e) => e.into(),
        }
    }

    /// The session of a token while it runs (pending or not); using it restarts its idle time.
    pub async fn console_session(&self, token: &str) -> Result<ConsoleSession, SessionError> {
        let hash = token_hash(token);
        let record = self
            .store
            .console_session(&hash)
            .await?
            .ok_or(SessionError::Unknown)?;
        let now = self.now();
        if now >= record.expires_at || now - record.last_seen_at > CONSOLE_SESSION_IDLE {
            self.store.delete_console_session(&hash).await?;
            return Err(SessionError::Expired);
        }
        let user = self
            .store
            .console_user(record.user_id)
            .await?
            .filter(|u| u.status == UserStatus::Active);
        let user = match user {
            Some(u) if self.console_merchant_enabled(&u).await? => Some(u),
            _ => None,
        };
        let Some(user) = user else {
            self.store.delete_console_session(&hash).await?;
            return Err(SessionError::Unknown);
        };
        if now - record.last_seen_at >= TOUCH_EVERY {
            self.store.touch_console_session(&hash, now).await?;
        }
        Ok(ConsoleSession {
            user,
            csrf_token: self.console_csrf(&hash),
            pending_totp: record.pending_totp,
            expires_at: record.expires_at,
        })
    }

    /// Ends a session (nothing for an unknown token).
    pub async fn console_sign_out(&self, token: &str) -> Result<(), EngineError> {
        Ok(self
            .store
            .delete_console_session(&token_hash(token))
            .await?)
    }

    /// Completes a pending sign-in with a TOTP code. A wrong code counts as a wrong password.
    pub async fn verify_console_totp(
        &self,
        token: &str,
        code: &str,
    ) -> Result<(), ConsoleSignInError> {
        let hash = token_hash(token);
        let session = self
            .console_session(token)
            .await
            .map_err(|_| ConsoleSignInError::WrongCredentials)?;
        let auth = self
            .store
            .console_user_auth(session.user.id)
            .await?
            .ok_or(ConsoleSignInError::WrongCredentials)?;
        let now = self.now();
        if let Some(until) = auth.locked_until.filter(|u| *u > now) {
            return Err(ConsoleSignInError::Locked { until });
        }
        let (Some(sealed), true) = (auth.totp_secret_enc.as_ref(), auth.user.totp_enabled) else {
            return Err(ConsoleSignInError::WrongCredentials);
        };
        let secret = self.open_totp(auth.user.id, sealed)?;
        let totp = totp(&secret, auth.user.email.as_str())?;
        let step = totp_step_of(&totp, code, now);
        let fresh = match step {
            Some(step) => {
                self.store
                    .use_console_totp_step(auth.user.id, step, now)
                    .await?
            }
            None => false,
        };
        if !fresh {
            return Err(self.console_failure(auth.user.id, now).await);
        }
        self.store.clear_console_failures(auth.user.id, now).await?;
        self.store.verify_console_session(&hash, now).await?;
        Ok(())
    }

    fn open_totp(&self, user_id: i64, sealed: &[u8]) -> Result<Vec<u8>, ConsoleError> {
        let plain = self
            .master
            .open(&format!("console-totp:{user_id}"), sealed)
            .map_err(EngineError::from)?;
        hex::decode(plain.expose())
            .map_err(|_| ConsoleError::Invalid("the stored TOTP secret is unreadable".into()))
    }

    /// Starts setting up a second factor for the actor: a new secret, stored sealed but not
    /// yet asked for at sign-in. Shown once.
    pub async fn start_console_totp(&self, actor: &Actor) -> Result<TotpEnrollment, ConsoleError> {
        let user = actor.user.as_ref().ok_or(ConsoleError::Forbidden)?;
        let mut secret = [0u8; 20];
        rand::thread_rng().fill_bytes(&mut secret);
        let sealed = self.master.seal(
            &format!("console-totp:{}", user.id),
            &SignKeyPlain::parse(&hex::encode_upper(secret))
                .map_err(|e| ConsoleError::Invalid(e.to_string()))?,
        );
        self.store
            .set_console_totp(user.id, Some(&sealed), false, self.now())
            .await?;
        let secret_base32 = base32(&secret);
        let label: String =
            url::form_urlencoded::byte_serialize(format!("qrgate:{}", user.email).as_bytes())
                .collect();
        Ok(TotpEnrollment {
            otpauth_url: format!(
                "otpauth://totp/{label}?secret={secret_base32}&issuer=qrgate&algorithm=SHA1&digits=6&period=30"
            ),
            secret_base32,
        })
    }

    /// Turns the second factor on once the actor shows a code of the new secret.
    pub async fn confirm_console_totp(
        &self,
        actor: &Actor,
        code: &str,
    ) -> Result<(), ConsoleError> {
        let user = actor.user.as_ref().ok_or(ConsoleError::Forbidden)?;
        let auth = self
            .store
            .console_user_auth(user.id)
            .await?
            .ok_or(ConsoleError::NotFound("user"))?;
        let sealed = auth.totp_secret_enc.ok_or(ConsoleRule::TotpNotStarted)?;
        let secret = self.open_totp(user.id, &sealed)?;
        let totp = totp(&secret, user.email.as_str())?;
        let now = self.now();
        let step = totp_step_of(&totp, code, now).ok_or(ConsoleRule::TotpWrongCode)?;
        self.store.use_console_totp_step(user.id, step, now).await?;
        self.store
            .set_console_totp(user.id, Some(&sealed), true, now)
            .await?;
        self.audit(
            actor,
            Change {
                merchant: user.merchant_id.as_ref(),
                action: "user.2fa.enable",
                target: user.email.to_string(),
                before: Some(serde_json::json!({"totp": user.totp_enabled})),
                after: Some(serde_json::json!({"totp": true})),
            },
        )
        .await;
        Ok(())
    }

    /// A TOTP code for the user's secret at `at` (for tests and the demo; never logged).
    pub async fn console_totp_code(
        &self,
        user_id: i64,
        at: DateTime<Utc>,
    ) -> Result<String, ConsoleError> {
        let auth = self
            .store
            .console_user_auth(user_id)
            .await?
            .ok_or(ConsoleError::NotFound("user"))?;
        let sealed = auth
            .totp_secret_enc
            .ok_or(ConsoleError::NotFound("TOTP secret"))?;
        let secret = self.open_totp(user_id, &sealed)?;
        let totp = totp(&secret, auth.user.email.as_str())?;
        Ok(totp.generate(u64::try_from(at.timestamp()).unwrap_or(0)))
    }
}

/// A user as the audit log shows them.
pub(crate) fn user_json(u: &ConsoleUser) -> serde_json::Value {
    serde_json::json!({
        "email": u.email.as_str(),
        "role": u.role.as_str(),
        "merchant_id": u.merchant_id.as_ref().map(MerchantId::as_str),
        "status": u.status.as_str(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_checks_beyond_the_bound_are_refused_at_once() {
        // Take every slot, as as many sign-ins in flight would: the next is Busy, at once.
        let slots = argon2_slots();
        let held = slots
            .acquire_many(u32::try_from(slots.available_permits()).unwrap())
            .await
            .unwrap();
        let refused = with_argon2(|| password_matches("x", &dummy_hash())).await;
        assert!(matches!(refused, Err(ConsoleError::Busy)), "{refused:?}");
        drop(held);
        assert!(with_argon2(|| 1).await.is_ok());
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_only() {
        // RFC 6238's SHA-1 test secret.
        let t = totp(b"12345678901234567890", "t@example.com").unwrap();
        let at = DateTime::from_timestamp(59, 0).unwrap();
        let code = t.generate(59);
        assert_eq!(code, "287082");
        assert_eq!(totp_step_of(&t, &code, at), Some(1));
        let later = DateTime::from_timestamp(59 + 30, 0).unwrap();
        assert_eq!(totp_step_of(&t, &code, later), Some(1));
        let much_later = DateTime::from_timestamp(59 + 120, 0).unwrap();
        assert_eq!(totp_step_of(&t, &code, much_later), None);
        assert_eq!(totp_step_of(&t, "12345", at), None);
        assert_eq!(totp_step_of(&t, "abcdef", at), None);
    }
}
