//! Crash recovery of the log at open: replay from the newest checkpoint, and repair only what a
//! crash can leave behind. The rules are in docs/RELIABILITY.md, "Recovery rules".

use std::path::PathBuf;

use ferrata_core::{Record, SessionTable};
use tracing::{info, warn};

use crate::format::{FORMAT_VERSION, HeaderError, SegmentHeader};
use crate::fs::WritableFile;
use crate::segment::{Disk, FrameReader, HEADER_LEN, Payload, Tail, classify_tail, decode_payload};
use crate::{LogStoreStats, StoreError};

/// What recovery found.
pub(crate) struct Recovered {
    pub table: SessionTable,
    /// The newest segment, where appends continue; `None` in an empty directory.
    pub active: Option<ActiveSegment>,
    /// Batch bytes logged since the newest checkpoint.
    pub bytes_since_compaction: u64,
}

pub(crate) struct ActiveSegment {
    pub seq: u64,
    pub path: PathBuf,
    /// Format version of its header (version-1 segments are never sealed).
    pub version: u16,
    /// End of its last good frame.
    pub len: u64,
    /// Whether zeros follow the last good frame: the segment was preallocated.
    pub preallocated: bool,
    /// Already open, when recovery had to truncate it.
    pub file: Option<Box<dyn WritableFile>>,
    /// The segment its seal names, when it was sealed but the next one was never created.
    pub sealed_next: Option<u64>,
}

/// A segment whose header was verified.
struct Segment {
    seq: u64,
    path: PathBuf,
    header: SegmentHeader,
}

/// What replaying one segment found.
struct Scan {
    /// End of the last good frame.
    valid_len: u64,
    /// Why the frame at `valid_len` is bad, if one is.
    bad: Option<String>,
    /// Offset just past the checkpoint-end frame, when the segment has one.
    checkpoint_end: Option<u64>,
    /// The seal frame's offset and the segment it names, when the segment has one.
    sealed: Option<(u64, u64)>,
}

fn corrupt(path: &std::path::Path, offset: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

pub(crate) fn recover(disk: &Disk, stats: &mut LogStoreStats) -> Result<Recovered, StoreError> {
    let listing = disk.list()?;
    if !listing.temps.is_empty() {
        for (_, path) in &listing.temps {
            info!(path = %path.display(), "deleting a checkpoint whose writing never finished");
            disk.remove(path)?;
        }
        disk.sync_dir(stats)?;
    }
    let mut files = listing.segments;
    let mut scratch = Vec::new();
    let mut records = Vec::new();

    'recover: loop {
        // Headers newest first, down to the newest checkpoint: older segments are superseded
        // and never read (they are deleted below), so damage in them cannot stop a start.
        let mut needed = Vec::new();
        let mut start = 0;
        for i in (0..files.len()).rev() {
            let (seq, path) = &files[i];
            let (len, header) = disk.read_header(path)?;
            let header = match header {
                Ok(header) => header,
                Err(HeaderError::Version(found)) => {
                    return Err(StoreError::UnsupportedVersion {
                        path: path.clone(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                Err(HeaderError::Invalid(reason)) => {
                    let newest = i + 1 == files.len();
                    if newest
                        && (len <= HEADER_LEN
                            || FrameReader::open(disk, path)?.rest_is_zero(HEADER_LEN)?)
                    {
                        // Segment creation (or the renaming of a preallocated file into place)
                        // was interrupted before its header was durable; nothing in it was
                        // ever acknowledged.
                        warn!(path = %path.display(), reason = %reason, "deleting a segment whose creation was interrupted");
                        disk.remove(path)?;
                        disk.sync_dir(stats)?;
                        files.pop();
                        continue 'recover;
                    }
                    return Err(corrupt(path, 0, reason));
                }
            };
            if header.sequence != *seq {
                return Err(corrupt(
                    path,
                    12,
                    format!(
                        "header says segment {} but the file name says {seq}; was the file renamed?",
                        header.sequence
                    ),
                ));
            }
            needed.push(Segment {
                seq: *seq,
                path: path.clone(),
                header,
            });
            if header.is_checkpoint() {
                start = i;
                break;
            }
        }
        needed.reverse();
        if let Some(oldest) = needed.first()
            && !oldest.header.is_checkpoint()
            && oldest.seq != 1
        {
            // Segments are only ever deleted once a checkpoint supersedes them.
            return Err(corrupt(
                &oldest.path,
                0,
                format!(
                    "the oldest segment is {}, but with no checkpoint the log starts at \
                     segment 1: older segments are missing",
                    oldest.seq
                ),
            ));
        }

        let mut table = SessionTable::new();
        let mut since = 0;
        let mut active = None;
        let count = needed.len();
        for (k, segment) in needed.iter().enumerate() {
            let is_last = k + 1 == count;
            let path = &segment.path;
            let mut frames = FrameReader::open(disk, path)?;
            let scan = replay(&mut frames, segment, &mut table, &mut scratch, &mut records)?;
            let mut torn = None;
            if let Some(reason) = scan.bad.clone() {
                let pos = scan.valid_len;
                if !is_last {
                    return Err(corrupt(path, pos, reason));
                }
                let (rest, whole) = frames.rest(pos)?;
                match classify_tail(&rest, pos, whole) {
                    Tail::Torn => torn = Some(reason),
                    Tail::Damaged(why) => {
                        return Err(corrupt(path, pos, format!("{reason}; {why}")));
                    }
                }
            }
            if segment.header.is_checkpoint() && scan.checkpoint_end.is_none() {
                if is_last && start > 0 {
                    // Only format-1 writers wrote checkpoints in place, so only they leave one
                    // unfinished; the segments it was to replace are still there.
                    warn!(path = %path.display(), "discarding an unfinished checkpoint (compaction was interrupted); recovering from the older segments");
                    disk.remove(path)?;
                    disk.sync_dir(stats)?;
                    files.pop();
                    continue 'recover;
                }
                let reason = if is_last {
                    "checkpoint has no end frame, yet the segments it replaces are gone, so it \
                     was complete once"
                } else {
                    "checkpoint segment has no end frame, yet newer segments exist"
                };
                return Err(corrupt(path, scan.valid_len, reason));
            }
            let mut file = None;
            if let Some(reason) = torn {
                warn!(
                    path = %path.display(),
                    offset = scan.valid_len,
                    reason = %reason,
                    "truncating a torn tail: the last batch was never acknowledged"
                );
                file = Some(disk.truncate(path, scan.valid_len, stats)?);
            }
            if let Some(next) = needed.get(k + 1) {
                check_successor(segment, &scan, next.seq)?;
            }
            since += scan.valid_len - scan.checkpoint_end.unwrap_or(HEADER_LEN);
            if is_last {
                active = Some(ActiveSegment {
                    seq: segment.seq,
                    path: path.clone(),
                    version: segment.header.version,
                    len: scan.valid_len,
                    preallocated: file.is_none() && frames.len() > scan.valid_len,
                    file,
                    sealed_next: scan.sealed.map(|(_, next)| next),
                });
            }
        }

        if start > 0 {
            for (_, old) in &files[..start] {
                info!(path = %old.display(), "deleting a segment superseded by a checkpoint");
                disk.remove(old)?;
            }
            disk.sync_dir(stats)?;
        }
        return Ok(Recovered {
            table,
            active,
            bytes_since_compaction: since,
        });
    }
}

/// A segment that appends moved on from must be complete, and must lead to the segment that
/// follows it: sealed, naming that segment, or (a checkpoint written whole, by rename) ending
/// with its end frame and followed by the next number. Version-1 segments were never sealed.
fn check_successor(segment: &Segment, scan: &Scan, next_seq: u64) -> Result<(), StoreError> {
    if segment.header.version < 2 {
        return Ok(());
    }
    let path = &segment.path;
    match scan.sealed {
        Some((_, named)) if named == next_seq => Ok(()),
        Some((at, named)) => Err(corrupt(
            path,
            at,
            format!(
                "the segment's end frame says segment {named} follows, but the next one present \
                 is {next_seq}: segments are missing"
            ),
        )),
        None if segment.header.is_checkpoint() && scan.checkpoint_end == Some(scan.valid_len) => {
            if next_seq == segment.seq + 1 {
                Ok(())
            } else {
                Err(corrupt(
                    path,
                    scan.valid_len,
                    format!(
                        "the checkpoint is followed by segment {next_seq} instead of {}: \
                         segments are missing",
                        segment.seq + 1
                    ),
                ))
            }
        }
        None => Err(corrupt(
            path,
            scan.valid_len,
            "the segment ends without its end frame although newer segments exist: its tail \
             was lost",
        )),
    }
}

/// Replays one segment's frames into `table`, up to its end or its first bad frame.
fn replay(
    frames: &mut FrameReader,
    segment: &Segment,
    table: &mut SessionTable,
    scratch: &mut Vec<u8>,
    records: &mut Vec<Record>,
) -> Result<Scan, StoreError> {
    let path = &segment.path;
    let is_checkpoint = segment.header.is_checkpoint();
    let mut checkpoint_end = None;
    let mut sealed = None;
    let mut snapshot_records = 0u64;
    loop {
        let pos = frames.pos();
        let bad = match frames.next(scratch)? {
            None => None,
            Some(Err(reason)) => Some(reason),
            Some(Ok(())) => {
                if sealed.is_some() {
                    // Nothing is ever written after a seal.
                    return Err(corrupt(
                        path,
                        pos,
                        "a frame follows the segment's end frame",
                    ));
                }
                // The checksum matched, so this is what was written: failing to decode it is
                // damage (or a bug), never a torn write.
                let payload =
                    decode_payload(scratch, records).map_err(|r| corrupt(path, pos, r))?;
                match payload {
                    Payload::Batch => {
                        for record in records.iter() {
                            table.apply(record);
                        }
                        if checkpoint_end.is_none() {
                            snapshot_records += records.len() as u64;
                        }
                    }
                    Payload::CheckpointEnd(expected) => {
                        if !is_checkpoint || checkpoint_end.is_some() {
                            return Err(corrupt(path, pos, "unexpected checkpoint-end frame"));
                        }
                        if expected != snapshot_records {
                            return Err(corrupt(
                                path,
                                pos,
                                format!(
                                    "checkpoint says {expected} records but {snapshot_records} \
                                     precede it"
                                ),
                            ));
                        }
                        checkpoint_end = Some(frames.pos());
                    }
                    Payload::Seal(next) => {
                        if segment.header.version < 2 || next <= segment.seq {
                            return Err(corrupt(path, pos, "unexpected segment end frame"));
                        }
                        sealed = Some((pos, next));
                    }
                }
                continue;
            }
        };
        // Zeros to the end of the file are the unwritten rest of a preallocated segment:
        // nothing was written there, so the log simply ends here.
        let bad = match bad {
            Some(_) if frames.rest_is_zero(pos)? => None,
            bad => bad,
        };
        if bad.is_some() && sealed.is_some() {
            return Err(corrupt(
                path,
                pos,
                "damaged bytes follow the segment's end frame",
            ));
        }
        return Ok(Scan {
            valid_len: pos,
            bad,
            checkpoint_end,
            sealed,
        });
    }
}
