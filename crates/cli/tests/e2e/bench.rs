//! `qrgate bench` runs and reports what it measured (the figures themselves are benchmark
//! results recorded in docs/BENCHMARKS.md, never asserted here).

use serde_json::Value;

use crate::Install;

#[test]
fn the_load_bench_drives_a_gateway_and_a_sandbox_and_reports_figures() {
    let install = Install::sqlite();
    let out = install.ok(&[
        "bench",
        "--terminals",
        "2",
        "--duration",
        "2s",
        "--warmup",
        "1s",
        "--mix",
        "passive=5,active=1,status=2,refund=1",
        "--json",
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    // Every request of the mix was answered by the gateway as a success or "processing"
    // (a WeChat refund is finished in the background).
    for (code, _) in report["codes"].as_object().unwrap() {
        assert!(
            ["SUCCESS", "PROCESSING"].contains(&code.as_str()),
            "{report}"
        );
    }
    assert!(
        report["by_action"]["PASSIVEPAY"]["requests"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(report["latency"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(report["gateway"]["peak_rss_mib"].as_f64().unwrap() > 0.0);
    assert!(report["gateway"]["cpu_seconds"].as_f64().is_some());
    assert!(
        report["sandbox"]["cpu_seconds"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["bench"]["cpu_seconds"].as_f64().is_some(),
        "{report}"
    );
    let busy = report["machine_busy_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&busy), "{report}");
    assert_eq!(
        report["wallets"],
        serde_json::json!(["wechat", "alipay", "unionpay"])
    );
    assert_eq!(report["helper_errors"], 0, "{report}");
}

/// A one-second load run on SQLite with two terminals and `extra` options; its JSON report.
fn short_load_run(extra: &[&str]) -> Value {
    let install = Install::sqlite();
    let args = [
        &[
            "bench",
            "--terminals",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--json",
        ][..],
        extra,
    ]
    .concat();
    serde_json::from_str(&install.ok(&args)).unwrap()
}

#[test]
fn the_load_bench_can_give_the_gateway_a_cpu_of_its_own() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 {
        eprintln!("SKIPPED the_load_bench_can_give_the_gateway_a_cpu_of_its_own: one CPU only");
        return;
    }
    let report = short_load_run(&["--pin-gateway", "1"]);
    assert_eq!(report["pinning"]["gateway_cpus"], "1", "{report}");
    assert!(
        !report["pinning"]["other_cpus"]
            .as_str()
            .unwrap()
            .split(',')
            .any(|c| c == "1"),
        "{report}"
    );
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn the_load_bench_takes_the_wallets_asked_for() {
    let report = short_load_run(&["--wallets", "unionpay"]);
    assert_eq!(report["wallets"], serde_json::json!(["unionpay"]));
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        report["codes"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["SUCCESS"],
        "{report}"
    );
}

#[tokio::test]
async fn the_storage_bench_replays_payments_on_both_databases() {
    let mut installs = vec![Install::sqlite()];
    installs.extend(Install::postgres("bench_storage").await);
    for install in installs {
        let out = install.ok(&[
            "bench",
            "--storage",
            "--terminals",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--json",
        ]);
        let report: Value = serde_json::from_str(&out).unwrap();
        assert!(report["payments"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(report["errors"], 0, "{report}");
        // SQLite reports its group commits; PostgreSQL has none of its own.
        if report["database"] == "sqlite" {
            let commits = &report["group_commits"];
            assert!(commits["writes"].as_u64().unwrap() >= commits["commits"].as_u64().unwrap());
            assert!(commits["commits"].as_u64().unwrap() > 0, "{report}");
        } else {
            assert!(report["group_commits"].is_null(), "{report}");
        }
    }
}

#[test]
fn bad_bench_options_are_refused_with_a_reason() {
    let install = Install::sqlite();
    for (args, needle) in [
        (&["bench", "--mix", "cash=3"][..], "unknown request kind"),
        (
            &["bench", "--terminals", "0"][..],
            "--terminals must be 1 to 10000",
        ),
        (
            &["bench", "--duration", "0s"][..],
            "--duration must be more than 0",
        ),
        (
            &["bench", "--wallets", "paypal"][..],
            "invalid value 'paypal'",
        ),
        (
            &["bench", "--pin-gateway", "4096"][..],
            "--pin-gateway needs a CPU from 0 to",
        ),
        (
            &["bench", "--storage", "--pin-gateway", "0"][..],
            "--pin-gateway is for load runs",
        ),
    ] {
        let out = install.run(args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
