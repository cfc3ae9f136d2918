//! The write-ahead log: every accepted point is here before it is acknowledged.
//!
//! ## Segment file `wal/<seq, 20 digits>.wal`
//!
//! ```text
//! header  magic "TMSWAL01" | version u32 | seq u64
//! record  payload_len u32 | crc32 u32 | kind u8 | payload
//!         crc32 covers kind and payload
//! kind 1  points: n × (series u64, timestamp i64, value f64 bits), little-endian;
//!         byte-for-byte the layout of a raw batch, so a raw batch is logged
//!         without being copied
//! kind 2  series announcement: id u64 | key (see registry::encode_key)
//! ```
//!
//! A record is broken when its length runs past the end of the file or its
//! checksum fails. A broken record at the very end of the newest segment is a
//! torn write (the process died mid-append): it was never acknowledged and is
//! dropped quietly. Anywhere else it is corruption: replay skips it (the
//! length is trusted only when it fits in the file) and reports it.
//!
//! Appends go to one active segment; a segment is never appended to again
//! after a restart or a rotation, and is deleted only once every point in it
//! is in a durable chunk segment (the engine decides when).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use crossbeam::channel::{self, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

use crate::codec::Reader;
use crate::error::{io_err, EngineError, Result};
use crate::files::{ensure_dir, sync_dir};
use crate::registry::{self, SeriesId, SeriesKey};

const MAGIC: &[u8; 8] = b"TMSWAL01";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 20;
const RECORD_HEADER_LEN: usize = 9;
const KIND_POINTS: u8 = 1;
const KIND_SERIES: u8 = 2;
/// Size of one point in a points record (and in a raw batch).
pub const POINT_BYTES: usize = 24;
/// Largest points record. A bigger batch is logged as several records, so
/// the append mutex is never held for one huge write while small writers
/// (on normal schedulers) wait behind it.
const MAX_RECORD_POINTS: usize = 16_384;

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

/// One decoded WAL record.
#[derive(Debug)]
pub enum Record<'a> {
    /// Raw 24-byte points, in the layout of a raw batch.
    Points(&'a [u8]),
    /// A new series and its id.
    Series(SeriesId, SeriesKey),
}

/// What replay found, for `Tms.info` and the open report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub segments: u64,
    pub records: u64,
    pub points: u64,
    /// Bytes of a torn last record (never acknowledged), dropped.
    pub torn_bytes: u64,
    /// Records that failed their checksum or could not be applied, skipped.
    pub corrupt_records: u64,
    /// Bytes after a corrupt record whose length could not be trusted.
    pub skipped_bytes: u64,
}

struct Active {
    /// False once the engine closes: later appends fail with `Closed`.
    accepting: bool,
    seq: u64,
    path: PathBuf,
    file: Arc<File>,
    /// The segment a rotation just closed, until its fsync is done: a group
    /// commit syncs it too, so no lsn counts as durable before it is.
    retiring: Option<(Arc<File>, PathBuf)>,
    len: u64,
    /// Bytes appended since open, over all segments: a log sequence number.
    lsn: u64,
}

struct SyncState {
    synced_lsn: u64,
    in_progress: bool,
}

/// The log. Appends are serialized by one mutex; fsyncs are not.
pub struct Wal {
    dir: PathBuf,
    mode: SyncMode,
    segment_bytes: u64,
    active: Mutex<Active>,
    /// Serializes rotations (a flush's and a full segment's).
    rotate_lock: Mutex<()>,
    /// Per segment, appends whose [`Appended`] ticket is still alive: their
    /// records are in the log but their effect (buffered points, a
    /// registered series) may not be visible yet, so the segment must stay.
    pending: Mutex<BTreeMap<u64, u32>>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    poisoned: AtomicBool,
    poison_reason: Mutex<String>,
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
    /// Opens the log in `dir` with a fresh active segment numbered after every
    /// existing one; existing segments are left for [`replay`] and deletion.
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

    /// Appends raw points, as one record per [`MAX_RECORD_POINTS`]. Durable
    /// per the sync mode when this returns. A failure after some records
    /// were written leaves those records in the log: replaying or retrying
    /// the same points is harmless (equal timestamps overwrite).
    pub fn append_points(&self, points: &[u8]) -> Result<Appended<'_>> {
        let mut records = points.chunks(MAX_RECORD_POINTS * POINT_BYTES);
        let first = records.next().unwrap_or(&[]);
        let ticket = self.append(KIND_POINTS, &[], first)?;
        for record in records {
            // Later records go to the same or a newer segment, which the
            // ticket of the first keeps too.
            drop(self.append(KIND_POINTS, &[], record)?);
        }
        Ok(ticket)
    }

    /// Appends a series announcement.
    pub fn append_series(&self, id: SeriesId, key: &SeriesKey) -> Result<Appended<'_>> {
        let mut payload = Vec::with_capacity(64);
        payload.extend_from_slice(&id.to_le_bytes());
        registry::encode_key(&mut payload, key);
        self.append(KIND_SERIES, &payload, &[])
    }

    fn append(&self, kind: u8, head: &[u8], body: &[u8]) -> Result<Appended<'_>> {
        self.check_poison()?;
        let payload_len = head.len() + body.len();
        let len = u32::try_from(payload_len).map_err(|_| {
            EngineError::invalid(format!("WAL record of {payload_len} bytes is too large"))
        })?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind]);
        crc.update(head);
        crc.update(body);
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        header[8] = kind;

        let (ticket, lsn) = {
            let mut active = self.active.lock();
            if !active.accepting {
                return Err(EngineError::Closed);
            }
            let mut bufs = [
                IoSlice::new(&header),
                IoSlice::new(head),
                IoSlice::new(body),
            ];
            if let Err(err) = write_all_vectored(&active.file, &mut bufs) {
                // Cut the partial record off so later records stay readable.
                if active.file.set_len(active.len).is_err() {
                    self.poison(format!("could not truncate a failed append: {err}"));
                }
                return Err(EngineError::io("append", &active.path, err));
            }
            let written = (RECORD_HEADER_LEN + payload_len) as u64;
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

    fn sync_file(&self, file: &File, path: &Path) -> Result<()> {
        file.sync_data().map_err(|err| {
            self.poison(format!("fsync of {}: {err}", path.display()));
            EngineError::io("fsync", path, err)
        })
    }

    /// Blocks until every byte up to `lsn` is fsynced. One caller fsyncs for
    /// all that wait (group commit).
    fn sync_to(&self, lsn: u64) -> Result<()> {
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

    fn poison(&self, reason: String) {
        *self.poison_reason.lock() = reason;
        self.poisoned.store(true, Ordering::Release);
    }

    fn check_poison(&self) -> Result<()> {
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
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&seq.to_le_bytes());
    file.write_all(&header).map_err(io_err("write", &path))?;
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

/// Reads every segment in `dir` in order and hands each intact record to
/// `apply` with the segment it came from. A record `apply` rejects is
/// counted as corrupt and skipped; replay never stops at one bad record.
pub fn replay(
    dir: &Path,
    mut apply: impl FnMut(u64, Record<'_>) -> Result<()>,
) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    let all = segments(dir)?;
    for (i, (seq, path)) in all.iter().enumerate() {
        let is_newest = i + 1 == all.len();
        let bytes = fs::read(path).map_err(io_err("read", path))?;
        report.segments += 1;
        replay_segment(*seq, path, &bytes, is_newest, &mut apply, &mut report)?;
    }
    Ok(report)
}

fn replay_segment(
    seq: u64,
    path: &Path,
    bytes: &[u8],
    is_newest: bool,
    apply: &mut impl FnMut(u64, Record<'_>) -> Result<()>,
    report: &mut ReplayReport,
) -> Result<()> {
    if bytes.len() < HEADER_LEN {
        // Died while creating the segment: nothing in it was acknowledged.
        report.torn_bytes += bytes.len() as u64;
        return Ok(());
    }
    if &bytes[..8] != MAGIC {
        return Err(EngineError::corrupt(path, "not a WAL segment (bad magic)"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    EngineError::check_version(path, version, VERSION)?;
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let fits = rest.len() >= RECORD_HEADER_LEN && {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            len + RECORD_HEADER_LEN <= rest.len()
        };
        if !fits {
            if is_newest {
                report.torn_bytes += rest.len() as u64;
            } else {
                report.corrupt_records += 1;
                report.skipped_bytes += rest.len() as u64;
            }
            return Ok(());
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let record = &rest[RECORD_HEADER_LEN - 1..RECORD_HEADER_LEN + len];
        let end = pos + RECORD_HEADER_LEN + len;
        pos = end;
        if crc32fast::hash(record) != crc {
            if is_newest && end == bytes.len() {
                report.torn_bytes += (RECORD_HEADER_LEN + len) as u64;
            } else {
                report.corrupt_records += 1;
            }
            continue;
        }
        let applied = decode_record(path, record).and_then(|rec| {
            let points = match &rec {
                Record::Points(p) => (p.len() / POINT_BYTES) as u64,
                Record::Series(..) => 0,
            };
            apply(seq, rec).map(|()| points)
        });
        match applied {
            Ok(points) => {
                report.records += 1;
                report.points += points;
            }
            Err(_) => report.corrupt_records += 1,
        }
    }
    Ok(())
}

fn decode_record<'a>(path: &Path, record: &'a [u8]) -> Result<Record<'a>> {
    let (kind, payload) = (record[0], &record[1..]);
    match kind {
        KIND_POINTS if payload.len().is_multiple_of(POINT_BYTES) => Ok(Record::Points(payload)),
        KIND_SERIES => {
            let mut r = Reader::new(payload);
            let decoded = r
                .u64("series id")
                .and_then(|id| Ok((id, registry::decode_key(&mut r)?)));
            match decoded {
                Ok((id, key)) if r.remaining() == 0 => Ok(Record::Series(id, key)),
                Ok(_) => Err(EngineError::corrupt(
                    path,
                    "trailing bytes in a series record",
                )),
                Err(e) => Err(EngineError::corrupt(path, e.0)),
            }
        }
        _ => Err(EngineError::corrupt(
            path,
            format!("record kind {kind} with {} bytes", payload.len()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(sid: u64, ts: i64, v: f64) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&sid.to_le_bytes());
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&v.to_bits().to_le_bytes());
        out
    }

    fn collect(dir: &Path) -> (Vec<(u64, Vec<u8>)>, ReplayReport) {
        let mut seen = Vec::new();
        let report = replay(dir, |seq, rec| {
            if let Record::Points(p) = rec {
                seen.push((seq, p.to_vec()));
            }
            Ok(())
        })
        .unwrap();
        (seen, report)
    }

    #[test]
    fn records_replay_in_order_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), SyncMode::Always, 1 << 20).unwrap();
        let key = SeriesKey {
            metric: "m".into(),
            labels: vec![("a".into(), "b".into())].into(),
        };
        assert_eq!(wal.append_series(0, &key).unwrap().seq(), 1);
        drop(wal.append_points(&point(0, 1, 1.0)).unwrap());
        assert_eq!(wal.rotate().unwrap(), 2);
        let ticket = wal.append_points(&point(0, 2, f64::NAN)).unwrap();
        assert_eq!(wal.oldest_pending(), Some(2));
        drop(ticket);
        assert_eq!(wal.oldest_pending(), None);
        drop(wal);

        let mut series = Vec::new();
        let mut points = Vec::new();
        let report = replay(dir.path(), |seq, rec| {
            match rec {
                Record::Series(id, k) => series.push((seq, id, k)),
                Record::Points(p) => points.push((seq, p.to_vec())),
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(series, vec![(1, 0, key)]);
        assert_eq!(
            points,
            vec![(1, point(0, 1, 1.0)), (2, point(0, 2, f64::NAN))]
        );
        assert_eq!(report.records, 3);
        assert_eq!(report.points, 2);
        assert_eq!(report.corrupt_records + report.torn_bytes, 0);

        // A reopened log appends to a new segment after the old ones.
        let wal = Wal::open(dir.path(), SyncMode::Never, 1 << 20).unwrap();
        assert_eq!(wal.active_seq(), 3);
        assert!(wal.remove_below(3).unwrap().is_empty());
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_torn_tail_is_dropped_quietly_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), SyncMode::Never, 1 << 20).unwrap();
        drop(wal.append_points(&point(0, 1, 1.0)).unwrap());
        drop(wal.append_points(&point(0, 2, 2.0)).unwrap());
        drop(wal);
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        let full = fs::read(&path).unwrap();
        let first_end = HEADER_LEN + RECORD_HEADER_LEN + POINT_BYTES;
        for cut in first_end..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let (seen, report) = collect(dir.path());
            assert_eq!(seen.len(), 1, "cut at {cut}");
            assert_eq!(report.torn_bytes, (cut - first_end) as u64);
            assert_eq!(report.corrupt_records, 0);
        }
    }

    #[test]
    fn a_corrupt_record_in_the_middle_is_skipped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), SyncMode::Never, 1 << 20).unwrap();
        for ts in 0..3 {
            drop(wal.append_points(&point(0, ts, 1.0)).unwrap());
        }
        drop(wal);
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_LEN + RECORD_HEADER_LEN + POINT_BYTES + RECORD_HEADER_LEN + 3] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let (seen, report) = collect(dir.path());
        assert_eq!(seen.len(), 2);
        assert_eq!(report.corrupt_records, 1);
        assert_eq!(report.torn_bytes, 0);
    }

    #[test]
    fn group_commit_serves_concurrent_writers() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(dir.path(), SyncMode::Always, 1 << 16).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let wal = Arc::clone(&wal);
                thread::spawn(move || {
                    for i in 0..200 {
                        drop(wal.append_points(&point(t, i, 0.0)).unwrap());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(wal);
        let (seen, report) = collect(dir.path());
        assert_eq!(seen.len(), 800);
        assert_eq!(report.corrupt_records, 0);
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn a_large_batch_is_logged_as_bounded_records_and_replays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), SyncMode::Never, 1 << 30).unwrap();
        let n = MAX_RECORD_POINTS * 2 + 5;
        let mut raw = Vec::new();
        for i in 0..n as i64 {
            raw.extend_from_slice(&0u64.to_le_bytes());
            raw.extend_from_slice(&i.to_le_bytes());
            raw.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        }
        drop(wal.append_points(&raw).unwrap());
        wal.stop_appends();
        assert!(matches!(
            wal.append_points(&raw[..24]),
            Err(EngineError::Closed)
        ));
        drop(wal);
        let mut replayed = Vec::new();
        let report = replay(dir.path(), |_, rec| {
            if let Record::Points(p) = rec {
                replayed.extend_from_slice(p);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(replayed, raw);
    }
}
