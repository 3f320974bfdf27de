//! `ema doctor`: named checks, each saying what it found and going on when it fails, and a
//! diagnosis per connector naming the leg that failed (sign-in, token exchange at the IdP, the
//! grant at the connector's authorization server, the MCP server), the likely cause and the fix.
//!
//! The connector legs are run live, through a [`TracingTransport`], so the diagnosis carries the
//! Inspector-style trace of what went over the wire. Clock skew is measured against every
//! server's `Date` header (RFC 9110 §6.6.1): servers accept 30 to 60 s, so a larger skew is named
//! as the likely cause of a refused assertion.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

pub use super::check::{Check, Outcome};
use super::reach::{origins, reach_all};
use super::trace::{Leg, Step, TracingProbe, TracingTransport};
use crate::config::Policy;
use crate::engine::{Engine, EngineParts};
use crate::http::{HttpTransport, NetworkFailure, Transport};
use crate::mcp_check::HttpProbe;
use crate::personal::remedy::client_name;
use crate::personal::scan::{Finding, Verdict};
pub use crate::status::FailedLeg;
use crate::status::{ConnectorState, ConnectorStatus, ErrorCode, FixAction};
use crate::store::SecretStore;

/// Version of the diagnosis JSON (`ema doctor --json`, the bundle's `diagnostics.json`).
pub const DIAGNOSIS_VERSION: u32 = 1;
/// Skew servers tolerate at most (assertion `iat`/`exp` leeway is usually 30 to 60 s).
const SKEW_WARN_SECS: i64 = 30;
const SKEW_FAIL_SECS: i64 = 60;

/// One connector's diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorDiagnosis {
    pub id: String,
    pub display_name: String,
    pub state: ConnectorState,
    pub failed_leg: Option<FailedLeg>,
    /// Stable error code (`connector-grant-oauth-invalid-grant`).
    pub code: Option<String>,
    /// Why, in plain words (the likely cause first when the clock is off).
    pub cause: Option<String>,
    pub fix: Option<String>,
    /// The remedy the fix offers (`StatusError::fix_action`).
    pub fix_action: Option<FixAction>,
    /// The requests made for it during the check, in order.
    pub trace: Vec<Step>,
    /// The authorization server EMA accepts for it: the policy's pin, or the one of its first
    /// successful connection (a later change is refused).
    pub trusted_authorization_server: Option<crate::engine::AuthorizationServerTrust>,
    /// What its authorization server's metadata advertises about ID-JAG (never a verdict).
    pub hints: Vec<String>,
}

/// Everything `ema doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub version: u32,
    /// Short, shareable: the help desk refers to it (`EMA-7K3Q-9XWD`).
    pub support_id: String,
    /// RFC 3339, UTC.
    pub generated_at: String,
    pub organization: String,
    pub help_desk: Option<HelpDesk>,
    pub checks: Vec<Check>,
    pub connectors: Vec<ConnectorDiagnosis>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HelpDesk {
    pub name: String,
    pub url: Option<String>,
}

impl Diagnosis {
    /// Whether a check failed or warns (`ema doctor` then exits 1, like `gh auth status`).
    pub fn needs_attention(&self) -> bool {
        self.checks.iter().any(|c| matches!(c.outcome, Outcome::Fail | Outcome::Warn))
    }
}

/// A new support ID: 8 random Crockford base32 characters, `EMA-XXXX-XXXX`.
pub fn support_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let chars: String = (0..8).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect();
    format!("EMA-{}-{}", &chars[..4], &chars[4..])
}

/// Runs every check against `policy` with the tokens in `store`; connector legs run live.
/// `personal` is the personal-account scan, judged by the `personal-connections` check.
pub async fn diagnose(policy: Policy, store: Arc<dyn SecretStore>, personal: &[Finding]) -> Diagnosis {
    let mut checks = Vec::new();
    let organization = policy.organization.name.clone();
    let help_desk =
        policy.organization.help_desk.as_ref().map(|h| HelpDesk { name: h.name.clone(), url: Some(h.url.to_string()) });
    checks.push(Check {
        name: "policy-valid".into(),
        outcome: Outcome::Pass,
        summary: format!("policy from {} with {} connectors", policy.source.path().display(), policy.connectors.len()),
        fix: None,
        fix_action: None,
        duration_ms: 0,
        hints: Vec::new(),
    });
    let started = Instant::now();
    checks.push(match store.get("ema-doctor-probe") {
        Ok(_) => check("keyring-available", Outcome::Pass, "the OS keyring answers".into(), None, started),
        Err(e) => check(
            "keyring-available",
            Outcome::Fail,
            format!("the OS keyring does not answer: {e}"),
            Some("unlock or start your keyring (GNOME Keyring, KWallet, Keychain), then run `ema doctor` again".into()),
            started,
        ),
    });
    let http = match HttpTransport::new(policy.settings.request_timeout) {
        Ok(h) => h,
        Err(e) => {
            checks.push(check("http-client", Outcome::Fail, e.to_string(), None, Instant::now()));
            return Diagnosis {
                version: DIAGNOSIS_VERSION,
                support_id: support_id(),
                generated_at: crate::status::now_rfc3339(),
                organization,
                help_desk,
                checks,
                connectors: Vec::new(),
            };
        }
    };
    let direct = http.clone();
    let tracing = Arc::new(TracingTransport::new(http));
    let probe = HttpProbe::new(&direct, policy.settings.request_timeout);
    let mcp = Arc::new(TracingProbe::new(probe, tracing.clone()));
    checks.extend(idp_checks(&policy, tracing.as_ref()).await);
    let _ = tracing.take();

    let clock = Arc::new(crate::clock::SystemClock);
    let engine = Engine::new(policy.clone(), EngineParts { transport: tracing.clone(), store, mcp, clock });
    let signed_in = engine.load().await.is_ok() && engine.is_signed_in().await;
    if signed_in {
        engine.connect_all(true).await;
    }
    let steps = tracing.take();
    let snapshot = engine.snapshot();
    let skew = clock_skew(&steps);
    checks.push(skew_check(skew.clone()));
    checks.extend(reach_all(&origins(&policy, &steps), &direct).await);
    let mut connectors = Vec::new();
    for c in &snapshot.connectors {
        let trace: Vec<Step> = steps.iter().filter(|s| belongs(s, c)).cloned().collect();
        let mut d = diagnose_connector(c, trace, skew.clone());
        d.trusted_authorization_server = engine.authorization_server_trust(&c.id);
        if let (Some(endpoints), Some(cfg)) = (engine.discovered_endpoints(&c.id), policy.connector(&c.id)) {
            d.hints = authorization_server_hints(&c.display_name, &endpoints, &cfg.client_auth);
        }
        checks.push(connector_check(&d, signed_in));
        connectors.push(d);
    }
    checks.push(personal_check(personal));
    for c in &checks {
        tracing::info!(check = %c.name, outcome = ?c.outcome, ms = c.duration_ms, "{}", c.summary);
    }
    Diagnosis {
        version: DIAGNOSIS_VERSION,
        support_id: support_id(),
        generated_at: crate::status::now_rfc3339(),
        organization,
        help_desk,
        checks,
        connectors,
    }
}

fn check(name: &str, outcome: Outcome, summary: String, fix: Option<String>, started: Instant) -> Check {
    Check {
        name: name.into(),
        outcome,
        summary,
        fix,
        fix_action: None,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        hints: Vec::new(),
    }
}

/// `idp-discovery` and `idp-jwks`: the IdP's OpenID metadata and signing keys.
async fn idp_checks(policy: &Policy, transport: &dyn Transport) -> Vec<Check> {
    let issuer = policy.idp.issuer.as_str().trim_end_matches('/').to_string();
    let url = format!("{issuer}/.well-known/openid-configuration");
    let started = Instant::now();
    let fetched = get_json(transport, &url).await;
    let metadata = match fetched {
        Ok(m) if m.get("issuer").and_then(Value::as_str).map(|i| i.trim_end_matches('/')) == Some(issuer.as_str()) => m,
        Ok(m) => {
            let said = m.get("issuer").and_then(Value::as_str).unwrap_or("nothing");
            return vec![
                check(
                    "idp-discovery",
                    Outcome::Fail,
                    format!("{url} names the issuer {}, not {issuer}", crate::redact::scrub(said, 200)),
                    Some("the policy's idp.issuer must be exactly the IdP's issuer; ask IT".into()),
                    started,
                ),
                skipped("idp-jwks", "the IdP's metadata is not usable"),
            ];
        }
        Err(why) => {
            return vec![
                check(
                    "idp-discovery",
                    Outcome::Fail,
                    format!("cannot read {url}: {why}"),
                    Some("check your network or VPN; if others are affected, the IdP is down".into()),
                    started,
                ),
                skipped("idp-jwks", "the IdP's metadata could not be read"),
            ];
        }
    };
    let mut discovered = check("idp-discovery", Outcome::Pass, format!("{url} answers for {issuer}"), None, started);
    discovered.hints.push(idp_hint(&metadata));
    let mut out = vec![discovered];
    let started = Instant::now();
    out.push(match metadata.get("jwks_uri").and_then(Value::as_str) {
        None => check("idp-jwks", Outcome::Fail, "the IdP's metadata has no jwks_uri".into(), None, started),
        Some(jwks) => match get_json(transport, jwks).await {
            Ok(v) => {
                let keys = v.get("keys").and_then(Value::as_array).map_or(0, Vec::len);
                let outcome = if keys > 0 { Outcome::Pass } else { Outcome::Fail };
                check(
                    "idp-jwks",
                    outcome,
                    format!("{keys} signing key{} at {jwks}", if keys == 1 { "" } else { "s" }),
                    None,
                    started,
                )
            }
            Err(why) => check("idp-jwks", Outcome::Fail, format!("cannot read {jwks}: {why}"), None, started),
        },
    });
    out
}

fn skipped(name: &str, why: &str) -> Check {
    Check {
        name: name.into(),
        outcome: Outcome::Skip,
        summary: format!("not run: {why}"),
        fix: None,
        fix_action: None,
        duration_ms: 0,
        hints: Vec::new(),
    }
}

async fn get_json(transport: &dyn Transport, url: &str) -> Result<Value, String> {
    let request = http::Request::builder()
        .uri(url)
        .header("accept", "application/json")
        .body(Vec::new())
        .map_err(|_| "not a valid URL".to_string())?;
    let response = transport.send(request).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    serde_json::from_slice(response.body()).map_err(|_| "the answer is not JSON".to_string())
}

/// The largest difference (server minus this computer, seconds) seen in any `Date` header.
fn clock_skew(steps: &[Step]) -> Option<(i64, String)> {
    let format = time::format_description::well_known::Rfc2822;
    steps
        .iter()
        .filter_map(|s| {
            let date = s.server_date.as_deref()?.replace("GMT", "+0000");
            let server = time::OffsetDateTime::parse(&date, &format).ok()?;
            Some((server.unix_timestamp() - s.at_unix, s.endpoint.clone()))
        })
        .max_by_key(|(skew, _)| skew.abs())
}

fn skew_check(skew: Option<(i64, String)>) -> Check {
    let Some((secs, endpoint)) = skew else {
        return skipped("clock-skew", "no server answered with a Date header");
    };
    let ahead = if secs > 0 { "ahead of" } else { "behind" };
    let summary = format!("{endpoint} says the time is {} s {ahead} this computer's clock", secs.abs());
    let fix = Some(
        "turn on automatic time (NTP) on this computer: servers accept 30 to 60 s of difference, and sign-in and \
         grants fail beyond that"
            .to_string(),
    );
    match secs.abs() {
        s if s >= SKEW_FAIL_SECS => check("clock-skew", Outcome::Fail, summary, fix, Instant::now()),
        s if s >= SKEW_WARN_SECS => check("clock-skew", Outcome::Warn, summary, fix, Instant::now()),
        _ => check("clock-skew", Outcome::Pass, summary, None, Instant::now()),
    }
}

/// Whether a traced request was made for connector `c`: its exchange names the connector's MCP
/// URL as `resource`, its grant carries an ID-JAG for it, or it went to its MCP server or AS.
fn belongs(s: &Step, c: &ConnectorStatus) -> bool {
    let mcp = c.mcp_url.trim_end_matches('/');
    let resource_is = |r: &str| r.trim_end_matches('/') == mcp;
    s.resource.as_deref().is_some_and(resource_is)
        || s.tokens.iter().any(|t| t.claims.get("resource").and_then(Value::as_str).is_some_and(resource_is))
        || s.endpoint.starts_with(mcp)
        || c.authorization_server.as_deref().is_some_and(|a| s.endpoint.starts_with(a.trim_end_matches('/')))
        || (s.leg == Leg::Discovery
            && s.endpoint.ends_with(&format!("/.well-known/oauth-protected-resource{}", path_of(mcp))))
}

fn path_of(url: &str) -> String {
    url::Url::parse(url).map(|u| u.path().to_string()).unwrap_or_default()
}

/// The leg a connector's error code names (docs/status-schema.md); for the codes that name
/// none, the last request of the trace that got no answer or an error status.
fn leg_of_code(code: &ErrorCode, trace: &[Step]) -> Option<FailedLeg> {
    if let Some(leg) = code.leg() {
        return Some(leg);
    }
    let leg = match trace
        .iter()
        .rev()
        .find(|s| s.transport_error.is_some() || s.http_status.is_some_and(|h| h >= 400))?
        .leg
    {
        Leg::TokenExchange => FailedLeg::TokenExchange,
        Leg::JwtBearerGrant => FailedLeg::Grant,
        Leg::SignIn | Leg::Jwks | Leg::Revocation => FailedLeg::SignIn,
        Leg::McpInitialize => FailedLeg::McpServer,
        Leg::Discovery | Leg::Other => FailedLeg::Discovery,
    };
    Some(leg)
}

fn diagnose_connector(c: &ConnectorStatus, trace: Vec<Step>, skew: Option<(i64, String)>) -> ConnectorDiagnosis {
    let problem = c.error.as_ref().or(c.renewal_error.as_ref());
    // Not being assigned a connector is the IdP's answer, not a failure.
    let failed_leg =
        problem.filter(|_| c.state != ConnectorState::NotEntitled).and_then(|e| leg_of_code(&e.code, &trace));
    let skewed = skew.filter(|(s, _)| s.abs() >= SKEW_WARN_SECS);
    let network = failed_leg.and_then(|_| network_cause(&trace));
    let cause = problem.map(|e| match (&skewed.filter(|_| failed_leg.is_some()), failed_leg, &network) {
        (_, _, Some(words)) => format!("Likely cause: {words}. {}", e.message),
        // The engine already named the clock where the failure happened.
        _ if e.code == ErrorCode::ClockSkew => e.message.clone(),
        (Some((secs, _)), Some(FailedLeg::Grant | FailedLeg::TokenExchange | FailedLeg::SignIn), None) => format!(
            "Likely cause: this computer's clock is {} s off the servers' time, and tokens look expired or not yet valid to them. {}",
            secs.abs(),
            e.message
        ),
        _ => e.message.clone(),
    });
    ConnectorDiagnosis {
        id: c.id.clone(),
        display_name: c.display_name.clone(),
        state: c.state,
        failed_leg,
        code: problem.map(|e| e.code_str()),
        cause,
        fix: problem.map(|e| e.fix.clone()),
        fix_action: problem.and_then(|e| e.fix_action),
        trace,
        trusted_authorization_server: None,
        hints: Vec::new(),
    }
}

/// What a connector's AS metadata says of the ID-JAG grant (ID-JAG -04 §7: it SHOULD list the
/// grant profile, and then jwt-bearer among its grant types). Hints only: many servers accept
/// the grant without saying so.
pub fn authorization_server_hints(
    name: &str,
    e: &crate::discovery::ConnectorEndpoints,
    auth: &crate::config::ClientAuth,
) -> Vec<String> {
    use crate::discovery::ID_JAG_GRANT_PROFILE;
    use crate::grants::jwt_bearer::GRANT_TYPE_JWT_BEARER;
    let mut hints = vec![match &e.grant_profiles {
        Some(p) if p.iter().any(|p| p == ID_JAG_GRANT_PROFILE) => {
            format!(
                "{name}'s authorization server lists the ID-JAG grant profile in authorization_grant_profiles_supported"
            )
        }
        Some(_) => format!(
            "{name}'s authorization server lists grant profiles, but not ID-JAG ({ID_JAG_GRANT_PROFILE}); if its grants \
             fail, ask its vendor whether ID-JAG is enabled for your organisation"
        ),
        None => format!(
            "{name}'s authorization server does not list authorization_grant_profiles_supported (ID-JAG -04 §7 says it \
             should); only its answer to the grant tells whether it takes ID-JAGs"
        ),
    }];
    if let Err(why) = crate::oauth::client_auth::check_signing_alg(auth, e.signing_algs.as_deref()) {
        hints.push(format!("{name}: {why}"));
    }
    if let Some(types) = &e.grant_types
        && !types.iter().any(|t| t == GRANT_TYPE_JWT_BEARER)
    {
        hints.push(format!(
            "{name}'s authorization server lists grant_types_supported without {GRANT_TYPE_JWT_BEARER} (RFC 7523)"
        ));
    }
    hints
}

/// What the IdP's metadata says of ID-JAG (ID-JAG -04 §7, through the identity-chaining
/// draft's `identity_chaining_requested_token_types_supported`). A hint: Okta, for one, issues
/// ID-JAGs without listing them.
fn idp_hint(metadata: &Value) -> String {
    use crate::grants::token_exchange::TOKEN_TYPE_ID_JAG;
    match metadata.get("identity_chaining_requested_token_types_supported").and_then(Value::as_array) {
        Some(types) if types.iter().any(|t| t.as_str() == Some(TOKEN_TYPE_ID_JAG)) => {
            "the IdP lists ID-JAG in identity_chaining_requested_token_types_supported".to_string()
        }
        Some(_) => format!(
            "the IdP lists identity_chaining_requested_token_types_supported without ID-JAG ({TOKEN_TYPE_ID_JAG}); if \
             token exchanges fail, ask IT whether cross-app access is enabled for this app"
        ),
        None => "the IdP does not list identity_chaining_requested_token_types_supported; only its answer to the \
                 token exchange tells whether it issues ID-JAGs"
            .to_string(),
    }
}

/// Plain words for the network failure of the last request that got no answer (DNS, TLS,
/// refused, timeout), from the kind the transport classified it as.
fn network_cause(trace: &[Step]) -> Option<String> {
    let step = trace.iter().rev().find(|s| s.transport_error.is_some())?;
    let host = url::Url::parse(&step.endpoint).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    match step.network_failure? {
        NetworkFailure::Dns => {
            Some(format!("the name {host} could not be resolved (DNS); check the network, VPN or proxy settings"))
        }
        NetworkFailure::Tls => Some(format!(
            "the TLS connection to {host} failed (a certificate, TLS version or TLS-intercepting proxy problem)"
        )),
        NetworkFailure::Refused => Some(format!("nothing answers at {host} (connection refused)")),
        NetworkFailure::Timeout => Some(format!("{host} did not answer in time")),
        NetworkFailure::Other => None,
    }
}

fn connector_check(d: &ConnectorDiagnosis, signed_in: bool) -> Check {
    let name = format!("connector-{}", d.id);
    let (outcome, summary) = match (d.state, d.failed_leg) {
        _ if !signed_in => return skipped(&name, "not signed in; run `ema login`"),
        (ConnectorState::Active | ConnectorState::ExpiringSoon, Some(leg)) => (
            Outcome::Warn,
            format!(
                "{} works for now, but its renewal fails at {}: {}",
                d.display_name,
                leg.words(),
                d.cause.as_deref().unwrap_or("no reason given")
            ),
        ),
        (ConnectorState::Active, None) => {
            (Outcome::Pass, format!("{} works: {}", d.display_name, leg_timings(&d.trace)))
        }
        (ConnectorState::NotEntitled, _) => {
            (Outcome::Pass, format!("{} is not assigned to you at the IdP (not an error)", d.display_name))
        }
        (_, Some(leg)) => (
            Outcome::Fail,
            format!("{} fails at {}: {}", d.display_name, leg.words(), d.cause.as_deref().unwrap_or("no reason given")),
        ),
        (state, None) => (Outcome::Warn, format!("{} is {state:?} with no error recorded", d.display_name)),
    };
    let total: u64 = d.trace.iter().map(|s| s.duration_ms).sum();
    Check {
        name,
        outcome,
        summary,
        fix: d.fix.clone(),
        fix_action: d.fix_action,
        duration_ms: total,
        hints: d.hints.clone(),
    }
}

/// `personal-connections`: personal credentials for connectors the company requires to go through
/// the IdP (fail), and entries a person should look at (warn).
pub fn personal_check(findings: &[Finding]) -> Check {
    let flagged: Vec<&Finding> = findings.iter().filter(|f| f.is_flagged()).collect();
    let review = findings.iter().filter(|f| f.verdict == Verdict::Review).count();
    let describe = |f: &&Finding| {
        format!(
            "{} in {} ({})",
            f.server_name.as_deref().or(f.connector.as_deref()).unwrap_or("an entry"),
            client_name(f.client),
            f.path.display()
        )
    };
    let (outcome, summary, fix) = match (flagged.len(), review) {
        (0, 0) => (Outcome::Pass, "no personal-account connection found in the AI clients' files".to_string(), None),
        (0, n) => (
            Outcome::Warn,
            format!("{n} connection(s) cannot be judged from the files (a helper command or an unreadable file)"),
            Some("`ema scan` lists them; look at each with the help desk".to_string()),
        ),
        (n, _) => (
            Outcome::Fail,
            format!(
                "{n} personal-account connection(s) for connectors that must go through the company IdP: {}",
                flagged.iter().map(describe).collect::<Vec<_>>().join("; ")
            ),
            Some(
                "`ema scan` lists them and `ema fix ID --replace` (or --remove) fixes each, with a backup".to_string(),
            ),
        ),
    };
    Check {
        name: "personal-connections".into(),
        outcome,
        summary,
        fix,
        fix_action: None,
        duration_ms: 0,
        hints: Vec::new(),
    }
}

/// `token exchange 12 ms, grant 8 ms, MCP initialize 20 ms`: the last attempt of each leg.
fn leg_timings(trace: &[Step]) -> String {
    let legs = [
        (Leg::TokenExchange, "token exchange"),
        (Leg::JwtBearerGrant, "grant"),
        (Leg::McpInitialize, "MCP initialize"),
    ];
    let said: Vec<String> = legs
        .iter()
        .filter_map(|(leg, words)| {
            trace.iter().rev().find(|s| s.leg == *leg).map(|s| format!("{words} {} ms", s.duration_ms))
        })
        .collect();
    if said.is_empty() { "every leg answered".into() } else { said.join(", ") }
}

/// How long a whole `ema doctor` may take before the CLI gives up.
pub const DOCTOR_DEADLINE: Duration = Duration::from_secs(60);

/// The checks ran out of time ([`DOCTOR_DEADLINE`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the checks did not finish within {} s", DOCTOR_DEADLINE.as_secs())]
pub struct ChecksTimedOut;

/// The diagnosis every face runs (`ema doctor`, `ema diagnostics`, the window's export): every
/// check against `policy` with the tokens in the OS keyring, within [`DOCTOR_DEADLINE`].
pub async fn diagnose_now(policy: Policy, personal: &[Finding]) -> Result<Diagnosis, ChecksTimedOut> {
    let store: Arc<dyn SecretStore> = Arc::new(crate::store::KeyringStore::new());
    tokio::time::timeout(DOCTOR_DEADLINE, diagnose(policy, store, personal)).await.map_err(|_| ChecksTimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_ids_are_short_unambiguous_and_different() {
        let a = support_id();
        assert_eq!(a.len(), 13, "{a}");
        assert!(a.starts_with("EMA-"));
        assert!(!a.contains(['I', 'L', 'O', 'U']), "{a}");
        assert_ne!(a, support_id());
    }

    #[test]
    fn metadata_hints_say_what_is_listed_and_never_echo_it() {
        let endpoints = |profiles: Option<&[&str]>, grants: Option<&[&str]>| crate::discovery::ConnectorEndpoints {
            resource: "https://mcp.example.com/mcp".into(),
            issuer: "https://as.example.com".into(),
            token_endpoint: url::Url::parse("https://as.example.com/token").unwrap(),
            token_endpoint_auth_methods: vec![],
            grant_types: grants.map(|g| g.iter().map(|s| s.to_string()).collect()),
            grant_profiles: profiles.map(|p| p.iter().map(|s| s.to_string()).collect()),
            revocation_endpoint: None,
            signing_algs: None,
        };
        let listed = authorization_server_hints(
            "Linear",
            &endpoints(Some(&[crate::discovery::ID_JAG_GRANT_PROFILE]), None),
            &crate::config::ClientAuth::None,
        );
        assert_eq!(listed.len(), 1);
        assert!(listed[0].contains("lists the ID-JAG grant profile"), "{listed:?}");
        let other = authorization_server_hints(
            "Linear",
            &endpoints(Some(&["<script>other</script>"]), Some(&["authorization_code"])),
            &crate::config::ClientAuth::None,
        );
        assert!(other[0].contains("but not ID-JAG"), "{other:?}");
        assert!(other[1].contains("without urn:ietf:params:oauth:grant-type:jwt-bearer"), "{other:?}");
        assert!(!other.join(" ").contains("<script>"), "what the server listed is not echoed");
        let silent = authorization_server_hints("Linear", &endpoints(None, None), &crate::config::ClientAuth::None);
        assert!(silent[0].contains("does not list authorization_grant_profiles_supported"), "{silent:?}");
        let key = crate::config::ClientAuth::PrivateKeyJwt {
            key: crate::secret::PrivateKeyPem::new(include_str!("../../tests/data/test-client-key.pem")),
            key_id: None,
            alg: jsonwebtoken::Algorithm::ES256,
        };
        let mut rs_only = endpoints(Some(&[crate::discovery::ID_JAG_GRANT_PROFILE]), None);
        rs_only.signing_algs = Some(vec!["RS256".into()]);
        let algs = authorization_server_hints("Linear", &rs_only, &key);
        assert!(algs.iter().any(|h| h.contains("signs with ES256") && h.contains("RS256 only")), "{algs:?}");
        rs_only.signing_algs = Some(vec!["ES256".into()]);
        assert_eq!(authorization_server_hints("Linear", &rs_only, &key).len(), 1, "a listed algorithm says nothing");

        let jag = crate::grants::token_exchange::TOKEN_TYPE_ID_JAG;
        assert!(
            idp_hint(&serde_json::json!({"identity_chaining_requested_token_types_supported": [jag]}))
                .contains("lists ID-JAG")
        );
        assert!(
            idp_hint(&serde_json::json!({"identity_chaining_requested_token_types_supported": ["x"]}))
                .contains("without ID-JAG")
        );
        assert!(idp_hint(&serde_json::json!({})).contains("does not list"));
    }
}
