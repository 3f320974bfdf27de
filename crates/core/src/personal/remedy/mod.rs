//! Removing or replacing personal-account connections found by [`crate::personal::scan`], on the user's
//! explicit action, with a backup of every file touched and an undo.
//!
//! Why this is careful: the files belong to other programs (Claude Code keeps its whole state in
//! `~/.claude.json`) and to the user. So an edit:
//! - touches one entry and keeps every other byte (other servers, unknown keys, order, comments:
//!   [`jsonedit`]), and is checked before it is written: the file's meaning after the edit must be
//!   exactly the old meaning minus (or with a new value at) that one entry;
//! - refuses when the file is no longer what the scan judged (its SHA-256 changed);
//! - is atomic ([`crate::files::atomic_file`]): a crash leaves the old file or the new one;
//! - keeps a timestamped backup (owner-only permissions, in EMA's own data directory rather than
//!   beside the file, where a repository's `.mcp.json` backup could be committed with its token);
//! - is recorded in a journal, so [`Remedy::undo_last`] (`ema undo`) restores the file exactly,
//!   and refuses when the file changed again since.
//!
//! "Replace" writes the managed form where the client has one: for Claude Code an http entry
//! whose `headersHelper` runs `ema headers <connector>`; for VS Code an entry with
//! `oauth.enterpriseManaged: true`. Other clients only support removal.

pub mod jsonedit;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jsonc_parser::cst::CstInputValue;
use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;
pub use crate::files::atomic_file::write_atomically;
pub use jsonedit::{Edit, EditError};

use crate::personal::scan::{Catalog, Client, CredentialClass, Finding, Lookup, ScanReport, Scope};

/// The largest file EMA edits (the scan's own read limit).
const MAX_EDIT_BYTES: u64 = 4 * 1024 * 1024;
/// Changes kept in the journal (and their backups); older ones are forgotten.
const JOURNAL_KEEP: usize = 100;
const JOURNAL_VERSION: u32 = 1;

/// What the user chose to do with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Delete the entry (or the cached sign-in).
    Remove,
    /// Replace the entry by the managed connection, where the client supports one.
    Replace,
}

/// One change made to a file, as kept in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Increasing number of the change.
    pub seq: u64,
    /// When it was made (RFC 3339, UTC).
    pub at: String,
    pub action: Action,
    pub client: Client,
    /// The file, as the finding names it.
    pub path: PathBuf,
    /// The entry's JSON pointer; empty when the whole file was removed.
    pub key_path: String,
    pub server_name: Option<String>,
    pub connector: Option<String>,
    /// The file's previous content.
    pub backup: PathBuf,
    pub sha256_before: String,
    /// `None` when the change deleted the file.
    pub sha256_after: Option<String>,
    /// Restored by [`Remedy::undo_last`].
    pub undone: bool,
}

/// Why a remedy was not applied. Nothing was written when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum RemedyError {
    #[error("{0}")]
    NotApplicable(String),
    #[error("{client} has no managed form of a connection that EMA can write. {advice}")]
    ReplaceUnsupported { client: &'static str, advice: String },
    #[error("{} changed since it was scanned; scan again, then retry", path.display())]
    FileChanged { path: PathBuf },
    #[error("no finding {id:?} in a fresh scan; run `ema scan` to list them")]
    NoSuchFinding { id: String },
    #[error("{} is over {} MiB; EMA does not edit files that big", path.display(), MAX_EDIT_BYTES / (1024 * 1024))]
    TooBig { path: PathBuf },
    #[error("cannot {what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("cannot edit {}: {source}", path.display())]
    Edit { path: PathBuf, source: EditError },
    #[error(
        "the edit of {} would have changed more than the entry {key}; nothing was written (please report this)",
        path.display()
    )]
    Unsafe { path: PathBuf, key: String },
    #[error("there is no change to undo")]
    NothingToUndo,
    #[error(
        "{} changed again after EMA's edit; EMA does not overwrite that. The content before EMA's edit is in {}",
        path.display(), backup.display()
    )]
    ChangedSinceEdit { path: PathBuf, backup: PathBuf },
    #[error("the change journal {} is damaged ({reason}); backups are in the same directory", path.display())]
    Journal { path: PathBuf, reason: String },
}

/// The finding that `id` (shown by an earlier scan the user acted on) names in `report`, a
/// fresh scan. When the entry is still there but its credential changed since (the id carries
/// the credential's fingerprint), the fix is refused as [`RemedyError::FileChanged`]: the same
/// "scan again" as for a change between the fresh scan and the write, since the user has not
/// seen what would now be removed or replaced.
pub fn finding_for<'r>(report: &'r ScanReport, id: &str) -> Result<&'r Finding, RemedyError> {
    match report.lookup(id) {
        Lookup::Found(f) => Ok(f),
        Lookup::CredentialChanged(f) => Err(RemedyError::FileChanged { path: f.path.clone() }),
        Lookup::Missing => Err(RemedyError::NoSuchFinding { id: id.to_string() }),
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RemedyError + use<> {
    let path = path.to_path_buf();
    move |source| RemedyError::Io { what, path, source }
}

/// How a finding's file changes.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Edit one entry of the file.
    Entry(Edit),
    /// Delete the file (a token cache that holds one sign-in).
    DeleteFile,
}

/// Applies remedies and undoes them; keeps its journal and backups in one directory.
#[derive(Debug, Clone)]
pub struct Remedy {
    dir: PathBuf,
    helper_program: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    v: u32,
    changes: Vec<Change>,
}

impl Remedy {
    /// A remedy keeping its journal and backups in `dir`; the Claude Code helper runs `ema`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Remedy { dir: dir.into(), helper_program: "ema".into() }
    }

    /// The per-user location: `<data dir>/ema/remediation` (`~/.local/share` on Linux).
    pub fn for_current_user() -> Option<Self> {
        Some(Remedy::new(dirs::data_local_dir()?.join("ema").join("remediation")))
    }

    /// The program written into Claude Code's `headersHelper` (an absolute path to `ema` when
    /// it is not on the user's `PATH`).
    pub fn with_helper_program(mut self, program: impl Into<String>) -> Self {
        self.helper_program = program.into();
        self
    }

    /// Where the journal and backups are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `action` on `finding` would do, or why it cannot be done.
    pub fn plan(&self, finding: &Finding, action: Action, catalog: &Catalog) -> Result<Plan, RemedyError> {
        if let CredentialClass::CouldNotRead { .. } = finding.class {
            return Err(RemedyError::NotApplicable(format!(
                "{} could not be read, so EMA does not change it; check it by hand",
                finding.path.display()
            )));
        }
        if finding.scope == Scope::Managed {
            return Err(RemedyError::NotApplicable(format!(
                "{} is deployed by your IT department; ask them to change it",
                finding.path.display()
            )));
        }
        let whole_file = finding.key_path.is_empty();
        match action {
            Action::Remove if whole_file && finding.scope == Scope::TokenCache => Ok(Plan::DeleteFile),
            Action::Remove if whole_file => {
                Err(RemedyError::NotApplicable("this finding names a whole file, not an entry".into()))
            }
            Action::Remove => Ok(Plan::Entry(Edit::Remove)),
            Action::Replace => self.replacement(finding, catalog).map(|v| Plan::Entry(Edit::Set(v))),
        }
    }

    /// Whether `finding` can be remedied at all, and replaced by the managed connection.
    pub fn options(&self, finding: &Finding, catalog: &Catalog) -> (bool, bool) {
        (self.plan(finding, Action::Remove, catalog).is_ok(), self.plan(finding, Action::Replace, catalog).is_ok())
    }

    fn replacement(&self, finding: &Finding, catalog: &Catalog) -> Result<CstInputValue, RemedyError> {
        let connector =
            finding.connector.as_deref().and_then(|id| catalog.connectors().iter().find(|c| c.id == id)).ok_or_else(
                || {
                    RemedyError::NotApplicable(
                        "this entry is not one of the company's connectors: remove it instead".into(),
                    )
                },
            )?;
        let url = connector.mcp_url.as_str();
        let name = &connector.display_name;
        match (finding.client, finding.scope) {
            (_, Scope::TokenCache) => Err(RemedyError::NotApplicable(format!(
                "a cached sign-in cannot be replaced; remove it, then use {name} through the company app"
            ))),
            (Client::ClaudeCode, _) => Ok(jsonedit::object([
                ("type", "http".into()),
                ("url", url.into()),
                ("headersHelper", format!("{} headers {}", self.helper_program, connector.id).into()),
            ])),
            (Client::VsCode, _) => Ok(jsonedit::object([
                ("type", "http".into()),
                ("url", url.into()),
                ("oauth", jsonedit::object([("enterpriseManaged", true.into())])),
            ])),
            (Client::ClaudeDesktop, _) => Err(RemedyError::ReplaceUnsupported {
                client: "Claude Desktop",
                advice: format!(
                    "Remove the entry, then add {name} in Claude Desktop's connector settings, signed in with your \
                     company account."
                ),
            }),
            (Client::Cursor, _) | (Client::Windsurf, _) | (Client::McpRemote, _) => {
                Err(RemedyError::ReplaceUnsupported {
                    client: client_name(finding.client),
                    advice: format!(
                        "Remove the entry, then add {name} again with the URL {url}, signed in with your company \
                         account."
                    ),
                })
            }
        }
    }

    /// Applies `action` to `finding`'s file: checks it is unchanged since the scan, backs it
    /// up, journals the change and writes atomically.
    pub fn apply(&self, finding: &Finding, action: Action, catalog: &Catalog) -> Result<Change, RemedyError> {
        let plan = self.plan(finding, action, catalog)?;
        let path = &finding.path;
        let before = read_bounded(path)?;
        let sha256_before = sha256_hex(&before);
        if finding.file_sha256.as_deref() != Some(sha256_before.as_str()) {
            return Err(RemedyError::FileChanged { path: path.clone() });
        }
        let after = match &plan {
            Plan::DeleteFile => None,
            Plan::Entry(edit) => Some(edited(path, &before, &finding.key_path, edit)?),
        };
        let mut journal = self.load_journal()?;
        let seq = journal.changes.last().map_or(1, |c| c.seq + 1);
        let at = crate::status::now_rfc3339();
        let backup = self.write_backup(seq, &at, path, &before)?;
        journal.changes.push(Change {
            seq,
            at,
            action,
            client: finding.client,
            path: path.clone(),
            key_path: finding.key_path.clone(),
            server_name: finding.server_name.clone(),
            connector: finding.connector.clone(),
            backup,
            sha256_before,
            sha256_after: after.as_deref().map(sha256_hex),
            undone: false,
        });
        self.trim(&mut journal);
        // The journal is written first: if the edit then fails or the process dies, undo sees
        // the file still as it was before and has nothing to restore.
        self.save_journal(&journal)?;
        match &after {
            Some(bytes) => write_atomically(path, bytes).map_err(io_err("write", path))?,
            None => fs::remove_file(path).map_err(io_err("remove", path))?,
        }
        tracing::info!(seq, path = %path.display(), key = %finding.key_path, ?action, "personal connection remedied");
        Ok(journal.changes.into_iter().rfind(|c| c.seq == seq).expect("just pushed"))
    }

    /// Restores the file of the last change not yet undone, exactly as it was before.
    pub fn undo_last(&self) -> Result<Change, RemedyError> {
        let mut journal = self.load_journal()?;
        let Some(change) = journal.changes.iter_mut().rev().find(|c| !c.undone) else {
            return Err(RemedyError::NothingToUndo);
        };
        let current = match fs::symlink_metadata(&change.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            _ => Some(sha256_hex(&read_bounded(&change.path)?)),
        };
        if current.as_deref() == Some(change.sha256_before.as_str()) {
            // The edit never landed (the process died before the write): nothing to restore.
        } else if current == change.sha256_after {
            let old = fs::read(&change.backup).map_err(io_err("read the backup", &change.backup))?;
            if sha256_hex(&old) != change.sha256_before {
                return Err(RemedyError::Journal {
                    path: self.journal_path(),
                    reason: format!("the backup {} does not match what was saved", change.backup.display()),
                });
            }
            write_atomically(&change.path, &old).map_err(io_err("restore", &change.path))?;
        } else {
            return Err(RemedyError::ChangedSinceEdit { path: change.path.clone(), backup: change.backup.clone() });
        }
        change.undone = true;
        let undone = change.clone();
        self.save_journal(&journal)?;
        tracing::info!(seq = undone.seq, path = %undone.path.display(), "personal-connection remedy undone");
        Ok(undone)
    }

    /// Every change kept, oldest first.
    pub fn history(&self) -> Result<Vec<Change>, RemedyError> {
        Ok(self.load_journal()?.changes)
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.json")
    }

    fn load_journal(&self) -> Result<Journal, RemedyError> {
        let path = self.journal_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Journal { v: JOURNAL_VERSION, changes: vec![] });
            }
            Err(e) => return Err(RemedyError::Io { what: "read", path, source: e }),
        };
        match serde_json::from_str::<Journal>(&text) {
            Ok(j) if j.v == JOURNAL_VERSION => Ok(j),
            Ok(j) => Err(RemedyError::Journal { path, reason: format!("unknown version {}", j.v) }),
            Err(e) => Err(RemedyError::Journal { path, reason: e.to_string() }),
        }
    }

    fn save_journal(&self, journal: &Journal) -> Result<(), RemedyError> {
        self.ensure_dir()?;
        let path = self.journal_path();
        let text = serde_json::to_string_pretty(journal).expect("the journal serialises");
        write_atomically(&path, text.as_bytes()).map_err(io_err("write", &path))
    }

    fn ensure_dir(&self) -> Result<(), RemedyError> {
        let backups = self.dir.join("backups");
        fs::create_dir_all(&backups).map_err(io_err("create", &backups))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for d in [&self.dir, &backups] {
                fs::set_permissions(d, fs::Permissions::from_mode(0o700)).map_err(io_err("protect", d))?;
            }
        }
        Ok(())
    }

    /// Saves `bytes` (the file before the change) as `backups/<time>-<seq>-<file name>`.
    fn write_backup(&self, seq: u64, at: &str, path: &Path, bytes: &[u8]) -> Result<PathBuf, RemedyError> {
        self.ensure_dir()?;
        let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let stamp: String = at.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let backup = self.dir.join("backups").join(format!("{stamp}-{seq}-{name}"));
        // A new file with owner-only permissions (it holds the secret the entry held).
        write_atomically(&backup, bytes).map_err(io_err("back up to", &backup))?;
        Ok(backup)
    }

    /// Keeps the last [`JOURNAL_KEEP`] changes and deletes the backups of older ones.
    fn trim(&self, journal: &mut Journal) {
        let excess = journal.changes.len().saturating_sub(JOURNAL_KEEP);
        for old in journal.changes.drain(..excess) {
            let _ = fs::remove_file(&old.backup);
        }
    }
}

/// The new content of `path` with `edit` at `pointer`, checked to change nothing else.
pub(crate) fn edited(path: &Path, before: &[u8], pointer: &str, edit: &Edit) -> Result<Vec<u8>, RemedyError> {
    let text = std::str::from_utf8(before)
        .map_err(|_| RemedyError::Edit { path: path.to_path_buf(), source: EditError::Parse("not UTF-8".into()) })?;
    let new = jsonedit::apply(text, pointer, edit)
        .map_err(|source| RemedyError::Edit { path: path.to_path_buf(), source })?;
    let unsafe_edit = || RemedyError::Unsafe { path: path.to_path_buf(), key: pointer.to_string() };
    let (Some(mut expected), Some(actual)) = (meaning(text), meaning(&new)) else {
        return Err(unsafe_edit());
    };
    let tokens = jsonedit::unescape_pointer(pointer).ok_or_else(unsafe_edit)?;
    let (last, parents) = tokens.split_last().ok_or_else(unsafe_edit)?;
    let mut node = &mut expected;
    for t in parents {
        node = node.get_mut(t.as_str()).ok_or_else(unsafe_edit)?;
    }
    let map = node.as_object_mut().ok_or_else(unsafe_edit)?;
    match edit {
        Edit::Remove => {
            map.remove(last.as_str());
        }
        Edit::Set(v) => {
            map.insert(last.clone(), to_value(v));
        }
    }
    if expected != actual {
        return Err(unsafe_edit());
    }
    Ok(new.into_bytes())
}

/// The parsed meaning of a JSON or JSONC text.
fn meaning(text: &str) -> Option<serde_json::Value> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    jsonc_parser::parse_to_serde_value::<serde_json::Value>(body, &Default::default()).ok()
}

fn to_value(v: &CstInputValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        CstInputValue::Null => Value::Null,
        CstInputValue::Bool(b) => Value::Bool(*b),
        CstInputValue::Number(n) => serde_json::from_str(n).unwrap_or(Value::Null),
        CstInputValue::String(s) => Value::String(s.clone()),
        CstInputValue::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        CstInputValue::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, RemedyError> {
    let meta = fs::metadata(path).map_err(io_err("read", path))?;
    if !meta.is_file() {
        return Err(RemedyError::NotApplicable(format!("{} is not a regular file", path.display())));
    }
    if meta.len() > MAX_EDIT_BYTES {
        return Err(RemedyError::TooBig { path: path.to_path_buf() });
    }
    fs::read(path).map_err(io_err("read", path))
}

/// How a `headersHelper` (run by the user's shell) should call the `ema` program at `ema`:
/// plain `ema` when that is what the user's `PATH` finds, else its absolute path, quoted for the
/// shell when needed.
pub fn helper_command(ema: &Path) -> String {
    let Ok(me) = fs::canonicalize(ema) else {
        return "ema".into();
    };
    let exe = if cfg!(windows) { "ema.exe" } else { "ema" };
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| fs::canonicalize(d.join(exe)).is_ok_and(|found| found == me))
    });
    if on_path {
        return "ema".into();
    }
    let text = me.display().to_string();
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The client's name as users know it.
pub fn client_name(client: Client) -> &'static str {
    match client {
        Client::ClaudeDesktop => "Claude Desktop",
        Client::ClaudeCode => "Claude Code",
        Client::VsCode => "VS Code",
        Client::Cursor => "Cursor",
        Client::Windsurf => "Windsurf",
        Client::McpRemote => "mcp-remote",
    }
}
