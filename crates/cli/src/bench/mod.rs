//! `qrgate bench`: many terminals against one gateway, with figures (docs/BENCHMARKS.md).
//!
//! The bench runs the real thing as separate processes: the wallet sandbox (`qrgate
//! sandbox`) and the gateway (`qrgate serve`, configured with the sandbox's wallets, on a
//! fresh SQLite database or the PostgreSQL one given), both this same binary. Simulated
//! terminals then call the gateway's OTTPAY endpoint over HTTP with the real wire format. At
//! the end it reports throughput, latency percentiles, the gateway's own share of the
//! latency (total minus the wallet time the gateway reports in `Server-Timing`), errors by
//! code, and the gateway process's CPU time and memory, read from `/proc`.
//!
//! `--storage` measures instead the storage limit: the per-payment statements of a
//! PASSIVEPAY replayed straight against the database through the same store code, with the
//! same transactions.

// Figures: counts and durations become f64 for rates and percentiles; a count beyond 2^53 or a
// rounding in the last bit of a millisecond does not matter to a report.
#![allow(clippy::as_conversions, clippy::cast_precision_loss)]

mod load;
mod procfs;
mod report;
mod sign_ins;
mod storage;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use crate::config::Config;

pub use load::Mix;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// How many terminals call the gateway at once (each waits for its answer before its next
    /// request, as a till does).
    #[arg(long, default_value_t = 32)]
    pub terminals: usize,
    /// Requests per second for all terminals together, spread evenly; without it, as fast as
    /// the terminals can go.
    #[arg(long)]
    pub rate: Option<u32>,
    /// How long to measure, after the warm-up: e.g. 30s, 2m.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// How long to run before measuring (connections, caches, first orders).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// The mix of requests, as weights: `passive` (PASSIVEPAY with a fresh instant code),
    /// `active` (ACTIVEPAY, then the customer pays the QR in the sandbox, untimed),
    /// `status` (STATUS_QUERY of a recent order), `refund` (REFUND of 0.01 of a recent
    /// payment). Example: passive=70,active=10,status=15,refund=5.
    #[arg(long, default_value = "passive=100")]
    pub mix: Mix,
    /// Measure the storage limit instead: the per-payment statements of a PASSIVEPAY replayed
    /// straight against the database (no HTTP, no wallet), with `--terminals` concurrent
    /// writers.
    #[arg(long)]
    pub storage: bool,
    /// The wallets the terminals take turns with, comma-separated. WeChat Pay signs with
    /// HMAC; Alipay and UnionPay with RSA-2048, which costs the gateway (and the sandbox)
    /// far more CPU per payment.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "wechat,alipay,unionpay"
    )]
    pub wallets: Vec<BenchWallet>,
    /// Run the gateway on this CPU only, and the sandbox and the terminals on the others
    /// (with `taskset`), so that they do not take the gateway's core: closer to a gateway on
    /// a machine of its own. Linux, at least 2 CPUs.
    #[arg(long, value_name = "CPU")]
    pub pin_gateway: Option<usize>,
    /// Measure instead a flood of this many till sign-ins at once (wrong PINs): the answers,
    /// and the gateway's memory before, at its peak and after (docs/BENCHMARKS.md).
    #[arg(long, value_name = "N")]
    pub sign_ins: Option<usize>,
    /// With --sign-ins: how many loopback source addresses the sign-ins come from
    /// (127.0.1.0 and up).
    #[arg(long, default_value_t = 250)]
    pub sources: usize,
    /// With --sign-ins: run this binary as the gateway instead of this one (e.g. an older
    /// build, to compare).
    #[arg(long, value_name = "PATH")]
    pub gateway_exe: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Keep the bench's working directory (databases, logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchWallet {
    Wechat,
    Alipay,
    Unionpay,
}

/// A child process killed when dropped, so a failed bench leaves nothing running.
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        tracing::debug!(process = self.name, "stopped");
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?)
}

/// Which CPUs the gateway, and everything else, may run on (`taskset` lists).
#[derive(Debug, Clone)]
pub struct Pinning {
    pub gateway: String,
    pub others: String,
}

impl Pinning {
    fn new(gateway: usize, cores: usize) -> anyhow::Result<Pinning> {
        if cores < 2 || gateway >= cores {
            bail!(
                "--pin-gateway needs a CPU from 0 to {} and at least 2 CPUs",
                cores.max(1) - 1
            );
        }
        let others: Vec<String> = (0..cores)
            .filter(|c| *c != gateway)
            .map(|c| c.to_string())
            .collect();
        Ok(Pinning {
            gateway: gateway.to_string(),
            others: others.join(","),
        })
    }

    /// Moves this process (every thread) to the other CPUs.
    fn pin_self(&self) -> anyhow::Result<()> {
        let status = Command::new("taskset")
            .args([
                "-a",
                "-p",
                "-c",
                &self.others,
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .status()
            .context("--pin-gateway needs `taskset` (util-linux)")?;
        anyhow::ensure!(status.success(), "taskset could not pin the bench");
        Ok(())
    }
}

fn spawn(
    name: &'static str,
    args: &[&str],
    dir: &Path,
    cpus: Option<&str>,
) -> anyhow::Result<Process> {
    let exe = std::env::current_exe().context("cannot find the qrgate binary")?;
    spawn_exe(name, &exe, args, dir, cpus)
}

/// Starts `exe` with `args`, its output in `<dir>/<name>.log`, on `cpus` if given.
fn spawn_exe(
    name: &'static str,
    exe: &Path,
    args: &[&str],
    dir: &Path,
    cpus: Option<&str>,
) -> anyhow::Result<Process> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut command = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let child = command
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start the {name}"))?;
    Ok(Process { name, child })
}

/// Runs `qrgate` with `args` to completion and returns its stdout.
fn run_qrgate(args: &[&str]) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()?;
    if !out.status.success() {
        bail!(
            "qrgate {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

async fn wait_until_up(
    http: &reqwest::Client,
    url: &str,
    process: &mut Process,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if let Some(status) = process.child.try_wait()? {
            bail!(
                "the {} exited during start-up ({status}); see its log",
                process.name
            );
        }
        if Instant::now() > deadline {
            bail!("the {} did not answer {url} within 30 s", process.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The merchant's notification endpoint for ACTIVEPAY orders: answers every notification
/// with `SUCCESS`, so that the gateway's deliveries cost what they cost in production.
async fn callback_sink() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/notify", axum::routing::post(|| async { "SUCCESS" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// The bench's working directory, removed at the end unless `--keep`.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Builds the gateway's configuration file from the sandbox's credentials, as a provider
/// would paste them.
fn gateway_config(
    credentials: &Value,
    gateway: SocketAddr,
    database_url: Option<&str>,
) -> anyhow::Result<String> {
    let strip_nulls = |v: &Value| -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    };
    let mut unionpay = strip_nulls(&credentials["unionpay"]);
    unionpay["back_url"] = json!(format!("http://{gateway}/notify/unionpay"));
    let mut config = json!({
        "listen": gateway.to_string(),
        "log_format": "json",
        // The bench's own merchant endpoint takes the ACTIVEPAY notifications on loopback.
        "allow_private_callbacks": true,
        "wallets": {
            "wechatpay": strip_nulls(&credentials["wechat"]),
            "alipay": strip_nulls(&credentials["alipay"]),
            "unionpay": unionpay,
        },
    });
    if let Some(url) = database_url {
        config["database_url"] = json!(url);
    }
    let value: toml::Value = serde_json::from_value(config)?;
    Ok(toml::to_string(&value)?)
}

pub async fn run(config: &Config, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if args.terminals == 0 || args.terminals > 10_000 {
        bail!("--terminals must be 1 to 10000");
    }
    if args.wallets.is_empty() {
        bail!("--wallets must name at least one wallet");
    }
    if args.storage && args.pin_gateway.is_some() {
        bail!("--pin-gateway is for load runs: --storage runs no gateway");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than 0");
    }
    let path = std::env::temp_dir().join(format!("qrgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&path)?;
    let work = WorkDir {
        path,
        keep: args.keep,
    };
    let database = config.database_url.as_deref();
    let machine = report::Machine::read();

    if let Some(n) = args.sign_ins {
        let figures = sign_ins::run(&work, n, args.sources, args.gateway_exe.as_ref()).await?;
        sign_ins::print(&figures, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }

    if args.storage {
        let figures =
            storage::run(&work.path, database, config.database_max_connections, args).await?;
        report::print_storage(&figures, &machine, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }

    let pinning = args
        .pin_gateway
        .map(|cpu| Pinning::new(cpu, machine.cores))
        .transpose()?;
    if let Some(pinning) = &pinning {
        pinning.pin_self()?;
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.terminals)
        .build()?;
    // The sandbox, in its own process.
    let sandbox_addr = free_port()?;
    let sandbox_url = format!("http://{sandbox_addr}");
    let mut sandbox = spawn(
        "sandbox",
        &[
            "sandbox",
            "--listen",
            &sandbox_addr.to_string(),
            "--secapi-listen",
            "127.0.0.1:0",
        ],
        &work.path,
        pinning.as_ref().map(|p| p.others.as_str()),
    )?;
    wait_until_up(
        &http,
        &format!("{sandbox_url}/control/credentials"),
        &mut sandbox,
    )
    .await?;
    let credentials: Value = http
        .get(format!("{sandbox_url}/control/credentials"))
        .send()
        .await?
        .json()
        .await?;

    // The gateway, in its own process, with a merchant created by the CLI.
    let gateway_addr = free_port()?;
    let config_path = work.path.join("gateway.toml");
    std::fs::write(
        &config_path,
        gateway_config(&credentials, gateway_addr, database)?,
    )?;
    let data_dir = work.path.join("data");
    let common = [
        "--config",
        config_path.to_str().context("temp path is not UTF-8")?,
        "--data-dir",
        data_dir.to_str().context("temp path is not UTF-8")?,
    ];
    let created: Value = serde_json::from_str(&run_qrgate(
        &[
            &common[..],
            &[
                "merchant",
                "create",
                "--name",
                "Bench Tea",
                "--currency",
                "CAD",
                "--json",
            ],
        ]
        .concat(),
    )?)?;
    let mut gateway = spawn(
        "gateway",
        &[&common[..], &["serve"]].concat(),
        &work.path,
        pinning.as_ref().map(|p| p.gateway.as_str()),
    )?;
    wait_until_up(
        &http,
        &format!("http://{gateway_addr}/healthz"),
        &mut gateway,
    )
    .await?;
    let idle = procfs::read(gateway.pid());

    let callbacks = callback_sink().await?;
    let setup = load::Setup {
        call_back_url: format!("http://{callbacks}/notify"),
        endpoint: format!("http://{gateway_addr}/processV2"),
        sandbox_url,
        merchant_id: created["merchant_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        sign_key: created["sign_key"].as_str().unwrap_or_default().to_owned(),
        operator_id: created["operator_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        wallets: load::wallet_turns(&args.wallets),
    };
    let pids = [gateway.pid(), sandbox.pid(), std::process::id()];
    let figures = load::run(&http, &setup, args, &pids).await?;
    let reading =
        |readings: &[procfs::Reading], i: usize| readings.get(i).copied().unwrap_or_default();
    let window = |i: usize| {
        report::ProcessFigures::between(
            if i == 0 {
                idle
            } else {
                reading(&figures.cpu_end.processes, i)
            },
            reading(&figures.cpu_start.processes, i),
            reading(&figures.cpu_end.processes, i),
            args.duration,
        )
    };
    let processes = report::Processes {
        gateway: window(0),
        sandbox: window(1),
        bench: window(2),
        machine_busy_percent: procfs::busy_percent(
            figures.cpu_start.machine,
            figures.cpu_end.machine,
        ),
    };
    report::print_load(
        &figures,
        &processes,
        &machine,
        pinning.as_ref(),
        args,
        if database.is_some() {
            "postgresql"
        } else {
            "sqlite"
        },
    )?;
    drop(gateway);
    drop(sandbox);
    Ok(ExitCode::SUCCESS)
}
