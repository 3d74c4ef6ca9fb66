//! The workspace's dependency rules (ARCHITECTURE.md "Invariants"), checked over
//! `cargo metadata`, so a change that breaks a layer fails a test rather than a review.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// Each workspace package with the names of its normal (non-dev) dependencies.
fn dependencies() -> BTreeMap<String, Vec<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

const IO_CRATES: [&str; 8] = [
    "tokio",
    "sqlx",
    "axum",
    "reqwest",
    "hyper",
    "tower",
    "tower-http",
    "rand",
];

fn workspace_deps(deps: &[String]) -> Vec<&str> {
    deps.iter()
        .map(String::as_str)
        .filter(|d| d.starts_with("qrgate"))
        .collect()
}

#[test]
fn the_pure_crates_do_no_io() {
    let all = dependencies();
    for krate in ["qrgate-domain", "qrgate-ottpay"] {
        let deps = &all[krate];
        for io in IO_CRATES {
            assert!(
                !deps.iter().any(|d| d == io),
                "{krate} must not depend on {io}"
            );
        }
    }
}

#[test]
fn layers_depend_only_downwards() {
    let all = dependencies();
    let rules: [(&str, &[&str]); 7] = [
        ("qrgate-domain", &[]),
        ("qrgate-ottpay", &[]),
        ("qrgate-client", &["qrgate-ottpay"]),
        ("qrgate-store", &["qrgate-domain"]),
        (
            "qrgate-engine",
            &["qrgate-domain", "qrgate-store", "qrgate-connector-api"],
        ),
        (
            "qrgate-http",
            &["qrgate-domain", "qrgate-engine", "qrgate-ottpay"],
        ),
        ("qrgate-console", &["qrgate-domain", "qrgate-engine"]),
    ];
    for (krate, allowed) in rules {
        for dep in workspace_deps(&all[krate]) {
            assert!(allowed.contains(&dep), "{krate} must not depend on {dep}");
        }
    }
    for (krate, forbidden) in [
        ("qrgate-engine", "axum"),
        ("qrgate-engine", "qrgate-ottpay"),
        ("qrgate-http", "sqlx"),
        ("qrgate-console", "sqlx"),
        ("qrgate-console", "qrgate-store"),
        ("qrgate-http", "qrgate-console"),
    ] {
        assert!(
            !all[krate].iter().any(|d| d == forbidden),
            "{krate} must not depend on {forbidden}"
        );
    }
}

#[test]
fn the_sandbox_is_independent_of_the_gateway() {
    let all = dependencies();
    let deps = &all["qrgate-sandbox"];
    assert!(
        workspace_deps(deps).is_empty(),
        "qrgate-sandbox must depend on no qrgate crate: {deps:?}"
    );
    for (krate, deps) in &all {
        if krate != "qrgate" {
            assert!(
                !deps.iter().any(|d| d == "qrgate-sandbox"),
                "{krate} must not depend on the sandbox (tests may)"
            );
        }
    }
    let connectors = &all["qrgate-connectors"];
    for dep in workspace_deps(connectors) {
        assert!(
            ["qrgate-connector-api", "qrgate-domain"].contains(&dep),
            "qrgate-connectors must not depend on {dep}"
        );
    }
}

#[test]
fn the_browser_harness_depends_on_no_qrgate_crate() {
    // Its tests drive the sandbox (a dev-dependency); the harness itself is shared by the
    // sandbox's phone tests and the gateway's till tests, so it must pull in neither.
    let all = dependencies();
    let deps = &all["qrgate-browser-tests"];
    assert!(
        workspace_deps(deps).is_empty(),
        "qrgate-browser-tests must depend on no qrgate crate outside its tests: {deps:?}"
    );
}

#[test]
fn only_the_binary_and_tests_use_the_testkit() {
    for (krate, deps) in dependencies() {
        assert!(
            !deps.iter().any(|d| d == "qrgate-testkit"),
            "{krate} has the testkit as a normal dependency"
        );
    }
}
