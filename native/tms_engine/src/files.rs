//! File-system discipline shared by every file the engine writes.
//!
//! A durable file is written to `<name>.tmp`, fsynced, renamed over its
//! final name, and its directory fsynced, so a reader sees either the old
//! file or the complete new one. Open removes stale `*.tmp` files left by a
//! crash between the write and the rename.

use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{io_err, EngineError, Result};
use crate::layout::Layout;

/// Suffix of a file that is being written and is not yet part of the store.
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` atomically and durably (tmp, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename", &tmp))?;
        sync_dir(parent(path)?)
    })();
    if result.is_err() {
        // Best effort: a leftover .tmp is removed at the next open anyway.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a directory so that entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Creates `dir` (and parents) if missing and fsyncs its parent when created.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    sync_dir(parent(dir)?)
}

/// Removes every `*.tmp` file directly under `dir`; returns how many.
pub fn remove_stale_tmp(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(io_err("list directory", dir))? {
        let path = entry.map_err(io_err("list directory", dir))?.path();
        if path.to_string_lossy().ends_with(TMP_SUFFIX) && path.is_file() {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The directory holding `path`; an error (not a panic) for a bare root.
pub fn parent(path: &Path) -> Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        Some(_) => Ok(Path::new(".")),
        None => Err(EngineError::invalid(format!(
            "{} has no parent directory",
            path.display()
        ))),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// An exclusive advisory lock on the data directory itself, held for the
/// life of an engine. Locking the directory, not a file in it, means no
/// file deleted from under a running store (a lock file was) lets a second
/// store in.
///
/// The lock is an `flock`, so the kernel releases it when the process dies:
/// a `kill -9` never leaves a directory that cannot be reopened. Two engines
/// in the same OS process conflict too (each opens its own file description).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `layout`'s directory, or fails with
    /// [`EngineError::Locked`] if it is held.
    pub fn acquire(layout: &Layout) -> Result<DirLock> {
        let path = layout.root();
        let file = File::open(path).map_err(io_err("open", path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(EngineError::Locked {
                path: layout.root().display().to_string(),
            }),
            Err(TryLockError::Error(err)) => Err(EngineError::io("lock", path, err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let first = DirLock::acquire(&layout).unwrap();
        assert!(matches!(
            DirLock::acquire(&layout),
            Err(EngineError::Locked { .. })
        ));
        drop(first);
        DirLock::acquire(&layout).unwrap();
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(remove_stale_tmp(dir.path()).unwrap(), 0);
        fs::write(dir.path().join("g.tmp"), b"x").unwrap();
        assert_eq!(remove_stale_tmp(dir.path()).unwrap(), 1);
    }
}
