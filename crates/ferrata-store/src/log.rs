//! The embedded write-ahead log: append-only segment files, one checksummed frame per batch,
//! one write and one `fdatasync` per group commit, checkpoint compaction and crash recovery.
//!
//! # Format (version 1; also in docs/RELIABILITY.md, "Embedded store format")
//!
//! The store directory holds segment files named `NNNNNNNNNNNNNNNNNNNN.wal` (20-digit,
//! zero-padded sequence number); other files are ignored. All integers are big-endian.
//!
//! * Segment header, 24 bytes: magic `FERRWAL\0`, format version u16 (= 1), flags u16 (bit 0:
//!   the segment starts with a checkpoint), sequence u64 (equals the file name), CRC-32 (IEEE)
//!   of the previous 20 bytes.
//! * Then frames: payload length u32, CRC-32 of (the 4 length bytes + payload), payload. The
//!   first payload byte is the frame kind:
//!   * `1` batch: record count u32, then the records of one `append` call (or one chunk of a
//!     checkpoint). A batch is atomic because its checksum covers all of it.
//!   * `2` checkpoint end: total records in the checkpoint u64. Only in checkpoint segments,
//!     after the snapshot batches; batches appended later follow it in the same segment.
//! * Record: opcode u8 (Seata's: 1 GlobalAdd, 2 GlobalUpdate, 3 GlobalRemove, 4 BranchAdd,
//!   5 BranchUpdate, 6 BranchRemove), then fields; strings are u32 byte length + UTF-8.
//!   * GlobalAdd: transaction_id i64, status u8, timeout_ms i32, begin_time_ms i64, xid,
//!     application_id, transaction_service_group, transaction_name, application_data.
//!   * GlobalUpdate: transaction_id i64, status u8. GlobalRemove: transaction_id i64.
//!   * BranchAdd: transaction_id i64, branch_id i64, branch_type u8, status u8, resource_id,
//!     lock_key, client_id, application_data.
//!   * BranchUpdate: transaction_id i64, branch_id i64, status u8, has_data u8 (0/1), then
//!     application_data if has_data. BranchRemove: transaction_id i64, branch_id i64.
//!
//! # Recovery
//!
//! Replay starts at the newest checkpoint segment that has its end frame (or at the oldest
//! segment if there is none) and runs through every newer segment; older segments are leftovers
//! of an interrupted compaction and are deleted. A checkpoint without its end frame can only be
//! the newest file (a compaction that crashed); it is deleted and the older segments are used. A
//! bad frame (short, or checksum mismatch) in the newest segment is a batch that was never
//! acknowledged: the file is truncated there. Anywhere else, or when a valid frame follows the
//! bad one, acknowledged data was damaged and `open` fails with [`StoreError::Corrupt`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ferrata_core::{Record, SessionTable};
use tracing::{info, warn};

use crate::format::{
    BatchFrame, FLAG_CHECKPOINT, FRAME_HEADER_LEN, HeaderError, KIND_BATCH, KIND_CHECKPOINT_END,
    Reader, SEGMENT_HEADER_LEN, SegmentHeader, decode_header, encode_header, frame_crc,
    push_checkpoint_end,
};
use crate::{SessionStore, StoreError};

/// Default size after which a new segment is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default log growth after which [`SessionStore::wants_compaction`] says yes.
pub const DEFAULT_COMPACT_AFTER_BYTES: u64 = 256 << 20;
/// Checkpoints are written in frames of about this size, so memory stays bounded whatever the
/// size of the live state.
const CHECKPOINT_CHUNK_BYTES: usize = 1 << 20;
/// An exceptional huge batch should not pin its buffer for the life of the process.
const MAX_RETAINED_BUFFER: usize = 16 << 20;
const HEADER_LEN: u64 = SEGMENT_HEADER_LEN as u64;

/// Configuration of a [`LogStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStoreConfig {
    /// Directory of the segment files; created if missing. One TC process per directory.
    pub dir: PathBuf,
    /// Start a new segment once the current one exceeds this many bytes.
    pub segment_bytes: u64,
    /// Ask for a compaction once this many bytes were logged since the last one.
    pub compact_after_bytes: u64,
    /// `fdatasync` every append (and the directory after creating files). `false` gives up
    /// durability; only for tests and benchmarks.
    pub fsync: bool,
}

impl LogStoreConfig {
    /// The defaults (64 MiB segments, compaction after 256 MiB, fsync on) for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> LogStoreConfig {
        LogStoreConfig {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            compact_after_bytes: DEFAULT_COMPACT_AFTER_BYTES,
            fsync: true,
        }
    }
}

impl Default for LogStoreConfig {
    /// Seata's default directory name, `sessionStore`, relative to the working directory.
    fn default() -> LogStoreConfig {
        LogStoreConfig::new("sessionStore")
    }
}

/// Counters of the I/O a [`LogStore`] has done since it was opened (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStoreStats {
    /// Non-empty `append` calls that succeeded.
    pub appends: u64,
    /// `write` calls issued for segment data (headers, batches, checkpoint chunks).
    pub writes: u64,
    /// `fdatasync`/`fsync` calls on segment files.
    pub data_syncs: u64,
    /// `fsync` calls on the directory.
    pub dir_syncs: u64,
    /// Segment files created (rotations and checkpoints).
    pub segments_created: u64,
    /// Compactions completed.
    pub compactions: u64,
    /// Bytes logged since the last compaction (what `wants_compaction` compares).
    pub bytes_since_compaction: u64,
    /// Sequence number of the segment appends go to.
    pub active_segment: u64,
}

/// The embedded write-ahead log store.
#[derive(Debug)]
pub struct LogStore {
    config: LogStoreConfig,
    active: File,
    active_seq: u64,
    active_len: u64,
    /// Reused for every append so the hot path does not allocate.
    buf: Vec<u8>,
    stats: LogStoreStats,
    /// Set when a write or sync failed: the tail of the log is then unknown.
    poisoned: Option<String>,
}

/// A segment file found on disk, with its verified header.
#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    len: u64,
    header: SegmentHeader,
}

/// What replaying one segment found.
#[derive(Debug)]
struct Scan {
    /// End of the last good frame: where the next frame belongs.
    valid_len: u64,
    /// The first bad frame of the newest segment (offset, reason): a torn, unacknowledged tail.
    torn: Option<(u64, String)>,
    /// Offset just past the checkpoint-end frame, when the segment has one.
    checkpoint_end: Option<u64>,
}

impl LogStore {
    /// Opens (creating the directory) and recovers: replays the segments and returns the live
    /// state. Repairs only what a crash can leave (a torn tail, an unfinished checkpoint or
    /// segment header, segments an interrupted compaction did not delete); anything else is
    /// [`StoreError::Corrupt`].
    pub fn open(config: LogStoreConfig) -> Result<(LogStore, SessionTable), StoreError> {
        fs::create_dir_all(&config.dir).map_err(|e| {
            StoreError::io(
                format!("cannot create store directory {}", config.dir.display()),
                e,
            )
        })?;
        let mut stats = LogStoreStats::default();
        if config.fsync {
            // The directory may be new: its own entry must be durable before data in it is.
            let parent = match config.dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            stats.dir_syncs += 1;
            File::open(parent)
                .and_then(|dir| dir.sync_all())
                .map_err(|e| {
                    StoreError::io(format!("cannot fsync directory {}", parent.display()), e)
                })?;
        }
        let mut segments = read_segments(&config, &mut stats)?;
        let mut scratch = Vec::new();

        let (table, start, last_scan, since) = 'recover: loop {
            // The newest checkpoint holds everything older segments said.
            let start = segments
                .iter()
                .rposition(|s| s.header.is_checkpoint())
                .unwrap_or(0);
            let mut table = SessionTable::new();
            let mut last_scan = None;
            let mut since = 0;
            for i in start..segments.len() {
                let is_last = i + 1 == segments.len();
                let segment = &segments[i];
                let scan = scan_segment(segment, is_last, &mut table, &mut scratch)?;
                if segment.header.is_checkpoint() {
                    let Some(end) = scan.checkpoint_end else {
                        if !is_last {
                            return Err(StoreError::Corrupt {
                                path: segment.path.clone(),
                                offset: scan.valid_len,
                                reason: "checkpoint segment has no end frame, yet newer \
                                         segments exist"
                                    .into(),
                            });
                        }
                        // A compaction crashed before finishing: the older segments are intact.
                        warn!(
                            path = %segment.path.display(),
                            "discarding an unfinished checkpoint (compaction was interrupted); \
                             recovering from the older segments"
                        );
                        remove_file(&segment.path)?;
                        sync_dir(&config, &mut stats)?;
                        segments.pop();
                        continue 'recover;
                    };
                    since += scan.valid_len - end;
                } else {
                    since += scan.valid_len - HEADER_LEN;
                }
                if is_last {
                    last_scan = Some(scan);
                }
            }
            break (table, start, last_scan, since);
        };

        let torn = last_scan.as_ref().and_then(|scan| scan.torn.as_ref());
        if let (Some((offset, reason)), Some(last)) = (torn, segments.last()) {
            warn!(
                path = %last.path.display(),
                offset,
                reason = %reason,
                "truncating a torn tail: the last batch was never acknowledged"
            );
            truncate(&last.path, *offset, &config, &mut stats)?;
        }

        if start > 0 {
            for old in &segments[..start] {
                info!(path = %old.path.display(), "deleting a segment superseded by a checkpoint");
                remove_file(&old.path)?;
            }
            sync_dir(&config, &mut stats)?;
        }

        let (active, active_seq, active_len) = match (segments.last(), last_scan) {
            (Some(last), Some(scan)) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&last.path)
                    .map_err(|e| {
                        StoreError::io(format!("cannot open {} for append", last.path.display()), e)
                    })?;
                (file, last.seq, scan.valid_len)
            }
            _ => {
                let path = segment_path(&config.dir, 1);
                let mut file = create_new(&path)?;
                stats.segments_created += 1;
                if let Err(e) = init_plain_segment(&mut file, &path, 1, &config, &mut stats) {
                    // Best effort: a header-less newest file is discarded by the next open anyway.
                    let _ = fs::remove_file(&path);
                    return Err(e);
                }
                (file, 1, HEADER_LEN)
            }
        };
        stats.bytes_since_compaction = since;
        stats.active_segment = active_seq;
        info!(
            dir = %config.dir.display(),
            transactions = table.len(),
            active_segment = active_seq,
            "session log recovered"
        );
        let store = LogStore {
            config,
            active,
            active_seq,
            active_len,
            buf: Vec::with_capacity(64 << 10),
            stats,
            poisoned: None,
        };
        Ok((store, table))
    }

    /// I/O counters since `open`.
    pub fn stats(&self) -> LogStoreStats {
        self.stats
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &LogStoreConfig {
        &self.config
    }

    fn check_poisoned(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(reason) => Err(StoreError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, error: &StoreError) {
        warn!(error = %error, "session store poisoned; it refuses further writes until restart");
        self.poisoned = Some(error.to_string());
    }

    fn rotate(&mut self) -> Result<(), StoreError> {
        let seq = self.active_seq + 1;
        let path = segment_path(&self.config.dir, seq);
        // If even creating fails there is nothing to undo (and the name may not be ours).
        let mut file = create_new(&path)?;
        self.stats.segments_created += 1;
        if let Err(e) = init_plain_segment(&mut file, &path, seq, &self.config, &mut self.stats) {
            self.discard_partial(&path);
            return Err(e);
        }
        self.active = file;
        self.active_seq = seq;
        self.active_len = HEADER_LEN;
        self.stats.active_segment = seq;
        Ok(())
    }

    /// Removes a segment whose creation failed, so that neither the next attempt nor recovery
    /// trips over it; if even that fails, nothing more may be written.
    fn discard_partial(&mut self, path: &Path) {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                let error = StoreError::io(
                    format!("cannot remove unfinished segment {}", path.display()),
                    e,
                );
                self.poison(&error);
            }
        }
    }

    fn write_checkpoint(
        &mut self,
        mut file: File,
        path: &Path,
        seq: u64,
        live: &mut dyn Iterator<Item = Record>,
    ) -> Result<(File, u64), StoreError> {
        self.buf.clear();
        self.buf
            .extend_from_slice(&encode_header(seq, FLAG_CHECKPOINT));
        let mut written = 0u64;
        let mut total = 0u64;
        let mut frame = BatchFrame::begin(&mut self.buf);
        for record in live {
            frame.push(&mut self.buf, &record)?;
            total += 1;
            if self.buf.len() >= CHECKPOINT_CHUNK_BYTES {
                frame.finish(&mut self.buf)?;
                write_buf(&mut file, &self.buf, path, &mut self.stats)?;
                written += self.buf.len() as u64;
                self.buf.clear();
                frame = BatchFrame::begin(&mut self.buf);
            }
        }
        if frame.count() > 0 {
            frame.finish(&mut self.buf)?;
        } else {
            frame.abandon(&mut self.buf);
        }
        push_checkpoint_end(&mut self.buf, total)?;
        write_buf(&mut file, &self.buf, path, &mut self.stats)?;
        written += self.buf.len() as u64;
        self.shrink_buf();
        if self.config.fsync {
            sync_file(&file, path, &mut self.stats)?;
            sync_dir(&self.config, &mut self.stats)?;
        }
        info!(path = %path.display(), records = total, bytes = written, "checkpoint written");
        Ok((file, written))
    }

    /// Deletes every segment older than `seq`. Best effort: recovery ignores them anyway.
    fn remove_segments_before(&mut self, seq: u64) {
        let names = match list_segment_files(&self.config.dir) {
            Ok(names) => names,
            Err(e) => {
                warn!(error = %e, "cannot list old segments after compaction; they will be deleted at next start");
                return;
            }
        };
        let mut removed = false;
        for (old, path) in names.into_iter().filter(|(s, _)| *s < seq) {
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) => {
                    warn!(segment = old, path = %path.display(), error = %e, "cannot delete a compacted segment; it will be deleted at next start");
                }
            }
        }
        let synced = if removed {
            sync_dir(&self.config, &mut self.stats)
        } else {
            Ok(())
        };
        if let Err(e) = synced {
            warn!(error = %e, "cannot sync the store directory after deleting old segments");
        }
    }

    fn shrink_buf(&mut self) {
        if self.buf.capacity() > MAX_RETAINED_BUFFER {
            self.buf = Vec::with_capacity(64 << 10);
        }
    }
}

impl SessionStore for LogStore {
    fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        self.check_poisoned()?;
        if records.is_empty() {
            return Ok(());
        }
        if self.active_len > self.config.segment_bytes {
            self.rotate()?;
        }
        self.buf.clear();
        let mut frame = BatchFrame::begin(&mut self.buf);
        for record in records {
            frame.push(&mut self.buf, record)?;
        }
        frame.finish(&mut self.buf)?;

        // From here on a failure leaves the file tail unknown: appending after it could put
        // acknowledged batches behind garbage that recovery truncates, so poison instead.
        let path = segment_path(&self.config.dir, self.active_seq);
        let mut result = write_buf(&mut self.active, &self.buf, &path, &mut self.stats);
        if result.is_ok() && self.config.fsync {
            result = sync_file(&self.active, &path, &mut self.stats);
        }
        if let Err(e) = result {
            self.poison(&e);
            return Err(e);
        }
        let n = self.buf.len() as u64;
        self.active_len += n;
        self.stats.bytes_since_compaction += n;
        self.stats.appends += 1;
        self.shrink_buf();
        Ok(())
    }

    fn compact(&mut self, live: &mut dyn Iterator<Item = Record>) -> Result<(), StoreError> {
        self.check_poisoned()?;
        let seq = self.active_seq + 1;
        let path = segment_path(&self.config.dir, seq);
        let file = create_new(&path)?;
        self.stats.segments_created += 1;
        match self.write_checkpoint(file, &path, seq, live) {
            Ok((file, len)) => {
                // The checkpoint is durable and complete: from now on recovery starts there.
                self.active = file;
                self.active_seq = seq;
                self.active_len = len;
                self.stats.active_segment = seq;
                self.stats.bytes_since_compaction = 0;
                self.stats.compactions += 1;
                self.remove_segments_before(seq);
                Ok(())
            }
            Err(e) => {
                // The old segments are untouched; drop the partial checkpoint and carry on.
                self.discard_partial(&path);
                Err(e)
            }
        }
    }

    fn wants_compaction(&self) -> bool {
        self.poisoned.is_none()
            && self.stats.bytes_since_compaction >= self.config.compact_after_bytes
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Segment files in the directory, in sequence order.
fn list_segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let context = || format!("cannot list store directory {}", dir.display());
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(context(), e))? {
        let entry = entry.map_err(|e| StoreError::io(context(), e))?;
        let name = entry.file_name();
        if let Some(seq) = name.to_str().and_then(parse_segment_name) {
            out.push((seq, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(out)
}

/// Lists the segments and verifies their headers. A newest file too short to hold a header is a
/// crash during segment creation (nothing in it was ever acknowledged) and is deleted.
fn read_segments(
    config: &LogStoreConfig,
    stats: &mut LogStoreStats,
) -> Result<Vec<Segment>, StoreError> {
    let files = list_segment_files(&config.dir)?;
    let count = files.len();
    let mut segments = Vec::with_capacity(count);
    for (i, (seq, path)) in files.into_iter().enumerate() {
        let mut file = File::open(&path)
            .map_err(|e| StoreError::io(format!("cannot open {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io(format!("cannot stat {}", path.display()), e))?
            .len();
        let mut bytes = [0u8; SEGMENT_HEADER_LEN];
        let header = if len >= HEADER_LEN {
            file.read_exact(&mut bytes)
                .map_err(|e| StoreError::io(format!("cannot read {}", path.display()), e))?;
            decode_header(&bytes)
        } else {
            Err(HeaderError::Invalid(format!(
                "file is {len} bytes, shorter than a segment header"
            )))
        };
        let header = match header {
            Ok(header) => header,
            Err(HeaderError::Version(found)) => {
                return Err(StoreError::UnsupportedVersion {
                    path,
                    found,
                    supported: crate::format::FORMAT_VERSION,
                });
            }
            Err(HeaderError::Invalid(reason)) => {
                if i + 1 == count && len <= HEADER_LEN {
                    warn!(path = %path.display(), reason = %reason, "deleting a segment whose creation was interrupted");
                    drop(file);
                    remove_file(&path)?;
                    sync_dir(config, stats)?;
                    continue;
                }
                return Err(StoreError::Corrupt {
                    path,
                    offset: 0,
                    reason,
                });
            }
        };
        if header.sequence != seq {
            return Err(StoreError::Corrupt {
                path,
                offset: 12,
                reason: format!(
                    "header says segment {} but the file name says {seq}; was the file renamed?",
                    header.sequence
                ),
            });
        }
        segments.push(Segment {
            seq,
            path,
            len,
            header,
        });
    }
    Ok(segments)
}

/// Replays one segment's frames into `table`.
fn scan_segment(
    segment: &Segment,
    is_last: bool,
    table: &mut SessionTable,
    scratch: &mut Vec<u8>,
) -> Result<Scan, StoreError> {
    let path = &segment.path;
    let io_err = |e| StoreError::io(format!("cannot read {}", path.display()), e);
    let file = File::open(path).map_err(io_err)?;
    let mut reader = BufReader::with_capacity(256 << 10, file);
    reader.seek(SeekFrom::Start(HEADER_LEN)).map_err(io_err)?;
    let corrupt = |offset: u64, reason: String| StoreError::Corrupt {
        path: path.clone(),
        offset,
        reason,
    };
    let is_checkpoint = segment.header.is_checkpoint();
    let file_len = segment.len;
    let mut pos = HEADER_LEN;
    let mut checkpoint_end = None;
    let mut checkpoint_records = 0u64;

    while pos < file_len {
        let remaining = file_len - pos;
        let bad = if remaining < FRAME_HEADER_LEN as u64 {
            Some(format!(
                "{remaining} bytes left, too few for a frame header"
            ))
        } else {
            let mut head = [0u8; FRAME_HEADER_LEN];
            reader.read_exact(&mut head).map_err(io_err)?;
            let len_bytes = [head[0], head[1], head[2], head[3]];
            let len = u32::from_be_bytes(len_bytes);
            let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            if u64::from(len) > remaining - FRAME_HEADER_LEN as u64 {
                Some(format!(
                    "frame of {len} bytes runs past the end of the file"
                ))
            } else {
                scratch.clear();
                scratch.resize(len as usize, 0);
                reader.read_exact(scratch).map_err(io_err)?;
                if frame_crc(len_bytes, scratch) != crc {
                    Some("frame checksum mismatch".to_string())
                } else {
                    None
                }
            }
        };
        if let Some(reason) = bad {
            if !is_last {
                return Err(corrupt(pos, reason));
            }
            // Checkpoint chunks share one sync, so before its end frame any mix of them may be
            // missing after a crash. After that, each frame had its own sync, so a good frame
            // behind a bad one means acknowledged data was damaged, not a torn write.
            let unfinished_checkpoint = is_checkpoint && checkpoint_end.is_none();
            if !unfinished_checkpoint && valid_frame_follows(&mut reader, pos, file_len, scratch)? {
                return Err(corrupt(
                    pos,
                    format!("{reason}, but valid frames follow it"),
                ));
            }
            return Ok(Scan {
                valid_len: pos,
                torn: Some((pos, reason)),
                checkpoint_end,
            });
        }

        let mut payload = Reader::new(scratch);
        let kind = payload.u8().map_err(|r| corrupt(pos, r))?;
        match kind {
            KIND_BATCH => {
                let count = payload.u32().map_err(|r| corrupt(pos, r))?;
                for _ in 0..count {
                    let record = payload.record().map_err(|r| corrupt(pos, r))?;
                    table.apply(&record);
                }
                if checkpoint_end.is_none() {
                    checkpoint_records += u64::from(count);
                }
            }
            KIND_CHECKPOINT_END => {
                if !is_checkpoint || checkpoint_end.is_some() {
                    return Err(corrupt(pos, "unexpected checkpoint-end frame".into()));
                }
                let expected = payload.u64().map_err(|r| corrupt(pos, r))?;
                if expected != checkpoint_records {
                    return Err(corrupt(
                        pos,
                        format!(
                            "checkpoint says {expected} records but {checkpoint_records} precede it"
                        ),
                    ));
                }
                checkpoint_end = Some(pos + FRAME_HEADER_LEN as u64 + scratch.len() as u64);
            }
            other => return Err(corrupt(pos, format!("unknown frame kind {other}"))),
        }
        if !payload.is_empty() {
            return Err(corrupt(
                pos,
                "trailing bytes after the frame's records".into(),
            ));
        }
        pos += FRAME_HEADER_LEN as u64 + scratch.len() as u64;
    }
    Ok(Scan {
        valid_len: pos,
        torn: None,
        checkpoint_end,
    })
}

/// Whether a checksum-valid frame starts where the bad frame at `pos` claims to end.
fn valid_frame_follows(
    reader: &mut BufReader<File>,
    pos: u64,
    file_len: u64,
    scratch: &mut Vec<u8>,
) -> Result<bool, StoreError> {
    let io_err = |e| StoreError::io("cannot read segment while checking a damaged frame", e);
    let frame = FRAME_HEADER_LEN as u64;
    if file_len - pos < frame {
        return Ok(false);
    }
    reader.seek(SeekFrom::Start(pos)).map_err(io_err)?;
    let mut head = [0u8; FRAME_HEADER_LEN];
    reader.read_exact(&mut head).map_err(io_err)?;
    let next = pos + frame + u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
    if next + frame > file_len {
        return Ok(false);
    }
    reader.seek(SeekFrom::Start(next)).map_err(io_err)?;
    reader.read_exact(&mut head).map_err(io_err)?;
    let len_bytes = [head[0], head[1], head[2], head[3]];
    let len = u32::from_be_bytes(len_bytes);
    if len == 0 || next + frame + u64::from(len) > file_len {
        return Ok(false);
    }
    scratch.clear();
    scratch.resize(len as usize, 0);
    reader.read_exact(scratch).map_err(io_err)?;
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    Ok(frame_crc(len_bytes, scratch) == crc)
}

fn create_new(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StoreError::io(format!("cannot create segment {}", path.display()), e))
}

/// Writes the header of a new segment for appends, and makes it and the directory entry
/// durable before any batch is acknowledged in it.
fn init_plain_segment(
    file: &mut File,
    path: &Path,
    seq: u64,
    config: &LogStoreConfig,
    stats: &mut LogStoreStats,
) -> Result<(), StoreError> {
    write_buf(file, &encode_header(seq, 0), path, stats)?;
    if config.fsync {
        sync_file(file, path, stats)?;
        sync_dir(config, stats)?;
    }
    Ok(())
}

fn write_buf(
    file: &mut File,
    buf: &[u8],
    path: &Path,
    stats: &mut LogStoreStats,
) -> Result<(), StoreError> {
    stats.writes += 1;
    file.write_all(buf)
        .map_err(|e| StoreError::io(format!("cannot write to {}", path.display()), e))
}

fn sync_file(file: &File, path: &Path, stats: &mut LogStoreStats) -> Result<(), StoreError> {
    stats.data_syncs += 1;
    file.sync_data()
        .map_err(|e| StoreError::io(format!("cannot fsync {}", path.display()), e))
}

/// Makes file creations and deletions in the store directory durable.
fn sync_dir(config: &LogStoreConfig, stats: &mut LogStoreStats) -> Result<(), StoreError> {
    if !config.fsync {
        return Ok(());
    }
    stats.dir_syncs += 1;
    let context = || format!("cannot fsync store directory {}", config.dir.display());
    File::open(&config.dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| StoreError::io(context(), e))
}

fn remove_file(path: &Path) -> Result<(), StoreError> {
    fs::remove_file(path)
        .map_err(|e| StoreError::io(format!("cannot delete {}", path.display()), e))
}

fn truncate(
    path: &Path,
    len: u64,
    config: &LogStoreConfig,
    stats: &mut LogStoreStats,
) -> Result<(), StoreError> {
    let context = || format!("cannot truncate the torn tail of {}", path.display());
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(context(), e))?;
    file.set_len(len)
        .map_err(|e| StoreError::io(context(), e))?;
    if config.fsync {
        // sync_all: the size shrank, which fdatasync need not persist.
        stats.data_syncs += 1;
        file.sync_all().map_err(|e| StoreError::io(context(), e))?;
    }
    Ok(())
}
