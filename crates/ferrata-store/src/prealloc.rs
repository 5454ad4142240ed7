//! Preallocated segments: the next segment is prepared ahead as a zero-filled, synced spare
//! file, so that each group commit's `fdatasync` writes data only — no file-size change and so
//! no file-system journal commit. On ext4 that makes the sync about 2.4× faster.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use tracing::warn;

use crate::StoreError;
use crate::segment::Disk;

/// Name of the spare file inside the store directory. Not a segment name, so recovery never
/// reads it; a leftover one is deleted when the store opens.
pub const SPARE_FILE_NAME: &str = "next-segment.spare";
/// Zeros are written in chunks of this size, so preparing costs no large buffer.
const ZERO_CHUNK_BYTES: usize = 1 << 20;
/// In the background, each chunk is synced and followed by this pause, so the spare never puts
/// more than one chunk in front of the log's own syncs in the disk's queue.
const BACKGROUND_CHUNK_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Whether and how new segments are preallocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preallocation {
    /// Segments grow with every append (each sync also commits the new file size).
    #[default]
    Off,
    /// The spare is prepared on a background thread; a rotation that finds it unfinished
    /// creates a growing segment instead of waiting.
    Background,
    /// The spare is prepared on the calling thread, when the store opens and after each
    /// rotation: deterministic, for tests.
    Inline,
}

/// The spare file and the work preparing it.
#[derive(Debug)]
pub(crate) struct Spare {
    mode: Preallocation,
    path: PathBuf,
    bytes: u64,
    state: SpareState,
}

#[derive(Debug)]
enum SpareState {
    Missing,
    Preparing(JoinHandle<Result<(), StoreError>>),
    Ready,
    /// Preparing failed (logged); tried again at the next rotation.
    Failed,
}

impl Spare {
    /// Starts preparing a spare of `bytes` (a segment's size) in `disk`'s directory.
    pub fn new(disk: &Disk, mode: Preallocation, bytes: u64) -> Spare {
        let mut spare = Spare {
            mode,
            path: disk.dir.join(SPARE_FILE_NAME),
            bytes,
            state: SpareState::Missing,
        };
        spare.replenish(disk);
        spare
    }

    /// Whether a spare is ready to be renamed into place (collecting a finished background
    /// job). Cheap enough for every append.
    pub fn poll_ready(&mut self) -> bool {
        if let SpareState::Preparing(job) = &self.state {
            if !job.is_finished() {
                return false;
            }
            let SpareState::Preparing(job) = std::mem::replace(&mut self.state, SpareState::Failed)
            else {
                unreachable!("matched above");
            };
            match job.join() {
                Ok(Ok(())) => self.state = SpareState::Ready,
                Ok(Err(e)) => {
                    warn!(error = %e, "preparing a preallocated segment failed; segments grow as they are written until the next rotation");
                }
                Err(_) => warn!("the thread preparing a preallocated segment panicked"),
            }
        }
        matches!(self.state, SpareState::Ready)
    }

    /// The path of a ready spare, which the caller renames into place; `None` when there is
    /// none (preallocation off, still being prepared, or preparing it failed).
    pub fn take(&mut self) -> Option<PathBuf> {
        if !self.poll_ready() {
            return None;
        }
        self.state = SpareState::Missing;
        Some(self.path.clone())
    }

    /// Starts preparing a new spare unless one is ready or being prepared.
    pub fn replenish(&mut self, disk: &Disk) {
        if !matches!(self.state, SpareState::Missing | SpareState::Failed) {
            return;
        }
        match self.mode {
            Preallocation::Off => {}
            Preallocation::Inline => match prepare(disk, &self.path, self.bytes, None) {
                Ok(()) => self.state = SpareState::Ready,
                Err(e) => {
                    self.state = SpareState::Failed;
                    warn!(error = %e, "preparing a preallocated segment failed; segments grow as they are written until the next rotation");
                }
            },
            Preallocation::Background => {
                let (disk, path, bytes) = (disk.clone(), self.path.clone(), self.bytes);
                let spawned = std::thread::Builder::new()
                    .name("ferrata-wal-spare".into())
                    .spawn(move || prepare(&disk, &path, bytes, Some(BACKGROUND_CHUNK_PAUSE)));
                match spawned {
                    Ok(job) => self.state = SpareState::Preparing(job),
                    Err(e) => {
                        self.state = SpareState::Failed;
                        warn!(error = %e, "cannot start the thread preparing a preallocated segment");
                    }
                }
            }
        }
    }
}

/// Writes `bytes` zeros to a fresh file at `path` (replacing a leftover one) and syncs them, so
/// that the blocks are allocated and initialised before the log writes into them. With a
/// pause, chunk by chunk: one large write-back would delay every group commit behind it.
fn prepare(
    disk: &Disk,
    path: &Path,
    bytes: u64,
    pause_between_chunks: Option<std::time::Duration>,
) -> Result<(), StoreError> {
    match disk.fs.remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(StoreError::io(
                format!("cannot delete {}", path.display()),
                e,
            ));
        }
    }
    let write_err = |e| StoreError::io(format!("cannot write {}", path.display()), e);
    let mut file = disk.fs.create_new(path).map_err(write_err)?;
    let zeros = vec![0u8; ZERO_CHUNK_BYTES];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(ZERO_CHUNK_BYTES as u64) as usize;
        file.write(&zeros[..n]).map_err(write_err)?;
        left -= n as u64;
        if let Some(pause) = pause_between_chunks {
            if disk.fsync {
                file.sync_data().map_err(write_err)?;
            }
            std::thread::sleep(pause);
        }
    }
    if disk.fsync {
        file.sync_data().map_err(write_err)?;
    }
    Ok(())
}
