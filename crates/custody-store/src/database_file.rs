//! The SQLite database file custody opened, and whether it is still the file at its path.
//!
//! SQLite keeps writing to a file removed (or replaced) under a running process: the
//! writes succeed, into an inode nothing names any more, and are gone when custody
//! restarts. So the file's identity (device and inode) is taken when the store opens, and
//! checked before each batch is committed and by the readiness probe: a file that is gone
//! or another one refuses writes (a storage fault, answered 503) instead of acknowledging
//! what will be lost. PostgreSQL has no such file.

use std::path::PathBuf;

use crate::{Location, StoreError};

/// The database file as it was when the store opened it.
#[derive(Debug)]
pub(crate) struct DatabaseFile {
    path: PathBuf,
    identity: (u64, u64),
}

impl DatabaseFile {
    /// The file of `location`, if it is SQLite's (and its identity can be read).
    pub(crate) fn of(location: &Location) -> Option<DatabaseFile> {
        let Location::Sqlite(path) = location else {
            return None;
        };
        Some(DatabaseFile {
            identity: identity(path)?,
            path: path.clone(),
        })
    }

    /// Refuses when the file at the path is gone or is another file than the one opened.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if identity(&self.path) == Some(self.identity) {
            return Ok(());
        }
        Err(StoreError::Unavailable(format!(
            "the database file {} was removed or replaced while custody ran: nothing more is written, since it would be lost; restore the file (or restart custody on the database that is there now)",
            self.path.display()
        )))
    }
}

#[cfg(unix)]
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Elsewhere the file is not checked (custody runs on Linux; the check is a safeguard).
#[cfg(not(unix))]
fn identity(_: &std::path::Path) -> Option<(u64, u64)> {
    Some((0, 0))
}
