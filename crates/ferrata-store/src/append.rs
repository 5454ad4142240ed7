//! The append path of the [`LogStore`]: one batch frame per group commit, written and synced
//! with one call each, and the rotation to a new segment (seal, create, header, directory sync).

use std::path::Path;

use ferrata_core::Record;
use tracing::warn;

use crate::format::{BatchFrame, FORMAT_VERSION, push_seal};
use crate::recovery::ActiveSegment;
use crate::segment::{Disk, HEADER_LEN, segment_path};
use crate::{LogStore, LogStoreStats, StoreError};

/// An exceptional huge batch should not pin its buffer for the life of the process.
const MAX_RETAINED_BUFFER: usize = 16 << 20;
/// What the append buffer starts with, and shrinks back to.
pub(crate) const APPEND_BUFFER_BYTES: usize = 64 << 10;

/// Creates segment 1 in an empty directory, ready for appends.
pub(crate) fn first_segment(
    disk: &Disk,
    stats: &mut LogStoreStats,
) -> Result<ActiveSegment, StoreError> {
    let path = segment_path(&disk.dir, 1);
    let mut file = disk.create(&path)?;
    stats.segments_created += 1;
    if let Err(e) = disk.init_segment(file.as_mut(), &path, 1, stats) {
        // Best effort: a header-less newest file is discarded by the next open anyway.
        drop(file);
        let _ = disk.fs.remove_file(&path);
        return Err(e);
    }
    Ok(ActiveSegment {
        seq: 1,
        path,
        version: FORMAT_VERSION,
        len: HEADER_LEN,
        preallocated: false,
        file: Some(file),
        sealed_next: None,
    })
}

impl LogStore {
    /// Rotates first when the active segment is full or sealed, so that a batch about to be
    /// written finds room. A failure to create the new segment leaves the store usable.
    pub(crate) fn prepare_append(&mut self) -> Result<(), StoreError> {
        self.check_poisoned()?;
        let leave_growing_segment = !self.active_preallocated && self.spare.poll_ready();
        if self.sealed_next.is_some()
            || self.active_len > self.config.segment_bytes
            || leave_growing_segment
        {
            self.rotate(self.active_seq + 1)?;
        }
        Ok(())
    }

    /// Encodes `records` as one batch frame and makes it durable; call [`Self::prepare_append`]
    /// first. Any failure poisons the store: the caller's index already holds the records.
    pub(crate) fn write_batch(&mut self, records: &[&Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let result = self.encode_and_write(records);
        if let Err(error) = &result
            && self.poisoned.is_none()
        {
            self.poison(error);
        }
        result
    }

    fn encode_and_write(&mut self, records: &[&Record]) -> Result<(), StoreError> {
        self.buf.clear();
        let mut frame = BatchFrame::begin(&mut self.buf);
        for record in records {
            frame.push(&mut self.buf, record)?;
        }
        frame.finish(&mut self.buf)?;
        // What recovery will read back must be what was asked to be made durable: an encoder
        // bug caught here, in tests, rather than at the next start.
        #[cfg(debug_assertions)]
        {
            let expected: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
            debug_assert_eq!(
                crate::segment::decode_batch_frame(&self.buf).as_deref(),
                Ok(expected.as_slice()),
                "a batch frame must decode back to the records it was built from"
            );
        }
        self.write_buf_durably()?;
        self.stats.appends += 1;
        self.shrink_buf();
        Ok(())
    }

    /// Moves appends on to segment `next`: seals the active segment naming `next` (unless it is
    /// sealed already, naming another, or a version-1 segment), then creates `next`. A failed
    /// seal leaves the active segment's tail unknown and poisons the store; a failed creation
    /// leaves the sealed segment as it is, and the next append or compaction tries again.
    pub(crate) fn rotate(&mut self, next: u64) -> Result<(), StoreError> {
        let next = match self.sealed_next {
            Some(named) => named,
            None => {
                if self.active_version >= 2 {
                    self.seal(next)?;
                }
                self.trim_preallocated_tail();
                next
            }
        };
        self.switch_to_new_segment(next)
    }

    fn seal(&mut self, next: u64) -> Result<(), StoreError> {
        self.buf.clear();
        push_seal(&mut self.buf, next)?;
        self.write_buf_durably()?;
        self.sealed_next = Some(next);
        Ok(())
    }

    /// Writes `buf` at the end of the active segment and syncs it. From the write on, a failure
    /// leaves the file tail unknown: appending after it could put acknowledged batches behind
    /// garbage, so the store is poisoned instead.
    fn write_buf_durably(&mut self) -> Result<(), StoreError> {
        let path = segment_path(&self.disk.dir, self.active_seq);
        let mut result = self
            .disk
            .write(self.active.as_mut(), &self.buf, &path, &mut self.stats);
        if result.is_ok() {
            result = self
                .disk
                .sync_file(self.active.as_mut(), &path, &mut self.stats);
        }
        if let Err(e) = result {
            self.poison(&e);
            return Err(e);
        }
        let n = self.buf.len() as u64;
        self.active_len += n;
        self.stats.bytes_since_compaction += n;
        Ok(())
    }

    /// Gives the unused zeros of a preallocated segment that appends moved on from back to
    /// the file system. Not synced: a crash before the size change is durable leaves zeros
    /// after the seal, which recovery reads as the end of the segment.
    fn trim_preallocated_tail(&mut self) {
        if !self.active_preallocated {
            return;
        }
        if let Err(e) = self.active.set_len(self.active_len) {
            warn!(error = %e, segment = self.active_seq, "cannot trim the unused end of a preallocated segment");
        }
    }

    /// Makes `seq` the segment appends go to, made from the spare when one is ready. On
    /// failure the current segment stays active, intact, and the half-made file is removed.
    fn switch_to_new_segment(&mut self, seq: u64) -> Result<(), StoreError> {
        let path = segment_path(&self.disk.dir, seq);
        // If even creating fails there is nothing to undo (and the name may not be ours).
        let mut file = self.disk.create(&path)?;
        self.stats.segments_created += 1;
        let spare = self.spare.take();
        let preallocated = spare.is_some();
        if let Some(spare) = spare {
            // The name is ours now; the spare replaces the empty file under it.
            drop(file);
            let renamed = self
                .disk
                .rename(&spare, &path)
                .and_then(|()| self.disk.open_write_at(&path, 0));
            file = match renamed {
                Ok(file) => file,
                Err(e) => {
                    self.discard_partial(&path);
                    return Err(e);
                }
            };
        }
        if let Err(e) = self
            .disk
            .init_segment(file.as_mut(), &path, seq, &mut self.stats)
        {
            drop(file);
            self.discard_partial(&path);
            return Err(e);
        }
        self.active = file;
        self.active_seq = seq;
        self.active_len = HEADER_LEN;
        self.active_version = FORMAT_VERSION;
        self.sealed_next = None;
        self.stats.active_segment = seq;
        self.active_preallocated = preallocated;
        self.spare.replenish(&self.disk);
        Ok(())
    }

    /// Removes a segment whose creation failed, so that neither the next attempt nor recovery
    /// trips over it; if even that fails, the next rotation would collide with it, so nothing
    /// more may be written.
    fn discard_partial(&mut self, path: &Path) {
        match self.disk.fs.remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let error = StoreError::io(
                    format!("cannot remove unfinished segment {}", path.display()),
                    e,
                );
                self.poison(&error);
            }
        }
    }

    fn shrink_buf(&mut self) {
        if self.buf.capacity() > MAX_RETAINED_BUFFER {
            self.buf = Vec::with_capacity(APPEND_BUFFER_BYTES);
        }
    }
}
