//! What the connectors' vendors' credentials and MCP servers look like in the wild.
//!
//! Why a table: an entry often does not point at the company's `mcp_url` (a community stdio
//! server with an API key in `env`, a vendor host the policy does not name). These names are
//! public facts that change with the vendors, so they live here as data, in one place, keyed by
//! the policy's connector id; the matching code in `entry.rs` only reads them. A connector the
//! catalog does not have is never matched through this table.

/// Public names for one vendor's MCP servers and credentials.
pub(super) struct KnownConnector {
    /// The policy connector id this describes.
    pub id: &'static str,
    /// Hosts of the vendor's hosted MCP servers.
    pub hosts: &'static [&'static str],
    /// npm / PyPI packages of MCP servers for it (matched as a command or argument, with or
    /// without an `@version` suffix).
    pub packages: &'static [&'static str],
    /// Environment variables that carry its API keys.
    pub env_vars: &'static [&'static str],
    /// Documented prefixes of its personal tokens.
    pub secret_prefixes: &'static [&'static str],
}

pub(super) const KNOWN: &[KnownConnector] = &[
    KnownConnector {
        id: "linear",
        hosts: &["mcp.linear.app"],
        packages: &["@linear/mcp", "linear-mcp-server", "mcp-linear", "@tacticlaunch/mcp-linear", "@mseep/linear-mcp"],
        env_vars: &["LINEAR_API_KEY", "LINEAR_ACCESS_TOKEN", "LINEAR_API_TOKEN"],
        secret_prefixes: &["lin_api_", "lin_oauth_"],
    },
    KnownConnector {
        id: "supabase",
        hosts: &["mcp.supabase.com"],
        packages: &["@supabase/mcp-server-supabase"],
        env_vars: &["SUPABASE_ACCESS_TOKEN"],
        secret_prefixes: &["sbp_"],
    },
    KnownConnector {
        id: "figma",
        hosts: &["mcp.figma.com"],
        packages: &["figma-developer-mcp", "figma-mcp", "@figma/mcp"],
        env_vars: &["FIGMA_API_KEY", "FIGMA_ACCESS_TOKEN", "FIGMA_PERSONAL_ACCESS_TOKEN"],
        secret_prefixes: &["figd_"],
    },
    KnownConnector {
        id: "atlassian",
        hosts: &["mcp.atlassian.com"],
        packages: &["mcp-atlassian", "@atlassian/mcp"],
        env_vars: &["ATLASSIAN_API_TOKEN", "JIRA_API_TOKEN", "CONFLUENCE_API_TOKEN", "JIRA_PERSONAL_TOKEN"],
        secret_prefixes: &["ATATT"],
    },
    KnownConnector {
        id: "asana",
        hosts: &["mcp.asana.com"],
        packages: &["@roychri/mcp-server-asana", "asana-mcp"],
        env_vars: &["ASANA_ACCESS_TOKEN", "ASANA_PAT"],
        secret_prefixes: &[],
    },
    KnownConnector {
        id: "canva",
        hosts: &["mcp.canva.com"],
        packages: &["@canva/cli"],
        env_vars: &["CANVA_API_KEY", "CANVA_ACCESS_TOKEN"],
        secret_prefixes: &[],
    },
    KnownConnector {
        id: "granola",
        hosts: &["mcp.granola.ai"],
        packages: &["granola-mcp"],
        env_vars: &["GRANOLA_API_KEY", "GRANOLA_TOKEN"],
        secret_prefixes: &[],
    },
];

/// Header names that carry a credential (compared lower-case).
pub(super) const SECRET_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "x-api-key", "api-key", "apikey", "x-auth-token", "cookie"];

/// Words that make a header, variable, flag or query-parameter name a secret's name
/// (compared lower-case, after `-` is turned into `_`).
pub(super) const SECRET_NAME_WORDS: &[&str] =
    &["token", "secret", "password", "api_key", "apikey", "access_key", "private_key", "credential", "authorization"];

/// Names that are exactly a secret's name although they hold none of the words above.
pub(super) const SECRET_NAMES: &[&str] = &["key", "pat", "sig", "signature"];

/// Bridges whose OAuth tokens are cached outside the entry (reported from their cache).
pub(super) const OAUTH_BRIDGES: &[&str] = &["mcp-remote"];

/// The program that makes an entry managed: our own CLI.
pub(super) const OUR_CLI: &str = "ema";

/// Whether `name` (a header, variable, flag or parameter name) names a secret.
pub(super) fn is_secret_name(name: &str) -> bool {
    let n = name.trim_start_matches('-').to_ascii_lowercase().replace('-', "_");
    if SECRET_HEADERS.contains(&n.replace('_', "-").as_str()) || SECRET_NAMES.contains(&n.as_str()) {
        return true;
    }
    // `_key` / `_pat` suffixes (`OPENAI_KEY`, `GITHUB_PAT`), and the words anywhere.
    n.ends_with("_key") || n.ends_with("_pat") || SECRET_NAME_WORDS.iter().any(|w| n.contains(w))
}

/// The known connector whose token prefix `value` starts with.
pub(super) fn by_secret_prefix(value: &str) -> Option<&'static KnownConnector> {
    KNOWN.iter().find(|k| k.secret_prefixes.iter().any(|p| value.starts_with(p)))
}

/// Whether `arg` names `package` (`pkg`, `pkg@1.2`, `pkg@latest`, `pkg==1.0`).
pub(super) fn names_package(arg: &str, package: &str) -> bool {
    match arg.strip_prefix(package) {
        Some(rest) => rest.is_empty() || rest.starts_with('@') || rest.starts_with("=="),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for n in ["Authorization", "X-API-Key", "LINEAR_API_KEY", "--access-token", "api_key", "key", "GITHUB_PAT"] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in ["Content-Type", "NODE_ENV", "--stdio", "url", "PATH", "monkey_mode", "OAUTH_CALLBACK_PORT"] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn packages_and_prefixes() {
        assert!(names_package("@supabase/mcp-server-supabase@latest", "@supabase/mcp-server-supabase"));
        assert!(names_package("mcp-atlassian", "mcp-atlassian"));
        assert!(!names_package("mcp-atlassian-fork", "mcp-atlassian"));
        assert_eq!(by_secret_prefix("sbp_0123").map(|k| k.id), Some("supabase"));
        assert!(by_secret_prefix("hello").is_none());
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<_> = KNOWN.iter().map(|k| k.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), KNOWN.len());
    }
}
