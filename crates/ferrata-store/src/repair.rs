//! Repair of a damaged store directory (`ferrata-server --repair`): keep every intact frame,
//! write the state they describe as a fresh checkpoint, move the old files aside (never delete
//! them) and report exactly what was dropped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ferrata_core::{Record, SessionTable};
use tracing::{info, warn};

use crate::format::{FORMAT_VERSION, HeaderError, SegmentHeader};
use crate::fs::{FileSystem, OsFileSystem};
use crate::segment::{
    Disk, FrameReader, HEADER_LEN, Payload, Resync, decode_payload, find_valid_frame,
    write_checkpoint,
};
use crate::{LogStore, LogStoreConfig, LogStoreStats, StoreError};

/// Bytes that repair could not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedBytes {
    /// The file as it was named before repair moved it aside.
    pub path: PathBuf,
    /// Byte offset in that file.
    pub offset: u64,
    pub bytes: u64,
    /// Why they could not be kept.
    pub reason: String,
}

/// What [`LogStore::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Damaged ranges whose records are lost, in log order. A torn last batch (never
    /// acknowledged) shows up here too when the directory needed repair for other reasons.
    pub dropped: Vec<DroppedBytes>,
    /// Where the old files went (`damaged-<unix-ms>/` in the store directory); `None` when the
    /// directory opened without repair and nothing was changed.
    pub moved_to: Option<PathBuf>,
    /// The old files at their new paths.
    pub moved_files: Vec<PathBuf>,
    /// Transactions in the store after repair.
    pub transactions: usize,
    /// Why `open` refused the directory, when it did.
    pub open_error: Option<String>,
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(moved_to) = &self.moved_to else {
            return write!(
                f,
                "the store opened without repair ({} transactions); nothing was changed",
                self.transactions
            );
        };
        if let Some(error) = &self.open_error {
            writeln!(f, "the store did not open: {error}")?;
        }
        write!(
            f,
            "repaired: {} transactions kept; {} damaged range(s) dropped",
            self.transactions,
            self.dropped.len()
        )?;
        for d in &self.dropped {
            write!(
                f,
                "\n  dropped {} bytes of {} at byte offset {}: {}",
                d.bytes,
                d.path.display(),
                d.offset,
                d.reason
            )?;
        }
        write!(
            f,
            "\n{} old file(s) moved to {}",
            self.moved_files.len(),
            moved_to.display()
        )
    }
}

/// A segment file as repair found it.
struct Found {
    seq: u64,
    path: PathBuf,
    len: u64,
    header: Result<SegmentHeader, HeaderError>,
}

impl LogStore {
    /// Repairs the store directory on the real file system; see [`LogStore::repair_with`].
    pub fn repair(config: LogStoreConfig) -> Result<RepairReport, StoreError> {
        LogStore::repair_with(config, Arc::new(OsFileSystem))
    }

    /// Makes a directory that `open` refuses as [`StoreError::Corrupt`] open again, losing as
    /// little as possible: every frame whose checksum holds is kept, damaged ranges are skipped
    /// and reported, the resulting state is written as a new checkpoint, and every old segment
    /// is moved into `damaged-<unix-ms>/` inside the directory. A directory that opens as it
    /// is is left alone (beyond what `open` itself does). Takes the directory lock, so the
    /// server must be stopped.
    pub fn repair_with(
        config: LogStoreConfig,
        fs: Arc<dyn FileSystem>,
    ) -> Result<RepairReport, StoreError> {
        match LogStore::open_with(config.clone(), fs.clone()) {
            Ok((store, table)) => {
                drop(store);
                Ok(RepairReport {
                    transactions: table.len(),
                    ..RepairReport::default()
                })
            }
            Err(error @ StoreError::Corrupt { .. }) => {
                warn!(error = %error, "store is damaged; salvaging what is intact");
                let mut report = salvage(config, fs)?;
                report.open_error = Some(error.to_string());
                Ok(report)
            }
            Err(other) => Err(other),
        }
    }
}

fn salvage(config: LogStoreConfig, fs: Arc<dyn FileSystem>) -> Result<RepairReport, StoreError> {
    let disk = Disk {
        fs,
        dir: config.dir.clone(),
        fsync: config.fsync,
    };
    let mut stats = LogStoreStats::default();
    let _lock = disk.prepare_dir(&mut stats)?;
    let listing = disk.list()?;
    for (_, temp) in &listing.temps {
        // Checkpoints whose writing never finished hold nothing that is not elsewhere.
        disk.remove(temp)?;
    }
    let mut found = Vec::with_capacity(listing.segments.len());
    for (seq, path) in &listing.segments {
        let (len, header) = disk.read_header(path)?;
        if let Err(HeaderError::Version(found)) = header {
            // A newer Ferrata wrote this; rewriting it in this version's format could lose
            // what this version does not understand.
            return Err(StoreError::UnsupportedVersion {
                path: path.clone(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        found.push(Found {
            seq: *seq,
            path: path.clone(),
            len,
            header,
        });
    }

    let mut scratch = Vec::new();
    let mut records = Vec::new();
    // Start at the newest checkpoint whose snapshot is intact: older segments are superseded.
    // Without one, replay everything: a damaged checkpoint's surviving frames then apply on
    // top of the history before it, which they agree with.
    let mut start = 0;
    for (i, segment) in found.iter().enumerate().rev() {
        if segment.header.as_ref().is_ok_and(|h| h.is_checkpoint()) {
            let mut probe_table = SessionTable::new();
            let mut probe_dropped = Vec::new();
            let probe = salvage_segment(
                &disk,
                segment,
                &mut probe_table,
                &mut probe_dropped,
                &mut scratch,
                &mut records,
            )?;
            if probe.intact_snapshot {
                start = i;
                break;
            }
        }
    }
    let mut table = SessionTable::new();
    let mut dropped = Vec::new();
    let mut previous: Option<(&Found, Salvaged)> = None;
    for segment in &found[start..] {
        if previous.is_none()
            && segment.seq != 1
            && !segment.header.as_ref().is_ok_and(|h| h.is_checkpoint())
        {
            dropped.push(DroppedBytes {
                path: segment.path.clone(),
                offset: 0,
                bytes: 0,
                reason: format!("segments 1 to {} are missing", segment.seq - 1),
            });
        }
        let salvaged = salvage_segment(
            &disk,
            segment,
            &mut table,
            &mut dropped,
            &mut scratch,
            &mut records,
        )?;
        if let Some((before, done)) = &previous
            && let Some(reason) = missing_between(before, done, segment.seq)
        {
            dropped.push(DroppedBytes {
                path: before.path.clone(),
                offset: before.len,
                bytes: 0,
                reason,
            });
        }
        previous = Some((segment, salvaged));
    }

    let next_seq = listing.segments.last().map_or(0, |(seq, _)| *seq) + 1;
    let moved_to = damaged_dir(&config.dir);
    disk.fs.create_dir_all(&moved_to).map_err(|e| {
        StoreError::io(format!("cannot create directory {}", moved_to.display()), e)
    })?;
    disk.sync_dir(&mut stats)?;
    // The commit point: once the checkpoint is renamed into place, it is what `open` uses,
    // and the old segments are superseded by it.
    write_checkpoint(&disk, next_seq, &mut table.snapshot_records(), &mut stats)?;

    let mut moved_files = Vec::with_capacity(listing.segments.len());
    for (_, path) in &listing.segments {
        let Some(name) = path.file_name() else {
            continue;
        };
        let to = moved_to.join(name);
        disk.rename(path, &to)
            .map_err(|e| not_moved(&config.dir, next_seq, e))?;
        moved_files.push(to);
    }
    disk.sync_other_dir(&moved_to, &mut stats)
        .and_then(|()| disk.sync_dir(&mut stats))
        .map_err(|e| not_moved(&config.dir, next_seq, e))?;
    let report = RepairReport {
        dropped,
        moved_to: Some(moved_to),
        moved_files,
        transactions: table.len(),
        open_error: None,
    };
    info!(report = %report, "store repaired");
    Ok(report)
}

/// The repaired log is in place but the old files could not all be moved aside; the next
/// `open` deletes superseded segments, so say so.
fn not_moved(dir: &Path, checkpoint: u64, error: StoreError) -> StoreError {
    StoreError::io(
        format!(
            "the repaired log (checkpoint {checkpoint}) is in place in {}, but moving the old \
             segments aside failed ({error}); copy every segment numbered below {checkpoint} \
             elsewhere before starting the server, which deletes them",
            dir.display()
        ),
        std::io::Error::other("old segments not moved"),
    )
}

fn damaged_dir(dir: &Path) -> PathBuf {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    dir.join(format!("damaged-{ms}"))
}

/// How a salvaged segment ended.
#[derive(Debug, Default)]
struct Salvaged {
    /// A checkpoint whose snapshot part (up to its end frame) is intact.
    intact_snapshot: bool,
    /// The segment its seal names.
    sealed: Option<u64>,
    /// A version-2 (or later) segment, which must end with a seal unless it is a checkpoint
    /// that ends with its end frame.
    must_lead_on: bool,
    /// A checkpoint whose last frame is its end frame.
    ends_with_checkpoint_end: bool,
    seq: u64,
}

/// What is missing between a salvaged segment and the next one present, if anything.
fn missing_between(before: &Found, done: &Salvaged, next_seq: u64) -> Option<String> {
    if !done.must_lead_on {
        return None;
    }
    match done.sealed {
        Some(named) if named == next_seq => None,
        Some(named) => Some(format!(
            "its end frame names segment {named} as the next, but the next present is \
             {next_seq}: segments are missing"
        )),
        None if done.ends_with_checkpoint_end && next_seq == done.seq + 1 => None,
        None => Some(format!(
            "{} ends without its end frame although newer segments exist: its tail is missing",
            before.path.display()
        )),
    }
}

/// Applies every intact frame of a segment to `table` and records what it skips.
fn salvage_segment(
    disk: &Disk,
    segment: &Found,
    table: &mut SessionTable,
    dropped: &mut Vec<DroppedBytes>,
    scratch: &mut Vec<u8>,
    records: &mut Vec<Record>,
) -> Result<Salvaged, StoreError> {
    let path = &segment.path;
    let mut drop_range = |offset: u64, bytes: u64, reason: String| {
        dropped.push(DroppedBytes {
            path: path.clone(),
            offset,
            bytes,
            reason,
        });
    };
    let mut salvaged = Salvaged {
        seq: segment.seq,
        must_lead_on: segment.header.as_ref().is_ok_and(|h| h.version >= 2),
        ..Salvaged::default()
    };
    let is_checkpoint = match &segment.header {
        Ok(header) => header.is_checkpoint(),
        Err(e) => {
            // The frames after a damaged header may well be intact.
            let reason = match e {
                HeaderError::Invalid(reason) => reason.clone(),
                HeaderError::Version(v) => format!("format version {v}"),
            };
            drop_range(
                0,
                segment.len.min(HEADER_LEN),
                format!("segment header: {reason}"),
            );
            false
        }
    };
    if segment.len <= HEADER_LEN {
        return Ok(salvaged);
    }
    let mut frames = FrameReader::open(disk, path)?;
    let mut intact = is_checkpoint;
    let mut end_seen = false;
    let mut snapshot_records = 0u64;
    loop {
        let pos = frames.pos();
        match frames.next(scratch)? {
            None => break,
            Some(Ok(())) => match decode_payload(scratch, records) {
                Ok(Payload::Batch) => {
                    for record in records.iter() {
                        table.apply(record);
                    }
                    if !end_seen {
                        snapshot_records += records.len() as u64;
                    }
                }
                Ok(Payload::CheckpointEnd(expected)) => {
                    if is_checkpoint && !end_seen {
                        end_seen = true;
                        intact &= expected == snapshot_records;
                        salvaged.ends_with_checkpoint_end = frames.pos() == frames.len();
                    }
                }
                Ok(Payload::Seal(next)) => salvaged.sealed = Some(next),
                Err(reason) => {
                    intact &= end_seen;
                    drop_range(pos, frames.pos() - pos, reason);
                }
            },
            Some(Err(_)) if frames.rest_is_zero(pos)? => {
                // The unwritten end of a preallocated segment: nothing was lost there.
                break;
            }
            Some(Err(reason)) => {
                intact &= end_seen;
                let (rest, whole) = frames.rest(pos)?;
                match find_valid_frame(&rest, pos, whole) {
                    Resync::Found(at) => {
                        drop_range(pos, at - pos, reason);
                        frames.seek(at)?;
                    }
                    Resync::NotFound | Resync::Inconclusive => {
                        drop_range(pos, frames.len() - pos, reason);
                        break;
                    }
                }
            }
        }
    }
    salvaged.intact_snapshot = intact && end_seen;
    Ok(salvaged)
}
