//! The policy file as written on disk (stage one of two, as ripgrep's `LowArgs`).
//!
//! These structs mirror `examples/policy.example.json` one to one and reject unknown keys, so
//! that a typo such as `"client_auht"` is reported with its path instead of silently ignored.
//! Nothing here is validated beyond its JSON shape: [`super::validate`] does that.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub schema_version: u32,
    pub organization: RawOrganization,
    pub idp: RawIdp,
    #[serde(default)]
    pub connectors: Vec<RawConnector>,
    #[serde(default)]
    pub settings: RawSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrganization {
    pub name: String,
    #[serde(default)]
    pub email_domains: Vec<String>,
    pub help_desk: Option<RawHelpDesk>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHelpDesk {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdp {
    pub issuer: String,
    pub display_name: Option<String>,
    pub client_id: String,
    pub client_auth: RawClientAuth,
    pub scopes: Option<Vec<String>>,
    pub prompt: Option<Vec<String>>,
    pub exchange_subject: Option<String>,
}

/// RFC 7591 §2 names for client authentication methods.
#[derive(Debug, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RawClientAuth {
    // A struct variant, not a unit one: serde ignores extra keys next to the tag of an
    // internally tagged unit variant even with `deny_unknown_fields`.
    None {},
    ClientSecretBasic { client_secret: String },
    ClientSecretPost { client_secret: String },
    PrivateKeyJwt { key_file: String, key_id: Option<String>, alg: Option<String> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnector {
    pub id: String,
    pub display_name: String,
    pub mcp_url: String,
    pub authorization_server: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub client_id: String,
    pub client_auth: RawClientAuth,
    #[serde(default)]
    pub idp_only: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    pub expiry_warning_minutes: Option<u64>,
    pub renew_before_expiry_seconds: Option<u64>,
    pub max_parallel_connectors: Option<usize>,
    pub request_timeout_seconds: Option<u64>,
    pub notifications: Option<bool>,
    pub start_at_login: Option<bool>,
}
