//! Process wiring: logging, the data directory, the master key, the store and the engine.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use qrgate_engine::{Engine, MasterKey, SystemClock};
use qrgate_store::Store;
use secrecy::ExposeSecret;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

const DATABASE_FILE: &str = "qrgate.db";
const MASTER_KEY_FILE: &str = "master.key";

pub fn init_logging(format: LogFormat, level: Option<&str>, default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level.unwrap_or(default_level)))
        .unwrap_or_else(|_| EnvFilter::new(default_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Where the master key comes from, for `config check` and start-up messages.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    Config,
    File(PathBuf),
    DataDir { path: PathBuf, generated: bool },
}

impl std::fmt::Display for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKeySource::Config => f.write_str("master_key setting (QRGATE_MASTER_KEY)"),
            MasterKeySource::File(p) => write!(f, "master_key_file {}", p.display()),
            MasterKeySource::DataDir {
                path,
                generated: true,
            } => {
                write!(f, "{} (generated now)", path.display())
            }
            MasterKeySource::DataDir { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// Makes sure the data directory exists and is a usable directory, with messages that say
/// what to do. It holds the database (PIN hashes, sealed sign keys) and the master key, so it
/// is created readable by its owner only (0700), and an existing one that others can read
/// (as older versions made it) is narrowed to that, with a log line.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => owner_only(dir, 0o700),
        Ok(_) => bail!(
            "data directory {} exists but is not a directory: remove it or choose another \
             directory with --data-dir (or QRGATE_DATA_DIR)",
            dir.display()
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(dir).with_context(|| {
                format!(
                    "cannot create data directory {}: check its parent's permissions or choose \
                     another with --data-dir",
                    dir.display()
                )
            })?;
        }
        Err(e) => bail!(
            "cannot read data directory {}: {e}; fix its permissions or choose another with \
             --data-dir",
            dir.display()
        ),
    }
    // Probe that we can write there, so a read-only directory fails now, clearly.
    let probe = dir.join(".qrgate-write-test");
    fs::write(&probe, b"ok").with_context(|| {
        format!(
            "data directory {} is not writable: fix its permissions or choose another with \
             --data-dir",
            dir.display()
        )
    })?;
    let _ = fs::remove_file(probe);
    Ok(())
}

/// Narrows an existing file or directory that others may read or write to `mode` (the owner's
/// bits only), saying so in the log. When that fails (not our file, a file system without
/// modes), it says so in the log and goes on: an upgrade must not stop a gateway over a mode.
/// Nothing to do off Unix.
fn owner_only(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = fs::metadata(path) else {
            return;
        };
        let old = meta.permissions().mode() & 0o777;
        if old & 0o077 == 0 {
            return;
        }
        match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                "{} was open to other users (mode {old:04o}, as older qrgate versions made \
                 it): now {mode:04o}",
                path.display()
            ),
            Err(e) => tracing::error!(
                path = %path.display(),
                error = %e,
                "{} is open to other users (mode {old:04o}) and cannot be narrowed to \
                 {mode:04o}: fix its owner or mode",
                path.display()
            ),
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// Creates the SQLite database file readable by its owner only (0600) before SQLite opens it,
/// which gives its `-wal` and `-shm` files the same mode; narrows the three if an older version
/// left them readable by others.
fn prepare_database_files(path: &Path) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot create the database {}", path.display()))
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        owner_only(Path::new(&name), 0o600);
    }
    Ok(())
}

/// Reads the configured master key without generating one: `None` when the data directory
/// has no `master.key` yet.
pub fn read_master_key(config: &Config) -> anyhow::Result<Option<(MasterKey, MasterKeySource)>> {
    if config.master_key.is_some() || config.master_key_file.is_some() {
        return load_master_key(config).map(Some);
    }
    let path = config.data_dir.join(MASTER_KEY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    load_master_key(config).map(Some)
}

/// Loads the master key: the setting, the key file, or `master.key` in the data directory,
/// generated (mode 0600) on first start.
pub fn load_master_key(config: &Config) -> anyhow::Result<(MasterKey, MasterKeySource)> {
    if let Some(hex) = &config.master_key {
        let key = MasterKey::from_hex(hex).context("invalid master_key setting")?;
        return Ok((key, MasterKeySource::Config));
    }
    if let Some(path) = &config.master_key_file {
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read master_key_file {}", path.display()))?;
        let key = MasterKey::from_hex(&text)
            .with_context(|| format!("invalid master key in {}", path.display()))?;
        return Ok((key, MasterKeySource::File(path.clone())));
    }
    let path = config.data_dir.join(MASTER_KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let key = MasterKey::from_hex(&text)
                .with_context(|| format!("invalid master key in {}", path.display()))?;
            Ok((
                key,
                MasterKeySource::DataDir {
                    path,
                    generated: false,
                },
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let key = MasterKey::generate();
            match write_secret_file(&path, key.to_hex().expose_secret()) {
                Ok(()) => {}
                // Another process created it first: use theirs.
                Err(_) if path.exists() => {
                    let text = fs::read_to_string(&path).with_context(|| {
                        format!("cannot read the master key {}", path.display())
                    })?;
                    let theirs = MasterKey::from_hex(&text)
                        .with_context(|| format!("invalid master key in {}", path.display()))?;
                    return Ok((
                        theirs,
                        MasterKeySource::DataDir {
                            path,
                            generated: false,
                        },
                    ));
                }
                Err(e) => return Err(e),
            }
            Ok((
                key,
                MasterKeySource::DataDir {
                    path,
                    generated: true,
                },
            ))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the master key {}", path.display())),
    }
}

/// Writes a new file readable by its owner only, atomically: the contents go to a temporary
/// file first, which is then linked into place, so a crash never leaves a half-written key
/// and an existing file is never overwritten.
fn write_secret_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(format!("{contents}\n").as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::hard_link(&tmp, path))
        // Make the new directory entry itself durable.
        .and_then(|()| match path.parent() {
            Some(dir) => fs::File::open(dir).and_then(|d| d.sync_all()),
            None => Ok(()),
        });
    let _ = fs::remove_file(&tmp);
    written.with_context(|| format!("cannot create the master key file {}", path.display()))
}

/// The SQLite file in the data directory.
pub fn sqlite_path(config: &Config) -> PathBuf {
    config.data_dir.join(DATABASE_FILE)
}

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = match &config.database_url {
        Some(url) => Store::connect(url, config.database_max_connections).await?,
        None => {
            prepare_data_dir(&config.data_dir)?;
            prepare_database_files(&sqlite_path(config))?;
            Store::open_sqlite_with(&sqlite_path(config), config.database_max_connections)
                .await
                .with_context(|| {
                    format!(
                        "cannot open the SQLite database in {}",
                        config.data_dir.display()
                    )
                })?
        }
    };
    store.migrate().await?;
    Ok(store)
}

/// The store, master key and engine, ready for a command.
pub async fn open_engine(config: &Config) -> anyhow::Result<(Engine, MasterKeySource)> {
    let store = open_store(config).await?;
    if config.master_key.is_none() && config.master_key_file.is_none() {
        prepare_data_dir(&config.data_dir)?;
    }
    let (master, source) = load_master_key(config)?;
    let engine = Engine::new(store, master, Arc::new(SystemClock))
        .await
        .with_context(|| format!("master key from {source}"))?;
    Ok((engine, source))
}
