//! Writing a file that carries secrets for another reader: the sandbox org's policy (its client
//! secrets), written by `ema sandbox --write-policy FILE` and by the tray's `--sandbox` for its
//! own engine. One writer for both.
//!
//! Why: the tray used to `fs::write` the policy to `/tmp/ema-tray-sandbox-<pid>/policy.json`, a
//! name any local user can predict: created world-readable (0644), left behind after exit, and a
//! symlink planted there beforehand was followed, overwriting its target. Here:
//! - [`write_private`] never writes through a symlink: a symlink at the destination is refused,
//!   and the content goes to a fresh temporary file in the same directory (random name, created
//!   exclusively, mode 0600), made durable, then renamed over the destination, so the file is
//!   never seen half-written or with wider permissions, and a link planted between the check and
//!   the rename is replaced, not followed.
//! - [`PrivateDir`] is a fresh directory with a random name, mode 0700, removed when dropped:
//!   the place for a file only this process (and its user) reads.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::files::atomic_file::restrict;

/// Writes `bytes` to `path` readable by the owner only (0600), atomically, refusing to write
/// through a symbolic link. An existing regular file at `path` is replaced.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is a symbolic link: refusing to write secrets through it; remove the link or choose another path",
                    path.display()
                ),
            ));
        }
        Ok(m) if m.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a directory; give the path of a file to write", path.display()),
            ));
        }
        _ => {}
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // tempfile creates the file with O_CREAT|O_EXCL under a random name, 0600 on Unix.
    let mut tmp = tempfile::Builder::new().prefix(".ema-private-").suffix(".tmp").tempfile_in(dir)?;
    restrict(tmp.as_file())?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // rename(2) replaces the directory entry at `path` (a link included) and never follows it.
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A fresh private directory (random name under the system temp dir, mode 0700 on Unix),
/// removed with everything in it when dropped. Keep it alive as long as its files are used.
#[derive(Debug)]
pub struct PrivateDir(tempfile::TempDir);

impl PrivateDir {
    /// Creates `<temp dir>/<prefix><random>`.
    pub fn new(prefix: &str) -> io::Result<PrivateDir> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o700));
        }
        let dir = builder.tempdir()?;
        // The mode asked for is masked by the umask: make sure of 0700 whatever the umask.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))?;
        }
        Ok(PrivateDir(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `name` in this directory with [`write_private`] and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let path = self.path().join(name);
        write_private(&path, bytes)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_private_dir_holds_an_owner_only_file_and_is_gone_when_dropped() {
        let dir = PrivateDir::new("ema-private-test-").unwrap();
        let path = dir.write("policy.json", b"{\"secret\":\"CANARY\"}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"secret\":\"CANARY\"}");
        #[cfg(unix)]
        {
            assert_eq!(mode(dir.path()), 0o700);
            assert_eq!(mode(&path), 0o600);
        }
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("policy.json")], "no temporary file left");
        let kept = dir.path().to_path_buf();
        drop(dir);
        assert!(!kept.exists(), "{} is left behind", kept.display());
    }

    #[test]
    fn two_private_dirs_have_different_unpredictable_names() {
        let (a, b) = (PrivateDir::new("ema-private-test-").unwrap(), PrivateDir::new("ema-private-test-").unwrap());
        assert_ne!(a.path(), b.path());
        let pid = std::process::id().to_string();
        assert!(!a.path().to_string_lossy().contains(&pid), "the name is not derived from the pid");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_destination_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        fs::write(&target, b"precious").unwrap();
        let link = dir.path().join("policy.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_private(&link, b"secrets").unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_file_is_replaced_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
    }
}
