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

#[cfg(test)]
mod tests {
    use super::*;

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
