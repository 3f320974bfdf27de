//! One named check of `ema doctor` and its outcome: the vocabulary the checks (`doctor`) and
//! the reachability probes (`reach`) share, in a module of its own so that neither depends on
//! the other for it.

use serde::Serialize;

use crate::status::FixAction;

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    /// Not run (it needs something that failed or is missing).
    Skip,
}

/// One named check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// kebab-case, stable: `policy-valid`, `keyring-available`, `idp-discovery`, `idp-jwks`,
    /// `clock-skew`, `reach-<scheme>-<host>-<port>`, `connector-<id>`.
    pub name: String,
    pub outcome: Outcome,
    /// What was found, in plain words.
    pub summary: String,
    /// What to do, in words that name no face (`ema doctor` adds its command).
    pub fix: Option<String>,
    /// The remedy the fix offers, for each face to name its own control
    /// (`status::word_fix`).
    pub fix_action: Option<FixAction>,
    pub duration_ms: u64,
    /// What the metadata advertises that bears on the flow without deciding it (ID-JAG -04
    /// §7: the IdP's `identity_chaining_requested_token_types_supported`, an AS's
    /// `authorization_grant_profiles_supported`). Never changes the outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}
