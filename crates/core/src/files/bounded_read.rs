//! Reading a file a person named (a policy, its `key_file`, the user's settings, `ema setup FILE`):
//! one open, a regular file only, never more than a cap.
//!
//! Why: a path in a policy or on the command line may name anything. `/dev/zero` never ends (a
//! plain `fs::read` grows until memory runs out), a FIFO with no writer blocks `open` and `read`
//! for ever, and checking the size with one `stat` and reading with a second `open` lets the
//! file change in between. So: open once (on Unix with `O_NONBLOCK`, so opening a FIFO returns at
//! once), judge the *opened* handle's metadata, and read through `Read::take(cap + 1)` so a file
//! that grows after the check is still refused rather than read.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

/// Why a file was not read. The message has no path: callers name the file and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BoundedReadError {
    /// Opening or reading failed (missing, permission denied, ...).
    #[error("cannot be read: {0}")]
    Io(#[source] io::Error),
    #[error("is a directory")]
    Directory,
    /// A FIFO, device or socket: it could block for ever or never end.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// `size` is at least `limit + 1` (the file may have grown while it was read).
    #[error("is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("is not UTF-8 text")]
    NotText,
}

impl BoundedReadError {
    /// The file (or a directory on its path) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BoundedReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// Reads the regular file at `path`, refusing anything else and anything over `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    let file = open_nonblocking(path).map_err(|e| {
        // Windows cannot open a directory as a file: say what it is rather than "access denied".
        if !cfg!(unix) && fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            BoundedReadError::Directory
        } else {
            BoundedReadError::Io(e)
        }
    })?;
    let meta = file.metadata().map_err(BoundedReadError::Io)?;
    if meta.is_dir() {
        return Err(BoundedReadError::Directory);
    }
    if !meta.is_file() {
        return Err(BoundedReadError::NotRegular(kind_of(&meta.file_type())));
    }
    if meta.len() > limit {
        return Err(BoundedReadError::TooLarge { size: meta.len(), limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow between the check and the read: never take more than the cap plus the
    // one byte that tells.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(BoundedReadError::Io)?;
    let read = bytes.len() as u64;
    if read > limit {
        return Err(BoundedReadError::TooLarge { size: read.max(meta.len()), limit });
    }
    Ok(bytes)
}

/// [`read_regular`], as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> Result<String, BoundedReadError> {
    String::from_utf8(read_regular(path, limit)?).map_err(|_| BoundedReadError::NotText)
}

/// Opens for reading without blocking on a FIFO (and without making a terminal ours).
#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)
}

/// Opens for reading. Windows has no FIFOs in the file system; a named pipe (`\\.\pipe\...`)
/// is refused by the metadata check, as it is not a regular file.
#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// What a non-regular file is, in words.
#[cfg(unix)]
fn kind_of(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn kind_of(_t: &fs::FileType) -> &'static str {
    "a special file"
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::{Duration, Instant};

    /// Runs `f` on a thread and fails the test if it takes longer than `limit`: a regression
    /// (a blocking open, an endless read) fails here instead of hanging the suite.
    pub(crate) fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit).unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
    }

    #[test]
    fn a_regular_file_up_to_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"12345").unwrap();
        assert_eq!(read_regular(&path, 5).unwrap(), b"12345");
        assert_eq!(read_regular_text(&path, 5).unwrap(), "12345");
    }

    #[test]
    fn an_oversized_file_is_refused_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"123456").unwrap();
        let err = read_regular(&path, 5).unwrap_err();
        assert!(matches!(err, BoundedReadError::TooLarge { size: 6, limit: 5 }), "{err:?}");
        assert_eq!(err.to_string(), "is 6 bytes, more than the 5-byte limit");
    }

    #[test]
    fn missing_directory_and_binary_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_regular(&dir.path().join("nope"), 5).unwrap_err().is_not_found());
        assert!(matches!(read_regular(dir.path(), 5).unwrap_err(), BoundedReadError::Directory));
        let bin = dir.path().join("bin");
        fs::write(&bin, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_regular_text(&bin, 5).unwrap_err(), BoundedReadError::NotText));
    }

    #[cfg(unix)]
    #[test]
    fn dev_zero_is_refused_at_once_instead_of_read_until_memory_runs_out() {
        let started = Instant::now();
        let err = within(Duration::from_secs(10), || read_regular(Path::new("/dev/zero"), 64 * 1024)).unwrap_err();
        assert_eq!(err.to_string(), "is a character device, not a regular file");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_without_a_writer_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let err = within(Duration::from_secs(10), move || read_regular(&fifo, 1024)).unwrap_err();
        assert_eq!(err.to_string(), "is a named pipe (FIFO), not a regular file");
    }
}
