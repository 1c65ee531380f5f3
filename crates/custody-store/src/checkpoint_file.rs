//! The checkpoint file: the newest signed checkpoint a store saw, kept outside the
//! database, so that a database rolled back, truncated or forked while no custody process
//! ran is refused at the next open.
//!
//! The file holds one C2SP signed checkpoint note. It is written after a batch commits
//! (never before), by writing a temporary file beside it and renaming it over the old one,
//! so a reader sees the old note or the new one, whole. It is not fsync'd: the file only
//! has to be a *lower bound* of the database's head. The database's commit was fsync'd
//! before the file was written, so whatever the file holds after a crash (the old note,
//! the new one, or, on a file system that lost the unsynced rename, nothing) is never ahead
//! of the durable head; at worst the bound lags a few batches behind.
//!
//! At run time a task of its own writes it ([`Writer`]), off the commit path, always the
//! newest note (skipping those superseded meanwhile): on ext4 a rename over an existing
//! file flushes the new file's data first (`auto_da_alloc`), measured at about 2 ms, half
//! an fsync, which appends would otherwise wait for. Closing the store waits for the last
//! write. Opening and creating write it directly.
//!
//! What it guards against is a database changed by someone without access to the file: a
//! backup restored over a newer database, a DBA deleting rows on the PostgreSQL server.
//! Whoever can change both can also delete the file; a missing file is recreated from the
//! head and reported (see [`CheckpointFileStatus`]), so an operator sees it happened.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use custody_crypto::note::MAX_NOTE_LEN;
use custody_ledger::LogKeys;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::integrity::Status;
use crate::{Location, SignedCheckpoint, StoreError};

/// Where a store keeps its checkpoint file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CheckpointFile {
    /// SQLite: beside the database file, named after it with `.checkpoint` added
    /// (`custody.db` → `custody.db.checkpoint`). PostgreSQL: none (the database's
    /// machine is another; name a file on this one with `At`).
    #[default]
    Beside,
    /// This file.
    At(PathBuf),
    /// None: a rollback while no store runs goes unnoticed (tests, throwaway ledgers).
    Off,
}

impl CheckpointFile {
    /// The file for a ledger at `location`, if any.
    pub fn path(&self, location: &Location) -> Option<PathBuf> {
        match (self, location) {
            (CheckpointFile::At(path), _) => Some(path.clone()),
            (CheckpointFile::Beside, Location::Sqlite(db)) => {
                let mut name = db.file_name()?.to_owned();
                name.push(".checkpoint");
                Some(db.with_file_name(name))
            }
            (CheckpointFile::Beside, Location::Postgres(_)) | (CheckpointFile::Off, _) => None,
        }
    }
}

/// What the store found in its checkpoint file when it was opened, and how writing it
/// has gone since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointFileStatus {
    /// No file is kept.
    NotKept,
    /// The file held a checkpoint of this log, and the database's head extends it.
    Checked {
        /// The file.
        path: PathBuf,
        /// The size of the checkpoint it held.
        size: u64,
    },
    /// There was no file (or an empty one, as a crash can leave): it was written from the
    /// database's head, which therefore could not be checked. Expected once for a new or
    /// upgraded ledger; otherwise someone removed it.
    Recreated {
        /// The file.
        path: PathBuf,
    },
    /// The database's head failed a check of the database's own (a checkpoint the log
    /// signed lies past it): the file was neither checked nor written, and stays as it was
    /// until the failure is acknowledged.
    Unchecked {
        /// The file.
        path: PathBuf,
    },
    /// Writing the file failed (the database commit had succeeded); the file lags behind.
    WriteFailed {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
}

/// Reads the file's note, unchecked: `None` if it is absent or empty; an error naming the
/// file if it cannot be read, is too long or is not text. [`open`] checks what it holds.
pub(crate) fn read(path: &Path) -> Result<Option<String>, StoreError> {
    let bad = |reason: String| bad(path, reason);
    let bytes = match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
        // Bounded before reading: the file is outside the store's control.
        Ok(meta) if meta.len() > MAX_NOTE_LEN as u64 => {
            return Err(bad(format!(
                "it is {} bytes; a checkpoint note is at most {MAX_NOTE_LEN}",
                meta.len()
            )));
        }
        Ok(_) => fs::read(path).map_err(|e| bad(e.to_string()))?,
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| bad("it is not UTF-8 text".into()))
}

/// The checkpoint `note` (read from the file at `path`) holds: an error naming the file if
/// it is not a checkpoint of `verifier`'s log.
pub(crate) fn open(
    path: &Path,
    note: String,
    keys: &LogKeys,
) -> Result<SignedCheckpoint, StoreError> {
    let cp = keys.open(&note).map_err(|e| bad(path, e.to_string()))?;
    Ok(SignedCheckpoint {
        size: cp.size,
        root: cp.root,
        note,
    })
}

fn bad(path: &Path, reason: String) -> StoreError {
    StoreError::CheckpointFile {
        path: path.to_owned(),
        reason,
    }
}

/// Replaces the file's content with `note`: a temporary file in the same directory,
/// renamed over it. Not fsync'd (see the module comment).
pub(crate) fn write(path: &Path, note: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // A unique temporary name: several stores (processes) may write the same file.
    let mut tmp = tempfile::Builder::new()
        .prefix(".checkpoint.")
        .tempfile_in(dir)?;
    tmp.write_all(note.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Hands checkpoint notes to the task that writes the file.
pub(crate) struct Writer {
    notes: watch::Sender<String>,
}

impl Writer {
    /// Starts the task writing `path`, which holds `written` now. It ends when the
    /// `Writer` is dropped, after writing the last note handed to it; failures go to
    /// `status` (and the next note tries again).
    pub(crate) fn start(
        path: PathBuf,
        written: String,
        status: Arc<Status>,
    ) -> (Writer, JoinHandle<()>) {
        let (notes, mut pending) = watch::channel(written);
        let task = tokio::spawn(async move {
            // A note handed over before the sender went is still seen as changed.
            while pending.changed().await.is_ok() {
                let note = pending.borrow_and_update().clone();
                let target = path.clone();
                let error = match tokio::task::spawn_blocking(move || write(&target, &note)).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("{}: {e}", path.display())),
                    Err(e) => Some(format!("{}: {e}", path.display())),
                };
                status.file_written(error);
            }
        });
        (Writer { notes }, task)
    }

    /// Has `note` written (in place of any note not written yet).
    pub(crate) fn send(&self, note: &str) {
        self.notes.send_if_modified(|current| {
            let changed = current != note;
            if changed {
                note.clone_into(current);
            }
            changed
        });
    }
}
