//! Bounded, loop-safe reading of other programs' files.
//!
//! Why: the files belong to other programs and to the user; any of them may be huge, a FIFO,
//! a directory, a symlink loop or unreadable. Each outcome is a value ([`Read`]), never a panic,
//! and nothing is read past [`ScanLimits::max_file_bytes`].

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ScanLimits;

/// The outcome of reading one file.
pub(super) enum Read {
    /// Not there (or a dangling symlink): skipped silently.
    Missing,
    /// Already read through another path, or the file limit was reached: skipped.
    Skipped,
    /// Could not be read; the reason is plain words without file content.
    Failed(String),
    /// The file's text.
    Text(String),
}

/// The outcome of reading and parsing one JSON file.
pub(super) enum Parsed {
    Missing,
    Failed(String),
    Json(Value),
}

/// Which JSON dialect a file is written in.
#[derive(Clone, Copy)]
pub(super) enum Dialect {
    /// Strict JSON (Claude, Cursor, Windsurf, mcp-remote).
    Json,
    /// VS Code's JSON with comments and trailing commas.
    Jsonc,
}

pub(super) struct Reader<'a> {
    limits: &'a ScanLimits,
    visited: HashSet<PathBuf>,
    files_visited: usize,
    pub(super) files_read: usize,
    pub(super) limit_reached: bool,
    /// SHA-256 (hex) of each file read, by the path it was asked for: a remedy refuses to edit
    /// a file whose content is no longer what the scan judged.
    pub(super) digests: HashMap<PathBuf, String>,
    /// Every file asked for, present or not, and every directory listed: what a watcher watches.
    pub(super) looked_at: Vec<PathBuf>,
    pub(super) listed: Vec<PathBuf>,
}

fn is_missing(e: &io::Error) -> bool {
    // ENOTDIR: a path component is a file (`~/.cursor` is a file): nothing to find there.
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

impl<'a> Reader<'a> {
    pub(super) fn new(limits: &'a ScanLimits) -> Self {
        Reader {
            limits,
            visited: HashSet::new(),
            files_visited: 0,
            files_read: 0,
            limit_reached: false,
            digests: HashMap::new(),
            looked_at: Vec::new(),
            listed: Vec::new(),
        }
    }

    /// Reads `path` as UTF-8 text within the limits.
    pub(super) fn read(&mut self, path: &Path) -> Read {
        self.looked_at.push(path.to_path_buf());
        match fs::symlink_metadata(path) {
            Err(e) if is_missing(&e) => return Read::Missing,
            Err(e) => return Read::Failed(e.to_string()),
            Ok(_) => {}
        }
        if self.files_visited >= self.limits.max_files {
            self.limit_reached = true;
            return Read::Skipped;
        }
        self.files_visited += 1;
        // Resolves every symlink once; a loop fails here (ELOOP) instead of being followed.
        let real = match fs::canonicalize(path) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Read::Missing,
            Err(e) => return Read::Failed(e.to_string()),
        };
        if !self.visited.insert(real.clone()) {
            return Read::Skipped;
        }
        let meta = match fs::metadata(&real) {
            Ok(m) => m,
            Err(e) => return Read::Failed(e.to_string()),
        };
        if meta.is_dir() {
            return Read::Failed("it is a directory, not a file".into());
        }
        if !meta.is_file() {
            // A FIFO or device would block or never end.
            return Read::Failed("it is not a regular file".into());
        }
        let max = self.limits.max_file_bytes;
        if meta.len() > max {
            return Read::Failed(too_big(meta.len(), max));
        }
        let file = match fs::File::open(&real) {
            Ok(f) => f,
            Err(e) => return Read::Failed(e.to_string()),
        };
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        // The file may grow between stat and read: never take more than the cap (plus one
        // byte to notice).
        if let Err(e) = file.take(max.saturating_add(1)).read_to_end(&mut bytes) {
            return Read::Failed(e.to_string());
        }
        if bytes.len() as u64 > max {
            return Read::Failed(too_big(bytes.len() as u64, max));
        }
        self.files_read += 1;
        self.digests.insert(path.to_path_buf(), crate::digest::sha256_hex(&bytes));
        match String::from_utf8(bytes) {
            Ok(text) => Read::Text(text),
            Err(_) => Read::Failed("it is not UTF-8 text".into()),
        }
    }

    /// Reads and parses `path`; parser messages name a position, never content.
    pub(super) fn read_json(&mut self, path: &Path, dialect: Dialect) -> Parsed {
        let text = match self.read(path) {
            Read::Missing | Read::Skipped => return Parsed::Missing,
            Read::Failed(reason) => return Parsed::Failed(reason),
            Read::Text(t) => t,
        };
        // Some Windows editors save a UTF-8 byte-order mark: it is not part of the JSON.
        let text = text.trim_start_matches('\u{feff}');
        let parsed = match dialect {
            Dialect::Json => serde_json::from_str::<Value>(text).map_err(|e| e.to_string()),
            Dialect::Jsonc => {
                jsonc_parser::parse_to_serde_value::<Value>(text, &Default::default()).map_err(|e| e.to_string())
            }
        };
        match parsed {
            Ok(v) => Parsed::Json(v),
            Err(e) => Parsed::Failed(format!("it is not valid JSON ({})", crate::redact::scrub(&e, 120))),
        }
    }

    /// The sub-directories of `dir` (not following symlinks), sorted; empty when missing.
    pub(super) fn subdirs(&mut self, dir: &Path) -> Vec<PathBuf> {
        self.list(dir, |t| t.is_dir())
    }

    /// The files and symlinks in `dir`, sorted; empty when missing.
    pub(super) fn files(&mut self, dir: &Path) -> Vec<PathBuf> {
        self.list(dir, |t| t.is_file() || t.is_symlink())
    }

    fn list(&mut self, dir: &Path, keep: impl Fn(&fs::FileType) -> bool) -> Vec<PathBuf> {
        self.listed.push(dir.to_path_buf());
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| keep(&t)))
            .map(|e| e.path())
            .take(self.limits.max_files)
            .collect();
        out.sort();
        out
    }
}

fn too_big(len: u64, max: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    format!("file is {:.1} MiB, over the {} MiB limit", len as f64 / MIB, max as f64 / MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_message_is_plain() {
        assert_eq!(too_big(50 * 1024 * 1024, 4 * 1024 * 1024), "file is 50.0 MiB, over the 4 MiB limit");
    }
}
