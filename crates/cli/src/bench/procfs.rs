//! The gateway process's CPU time and memory, read from Linux's `/proc` (elsewhere: unknown).

use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// User plus system CPU time since the process started.
    pub cpu: Option<Duration>,
    /// Resident memory now, and its peak since the process started (`VmRSS`, `VmHWM`).
    pub rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

pub fn read(pid: u32) -> Reading {
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some(Duration::from_secs_f64(
                (utime + stime) / ticks_per_second(),
            ))
        });
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Reading {
        cpu,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    }
}

/// The whole machine's CPU time so far, from the first line of `/proc/stat`: time spent
/// busy (anything but idle and waiting for I/O) and in all, in clock ticks over all cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineCpu {
    pub busy: u64,
    pub total: u64,
}

pub fn machine_cpu() -> Option<MachineCpu> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = ticks.iter().sum();
    // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some(MachineCpu {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// The share of all the machine's cores that was busy between two readings, in percent.
pub fn busy_percent(start: Option<MachineCpu>, end: Option<MachineCpu>) -> Option<f64> {
    let (start, end) = (start?, end?);
    let total = end.total.checked_sub(start.total).filter(|t| *t > 0)?;
    let busy = end.busy.saturating_sub(start.busy);
    Some(100.0 * busy as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_busy_between_0_and_100_percent() {
        let start = machine_cpu();
        // Some work, so that the clock ticks.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let end = machine_cpu();
        if cfg!(target_os = "linux") {
            let busy = busy_percent(start, end).unwrap();
            assert!((0.0..=100.0).contains(&busy), "{busy}");
        }
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let r = read(std::process::id());
        if cfg!(target_os = "linux") {
            assert!(r.cpu.is_some());
            assert!(r.rss_kib.is_some_and(|k| k > 0));
            assert!(r.peak_rss_kib >= r.rss_kib);
        }
    }
}
