//! When the log reaches stable storage: the sync modes, group commit, and
//! the interval syncer thread.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use crossbeam::channel::{self, RecvTimeoutError, Sender};

use super::log::Wal;
use crate::error::{EngineError, Result};

/// When an appended record is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync before a write is acknowledged; concurrent writers share one
    /// fsync (group commit).
    Always,
    /// A background thread fsyncs every interval. A write is acknowledged
    /// once it is in the OS page cache, so killing the BEAM loses nothing;
    /// a power loss or kernel crash loses at most one interval.
    Interval(Duration),
    /// Never fsync the WAL (tests, scratch data). Still survives `kill -9`.
    Never,
}

/// Stops the interval syncer thread when dropped.
pub struct Syncer {
    stop: Option<Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Wal {
    pub(super) fn sync_file(&self, file: &File, path: &Path) -> Result<()> {
        file.sync_data().map_err(|err| {
            self.poison(format!("fsync of {}: {err}", path.display()));
            EngineError::io("fsync", path, err)
        })
    }

    /// Blocks until every byte up to `lsn` is fsynced. One caller fsyncs for
    /// all that wait (group commit).
    pub(super) fn sync_to(&self, lsn: u64) -> Result<()> {
        let mut state = self.sync.lock();
        loop {
            if state.synced_lsn >= lsn {
                return Ok(());
            }
            if !state.in_progress {
                break;
            }
            self.synced.wait(&mut state);
        }
        state.in_progress = true;
        drop(state);
        let result = self.sync_active();
        let mut state = self.sync.lock();
        state.in_progress = false;
        if let Ok(target) = result {
            state.synced_lsn = state.synced_lsn.max(target);
        }
        self.synced.notify_all();
        drop(state);
        result.map(|_| ())
    }

    /// Fsyncs the active segment; returns the lsn now durable.
    fn sync_active(&self) -> Result<u64> {
        self.check_poison()?;
        let (file, path, retiring, target) = {
            let a = self.active.lock();
            (
                Arc::clone(&a.file),
                a.path.clone(),
                a.retiring.clone(),
                a.lsn,
            )
        };
        if let Some((old, old_path)) = retiring {
            self.sync_file(&old, &old_path)?;
        }
        self.sync_file(&file, &path)?;
        Ok(target)
    }

    /// Fsyncs everything appended so far (close, and the interval syncer).
    pub fn sync_now(&self) -> Result<()> {
        let lsn = self.active.lock().lsn;
        self.sync_to(lsn)
    }

    /// Starts the background fsync thread for [`SyncMode::Interval`].
    pub fn start_syncer(self: &Arc<Self>) -> Option<Syncer> {
        let SyncMode::Interval(every) = self.mode else {
            return None;
        };
        let (stop, stopped) = channel::bounded::<()>(0);
        let wal: Weak<Wal> = Arc::downgrade(self);
        let thread = thread::Builder::new()
            .name("tms-wal-sync".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => match wal.upgrade() {
                        // A failure poisons the WAL; writers then report it.
                        Some(wal) => drop(wal.sync_now()),
                        None => return,
                    },
                    _ => return,
                }
            })
            .ok()?;
        Some(Syncer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}
