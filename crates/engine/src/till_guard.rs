//! The till's defences in this process, against floods and guessing (docs/TILL.md, "Signing
//! in"): how many PINs are checked at once, how many sign-ins may wait for that, and how often
//! one source address may try. What bounds guessing across gateway nodes, the count of
//! attempts per typed pair of ids, is in the database (`Store::claim_pin_attempt`).
//!
//! Checking a PIN runs argon2id: 19 MiB of memory and tens of milliseconds of one CPU, by
//! design. Unbounded, a flood of sign-ins took the process to gigabytes that it kept. Here at
//! most [`SignInLimits::checks_at_once`] run, each in one of as many memory blocks that are
//! allocated once and reused, so memory stays flat whatever arrives; sign-ins beyond
//! [`SignInLimits::sign_ins_at_once`] are refused at once, before any database work.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use chrono::{DateTime, Duration, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::EngineError;

/// The in-process limits of signing in to the till.
#[derive(Debug, Clone)]
pub struct SignInLimits {
    /// PINs checked at once, each with its 19 MiB block. Default: the machine's CPUs.
    pub checks_at_once: usize,
    /// Sign-ins in progress at once (checking a PIN, waiting to, or in the database); one more
    /// is refused at once with "too many sign-ins, try again in a moment". Default: 8 per PIN
    /// check at once (a wait of a few hundred milliseconds at most).
    pub sign_ins_at_once: usize,
    /// Attempts one source address may make in a burst; then one more per
    /// [`SignInLimits::source_refill`]. A shop's cashiers often share one address.
    pub source_burst: u32,
    pub source_refill: Duration,
    /// Wrong PINs (or ids) from one source address within
    /// [`SignInLimits::source_failure_window`] before it is paused; each one more doubles the
    /// pause, from [`SignInLimits::source_first_pause`] up to
    /// [`SignInLimits::source_max_pause`]. A browser that has signed in to the merchant before
    /// (a known till) is not paused by its address's failures.
    pub source_free_failures: u32,
    pub source_failure_window: Duration,
    pub source_first_pause: Duration,
    pub source_max_pause: Duration,
    /// Source addresses remembered at most (about 100 bytes each); past it, new addresses are
    /// not limited in this process (the database's count per pair of ids still holds).
    pub max_sources: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        SignInLimits {
            checks_at_once: cpus,
            sign_ins_at_once: cpus.saturating_mul(8),
            source_burst: 10,
            source_refill: Duration::seconds(6),
            source_free_failures: 10,
            source_failure_window: Duration::minutes(15),
            source_first_pause: Duration::minutes(1),
            source_max_pause: Duration::minutes(30),
            max_sources: 100_000,
        }
    }
}

/// The largest argon2 memory cost a stored hash may ask for, in KiB: hashes are ours (19 MiB),
/// and a corrupt one must not make the gateway allocate without bound.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// Checks PINs, at most `checks_at_once` at a time, each in a reused memory block.
pub(crate) struct PinChecker {
    sign_ins: Arc<Semaphore>,
    checks: Arc<Semaphore>,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    runs: AtomicU64,
}

impl std::fmt::Debug for PinChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinChecker")
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

impl PinChecker {
    pub(crate) fn new(limits: &SignInLimits) -> PinChecker {
        PinChecker {
            sign_ins: Arc::new(Semaphore::new(limits.sign_ins_at_once.max(1))),
            checks: Arc::new(Semaphore::new(limits.checks_at_once.max(1))),
            memory: Arc::new(Mutex::new(Vec::new())),
            runs: AtomicU64::new(0),
        }
    }

    /// A place among the sign-ins in progress, or `None` when they are all taken.
    pub(crate) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.sign_ins.clone().try_acquire_owned().ok()
    }

    /// How many PIN checks (argon2 runs) this process has made.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Whether `pin` matches the argon2 PHC string `hash`. Waits for a free check; the check
    /// keeps its place until argon2 is done, even if the caller stops waiting.
    pub(crate) async fn check(&self, pin: &str, hash: &str) -> Result<bool, EngineError> {
        let permit = self
            .checks
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| EngineError::Invalid(format!("PIN check failed: {e}")))?;
        self.runs.fetch_add(1, Ordering::Relaxed);
        let memory = self.memory.clone();
        let (pin, hash) = (pin.to_owned(), hash.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut block = memory
                .lock()
                .map(|mut free| free.pop())
                .ok()
                .flatten()
                .unwrap_or_default();
            let right = pin_matches_in(&pin, &hash, &mut block);
            if let Ok(mut free) = memory.lock() {
                free.push(block);
            }
            drop(permit);
            right
        })
        .await
        .map_err(|e| EngineError::Invalid(format!("PIN check failed: {e}")))
    }
}

/// Whether `pin` matches the PHC string `phc`, computed in `memory` (grown to the hash's
/// memory cost if smaller, and kept for the next check). The comparison takes the same time
/// wherever the outputs differ (`Output`'s equality).
pub(crate) fn pin_matches_in(pin: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = [0u8; 64];
    let (Some(out), Some(memory)) = (out.get_mut(..expected.len()), memory.get_mut(..blocks))
    else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    if argon2
        .hash_password_into_with_memory(pin.as_bytes(), salt, &mut *out, memory)
        .is_err()
    {
        return false;
    }
    Output::new(out).is_ok_and(|computed| computed == expected)
}

/// Why a source address may not try now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourcePaused {
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct SourceState {
    tokens: u32,
    refilled_at: DateTime<Utc>,
    failures: u32,
    window_start: DateTime<Utc>,
    paused_until: Option<DateTime<Utc>>,
}

/// Attempts and failures per source address (IPv6 by /64: one host usually has the whole
/// prefix), in this process.
#[derive(Debug)]
pub(crate) struct SourceLimits {
    limits: SignInLimits,
    sources: Mutex<Sources>,
}

#[derive(Debug, Default)]
struct Sources {
    map: HashMap<IpAddr, SourceState>,
    swept_at: Option<DateTime<Utc>>,
}

/// The address a source is counted under: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64 prefix.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl SourceLimits {
    pub(crate) fn new(limits: &SignInLimits) -> SourceLimits {
        SourceLimits {
            limits: limits.clone(),
            sources: Mutex::new(Sources::default()),
        }
    }

    fn refill(&self, state: &mut SourceState, now: DateTime<Utc>) {
        let refill_ms = self.limits.source_refill.num_milliseconds().max(1);
        let elapsed_ms = (now - state.refilled_at).num_milliseconds().max(0);
        let earned = elapsed_ms / refill_ms;
        let tokens = i64::from(state.tokens).saturating_add(earned);
        let burst = i64::from(self.limits.source_burst);
        if tokens >= burst {
            state.tokens = self.limits.source_burst;
            state.refilled_at = now;
        } else {
            state.tokens = u32::try_from(tokens).unwrap_or(0);
            state.refilled_at += Duration::milliseconds(earned.saturating_mul(refill_ms));
        }
    }

    /// Whether a state holds nothing a fresh one would not.
    fn forgettable(&self, state: &SourceState, now: DateTime<Utc>) -> bool {
        let mut state = state.clone();
        self.refill(&mut state, now);
        state.tokens == self.limits.source_burst
            && state.paused_until.is_none_or(|until| until <= now)
            && state.window_start + self.limits.source_failure_window <= now
    }

    /// Takes one attempt from the source's allowance, or says until when it must wait. A known
    /// till is not held back by its address's failures, only by the attempts' rate.
    pub(crate) fn admit(
        &self,
        ip: IpAddr,
        known_till: bool,
        now: DateTime<Utc>,
    ) -> Result<(), SourcePaused> {
        let Ok(mut sources) = self.sources.lock() else {
            return Ok(());
        };
        let key = source_key(ip);
        if !sources.map.contains_key(&key) && sources.map.len() >= self.limits.max_sources {
            // At most one sweep a second: under a flood from many addresses, sweeping at every
            // new one would cost more than the limit saves.
            if sources
                .swept_at
                .is_none_or(|at| now - at >= Duration::seconds(1))
            {
                sources.swept_at = Some(now);
                let map = std::mem::take(&mut sources.map);
                sources.map = map
                    .into_iter()
                    .filter(|(_, s)| !self.forgettable(s, now))
                    .collect();
            }
            if sources.map.len() >= self.limits.max_sources {
                return Ok(());
            }
        }
        let burst = self.limits.source_burst;
        let state = sources.map.entry(key).or_insert_with(|| SourceState {
            tokens: burst,
            refilled_at: now,
            failures: 0,
            window_start: now,
            paused_until: None,
        });
        self.refill(state, now);
        if !known_till {
            if let Some(until) = state.paused_until.filter(|until| *until > now) {
                return Err(SourcePaused { until });
            }
        }
        if state.tokens == 0 {
            return Err(SourcePaused {
                until: state.refilled_at + self.limits.source_refill,
            });
        }
        state.tokens -= 1;
        Ok(())
    }

    /// Counts a failed sign-in from the source; returns the pause it starts, if it does.
    pub(crate) fn failed(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut sources = self.sources.lock().ok()?;
        let state = sources.map.get_mut(&source_key(ip))?;
        if state.window_start + self.limits.source_failure_window <= now {
            state.failures = 0;
            state.window_start = now;
        }
        state.failures = state.failures.saturating_add(1);
        let beyond = state
            .failures
            .checked_sub(self.limits.source_free_failures)?;
        if beyond == 0 {
            return None;
        }
        let doublings = (beyond - 1).min(20);
        let pause = self
            .limits
            .source_first_pause
            .checked_mul(1 << doublings)
            .unwrap_or(self.limits.source_max_pause)
            .min(self.limits.source_max_pause);
        let until = now + pause;
        state.paused_until = Some(until);
        Some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    fn hash(pin: &str) -> String {
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        Argon2::default()
            .hash_password(pin.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_pin_is_checked_in_reused_memory_as_argon2_would() {
        let stored = hash("482913");
        let mut memory = Vec::new();
        assert!(pin_matches_in("482913", &stored, &mut memory));
        // 19 MiB, the default cost, kept for the next check.
        assert_eq!(memory.len(), 19 * 1024);
        assert!(!pin_matches_in("482914", &stored, &mut memory));
        assert!(pin_matches_in("482913", &stored, &mut memory));
        assert!(!pin_matches_in("482913", "not a hash", &mut memory));
        // A hash asking for more memory than any of ours is refused, not computed.
        let greedy = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(MAX_MEMORY_KIB + 8, 1, 1, None).unwrap(),
        )
        .hash_password(b"1", &SaltString::encode_b64(&[1u8; 16]).unwrap())
        .unwrap()
        .to_string();
        assert!(!pin_matches_in("1", &greedy, &mut memory));
        assert_eq!(memory.len(), 19 * 1024);
    }

    #[test]
    fn a_source_gets_a_burst_then_one_attempt_per_refill() {
        let limits = SignInLimits::default();
        let sources = SourceLimits::new(&limits);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let t0 = Utc::now();
        for _ in 0..limits.source_burst {
            assert_eq!(sources.admit(ip, false, t0), Ok(()));
        }
        let refused = sources.admit(ip, false, t0).unwrap_err();
        assert_eq!(refused.until, t0 + limits.source_refill);
        // Another address is not affected; the same /64 is the same source.
        assert_eq!(
            sources.admit("203.0.113.10".parse().unwrap(), false, t0),
            Ok(())
        );
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        for _ in 0..limits.source_burst {
            sources.admit(a, false, t0).unwrap();
        }
        assert!(sources.admit(b, false, t0).is_err());
        assert_eq!(sources.admit(ip, false, t0 + limits.source_refill), Ok(()));
        assert!(sources.admit(ip, false, t0 + limits.source_refill).is_err());
    }

    #[test]
    fn a_source_past_its_free_failures_is_paused_longer_each_time() {
        let limits = SignInLimits {
            source_burst: 100,
            ..SignInLimits::default()
        };
        let sources = SourceLimits::new(&limits);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let t0 = Utc::now();
        for _ in 0..limits.source_free_failures {
            sources.admit(ip, false, t0).unwrap();
            assert_eq!(sources.failed(ip, t0), None);
        }
        sources.admit(ip, false, t0).unwrap();
        assert_eq!(sources.failed(ip, t0), Some(t0 + limits.source_first_pause));
        assert!(sources.admit(ip, false, t0).is_err());
        // A known till at the same address is not held back by the others' failures.
        assert_eq!(sources.admit(ip, true, t0), Ok(()));
        assert_eq!(
            sources.failed(ip, t0),
            Some(t0 + limits.source_first_pause * 2)
        );
        let later = t0 + limits.source_first_pause * 2;
        assert_eq!(sources.admit(ip, false, later), Ok(()));
    }

    #[test]
    fn a_full_table_forgets_sources_that_hold_nothing() {
        let limits = SignInLimits {
            max_sources: 2,
            ..SignInLimits::default()
        };
        let sources = SourceLimits::new(&limits);
        let t0 = Utc::now();
        let [a, b, c]: [IpAddr; 3] =
            ["192.0.2.1", "192.0.2.2", "192.0.2.3"].map(|s| s.parse().unwrap());
        sources.admit(a, false, t0).unwrap();
        sources.admit(b, false, t0).unwrap();
        // Full, and nothing forgettable yet: a new source is let through untracked.
        assert_eq!(sources.admit(c, false, t0), Ok(()));
        assert_eq!(sources.sources.lock().unwrap().map.len(), 2);
        let later = t0 + limits.source_failure_window + limits.source_refill * 10;
        sources.admit(c, false, later).unwrap();
        assert_eq!(sources.sources.lock().unwrap().map.len(), 1);
    }
}
