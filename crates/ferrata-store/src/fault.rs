//! A fault-injecting, in-memory [`FileSystem`] for tests: it keeps durable and unsynced state
//! apart so that a simulated crash loses exactly what a power cut may lose, and it fails the
//! calls a test aims at (EIO, ENOSPC, or a power cut that stops the disk dead).
//!
//! Durability model: each file has durable bytes and current bytes; `sync_data`/`sync_all` make
//! the current bytes durable. Directory entries (files and directories created, renamed or
//! removed) become durable only when their parent directory is synced. [`FaultFs::crash`] keeps
//! only what is durable; [`FaultFs::kill`] keeps everything, as when only the process dies.
//! Paths with at most one normal component (`/data`, `data`) always exist, durably, so tests
//! can put stores in `/data/...` without creating their parents first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Cursor};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{DirLock, FileSystem, LockError, ReadableFile, WritableFile};

/// A kind of file-system call, to count calls and to aim faults at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    CreateDir,
    Lock,
    List,
    Create,
    OpenWrite,
    OpenRead,
    Write,
    /// `sync_data` or `sync_all` of a file.
    SyncFile,
    SyncDir,
    Truncate,
    Rename,
    Remove,
}

impl Op {
    /// Every kind of call.
    pub const ALL: [Op; 12] = [
        Op::CreateDir,
        Op::Lock,
        Op::List,
        Op::Create,
        Op::OpenWrite,
        Op::OpenRead,
        Op::Write,
        Op::SyncFile,
        Op::SyncDir,
        Op::Truncate,
        Op::Rename,
        Op::Remove,
    ];
}

/// What an injected fault does to the call it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The call fails with an I/O error (EIO).
    Io,
    /// The call fails because the disk is full (ENOSPC, `ErrorKind::StorageFull`).
    NoSpace,
    /// The power goes at this call: it does not happen, and every later call fails until
    /// [`FaultFs::crash`] (or [`FaultFs::kill`]) restarts the simulated machine.
    PowerCut,
}

/// A fault to inject: which calls it hits, after how many matching calls, and how it fails.
#[derive(Debug, Clone)]
pub struct Fault {
    ops: Vec<Op>,
    skip: u64,
    kind: FaultKind,
    sticky: bool,
    torn: bool,
    path_contains: Option<String>,
}

impl Fault {
    /// An EIO on the next call of kind `op`.
    pub fn on(op: Op) -> Fault {
        Fault::on_any(&[op])
    }

    /// An EIO on the next call of any of these kinds.
    pub fn on_any(ops: &[Op]) -> Fault {
        Fault {
            ops: ops.to_vec(),
            skip: 0,
            kind: FaultKind::Io,
            sticky: false,
            torn: false,
            path_contains: None,
        }
    }

    /// An EIO on the next file or directory sync.
    pub fn on_sync() -> Fault {
        Fault::on_any(&[Op::SyncFile, Op::SyncDir])
    }

    /// Lets `calls` matching calls succeed first: the fault hits call number `calls` (from 0).
    pub fn after(mut self, calls: u64) -> Fault {
        self.skip = calls;
        self
    }

    /// Fails with ENOSPC instead of EIO.
    pub fn no_space(mut self) -> Fault {
        self.kind = FaultKind::NoSpace;
        self
    }

    /// Cuts the power at the call instead of failing it (see [`FaultKind::PowerCut`]).
    pub fn power_cut(mut self) -> Fault {
        self.kind = FaultKind::PowerCut;
        self
    }

    /// Keeps failing every matching call (after the skipped ones) until cleared.
    pub fn sticky(mut self) -> Fault {
        self.sticky = true;
        self
    }

    /// Makes the failure partial: a failing write stores the first half of its bytes, a
    /// failing file sync makes half of the file's unsynced bytes durable.
    pub fn torn(mut self) -> Fault {
        self.torn = true;
        self
    }

    /// Only hits calls whose path contains `fragment` (e.g. `".tmp"`).
    pub fn on_path(mut self, fragment: impl Into<String>) -> Fault {
        self.path_contains = Some(fragment.into());
        self
    }

    fn matches(&self, op: Op, path: &Path) -> bool {
        self.ops.contains(&op)
            && self
                .path_contains
                .as_ref()
                .is_none_or(|fragment| path.to_string_lossy().contains(fragment.as_str()))
    }
}

/// The fault-injecting in-memory file system. Clones share one disk.
#[derive(Debug, Clone, Default)]
pub struct FaultFs {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    names: BTreeMap<PathBuf, Node>,
    durable_names: BTreeMap<PathBuf, Node>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Bumped by every crash: handles opened before it belong to a dead process.
    epoch: u64,
    /// Set by a power cut until the next crash.
    dead: bool,
    faults: Vec<Fault>,
    counts: HashMap<Op, u64>,
    locks: HashMap<PathBuf, u64>,
    next_lock: u64,
}

/// An injected failure, and whether the call should half-happen first.
struct Injected {
    error: io::Error,
    torn: bool,
}

impl From<Injected> for io::Error {
    fn from(injected: Injected) -> io::Error {
        injected.error
    }
}

fn always_exists(path: &Path) -> bool {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
        <= 1
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

fn not_found(what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{what} {} does not exist", path.display()),
    )
}

impl State {
    /// Accounts for a call and decides whether it fails. `epoch` is the handle's, if any.
    fn enter(&mut self, op: Op, path: &Path, epoch: Option<u64>) -> Result<(), Injected> {
        if epoch.is_some_and(|e| e != self.epoch) {
            return Err(Injected {
                error: io::Error::other(format!(
                    "{op:?} on {}: the simulated process crashed; this handle is dead",
                    path.display()
                )),
                torn: false,
            });
        }
        if self.dead {
            return Err(Injected {
                error: io::Error::other(format!(
                    "{op:?} on {}: the simulated disk lost power",
                    path.display()
                )),
                torn: false,
            });
        }
        *self.counts.entry(op).or_default() += 1;
        let Some(index) = self.faults.iter_mut().position(|fault| {
            if !fault.matches(op, path) {
                return false;
            }
            if fault.skip > 0 {
                fault.skip -= 1;
                return false;
            }
            true
        }) else {
            return Ok(());
        };
        let fault = self.faults[index].clone();
        if !fault.sticky {
            self.faults.remove(index);
        }
        let what = format!("{op:?} on {}", path.display());
        let error = match fault.kind {
            FaultKind::Io => io::Error::other(format!("injected I/O error (EIO) at {what}")),
            FaultKind::NoSpace => io::Error::new(
                io::ErrorKind::StorageFull,
                format!("injected no space left on device (ENOSPC) at {what}"),
            ),
            FaultKind::PowerCut => {
                self.dead = true;
                io::Error::other(format!("injected power cut at {what}"))
            }
        };
        Err(Injected {
            error,
            torn: fault.torn,
        })
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        always_exists(dir) || self.names.get(dir) == Some(&Node::Dir)
    }

    fn file(&self, path: &Path) -> io::Result<u64> {
        match self.names.get(path) {
            Some(Node::File(id)) => Ok(*id),
            Some(Node::Dir) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            )),
            None => Err(not_found("file", path)),
        }
    }

    fn inode(&mut self, id: u64) -> &mut Inode {
        self.inodes.entry(id).or_default()
    }

    fn restart(&mut self) {
        self.epoch += 1;
        self.dead = false;
        // The process that held them is gone.
        self.locks.clear();
    }
}

impl FaultFs {
    /// An empty disk with no faults.
    pub fn new() -> FaultFs {
        FaultFs::default()
    }

    /// This disk as the file system of a [`crate::LogStore`] (see `LogStore::open_with`).
    pub fn as_file_system(&self) -> Arc<dyn FileSystem> {
        Arc::new(self.clone())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms a fault. Faults are independent; each counts its own matching calls.
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Disarms every fault (the disk has space again, the cable is fixed).
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Power loss: everything not durable is gone, open handles and locks die with the process,
    /// and a power-cut disk works again. Armed faults stay armed.
    pub fn crash(&self) {
        let mut state = self.state();
        let mut kept: BTreeMap<PathBuf, Node> = BTreeMap::new();
        // Paths sort parents first, so a parent's survival is known before its children.
        for (path, node) in &state.durable_names {
            let parent = parent_of(path);
            if always_exists(parent) || kept.get(parent) == Some(&Node::Dir) {
                kept.insert(path.clone(), *node);
            }
        }
        let live: HashSet<u64> = kept
            .values()
            .filter_map(|node| match node {
                Node::File(id) => Some(*id),
                Node::Dir => None,
            })
            .collect();
        state.inodes.retain(|id, _| live.contains(id));
        for inode in state.inodes.values_mut() {
            inode.current = inode.durable.clone();
        }
        state.names = kept.clone();
        state.durable_names = kept;
        state.restart();
    }

    /// The process dies but the machine does not: unsynced data survives (page cache), open
    /// handles and locks die, and a power-cut disk works again.
    pub fn kill(&self) {
        self.state().restart();
    }

    /// Whether a power cut has stopped the disk.
    pub fn is_dead(&self) -> bool {
        self.state().dead
    }

    /// Calls of kind `op` so far (including failed ones).
    pub fn op_count(&self, op: Op) -> u64 {
        self.state().counts.get(&op).copied().unwrap_or(0)
    }

    /// File and directory syncs so far.
    pub fn sync_count(&self) -> u64 {
        self.op_count(Op::SyncFile) + self.op_count(Op::SyncDir)
    }

    /// Calls of every kind so far.
    pub fn total_ops(&self) -> u64 {
        self.state().counts.values().sum()
    }

    /// Names of the files now in `dir`, sorted.
    pub fn files(&self, dir: &Path) -> Vec<String> {
        let state = self.state();
        state
            .names
            .iter()
            .filter(|(path, node)| matches!(node, Node::File(_)) && parent_of(path) == dir)
            .filter_map(|(path, _)| Some(path.file_name()?.to_string_lossy().into_owned()))
            .collect()
    }

    /// Names of the directories now in `dir`, sorted.
    pub fn dirs(&self, dir: &Path) -> Vec<String> {
        let state = self.state();
        state
            .names
            .iter()
            .filter(|(path, node)| **node == Node::Dir && parent_of(path) == dir)
            .filter_map(|(path, _)| Some(path.file_name()?.to_string_lossy().into_owned()))
            .collect()
    }

    /// The current bytes of a file.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let mut state = self.state();
        let id = state.file(path).ok()?;
        Some(state.inode(id).current.clone())
    }

    /// Replaces a file's bytes, durably, as bit rot or a buggy disk would. False if no file.
    pub fn damage(&self, path: &Path, bytes: Vec<u8>) -> bool {
        let mut state = self.state();
        let Ok(id) = state.file(path) else {
            return false;
        };
        let inode = state.inode(id);
        inode.durable = bytes.clone();
        inode.current = bytes;
        true
    }
}

/// A file handle of [`FaultFs`].
#[derive(Debug)]
struct FaultFile {
    state: Arc<Mutex<State>>,
    id: u64,
    epoch: u64,
    path: PathBuf,
    /// Where the next write lands.
    pos: usize,
}

impl FaultFile {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.state();
        let entered = state.enter(Op::SyncFile, &self.path, Some(self.epoch));
        let inode = state.inode(self.id);
        match entered {
            Ok(()) => {
                inode.durable = inode.current.clone();
                Ok(())
            }
            Err(injected) => {
                if injected.torn {
                    half_sync(inode);
                }
                Err(injected.into())
            }
        }
    }
}

/// A torn sync: the first half of what changed since the last sync (from the first changed
/// byte to the end) reaches the disk; a pending truncation does not.
fn half_sync(inode: &mut Inode) {
    if inode.current.len() < inode.durable.len() {
        return;
    }
    let first_change = inode
        .current
        .iter()
        .zip(&inode.durable)
        .position(|(now, was)| now != was)
        .unwrap_or(inode.durable.len());
    let keep = first_change + (inode.current.len() - first_change) / 2;
    let mut durable = inode.current[..keep].to_vec();
    if let Some(old_rest) = inode.durable.get(keep..) {
        durable.extend_from_slice(old_rest);
    }
    inode.durable = durable;
}

impl WritableFile for FaultFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        let entered = state.enter(Op::Write, &self.path, Some(self.epoch));
        let inode = state.inode(self.id);
        let written = match &entered {
            Ok(()) => buf,
            Err(injected) if injected.torn => &buf[..buf.len() / 2],
            Err(_) => &[],
        };
        let end = self.pos + written.len();
        if inode.current.len() < end {
            inode.current.resize(end, 0);
        }
        inode.current[self.pos..end].copy_from_slice(written);
        drop(state);
        self.pos = end;
        entered.map_err(io::Error::from)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut state = self.state();
        state.enter(Op::Truncate, &self.path, Some(self.epoch))?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        state.inode(self.id).current.resize(len, 0);
        drop(state);
        self.pos = len;
        Ok(())
    }
}

/// The lock of a [`FaultFs`] directory; dropping it releases the lock unless a crash already
/// did (and someone else may hold it now).
#[derive(Debug)]
struct FaultLock {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
    token: u64,
}

impl DirLock for FaultLock {}

impl Drop for FaultLock {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.locks.get(&self.dir) == Some(&self.token) {
            state.locks.remove(&self.dir);
        }
    }
}

impl FileSystem for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.enter(Op::CreateDir, dir, None)?;
        let mut missing: Vec<&Path> = dir.ancestors().take_while(|a| !always_exists(a)).collect();
        missing.reverse();
        for ancestor in missing {
            match state.names.get(ancestor) {
                Some(Node::Dir) => {}
                Some(Node::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} is a file", ancestor.display()),
                    ));
                }
                None => {
                    state.names.insert(ancestor.to_path_buf(), Node::Dir);
                }
            }
        }
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>, LockError> {
        let mut state = self.state();
        state
            .enter(Op::Lock, dir, None)
            .map_err(|injected| LockError::Io(injected.error))?;
        if !state.dir_exists(dir) {
            return Err(LockError::Io(not_found("directory", dir)));
        }
        if state.locks.contains_key(dir) {
            return Err(LockError::Held {
                pid: Some(std::process::id()),
            });
        }
        state.next_lock += 1;
        let token = state.next_lock;
        state.locks.insert(dir.to_path_buf(), token);
        Ok(Box::new(FaultLock {
            state: self.state.clone(),
            dir: dir.to_path_buf(),
            token,
        }))
    }

    fn list_files(&self, dir: &Path) -> io::Result<Vec<String>> {
        {
            let mut state = self.state();
            state.enter(Op::List, dir, None)?;
            if !state.dir_exists(dir) {
                return Err(not_found("directory", dir));
            }
        }
        Ok(self.files(dir))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut state = self.state();
        state.enter(Op::Create, path, None)?;
        if !state.dir_exists(parent_of(path)) {
            return Err(not_found("directory", parent_of(path)));
        }
        if state.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            ));
        }
        state.next_inode += 1;
        let id = state.next_inode;
        state.inodes.insert(id, Inode::default());
        state.names.insert(path.to_path_buf(), Node::File(id));
        Ok(Box::new(FaultFile {
            state: self.state.clone(),
            id,
            epoch: state.epoch,
            path: path.to_path_buf(),
            pos: 0,
        }))
    }

    fn open_write_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn WritableFile>> {
        let mut state = self.state();
        state.enter(Op::OpenWrite, path, None)?;
        let id = state.file(path)?;
        Ok(Box::new(FaultFile {
            state: self.state.clone(),
            id,
            epoch: state.epoch,
            path: path.to_path_buf(),
            pos: usize::try_from(offset).map_err(io::Error::other)?,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadableFile>> {
        let mut state = self.state();
        state.enter(Op::OpenRead, path, None)?;
        let id = state.file(path)?;
        // A copy: later writes are not seen, which is all the log needs of a reader.
        Ok(Box::new(Cursor::new(state.inode(id).current.clone())))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.enter(Op::Rename, from, None)?;
        let id = state.file(from)?;
        if !state.dir_exists(parent_of(to)) {
            return Err(not_found("directory", parent_of(to)));
        }
        if state.names.get(to) == Some(&Node::Dir) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", to.display()),
            ));
        }
        state.names.remove(from);
        state.names.insert(to.to_path_buf(), Node::File(id));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.enter(Op::Remove, path, None)?;
        state.file(path)?;
        state.names.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.enter(Op::SyncDir, dir, None)?;
        if !state.dir_exists(dir) {
            return Err(not_found("directory", dir));
        }
        let State {
            names,
            durable_names,
            ..
        } = &mut *state;
        durable_names.retain(|path, _| parent_of(path) != dir);
        for (path, node) in names.iter() {
            if parent_of(path) == dir {
                durable_names.insert(path.clone(), *node);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;

    fn write_file(fs: &FaultFs, path: &str, bytes: &[u8], sync: bool) {
        let mut file = fs.create_new(Path::new(path)).unwrap();
        file.write(bytes).unwrap();
        if sync {
            file.sync_data().unwrap();
        }
    }

    #[test]
    fn a_crash_keeps_only_synced_data_in_synced_entries() {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/d/store")).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        write_file(&fs, "/d/store/a", b"synced", true);
        write_file(&fs, "/d/store/b", b"unsynced", false);
        fs.sync_dir(Path::new("/d/store")).unwrap();
        write_file(&fs, "/d/store/c", b"entry not synced", true);
        let mut a = fs.open_write_at(Path::new("/d/store/a"), 6).unwrap();
        a.write(b" and more").unwrap();
        fs.crash();
        assert_eq!(fs.files(Path::new("/d/store")), vec!["a", "b"]);
        assert_eq!(fs.read(Path::new("/d/store/a")).unwrap(), b"synced");
        assert_eq!(fs.read(Path::new("/d/store/b")).unwrap(), b"");
        // The handle belonged to the crashed process.
        assert!(a.write(b"x").is_err());
    }

    #[test]
    fn writes_land_at_the_handle_position_and_a_torn_sync_keeps_half_of_an_overwrite() {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        write_file(&fs, "/d/f", &[0u8; 8], true);
        fs.sync_dir(Path::new("/d")).unwrap();
        let mut file = fs.open_write_at(Path::new("/d/f"), 2).unwrap();
        file.write(b"abcd").unwrap();
        assert_eq!(fs.read(Path::new("/d/f")).unwrap(), b"\0\0abcd\0\0");
        fs.inject(Fault::on(Op::SyncFile).torn());
        assert!(file.sync_data().is_err());
        fs.crash();
        // Bytes 2..8 differed or followed; the first half of them (2..5) reached the disk.
        assert_eq!(fs.read(Path::new("/d/f")).unwrap(), b"\0\0abc\0\0\0");
    }

    #[test]
    fn renames_and_removals_are_undone_by_a_crash_until_the_directory_is_synced() {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        write_file(&fs, "/d/old", b"1", true);
        write_file(&fs, "/d/gone", b"2", true);
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.rename(Path::new("/d/old"), Path::new("/d/new")).unwrap();
        fs.remove_file(Path::new("/d/gone")).unwrap();
        fs.crash();
        assert_eq!(fs.files(Path::new("/d")), vec!["gone", "old"]);
        fs.rename(Path::new("/d/old"), Path::new("/d/new")).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.crash();
        assert_eq!(fs.files(Path::new("/d")), vec!["gone", "new"]);
    }

    #[test]
    fn a_directory_not_synced_into_its_parent_is_lost_with_its_files() {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/d/sub")).unwrap();
        write_file(&fs, "/d/sub/f", b"x", true);
        fs.sync_dir(Path::new("/d/sub")).unwrap();
        fs.crash();
        assert!(fs.dirs(Path::new("/d")).is_empty());
        assert!(fs.read(Path::new("/d/sub/f")).is_none());
    }

    #[test]
    fn faults_hit_the_chosen_call_and_torn_ones_half_happen() {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.inject(Fault::on(Op::Write).after(1).no_space().torn());
        let mut file = fs.create_new(Path::new("/d/f")).unwrap();
        file.write(b"ok").unwrap();
        let error = file.write(b"abcd").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert_eq!(fs.read(Path::new("/d/f")).unwrap(), b"okab");
        file.write(b"!").unwrap();

        fs.inject(Fault::on(Op::SyncFile).torn());
        assert!(file.sync_data().is_err());
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.crash();
        assert_eq!(fs.read(Path::new("/d/f")).unwrap(), b"ok");
        assert_eq!(fs.op_count(Op::Write), 3);
    }

    #[test]
    fn a_power_cut_stops_everything_until_the_crash() {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.inject(Fault::on_sync().after(1).power_cut());
        let mut file = fs.create_new(Path::new("/d/f")).unwrap();
        file.write(b"one").unwrap();
        file.sync_data().unwrap();
        assert!(fs.sync_dir(Path::new("/d")).is_err());
        assert!(fs.is_dead());
        assert!(fs.create_new(Path::new("/d/g")).is_err());
        fs.crash();
        assert!(!fs.is_dead());
        assert!(
            fs.files(Path::new("/d")).is_empty(),
            "the entry was never synced"
        );
    }

    #[test]
    fn locks_are_exclusive_and_die_with_the_process() {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let held = fs.lock_dir(Path::new("/d")).unwrap();
        assert!(matches!(
            fs.lock_dir(Path::new("/d")),
            Err(LockError::Held { pid: Some(_) })
        ));
        fs.kill();
        let again = fs.lock_dir(Path::new("/d")).unwrap();
        // The dead process's guard must not release the new holder's lock.
        drop(held);
        assert!(fs.lock_dir(Path::new("/d")).is_err());
        drop(again);
        assert!(fs.lock_dir(Path::new("/d")).is_ok());
    }
}
