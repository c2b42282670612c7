//! The database file on disk, apart from what SQLite does with it: the lock that keeps a
//! second natter-server off a file in use.
//!
//! It works on paths and this process's own file handles only; SQL stays in the rest of
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
}
