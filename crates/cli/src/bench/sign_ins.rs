//! `qrgate bench --sign-ins N`: a flood of N till sign-ins at once against a gateway in its own
//! process (`qrgate serve` on a fresh SQLite database), with the gateway's resident memory
//! read from `/proc` before, at its peak (`VmHWM`) and after. Each sign-in types a wrong PIN
//! for an operator id of its own (none exist but the first), so every one costs a PIN check
//! and no lock of one pair of ids cuts the flood short; `--sources` spreads them over that
//! many loopback addresses (127.0.1.x, …), so that the limits per source address do not
//! either. `--gateway-exe` runs another build as the gateway (e.g. an older one, to compare).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::{free_port, procfs, spawn_exe, wait_until_up, WorkDir};

/// The PIN the first operator is given; the flood types another.
const PIN: &str = "135790";

/// What a flood of sign-ins did to the gateway.
#[derive(Debug)]
pub struct SignInFigures {
    pub sign_ins: usize,
    pub sources: usize,
    pub statuses: BTreeMap<u16, usize>,
    pub errors: usize,
    pub flood_ms: u128,
    pub slowest_ms: u128,
    pub idle_rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    pub after_1s_rss_kib: Option<u64>,
    pub after_10s_rss_kib: Option<u64>,
}

fn run_exe(exe: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            exe.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The `i`-th of `sources` loopback addresses: 127.0.1.0, 127.0.1.1, …
fn source(i: usize, sources: usize) -> IpAddr {
    let n = u32::try_from(i % sources.max(1)).unwrap_or(0);
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 1, 0)) + n))
}

pub async fn run(
    work: &WorkDir,
    sign_ins: usize,
    sources: usize,
    gateway_exe: Option<&PathBuf>,
) -> anyhow::Result<SignInFigures> {
    if sign_ins == 0 || sign_ins > 10_000 {
        bail!("--sign-ins must be 1 to 10000");
    }
    if sources == 0 || sources > 65_000 {
        bail!("--sources must be 1 to 65000");
    }
    let exe = match gateway_exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().context("cannot find the qrgate binary")?,
    };
    let data_dir = work.path.join("data");
    let data = data_dir.to_str().context("temp path is not UTF-8")?;
    let created: Value = serde_json::from_str(&run_exe(
        &exe,
        &[
            "--data-dir",
            data,
            "merchant",
            "create",
            "--name",
            "Bench Tea",
            "--currency",
            "CAD",
            "--json",
        ],
    )?)?;
    let merchant_id = created["merchant_id"]
        .as_str()
        .context("merchant create gave no merchant_id")?
        .to_owned();
    run_exe(
        &exe,
        &[
            "--data-dir",
            data,
            "operator",
            "set-pin",
            "--merchant",
            &merchant_id,
            "--operator",
            "0000000001",
            "--pin",
            PIN,
        ],
    )?;
    let addr = free_port()?;
    let listen = addr.to_string();
    let mut gateway = spawn_exe(
        "gateway",
        &exe,
        &["--data-dir", data, "serve", "--listen", &listen],
        &work.path,
        None,
    )?;
    let http = reqwest::Client::new();
    wait_until_up(&http, &format!("http://{addr}/healthz"), &mut gateway).await?;
    let pid = gateway.pid();
    // Let start-up settle before the idle reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = procfs::read(pid);

    let clients = (0..sources.min(sign_ins))
        .map(|i| {
            reqwest::Client::builder()
                .local_address(source(i, sources))
                .timeout(Duration::from_secs(120))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let url = format!("http://{addr}/pos/sign-in");
    let start = Arc::new(tokio::sync::Barrier::new(sign_ins + 1));
    let mut tasks = Vec::with_capacity(sign_ins);
    for i in 0..sign_ins {
        let client = clients[i % clients.len()].clone();
        let (url, merchant_id, start) = (url.clone(), merchant_id.clone(), start.clone());
        // Operator ids of their own: 0000000002 and up exist nowhere.
        let operator_id = format!("{:010}", i + 2);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let began = Instant::now();
            let answer = client
                .post(&url)
                .form(&[
                    ("merchant_id", merchant_id.as_str()),
                    ("operator_id", operator_id.as_str()),
                    ("pin", "000000"),
                ])
                .send()
                .await;
            let status = match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let _ = r.bytes().await;
                    Some(status)
                }
                Err(_) => None,
            };
            (status, began.elapsed())
        }));
    }
    let began = Instant::now();
    start.wait().await;
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    let mut slowest = Duration::ZERO;
    for task in tasks {
        let (status, took) = task.await?;
        slowest = slowest.max(took);
        match status {
            Some(s) => *statuses.entry(s).or_insert(0) += 1,
            None => errors += 1,
        }
    }
    let flood = began.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_1s = procfs::read(pid);
    tokio::time::sleep(Duration::from_secs(9)).await;
    let after_10s = procfs::read(pid);
    drop(gateway);
    Ok(SignInFigures {
        sign_ins,
        sources,
        statuses,
        errors,
        flood_ms: flood.as_millis(),
        slowest_ms: slowest.as_millis(),
        idle_rss_kib: idle.rss_kib,
        peak_rss_kib: after_10s.peak_rss_kib,
        after_1s_rss_kib: after_1s.rss_kib,
        after_10s_rss_kib: after_10s.rss_kib,
    })
}

pub fn print(figures: &SignInFigures, json_out: bool) -> anyhow::Result<()> {
    let mib = |k: Option<u64>| k.map(|k| format!("{:.0} MiB", k as f64 / 1024.0));
    if json_out {
        let statuses: serde_json::Map<String, Value> = figures
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), json!(n)))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "sign_ins": figures.sign_ins,
                "sources": figures.sources,
                "statuses": statuses,
                "errors": figures.errors,
                "flood_ms": figures.flood_ms,
                "slowest_ms": figures.slowest_ms,
                "rss_kib": {
                    "idle": figures.idle_rss_kib,
                    "peak": figures.peak_rss_kib,
                    "after_1s": figures.after_1s_rss_kib,
                    "after_10s": figures.after_10s_rss_kib,
                },
            }))?
        );
        return Ok(());
    }
    println!(
        "{} sign-ins at once (wrong PINs, an operator id each) from {} source address(es)",
        figures.sign_ins, figures.sources
    );
    let statuses: Vec<String> = figures
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    println!(
        "  answers     {}{}",
        statuses.join(", "),
        if figures.errors > 0 {
            format!(", no answer: {}", figures.errors)
        } else {
            String::new()
        }
    );
    println!(
        "  time        {} ms for all, {} ms the slowest",
        figures.flood_ms, figures.slowest_ms
    );
    let show = |k: Option<u64>| mib(k).unwrap_or_else(|| "unknown".into());
    println!(
        "  gateway RSS idle {}, peak {}, 1 s after {}, 10 s after {}",
        show(figures.idle_rss_kib),
        show(figures.peak_rss_kib),
        show(figures.after_1s_rss_kib),
        show(figures.after_10s_rss_kib)
    );
    Ok(())
}
