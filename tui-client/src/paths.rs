//! Where natter keeps its files, and the file primitives everything on disk uses: an
//! exclusive lock (several natter processes may share one account), either around one
//! read-modify-write ([`with_lock`]) or tried and held for longer ([`try_lock`]), and atomic
//! replace.
//!
//! - credentials: `$XDG_CONFIG_HOME/natter/credentials.toml` (else `~/.config/natter/`), mode 0600;
//! - outbox: `$XDG_STATE_HOME/natter/outbox/<server>/<user>.jsonl` (else `~/.local/state/natter/`),
//!   see [`crate::outbox`] for its lock files and the outbox of a bare `NATTER_TOKEN`;
//! - log: `$XDG_STATE_HOME/natter/natter.log`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The directories natter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `…/natter` under the config home: credentials.
    pub config_dir: PathBuf,
    /// `…/natter` under the state home: outbox and log.
    pub state_dir: PathBuf,
}

impl Paths {
    /// From `XDG_CONFIG_HOME`, `XDG_STATE_HOME` and `HOME`, as the XDG base directory
    /// specification says.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = |var: &str, fallback: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(fallback))
                .join("natter")
        };
        Paths {
            config_dir: base("XDG_CONFIG_HOME", ".config"),
            state_dir: base("XDG_STATE_HOME", ".local/state"),
        }
    }

    /// Both under one directory (tests).
    pub fn under(dir: &Path) -> Self {
        Paths {
            config_dir: dir.join("config"),
            state_dir: dir.join("state"),
        }
    }

    /// The credentials file.
    pub fn credentials(&self) -> PathBuf {
        self.config_dir.join("credentials.toml")
    }

    /// The outbox directory for one server.
    pub fn outbox_dir(&self, server: &str) -> PathBuf {
        self.state_dir.join("outbox").join(slug(server))
    }

    /// The chat screen's log file.
    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("natter.log")
    }
}

/// A file-name-safe form of a server URL: `http://127.0.0.1:8000` → `127.0.0.1_8000`.
fn slug(server: &str) -> String {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    rest.trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs `f` while holding an exclusive `flock` on `<path>.lock`. Every read-modify-write
/// of a shared file goes through here, so two natter processes never lose each other's
/// update.
pub fn with_lock<T>(path: &Path, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock = open_lock_file(Path::new(&lock_name))?;
    flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", path.display()))?;
    let out = f();
    // Closing the file releases the lock; say so explicitly for the reader.
    drop(lock);
    out
}

/// An exclusive `flock` on a file, held until this is dropped (or the process ends, however
/// it ends: the kernel releases it with the last descriptor).
#[derive(Debug)]
pub struct HeldLock {
    _file: File,
}

/// Takes an exclusive `flock` on `lock_path` (created if missing) if nobody holds it:
/// `Ok(None)` when another process does. For locks held across awaits, where blocking in
/// `flock` is not an option; callers poll with a bound.
pub fn try_lock(lock_path: &Path) -> anyhow::Result<Option<HeldLock>> {
    let file = open_lock_file(lock_path)?;
    match flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(HeldLock { _file: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("locking {}", lock_path.display())),
    }
}

fn open_lock_file(lock_path: &Path) -> anyhow::Result<File> {
    let dir = lock_path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))
}

/// `flock`, retried when a signal interrupts it.
fn flock(file: &File, op: rustix::fs::FlockOperation) -> rustix::io::Result<()> {
    loop {
        match rustix::fs::flock(file, op) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// Creates `dir` (and parents) with mode 0700 where it creates them.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Replaces `path` with `bytes` atomically (temporary file, fsync, rename), mode 0600: a
/// crash leaves either the old or the new file, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    // The mode given to open is masked by the umask; make sure it is 0600.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("http://127.0.0.1:8000"), "127.0.0.1_8000");
        assert_eq!(slug("https://chat.example/x/"), "chat.example_x");
    }

    #[test]
    fn try_lock_excludes_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/file.lock");
        let held = try_lock(&p).unwrap();
        assert!(held.is_some());
        assert!(
            try_lock(&p).unwrap().is_none(),
            "a second open file is refused"
        );
        drop(held);
        assert!(try_lock(&p).unwrap().is_some());
    }

    #[test]
    fn atomic_writes_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/file");
        write_atomic(&p, b"hi").unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::read(&p).unwrap(), b"hi");
    }
}
