//! Every file-system call the write-ahead log makes, behind one small trait, so that tests can
//! swap the disk for one that fails and crashes on purpose; [`OsFileSystem`] is the real one.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Name of the file inside the store directory that carries the directory lock.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// The file-system operations of the log. Paths are full paths; names are UTF-8 file names.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates `dir` and every missing parent.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive lock on `dir`, held until the returned guard is dropped.
    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>, LockError>;
    /// Names of the regular files directly in `dir`; names that are not UTF-8 are left out.
    fn list_files(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a file that must not exist yet, for writing from its start.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens an existing file for writing (and truncating), writes starting at byte `offset`:
    /// a preallocated segment is written over its zeros, not after them.
    fn open_write_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn WritableFile>>;
    /// Opens an existing file for reading.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadableFile>>;
    /// Renames a file, replacing `to` if it exists. Durable only after [`FileSystem::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Deletes a file. Durable only after [`FileSystem::sync_dir`].
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (files created, renamed or removed in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for writing at a position that each write advances.
pub trait WritableFile: Send + fmt::Debug {
    /// Writes all of `buf` at the handle's position (over existing bytes, extending the file
    /// where it runs past the end) and advances the position.
    fn write(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Cuts (or zero-extends) the file to `len` bytes; writes continue at `len`.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// A file open for reading.
pub trait ReadableFile: Read + Seek + Send {
    /// The file's length in bytes; leaves the position at the start.
    fn byte_len(&mut self) -> io::Result<u64> {
        let len = self.seek(SeekFrom::End(0))?;
        self.seek(SeekFrom::Start(0))?;
        Ok(len)
    }
}

impl<T: Read + Seek + Send> ReadableFile for T {}

/// Held while a process owns a store directory; dropping it releases the directory.
pub trait DirLock: Send + Sync + fmt::Debug {}

/// Why [`FileSystem::lock_dir`] failed.
#[derive(Debug)]
pub enum LockError {
    /// Another holder has the lock; `pid` is the process id it wrote, when readable.
    Held { pid: Option<u32> },
    /// The lock could not be attempted (e.g. the file system does not support locks).
    Io(io::Error),
}

/// The real file system (`std::fs`), used by [`crate::LogStore::open`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFileSystem;

#[derive(Debug)]
struct OsFile(File);

impl WritableFile for OsFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.seek(SeekFrom::Start(len)).map(drop)
    }
}

/// The open `LOCK` file; closing it releases the `flock`.
#[derive(Debug)]
struct OsDirLock {
    _file: File,
}

impl DirLock for OsDirLock {}

impl FileSystem for OsFileSystem {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>, LockError> {
        let path = dir.join(LOCK_FILE_NAME);
        // Never truncate on open: the current holder's pid is in there.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(LockError::Held { pid });
            }
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
        // The pid is only for the other server's error message; failing to write it is harmless.
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
        Ok(Box::new(OsDirLock { _file: file }))
    }

    fn list_files(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn open_write_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn WritableFile>> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(OsFile(file)))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadableFile>> {
        Ok(Box::new(File::open(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
