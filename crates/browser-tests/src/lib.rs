//! A small harness for headless Chromium tests driven over WebDriver: it finds Chromium and
//! chromedriver (Debian's `chromium` and `chromium-driver` packages; nothing is downloaded),
//! starts chromedriver on a free loopback port, opens a headless session with the viewport
//! asked for (a phone, or a till's screen), and saves screenshots as PNGs under
//! `target/screenshots/<test>/`.
//!
//! When Chromium or chromedriver is missing, [`Browser::start`] prints plainly that the test
//! is skipped and gives `None`, so the test passes; with `QRGATE_TEST_REQUIRE_BROWSER=1` it
//! gives an error instead, so CI cannot pass without having run the browser.
//!
//! ```no_run
//! # async fn demo() -> Result<(), qrgate_browser_tests::HarnessError> {
//! use qrgate_browser_tests::{Browser, BrowserOptions};
//! let Some(mut browser) = Browser::start(BrowserOptions::phone("my_test")).await? else {
//!     return Ok(()); // skipped: no browser here
//! };
//! browser.goto("http://127.0.0.1:8090/phone").await?;
//! browser.screenshot("customers").await?;
//! let title = browser.text("h1").await?;
//! browser.close().await?;
//! # Ok(()) }
//! ```
//!
//! It depends on no qrgate crate: the sandbox's phone tests and the gateway's till tests both
//! use it.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub use fantoccini::elements::Element;
pub use fantoccini::{Client, Locator};
use serde_json::{json, Map, Value};
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Set to `1` to make a missing browser a failure instead of a skip.
pub const REQUIRE_BROWSER_ENV: &str = "QRGATE_TEST_REQUIRE_BROWSER";
/// Paths that override where Chromium and chromedriver are looked for (else `PATH`).
pub const CHROMIUM_ENV: &str = "QRGATE_CHROMIUM";
pub const CHROMEDRIVER_ENV: &str = "QRGATE_CHROMEDRIVER";
/// Where screenshots go instead of `<target>/screenshots`.
pub const SCREENSHOT_DIR_ENV: &str = "QRGATE_SCREENSHOT_DIR";

/// At most this many browsers at once in one test process: each is a few processes and the
/// machines are small.
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// How long the harness waits for chromedriver, a session, or an element.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{0} not found, and {REQUIRE_BROWSER_ENV}=1 requires the browser tests to run")]
    Missing(String),
    #[error("cannot start chromedriver {path}: {source}")]
    DriverStart {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("chromedriver did not listen on port {port} within {STARTUP_TIMEOUT:?}")]
    DriverNotReady { port: u16 },
    #[error("no free loopback port: {0}")]
    NoPort(#[source] std::io::Error),
    #[error("cannot open a browser session: {0}")]
    Session(#[source] Box<fantoccini::error::NewSessionError>),
    #[error("browser command failed: {0}")]
    Command(#[source] Box<fantoccini::error::CmdError>),
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },
    #[error("cannot write the screenshot {path}: {source}")]
    Screenshot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<fantoccini::error::NewSessionError> for HarnessError {
    fn from(e: fantoccini::error::NewSessionError) -> Self {
        HarnessError::Session(Box::new(e))
    }
}

impl From<fantoccini::error::CmdError> for HarnessError {
    fn from(e: fantoccini::error::CmdError) -> Self {
        HarnessError::Command(Box::new(e))
    }
}

/// The size of the browser's page area in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
    /// Device pixels per CSS pixel (screenshots are this many times larger).
    pub pixel_ratio: u32,
    /// Emulate a touch phone (mobile viewport rules, touch events).
    pub mobile: bool,
}

impl Viewport {
    /// A common phone: 390×844 CSS pixels at 2×.
    pub const PHONE: Viewport = Viewport {
        width: 390,
        height: 844,
        pixel_ratio: 2,
        mobile: true,
    };
    /// A till's or a laptop's screen.
    pub const DESKTOP: Viewport = Viewport {
        width: 1280,
        height: 800,
        pixel_ratio: 1,
        mobile: false,
    };
}

/// What session to open.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// Names the screenshot folder and the skip message; the test's name is a good choice.
    pub test_name: String,
    pub viewport: Viewport,
    /// The browser's `Accept-Language`.
    pub accept_language: String,
}

impl BrowserOptions {
    /// A phone viewport with an English browser.
    pub fn phone(test_name: &str) -> BrowserOptions {
        BrowserOptions {
            test_name: test_name.to_owned(),
            viewport: Viewport::PHONE,
            accept_language: "en-US,en".to_owned(),
        }
    }

    /// A desktop viewport (a till) with an English browser.
    pub fn desktop(test_name: &str) -> BrowserOptions {
        BrowserOptions {
            viewport: Viewport::DESKTOP,
            ..BrowserOptions::phone(test_name)
        }
    }
}

/// A headless Chromium session and the chromedriver serving it. Call [`Browser::close`] at
/// the end; if the test fails first, dropping it kills chromedriver and the browser.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    screenshots: PathBuf,
    shots: u32,
    _slot: SemaphorePermit<'static>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver_pid", &self.driver.id())
            .field("screenshots", &self.screenshots)
            .finish_non_exhaustive()
    }
}

/// The first executable of these names on `PATH`, or the path in `env` if set.
fn locate(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn required() -> bool {
    std::env::var(REQUIRE_BROWSER_ENV).is_ok_and(|v| v == "1")
}

/// Printed past the test harness's output capture, so a skip shows in every run's output.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The workspace's target directory, where `screenshots/` goes.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(HarnessError::NoPort)?;
    Ok(listener.local_addr().map_err(HarnessError::NoPort)?.port())
}

impl Browser {
    /// Starts chromedriver and a headless session; `Ok(None)` when Chromium or chromedriver
    /// is missing and the browser is not required (the skip is printed).
    pub async fn start(options: BrowserOptions) -> Result<Option<Browser>, HarnessError> {
        let Some((chromium, chromedriver)) = Browser::locate_or_skip(&options)? else {
            return Ok(None);
        };
        let slot = BROWSERS
            .acquire()
            .await
            .map_err(|_| HarnessError::Timeout {
                what: "a browser slot".to_owned(),
                timeout: STARTUP_TIMEOUT,
            })?;
        Browser::start_in(options, chromium, chromedriver, slot)
            .await
            .map(Some)
    }

    /// Starts two browsers for one test (a till and a phone, say), taking both of this
    /// process's browser slots at once: two tests each holding one slot while waiting for a
    /// second would wait for ever. `Ok(None)` when the browser is missing and not required.
    pub async fn start_pair(
        first: BrowserOptions,
        second: BrowserOptions,
    ) -> Result<Option<(Browser, Browser)>, HarnessError> {
        let Some((chromium, chromedriver)) = Browser::locate_or_skip(&first)? else {
            return Ok(None);
        };
        let mut slots = BROWSERS
            .acquire_many(2)
            .await
            .map_err(|_| HarnessError::Timeout {
                what: "two browser slots".to_owned(),
                timeout: STARTUP_TIMEOUT,
            })?;
        let second_slot = slots.split(1).ok_or_else(|| HarnessError::Timeout {
            what: "two browser slots".to_owned(),
            timeout: STARTUP_TIMEOUT,
        })?;
        let a = Browser::start_in(first, chromium.clone(), chromedriver.clone(), slots).await?;
        let b = Browser::start_in(second, chromium, chromedriver, second_slot).await?;
        Ok(Some((a, b)))
    }

    /// Chromium and chromedriver, or `None` after printing the skip (an error when required).
    fn locate_or_skip(
        options: &BrowserOptions,
    ) -> Result<Option<(PathBuf, PathBuf)>, HarnessError> {
        let chromium = locate(
            CHROMIUM_ENV,
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let chromedriver = locate(CHROMEDRIVER_ENV, &["chromedriver"]);
        match (chromium, chromedriver) {
            (Some(c), Some(d)) => Ok(Some((c, d))),
            (c, _) => {
                let missing = if c.is_none() {
                    "Chromium"
                } else {
                    "chromedriver"
                };
                if required() {
                    return Err(HarnessError::Missing(missing.to_owned()));
                }
                say(&format!(
                    "SKIPPED {}: {missing} not found (apt-get install chromium chromium-driver; \
                     set {REQUIRE_BROWSER_ENV}=1 to fail instead)",
                    options.test_name
                ));
                Ok(None)
            }
        }
    }

    async fn start_in(
        options: BrowserOptions,
        chromium: PathBuf,
        chromedriver: PathBuf,
        slot: SemaphorePermit<'static>,
    ) -> Result<Browser, HarnessError> {
        let screenshots = match std::env::var_os(SCREENSHOT_DIR_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => target_dir().join("screenshots"),
        }
        .join(&options.test_name);
        // Screenshots of an earlier run of this test would mix with this run's.
        let _ = std::fs::remove_dir_all(&screenshots);
        std::fs::create_dir_all(&screenshots).map_err(|source| HarnessError::Screenshot {
            path: screenshots.clone(),
            source,
        })?;

        let port = free_port()?;
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                screenshots.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that a failed test can end it with its browsers.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HarnessError::DriverStart {
                path: chromedriver.display().to_string(),
                source,
            })?;
        let mut browser = Browser {
            client: None,
            driver,
            screenshots,
            shots: 0,
            _slot: slot,
        };
        browser.wait_for_driver(port).await?;
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities(&chromium, &options))
        .connect(&format!("http://127.0.0.1:{port}"))
        .await?;
        browser.client = Some(client);
        Ok(browser)
    }

    async fn wait_for_driver(&mut self, port: u16) -> Result<(), HarnessError> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while tokio::time::Instant::now() < deadline {
            if tokio::net::TcpStream::connect(address).await.is_ok() {
                return Ok(());
            }
            if let Ok(Some(_)) = self.driver.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(HarnessError::DriverNotReady { port })
    }

    /// The WebDriver client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        // Set in `start` before the browser is handed out, taken only by `close(self)`.
        match &self.client {
            Some(client) => client,
            None => unreachable!("a started browser has a client until closed"),
        }
    }

    pub async fn goto(&self, url: &str) -> Result<(), HarnessError> {
        Ok(self.client().goto(url).await?)
    }

    /// The first element matching a CSS selector, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Result<Element, HarnessError> {
        self.client()
            .wait()
            .at_most(WAIT_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| match e {
                fantoccini::error::CmdError::WaitTimeout => HarnessError::Timeout {
                    what: css.to_owned(),
                    timeout: WAIT_TIMEOUT,
                },
                other => HarnessError::from(other),
            })
    }

    /// The visible text of the first element matching a CSS selector.
    pub async fn text(&self, css: &str) -> Result<String, HarnessError> {
        Ok(self.find(css).await?.text().await?)
    }

    pub async fn click(&self, css: &str) -> Result<(), HarnessError> {
        Ok(self.find(css).await?.click().await?)
    }

    /// Replaces the value of a text field with `text`, typed key by key.
    pub async fn fill(&self, css: &str, text: &str) -> Result<(), HarnessError> {
        let field = self.find(css).await?;
        field.clear().await?;
        Ok(field.send_keys(text).await?)
    }

    /// Waits until the element's text contains `needle` (e.g. after a form was sent), and
    /// gives the whole text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> Result<String, HarnessError> {
        let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
        loop {
            if let Ok(element) = self.client().find(Locator::Css(css)).await {
                if let Ok(text) = element.text().await {
                    if text.contains(needle) {
                        return Ok(text);
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("{needle:?} in {css}"),
                    timeout: WAIT_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current URL.
    pub async fn url(&self) -> Result<String, HarnessError> {
        Ok(self.client().current_url().await?.to_string())
    }

    /// Saves what the browser shows as `<NN>-<name>.png` in this test's screenshot folder,
    /// numbered in the order taken, and gives its path.
    pub async fn screenshot(&mut self, name: &str) -> Result<PathBuf, HarnessError> {
        let png = self.client().screenshot().await?;
        self.shots += 1;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self
            .screenshots
            .join(format!("{:02}-{safe}.png", self.shots));
        std::fs::write(&path, png).map_err(|source| HarnessError::Screenshot {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// The folder this test's screenshots go to.
    pub fn screenshot_dir(&self) -> &Path {
        &self.screenshots
    }

    /// Ends the session (chromedriver closes the browser), then chromedriver.
    pub async fn close(mut self) -> Result<(), HarnessError> {
        let closed = match self.client.take() {
            Some(client) => client.close().await,
            None => Ok(()),
        };
        let _ = self.driver.start_kill();
        let _ = self.driver.wait().await;
        Ok(closed?)
    }
}

impl Drop for Browser {
    /// A test that failed before `close` leaves chromedriver and its browser running: end
    /// the process group this harness gave chromedriver (and only that group).
    fn drop(&mut self) {
        if self.client.is_some() {
            if let Some(pid) = self.driver.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = self.driver.start_kill();
    }
}

fn capabilities(chromium: &Path, options: &BrowserOptions) -> Map<String, Value> {
    let v = options.viewport;
    let mut args = vec![
        "--headless=new".to_owned(),
        // Tests run as root in containers, where Chromium's sandbox cannot start.
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--hide-scrollbars".to_owned(),
        format!("--window-size={},{}", v.width, v.height),
        format!("--lang={}", first_language(&options.accept_language)),
        format!("--accept-lang={}", options.accept_language),
    ];
    if !v.mobile {
        args.push(format!("--force-device-scale-factor={}", v.pixel_ratio));
    }
    let mut chrome = json!({
        "binary": chromium.display().to_string(),
        "args": args,
        "prefs": { "intl.accept_languages": options.accept_language },
    });
    if v.mobile {
        chrome["mobileEmulation"] = json!({
            "deviceMetrics": {
                "width": v.width,
                "height": v.height,
                "pixelRatio": v.pixel_ratio,
                "touch": true,
                "mobile": true,
            },
        });
    }
    let mut caps = Map::new();
    caps.insert("browserName".to_owned(), json!("chrome"));
    caps.insert("goog:chromeOptions".to_owned(), chrome);
    caps
}

fn first_language(accept_language: &str) -> &str {
    accept_language
        .split([',', ';'])
        .next()
        .unwrap_or("en-US")
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_session_asks_chromium_for_a_headless_phone_viewport() {
        let caps = capabilities(Path::new("/usr/bin/chromium"), &BrowserOptions::phone("t"));
        let chrome = &caps["goog:chromeOptions"];
        assert_eq!(chrome["binary"], "/usr/bin/chromium");
        let args: Vec<&str> = chrome["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.contains(&"--headless=new"));
        assert!(args.contains(&"--lang=en-US"));
        assert_eq!(chrome["mobileEmulation"]["deviceMetrics"]["width"], 390);
        let desktop = capabilities(Path::new("c"), &BrowserOptions::desktop("t"));
        assert!(desktop["goog:chromeOptions"]
            .get("mobileEmulation")
            .is_none());
    }

    #[test]
    fn a_missing_override_path_is_not_found() {
        assert_eq!(
            locate("QRGATE_TEST_NO_SUCH_VARIABLE_SET", &["no-such-binary-xyz"]),
            None
        );
    }
}
