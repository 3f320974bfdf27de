//! Crash-safe replacement of a file's content: the user's settings, and the other clients'
//! files that [`crate::personal::remedy`] edits.
//!
//! Why: the files we edit hold other programs' whole configuration (`~/.claude.json` holds all
//! of Claude Code's state). A crash, a full disk or a kill in the middle must leave the old file
//! or the new one, never half of each. The classic recipe: write a temporary file in the same
//! directory, `fsync` it, `rename` it over the original (atomic on POSIX and on NTFS through
//! `MoveFileEx`), then `fsync` the directory so the rename itself survives a power cut.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file a write to `path` really lands in: a symlink (dotfiles kept in a repository and
/// linked into `~`) is followed, so the link stays a link.
pub fn write_target(path: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path),
        _ => Ok(path.to_path_buf()),
    }
}

/// Replaces the content of `path` with `bytes` atomically; a new file gets mode 0600, an
/// existing one keeps its permissions.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_pausing(path, bytes, || {})
}

/// [`write_atomically`], calling `before_rename` once the new content is durable in the
/// temporary file and before it replaces `path`. The crash test kills the process there.
#[doc(hidden)]
pub fn write_atomically_pausing(path: &Path, bytes: &[u8], before_rename: impl FnOnce()) -> io::Result<()> {
    let target = write_target(path)?;
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".ema-edit-").suffix(".tmp").tempfile_in(dir)?;
    match fs::metadata(&target) {
        Ok(meta) => tmp.as_file().set_permissions(meta.permissions())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => restrict(tmp.as_file())?,
        Err(e) => return Err(e),
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    before_rename();
    tmp.persist(&target).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

/// Owner-only permissions for files that hold (copies of) secrets.
#[cfg(unix)]
pub fn restrict(file: &fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))
}

/// Owner-only permissions: on Windows the user profile's ACL already gives that.
#[cfg(not(unix))]
pub fn restrict(_file: &fs::File) -> io::Result<()> {
    Ok(())
}

/// Makes a rename in `dir` durable (POSIX); a failure only weakens durability, so it is ignored.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_keeps_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        fs::write(&path, b"old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        }
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("f.json")]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_file_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles-claude.json");
        let link = dir.path().join(".claude.json");
        fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
    }
}
