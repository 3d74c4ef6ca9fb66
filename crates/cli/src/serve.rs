//! `qrgate serve`: the HTTP server, with graceful shutdown, and the demo set-up.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use qrgate_engine::DemoMerchant;
use qrgate_http::{AppState, HttpConfig};
use qrgate_ottpay::{Action, Data, RequestEnvelope, SignKey};

use crate::config::Config;
use crate::wiring::open_engine;

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; 0.0.0.0:8080 to accept other machines).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Create a demo merchant on first start (reused after) and print how to call it.
    #[arg(long)]
    pub demo: bool,
}

pub async fn run(config: &Config, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let (engine, key_source) = open_engine(config).await?;
    // Wallet credentials are checked at start-up, so a bad key fails now, not at the first
    // payment. (The payment use cases that call them come with PASSIVEPAY and ACTIVEPAY.)
    let connectors = config
        .wallets
        .build()
        .context("invalid wallet settings ([wallets])")?;
    let wallets: Vec<&str> = connectors.iter().map(|c| c.wallet().as_str()).collect();
    tracing::info!(wallets = ?wallets, "wallets configured");
    let demo = if args.demo {
        Some(engine.ensure_demo_merchant().await?)
    } else {
        None
    };
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
    tracing::info!(
        listen = %local,
        database = engine.store().backend().name(),
        master_key = %key_source,
        "qrgate listening"
    );
    if let Some(demo) = &demo {
        print_demo(demo, local);
    }

    let state = AppState::new(
        engine.clone(),
        HttpConfig {
            body_limit_bytes: config.body_limit_bytes,
        },
    );
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing requests in flight");
        let _ = signalled_tx.send(());
    };
    let server = tokio::spawn(qrgate_http::serve(listener, state, shutdown));
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
    engine.store().close().await;
    result?;
    tracing::info!("qrgate stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn print_demo(demo: &DemoMerchant, local: SocketAddr) {
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
    println!(
        "\nqrgate demo is ready ({state} demo merchant)\n\
         \n  endpoint     {endpoint}\
         \n  merchant id  {id}\
         \n  sign key     {sign_key}\
         \n  operator id  {operator}\
         \n  currency     {currency}\n\
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
    );
}
