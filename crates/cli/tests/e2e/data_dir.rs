//! The data directory holds PIN hashes and sealed sign keys: it and the database's files are
//! the owner's only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::Install;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_data_directory_and_the_database_files_are_the_owners_only() {
    let install = Install::sqlite();
    let server = install.serve(&[]);
    let dir = install.data_dir();
    // While serving, SQLite's -wal and -shm files exist beside the database.
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for file in ["qrgate.db", "qrgate.db-wal", "qrgate.db-shm", "master.key"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    drop(server);
}

#[test]
fn a_data_directory_left_open_by_an_older_version_is_narrowed_and_said_so() {
    let install = Install::sqlite();
    install.ok(&["migrate"]);
    let dir = install.data_dir();
    let db = dir.join("qrgate.db");
    // As older versions left them (umask 022).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = install.run(&["migrate"]);
    assert!(out.status.success());
    let logs = String::from_utf8(out.stderr).unwrap();
    assert!(
        logs.contains("was open to other users (mode 0755"),
        "{logs}"
    );
    assert!(
        logs.contains("was open to other users (mode 0644"),
        "{logs}"
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&db), 0o600);
    // Once narrowed, nothing more is said.
    let out = install.run(&["migrate"]);
    assert!(!String::from_utf8(out.stderr)
        .unwrap()
        .contains("open to other users"));
}
