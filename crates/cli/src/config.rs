//! Configuration: built-in defaults, then a TOML file (`--config` / `QRGATE_CONFIG`), then
//! `QRGATE_*` environment variables, then command-line flags. Validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use qrgate_connectors::WalletSettings;
use serde::{Deserialize, Serialize};

/// Keys that may be set; each is also read from `QRGATE_<KEY>` (upper case).
pub const KEYS: [&str; 13] = [
    "allow_private_callbacks",
    "public_url",
    "listen",
    "data_dir",
    "database_url",
    "database_max_connections",
    "master_key",
    "master_key_file",
    "log_format",
    "log_level",
    "body_limit_bytes",
    "till_secure_cookie",
    "till_trusted_proxies",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Deliver merchant notifications to loopback and private addresses too (off by default,
    /// so a `call_back_url` cannot reach the gateway's own network; the demo turns it on).
    pub allow_private_callbacks: bool,
    /// The URL wallets reach this gateway at, for their notifications
    /// (`<public_url>/notify/<wallet>`); defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Holds the SQLite database and, unless given otherwise, the master key.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; when absent, SQLite in `data_dir`.
    pub database_url: Option<String>,
    pub database_max_connections: u32,
    /// The master key as 64 hex characters (prefer `master_key_file` or the env var).
    pub master_key: Option<String>,
    /// A file holding the master key as 64 hex characters.
    pub master_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `qrgate_http=debug,info`; `RUST_LOG` wins if set.
    pub log_level: Option<String>,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Whether the till's cookies carry `Secure` (sent over HTTPS only). Unset: on, except in
    /// the demo and when listening on loopback (see [`Config::till_secure_cookie`]).
    pub till_secure_cookie: Option<bool>,
    /// Reverse proxies (exact addresses) whose `X-Forwarded-For` names the till's clients,
    /// for the per-address limits on signing in.
    pub till_trusted_proxies: Vec<std::net::IpAddr>,
    /// The wallets and their credentials (`[wallets.wechatpay]`, `[wallets.alipay]`,
    /// `[wallets.unionpay]`, `[wallets.timeouts]`); the keys are those the sandbox lists at
    /// `GET /control/credentials`. Env: `QRGATE_WALLETS__ALIPAY__APP_ID=…`.
    #[serde(default, skip_serializing)]
    pub wallets: WalletSettings,
    /// How the closing loop settles payments the wallets left open (`[closing]`).
    #[serde(default)]
    pub closing: ClosingConfig,
    /// Exchange rates from the wallets (`[fx]`).
    #[serde(default)]
    pub fx: FxConfig,
    /// Connections, timeouts and request slots (`[http]`).
    #[serde(default)]
    pub http: HttpLimitsConfig,
    /// How the wallets' bills are matched (`[reconcile]`, docs/RECONCILIATION.md).
    #[serde(default)]
    pub reconcile: ReconcileConfig,
}

/// `[reconcile]`: how long an item of ours missing from the bills is held before it is a
/// break, and each wallet's fee rate as its contract states it (millionths of the amount:
/// 6000 = 0.60 %).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileConfig {
    pub hold_days: u32,
    pub wechatpay_fee_ppm: u32,
    pub alipay_fee_ppm: u32,
    pub unionpay_fee_ppm: u32,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            hold_days: 2,
            wechatpay_fee_ppm: 6000,
            alipay_fee_ppm: 6000,
            unionpay_fee_ppm: 6000,
        }
    }
}

impl ReconcileConfig {
    /// The engine's settings.
    pub fn settings(&self) -> qrgate_engine::ReconcileSettings {
        use qrgate_domain::Wallet;
        qrgate_engine::ReconcileSettings {
            hold_days: self.hold_days,
            fee_ppm: [
                (Wallet::WechatPay, self.wechatpay_fee_ppm),
                (Wallet::Alipay, self.alipay_fee_ppm),
                (Wallet::UnionPay, self.unionpay_fee_ppm),
            ]
            .into_iter()
            .collect(),
        }
    }
}

/// `[http]`: what keeps slow or abusive clients from holding the gateway. The defaults suit
/// a gateway behind a load balancer; README's configuration table says what each protects.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimitsConfig {
    pub header_read_timeout_secs: u32,
    pub idle_timeout_secs: u32,
    pub request_timeout_secs: u32,
    pub max_connections_per_ip: u32,
    pub max_requests: u32,
    pub max_public_requests: u32,
}

impl Default for HttpLimitsConfig {
    fn default() -> Self {
        let d = qrgate_http::HttpLimits::default();
        let secs = |t: std::time::Duration| u32::try_from(t.as_secs()).unwrap_or(u32::MAX);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        HttpLimitsConfig {
            header_read_timeout_secs: secs(d.header_read_timeout),
            idle_timeout_secs: secs(d.idle_timeout),
            request_timeout_secs: secs(d.request_timeout),
            max_connections_per_ip: count(d.max_connections_per_ip),
            max_requests: count(d.max_requests),
            max_public_requests: count(d.max_public_requests),
        }
    }
}

/// The shortest request deadline: the POS endpoint's 10 s to read a body plus the 12 s
/// budget of a payment's wallet call must fit in it, or payments would be cut off.
const MIN_REQUEST_TIMEOUT_SECS: u32 = 25;

impl HttpLimitsConfig {
    /// The HTTP layer's limits.
    pub fn limits(&self) -> qrgate_http::HttpLimits {
        let secs = |s: u32| std::time::Duration::from_secs(u64::from(s));
        let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        qrgate_http::HttpLimits {
            header_read_timeout: secs(self.header_read_timeout_secs),
            idle_timeout: secs(self.idle_timeout_secs),
            request_timeout: secs(self.request_timeout_secs),
            max_connections_per_ip: count(self.max_connections_per_ip),
            max_requests: count(self.max_requests),
            max_public_requests: count(self.max_public_requests),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=60).contains(&self.header_read_timeout_secs) {
            bail!("invalid configuration: http.header_read_timeout_secs must be between 1 and 60");
        }
        if !(1..=3_600).contains(&self.idle_timeout_secs) {
            bail!("invalid configuration: http.idle_timeout_secs must be between 1 and 3600");
        }
        if !(MIN_REQUEST_TIMEOUT_SECS..=600).contains(&self.request_timeout_secs) {
            bail!("invalid configuration: http.request_timeout_secs must be between {MIN_REQUEST_TIMEOUT_SECS} and 600 (a payment's body read and wallet call must fit)");
        }
        if self.max_connections_per_ip == 0 {
            bail!("invalid configuration: http.max_connections_per_ip must be at least 1");
        }
        if self.max_requests < 2 {
            bail!("invalid configuration: http.max_requests must be at least 2");
        }
        if self.max_public_requests == 0 || self.max_public_requests >= self.max_requests {
            bail!("invalid configuration: http.max_public_requests must be at least 1 and less than http.max_requests (the rest is kept for the POS endpoint)");
        }
        Ok(())
    }
}

/// `[fx]`: how often the wallets' published exchange rates are fetched, and how old one may
/// be before EX_RATE_QUERY falls back to the provider's rate (`qrgate fx set`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FxConfig {
    pub refresh_secs: u32,
    pub max_age_secs: u32,
}

impl Default for FxConfig {
    fn default() -> Self {
        FxConfig {
            refresh_secs: 3_600,
            max_age_secs: 26 * 3_600,
        }
    }
}

/// The shortest confirmation window: longer than the request path's 12 s wallet budget plus
/// its margin, and than WeChat's 15 s minimum before a reversal.
const MIN_WINDOW_SECS: u32 = 20;

/// `[closing]`: when open payments are queried and, after each wallet's confirmation window,
/// reversed. Defaults follow the wallets' own guidance (`wallets.md` §5).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClosingConfig {
    pub first_check_secs: u32,
    pub interval_secs: u32,
    pub wechatpay_window_secs: u32,
    pub alipay_window_secs: u32,
    pub unionpay_window_secs: u32,
    /// How long an ACTIVEPAY QR stays payable before it is closed at the wallet.
    pub qr_expiry_secs: u32,
}

impl Default for ClosingConfig {
    fn default() -> Self {
        ClosingConfig {
            first_check_secs: 5,
            interval_secs: 5,
            wechatpay_window_secs: 40,
            alipay_window_secs: 60,
            unionpay_window_secs: 60,
            qr_expiry_secs: 900,
        }
    }
}

impl ClosingConfig {
    /// The engine's policy for `wallet`.
    pub fn policy(&self, wallet: qrgate_domain::Wallet) -> qrgate_engine::ClosingPolicy {
        use qrgate_domain::Wallet;
        let window = match wallet {
            Wallet::WechatPay => self.wechatpay_window_secs,
            Wallet::Alipay => self.alipay_window_secs,
            Wallet::UnionPay => self.unionpay_window_secs,
        };
        qrgate_engine::ClosingPolicy {
            first_check: chrono::Duration::seconds(i64::from(self.first_check_secs)),
            interval: chrono::Duration::seconds(i64::from(self.interval_secs)),
            confirm_window: chrono::Duration::seconds(i64::from(window)),
            reverse_retry: chrono::Duration::seconds(2),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            allow_private_callbacks: false,
            data_dir: PathBuf::from("qrgate-data"),
            database_url: None,
            database_max_connections: 10,
            master_key: None,
            master_key_file: None,
            log_format: LogFormat::Pretty,
            log_level: None,
            body_limit_bytes: qrgate_http::DEFAULT_BODY_LIMIT_BYTES,
            till_secure_cookie: None,
            till_trusted_proxies: Vec::new(),
            wallets: WalletSettings::default(),
            closing: ClosingConfig::default(),
            fx: FxConfig::default(),
            http: HttpLimitsConfig::default(),
            reconcile: ReconcileConfig::default(),
        }
    }
}

/// Values given on the command line, which override everything else.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Loads the layers in order: defaults, `file`, environment, `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                bail!(
                    "config file {} does not exist or is not a file",
                    file.display()
                );
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment
            .merge(Env::prefixed("QRGATE_").only(&KEYS))
            .merge(
                Env::prefixed("QRGATE_")
                    .filter(|key| {
                        let key = key.as_str().to_ascii_lowercase();
                        key.starts_with("wallets__") || key.starts_with("http__")
                    })
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.database_url {
            let ok = ["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|p| url.starts_with(p));
            if !ok {
                bail!(
                    "invalid configuration: database_url must start with postgres:// (or sqlite:)"
                );
            }
        }
        if self.database_max_connections == 0 {
            bail!("invalid configuration: database_max_connections must be at least 1");
        }
        if self.body_limit_bytes < 1024 {
            bail!("invalid configuration: body_limit_bytes must be at least 1024");
        }
        let c = &self.closing;
        if c.first_check_secs == 0 || c.interval_secs == 0 {
            bail!("invalid configuration: closing.first_check_secs and closing.interval_secs must be at least 1");
        }
        if [
            c.wechatpay_window_secs,
            c.alipay_window_secs,
            c.unionpay_window_secs,
        ]
        .iter()
        .any(|w| *w < MIN_WINDOW_SECS || *w > 86_400)
        {
            bail!("invalid configuration: each closing window must be between {MIN_WINDOW_SECS} and 86400 seconds");
        }
        // WeChat Pay refuses a `time_expire` less than a minute after the request reaches it;
        // 120 s leaves a minute for clocks that differ and requests in flight.
        if !(120..=7_200).contains(&c.qr_expiry_secs) {
            bail!("invalid configuration: closing.qr_expiry_secs must be between 120 and 7200 (WeChat Pay needs a QR to live more than a minute; the wallets' QR validity is at most 2 hours)");
        }
        let r = &self.reconcile;
        if r.hold_days > 31 {
            bail!("invalid configuration: reconcile.hold_days must be at most 31");
        }
        if [r.wechatpay_fee_ppm, r.alipay_fee_ppm, r.unionpay_fee_ppm]
            .iter()
            .any(|p| *p > 1_000_000)
        {
            bail!("invalid configuration: each reconcile fee rate must be at most 1000000 ppm (100 %)");
        }
        if !(60..=86_400).contains(&self.fx.refresh_secs) {
            bail!("invalid configuration: fx.refresh_secs must be between 60 and 86400");
        }
        if self.fx.max_age_secs < self.fx.refresh_secs {
            bail!("invalid configuration: fx.max_age_secs must be at least fx.refresh_secs");
        }
        if self.master_key.is_some() && self.master_key_file.is_some() {
            bail!("invalid configuration: set master_key or master_key_file, not both");
        }
        self.http.validate()?;
        Ok(())
    }

    /// Whether the till's cookies get `Secure`: as set, or else on unless this is the demo or
    /// the gateway listens on loopback (plain HTTP on the machine itself, or a TLS proxy in
    /// front, which should then set `till_secure_cookie = true`).
    pub fn till_secure_cookie(&self, demo: bool) -> bool {
        self.till_secure_cookie
            .unwrap_or(!demo && !self.listen.ip().is_loopback())
    }

    /// The configuration as TOML with secrets hidden (`qrgate config check`).
    pub fn redacted(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.database_url = self.database_url.as_deref().map(redact_url);
        shown.master_key = self.master_key.as_ref().map(|_| "***".to_owned());
        let mut text = toml::to_string(&shown).context("cannot render the configuration")?;
        text.push_str(&describe_wallets(&self.wallets));
        Ok(text)
    }
}

/// The configured wallets, one line each, without any key or certificate.
fn describe_wallets(wallets: &WalletSettings) -> String {
    let mut out = String::from("\n# wallets (keys and certificates hidden)\n");
    match &wallets.wechatpay {
        Some(w) => out.push_str(&format!(
            "# wechatpay: mch_id {} appid {} at {}\n",
            w.mch_id, w.appid, w.base_url
        )),
        None => out.push_str("# wechatpay: not configured\n"),
    }
    match &wallets.alipay {
        Some(a) => out.push_str(&format!(
            "# alipay: app_id {} at {}\n",
            a.app_id, a.gateway_url
        )),
        None => out.push_str("# alipay: not configured\n"),
    }
    match &wallets.unionpay {
        Some(u) => out.push_str(&format!(
            "# unionpay: mer_id {} at {}\n",
            u.mer_id, u.base_url
        )),
        None => out.push_str("# unionpay: not configured\n"),
    }
    out
}

/// Hides the passwords of a database URL: the user-info one and any query parameter whose
/// name mentions a password (`?password=…`, `sslpassword=…`).
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "(unparsable URL hidden)".to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = k.to_ascii_lowercase().contains("pass");
                (
                    k.into_owned(),
                    if secret {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_settings_are_bounded_and_reach_the_engine() {
        let mut config = Config::default();
        let settings = config.reconcile.settings();
        assert_eq!(settings.hold_days, 2);
        assert_eq!(
            settings.fee_ppm.get(&qrgate_domain::Wallet::UnionPay),
            Some(&6000)
        );
        config.reconcile.hold_days = 32;
        let e = config.validate().unwrap_err().to_string();
        assert!(e.contains("reconcile.hold_days"), "{e}");
        config.reconcile.hold_days = 0;
        assert!(config.validate().is_ok());
        config.reconcile.alipay_fee_ppm = 1_000_001;
        let e = config.validate().unwrap_err().to_string();
        assert!(e.contains("fee rate"), "{e}");
    }

    #[test]
    fn closing_settings_are_bounded() {
        let mut config = Config::default();
        assert!(config.validate().is_ok());
        for refused in [30, 60, 119, 7_201] {
            config.closing.qr_expiry_secs = refused;
            assert!(
                config
                    .validate()
                    .unwrap_err()
                    .to_string()
                    .contains("qr_expiry_secs"),
                "{refused}"
            );
        }
        for accepted in [120, 7_200] {
            config.closing.qr_expiry_secs = accepted;
            assert!(config.validate().is_ok(), "{accepted}");
        }
        config.closing.qr_expiry_secs = 900;
        config.closing.wechatpay_window_secs = 10;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("closing window"));
    }

    #[test]
    fn http_limits_are_bounded_and_keep_slots_for_the_pos_endpoint() {
        let mut config = Config::default();
        config.http.max_public_requests = config.http.max_requests;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("http.max_public_requests"));
        config.http = HttpLimitsConfig::default();
        config.http.request_timeout_secs = 10;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("http.request_timeout_secs"));
        config.http = HttpLimitsConfig::default();
        config.http.max_connections_per_ip = 0;
        assert!(config.validate().is_err());
    }

    #[test]
    fn http_limits_are_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("qrgate.toml");
        std::fs::write(&file, "[http]\nmax_connections_per_ip = 64\n").unwrap();
        let config = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(config.http.max_connections_per_ip, 64);
        assert_eq!(config.http.limits().max_connections_per_ip, 64);
        assert_eq!(
            config.http.limits().request_timeout,
            std::time::Duration::from_secs(30)
        );
    }

    #[test]
    fn the_till_cookie_is_secure_by_default_off_loopback_and_outside_the_demo() {
        let mut config = Config::default();
        assert!(!config.till_secure_cookie(false), "loopback");
        config.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(config.till_secure_cookie(false));
        assert!(!config.till_secure_cookie(true), "demo");
        config.till_secure_cookie = Some(false);
        assert!(!config.till_secure_cookie(false));
        config.listen = "127.0.0.1:8080".parse().unwrap();
        config.till_secure_cookie = Some(true);
        assert!(config.till_secure_cookie(true));
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=hunter2"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
    }
}
