//! Configuration: the organisation's managed policy, validated once into typed values.
//!
//! Two stages (ripgrep's `LowArgs` -> `HiArgs`): [`raw`] is the JSON shape, [`Policy`] is what
//! the engine uses. Every problem is a [`ConfigError`] naming the file, the key (a JSON path
//! such as `connectors[2].mcp_url`) and the fix, because the person reading it is an admin
//! with an MDM console, not a Rust developer. Where the file is looked for is in [`locate`].
//!
//! The policy may carry client secrets (delivered by MDM, as VS Code's
//! `mcp.enterpriseManagedAuth.idp` does); they are wrapped in [`ClientSecret`] at once and never
//! echoed in an error.

pub mod import;
mod locate;
mod raw;
mod user;

/// Defined with the code that performs it (`oauth::client_auth`); named here, where the policy
/// chooses it.
pub use crate::oauth::client_auth::ClientAuth;
pub use locate::{ConfigSource, locate_policy, managed_policy_path, user_policy_path};
pub use user::{UserSettings, user_settings_path};

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::files::bounded_read::{BoundedReadError, read_regular_text};
use crate::secret::{ClientSecret, PrivateKeyPem};
use crate::url_policy::{UrlPolicyError, check_endpoint_url};

/// The only policy format version this build understands.
pub const POLICY_SCHEMA_VERSION: u32 = 1;

/// A validated organisation policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it was read from (shown in status and diagnostics).
    pub source: ConfigSource,
    pub organization: Organization,
    pub idp: IdpConfig,
    pub connectors: Vec<ConnectorConfig>,
    pub settings: Settings,
}

#[derive(Debug, Clone)]
pub struct Organization {
    pub name: String,
    /// Lower-cased domains that identify company accounts (e.g. `example.com`).
    pub email_domains: Vec<String>,
    pub help_desk: Option<HelpDesk>,
}

#[derive(Debug, Clone)]
pub struct HelpDesk {
    pub name: String,
    pub url: Url,
}

/// The company IdP: where the user signs in and where ID-JAGs come from.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// OIDC issuer (OIDC Discovery §4.3: must equal the discovered `issuer`).
    pub issuer: Url,
    /// What users call the IdP ("Okta"), for "Sign in with Okta"; from the policy, else guessed
    /// from the issuer's host ([`IdpConfig::name`]).
    pub display_name: Option<String>,
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// Requested at sign-in; always contains `openid` and `offline_access`.
    pub scopes: Vec<String>,
    /// OIDC `prompt` values sent at sign-in (OIDC Core §3.1.2.1), empty by default. `consent`
    /// is for OPs that honour `offline_access` only with `prompt=consent` (§11), as
    /// oidc-provider does: without it they issue no refresh token.
    pub prompt: Vec<String>,
    /// Which IdP token the token exchange sends as its subject.
    pub exchange_subject: ExchangeSubject,
}

/// The subject token of the token exchange (RFC 8693 §2.1 `subject_token_type`).
///
/// The ID-JAG draft from -02 on lets the client send the IdP refresh token instead of the ID
/// token; Okta documents it for renewal (its ID-JAGs live 5 minutes), and it saves the ID-token
/// refresh when an IdP renews sessions without new ID tokens (OIDC Core §12.2 lets it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExchangeSubject {
    /// Learn it from the IdP: a live ID token while there is one; after that the refresh token,
    /// tried once per IdP and remembered, falling back to refreshing the ID token when refused.
    #[default]
    Auto,
    /// Only the ID token (the IdP refuses refresh tokens as subjects).
    IdToken,
    /// Always the refresh token (the IdP wants it).
    RefreshToken,
}

impl ExchangeSubject {
    /// The policy's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeSubject::Auto => "auto",
            ExchangeSubject::IdToken => "id_token",
            ExchangeSubject::RefreshToken => "refresh_token",
        }
    }
}

impl IdpConfig {
    /// The IdP's name for buttons: the policy's `display_name`, else a well-known provider told
    /// from the issuer's host (`*.okta.com` is Okta), else the host itself.
    pub fn name(&self) -> String {
        if let Some(n) = &self.display_name {
            return n.clone();
        }
        let host = self.issuer.host_str().unwrap_or_default();
        let known = [
            (".okta.com", "Okta"),
            (".oktapreview.com", "Okta"),
            ("login.microsoftonline.com", "Microsoft Entra ID"),
            ("accounts.google.com", "Google"),
            (".auth0.com", "Auth0"),
            (".onelogin.com", "OneLogin"),
            (".pingone.com", "PingOne"),
        ];
        known
            .iter()
            .find(|(suffix, _)| host == suffix.trim_start_matches('.') || host.ends_with(suffix))
            .map_or_else(|| host.to_string(), |(_, name)| (*name).to_string())
    }
}

/// A connector the organisation offers through the IdP.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub id: String,
    pub display_name: String,
    /// The MCP server (RFC 9728 protected resource).
    pub mcp_url: Url,
    /// Pinned authorization-server issuer; a discovered AS that differs is refused.
    pub authorization_server: Option<Url>,
    pub scopes: Vec<String>,
    /// Our client id at the connector's authorization server.
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// Personal accounts are disallowed for this connector: only the IdP path is allowed.
    pub idp_only: bool,
}

/// Timing and concurrency knobs, with defaults a careful admin would pick.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A connector is "expiring soon" when its token has less than this left and cannot be renewed.
    pub expiry_warning: Duration,
    /// Renew a connector's token this long before it expires.
    pub renew_before_expiry: Duration,
    /// How many connectors are connected at once.
    pub max_parallel_connectors: usize,
    /// Total time allowed for one HTTP request.
    pub request_timeout: Duration,
    /// Desktop notifications (sign-in needed, failures, expiry warnings).
    pub notifications: bool,
    /// Start the tray app at login.
    pub start_at_login: bool,
    /// The keys the organisation's policy set: the user cannot change them (shown as locked).
    pub locked: Vec<&'static str>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            expiry_warning: Duration::from_secs(10 * 60),
            renew_before_expiry: Duration::from_secs(120),
            max_parallel_connectors: 64,
            request_timeout: Duration::from_secs(15),
            notifications: true,
            start_at_login: false,
            locked: Vec::new(),
        }
    }
}

/// A problem with a policy file: which file, which key, what is wrong and how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {key}: {problem}. Fix: {fix}")]
pub struct ConfigError {
    pub file: PathBuf,
    /// JSON path of the offending key, or `(file)` for the whole file.
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    fn new(file: &Path, key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError { file: file.to_path_buf(), key: key.into(), problem: problem.into(), fix: fix.into() }
    }

    /// A stable code for the UI and diagnostics.
    pub fn code(&self) -> &'static str {
        "config-invalid"
    }
}

/// Where a policy's `private_key_jwt` `key_file` may point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFiles {
    /// Any path: a policy an admin deployed, or a file the user chose (`--config`, `ema setup FILE`).
    Anywhere,
    /// Only a relative path inside the policy's own folder (no absolute path, no `..`, no symlink
    /// out of it): a policy fetched from a URL (`ema setup https://...`), whose author is whoever
    /// answered, must not make the app read `/etc/...`, `~/.ssh/...` or a device.
    InPolicyFolder,
}

/// The largest key file we read: a PEM private key is a few KiB.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The largest policy file we read: a policy is a few kilobytes; anything bigger is a mistake.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

impl Policy {
    /// Reads and validates the policy at `path`.
    pub fn load(source: ConfigSource) -> Result<Policy, ConfigError> {
        let path = source.path().to_path_buf();
        let text = read_regular_text(&path, MAX_POLICY_BYTES).map_err(|e| {
            let fix = match &e {
                BoundedReadError::Io(_) => "check the path and its permissions, or pass --config",
                BoundedReadError::Directory => "point to the policy JSON file inside it (usually policy.json)",
                BoundedReadError::NotRegular(_) => "point to the policy JSON file itself",
                BoundedReadError::TooLarge { .. } => "point to the policy JSON itself, not another file",
                _ => "save the policy as UTF-8 JSON",
            };
            let problem = match e {
                BoundedReadError::TooLarge { .. } => format!("{e} for a policy"),
                BoundedReadError::NotText => "cannot be read as UTF-8 text: it is not valid UTF-8".to_string(),
                e => e.to_string(),
            };
            ConfigError::new(&path, "(file)", problem, fix)
        })?;
        Policy::parse(&text, source)
    }

    /// Parses and validates policy text; `source` names the file in errors and resolves
    /// relative key-file paths.
    pub fn parse(text: &str, source: ConfigSource) -> Result<Policy, ConfigError> {
        Policy::parse_with(text, source, KeyFiles::Anywhere)
    }

    /// [`Policy::parse`], with a rule for where `key_file` may point.
    pub fn parse_with(text: &str, source: ConfigSource, key_files: KeyFiles) -> Result<Policy, ConfigError> {
        let path = source.path().to_path_buf();
        // Some Windows editors save a UTF-8 byte-order mark: it is not part of the JSON.
        let de = &mut serde_json::Deserializer::from_str(text.trim_start_matches('\u{feff}'));
        let raw: raw::RawPolicy = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = match e.path().to_string() {
                p if p == "." || p == "?" => "(file)".to_string(),
                p => p.trim_end_matches(".?").to_string(),
            };
            let inner = e.into_inner();
            ConfigError::new(
                &path,
                key,
                redact_serde_message(&inner.to_string()),
                "compare with examples/policy.example.json (the complete, documented format)",
            )
        })?;
        validate::policy(raw, source, key_files)
    }

    /// The connector with this id.
    pub fn connector(&self, id: &str) -> Option<&ConnectorConfig> {
        self.connectors.iter().find(|c| c.id == id)
    }
}

/// serde's messages quote offending string values ("invalid value: string \"...\""), which may
/// be a secret in the wrong place: keep the message's shape, drop quoted values.
fn redact_serde_message(message: &str) -> String {
    // `unknown variant `VALUE`, expected ...`: the first backticked name is the input's value,
    // not one of ours (it may contain backticks itself, so cut at the last "`, expected").
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let tail = rest.rfind("`, expected").or_else(|| rest.rfind("`, there are no variants"));
        return match tail {
            Some(i) => format!("unknown variant `…{}", redact_serde_message(&rest[i..])),
            None => "unknown variant `…`".to_string(),
        };
    }
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // Quoted values are Debug-formatted: skip escapes such as \" so they cannot end the quote.
            '\\' if in_quote => {
                chars.next();
            }
            '"' if !in_quote => {
                in_quote = true;
                out.push_str("\"…");
            }
            '"' => {
                in_quote = false;
                out.push('"');
            }
            _ if in_quote => {}
            '`' => {
                // serde names expected fields/variants in backticks: those are ours, keep them.
                out.push('`');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '`' {
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

mod validate;

#[cfg(test)]
mod file_read_tests;
#[cfg(test)]
mod tests;
