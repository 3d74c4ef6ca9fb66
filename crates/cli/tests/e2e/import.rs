//! `qrgate merchant import`: merchants moved from another gateway keep their ids and sign
//! keys, and a POS signing with its old key is answered by the server the binary starts.

use std::io::{Read, Write};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use qrgate_testkit::pos::PosClient;
use serde_json::{json, Value};

use crate::{Install, BIN};

const KEY_1: &str = "6698851A525C9433";
const KEY_2: &str = "0123456789ABCDEF01";
const KEY_3: &str = "12345678901234";

/// Runs a command with `stdin` as its standard input (a pipe).
fn run_with_stdin(install: &Install, args: &[&str], stdin: &str) -> Output {
    let mut child = install
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn merchant_ids(install: &Install) -> Vec<String> {
    let list: Value = serde_json::from_str(&install.ok(&["merchant", "list", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["merchant_id"].as_str().unwrap().to_owned())
        .collect()
}

fn write_csv(install: &Install, name: &str, content: &str) -> String {
    let path = install.dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// One merchant from flags with its key piped in, two from a CSV file; each answered with its
/// own key by `serve`; merchants created later get numbers above the imported ones.
async fn imported_merchants_are_answered_with_the_keys_their_pos_have(install: Install) {
    let out = run_with_stdin(
        &install,
        &[
            "merchant",
            "import",
            "--merchant-id",
            "QC00005496",
            "--name",
            "Érable",
            "--currency",
            "cad",
            "--time-zone",
            "America/Toronto",
            "--json",
        ],
        &format!("{KEY_1}\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(KEY_1), "the key is never echoed");
    let one: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        one,
        json!({"merchant_id": "QC00005496", "operator_id": "0000000001",
               "shop_id": "QC00005496001", "name": "Érable", "currency": "CAD",
               "time_zone": "America/Toronto"})
    );

    let csv = write_csv(
        &install,
        "merchants.csv",
        &format!(
            "merchant_id,name,currency,sign_key,time_zone\r\n\
             ON00004652,\"Maple, Tea\",CAD,{KEY_2},America/Toronto\r\n\
             AB00000007,Prairie,USD,{KEY_3},\r\n"
        ),
    );
    let out = install.run(&["merchant", "import", "--csv", &csv]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("2 merchants imported") && shown.contains("ON00004652"),
        "{shown}"
    );
    assert!(!shown.contains(KEY_2) && !shown.contains(KEY_3));
    let shown: Value =
        serde_json::from_str(&install.ok(&["merchant", "show", "AB00000007", "--json"])).unwrap();
    assert_eq!(
        (
            &shown["time_zone"],
            &shown["currency"],
            &shown["shops"][0]["shop_id"]
        ),
        (
            &json!("Asia/Shanghai"),
            &json!("USD"),
            &json!("AB00000007001")
        )
    );

    let created: Value = serde_json::from_str(&install.ok(&[
        "merchant",
        "create",
        "--name",
        "New",
        "--currency",
        "CAD",
        "--json",
    ]))
    .unwrap();
    assert_eq!(created["merchant_id"], "ON00005497");
    assert_eq!(
        merchant_ids(&install),
        vec!["AB00000007", "ON00004652", "QC00005496", "ON00005497"]
    );

    install.ok(&["fx", "set", "CAD", "5.1234"]);
    install.ok(&["fx", "set", "USD", "7.12"]);
    let server = install.serve(&[]);
    for (merchant, key, currency, rate) in [
        ("QC00005496", KEY_1, "CAD", "512340000"),
        ("ON00004652", KEY_2, "CAD", "512340000"),
        ("AB00000007", KEY_3, "USD", "712000000"),
    ] {
        let pos = PosClient::new(&server.endpoint(), merchant, key);
        let r = pos.call("EX_RATE_QUERY", json!({})).await;
        assert_eq!(r.rsp_code, "SUCCESS", "{merchant}: {r:?}");
        let data = r.data.unwrap();
        assert_eq!(
            (data["feeType"].as_str(), data["rate"].as_str()),
            (Some(currency), Some(rate)),
            "{merchant}"
        );
    }
    let wrong = PosClient::new(&server.endpoint(), "QC00005496", KEY_2);
    assert_eq!(
        wrong.call("EX_RATE_QUERY", json!({})).await.rsp_code,
        "FAIL",
        "another merchant's key does not open its requests"
    );
    let (status, logs) = server.terminate();
    assert!(status.success());
    let logs = logs.join("\n");
    for key in [KEY_1, KEY_2, KEY_3] {
        assert!(!logs.contains(key), "a sign key reached the logs");
    }
}

#[tokio::test]
async fn imported_merchants_are_answered_with_the_keys_their_pos_have_on_sqlite() {
    imported_merchants_are_answered_with_the_keys_their_pos_have(Install::sqlite()).await;
}

#[tokio::test]
async fn imported_merchants_are_answered_with_the_keys_their_pos_have_on_postgres() {
    if let Some(install) = Install::postgres(
        "e2e::import::imported_merchants_are_answered_with_the_keys_their_pos_have_on_postgres",
    )
    .await
    {
        imported_merchants_are_answered_with_the_keys_their_pos_have(install).await;
    }
}

/// Every refusal exits non-zero with the reason (and the file's row), never shows a key, and
/// imports nothing: a file with one bad row imports none of its good ones.
fn refused_imports_say_why_and_import_nothing(install: &Install) {
    let single = |id: &str| {
        vec![
            "merchant".to_owned(),
            "import".into(),
            "--merchant-id".into(),
            id.into(),
            "--name".into(),
            "M".into(),
            "--currency".into(),
            "CAD".into(),
        ]
    };
    let args = single("QC00005496");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_with_stdin(install, &args, &format!("{KEY_1}\n"));
    assert!(out.status.success(), "{}", text(&out));

    // (arguments, standard input, exit code, what the error says)
    let bad_csv = write_csv(
        install,
        "bad.csv",
        &format!(
            "merchant_id,name,currency,sign_key\n\
             ON00000100,Good,CAD,{KEY_2}\n\
             ON0000010,Short id,CAD,{KEY_2}\n\
             ON00000102,Lower key,CAD,{}\n\
             ON00000103,Bad currency,EUR,{KEY_2}\n",
            KEY_2.to_lowercase()
        ),
    );
    let clashing_csv = write_csv(
        install,
        "clash.csv",
        &format!(
            "merchant_id,name,currency,sign_key\n\
             ON00000100,Good,CAD,{KEY_2}\n\
             QC00005496,Already here,CAD,{KEY_2}\n\
             ON00000100,Twice,CAD,{KEY_2}\n\
             AB00005496,Same number,CAD,{KEY_2}\n\
             ON00000104,\"  \",CAD,{KEY_2}\n"
        ),
    );
    let bad_header = write_csv(install, "header.csv", "merchant_id,name,currency,key\n");
    let not_utf8 = install.dir.path().join("latin1.csv");
    std::fs::write(
        &not_utf8,
        b"merchant_id,name,currency,sign_key\nON00000100,\xC9rable,CAD,0123456789ABCDEF01\n",
    )
    .unwrap();
    let not_utf8 = not_utf8.to_str().unwrap().to_owned();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    let cases: Vec<(Vec<String>, String, i32, Vec<&str>)> = vec![
        (
            single("ON00000100"),
            format!("{}\n", KEY_1.to_lowercase()),
            1,
            vec!["lower-case", "nothing was imported"],
        ),
        (
            single("ON00000100"),
            "6698851A\n".into(),
            1,
            vec!["8 characters: expected 14 to 64"],
        ),
        (single("ON00000100"), String::new(), 1, vec!["no sign key on standard input"]),
        (
            single("QC00005496"),
            format!("{KEY_2}\n"),
            1,
            vec!["merchant QC00005496 already exists; nothing was imported"],
        ),
        (
            single("AB00005496"),
            format!("{KEY_2}\n"),
            1,
            vec!["merchant AB00005496: its number 00005496 is already used by merchant QC00005496 (qrgate keeps merchant numbers unique across prefixes); nothing was imported"],
        ),
        (
            single("ON0000010"),
            format!("{KEY_2}\n"),
            2,
            vec!["invalid merchant id"],
        ),
        (
            [single("ON00000100"), s(&["--sign-key", KEY_2])].concat(),
            String::new(),
            2,
            vec!["unexpected argument '--sign-key'"],
        ),
        (
            s(&["merchant", "import", "--merchant-id", "ON00000100", "--currency", "CAD"]),
            format!("{KEY_2}\n"),
            2,
            vec!["--name"],
        ),
        (
            [single("ON00000100"), s(&["--csv", &bad_csv])].concat(),
            String::new(),
            2,
            vec!["cannot be used with"],
        ),
        (
            s(&["merchant", "import", "--csv", &bad_csv]),
            String::new(),
            1,
            vec![
                "row 3: invalid merchant id \"ON0000010\"",
                "row 4: the sign key has lower-case letters",
                "row 5: unsupported currency",
                "3 of 4 rows refused; nothing was imported",
            ],
        ),
        (
            s(&["merchant", "import", "--csv", &clashing_csv]),
            String::new(),
            1,
            vec![
                "row 3: merchant QC00005496 already exists",
                "row 4: merchant ON00000100 is also on row 2",
                "row 5: merchant AB00005496: its number 00005496 is already used by merchant QC00005496",
                "row 6: merchant ON00000104: name is empty",
                "4 of 5 rows refused; nothing was imported",
            ],
        ),
        (
            s(&["merchant", "import", "--csv", &bad_header]),
            String::new(),
            1,
            vec!["row 1: unknown column \"key\""],
        ),
        (
            s(&["merchant", "import", "--csv", &not_utf8]),
            String::new(),
            1,
            vec!["is not UTF-8 text"],
        ),
        (
            s(&["merchant", "import", "--csv", "/nonexistent/merchants.csv"]),
            String::new(),
            1,
            vec!["cannot read /nonexistent/merchants.csv"],
        ),
    ];
    for (args, stdin, code, needles) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_with_stdin(install, &args, stdin);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {shown}");
        for needle in needles {
            assert!(
                shown.contains(needle),
                "{args:?}: {needle:?} not in\n{shown}"
            );
        }
        for key in [KEY_1, KEY_2] {
            assert!(
                !shown.contains(key) && !shown.contains(&key.to_lowercase()),
                "{args:?} showed a key: {shown}"
            );
        }
    }
    assert_eq!(merchant_ids(install), vec!["QC00005496"]);
}

#[test]
fn refused_imports_say_why_and_import_nothing_on_sqlite() {
    refused_imports_say_why_and_import_nothing(&Install::sqlite());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_imports_say_why_and_import_nothing_on_postgres() {
    if let Some(install) =
        Install::postgres("e2e::import::refused_imports_say_why_and_import_nothing_on_postgres")
            .await
    {
        tokio::task::spawn_blocking(move || refused_imports_say_why_and_import_nothing(&install))
            .await
            .unwrap();
    }
}

/// At a terminal (a pseudo-terminal made by `script`), the key is asked for twice and what is
/// typed is not echoed.
#[test]
fn at_a_terminal_the_key_is_typed_twice_and_never_shown() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        qrgate_testkit::say("SKIPPED at_a_terminal_the_key_is_typed_twice_and_never_shown: no `script` (util-linux) for a pseudo-terminal");
        return;
    }
    let install = Install::sqlite();
    let command_line = format!(
        "{BIN} merchant import --merchant-id ON00000042 --name Tty --currency CAD --data-dir '{}'",
        install.data_dir().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command_line, "/dev/null"])
        .env_remove("QRGATE_CONFIG")
        .env_remove("QRGATE_MASTER_KEY")
        .env_remove("QRGATE_DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("{needle:?} never came; the terminal shows:\n{seen}"),
            }
        }
        seen.clone()
    };
    let mut stdin = child.stdin.take().unwrap();
    // The prompt is shown once echo is off: what is typed after it is not shown.
    wait_for("Sign key of ON00000042");
    stdin.write_all(format!("{KEY_1}\n").as_bytes()).unwrap();
    wait_for("The same key again");
    stdin.write_all(format!("{KEY_1}\n").as_bytes()).unwrap();
    let shown = wait_for("merchant imported");
    let status = child.wait().unwrap();
    drop(stdin);
    assert!(status.success(), "{shown}");
    assert!(!shown.contains(KEY_1), "the key was echoed:\n{shown}");
    assert_eq!(merchant_ids(&install), vec!["ON00000042"]);
}

/// A CSV import killed with SIGKILL at growing delays leaves no merchant or all of them, never
/// some: the whole file is one transaction.
fn a_killed_import_leaves_none_or_all(install: &Install) {
    const ROWS: usize = 5000;
    let mut csv = String::from("merchant_id,name,currency,sign_key\n");
    for n in 0..ROWS {
        csv.push_str(&format!("ON{:08},Shop {n},CAD,{KEY_2}\n", 1000 + n));
    }
    let csv = write_csv(install, "many.csv", &csv);
    install.ok(&["migrate"]);
    let mut delay = Duration::from_millis(100);
    for _ in 0..12 {
        let mut child = install
            .command(&["merchant", "import", "--csv", &csv])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        let count = merchant_ids(install).len();
        assert!(
            count == 0 || count == ROWS,
            "killed after {delay:?}: {count} of {ROWS} merchants imported"
        );
        if finished || count == ROWS {
            assert_eq!(count, ROWS, "the import ended without importing the file");
            return;
        }
        delay *= 2;
    }
    panic!("the import never finished");
}

#[test]
fn a_killed_import_leaves_none_or_all_on_sqlite() {
    a_killed_import_leaves_none_or_all(&Install::sqlite());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_import_leaves_none_or_all_on_postgres() {
    if let Some(install) =
        Install::postgres("e2e::import::a_killed_import_leaves_none_or_all_on_postgres").await
    {
        tokio::task::spawn_blocking(move || a_killed_import_leaves_none_or_all(&install))
            .await
            .unwrap();
    }
}
