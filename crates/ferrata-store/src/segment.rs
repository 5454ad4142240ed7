//! Segment files: their names, the I/O wrapper that counts calls and names files in errors,
//! reading frames back, telling a torn tail from damage, and writing a checkpoint. Shared by
//! recovery, compaction and repair.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrata_core::Record;
use tracing::info;

use crate::format::{
    BatchFrame, FLAG_CHECKPOINT, FRAME_HEADER_LEN, HeaderError, KIND_BATCH, KIND_CHECKPOINT_END,
    KIND_SEAL, Reader, SEGMENT_HEADER_LEN, SegmentHeader, decode_header, encode_header, frame_crc,
    push_checkpoint_end,
};
use crate::fs::{DirLock, FileSystem, LockError, WritableFile};
use crate::{LogStoreStats, StoreError};

pub(crate) const HEADER_LEN: u64 = SEGMENT_HEADER_LEN as u64;
const FRAME_LEN: u64 = FRAME_HEADER_LEN as u64;
/// Checkpoints are written in frames of about this size, so memory stays bounded whatever the
/// size of the live state.
const CHECKPOINT_CHUNK_BYTES: usize = 1 << 20;
/// At most this much of a segment after a bad frame is read to look for valid frames.
const RESYNC_WINDOW_BYTES: u64 = 256 << 20;
/// Checksum work allowed while looking; past it the answer is "cannot tell", which callers
/// treat as damage (refusing to start is safe, truncating acknowledged data is not).
const RESYNC_BUDGET_BYTES: u64 = 1 << 30;

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// Where a checkpoint is written before it is complete and renamed to its segment name.
pub(crate) fn temp_checkpoint_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal.tmp"))
}

fn parse_sequence(stem: &str) -> Option<u64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The files of a store directory that belong to the log, in sequence order.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub segments: Vec<(u64, PathBuf)>,
    /// Checkpoints whose writing never finished (`NNNN.wal.tmp`).
    pub temps: Vec<(u64, PathBuf)>,
}

/// The store directory on a file system, with the fsync setting. Every call is wrapped so
/// that errors name the operation and the file, and syncs are skipped without fsync.
#[derive(Debug, Clone)]
pub(crate) struct Disk {
    pub fs: Arc<dyn FileSystem>,
    pub dir: PathBuf,
    pub fsync: bool,
}

impl Disk {
    pub fn list(&self) -> Result<Listing, StoreError> {
        let names = self.fs.list_files(&self.dir).map_err(|e| {
            StoreError::io(
                format!("cannot list store directory {}", self.dir.display()),
                e,
            )
        })?;
        let mut listing = Listing::default();
        for name in names {
            if let Some(seq) = name.strip_suffix(".wal.tmp").and_then(parse_sequence) {
                listing.temps.push((seq, self.dir.join(&name)));
            } else if let Some(seq) = name.strip_suffix(".wal").and_then(parse_sequence) {
                listing.segments.push((seq, self.dir.join(&name)));
            }
        }
        listing.segments.sort_unstable();
        listing.temps.sort_unstable();
        Ok(listing)
    }

    /// Creates the store directory, makes its entry durable, and locks it.
    pub fn prepare_dir(&self, stats: &mut LogStoreStats) -> Result<Arc<dyn DirLock>, StoreError> {
        let dir = &self.dir;
        self.fs.create_dir_all(dir).map_err(|e| {
            StoreError::io(
                format!("cannot create store directory {}", dir.display()),
                e,
            )
        })?;
        // The directory may be new: its own entry must be durable before data in it is.
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        self.sync_other_dir(parent, stats)?;
        match self.fs.lock_dir(dir) {
            Ok(lock) => Ok(Arc::from(lock)),
            Err(LockError::Held { pid }) => Err(StoreError::Locked {
                dir: dir.clone(),
                pid,
            }),
            Err(LockError::Io(e)) => Err(StoreError::io(
                format!(
                    "cannot lock store directory {} (it must be on a local file system that \
                     supports file locks)",
                    dir.display()
                ),
                e,
            )),
        }
    }

    /// Writes the header of a new segment for appends, and makes it and the directory entry
    /// durable before any batch is acknowledged in it.
    pub fn init_segment(
        &self,
        file: &mut dyn WritableFile,
        path: &Path,
        seq: u64,
        stats: &mut LogStoreStats,
    ) -> Result<(), StoreError> {
        self.write(file, &encode_header(seq, 0), path, stats)?;
        self.sync_file(file, path, stats)?;
        self.sync_dir(stats)
    }

    pub fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>, StoreError> {
        self.fs
            .create_new(path)
            .map_err(|e| StoreError::io(format!("cannot create {}", path.display()), e))
    }

    /// Opens `path` for writes starting at `offset` (the end of its last good frame).
    pub fn open_write_at(
        &self,
        path: &Path,
        offset: u64,
    ) -> Result<Box<dyn WritableFile>, StoreError> {
        self.fs
            .open_write_at(path, offset)
            .map_err(|e| StoreError::io(format!("cannot open {} for writing", path.display()), e))
    }

    pub fn write(
        &self,
        file: &mut dyn WritableFile,
        buf: &[u8],
        path: &Path,
        stats: &mut LogStoreStats,
    ) -> Result<(), StoreError> {
        stats.writes += 1;
        file.write(buf)
            .map_err(|e| StoreError::io(format!("cannot write to {}", path.display()), e))
    }

    /// `fdatasync`, unless fsync is off.
    pub fn sync_file(
        &self,
        file: &mut dyn WritableFile,
        path: &Path,
        stats: &mut LogStoreStats,
    ) -> Result<(), StoreError> {
        if !self.fsync {
            return Ok(());
        }
        stats.data_syncs += 1;
        file.sync_data()
            .map_err(|e| StoreError::io(format!("cannot fsync {}", path.display()), e))
    }

    /// Makes file creations, renames and deletions in the store directory durable.
    pub fn sync_dir(&self, stats: &mut LogStoreStats) -> Result<(), StoreError> {
        self.sync_other_dir(&self.dir, stats)
    }

    pub fn sync_other_dir(&self, dir: &Path, stats: &mut LogStoreStats) -> Result<(), StoreError> {
        if !self.fsync {
            return Ok(());
        }
        stats.dir_syncs += 1;
        self.fs
            .sync_dir(dir)
            .map_err(|e| StoreError::io(format!("cannot fsync directory {}", dir.display()), e))
    }

    pub fn remove(&self, path: &Path) -> Result<(), StoreError> {
        self.fs
            .remove_file(path)
            .map_err(|e| StoreError::io(format!("cannot delete {}", path.display()), e))
    }

    pub fn rename(&self, from: &Path, to: &Path) -> Result<(), StoreError> {
        self.fs.rename(from, to).map_err(|e| {
            StoreError::io(
                format!("cannot rename {} to {}", from.display(), to.display()),
                e,
            )
        })
    }

    /// Cuts a torn tail off and makes the new length durable; returns the handle for appends.
    pub fn truncate(
        &self,
        path: &Path,
        len: u64,
        stats: &mut LogStoreStats,
    ) -> Result<Box<dyn WritableFile>, StoreError> {
        let context = || format!("cannot truncate the torn tail of {}", path.display());
        let mut file = self
            .fs
            .open_write_at(path, len)
            .map_err(|e| StoreError::io(context(), e))?;
        file.set_len(len)
            .map_err(|e| StoreError::io(context(), e))?;
        if self.fsync {
            // sync_all: the size shrank, which is metadata.
            stats.data_syncs += 1;
            file.sync_all().map_err(|e| StoreError::io(context(), e))?;
        }
        Ok(file)
    }

    /// The file's length and its header (or why the header is unusable).
    pub fn read_header(
        &self,
        path: &Path,
    ) -> Result<(u64, Result<SegmentHeader, HeaderError>), StoreError> {
        let io_err = |e| StoreError::io(format!("cannot read {}", path.display()), e);
        let mut file = self.fs.open_read(path).map_err(io_err)?;
        let len = file.byte_len().map_err(io_err)?;
        if len < HEADER_LEN {
            let reason = format!("file is {len} bytes, shorter than a segment header");
            return Ok((len, Err(HeaderError::Invalid(reason))));
        }
        let mut bytes = [0u8; SEGMENT_HEADER_LEN];
        file.read_exact(&mut bytes).map_err(io_err)?;
        Ok((len, decode_header(&bytes)))
    }
}

/// Reads a segment's frames in order.
pub(crate) struct FrameReader {
    reader: BufReader<Box<dyn crate::fs::ReadableFile>>,
    path: PathBuf,
    pos: u64,
    len: u64,
}

impl FrameReader {
    /// Opens `path` positioned at its first frame (just after the header).
    pub fn open(disk: &Disk, path: &Path) -> Result<FrameReader, StoreError> {
        let io_err = |e| StoreError::io(format!("cannot read {}", path.display()), e);
        let mut file = disk.fs.open_read(path).map_err(io_err)?;
        let len = file.byte_len().map_err(io_err)?;
        let mut frames = FrameReader {
            reader: BufReader::with_capacity(256 << 10, file),
            path: path.to_path_buf(),
            pos: 0,
            len,
        };
        frames.seek(HEADER_LEN.min(len))?;
        Ok(frames)
    }

    fn io_err(&self, e: std::io::Error) -> StoreError {
        StoreError::io(format!("cannot read {}", self.path.display()), e)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn seek(&mut self, pos: u64) -> Result<(), StoreError> {
        self.reader
            .seek(SeekFrom::Start(pos))
            .map_err(|e| self.io_err(e))?;
        self.pos = pos;
        Ok(())
    }

    /// Reads the frame at the current position, its payload into `scratch`. `None` at the end
    /// of the file; `Some(Err(reason))` for a bad frame, leaving the position at its start.
    pub fn next(
        &mut self,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Result<(), String>>, StoreError> {
        if self.pos >= self.len {
            return Ok(None);
        }
        let remaining = self.len - self.pos;
        if remaining < FRAME_LEN {
            let reason = format!("{remaining} bytes left, too few for a frame header");
            return Ok(Some(Err(reason)));
        }
        let mut head = [0u8; FRAME_HEADER_LEN];
        self.reader
            .read_exact(&mut head)
            .map_err(|e| self.io_err(e))?;
        let len_bytes = [head[0], head[1], head[2], head[3]];
        let len = u32::from_be_bytes(len_bytes);
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let bad = if u64::from(len) > remaining - FRAME_LEN {
            Some(format!(
                "frame of {len} bytes runs past the end of the file"
            ))
        } else {
            scratch.clear();
            scratch.resize(len as usize, 0);
            self.reader
                .read_exact(scratch)
                .map_err(|e| self.io_err(e))?;
            (frame_crc(len_bytes, scratch) != crc).then(|| "frame checksum mismatch".to_string())
        };
        match bad {
            Some(reason) => {
                self.seek(self.pos)?;
                Ok(Some(Err(reason)))
            }
            None => {
                self.pos += FRAME_LEN + u64::from(len);
                Ok(Some(Ok(())))
            }
        }
    }

    /// Whether every byte from `from` to the end of the file is zero: the unwritten rest of a
    /// preallocated segment. Reads in chunks, so a large tail costs no large buffer.
    pub fn rest_is_zero(&mut self, from: u64) -> Result<bool, StoreError> {
        self.seek(from)?;
        let mut chunk = vec![0u8; 1 << 20];
        let mut left = self.len.saturating_sub(from);
        let mut zero = true;
        while left > 0 && zero {
            let n = left.min(chunk.len() as u64) as usize;
            self.reader
                .read_exact(&mut chunk[..n])
                .map_err(|e| self.io_err(e))?;
            zero = chunk[..n].iter().all(|b| *b == 0);
            left -= n as u64;
        }
        self.seek(from)?;
        Ok(zero)
    }

    /// The bytes from `from` to the end of the file, at most [`RESYNC_WINDOW_BYTES`] of them,
    /// and whether that is all of them. Leaves the position at `from`.
    pub fn rest(&mut self, from: u64) -> Result<(Vec<u8>, bool), StoreError> {
        self.seek(from)?;
        let wanted = (self.len - from.min(self.len)).min(RESYNC_WINDOW_BYTES);
        let mut bytes = vec![0u8; wanted as usize];
        self.reader
            .read_exact(&mut bytes)
            .map_err(|e| self.io_err(e))?;
        self.seek(from)?;
        Ok((bytes, from + wanted >= self.len))
    }
}

/// Whether a checksum-valid frame starts somewhere after a bad one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resync {
    /// At this file offset.
    Found(u64),
    NotFound,
    /// Only part of the rest could be searched.
    Inconclusive,
}

/// Looks for a valid frame in `rest` (which starts with the bad frame, at file offset `base`)
/// at every offset after the first. `whole`: `rest` runs to the end of the file.
pub(crate) fn find_valid_frame(rest: &[u8], base: u64, whole: bool) -> Resync {
    let mut spent = 0u64;
    for at in 1..rest.len() {
        let Some(head) = rest.get(at..at + FRAME_HEADER_LEN) else {
            break;
        };
        let len_bytes = [head[0], head[1], head[2], head[3]];
        let len = u32::from_be_bytes(len_bytes) as usize;
        let start = at + FRAME_HEADER_LEN;
        let Some(payload) = start.checked_add(len).and_then(|end| rest.get(start..end)) else {
            continue;
        };
        // Cheap plausibility first, so that garbage rarely costs a checksum.
        let plausible = match payload.first() {
            Some(&KIND_BATCH) => len >= 5,
            Some(&KIND_CHECKPOINT_END | &KIND_SEAL) => len == 9,
            _ => false,
        };
        if !plausible {
            continue;
        }
        spent += len as u64;
        if spent > RESYNC_BUDGET_BYTES {
            return Resync::Inconclusive;
        }
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if frame_crc(len_bytes, payload) == crc {
            return Resync::Found(base + at as u64);
        }
    }
    if whole {
        Resync::NotFound
    } else {
        Resync::Inconclusive
    }
}

/// What a bad frame in the newest segment is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// The last write, cut short by a crash: never acknowledged, safe to cut off.
    Torn,
    /// Damage to data that may have been acknowledged; the reason says why it is not torn.
    Damaged(String),
}

/// Decides whether the bad frame at the start of `rest` (file offset `base`) is a torn tail:
/// its length runs past the end of the file, or it is the last thing in the file, or only zero
/// bytes follow it — and no valid frame follows it anywhere.
pub(crate) fn classify_tail(rest: &[u8], base: u64, whole: bool) -> Tail {
    match find_valid_frame(rest, base, whole) {
        Resync::Found(at) => {
            return Tail::Damaged(format!(
                "a valid frame follows at byte offset {at}, so this is damage, not a torn write"
            ));
        }
        Resync::Inconclusive => {
            return Tail::Damaged(
                "the rest of the file is too large to check for valid frames".into(),
            );
        }
        Resync::NotFound => {}
    }
    let Some(head) = rest.get(..FRAME_HEADER_LEN) else {
        return Tail::Torn;
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let claimed_end = FRAME_HEADER_LEN.saturating_add(len);
    match rest.get(claimed_end..) {
        None | Some([]) => Tail::Torn,
        Some(after) if after.iter().all(|b| *b == 0) => Tail::Torn,
        Some(after) => Tail::Damaged(format!(
            "{} bytes that are not all zero follow it, so it was not the last write",
            after.len()
        )),
    }
}

/// A checksum-valid frame, decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Payload {
    /// Its records were pushed onto the caller's vector.
    Batch,
    /// A checkpoint-end frame with the record count it claims.
    CheckpointEnd(u64),
    /// A seal frame with the sequence number of the segment it says follows.
    Seal(u64),
}

/// Decodes a frame's payload; batch records go to `records` (cleared first). Errors are plain
/// reasons; the caller adds file and offset.
pub(crate) fn decode_payload(payload: &[u8], records: &mut Vec<Record>) -> Result<Payload, String> {
    records.clear();
    let mut reader = Reader::new(payload);
    let decoded = match reader.u8()? {
        KIND_BATCH => {
            let count = reader.u32()?;
            for _ in 0..count {
                records.push(reader.record()?);
            }
            Payload::Batch
        }
        KIND_CHECKPOINT_END => Payload::CheckpointEnd(reader.u64()?),
        KIND_SEAL => Payload::Seal(reader.u64()?),
        other => return Err(format!("unknown frame kind {other}")),
    };
    if !reader.is_empty() {
        return Err("trailing bytes after the frame's records".into());
    }
    Ok(decoded)
}

/// Decodes one whole batch frame as built in memory (header, checksum, payload, nothing
/// after it), for the check that a batch reads back before it is written (debug builds).
#[cfg(any(debug_assertions, test))]
pub(crate) fn decode_batch_frame(frame: &[u8]) -> Result<Vec<Record>, String> {
    let (head, payload) = frame
        .split_at_checked(FRAME_HEADER_LEN)
        .ok_or("shorter than a frame header")?;
    let len_bytes = [head[0], head[1], head[2], head[3]];
    if u32::from_be_bytes(len_bytes) as usize != payload.len() {
        return Err("length field does not match the payload".into());
    }
    if frame_crc(len_bytes, payload) != u32::from_be_bytes([head[4], head[5], head[6], head[7]]) {
        return Err("frame checksum mismatch".into());
    }
    let mut records = Vec::new();
    match decode_payload(payload, &mut records)? {
        Payload::Batch => Ok(records),
        other => Err(format!("not a batch frame: {other:?}")),
    }
}

/// What [`write_checkpoint`] wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointWritten {
    pub records: u64,
    pub bytes: u64,
}

/// Writes `live` as checkpoint segment `seq`: into a temporary file, synced, then renamed to
/// the segment name and the directory synced. Until the rename the checkpoint does not exist
/// for recovery, so a crash at any point leaves either no checkpoint or a complete one. On
/// error the temporary file is removed (best effort; recovery deletes leftovers).
pub(crate) fn write_checkpoint(
    disk: &Disk,
    seq: u64,
    live: &mut dyn Iterator<Item = Record>,
    stats: &mut LogStoreStats,
) -> Result<CheckpointWritten, StoreError> {
    let temp = temp_checkpoint_path(&disk.dir, seq);
    let path = segment_path(&disk.dir, seq);
    let mut file = disk.create(&temp)?;
    stats.segments_created += 1;
    let written = match write_snapshot(disk, file.as_mut(), &temp, seq, live, stats) {
        Ok(written) => written,
        Err(e) => {
            drop(file);
            let _ = disk.fs.remove_file(&temp);
            return Err(e);
        }
    };
    drop(file);
    if let Err(e) = disk.rename(&temp, &path) {
        let _ = disk.fs.remove_file(&temp);
        return Err(e);
    }
    // If this fails the checkpoint may or may not survive a crash; both are consistent.
    disk.sync_dir(stats)?;
    info!(path = %path.display(), records = written.records, bytes = written.bytes, "checkpoint written");
    Ok(written)
}

fn write_snapshot(
    disk: &Disk,
    file: &mut dyn WritableFile,
    path: &Path,
    seq: u64,
    live: &mut dyn Iterator<Item = Record>,
    stats: &mut LogStoreStats,
) -> Result<CheckpointWritten, StoreError> {
    let mut buf = Vec::with_capacity(CHECKPOINT_CHUNK_BYTES + (64 << 10));
    buf.extend_from_slice(&encode_header(seq, FLAG_CHECKPOINT));
    let mut bytes = 0u64;
    let mut records = 0u64;
    let mut frame = BatchFrame::begin(&mut buf);
    for record in live {
        frame.push(&mut buf, &record)?;
        records += 1;
        if buf.len() >= CHECKPOINT_CHUNK_BYTES {
            frame.finish(&mut buf)?;
            disk.write(file, &buf, path, stats)?;
            bytes += buf.len() as u64;
            buf.clear();
            frame = BatchFrame::begin(&mut buf);
        }
    }
    if frame.count() > 0 {
        frame.finish(&mut buf)?;
    } else {
        frame.abandon(&mut buf);
    }
    push_checkpoint_end(&mut buf, records)?;
    disk.write(file, &buf, path, stats)?;
    bytes += buf.len() as u64;
    disk.sync_file(file, path, stats)?;
    Ok(CheckpointWritten { records, bytes })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;

    fn frame(records: &[Record]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut frame = BatchFrame::begin(&mut buf);
        for r in records {
            frame.push(&mut buf, r).unwrap();
        }
        frame.finish(&mut buf).unwrap();
        buf
    }

    fn some_frame(id: i64) -> Vec<u8> {
        frame(&[Record::IdReserve { next_free_id: id }])
    }

    #[test]
    fn a_cut_frame_is_torn() {
        let f = some_frame(7);
        for cut in 1..f.len() {
            let bad = &f[..cut];
            assert_eq!(classify_tail(bad, 100, true), Tail::Torn, "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_last_frame_followed_by_zeros_is_torn() {
        let mut bad = some_frame(7);
        bad[10] ^= 1;
        bad.extend_from_slice(&[0u8; 100]);
        assert_eq!(classify_tail(&bad, 0, true), Tail::Torn);
    }

    #[test]
    fn damage_followed_by_a_valid_frame_or_garbage_is_not_torn() {
        let mut bad = some_frame(7);
        bad[10] ^= 1;
        let mut with_frame = bad.clone();
        with_frame.extend_from_slice(&some_frame(8));
        assert!(matches!(
            classify_tail(&with_frame, 1000, true),
            Tail::Damaged(reason) if reason.contains(&format!("offset {}", 1000 + bad.len()))
        ));
        let mut with_garbage = bad;
        with_garbage.extend_from_slice(b"\x01garbage");
        assert!(matches!(
            classify_tail(&with_garbage, 0, true),
            Tail::Damaged(_)
        ));
    }

    #[test]
    fn a_damaged_length_is_caught_by_the_frames_behind_it() {
        let mut bytes = some_frame(7);
        bytes.extend_from_slice(&some_frame(8));
        // The length now runs past the end of the file, which alone looks torn.
        bytes[0] = 0x7f;
        assert!(matches!(classify_tail(&bytes, 0, true), Tail::Damaged(_)));
        assert_eq!(
            find_valid_frame(&bytes, 0, true),
            Resync::Found(some_frame(7).len() as u64)
        );
        assert_eq!(
            find_valid_frame(&bytes[..20], 0, false),
            Resync::Inconclusive
        );
    }

    /// The check the append path runs before every write: it accepts exactly an intact batch
    /// frame and names what is wrong with anything else.
    #[test]
    fn a_batch_frame_decodes_back_only_when_intact() {
        let records = [
            Record::IdReserve { next_free_id: 7 },
            Record::GlobalRemove {
                transaction_id: ferrata_core::TransactionId(9),
            },
        ];
        let good = frame(&records);
        assert_eq!(decode_batch_frame(&good).unwrap(), records);
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            decode_batch_frame(&flipped).unwrap_err(),
            "frame checksum mismatch"
        );
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode_batch_frame(&longer).is_err());
        assert!(decode_batch_frame(&good[..5]).is_err());
        let mut seal = Vec::new();
        crate::format::push_seal(&mut seal, 3).unwrap();
        assert!(
            decode_batch_frame(&seal)
                .unwrap_err()
                .contains("not a batch")
        );
    }
}
