//! `qrgate serve`: the HTTP server, with graceful shutdown, and the demo set-up.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use qrgate_connectors::WalletSettings;
use qrgate_engine::{CallbackSettings, DemoMerchant, Engine, Wallets};
use qrgate_http::{AppState, HttpConfig};
use qrgate_ottpay::{Action, Data, RequestEnvelope, SignKey};
use qrgate_sandbox::wechat::SecapiServer;
use qrgate_sandbox::{wallet_modules, RunningSandbox, Sandbox, SandboxConfig};

use crate::config::Config;
use crate::node::Node;
use crate::wiring::open_engine;

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; 0.0.0.0:8080 to accept other machines).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Demo mode: run the wallet sandbox in this process with the wallets configured against
    /// it, create a demo merchant and a demo customer on first start (reused after), and
    /// print how to take a payment.
    #[arg(long)]
    pub demo: bool,
    /// In demo mode, where the sandbox listens (its control API and pay pages).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    pub sandbox_listen: SocketAddr,
    /// In demo mode, the sandbox's address as phones on your network reach it (e.g.
    /// http://192.168.1.20:8090): the QR codes the till shows carry it. Defaults to the
    /// sandbox's listening address (127.0.0.1 when it listens on 0.0.0.0).
    #[arg(long, value_name = "URL")]
    pub sandbox_public_url: Option<String>,
}

/// The sandbox the demo runs in this process.
struct DemoSandbox {
    running: RunningSandbox,
    _secapi: SecapiServer,
    customer: String,
}

/// Starts the sandbox for the demo (state kept in the data directory) and returns wallet
/// settings pointing at it, exactly as a provider would paste them from its credentials.
async fn start_demo_sandbox(
    config: &Config,
    listen: SocketAddr,
    public_url: Option<String>,
) -> anyhow::Result<(DemoSandbox, WalletSettings)> {
    // A sandbox on 0.0.0.0 would write `http://0.0.0.0:…` into its QR codes: use loopback
    // unless told the address phones use.
    let public_url = public_url.or_else(|| {
        listen
            .ip()
            .is_unspecified()
            .then(|| format!("http://127.0.0.1:{}", listen.port()))
    });
    let sandbox = Sandbox::new(
        SandboxConfig {
            seed: 1,
            state_dir: Some(config.data_dir.join("sandbox")),
            public_url,
        },
        wallet_modules(),
    )?;
    let running = sandbox.clone().spawn(listen).await.with_context(|| {
        format!("cannot start the demo sandbox on {listen}; choose another address with --sandbox-listen")
    })?;
    let secapi = qrgate_sandbox::wechat::serve_secapi(
        sandbox.clone(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .context("cannot start the demo sandbox's WeChat Pay TLS listener")?;
    let customer = sandbox.with(|state, _, now| match state.customers.keys().next() {
        Some(id) => id.clone(),
        None => state.add_customer("Demo customer", 1_000_000, now).id,
    });
    let mut credentials = serde_json::Map::new();
    for module in sandbox.modules() {
        credentials.insert(
            module.wallet().as_str().to_owned(),
            module.credentials(&sandbox),
        );
    }
    // UnionPay's back_url is not in the credentials: it defaults to the gateway's own
    // `<public_url>/notify/unionpay` (below, `start`), exactly as for a pasted configuration.
    let mut credentials = serde_json::Value::Object(credentials);
    let settings = WalletSettings {
        wechatpay: Some(
            serde_json::from_value(credentials["wechat"].take())
                .context("demo WeChat Pay settings")?,
        ),
        alipay: Some(
            serde_json::from_value(credentials["alipay"].take()).context("demo Alipay settings")?,
        ),
        unionpay: Some(
            serde_json::from_value(credentials["unionpay"].take())
                .context("demo UnionPay settings")?,
        ),
        timeouts: config.wallets.timeouts,
    };
    tracing::info!(url = %running.url(), "demo sandbox listening");
    Ok((
        DemoSandbox {
            running,
            _secapi: secapi,
            customer,
        },
        settings,
    ))
}

/// The closing loop: settles every order the wallets left open, until shutdown. Orders are
/// worked concurrently, bounded per wallet, so that a slow wallet never delays the others
/// (`qrgate_engine::CLOSING_BOUNDS`).
async fn closing_loop(engine: Engine, stop: tokio::sync::watch::Receiver<bool>) {
    engine.run_closing_loop(stop).await;
}

/// The refund loop: finishes every refund the wallets have not, until shutdown. Its own task,
/// so that slow refund queries never hold up the reversal of unconfirmed payments; bounded
/// per wallet like the closing loop.
async fn refund_loop(engine: Engine, stop: tokio::sync::watch::Receiver<bool>) {
    engine.run_refund_loop(stop).await;
}

/// Fetches the wallets' exchange rates at start and then every `every`, until shutdown.
async fn fx_loop(engine: Engine, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = engine.refresh_wallet_rates().await {
            tracing::warn!(error = %e, "exchange rate refresh failed; retrying at the next round");
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(every) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// The daily reconciliation job: each wallet's bill of yesterday, once published, on one node
/// among several (docs/RECONCILIATION.md).
async fn reconcile_loop(
    engine: Engine,
    settings: qrgate_engine::ReconcileSettings,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    engine.run_reconcile_loop(settings, stop).await;
}

/// Delivers merchant notifications until shutdown, concurrently, bounded per merchant and in
/// total (`qrgate_engine::NOTIFICATION_BOUNDS`), each delivery bounded by its timeout.
async fn notification_loop(engine: Engine, stop: tokio::sync::watch::Receiver<bool>) {
    engine.run_notification_loop(stop).await;
}

/// Runs the engine as this data directory's node, so that its claims survive a restart under
/// the same name, and releases what an earlier run of the node held when it died. Without an
/// identity (the directory cannot hold one) the node runs under a name of its own for this
/// run: a crash then leaves its claims to run out (30 s).
async fn as_node(engine: Engine, config: &Config) -> anyhow::Result<(Engine, Option<Node>)> {
    let node = match crate::node::acquire(&config.data_dir) {
        Ok(node) => node,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "no lasting node identity; after a crash this node's claims wait for their leases");
            return Ok((engine, None));
        }
    };
    let engine = engine.with_node(&node.name)?;
    match engine.release_earlier_claims().await {
        Ok(released) => {
            tracing::info!(node = %node.name, worker = engine.worker(), claims.released = released, "running as node")
        }
        // Nothing lost: the claims run out by themselves.
        Err(e) => {
            tracing::warn!(node = %node.name, error = %e, "cannot release the claims of this node's earlier run; they run out by themselves")
        }
    }
    Ok((engine, Some(node)))
}

pub async fn run(config: &Config, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let (engine, key_source) = open_engine(config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::anyhow!(
                "cannot listen on {}: the address is already in use; stop the other process or \
                 choose another address with --listen (or QRGATE_LISTEN)",
                config.listen
            )
            } else {
                anyhow::anyhow!(
                    "cannot listen on {}: {e}; choose another address with --listen",
                    config.listen
                )
            }
        })?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;

    let (demo_sandbox, settings) = if args.demo {
        let (sandbox, settings) =
            start_demo_sandbox(config, args.sandbox_listen, args.sandbox_public_url.clone())
                .await?;
        (Some(sandbox), settings)
    } else {
        (None, config.wallets.clone())
    };
    let notify_base_url = config.public_url.clone().unwrap_or_else(|| {
        let host = if local.ip().is_unspecified() {
            SocketAddr::new([127, 0, 0, 1].into(), local.port())
        } else {
            local
        };
        format!("http://{host}")
    });
    let mut settings = settings;
    if let Some(unionpay) = settings.unionpay.as_mut() {
        unionpay
            .back_url
            .get_or_insert_with(|| format!("{notify_base_url}/notify/unionpay"));
    }
    // Wallet credentials are checked at start-up, so a bad key fails now, not at the first
    // payment.
    let connectors = settings
        .build()
        .context("invalid wallet settings ([wallets])")?;
    let mut wallets = Wallets::new(connectors);
    wallets.qr_ttl = chrono::Duration::seconds(i64::from(config.closing.qr_expiry_secs));
    wallets.fx_max_age = chrono::Duration::seconds(i64::from(config.fx.max_age_secs));
    wallets.notify_base_url = notify_base_url;
    for wallet in qrgate_domain::Wallet::ALL {
        wallets = wallets.with_policy(wallet, config.closing.policy(wallet));
    }
    let engine = engine
        .with_wallets(wallets)
        .with_callback_settings(CallbackSettings {
            allow_private: config.allow_private_callbacks || args.demo,
            timeout: Duration::from_secs(10),
            format: Some(std::sync::Arc::new(qrgate_http::OttpayNotificationFormat)),
            ..CallbackSettings::default()
        })?;
    let console_config = qrgate_console::ConsoleConfig {
        wallet_base_urls: wallet_base_urls(&settings),
        secure_cookie: config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
    };
    let wallets: Vec<&str> = engine
        .wallets()
        .enabled()
        .iter()
        .map(|w| w.as_str())
        .collect();
    tracing::info!(wallets = ?wallets, "wallets configured");
    // Kept (and its identity locked) until the process ends.
    let (engine, _node) = as_node(engine, config).await?;
    let demo = if args.demo {
        Some(engine.ensure_demo_merchant().await?)
    } else {
        None
    };
    let demo_users = match &demo {
        Some(d) => Some(engine.ensure_demo_console_users(&d.merchant.id).await?),
        None => None,
    };
    let signals = shutdown_signal()?;
    tracing::info!(
        listen = %local,
        database = engine.store().backend().name(),
        master_key = %key_source,
        "qrgate listening"
    );
    if let (Some(demo), Some(sandbox)) = (&demo, &demo_sandbox) {
        print_demo(demo, local, sandbox);
    }
    if let Some(users) = &demo_users {
        print_demo_console(users, local);
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let closer = tokio::spawn(closing_loop(engine.clone(), stop_rx.clone()));
    let notifier = tokio::spawn(notification_loop(engine.clone(), stop_rx.clone()));
    let refunder = tokio::spawn(refund_loop(engine.clone(), stop_rx.clone()));
    let fx_refresher = tokio::spawn(fx_loop(
        engine.clone(),
        Duration::from_secs(u64::from(config.fx.refresh_secs)),
        stop_rx.clone(),
    ));
    let reconciler = tokio::spawn(reconcile_loop(
        engine.clone(),
        config.reconcile.settings(),
        stop_rx,
    ));
    let till_secure_cookie = config.till_secure_cookie(args.demo);
    if till_secure_cookie {
        tracing::info!(
            "the till's cookies are Secure: browsers sign in to /pos over HTTPS only \
             (till_secure_cookie = false for plain HTTP)"
        );
    }
    let state = AppState::new(
        engine.clone(),
        HttpConfig {
            body_limit_bytes: config.body_limit_bytes,
            limits: config.http.limits(),
            till_secure_cookie,
            till_trusted_proxies: config.till_trusted_proxies.clone(),
        },
    );
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        signals.await;
        tracing::info!("shutdown requested: finishing requests in flight");
        let _ = signalled_tx.send(());
    };
    let console = qrgate_console::router(qrgate_console::ConsoleState::new(
        engine.clone(),
        console_config,
    ));
    let server = tokio::spawn(qrgate_http::serve_with(listener, state, console, shutdown));
    let result = tokio::select! {
        joined = server => joined.context("server task failed")?.context("server error"),
        () = async {
            // After the signal, give requests in flight a bounded time.
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; exiting anyway");
            Ok(())
        }
    };
    // The loops stop claiming and finish the steps in hand, all within one grace period; a
    // step still running then is released at this node's next start, or when its lease
    // runs out.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = tokio::join!(closer, notifier, refunder, fx_refresher, reconciler);
    })
    .await;
    if let Some(sandbox) = demo_sandbox {
        sandbox.running.stop().await;
    }
    engine.store().close().await;
    result?;
    tracing::info!("qrgate stopped");
    Ok(ExitCode::SUCCESS)
}

/// The wallets' base URLs in use, for the console's wallets page.
fn wallet_base_urls(settings: &WalletSettings) -> Vec<(qrgate_domain::Wallet, String)> {
    let mut urls = Vec::new();
    if let Some(w) = &settings.wechatpay {
        urls.push((qrgate_domain::Wallet::WechatPay, w.base_url.clone()));
    }
    if let Some(a) = &settings.alipay {
        urls.push((qrgate_domain::Wallet::Alipay, a.gateway_url.clone()));
    }
    if let Some(u) = &settings.unionpay {
        urls.push((qrgate_domain::Wallet::UnionPay, u.base_url.clone()));
    }
    urls
}

fn print_demo_console(users: &qrgate_engine::DemoConsoleUsers, local: SocketAddr) {
    let host = if local.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), local.port())
    } else {
        local
    };
    println!(
        "The web console (docs/CONSOLE.md): http://{host}/console\n\
         \n  provider admin   {admin}   password {password}\
         \n  merchant owner   {owner}   password {password}   (merchant {merchant})\n",
        admin = users.provider_admin,
        owner = users.merchant_owner,
        password = users.password,
        merchant = users.merchant_id,
    );
}

/// Takes SIGINT and SIGTERM from now on (registered here, not at the future's first poll, so
/// that a signal arriving just after "qrgate listening" is not met by the default action,
/// which would end the process without a graceful shutdown) and gives a future that completes
/// at the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())
            .context("cannot take SIGTERM for a graceful shutdown")?;
        let mut interrupt = signal(SignalKind::interrupt())
            .context("cannot take SIGINT for a graceful shutdown")?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

fn print_demo(demo: &DemoMerchant, local: SocketAddr, sandbox: &DemoSandbox) {
    let host = if local.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), local.port())
    } else {
        local
    };
    let endpoint = format!("http://{host}/processV2");
    let key = SignKey::new(demo.sign_key.expose());
    let mut data = Data::new();
    data.insert("fee_type".into(), "CAD".into());
    let body = RequestEnvelope::seal(
        Action::ExRateQuery,
        demo.merchant.id.as_str(),
        None,
        None,
        &data,
        &key,
    )
    .to_json();
    let state = if demo.created { "created" } else { "reused" };
    let sandbox_url = sandbox.running.sandbox.base_url();
    let pin = demo
        .till_pin
        .unwrap_or("(changed with `qrgate operator set-pin`)");
    println!(
        "\nqrgate demo is ready ({state} demo merchant)\n\
         \n  endpoint     {endpoint}\
         \n  merchant id  {id}\
         \n  sign key     {sign_key}\
         \n  operator id  {operator}\
         \n  currency     {currency}\
         \n  sandbox      {sandbox_url}   (WeChat Pay, Alipay, UnionPay; docs/SANDBOX.md)\
         \n  customer     {customer} in the sandbox\n\
         \nThe web till (two browser windows; README \"Playing both scenes in a browser\"):\n\
         \n  till         http://{host}/pos   merchant id {id}, operator id {operator}, PIN {pin}\
         \n  phone        {sandbox_url}/phone/{customer}   (the customer's wallet app: Scan, Pay by code)\n\
         \nTake a payment as a cashier scanning the customer's code (PASSIVEPAY):\n\
         \n  1. the customer opens their WeChat Pay code (or alipay, unionpay):\
         \n     curl -s -H 'content-type: application/json' -d '{{\"customer_id\":\"{customer}\",\"wallet\":\"wechat\"}}' {sandbox_url}/control/codes\
         \n  2. the cashier enters the amount and scans (pastes) the \"code\":\
         \n     QRGATE_POS_SIGN_KEY={sign_key} cargo run --release -- pos scan \\\
         \n         --endpoint {endpoint} --merchant {id} --operator {operator}\
         \n  3. the customer's balance and ledger: curl -s {sandbox_url}/control/customers/{customer}\n\
         \nShow a QR for the customer to scan (ACTIVEPAY):\n\
         \n  QRGATE_POS_SIGN_KEY={sign_key} cargo run --release -- pos call ACTIVEPAY \\\
         \n      '{{\"amount\":\"1250\",\"biz_type\":\"ALIPAY\",\"call_back_url\":\"https://merchant.example/notify\"}}' --endpoint {endpoint} --merchant {id}\
         \n  then open the answer's code_url in a browser (that is the customer scanning it) and pay;\
         \n  STATUS_QUERY (pos call STATUS_QUERY '{{\"order_id\":\"…\"}}') then says success.\n\
         \nAsk for the CAD exchange rate as a POS would (the answer is decrypted and verified):\n\
         \n  QRGATE_POS_SIGN_KEY={sign_key} cargo run --release -- pos call EX_RATE_QUERY \\\
         \n      '{{\"fee_type\":\"CAD\"}}' --endpoint {endpoint} --merchant {id}\n\
         \nor with curl (the envelope is sealed with the demo key; the answer's data is encrypted):\n\
         \n  curl -s -H 'content-type: application/json' -d '{body}' {endpoint}\n\
         \nHealth: http://{host}/healthz   Metrics: http://{host}/metrics   Stop: Ctrl-C\n",
        id = demo.merchant.id,
        sign_key = demo.sign_key.expose(),
        operator = demo.operator_id,
        currency = demo.merchant.currency,
        customer = sandbox.customer,
    );
}
