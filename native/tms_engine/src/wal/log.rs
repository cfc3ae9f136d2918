//! The log itself: the active segment, appends of frames, rotation, and
//! deleting segments the engine no longer needs.
//!
//! Appends go to one active segment; a segment is never appended to again
//! after a restart or a rotation, and is deleted only once every point in it
//! is in a durable chunk segment (the engine decides when).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::frame::{self, FRAME_HEADER_LEN, HEADER_LEN};
use super::sync::SyncMode;
use crate::error::{io_err, EngineError, Result};
use crate::files::{ensure_dir, sync_dir};

pub(super) struct Active {
    /// False once the engine closes: later appends fail with `Closed`.
    pub(super) accepting: bool,
    pub(super) seq: u64,
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
    /// The segment a rotation just closed, until its fsync is done: a group
    /// commit syncs it too, so no lsn counts as durable before it is.
    pub(super) retiring: Option<(Arc<File>, PathBuf)>,
    pub(super) len: u64,
    /// Bytes appended since open, over all segments: a log sequence number.
    pub(super) lsn: u64,
}

pub(super) struct SyncState {
    pub(super) synced_lsn: u64,
    pub(super) in_progress: bool,
}

/// The log. Appends are serialized by one mutex; fsyncs are not.
pub struct Wal {
    pub(super) dir: PathBuf,
    pub(super) mode: SyncMode,
    pub(super) segment_bytes: u64,
    pub(super) active: Mutex<Active>,
    /// Serializes rotations (a flush's and a full segment's).
    pub(super) rotate_lock: Mutex<()>,
    /// Per segment, appends whose [`Appended`] ticket is still alive: their
    /// records are in the log but their effect (buffered points, a
    /// registered series) may not be visible yet, so the segment must stay.
    pub(super) pending: Mutex<BTreeMap<u64, u32>>,
    pub(super) sync: Mutex<SyncState>,
    pub(super) synced: Condvar,
    pub(super) poisoned: AtomicBool,
    pub(super) poison_reason: Mutex<String>,
}

/// Proof of an append. While it lives, the segment the record went to
/// (and every later one) is kept: drop it once the appended data is
/// visible elsewhere (in the buffers, in the registry).
#[must_use = "dropping the ticket at once lets a flush delete the record before its data is buffered"]
pub struct Appended<'a> {
    wal: &'a Wal,
    seq: u64,
}

impl Appended<'_> {
    /// The segment the record went to (the first, for a split batch).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl Drop for Appended<'_> {
    fn drop(&mut self) {
        let mut pending = self.wal.pending.lock();
        if let Some(count) = pending.get_mut(&self.seq) {
            *count -= 1;
            if *count == 0 {
                pending.remove(&self.seq);
            }
        }
    }
}

impl Wal {
    /// Opens the log in `dir` with a fresh active segment numbered after every
    /// existing one; existing segments are left for replay and deletion.
    pub fn open(dir: &Path, mode: SyncMode, segment_bytes: u64) -> Result<Wal> {
        ensure_dir(dir)?;
        let next = segments(dir)?.last().map_or(1, |(seq, _)| seq + 1);
        let (path, file) = create_segment(dir, next)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            mode,
            segment_bytes,
            active: Mutex::new(Active {
                accepting: true,
                seq: next,
                path,
                file: Arc::new(file),
                retiring: None,
                len: HEADER_LEN as u64,
                lsn: 0,
            }),
            rotate_lock: Mutex::new(()),
            sync: Mutex::new(SyncState {
                synced_lsn: 0,
                in_progress: false,
            }),
            pending: Mutex::new(BTreeMap::new()),
            synced: Condvar::new(),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(String::new()),
        })
    }

    /// Sequence number of the active segment.
    pub fn active_seq(&self) -> u64 {
        self.active.lock().seq
    }

    /// Bytes in the WAL directory's segments, counted from the file system.
    pub fn disk_bytes(&self) -> u64 {
        segments(&self.dir)
            .map(|segs| {
                segs.iter()
                    .filter_map(|(_, p)| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Appends one frame of `kind` whose payload is `parts` concatenated
    /// (written with one vectored write, never copied). Durable per the sync
    /// mode when this returns.
    pub fn append(&self, kind: u8, parts: &[&[u8]]) -> Result<Appended<'_>> {
        self.check_poison()?;
        let header = frame::frame_header(kind, parts)?;
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();

        let (ticket, lsn) = {
            let mut active = self.active.lock();
            if !active.accepting {
                return Err(EngineError::Closed);
            }
            let mut bufs: Vec<IoSlice<'_>> = std::iter::once(&header[..])
                .chain(parts.iter().copied())
                .map(IoSlice::new)
                .collect();
            if let Err(err) = write_all_vectored(&active.file, &mut bufs) {
                // Cut the partial record off so later records stay readable.
                if active.file.set_len(active.len).is_err() {
                    self.poison(format!("could not truncate a failed append: {err}"));
                }
                return Err(EngineError::io("append", &active.path, err));
            }
            let written = (FRAME_HEADER_LEN + payload_len) as u64;
            active.len += written;
            active.lsn += written;
            // Registered under the append mutex: whoever reads the active
            // segment next also sees this ticket.
            *self.pending.lock().entry(active.seq).or_insert(0) += 1;
            let ticket = Appended {
                wal: self,
                seq: active.seq,
            };
            (ticket, active.lsn)
        };
        // A full segment is rotated outside the append mutex. A failed
        // rotation loses nothing (the record is written) and is retried by
        // the next append; a failed fsync poisons the log and is reported.
        let _ = self.rotate_if_full();
        if self.mode == SyncMode::Always {
            self.sync_to(lsn)?;
        }
        Ok(ticket)
    }

    /// The oldest segment an unfinished append still needs.
    pub fn oldest_pending(&self) -> Option<u64> {
        self.pending.lock().keys().next().copied()
    }

    /// Refuses every later append, then waits until no append is unfinished.
    /// Used by close, so that its final flush sees every acknowledged point.
    pub fn stop_appends(&self) {
        self.active.lock().accepting = false;
        while self.oldest_pending().is_some() {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Starts a new active segment; returns its sequence number. Every record
    /// appended before this call is in an older segment, fsynced unless the
    /// mode is `Never`. The new file is created and fsynced before the swap,
    /// so appends wait for a pointer swap, not for the disk.
    pub fn rotate(&self) -> Result<u64> {
        let _rotating = self.rotate_lock.lock();
        self.rotate_serialized()
    }

    fn rotate_if_full(&self) -> Result<()> {
        let _rotating = self.rotate_lock.lock();
        if self.active.lock().len >= self.segment_bytes {
            self.rotate_serialized()?;
        }
        Ok(())
    }

    fn rotate_serialized(&self) -> Result<u64> {
        let next = self.active.lock().seq + 1;
        let (path, file) = create_segment(&self.dir, next)?;
        let (old_file, old_path, end_lsn) = {
            let mut active = self.active.lock();
            let old_file = std::mem::replace(&mut active.file, Arc::new(file));
            let old_path = std::mem::replace(&mut active.path, path);
            active.seq = next;
            active.len = HEADER_LEN as u64;
            if self.mode != SyncMode::Never {
                active.retiring = Some((Arc::clone(&old_file), old_path.clone()));
            }
            (old_file, old_path, active.lsn)
        };
        if self.mode != SyncMode::Never {
            self.sync_file(&old_file, &old_path)?;
            let mut state = self.sync.lock();
            state.synced_lsn = state.synced_lsn.max(end_lsn);
            drop(state);
            let mut active = self.active.lock();
            if active
                .retiring
                .as_ref()
                .is_some_and(|(f, _)| Arc::ptr_eq(f, &old_file))
            {
                active.retiring = None;
            }
        }
        Ok(next)
    }

    /// Deletes every segment numbered below `seq`. Returns the failures
    /// (path and reason) instead of hiding them.
    pub fn remove_below(&self, seq: u64) -> Result<Vec<(String, String)>> {
        let mut failures = Vec::new();
        let mut removed = false;
        for (s, path) in segments(&self.dir)? {
            if s >= seq {
                break;
            }
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) => failures.push((path.display().to_string(), e.to_string())),
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(failures)
    }

    pub(super) fn poison(&self, reason: String) {
        *self.poison_reason.lock() = reason;
        self.poisoned.store(true, Ordering::Release);
    }

    pub(super) fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(EngineError::Poisoned(self.poison_reason.lock().clone()));
        }
        Ok(())
    }
}

fn create_segment(dir: &Path, seq: u64) -> Result<(PathBuf, File)> {
    let path = dir.join(format!("{seq:020}.wal"));
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    file.write_all(&frame::segment_header(seq))
        .map_err(io_err("write", &path))?;
    file.sync_all().map_err(io_err("fsync", &path))?;
    sync_dir(dir)?;
    Ok((path, file))
}

fn write_all_vectored(mut file: &File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The WAL segments in `dir`, oldest first.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(EngineError::io("list directory", dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err("list directory", dir))?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(out)
}
