//! `qrgate sandbox`: the simulated wallets as a server of their own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use qrgate_sandbox::{wallet_modules, Sandbox, SandboxConfig};

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address of the wallets' HTTP APIs, the control API and the pay pages.
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Address of the TLS listener for WeChat Pay's /secapi/ calls, which demand a client
    /// certificate (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8091", value_name = "ADDR")]
    pub secapi_listen: SocketAddr,
    /// Keep the sandbox's state (customers, balances, orders, keys) in this directory between
    /// runs; in memory only when absent.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Seeds ids, payment codes and keys: the same seed gives the same sandbox.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The URL phones on your network reach this sandbox at (for QR pay pages), e.g.
    /// http://192.168.1.20:8090; defaults to the listening address.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

pub async fn run(args: &SandboxArgs) -> anyhow::Result<ExitCode> {
    let sandbox = Sandbox::new(
        SandboxConfig {
            seed: args.seed,
            state_dir: args.state_dir.clone(),
            public_url: args.public_url.clone(),
        },
        wallet_modules(),
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; choose another address with --listen",
                args.listen
            )
        })?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let secapi = qrgate_sandbox::wechat::serve_secapi(sandbox.clone(), args.secapi_listen)
        .await
        .with_context(|| format!("cannot start the WeChat Pay TLS listener on {}; choose another with --secapi-listen", args.secapi_listen))?;
    println!(
        "\nqrgate sandbox is ready\n\
         \n  wallets, control API, pay pages  http://{local}\
         \n  WeChat Pay /secapi/ (mTLS)       {secapi}\n\
         \nCredentials for the gateway:      curl -s http://{local}/control/credentials\
         \nA customer with ¥1,000:            curl -s -H 'content-type: application/json' -d '{{\"name\":\"Li Lei\",\"balance_fen\":100000}}' http://{local}/control/customers\
         \nCustomers' phones:                http://{local}/phone\
         \nSee docs/SANDBOX.md for every control call. Stop: Ctrl-C\n",
        secapi = secapi.base_url(),
    );
    tracing::info!(listen = %local, secapi = %secapi.addr(), "sandbox listening");
    sandbox
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("sandbox server error")?;
    drop(secapi);
    Ok(ExitCode::SUCCESS)
}
