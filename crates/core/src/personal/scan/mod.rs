//! Personal-account connection scan: which AI clients on this machine reach a company
//! connector with a credential that did not come from the company IdP.
//!
//! Why: an admin can mark a connector "IdP only" in the policy, but nothing stops an employee
//! from pasting a personal Linear API key into Claude Desktop or signing Cursor in to Atlassian
//! with a private account. Those credentials live in other clients' MCP configuration files and
//! token caches (where, per client: `docs` "Where personal connections hide"). This module reads
//! them, matches each MCP server entry to a connector of the catalog ([`Catalog`]), classifies the
//! credential it carries ([`CredentialClass`]) and says what to do ([`Finding`]).
//!
//! Rules this code keeps:
//! - **No secret leaves the file it was found in.** A finding carries a [`Fingerprint`] (first
//!   bytes of a SHA-256) of the value, never the value: not in `Debug`, not in JSON, not in the
//!   "why" text. Header, argument and helper strings are never echoed.
//! - **Keep going.** Unreadable, oversized, looping or malformed files become
//!   [`CredentialClass::CouldNotRead`] findings; nothing panics or aborts the scan. Missing files
//!   are simply skipped: most machines have one or two of these clients, not all.
//! - **Bounded.** A per-file size cap and a cap on files visited ([`ScanLimits`]); symlinks are
//!   resolved once with a visited set, so a loop or a second path to the same file is harmless.
//! - **Injectable.** Every location comes from [`ScanRoots`], so tests scan a fixture home;
//!   [`ScanRoots::for_current_user`] builds the real per-OS locations.
//!
//! Remediation (removing or replacing an entry, with backups and undo) is in [`crate::personal::remedy`];
//! a finding carries what it needs: the file, the entry's JSON pointer and the file's digest.

mod entry;
mod fsread;
mod identity;
mod known;
mod run;
mod sources;
mod watch;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use url::Url;

use crate::config::Policy;
use crate::secret::Fingerprint;

pub use identity::IdentityKind;
pub use watch::WatchPlan;

/// Where the scan looks: the user's home, the per-user application-config directory, project
/// directories and the machine-wide managed directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRoots {
    /// The user's home directory (`~`): `~/.claude.json`, `~/.cursor`, `~/.codeium`, `~/.mcp-auth`.
    pub home: PathBuf,
    /// The per-user application-config directory where Claude Desktop and VS Code keep their
    /// files: `~/.config` on Linux, `~/Library/Application Support` on macOS, `%APPDATA%` on Windows.
    pub app_config_dir: PathBuf,
    /// Extra project (repository) directories to look into for `.mcp.json`, `.vscode/mcp.json`
    /// and `.cursor/mcp.json`, on top of the projects Claude Code lists in `~/.claude.json`.
    pub project_dirs: Vec<PathBuf>,
    /// Machine-wide directories holding Claude Code's `managed-mcp.json`.
    pub managed_dirs: Vec<PathBuf>,
}

impl ScanRoots {
    /// Roots laid out as on Linux under `home` (`home/.config` as the application-config
    /// directory), with no extra project or managed directory. Meant for tests and tools.
    pub fn under_home(home: impl Into<PathBuf>) -> Self {
        let home = home.into();
        ScanRoots { app_config_dir: home.join(".config"), home, project_dirs: Vec::new(), managed_dirs: Vec::new() }
    }

    /// The real locations for the user running this process, or `None` when the home
    /// directory cannot be determined.
    pub fn for_current_user() -> Option<Self> {
        let home = dirs::home_dir()?;
        // Linux: $XDG_CONFIG_HOME or ~/.config; macOS: ~/Library/Application Support;
        // Windows: %APPDATA% (roaming). That is where Claude Desktop and VS Code write.
        let app_config_dir = dirs::config_dir().unwrap_or_else(|| home.join(".config"));
        #[cfg(target_os = "linux")]
        let managed_dirs = vec![PathBuf::from("/etc/claude-code")];
        #[cfg(target_os = "macos")]
        let managed_dirs = vec![PathBuf::from("/Library/Application Support/ClaudeCode")];
        #[cfg(target_os = "windows")]
        let managed_dirs = vec![PathBuf::from(r"C:\Program Files\ClaudeCode")];
        #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
        let managed_dirs = Vec::new();
        Some(ScanRoots { home, app_config_dir, project_dirs: Vec::new(), managed_dirs })
    }
}

/// A connector of the company catalog, as far as the scan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogConnector {
    /// The policy's connector id (`linear`); also the key into the built-in table of
    /// well-known hosts, packages and environment variables.
    pub id: String,
    /// Shown in findings.
    pub display_name: String,
    /// The company's MCP endpoint for this connector: entries whose URL has the same host
    /// (and port) match it.
    pub mcp_url: Url,
    /// Personal credentials are disallowed: only the IdP path is allowed.
    pub idp_only: bool,
}

/// The connectors entries are matched against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    connectors: Vec<CatalogConnector>,
}

impl Catalog {
    /// A catalog of these connectors.
    pub fn new(connectors: Vec<CatalogConnector>) -> Self {
        Catalog { connectors }
    }

    /// The connectors of a validated policy.
    pub fn from_policy(policy: &Policy) -> Self {
        Catalog::new(
            policy
                .connectors
                .iter()
                .map(|c| CatalogConnector {
                    id: c.id.clone(),
                    display_name: c.display_name.clone(),
                    mcp_url: c.mcp_url.clone(),
                    idp_only: c.idp_only,
                })
                .collect(),
        )
    }

    /// The connectors, in policy order.
    pub fn connectors(&self) -> &[CatalogConnector] {
        &self.connectors
    }

    fn get(&self, id: &str) -> Option<&CatalogConnector> {
        self.connectors.iter().find(|c| c.id == id)
    }
}

/// What a company account looks like in a decodable token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompanyIdentity {
    /// Lower-case e-mail domains of company accounts (`example.com`).
    pub email_domains: Vec<String>,
    /// Issuers of company tokens: the company IdP's issuer.
    pub issuers: Vec<String>,
}

impl CompanyIdentity {
    /// The organisation's e-mail domains and the IdP issuer of a validated policy.
    pub fn from_policy(policy: &Policy) -> Self {
        CompanyIdentity {
            email_domains: policy.organization.email_domains.clone(),
            issuers: vec![policy.idp.issuer.as_str().to_string()],
        }
    }
}

/// Bounds on the work one scan does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanLimits {
    /// A bigger file is reported ([`CredentialClass::CouldNotRead`]) without being read.
    pub max_file_bytes: u64,
    /// Existing files opened (or tried) before the scan stops looking; missing ones don't count.
    pub max_files: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        // `~/.claude.json` of a heavy user is a few hundred KiB; 4 MiB leaves room and still
        // keeps a scan's memory small. 5000 files is far beyond a real machine's count.
        ScanLimits { max_file_bytes: 4 * 1024 * 1024, max_files: 5000 }
    }
}

/// The AI client a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub enum Client {
    /// Anthropic's desktop app.
    #[serde(rename = "claude_desktop")]
    ClaudeDesktop,
    /// Anthropic's CLI (`~/.claude.json`, `.mcp.json`, managed `managed-mcp.json`).
    #[serde(rename = "claude_code")]
    ClaudeCode,
    /// Visual Studio Code (and Insiders).
    #[serde(rename = "vscode")]
    VsCode,
    /// Cursor.
    #[serde(rename = "cursor")]
    Cursor,
    /// Windsurf (Codeium).
    #[serde(rename = "windsurf")]
    Windsurf,
    /// The `mcp-remote` stdio-to-HTTP bridge and its OAuth token cache.
    #[serde(rename = "mcp_remote")]
    McpRemote,
}

/// Which configuration layer a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Scope {
    /// The user's own configuration, for every project.
    #[serde(rename = "user")]
    User,
    /// Claude Code's per-project entries kept in the user's `~/.claude.json`.
    #[serde(rename = "local")]
    Local,
    /// A file inside a project directory (`.mcp.json`, `.vscode/mcp.json`, `.cursor/mcp.json`).
    #[serde(rename = "project")]
    Project,
    /// Machine-wide configuration deployed by IT.
    #[serde(rename = "managed")]
    Managed,
    /// A client's cache of OAuth tokens.
    #[serde(rename = "token_cache")]
    TokenCache,
}

/// Where a static secret sits in an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum SecretLocation {
    /// An HTTP header (`Authorization`, `X-API-Key`, ...).
    #[serde(rename = "header")]
    Header,
    /// An environment variable of a stdio server.
    #[serde(rename = "env")]
    Env,
    /// A command-line argument (`--access-token ...`).
    #[serde(rename = "argument")]
    Argument,
    /// A query parameter of the server URL (`?api_key=...`).
    #[serde(rename = "url_query")]
    UrlQuery,
    /// Inside a `headersHelper` command line.
    #[serde(rename = "helper")]
    Helper,
}

/// What kind of credential an entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind")]
pub enum CredentialClass {
    /// Goes through this app: `headersHelper` running `ema headers <id>`, or VS Code's
    /// `oauth.enterpriseManaged: true`.
    #[serde(rename = "managed")]
    Managed,
    /// A long-lived secret written into (or referenced from) the entry.
    #[serde(rename = "static_token")]
    StaticToken {
        /// Where it sits.
        location: SecretLocation,
        /// The header, variable, argument or parameter name (never the value).
        name: String,
        /// `false` when the entry only references it (`${env:NAME}`, `${input:id}`): the value
        /// is elsewhere and was not seen, so there is no fingerprint.
        value_in_file: bool,
    },
    /// A per-user OAuth grant found in a client's token cache.
    #[serde(rename = "personal_oauth")]
    PersonalOAuth {
        /// Whose account, as far as the token says.
        identity: IdentityKind,
        /// The `email` (or e-mail-shaped username) claim, when the token is a readable JWT.
        email: Option<String>,
        /// The `iss` claim, when the token is a readable JWT.
        issuer: Option<String>,
    },
    /// A `headersHelper` or local program whose credential the scan cannot see.
    #[serde(rename = "opaque_helper")]
    OpaqueHelper,
    /// No credential in the entry (an OAuth-capable URL, or a bridge whose tokens are cached
    /// elsewhere and reported from there).
    #[serde(rename = "no_credential")]
    NoCredential,
    /// The file could not be checked.
    #[serde(rename = "could_not_read")]
    CouldNotRead {
        /// Why, in plain words (`file is 50.0 MiB, over the 4 MiB limit`).
        reason: String,
    },
}

impl CredentialClass {
    /// The stable snake_case name of the class (as serialised in `kind`).
    pub fn code(&self) -> &'static str {
        match self {
            CredentialClass::Managed => "managed",
            CredentialClass::StaticToken { .. } => "static_token",
            CredentialClass::PersonalOAuth { .. } => "personal_oauth",
            CredentialClass::OpaqueHelper => "opaque_helper",
            CredentialClass::NoCredential => "no_credential",
            CredentialClass::CouldNotRead { .. } => "could_not_read",
        }
    }
}

/// What the admin (or the user) should make of a finding. Ordered most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Verdict {
    /// A personal credential for an IdP-only connector.
    #[serde(rename = "flagged")]
    Flagged,
    /// Cannot be judged from the files: a person should look (opaque helper, unreadable file).
    #[serde(rename = "review")]
    Review,
    /// Allowed: managed, the company account, no credential, or a connector that allows
    /// personal accounts (or none of the catalog's).
    #[serde(rename = "ok")]
    Ok,
}

/// How an entry was matched to a catalog connector, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum MatchBasis {
    /// Same host (and port) as the connector's `mcp_url` in the policy.
    #[serde(rename = "mcp_url")]
    McpUrl,
    /// A well-known host of the connector's vendor.
    #[serde(rename = "known_host")]
    KnownHost,
    /// A well-known package (npm / PyPI) of an MCP server for it.
    #[serde(rename = "package")]
    Package,
    /// A well-known environment variable name for it.
    #[serde(rename = "env_var")]
    EnvVar,
    /// A secret value with the vendor's documented prefix (`sbp_`, `lin_api_`).
    #[serde(rename = "secret_prefix")]
    SecretPrefix,
    /// Only the entry's name (`"linear": {...}`).
    #[serde(rename = "server_name")]
    ServerName,
}

/// One MCP server entry (or token cache, or unreadable file) and what to make of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A short name for the finding, for `ema fix <id>`: stable while the file's entry and its
    /// credential are, different once the credential changed (`<entry>-<credential>`, hex).
    pub id: String,
    /// The client the file belongs to.
    pub client: Client,
    /// The configuration layer.
    pub scope: Scope,
    /// The file.
    pub path: PathBuf,
    /// RFC 6901 JSON pointer of the entry in the file (`/mcpServers/linear`); empty for a whole file.
    pub key_path: String,
    /// The entry's name in the client's configuration.
    pub server_name: Option<String>,
    /// The matched catalog connector's id.
    pub connector: Option<String>,
    /// How it was matched.
    pub matched_by: Option<MatchBasis>,
    /// The credential it carries.
    pub class: CredentialClass,
    /// Flagged, review or ok.
    pub verdict: Verdict,
    /// Why, in plain words.
    pub why: String,
    /// What to do, in plain words.
    pub what_to_do: String,
    /// Identifies the secret value without revealing it.
    pub fingerprint: Option<Fingerprint>,
    /// SHA-256 (hex) of the file as the scan read it; `None` when it could not be read.
    pub file_sha256: Option<String>,
}

/// The short id of a finding: `<entry>-<credential>`, e.g. `1a2b3c4d-e5f6`.
///
/// The entry part is 8 hex digits of a SHA-256 of the file's path and the entry's JSON pointer;
/// the credential part is 4 hex digits of a SHA-256 of the credential's class and
/// [`Fingerprint`]. So an id stays the same across rescans while the entry's credential does,
/// and names a different credential when it changed: `ema fix ID` then refuses to act on what
/// the user has not seen ([`ScanReport::lookup`]). Both parts are hashes of hashes: safe to print.
fn finding_id(path: &Path, key_path: &str, class: &CredentialClass, fingerprint: Option<&Fingerprint>) -> String {
    let mut input = path.to_string_lossy().into_owned().into_bytes();
    input.push(0);
    input.extend_from_slice(key_path.as_bytes());
    let entry = crate::digest::sha256_hex(&input);
    let credential = format!("{}\0{}", class.code(), fingerprint.map_or("", Fingerprint::as_str));
    let credential = crate::digest::sha256_hex(credential.as_bytes());
    format!("{}-{}", &entry[..8], &credential[..4])
}

/// The entry part of an id (before the `-`): which entry of which file, whatever its credential.
fn entry_part(id: &str) -> &str {
    id.split_once('-').map_or(id, |(entry, _)| entry)
}

/// What a finding id names in a (fresh) scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'r> {
    /// The same entry with the same credential.
    Found(&'r Finding),
    /// The same entry, but its credential is no longer the one the id was given for: the user
    /// acted on a scan that is out of date.
    CredentialChanged(&'r Finding),
    /// No such entry (any more).
    Missing,
}

impl Finding {
    /// Whether this is a personal credential for an IdP-only connector.
    pub fn is_flagged(&self) -> bool {
        self.verdict == Verdict::Flagged
    }
}

/// The result of one scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// Sorted by verdict (flagged first), client, file and key path.
    pub findings: Vec<Finding>,
    /// Files read and parsed (or attempted: unreadable ones count in `findings`).
    pub files_read: usize,
    /// MCP server entries and cached grants looked at.
    pub entries_seen: usize,
    /// `true` when [`ScanLimits::max_files`] stopped the scan before it looked everywhere.
    pub file_limit_reached: bool,
    /// Wall-clock time the scan took.
    #[serde(rename = "duration_ms", serialize_with = "serialize_millis")]
    pub duration: Duration,
    /// Every file the scan looked for (present or not): what [`WatchPlan`] watches.
    #[serde(skip)]
    pub looked_at: Vec<PathBuf>,
    /// Every directory the scan listed (mcp-remote's cache).
    #[serde(skip)]
    pub listed_dirs: Vec<PathBuf>,
}

impl ScanReport {
    /// The finding `id` (from an earlier scan) names in this scan.
    pub fn lookup(&self, id: &str) -> Lookup<'_> {
        if let Some(f) = self.findings.iter().find(|f| f.id == id) {
            return Lookup::Found(f);
        }
        // An id without its credential part (as ids had before) never matches a finding:
        // binding the id to the credential is the point.
        match self.findings.iter().find(|f| id.contains('-') && entry_part(&f.id) == entry_part(id)) {
            Some(f) => Lookup::CredentialChanged(f),
            None => Lookup::Missing,
        }
    }

    /// The flagged findings.
    pub fn flagged(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.is_flagged())
    }
}

fn serialize_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub use run::scan;
use run::{Ctx, Site, json_pointer};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointer_escapes_per_rfc_6901() {
        assert_eq!(
            json_pointer(["projects", "/home/a~b/x", "mcpServers", "lin"]),
            "/projects/~1home~1a~0b~1x/mcpServers/lin"
        );
        assert_eq!(json_pointer([]), "");
    }

    #[test]
    fn serialised_names_are_stable() {
        let class = CredentialClass::StaticToken {
            location: SecretLocation::UrlQuery,
            name: "api_key".into(),
            value_in_file: true,
        };
        assert_eq!(
            serde_json::to_string(&class).unwrap(),
            r#"{"kind":"static_token","location":"url_query","name":"api_key","value_in_file":true}"#
        );
        assert_eq!(serde_json::to_string(&Client::VsCode).unwrap(), r#""vscode""#);
        assert_eq!(serde_json::to_string(&Verdict::Flagged).unwrap(), r#""flagged""#);
        assert_eq!(serde_json::to_string(&IdentityKind::Unknown).unwrap(), r#""unknown""#);
    }
}
