//! The database file on disk, apart from what SQLite does with it: the lock that keeps a
//! second natter-server off a file in use, and the identity check that notices the file was
//! deleted or replaced while the server runs.
//!
//! Both work on paths and this process's own file handles only; SQL stays in the rest of
//! the store.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// An exclusive advisory lock on `<db>.lock`, held for as long as this value lives (the
/// writer thread owns it, so it is released after the last commit). The OS drops it when
/// the process dies, even by SIGKILL, so a crash never leaves a stale lock behind.
///
/// Why a file beside the database rather than the database itself: SQLite locks the
/// database with POSIX `fcntl` locks, and POSIX drops every such lock a process holds on a
/// file as soon as the process closes *any* descriptor to it. A second descriptor of our own
/// on the database would have to stay open for exactly as long as SQLite's, and on systems
/// where `flock` is emulated with `fcntl` it would collide with SQLite's byte-range locks.
/// A separate file has neither problem. It is left in place at exit: deleting it would let a
/// starting server lock a fresh file while another still holds the old one.
#[derive(Debug)]
pub(super) struct DbLock {
    _file: File,
}

/// `<db>.lock` for `db`.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl DbLock {
    /// Takes the lock for `db`, or says which process holds it.
    pub(super) fn acquire(db: &Path) -> Result<DbLock, StoreError> {
        let path = lock_path(db);
        let lock_err = |source| StoreError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The holder wrote its pid right after locking; a holder that has not yet
                // done so (a start in the same instant) is reported without one.
                let mut text = String::new();
                let holder = match file.read_to_string(&mut text) {
                    Ok(_) => match text.trim().parse::<u32>() {
                        Ok(pid) => format!("pid {pid}"),
                        Err(_) => "pid unknown".to_owned(),
                    },
                    Err(_) => "pid unknown".to_owned(),
                };
                return Err(StoreError::InUse {
                    path: db.to_owned(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        // Who holds it, for the message a second server prints.
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(lock_err)?;
        Ok(DbLock { _file: file })
    }
}

/// Which file a path named when the database was opened: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    // Elsewhere there is no portable inode; only a missing file is noticed.
    #[cfg(not(unix))]
    fn of(_meta: &std::fs::Metadata) -> FileId {
        FileId { dev: 0, ino: 0 }
    }
}

/// The database file as opened: answers "is the path still that file?".
///
/// It compares the path's device and inode with those recorded at open rather than keeping
/// a descriptor to `fstat` (for the same `fcntl` reason as [`DbLock`]). A deleted file
/// fails the check (nothing at the path), and so does one replaced by another file (a
/// different inode), which is just as lost to the next start; a file moved away and back is
/// the same inode and passes again.
#[derive(Debug)]
pub(super) struct DbFile {
    path: PathBuf,
    id: FileId,
}

impl DbFile {
    /// Records what `path` names now (just after SQLite opened it).
    pub(super) fn record(path: &Path) -> Result<DbFile, StoreError> {
        let meta = std::fs::metadata(path).map_err(|e| StoreError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(DbFile {
            path: path.to_owned(),
            id: FileId::of(&meta),
        })
    }

    /// Whether the path still names the file the writer has open. One `stat`: cheap next to
    /// the fsync of the commit it guards. An error other than "not found" (the directory
    /// made unreadable) says nothing about the file, so it passes.
    pub(super) fn is_in_place(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(meta) => FileId::of(&meta) == self.id,
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A second lock on the same database, even from this process, is refused with the
    /// holder's pid.
    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let _held = DbLock::acquire(&db).unwrap();
        match DbLock::acquire(&db) {
            Err(StoreError::InUse { holder, .. }) => {
                assert_eq!(holder, format!("pid {}", std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
    }

    /// The lock is free again once its holder is dropped.
    #[test]
    fn lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        drop(DbLock::acquire(&db).unwrap());
        DbLock::acquire(&db).unwrap();
    }

    /// Deleted: not in place; moved back: in place again; replaced by another file: not.
    #[test]
    fn identity_follows_the_inode() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let away = dir.path().join("away.db");
        std::fs::write(&db, b"one").unwrap();
        let file = DbFile::record(&db).unwrap();
        // Held open, as SQLite holds the database: its inode cannot be reused meanwhile.
        let _open = File::open(&db).unwrap();
        assert!(file.is_in_place());
        std::fs::rename(&db, &away).unwrap();
        assert!(!file.is_in_place());
        std::fs::rename(&away, &db).unwrap();
        assert!(file.is_in_place());
        std::fs::remove_file(&db).unwrap();
        std::fs::write(&db, b"two").unwrap();
        assert!(!file.is_in_place());
    }
}
