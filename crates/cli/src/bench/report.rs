//! Figures: percentiles, the machine, the text and JSON reports.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use super::load::{Kind, LoadFigures, Sample};
use super::procfs::Reading;
use super::storage::StorageFigures;
use super::BenchArgs;

/// What the figures were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpu: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_owned()),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: meminfo
                .lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0 / 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |k| k.trim().to_owned()),
        }
    }

    fn json(&self) -> Value {
        json!({"cpu": self.cpu, "cores": self.cores, "memory_gib": (self.memory_gib * 10.0).round() / 10.0, "kernel": self.kernel})
    }

    fn line(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB, Linux {}",
            self.cores, self.cpu, self.memory_gib, self.kernel
        )
    }
}

/// A progress bar over the measured window, on stderr, hidden for `--json` and when stderr is
/// not a terminal.
pub fn progress(args: &BenchArgs) -> ProgressBar {
    let bar = ProgressBar::new(u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX));
    if args.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:40}] {percent:>3}%  {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Latency percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut values: Vec<Duration>) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_unstable();
        // Nearest rank: the smallest value with at least p % of the values at or below it.
        let at = |p: f64| {
            let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1].as_secs_f64() * 1000.0
        };
        Percentiles {
            p50: at(50.0),
            p95: at(95.0),
            p99: at(99.0),
            max: at(100.0),
        }
    }

    fn json(&self) -> Value {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        json!({"p50_ms": r(self.p50), "p95_ms": r(self.p95), "p99_ms": r(self.p99), "max_ms": r(self.max)})
    }

    fn line(&self) -> String {
        format!(
            "p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
            self.p50, self.p95, self.p99, self.max
        )
    }
}

/// The three processes of a load run, each over the measured window.
pub struct Processes {
    pub gateway: ProcessFigures,
    /// The wallet sandbox: on the same machine, its CPU is taken from the gateway's.
    pub sandbox: ProcessFigures,
    /// The bench itself (the terminals).
    pub bench: ProcessFigures,
    /// How busy all the machine's cores were (with the database server's, the kernel's and
    /// anything else's work): near 100 % means the machine, not the gateway, is the limit.
    pub machine_busy_percent: Option<f64>,
}

/// One process over the run.
#[derive(Debug, Clone, Copy)]
pub struct ProcessFigures {
    pub cpu_seconds: Option<f64>,
    /// CPU time over wall time in the measured window: 100 % is one core busy.
    pub cpu_percent: Option<f64>,
    pub idle_rss_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
}

impl ProcessFigures {
    pub fn between(idle: Reading, start: Reading, end: Reading, window: Duration) -> Self {
        let cpu = match (start.cpu, end.cpu) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
            _ => None,
        };
        let mib = |k: Option<u64>| k.map(|k| k as f64 / 1024.0);
        ProcessFigures {
            cpu_seconds: cpu,
            cpu_percent: cpu.map(|c| 100.0 * c / window.as_secs_f64().max(0.001)),
            idle_rss_mib: mib(idle.rss_kib),
            peak_rss_mib: mib(end.peak_rss_kib),
        }
    }
}

fn per_kind(samples: &[Sample]) -> BTreeMap<Kind, Vec<&Sample>> {
    let mut by: BTreeMap<Kind, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by.entry(s.kind).or_default().push(s);
    }
    by
}

fn codes(samples: &[&Sample]) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for s in samples {
        *by.entry(s.code.clone()).or_insert(0) += 1;
    }
    by
}

/// The gateway's own time in a request: the total less what it waited on wallets.
fn own(s: &Sample) -> Duration {
    s.total.saturating_sub(s.wallet)
}

pub fn print_load(
    figures: &LoadFigures,
    processes: &Processes,
    machine: &Machine,
    pinning: Option<&super::Pinning>,
    args: &BenchArgs,
    database: &str,
) -> anyhow::Result<()> {
    let seconds = figures.measured.as_secs_f64().max(0.001);
    let all: Vec<&Sample> = figures.samples.iter().collect();
    let throughput = all.len() as f64 / seconds;
    let successes = all.iter().filter(|s| s.code == "SUCCESS").count() as f64 / seconds;
    let kinds = per_kind(&figures.samples);
    if args.json {
        let by_kind: serde_json::Map<String, Value> = kinds
            .iter()
            .map(|(k, v)| {
                (
                    k.name().to_owned(),
                    json!({
                        "requests": v.len(),
                        "per_second": v.len() as f64 / seconds,
                        "latency": Percentiles::of(v.iter().map(|s| s.total).collect()).json(),
                        "gateway_latency": Percentiles::of(v.iter().map(|s| own(s)).collect()).json(),
                        "codes": codes(v),
                    }),
                )
            })
            .collect();
        let report = json!({
            "machine": machine.json(),
            "database": database,
            "terminals": args.terminals,
            "rate": args.rate,
            "mix": args.mix.describe(),
            "duration_s": seconds,
            "requests": all.len(),
            "per_second": throughput,
            "successes_per_second": successes,
            "latency": Percentiles::of(all.iter().map(|s| s.total).collect()).json(),
            "gateway_latency": Percentiles::of(all.iter().map(|s| own(s)).collect()).json(),
            "codes": codes(&all),
            "by_action": by_kind,
            "warmup_requests": figures.warmup_requests,
            "helper_errors": figures.helper_errors,
            "wallets": args.wallets.iter().map(|w| format!("{w:?}").to_lowercase()).collect::<Vec<_>>(),
            "gateway": {
                "cpu_seconds": processes.gateway.cpu_seconds,
                "cpu_percent": processes.gateway.cpu_percent,
                "idle_rss_mib": processes.gateway.idle_rss_mib,
                "peak_rss_mib": processes.gateway.peak_rss_mib,
            },
            "sandbox": {
                "cpu_seconds": processes.sandbox.cpu_seconds,
                "cpu_percent": processes.sandbox.cpu_percent,
            },
            "bench": {
                "cpu_seconds": processes.bench.cpu_seconds,
                "cpu_percent": processes.bench.cpu_percent,
            },
            "machine_busy_percent": processes.machine_busy_percent,
            "pinning": pinning.map(|p| json!({"gateway_cpus": p.gateway, "other_cpus": p.others})),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "qrgate bench — {database}, {} terminals, {}, mix {}, wallets {}",
        args.terminals,
        args.rate.map_or_else(
            || "as fast as possible".to_owned(),
            |r| format!("{r} requests/s asked")
        ),
        args.mix.describe(),
        args.wallets
            .iter()
            .map(|w| format!("{w:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(",")
    );
    println!("machine     {}", machine.line());
    if let Some(p) = pinning {
        println!(
            "pinned      gateway on CPU {}; sandbox and terminals on CPU {}",
            p.gateway, p.others
        );
    }
    println!(
        "measured    {:.1} s: {} requests, {:.0}/s ({:.0} SUCCESS/s)",
        seconds,
        all.len(),
        throughput,
        successes
    );
    println!(
        "latency     {}",
        Percentiles::of(all.iter().map(|s| s.total).collect()).line()
    );
    println!(
        "gateway     {}   (total less the wallet time it reports)",
        Percentiles::of(all.iter().map(|s| own(s)).collect()).line()
    );
    for (kind, v) in &kinds {
        println!(
            "  {:<13} {:>7} ({:>6.0}/s)  {}",
            kind.name(),
            v.len(),
            v.len() as f64 / seconds,
            Percentiles::of(v.iter().map(|s| s.total).collect()).line()
        );
    }
    let codes = codes(&all);
    println!(
        "answers     {}",
        codes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let opt = |v: Option<f64>, unit: &str| {
        v.map_or_else(|| "unknown".to_owned(), |v| format!("{v:.1}{unit}"))
    };
    let process = &processes.gateway;
    println!(
        "gateway     CPU {} ({} of one core), memory {} idle, {} peak",
        opt(process.cpu_seconds, " s"),
        opt(process.cpu_percent, " %"),
        opt(process.idle_rss_mib, " MiB"),
        opt(process.peak_rss_mib, " MiB"),
    );
    let per_request = |cpu: Option<f64>| {
        cpu.filter(|_| !all.is_empty()).map_or_else(
            || "unknown".to_owned(),
            |c| format!("{:.2} ms", 1000.0 * c / all.len() as f64),
        )
    };
    println!(
        "CPU/request gateway {}, sandbox {} ({} of one core), terminals {} ({} of one core)",
        per_request(processes.gateway.cpu_seconds),
        per_request(processes.sandbox.cpu_seconds),
        opt(processes.sandbox.cpu_percent, " %"),
        per_request(processes.bench.cpu_seconds),
        opt(processes.bench.cpu_percent, " %"),
    );
    println!(
        "machine     {} of all {} cores busy (every process, the kernel, a database server)",
        opt(processes.machine_busy_percent, " %"),
        machine.cores
    );
    if figures.helper_errors > 0 {
        println!(
            "note        {} untimed sandbox calls (minting codes, paying QRs) failed",
            figures.helper_errors
        );
    }
    Ok(())
}

pub fn print_storage(
    figures: &StorageFigures,
    machine: &Machine,
    json_out: bool,
) -> anyhow::Result<()> {
    let seconds = figures.measured.as_secs_f64().max(0.001);
    let rate = figures.payments as f64 / seconds;
    let latency = Percentiles::of(figures.latencies.clone());
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "machine": machine.json(),
                "database": figures.database,
                "writers": figures.writers,
                "duration_s": seconds,
                "payments": figures.payments,
                "payments_per_second": rate,
                "payment_latency": latency.json(),
                "errors": figures.errors,
                "group_commits": figures.group_commits.map(|(commits, writes)| json!({"commits": commits, "writes": writes})),
            }))?
        );
        return Ok(());
    }
    println!(
        "qrgate bench --storage — {}, {} concurrent writers",
        figures.database, figures.writers
    );
    println!("machine     {}", machine.line());
    println!(
        "measured    {:.1} s: {} payments, {:.0} payments/s (the storage limit)",
        seconds, figures.payments, rate
    );
    println!("per payment {}", latency.line());
    if let Some((commits, writes)) = figures.group_commits {
        println!(
            "commits     {commits} group commits held {writes} writes ({:.1} a commit, whole run)",
            writes as f64 / commits.max(1) as f64
        );
    }
    if figures.errors > 0 {
        println!("errors      {}", figures.errors);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let p = Percentiles::of((1..=100).map(ms).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        let one = Percentiles::of(vec![ms(7)]);
        assert_eq!((one.p50, one.max), (7.0, 7.0));
        assert_eq!(Percentiles::of(Vec::new()).max, 0.0);
    }

    #[test]
    fn mixes_parse_and_refuse_clearly() {
        use super::super::Mix;
        assert!("passive=70,active=10,status=15,refund=5"
            .parse::<Mix>()
            .is_ok());
        let err = "passive=70,cash=3".parse::<Mix>().unwrap_err();
        assert!(err.contains("unknown request kind"), "{err}");
        assert!("passive=0".parse::<Mix>().is_err());
        assert!("passive=x".parse::<Mix>().is_err());
    }
}
