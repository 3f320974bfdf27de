//! The table of connectors the sandbox hosts, and their scopes.
//!
//! One table keeps ids, display names and scopes together so the policy document,
//! the metadata documents and the token endpoints can never disagree.

/// Built-in connectors: (id, display name, scopes).
pub static BUILTIN_CONNECTORS: &[(&str, &str, &[&str])] = &[
    ("asana", "Asana", &["read"]),
    ("atlassian", "Atlassian", &["read"]),
    ("canva", "Canva", &["read"]),
    ("figma", "Figma", &["files:read"]),
    ("granola", "Granola", &["read"]),
    ("linear", "Linear", &["read", "write"]),
    ("supabase", "Supabase", &["read"]),
];

/// Scopes of every synthetic benchmark connector.
const SYNTHETIC_SCOPES: &[&str] = &["read"];

/// A connector definition: what the admin would configure for one MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorDef {
    /// Stable id used in URLs and the policy (`linear`, `synthetic-07`).
    pub id: String,
    /// Human name (`Linear`, `Synthetic 07`).
    pub display_name: String,
    /// Scopes the connector's AS knows and the policy asks for.
    pub scopes: Vec<String>,
    /// Synthetic benchmark connectors are entitled to every user.
    pub synthetic: bool,
}

/// Builds the connector list: the built-ins (optionally restricted to `only`)
/// followed by `extra` synthetic connectors. Returns the unknown id on a bad `only`.
pub fn build(only: Option<&[String]>, extra: usize) -> Result<Vec<ConnectorDef>, String> {
    if let Some(only) = only
        && let Some(unknown) = only.iter().find(|id| !BUILTIN_CONNECTORS.iter().any(|(b, _, _)| b == id))
    {
        return Err(unknown.clone());
    }
    let mut defs: Vec<ConnectorDef> = BUILTIN_CONNECTORS
        .iter()
        .filter(|(id, _, _)| only.is_none_or(|only| only.iter().any(|o| o == id)))
        .map(|(id, name, scopes)| ConnectorDef {
            id: (*id).to_owned(),
            display_name: (*name).to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            synthetic: false,
        })
        .collect();
    let width = extra.to_string().len().max(2);
    defs.extend((1..=extra).map(|n| ConnectorDef {
        id: format!("synthetic-{n:0width$}"),
        display_name: format!("Synthetic {n:0width$}"),
        scopes: SYNTHETIC_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        synthetic: true,
    }));
    Ok(defs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ids_are_zero_padded() {
        let defs = build(Some(&["linear".to_owned()]), 3).expect("valid");
        let ids: Vec<_> = defs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["linear", "synthetic-01", "synthetic-02", "synthetic-03"]);
        assert_eq!(defs[1].display_name, "Synthetic 01");
    }

    #[test]
    fn unknown_only_id_is_refused() {
        assert_eq!(build(Some(&["nope".to_owned()]), 0), Err("nope".to_owned()));
    }
}

/// A connector hosted by someone else (an interop peer's authorization server and MCP server)
/// that the sandbox IdP issues ID-JAGs for, entitled to every demo user. It lets an independent
/// implementation stand in for a connector while the sandbox stays the IdP.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalConnector {
    pub id: String,
    pub display_name: String,
    /// The peer's MCP server (the ID-JAG's `resource`).
    pub mcp_url: String,
    /// The peer's authorization-server issuer (the ID-JAG's `aud`).
    pub as_issuer: String,
    /// Our client id at the peer (the ID-JAG's `client_id`).
    pub client_id: String,
    pub scopes: Vec<String>,
    /// The policy's `client_auth` object for the peer, e.g. `{"method":"client_secret_basic","client_secret":"..."}`.
    pub client_auth: serde_json::Value,
}

/// Another IdP whose ID-JAGs the sandbox's authorization servers accept instead of the sandbox
/// IdP's (an interop peer such as oidc-provider); entitlement is then that IdP's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedIdp {
    /// Must equal the ID-JAG's `iss`.
    pub issuer: String,
    /// Its JSON Web Key Set (RFC 7517 §5), as served at its `jwks_uri`.
    pub jwks: serde_json::Value,
}
