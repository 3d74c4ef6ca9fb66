//! End-to-end tests of the built `qrgate` binary: the commands a provider types, and a POS
//! written from `ottpay.md` alone calling the server they started.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench;
mod callbacks;
mod commands;
mod crash;
mod data_dir;
mod import;
mod loops;
mod pos_charge;
mod pos_scan;
mod serve;
mod users;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_qrgate");

/// One gateway installation: a data directory, and optionally a PostgreSQL database.
pub struct Install {
    pub dir: TempDir,
    pub database_url: Option<String>,
    /// Kept alive for the test's duration.
    _db: Option<qrgate_testkit::TestDb>,
}

impl Install {
    pub fn sqlite() -> Install {
        Install {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
            _db: None,
        }
    }

    /// A PostgreSQL installation, or `None` when no server is reachable (skip reported).
    pub async fn postgres(test: &str) -> Option<Install> {
        let db = qrgate_testkit::TestDb::postgres(test).await?;
        Some(Install {
            dir: tempfile::tempdir().unwrap(),
            database_url: Some(db.url.clone()),
            _db: Some(db),
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("RUST_LOG")
            .env_remove("QRGATE_CONFIG")
            .env_remove("QRGATE_MASTER_KEY")
            .env_remove("QRGATE_DATABASE_URL")
            .env_remove("QRGATE_LISTEN")
            .stdin(Stdio::null());
        if let Some(url) = &self.database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "qrgate {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts `serve` on a free port with JSON logs; waits until it listens.
    pub fn serve(&self, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--log-format", "json"];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut logs = Vec::new();
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!("serve did not start listening; logs so far: {logs:#?}")
                });
            logs.push(line.clone());
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["fields"]["message"] == "qrgate listening" {
                    break v["fields"]["listen"]
                        .as_str()
                        .unwrap()
                        .parse::<SocketAddr>()
                        .unwrap();
                }
            }
        };
        Server {
            child,
            addr,
            logs: rx,
            seen: logs,
        }
    }
}

/// A running `qrgate serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    logs: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("http://{}/processV2", self.addr)
    }

    /// Sends SIGTERM (harmless if already sent) and waits for the exit; returns the exit
    /// status and every log line.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(20));
        let mut lines = std::mem::take(&mut self.seen);
        while let Ok(line) = self.logs.recv_timeout(Duration::from_secs(2)) {
            lines.push(line);
        }
        (status, lines)
    }

    /// The demo banner and anything else printed on stdout, after the process ended.
    pub fn stdout_after_exit(&mut self) -> String {
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut s, &mut out).unwrap();
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
