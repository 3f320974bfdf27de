//! Loading a policy IT sent (a file, or an https URL) as the user's own policy, for a computer
//! without a managed one.
//!
//! The text is validated exactly as a managed policy is ([`Policy::parse`], against the place it
//! will live, so relative key files resolve as they will be used), and only then written, atomically,
//! to [`user_policy_path`]; a policy already there is kept beside it as `policy.json.bak`. A
//! managed policy always wins (see `locate`), so loading one while a managed policy exists is
//! refused: it would never be used. A URL must be https (http only on loopback), is fetched
//! without following redirects, and its answer is capped at [`MAX_POLICY_BYTES`].

use std::path::{Path, PathBuf};

use url::Url;

use super::{ConfigError, ConfigSource, KeyFiles, MAX_POLICY_BYTES, Policy};
use crate::files::atomic_file::write_atomically;
use crate::files::bounded_read::{BoundedReadError, read_regular_text};
use crate::http::{Transport, TransportError, display_url};

/// How long fetching a policy from a URL may take (connect, send, read).
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why a policy could not be loaded. Each names what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error(
        "a managed policy is in place at {0}: it always wins, so a configuration loaded here would not be used. \
         Ask IT to update the managed policy"
    )]
    ManagedPolicyExists(PathBuf),
    #[error("cannot read {path}: {reason}. Check the path, or save the file IT sent and choose it again")]
    Read { path: PathBuf, reason: String },
    #[error("{0} is not a policy file: it is larger than {MAX_POLICY_BYTES} bytes")]
    TooLarge(String),
    #[error("{0} is not UTF-8 text: save the policy as UTF-8 JSON")]
    NotText(String),
    #[error("cannot fetch {url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: TransportError,
    },
    #[error("{url} answered HTTP {status}, not the policy: check the link IT sent")]
    Http { url: String, status: u16 },
    #[error("{url} redirects elsewhere; give the final https link (redirects are not followed)")]
    Redirect { url: String },
    #[error("this is not a valid EMA policy: {0}")]
    Invalid(#[from] ConfigError),
    #[error("cannot save the policy to {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("there is no configuration directory for this user")]
    NoConfigDir,
}

impl ImportError {
    /// A stable code for the UI and tests.
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::ManagedPolicyExists(_) => "managed-policy-exists",
            ImportError::Read { .. } => "policy-unreadable",
            ImportError::TooLarge(_) => "policy-too-large",
            ImportError::NotText(_) => "policy-not-text",
            ImportError::Fetch { .. } => "policy-fetch-failed",
            ImportError::Http { .. } | ImportError::Redirect { .. } => "policy-fetch-refused",
            ImportError::Invalid(_) => "config-invalid",
            ImportError::Write { .. } | ImportError::NoConfigDir => "policy-write-failed",
        }
    }
}

/// Whether `input` is a URL (`https://` or `http://`) rather than a file.
fn is_url(input: &str) -> bool {
    let input = input.trim();
    input.starts_with("https://") || input.starts_with("http://")
}

/// Where the `key_file` of a policy read from `input` may point: anywhere for a file the user
/// chose, only inside the policy's folder for one fetched from a URL ([`KeyFiles`]).
pub fn key_files_for(input: &str) -> KeyFiles {
    if is_url(input) { KeyFiles::InPolicyFolder } else { KeyFiles::Anywhere }
}

/// Where the policy comes from: a URL when it starts with `https://` or `http://`, else a file
/// (a leading `~/` is the home directory), read as a regular file of at most [`MAX_POLICY_BYTES`].
pub async fn read_source(input: &str, transport: &dyn Transport) -> Result<String, ImportError> {
    let input = input.trim();
    if is_url(input) {
        // The link as typed may carry a token (a signed download link): only its scrubbed form is shown.
        let url = Url::parse(input)
            .map_err(|e| ImportError::Read { path: crate::redact::scrub(input, 200).into(), reason: e.to_string() })?;
        return fetch(&url, transport).await;
    }
    let path = match input.strip_prefix("~/") {
        Some(rest) => dirs::home_dir().map_or_else(|| PathBuf::from(input), |h| h.join(rest)),
        None => PathBuf::from(input),
    };
    read_regular_text(&path, MAX_POLICY_BYTES).map_err(|e| match e {
        BoundedReadError::TooLarge { .. } => ImportError::TooLarge(path.display().to_string()),
        BoundedReadError::NotText => ImportError::NotText(path.display().to_string()),
        BoundedReadError::Io(e) => ImportError::Read { path: path.clone(), reason: e.to_string() },
        e => ImportError::Read { path: path.clone(), reason: format!("it {e}") },
    })
}

async fn fetch(url: &Url, transport: &dyn Transport) -> Result<String, ImportError> {
    let shown = display_url(url);
    let request = http::Request::builder()
        .uri(url.as_str())
        .header("accept", "application/json")
        .body(Vec::new())
        .map_err(|e| ImportError::Read { path: shown.clone().into(), reason: e.to_string() })?;
    let response = transport.send(request).await.map_err(|source| match source {
        TransportError::TooLarge { .. } => ImportError::TooLarge(shown.clone()),
        source => ImportError::Fetch { url: shown.clone(), source },
    })?;
    let status = response.status();
    if status.is_redirection() {
        return Err(ImportError::Redirect { url: shown });
    }
    if !status.is_success() {
        return Err(ImportError::Http { url: shown, status: status.as_u16() });
    }
    String::from_utf8(response.into_body()).map_err(|_| ImportError::NotText(shown))
}

/// Validates `text` as the policy at `dest` (its `key_file`s under `key_files`, see
/// [`key_files_for`]) and writes it there, unless a policy exists at `managed`. Returns the
/// policy as it will be used.
pub fn install(text: &str, key_files: KeyFiles, dest: &Path, managed: &Path) -> Result<Policy, ImportError> {
    if managed.exists() {
        return Err(ImportError::ManagedPolicyExists(managed.to_path_buf()));
    }
    let policy = Policy::parse_with(text, ConfigSource::User(dest.to_path_buf()), key_files)?;
    let write_error = |e: std::io::Error| ImportError::Write { path: dest.to_path_buf(), reason: e.to_string() };
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    if dest.exists() {
        let mut backup = dest.as_os_str().to_owned();
        backup.push(".bak");
        std::fs::copy(dest, PathBuf::from(backup)).map_err(write_error)?;
    }
    write_atomically(dest, text.as_bytes()).map_err(write_error)?;
    Ok(policy)
}

/// [`read_source`] then [`install`] at the user's policy path, refused when the OS's managed
/// policy exists.
pub async fn import_user_policy(input: &str, transport: &dyn Transport) -> Result<(Policy, PathBuf), ImportError> {
    let text = read_source(input, transport).await?;
    let dest = super::user_policy_path().ok_or(ImportError::NoConfigDir)?;
    let policy = install(&text, key_files_for(input), &dest, &super::managed_policy_path())?;
    Ok((policy, dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeTransport;

    const POLICY: &str = r#"{"schema_version":1,"organization":{"name":"Acme"},
        "idp":{"issuer":"https://idp.acme.example","client_id":"ema","client_auth":{"method":"none"}}}"#;

    #[tokio::test]
    async fn a_file_is_validated_then_written_and_the_old_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let sent = dir.path().join("sent.json");
        std::fs::write(&sent, POLICY).unwrap();
        let dest = dir.path().join("config/ema/policy.json");
        let managed = dir.path().join("etc/ema/policy.json");
        let text = read_source(sent.to_str().unwrap(), &FakeTransport::default()).await.unwrap();
        let policy = install(&text, KeyFiles::Anywhere, &dest, &managed).unwrap();
        assert_eq!(policy.organization.name, "Acme");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), POLICY);
        let newer = POLICY.replace("Acme", "Acme Corp");
        install(&newer, KeyFiles::Anywhere, &dest, &managed).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("config/ema/policy.json.bak")).unwrap(), POLICY);
    }

    #[tokio::test]
    async fn an_invalid_policy_is_refused_and_the_saved_one_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("policy.json");
        let managed = dir.path().join("managed.json");
        install(POLICY, KeyFiles::Anywhere, &dest, &managed).unwrap();
        let broken = POLICY.replace("https://idp.acme.example", "http://idp.acme.example");
        let err = install(&broken, KeyFiles::Anywhere, &dest, &managed).unwrap_err();
        assert_eq!(err.code(), "config-invalid");
        assert!(err.to_string().contains("idp.issuer"), "{err}");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), POLICY);
        let err = install("not json", KeyFiles::Anywhere, &dest, &managed).unwrap_err();
        assert_eq!(err.code(), "config-invalid");
    }

    #[test]
    fn a_managed_policy_wins_so_loading_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let managed = dir.path().join("managed.json");
        std::fs::write(&managed, POLICY).unwrap();
        let err = install(POLICY, KeyFiles::Anywhere, &dir.path().join("policy.json"), &managed).unwrap_err();
        assert_eq!(err.code(), "managed-policy-exists");
        assert!(err.to_string().contains("always wins"), "{err}");
        assert!(!dir.path().join("policy.json").exists());
    }

    #[tokio::test]
    async fn urls_must_answer_200_without_redirect_and_http_is_refused_off_loopback() {
        let t = FakeTransport::default();
        t.json("https://it.acme.example/ema/policy.json", 200, POLICY);
        t.json("https://it.acme.example/moved.json", 302, "");
        t.json("https://it.acme.example/missing.json", 404, "");
        let text = read_source("https://it.acme.example/ema/policy.json", &t).await.unwrap();
        assert_eq!(text, POLICY);
        let err = read_source("https://it.acme.example/moved.json", &t).await.unwrap_err();
        assert_eq!(err.code(), "policy-fetch-refused");
        assert!(err.to_string().contains("redirects"), "{err}");
        let err = read_source("https://it.acme.example/missing.json", &t).await.unwrap_err();
        assert!(err.to_string().contains("HTTP 404"), "{err}");
        let real = crate::http::HttpTransport::new(std::time::Duration::from_secs(2)).unwrap();
        let err = read_source("http://it.acme.example/policy.json", &real).await.unwrap_err();
        assert_eq!(err.code(), "policy-fetch-failed");
        assert!(err.to_string().contains("https"), "{err}");
        // A password in the link is refused and never shown.
        let err = read_source("https://ann:CANARY-pw@it.acme.example/p.json?sig=CANARY-sig", &real).await.unwrap_err();
        assert_eq!(err.code(), "policy-fetch-failed");
        assert!(!err.to_string().contains("CANARY"), "{err}");
    }

    #[tokio::test]
    async fn unreadable_oversized_and_binary_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let t = FakeTransport::default();
        let err = read_source(dir.path().join("nope.json").to_str().unwrap(), &t).await.unwrap_err();
        assert_eq!(err.code(), "policy-unreadable");
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_POLICY_BYTES as usize + 1]).unwrap();
        assert_eq!(read_source(big.to_str().unwrap(), &t).await.unwrap_err().code(), "policy-too-large");
        let bin = dir.path().join("bin.json");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
        assert_eq!(read_source(bin.to_str().unwrap(), &t).await.unwrap_err().code(), "policy-not-text");
        assert_eq!(read_source(dir.path().to_str().unwrap(), &t).await.unwrap_err().code(), "policy-unreadable");
    }
}
