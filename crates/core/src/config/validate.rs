//! Stage two: raw JSON values into typed, checked ones.

use super::*;
use std::collections::HashSet;

pub(super) fn policy(raw: raw::RawPolicy, source: ConfigSource, key_files: KeyFiles) -> Result<Policy, ConfigError> {
    let file = source.path().to_path_buf();
    let file = file.as_path();
    if raw.schema_version != POLICY_SCHEMA_VERSION {
        return Err(ConfigError::new(
            file,
            "schema_version",
            format!("is {}, this app understands {POLICY_SCHEMA_VERSION}", raw.schema_version),
            "use a policy written for this version of the app, or update the app",
        ));
    }
    let organization = organization(file, raw.organization)?;
    let idp = idp(file, raw.idp, key_files)?;
    let mut seen = HashSet::new();
    let mut connectors = Vec::with_capacity(raw.connectors.len());
    for (i, c) in raw.connectors.into_iter().enumerate() {
        let key = format!("connectors[{i}]");
        let c = connector(file, &key, c, key_files)?;
        if !seen.insert(c.id.clone()) {
            return Err(ConfigError::new(
                file,
                format!("{key}.id"),
                format!("`{}` is used twice", c.id),
                "give every connector a unique id",
            ));
        }
        connectors.push(c);
    }
    let settings = settings(file, raw.settings)?;
    Ok(Policy { source, organization, idp, connectors, settings })
}

fn organization(file: &Path, raw: raw::RawOrganization) -> Result<Organization, ConfigError> {
    non_empty(file, "organization.name", &raw.name)?;
    let mut email_domains = Vec::new();
    for (i, d) in raw.email_domains.iter().enumerate() {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if d.is_empty() || !d.contains('.') || d.contains(char::is_whitespace) || d.contains('@') {
            return Err(ConfigError::new(
                file,
                format!("organization.email_domains[{i}]"),
                "is not a domain name",
                "write a bare domain such as \"example.com\"",
            ));
        }
        email_domains.push(d);
    }
    let help_desk = match raw.help_desk {
        None => None,
        Some(h) => {
            non_empty(file, "organization.help_desk.name", &h.name)?;
            let url = parse_url(file, "organization.help_desk.url", &h.url)?;
            if !matches!(url.scheme(), "https" | "http" | "mailto") {
                return Err(ConfigError::new(
                    file,
                    "organization.help_desk.url",
                    "must be an https, http or mailto URL",
                    "use the help-desk web page or a mailto: address",
                ));
            }
            Some(HelpDesk { name: h.name, url })
        }
    };
    Ok(Organization { name: raw.name, email_domains, help_desk })
}

fn idp(file: &Path, raw: raw::RawIdp, key_files: KeyFiles) -> Result<IdpConfig, ConfigError> {
    let issuer = endpoint(file, "idp.issuer", &raw.issuer)?;
    non_empty(file, "idp.client_id", &raw.client_id)?;
    let client_auth = client_auth(file, "idp.client_auth", raw.client_auth, key_files)?;
    let mut scopes = match raw.scopes {
        Some(s) => scope_list(file, "idp.scopes", s)?,
        None => vec!["openid".into(), "email".into(), "profile".into(), "offline_access".into()],
    };
    // OIDC Core §3.1.2.1: `openid` is what makes this an OIDC request; `offline_access`
    // (§11) is what gives us a refresh token to renew silently.
    for required in ["openid", "offline_access"] {
        if !scopes.iter().any(|s| s == required) {
            scopes.push(required.into());
        }
    }
    let prompt = raw.prompt.unwrap_or_default();
    for (i, p) in prompt.iter().enumerate() {
        if !matches!(p.as_str(), "login" | "consent" | "select_account") {
            return Err(ConfigError::new(
                file,
                format!("idp.prompt[{i}]"),
                format!("`{}` is not a prompt value for an interactive sign-in", crate::redact::scrub(p, 40)),
                "use \"login\", \"consent\" or \"select_account\" (OIDC Core §3.1.2.1; \"none\" cannot sign in)",
            ));
        }
    }
    let exchange_subject = match raw.exchange_subject.as_deref() {
        None | Some("auto") => ExchangeSubject::Auto,
        Some("id_token") => ExchangeSubject::IdToken,
        Some("refresh_token") => ExchangeSubject::RefreshToken,
        Some(other) => {
            return Err(ConfigError::new(
                file,
                "idp.exchange_subject",
                format!("`{}` is not a subject for the token exchange", crate::redact::scrub(other, 40)),
                "use \"auto\" (the default), \"id_token\" or \"refresh_token\"",
            ));
        }
    };
    let display_name = raw.display_name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if let Some(n) = &display_name
        && (n.chars().count() > 40 || n.chars().any(char::is_control))
    {
        return Err(ConfigError::new(
            file,
            "idp.display_name",
            "must be a short name of at most 40 characters on one line",
            "use the name your users know the IdP by, such as \"Okta\"",
        ));
    }
    Ok(IdpConfig { issuer, display_name, client_id: raw.client_id, client_auth, scopes, prompt, exchange_subject })
}

fn connector(
    file: &Path,
    key: &str,
    raw: raw::RawConnector,
    key_files: KeyFiles,
) -> Result<ConnectorConfig, ConfigError> {
    let id_ok = !raw.id.is_empty()
        && raw.id.len() <= 64
        && raw.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        return Err(ConfigError::new(
            file,
            format!("{key}.id"),
            "must be 1-64 characters of a-z, 0-9 and -",
            "use a short slug such as \"linear\"",
        ));
    }
    non_empty(file, &format!("{key}.display_name"), &raw.display_name)?;
    let mcp_url = endpoint(file, &format!("{key}.mcp_url"), &raw.mcp_url)?;
    let authorization_server = match raw.authorization_server {
        Some(a) => Some(endpoint(file, &format!("{key}.authorization_server"), &a)?),
        None => None,
    };
    let scopes = scope_list(file, &format!("{key}.scopes"), raw.scopes)?;
    non_empty(file, &format!("{key}.client_id"), &raw.client_id)?;
    let client_auth = client_auth(file, &format!("{key}.client_auth"), raw.client_auth, key_files)?;
    Ok(ConnectorConfig {
        id: raw.id,
        display_name: raw.display_name,
        mcp_url,
        authorization_server,
        scopes,
        client_id: raw.client_id,
        client_auth,
        idp_only: raw.idp_only,
    })
}

fn client_auth(
    file: &Path,
    key: &str,
    raw: raw::RawClientAuth,
    key_files: KeyFiles,
) -> Result<ClientAuth, ConfigError> {
    Ok(match raw {
        raw::RawClientAuth::None {} => ClientAuth::None,
        raw::RawClientAuth::ClientSecretBasic { client_secret } => {
            non_empty(file, &format!("{key}.client_secret"), &client_secret)?;
            ClientAuth::ClientSecretBasic(ClientSecret::new(client_secret))
        }
        raw::RawClientAuth::ClientSecretPost { client_secret } => {
            non_empty(file, &format!("{key}.client_secret"), &client_secret)?;
            ClientAuth::ClientSecretPost(ClientSecret::new(client_secret))
        }
        raw::RawClientAuth::PrivateKeyJwt { key_file, key_id, alg } => {
            let alg_key = format!("{key}.alg");
            let alg = match alg.as_deref().unwrap_or("ES256") {
                "ES256" => jsonwebtoken::Algorithm::ES256,
                "ES384" => jsonwebtoken::Algorithm::ES384,
                "RS256" => jsonwebtoken::Algorithm::RS256,
                "PS256" => jsonwebtoken::Algorithm::PS256,
                "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
                other => {
                    return Err(ConfigError::new(
                        file,
                        alg_key,
                        format!("`{other}` is not an allowed signing algorithm"),
                        "use one of ES256, ES384, RS256, PS256, EdDSA",
                    ));
                }
            };
            let key_file_key = format!("{key}.key_file");
            if key_files == KeyFiles::InPolicyFolder {
                in_policy_folder(file, &key_file_key, &key_file)?;
            }
            let key_path = resolve_relative(file, &key_file);
            // A PEM private key is a few KiB: a wrong path's huge file, a device or a FIFO
            // is refused, not read until memory runs out or for ever.
            let pem = read_regular_text(&key_path, MAX_KEY_FILE_BYTES).map_err(|e| {
                let shown = key_path.display();
                match e {
                    BoundedReadError::Io(_) => ConfigError::new(
                        file,
                        &key_file_key,
                        format!("{shown} {e}"),
                        "deploy the client key file or fix the path",
                    ),
                    BoundedReadError::TooLarge { .. } => ConfigError::new(
                        file,
                        &key_file_key,
                        format!("{shown} is larger than 64 KiB, too large for a private key"),
                        "point key_file to the PEM private key itself",
                    ),
                    e => ConfigError::new(
                        file,
                        &key_file_key,
                        format!("{shown} {e}"),
                        "point key_file to the PEM private key file itself",
                    ),
                }
            })?;
            let key_pem = PrivateKeyPem::new(pem);
            crate::oauth::client_auth::check_signing_key(&key_pem, alg).map_err(|problem| {
                ConfigError::new(
                    file,
                    &key_file_key,
                    format!("{}: {problem}", key_path.display()),
                    "provide a PKCS#8 PEM private key matching `alg`",
                )
            })?;
            ClientAuth::PrivateKeyJwt { key: key_pem, key_id, alg }
        }
    })
}

fn settings(file: &Path, raw: raw::RawSettings) -> Result<Settings, ConfigError> {
    let d = Settings::default();
    let max_parallel_connectors = raw.max_parallel_connectors.unwrap_or(d.max_parallel_connectors);
    if !(1..=128).contains(&max_parallel_connectors) {
        return Err(ConfigError::new(
            file,
            "settings.max_parallel_connectors",
            "must be between 1 and 128",
            "use 64 unless you have measured otherwise",
        ));
    }
    let request_timeout_seconds = raw.request_timeout_seconds.unwrap_or(d.request_timeout.as_secs());
    if !(1..=300).contains(&request_timeout_seconds) {
        return Err(ConfigError::new(file, "settings.request_timeout_seconds", "must be between 1 and 300", "use 15"));
    }
    if let Some(m) = raw.expiry_warning_minutes
        && !(1..=7 * 24 * 60).contains(&m)
    {
        return Err(ConfigError::new(
            file,
            "settings.expiry_warning_minutes",
            "must be between 1 and 10080 (a week)",
            "use 10",
        ));
    }
    if let Some(s) = raw.renew_before_expiry_seconds
        && !(10..=24 * 3600).contains(&s)
    {
        return Err(ConfigError::new(
            file,
            "settings.renew_before_expiry_seconds",
            "must be between 10 and 86400",
            "use 120",
        ));
    }
    let mut locked = Vec::new();
    for (key, set) in [
        ("expiry_warning_minutes", raw.expiry_warning_minutes.is_some()),
        ("notifications", raw.notifications.is_some()),
        ("start_at_login", raw.start_at_login.is_some()),
    ] {
        if set {
            locked.push(key);
        }
    }
    Ok(Settings {
        notifications: raw.notifications.unwrap_or(d.notifications),
        start_at_login: raw.start_at_login.unwrap_or(d.start_at_login),
        locked,
        expiry_warning: raw
            .expiry_warning_minutes
            .map(|m| Duration::from_secs(m.saturating_mul(60)))
            .unwrap_or(d.expiry_warning),
        renew_before_expiry: raw.renew_before_expiry_seconds.map(Duration::from_secs).unwrap_or(d.renew_before_expiry),
        max_parallel_connectors,
        request_timeout: Duration::from_secs(request_timeout_seconds),
    })
}

fn non_empty(file: &Path, key: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::new(file, key, "is empty", "fill it in"));
    }
    Ok(())
}

fn parse_url(file: &Path, key: &str, value: &str) -> Result<Url, ConfigError> {
    Url::parse(value).map_err(|e| {
        ConfigError::new(
            file,
            key,
            format!("is not a URL ({e})"),
            "write an absolute URL such as https://example.com/path",
        )
    })
}

fn endpoint(file: &Path, key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = parse_url(file, key, value)?;
    check_endpoint_url(&url).map_err(|e: UrlPolicyError| ConfigError::new(file, key, e.to_string(), e.fix()))?;
    Ok(url)
}

fn scope_list(file: &Path, key: &str, scopes: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for (i, s) in scopes.iter().enumerate() {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let ok =
            !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !ok {
            return Err(ConfigError::new(
                file,
                format!("{key}[{i}]"),
                "is not a valid scope token (RFC 6749 §3.3)",
                "one scope per array item, no spaces or quotes",
            ));
        }
    }
    Ok(scopes)
}

/// [`KeyFiles::InPolicyFolder`]: `value` is a relative path of plain names that stays inside
/// the policy's folder once symlinks are resolved.
fn in_policy_folder(file: &Path, key: &str, value: &str) -> Result<(), ConfigError> {
    use std::path::Component;
    let folder = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let refuse = || {
        ConfigError::new(
            file,
            key,
            format!(
                "`{}` is outside the policy's folder {}: a policy loaded from a URL may only name a key file inside it",
                crate::redact::scrub(value, 120),
                folder.display()
            ),
            format!(
                "ask IT for a policy whose key_file is a plain file name such as \"client-key.pem\" and save that \
                 key in {}, or save the policy and its key as files and run `ema setup FILE`",
                folder.display()
            ),
        )
    };
    let plain = Path::new(value);
    if value.is_empty() || !plain.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(refuse());
    }
    // A symlink inside the folder may not lead out of it. A missing key is left to the read,
    // whose error says to deploy it.
    if let (Ok(real), Ok(real_folder)) = (std::fs::canonicalize(folder.join(plain)), std::fs::canonicalize(folder))
        && !real.starts_with(&real_folder)
    {
        return Err(refuse());
    }
    Ok(())
}

fn resolve_relative(policy_file: &Path, value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        return p;
    }
    policy_file.parent().map(|d| d.join(&p)).unwrap_or(p)
}
