//! qrgate's wallet sandbox: simulated WeChat Pay, Alipay and UnionPay servers speaking the
//! wallets' real wire protocols, customers with CNY balances and ledgers, payment codes in
//! the wallets' formats, a phone page per customer (balance, scanning a QR with the password
//! pad, the payment code), each wallet's daily bill through its own download call
//! ([`bills`]), and a control API for tests, demos and people (`docs/SANDBOX.md`).
//!
//! It depends on no other qrgate crate and shares no wire types or signing code with the
//! gateway's connectors: if both used the same struct, a wrong field name would pass every
//! test. The wallet-agnostic semantics (codes, trades, refunds, time) live in [`state`]; each
//! wallet module only translates its protocol to and from them.
//!
//! Deterministic for a seed (ids, codes, keys); time is the system clock plus an offset that
//! the control API moves forward.

pub mod alipay;
pub mod bills;
mod clock;
mod control;
pub mod model;
mod notify;
mod pay_page;
mod phone;
mod rsa_sha256;
pub mod state;
#[cfg(test)]
mod test_rsa;
pub mod unionpay;
pub mod wechat;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration as StdDuration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use clock::Clock;
use model::{Trade, Wallet};
use state::State;

/// What a wallet module gives the sandbox.
pub trait WalletModule: Send + Sync {
    fn wallet(&self) -> Wallet;
    /// The wallet's merchant account(s) for a fresh state, from the seeded generator.
    fn create_accounts(&self, rng: &mut ChaCha8Rng) -> serde_json::Value;
    /// Brings accounts loaded from a state saved by an older sandbox up to date (fixed test
    /// keys and certificates that were re-issued since). Accounts of a fresh state are
    /// passed too and must come out unchanged.
    fn upgrade_accounts(&self, accounts: &mut serde_json::Value);
    /// The wallet's routes, mounted under `/{wallet}` (e.g. `/wechat/pay/micropay`).
    fn router(&self, sandbox: Sandbox) -> Router;
    /// The notification for a paid trade: content type and body. `forged` asks for a wrong
    /// signature (a fault).
    fn notification(
        &self,
        sandbox: &Sandbox,
        trade: &Trade,
        forged: bool,
    ) -> Option<(String, Vec<u8>)>;
    /// Whether the merchant's answer acknowledges a notification in this wallet's terms.
    fn acknowledged(&self, status: u16, body: &str) -> bool;
    /// What the gateway must be configured with to talk to this wallet's sandbox.
    fn credentials(&self, sandbox: &Sandbox) -> serde_json::Value;
}

/// Every wallet the sandbox simulates.
pub fn wallet_modules() -> Vec<Arc<dyn WalletModule>> {
    vec![wechat::module(), alipay::module(), unionpay::module()]
}

/// How to start a sandbox.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    /// Seeds ids, codes and keys: the same seed gives the same sandbox.
    pub seed: u64,
    /// Where the state is kept between runs; in memory only when absent.
    pub state_dir: Option<PathBuf>,
    /// The URL customers' phones reach the sandbox at (pay pages, `code_url`s); defaults to
    /// the listening address.
    pub public_url: Option<String>,
}

struct Inner {
    state: Mutex<State>,
    rng: Mutex<ChaCha8Rng>,
    clock: Clock,
    base_url: RwLock<String>,
    state_file: Option<PathBuf>,
    dirty: AtomicBool,
    modules: Vec<Arc<dyn WalletModule>>,
    http: reqwest::Client,
    /// One background round at a time, so two callers never deliver the same notification.
    tick_lock: tokio::sync::Mutex<()>,
}

/// A sandbox. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sandbox {
    /// Builds a sandbox with the given wallet modules, loading the state directory's snapshot
    /// when there is one.
    pub fn new(
        config: SandboxConfig,
        modules: Vec<Arc<dyn WalletModule>>,
    ) -> anyhow::Result<Sandbox> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let state_file = match &config.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!(
                        "cannot create the sandbox state directory {}",
                        dir.display()
                    )
                })?;
                Some(dir.join("sandbox.json"))
            }
            None => None,
        };
        let loaded = match &state_file {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Some(
                    serde_json::from_str::<State>(&text)
                        .with_context(|| format!("corrupt sandbox state {}", path.display()))?,
                )
            }
            _ => None,
        };
        let mut state = match loaded {
            Some(s) => {
                // Continue the sequence of ids where the saved sandbox stopped.
                rng = ChaCha8Rng::seed_from_u64(s.seed ^ s.next_id);
                s
            }
            None => State::new(config.seed),
        };
        for module in &modules {
            let accounts = state
                .accounts
                .entry(module.wallet())
                .or_insert_with(|| module.create_accounts(&mut rng));
            module.upgrade_accounts(accounts);
        }
        let http = reqwest::Client::builder()
            .timeout(StdDuration::from_secs(10))
            .build()
            .context("cannot build the notification client")?;
        let sandbox = Sandbox {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                rng: Mutex::new(rng),
                clock: Clock::default(),
                base_url: RwLock::new(config.public_url.unwrap_or_default()),
                state_file,
                dirty: AtomicBool::new(true),
                modules,
                http,
                tick_lock: tokio::sync::Mutex::new(()),
            }),
        };
        sandbox.persist()?;
        Ok(sandbox)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Runs `f` on the state with the generator and the current time. Marks the state dirty.
    pub fn with<R>(&self, f: impl FnOnce(&mut State, &mut ChaCha8Rng, DateTime<Utc>) -> R) -> R {
        let now = self.now();
        let mut state = lock(&self.inner.state);
        let mut rng = lock(&self.inner.rng);
        self.inner.dirty.store(true, Ordering::Release);
        f(&mut state, &mut rng, now)
    }

    /// The base URL of the sandbox (`http://host:port`), used in `code_url`s.
    pub fn base_url(&self) -> String {
        self.inner
            .base_url
            .read()
            .map(|u| u.clone())
            .unwrap_or_default()
    }

    fn set_base_url_if_unset(&self, url: String) {
        if let Ok(mut current) = self.inner.base_url.write() {
            if current.is_empty() {
                *current = url;
            }
        }
    }

    pub fn module(&self, wallet: Wallet) -> Option<Arc<dyn WalletModule>> {
        self.inner
            .modules
            .iter()
            .find(|m| m.wallet() == wallet)
            .cloned()
    }

    pub fn modules(&self) -> &[Arc<dyn WalletModule>] {
        &self.inner.modules
    }

    /// The wallet's merchant accounts as its module stored them.
    pub fn accounts(&self, wallet: Wallet) -> serde_json::Value {
        lock(&self.inner.state)
            .accounts
            .get(&wallet)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Takes one unit of a counted fault (e.g. `bad_signature_next`) if set.
    pub fn take_fault(
        &self,
        wallet: Wallet,
        pick: impl FnOnce(&mut state::Faults) -> &mut u32,
    ) -> bool {
        let mut state = lock(&self.inner.state);
        let counter = pick(state.faults(wallet));
        if *counter > 0 {
            *counter -= 1;
            true
        } else {
            false
        }
    }

    /// Whether the next message that carries an amount leaves it out (the `amountless_next`
    /// fault): takes one unit only when `carries_amount`.
    pub(crate) fn take_amountless(&self, wallet: Wallet, carries_amount: bool) -> bool {
        carries_amount && self.take_fault(wallet, |f| &mut f.amountless_next)
    }

    /// Every route: the wallets under `/{wallet}`, the control API under `/control`, the
    /// customers' phones under `/phone` and the QR pay pages under `/pay`.
    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .nest("/control", control::router(self.clone()))
            .merge(phone::router(self.clone()))
            .merge(pay_page::router(self.clone()));
        for module in &self.inner.modules {
            let wallet = module.wallet();
            let wallet_router =
                module
                    .router(self.clone())
                    .layer(axum::middleware::from_fn_with_state(
                        (self.clone(), wallet),
                        faults_middleware,
                    ));
            router = router.nest(&format!("/{}", wallet.as_str()), wallet_router);
        }
        router
    }

    /// Writes the state to the state directory (atomically) if it changed.
    pub fn persist(&self) -> anyhow::Result<()> {
        let Some(path) = &self.inner.state_file else {
            return Ok(());
        };
        if !self.inner.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let text = {
            let state = lock(&self.inner.state);
            serde_json::to_string_pretty(&*state).context("cannot serialise the sandbox state")?
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }

    /// One round of background work: due transitions, notifications, persistence.
    pub async fn tick(&self) {
        let _one_at_a_time = self.inner.tick_lock.lock().await;
        // Only a real change marks the state for saving, so an idle sandbox writes nothing.
        let now = self.now();
        if lock(&self.inner.state).settle_all(now) {
            self.inner.dirty.store(true, Ordering::Release);
        }
        notify::deliver_due(self).await;
        if let Err(e) = self.persist() {
            tracing::warn!(error = %e, "cannot save the sandbox state");
        }
    }

    /// Serves on `listener` until `shutdown`, running the background tick meanwhile.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        self.set_base_url_if_unset(format!("http://{addr}"));
        let ticker = {
            let sandbox = self.clone();
            tokio::spawn(async move {
                loop {
                    sandbox.tick().await;
                    tokio::time::sleep(StdDuration::from_millis(200)).await;
                }
            })
        };
        let result = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        ticker.abort();
        let _ = ticker.await;
        if let Err(e) = self.persist() {
            tracing::warn!(error = %e, "cannot save the sandbox state");
        }
        result
    }

    /// Starts a sandbox in this process on `addr` (port 0 for any), for the demo and tests.
    pub async fn spawn(self, addr: SocketAddr) -> anyhow::Result<RunningSandbox> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        self.set_base_url_if_unset(format!("http://{local}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(RunningSandbox {
            sandbox: self,
            addr: local,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A sandbox running in this process; stops when dropped or [`RunningSandbox::stop`]ped.
pub struct RunningSandbox {
    pub sandbox: Sandbox,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningSandbox {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving; requests still in flight get two seconds (a deliberately unanswered
    /// request would otherwise hold the shutdown for its full two minutes).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(StdDuration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Applies a wallet's latency, failure and dropped-answer faults around its handlers.
async fn faults_middleware(
    AxumState((sandbox, wallet)): AxumState<(Sandbox, Wallet)>,
    request: Request,
    next: Next,
) -> Response {
    let latency_ms = sandbox.with(|s, _, _| s.faults(wallet).latency_ms);
    if latency_ms > 0 {
        tokio::time::sleep(StdDuration::from_millis(latency_ms)).await;
    }
    if sandbox.take_fault(wallet, |f| &mut f.fail_next) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "sandbox fault: internal error",
        )
            .into_response();
    }
    let drop_answer = sandbox.take_fault(wallet, |f| &mut f.drop_next);
    let response = next.run(request).await;
    if drop_answer {
        // The request was processed; the answer never comes. Bounded, so the connection
        // is eventually closed even if the caller never times out.
        tokio::time::sleep(StdDuration::from_secs(120)).await;
        return (StatusCode::GATEWAY_TIMEOUT, Body::empty()).into_response();
    }
    response
}
