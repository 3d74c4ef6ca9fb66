//! The provider's commands, run as a person would.

use serde_json::Value;

use crate::{Install, BIN};

#[test]
fn every_command_has_clear_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["migrate"],
        &["config", "check"],
        &["merchant"],
        &["merchant", "create"],
        &["merchant", "import"],
        &["merchant", "list"],
        &["merchant", "show"],
        &["merchant", "rotate-key"],
        &["merchant", "disable"],
        &["merchant", "enable"],
        &["merchant", "set-fee"],
        &["ledger", "balances"],
        &["ledger", "check"],
        &["refunds", "list"],
        &["refunds", "retry"],
        &["operator", "add"],
        &["operator", "list"],
        &["operator", "set-pin"],
        &["operator", "disable"],
        &["operator", "enable"],
        &["operator", "set-role"],
        &["operator", "set-refund-approval"],
        &["shop", "add"],
        &["terminal", "add"],
        &["terminal", "list"],
        &["fx", "set"],
        &["fx", "list"],
        &["pos", "call"],
        &["pos", "scan"],
        &["pos", "charge"],
        &["callbacks", "list"],
        &["callbacks", "show"],
        &["callbacks", "retry"],
        &["sandbox"],
        &["bench"],
    ];
    for args in commands {
        let out = std::process::Command::new(BIN)
            .args(*args)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{args:?} --help failed");
        assert!(text.contains("Usage: qrgate"), "{args:?}: {text}");
        // Every option carries a description: on its line, or on the next, indented.
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Options:"))
            .collect();
        assert!(!lines.is_empty(), "{args:?}: no Options section\n{text}");
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if !(trimmed.starts_with("--") || trimmed.starts_with('-') && trimmed.contains(", --"))
            {
                continue;
            }
            let same_line = trimmed.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            let next_line = lines.get(i + 1).is_some_and(|n| {
                let n = n.trim_start();
                !n.is_empty() && !n.starts_with('-')
            });
            assert!(
                same_line || next_line,
                "{args:?}: undocumented option {line:?}\n{text}"
            );
        }
    }
}

#[test]
fn merchant_create_json_gives_what_scripts_need() {
    let install = Install::sqlite();
    let out = install.ok(&[
        "merchant",
        "create",
        "--name",
        "Maple Tea",
        "--currency",
        "CAD",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["merchant_id"], "ON00000001");
    assert_eq!(v["operator_id"], "0000000001");
    let key = v["sign_key"].as_str().unwrap();
    assert_eq!(key.len(), 16);
    assert!(key
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()));

    let list = install.ok(&["merchant", "list", "--json"]);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "Maple Tea");
    assert!(
        !list.to_string().contains(key),
        "the sign key is shown only once"
    );

    // Rotation gives a new key, shown once.
    let rotated: Value = serde_json::from_str(&install.ok(&[
        "merchant",
        "rotate-key",
        "ON00000001",
        "--grace",
        "1h",
        "--json",
    ]))
    .unwrap();
    assert_ne!(rotated["sign_key"], v["sign_key"]);
    assert!(rotated["previous_key_valid_until"].is_string());

    // People and terminals.
    let op: Value = serde_json::from_str(&install.ok(&[
        "operator",
        "add",
        "--merchant",
        "ON00000001",
        "--name",
        "Li",
        "--json",
    ]))
    .unwrap();
    assert_eq!(op["operator_id"], "0000000002");
    let shop: Value = serde_json::from_str(&install.ok(&[
        "shop",
        "add",
        "--merchant",
        "ON00000001",
        "--name",
        "East",
        "--json",
    ]))
    .unwrap();
    assert_eq!(shop["shop_id"], "ON00000001002");
    install.ok(&[
        "terminal",
        "add",
        "--merchant",
        "ON00000001",
        "--terminal-no",
        "T-1",
        "--shop",
        "ON00000001002",
    ]);
    let shown: Value =
        serde_json::from_str(&install.ok(&["merchant", "show", "ON00000001", "--json"])).unwrap();
    assert_eq!(shown["terminals"][0]["terminal_no"], "T-1");
    assert_eq!(shown["operators"].as_array().unwrap().len(), 2);
}

#[test]
fn operators_can_be_disabled_and_enabled_and_a_new_pin_needs_six_digits() {
    let install = Install::sqlite();
    install.ok(&["merchant", "create", "--name", "M", "--currency", "CAD"]);
    let op = ["--merchant", "ON00000001", "--operator", "0000000001"];
    let out = install.run(&[&["operator", "set-pin"][..], &op, &["--pin", "4321"]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a PIN is 6 to 12 digits"));
    let said = install.ok(&[&["operator", "set-pin"][..], &op, &["--pin", "246810"]].concat());
    assert!(said.contains("open till sessions have ended"), "{said}");
    // A supervisor approves refunds on the till above the merchant's limit.
    let said = install.ok(&[
        &["operator", "set-role"][..],
        &op,
        &["--role", "supervisor"],
    ]
    .concat());
    assert!(said.contains("is now a supervisor"), "{said}");
    let out = install.run(&[&["operator", "set-role"][..], &op, &["--role", "boss"]].concat());
    assert!(!out.status.success());
    let limit = ["--merchant", "ON00000001"];
    let said = install.ok(&[
        &["operator", "set-refund-approval"][..],
        &limit,
        &["--above", "25.00"],
    ]
    .concat());
    assert!(
        said.contains("above CA$25.00") || said.contains("above 25.00"),
        "{said}"
    );
    for bad in ["-1", "12.345", "ten"] {
        let out = install.run(
            &[
                &["operator", "set-refund-approval"][..],
                &limit,
                &["--above", bad],
            ]
            .concat(),
        );
        assert!(!out.status.success(), "{bad} accepted");
    }

    let status = |install: &Install| -> Value {
        let shown: Value =
            serde_json::from_str(&install.ok(&["merchant", "show", "ON00000001", "--json"]))
                .unwrap();
        shown["operators"][0]["status"].clone()
    };
    assert_eq!(status(&install), "active");
    let said = install.ok(&[&["operator", "disable"][..], &op].concat());
    assert!(said.contains("cannot sign in to the till"), "{said}");
    assert_eq!(status(&install), "disabled");
    let text = install.ok(&["merchant", "show", "ON00000001"]);
    assert!(text.contains("0000000001  disabled"), "{text}");
    let listed: Value = serde_json::from_str(&install.ok(&[
        "operator",
        "list",
        "--merchant",
        "ON00000001",
        "--json",
    ]))
    .unwrap();
    assert_eq!(listed[0]["status"], "disabled");
    install.ok(&[&["operator", "enable"][..], &op].concat());
    assert_eq!(status(&install), "active");
    let out = install.run(&[
        "operator",
        "disable",
        "--merchant",
        "ON00000001",
        "--operator",
        "0000000009",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("operator not found"));
}

#[test]
fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let install = Install::sqlite();
    install.ok(&["merchant", "create", "--name", "M", "--currency", "CAD"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["merchant", "create", "--name", "M", "--currency", "EUR"],
            "unsupported currency",
        ),
        (
            &[
                "merchant",
                "create",
                "--name",
                "M",
                "--currency",
                "CAD",
                "--time-zone",
                "Mars/Base",
            ],
            "unknown time zone",
        ),
        (
            &["merchant", "create", "--name", "  ", "--currency", "CAD"],
            "name is empty",
        ),
        (
            &[
                "merchant",
                "create",
                "--name",
                "M",
                "--currency",
                "CAD",
                "--prefix",
                "o1",
            ],
            "prefix",
        ),
        (&["merchant", "disable", "ON0000001"], "invalid merchant id"),
        (&["merchant", "disable", "ON00000099"], "merchant not found"),
        (
            &["operator", "add", "--merchant", "ON00000099", "--name", "x"],
            "merchant not found",
        ),
        (
            &[
                "terminal",
                "add",
                "--merchant",
                "ON00000001",
                "--terminal-no",
                "a b",
            ],
            "invalid terminal number",
        ),
        (&["fx", "set", "CAD", "-5"], "invalid exchange rate"),
        (&["fx", "set", "CNY", "2"], "always 1"),
        (
            &["merchant", "set-fee", "ON00000001", "10001"],
            "0 to 10000 basis points",
        ),
        (
            &["merchant", "set-fee", "ON00000001", "0.5"],
            "whole number of basis points",
        ),
        (
            &["merchant", "set-fee", "ON00000099", "60"],
            "merchant not found",
        ),
        (
            &["merchant", "rotate-key", "ON00000001", "--grace", "40days"],
            "at most 30 days",
        ),
    ];
    for (args, needle) in cases {
        let out = install.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let list: Value = serde_json::from_str(&install.ok(&["merchant", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(install.ok(&["fx", "list"]).contains("no rates set"));
    let shown: Value =
        serde_json::from_str(&install.ok(&["merchant", "show", "ON00000001", "--json"])).unwrap();
    assert_eq!(shown["fee_bps"], 0, "a refused fee changed nothing");
}

#[test]
fn fees_are_set_and_the_empty_books_check_out() {
    let install = Install::sqlite();
    install.ok(&["merchant", "create", "--name", "M", "--currency", "CAD"]);
    assert!(install
        .ok(&["merchant", "set-fee", "ON00000001", "60"])
        .contains("fee 60 bps"));
    let shown: Value =
        serde_json::from_str(&install.ok(&["merchant", "show", "ON00000001", "--json"])).unwrap();
    assert_eq!(shown["fee_bps"], 60);
    assert!(install
        .ok(&["ledger", "balances"])
        .contains("the ledger is empty"));
    assert!(install
        .ok(&["ledger", "check"])
        .contains("every invariant holds"));
    assert!(install.ok(&["refunds", "list"]).contains("no refunds"));
    let out = install.run(&["refunds", "retry", "R261126000000ABCDEFGHJKLM"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refund in progress not found"));
    let json: Value = serde_json::from_str(&install.ok(&["ledger", "balances", "--json"])).unwrap();
    assert_eq!(json, Value::Array(vec![]));
}

#[test]
fn config_check_shows_the_effective_config_with_secrets_hidden() {
    let install = Install::sqlite();
    let config = install.dir.path().join("qrgate.toml");
    std::fs::write(&config, "log_level = \"debug\"\nbody_limit_bytes = 2048\n").unwrap();
    let secret = "0f".repeat(32);
    let out = install
        .command(&["config", "check", "--config", config.to_str().unwrap()])
        .env("QRGATE_MASTER_KEY", &secret)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("body_limit_bytes = 2048"), "{text}");
    assert!(text.contains("log_level = \"debug\""));
    assert!(text.contains("master_key = \"***\""));
    assert!(!text.contains(&secret));
    // A check changes nothing: a fresh install stays empty.
    assert!(text.contains("does not exist yet"), "{text}");
    assert!(
        !install.data_dir().exists(),
        "config check created the data directory"
    );

    // Once the gateway has run, the check confirms the schema and the master key.
    install.ok(&["merchant", "list"]);
    let text = install.ok(&["config", "check"]);
    assert!(
        text.contains("# ok: sqlite database reachable, schema version"),
        "{text}"
    );
    assert!(text.contains("matches the database"), "{text}");
    let out = install
        .command(&["config", "check"])
        .env("QRGATE_MASTER_KEY", &secret)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a master key that differs from the database's is reported"
    );

    // Passwords in a database URL are hidden, in the user info or the query.
    let out = install
        .command(&["config", "check"])
        .env(
            "QRGATE_DATABASE_URL",
            "postgres://u:hunter2@127.0.0.1:1/db?password=hunter3",
        )
        .env_remove("QRGATE_MASTER_KEY")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("database_url") && !text.contains("hunter"),
        "{text}"
    );

    // A typo in the file is named.
    std::fs::write(&config, "listne = \"127.0.0.1:1\"\n").unwrap();
    let out = install.run(&["config", "check", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listne"));
}

#[test]
fn a_different_master_key_is_refused_with_instructions() {
    let install = Install::sqlite();
    install.ok(&["merchant", "create", "--name", "M", "--currency", "CAD"]);
    let out = install
        .command(&["merchant", "list"])
        .env("QRGATE_MASTER_KEY", "ab".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match"), "{stderr}");
    let key_file = std::fs::read_to_string(install.data_dir().join("master.key")).unwrap();
    assert_eq!(key_file.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(install.data_dir().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn wallets_are_configured_in_the_config_file_and_checked_at_start() {
    let install = Install::sqlite();
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox/src/alipay/keys");
    let private = std::fs::read_to_string(keys.join("app_private.pem")).unwrap();
    let public = std::fs::read_to_string(keys.join("alipay_public.pem")).unwrap();
    let config = install.dir.path().join("qrgate.toml");
    let write = |private: &str| {
        std::fs::write(
            &config,
            format!(
                "[wallets.alipay]\ngateway_url = \"http://127.0.0.1:9/alipay/gateway.do\"\napp_id = \"2021000000000001\"\napp_private_key_pem = '''{private}'''\nalipay_public_key_pem = '''{public}'''\n"
            ),
        )
        .unwrap();
    };
    write(&private);
    let out = install.ok(&["config", "check", "--config", config.to_str().unwrap()]);
    assert!(out.contains("# alipay: app_id 2021000000000001"), "{out}");
    assert!(out.contains("# wechatpay: not configured"), "{out}");
    assert!(
        !out.contains("PRIVATE KEY"),
        "keys are never printed: {out}"
    );

    // A broken key stops `serve` at start-up with the setting named.
    write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----");
    let out = install
        .command(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid wallet settings"), "{stderr}");
}

#[test]
fn reconcile_and_settle_commands_refuse_bad_input_and_change_nothing() {
    let install = Install::sqlite();
    install.ok(&["merchant", "create", "--name", "M", "--currency", "CAD"]);
    assert!(install
        .ok(&["reconcile", "breaks", "list"])
        .contains("no breaks"));
    let json: Value =
        serde_json::from_str(&install.ok(&["reconcile", "breaks", "list", "--json"])).unwrap();
    assert_eq!(json, Value::Array(vec![]));
    // No such break: refused; no note: refused by clap.
    let out = install.run(&[
        "reconcile",
        "breaks",
        "resolve",
        "7",
        "--note",
        "ok",
        "--by",
        "ops",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("break not found"));
    assert!(!install
        .run(&["reconcile", "breaks", "resolve", "7"])
        .status
        .success());
    let out = install.run(&["reconcile", "run", "--date", "2026-13-01"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a date"));
    // No wallet configured: nothing to reconcile, said so.
    let out = install.run(&["reconcile", "run", "--date", "2026-11-28"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no wallet is configured"));
    // Nothing posted: nothing to settle, no files, the books still check out.
    let out_dir = install.dir.path().join("statements");
    install.ok(&[
        "settle",
        "run",
        "--date",
        "2026-11-28",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!out_dir.exists());
    assert!(install
        .ok(&["settle", "statements", "--merchant", "ON00000001"])
        .contains("no statements"));
    assert!(install
        .ok(&["ledger", "margin", "--date", "2026-11-28"])
        .contains("no fees"));
    assert!(install
        .ok(&["ledger", "check"])
        .contains("every invariant holds"));
}
