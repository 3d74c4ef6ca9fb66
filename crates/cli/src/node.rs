//! The node's identity: a name for this gateway that outlives its process, kept in the data
//! directory (`node-0`, `node-1`, … for several processes sharing one directory) and held by
//! one live process at a time through an OS file lock.
//!
//! Why: the background loops claim rows under this name. When the process dies during a
//! wallet call (`kill -9`, a crash), the next start of the same node releases those claims at
//! once instead of leaving the rows parked until their leases run out. That is only safe if
//! the earlier holder of the name is surely dead: the lock proves it, since the kernel drops
//! a dead process's locks, and a second process on the same directory takes the next slot
//! instead. (A copy of a data directory running on another machine would share the names:
//! never run two machines from copies of one data directory.)

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context};

/// How many processes may share one data directory, each with its own identity.
const SLOTS: usize = 16;

/// A node identity held by this process until it is dropped (or the process dies).
#[derive(Debug)]
pub struct Node {
    pub name: String,
    /// Holds the lock.
    _file: File,
}

/// Takes the first identity in `data_dir` that no live process holds, creating it (with a
/// new random name) on first use.
pub fn acquire(data_dir: &Path) -> anyhow::Result<Node> {
    crate::wiring::prepare_data_dir(data_dir)?;
    for slot in 0..SLOTS {
        let path = data_dir.join(format!("node-{slot}"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the node identity {}", path.display()))?;
        if !try_lock(&file)
            .with_context(|| format!("cannot lock the node identity {}", path.display()))?
        {
            continue;
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .with_context(|| format!("cannot read the node identity {}", path.display()))?;
        let name = text.trim();
        if valid(name) {
            return Ok(Node {
                name: name.to_owned(),
                _file: file,
            });
        }
        let name = new_name();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{name}\n").as_bytes()))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write the node identity {}", path.display()))?;
        return Ok(Node { name, _file: file });
    }
    bail!(
        "all {SLOTS} node identities in {} are held by running processes",
        data_dir.display()
    )
}

/// Takes the file's exclusive lock if no other process holds it (`flock`: held by the open
/// file until it is closed, dropped by the kernel when its process dies).
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "node identities need flock(2)",
    ))
}

fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The host's name (letters, digits and dashes, for reading logs) and a random part (so that
/// two machines with one host name differ).
fn new_name() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let host: String = std::env::var("HOSTNAME")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(32)
        .collect();
    let host = host.trim_matches('-');
    let host = if host.is_empty() { "qrgate" } else { host };
    let mut rng = rand::thread_rng();
    let tail: String = (0..8)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("{host}-{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_kept_across_runs_and_held_by_one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path()).unwrap();
        assert!(valid(&first.name), "{}", first.name);
        // Another process on the same directory (here, another open file) gets another one.
        let second = acquire(dir.path()).unwrap();
        assert_ne!(first.name, second.name);
        let name = first.name.clone();
        drop(first);
        // The first one's holder is gone: the next start is the same node again.
        let again = acquire(dir.path()).unwrap();
        assert_eq!(again.name, name);
        drop(second);
    }
}
