//! One MCP server entry: which connector it reaches and what credential it carries.
//!
//! Why one shared analysis: every client writes the same few shapes (stdio
//! `{command, args, env}`, remote `{url, headers}`, plus Claude Code's `headersHelper` and VS
//! Code's `oauth.enterpriseManaged`), so the rules live once here and the per-client sources
//! only say where the entries are. Secret values are fingerprinted on sight and then dropped:
//! nothing that leaves this module holds one.

use serde_json::{Map, Value};
use url::Url;

use super::known::{self, KNOWN};
use super::{Catalog, CredentialClass, MatchBasis, SecretLocation};
use crate::secret::Fingerprint;

/// What the analysis of one entry found.
pub(super) struct Analysis {
    pub class: CredentialClass,
    pub fingerprint: Option<Fingerprint>,
    /// The class part of the finding's "why".
    pub why: String,
    /// The matched catalog connector's id.
    pub connector: Option<(String, MatchBasis)>,
    /// Server URLs as written in the entry (mcp-remote hashes them into file names).
    pub urls: Vec<String>,
}

/// A secret seen in an entry; its value is already reduced to a fingerprint.
struct Hit {
    location: SecretLocation,
    name: String,
    /// `None` when the entry only references the value (`${env:NAME}`).
    fingerprint: Option<Fingerprint>,
    /// The vendor whose documented token prefix the value has.
    prefix_of: Option<&'static str>,
}

/// The fields of an entry the rules look at.
struct Fields<'v> {
    url: Option<&'v str>,
    command: Option<&'v str>,
    args: Vec<&'v str>,
    env: Option<&'v Map<String, Value>>,
    headers: Option<&'v Map<String, Value>>,
    helper: Option<&'v str>,
    enterprise_managed: bool,
}

impl<'v> Fields<'v> {
    fn of(obj: &'v Map<String, Value>) -> Self {
        let str_of = |k: &str| obj.get(k).and_then(Value::as_str);
        Fields {
            // `url` everywhere; `serverUrl` (Windsurf) and `httpUrl` (Gemini-style) as aliases.
            url: str_of("url").or_else(|| str_of("serverUrl")).or_else(|| str_of("httpUrl")),
            command: str_of("command"),
            args: obj
                .get("args")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default(),
            env: obj.get("env").and_then(Value::as_object),
            headers: obj.get("headers").and_then(Value::as_object),
            helper: str_of("headersHelper"),
            enterprise_managed: obj.get("oauth").and_then(|o| o.get("enterpriseManaged")).and_then(Value::as_bool)
                == Some(true),
        }
    }
}

/// Analyses the entry `name` of a client's server map.
pub(super) fn analyse(name: &str, obj: &Map<String, Value>, catalog: &Catalog) -> Analysis {
    let f = Fields::of(obj);
    let mut raw_urls: Vec<&str> = f.url.into_iter().collect();
    raw_urls.extend(f.args.iter().copied().filter(|a| parse_http_url(a).is_some()));
    let urls: Vec<Url> = raw_urls.iter().filter_map(|u| parse_http_url(u)).collect();

    let mut hits = Vec::new();
    for (k, v) in f.headers.into_iter().flatten() {
        if let Some(v) = v.as_str()
            && known::is_secret_name(k)
        {
            push_hit(&mut hits, SecretLocation::Header, k, v);
        }
    }
    for (k, v) in f.env.into_iter().flatten() {
        if let Some(v) = v.as_str()
            && (known::is_secret_name(k) || known::by_secret_prefix(v).is_some())
        {
            push_hit(&mut hits, SecretLocation::Env, k, v);
        }
    }
    scan_args(&f.args, SecretLocation::Argument, &mut hits);
    for url in &urls {
        for (k, v) in url.query_pairs() {
            if known::is_secret_name(&k) {
                push_hit(&mut hits, SecretLocation::UrlQuery, &k, &v);
            }
        }
    }
    if let Some(helper) = f.helper {
        scan_helper(helper, &mut hits);
    }

    let (class, fingerprint, why) = classify(&f, &hits, &urls);
    let connector = match_connector(name, &f, &urls, &hits, catalog);
    Analysis { class, fingerprint, why, connector, urls: raw_urls.iter().map(|u| u.to_string()).collect() }
}

/// The connector a server reached at `url` (if known) and named `name` is for: used for cached
/// grants, which have no entry around them.
pub(super) fn match_server(name: &str, url: Option<&str>, catalog: &Catalog) -> Option<(String, MatchBasis)> {
    let f = Fields {
        url,
        command: None,
        args: Vec::new(),
        env: None,
        headers: None,
        helper: None,
        enterprise_managed: false,
    };
    let urls: Vec<Url> = url.and_then(parse_http_url).into_iter().collect();
    match_connector(name, &f, &urls, &[], catalog)
}

fn classify(f: &Fields<'_>, hits: &[Hit], urls: &[Url]) -> (CredentialClass, Option<Fingerprint>, String) {
    // The worst credential decides: a literal secret, then a referenced one.
    if let Some(h) = hits.iter().find(|h| h.fingerprint.is_some()).or_else(|| hits.first()) {
        let place = match h.location {
            SecretLocation::Header => "header",
            SecretLocation::Env => "environment variable",
            SecretLocation::Argument => "argument",
            SecretLocation::UrlQuery => "URL parameter",
            SecretLocation::Helper => "helper command",
        };
        let mut why = match h.fingerprint {
            Some(_) if h.location == SecretLocation::Helper => {
                format!("A secret is written in the headersHelper command (`{}`)", h.name)
            }
            Some(_) => format!("A secret is written in the {place} `{}`", h.name),
            None => format!(
                "The {place} `{}` sends a secret kept elsewhere (a variable or a saved prompt, not read by the scan)",
                h.name
            ),
        };
        if hits.len() > 1 {
            why.push_str(&format!(", and {} more secret(s) in the same entry", hits.len() - 1));
        }
        let class = CredentialClass::StaticToken {
            location: h.location,
            name: h.name.clone(),
            value_in_file: h.fingerprint.is_some(),
        };
        return (class, h.fingerprint.clone(), why);
    }
    if let Some(helper) = f.helper {
        let words = shell_words(helper);
        let program = words.first().map(|w| program_name(w)).unwrap_or_default();
        if program == known::OUR_CLI && words.get(1).map(String::as_str) == Some("headers") {
            return (CredentialClass::Managed, None, "Its headersHelper runs the company app (`ema headers`)".into());
        }
        return (
            CredentialClass::OpaqueHelper,
            None,
            format!("Its headersHelper runs `{}`, whose credential the scan cannot see", shown_program(&program)),
        );
    }
    if f.enterprise_managed {
        return (
            CredentialClass::Managed,
            None,
            "It uses enterprise-managed OAuth through the company IdP (`oauth.enterpriseManaged: true`)".into(),
        );
    }
    if let Some(command) = f.command {
        let program = program_name(command);
        if program == known::OUR_CLI {
            return (CredentialClass::Managed, None, "It runs the company app".into());
        }
        let words: Vec<&str> = std::iter::once(command).chain(f.args.iter().copied()).collect();
        if let Some(bridge) =
            known::OAUTH_BRIDGES.iter().find(|b| words.iter().any(|w| known::names_package(&program_name(w), b)))
        {
            return (
                CredentialClass::NoCredential,
                None,
                format!("It runs {bridge}, which keeps its OAuth tokens in its own cache (reported separately)"),
            );
        }
        return (
            CredentialClass::OpaqueHelper,
            None,
            format!(
                "It runs the local program `{}` with no credential in the entry; which account it uses cannot be seen",
                shown_program(&program)
            ),
        );
    }
    if !urls.is_empty() {
        return (
            CredentialClass::NoCredential,
            None,
            "A remote server with no credential in the entry: the client signs in itself when asked".into(),
        );
    }
    (CredentialClass::NoCredential, None, "The entry has no URL, command or credential".into())
}

fn match_connector(
    name: &str,
    f: &Fields<'_>,
    urls: &[Url],
    hits: &[Hit],
    catalog: &Catalog,
) -> Option<(String, MatchBasis)> {
    let in_catalog = |id: &str| catalog.get(id).map(|c| c.id.clone());
    // 1. The policy's own MCP URL: same host and port, the longest shared path wins.
    let mut best: Option<(usize, &str)> = None;
    for url in urls {
        for c in catalog.connectors() {
            if url.host_str().map(str::to_ascii_lowercase) == c.mcp_url.host_str().map(str::to_ascii_lowercase)
                && url.port_or_known_default() == c.mcp_url.port_or_known_default()
            {
                let shared = shared_segments(url, &c.mcp_url);
                if best.is_none_or(|(n, _)| shared > n) {
                    best = Some((shared, &c.id));
                }
            }
        }
    }
    if let Some((_, id)) = best {
        return Some((id.to_string(), MatchBasis::McpUrl));
    }
    // 2-5. The table of well-known names.
    let hosts: Vec<String> = urls.iter().filter_map(|u| u.host_str().map(str::to_ascii_lowercase)).collect();
    let words: Vec<&str> = f.command.into_iter().chain(f.args.iter().copied()).collect();
    let env_keys: Vec<&str> = f.env.into_iter().flat_map(|e| e.keys().map(String::as_str)).collect();
    let rules: [(MatchBasis, &KnownRule<'_>); 3] = [
        (MatchBasis::KnownHost, &|k| k.hosts.iter().any(|h| hosts.iter().any(|x| x == h))),
        (MatchBasis::Package, &|k| k.packages.iter().any(|p| words.iter().any(|w| known::names_package(w, p)))),
        (MatchBasis::EnvVar, &|k| k.env_vars.iter().any(|v| env_keys.contains(v))),
    ];
    for (basis, rule) in rules {
        if let Some(id) = KNOWN.iter().filter(|k| rule(k)).find_map(|k| in_catalog(k.id)) {
            return Some((id, basis));
        }
    }
    if let Some(id) = hits.iter().filter_map(|h| h.prefix_of).find_map(in_catalog) {
        return Some((id, MatchBasis::SecretPrefix));
    }
    // 6. Only the name: the weakest hint, still worth a look for an IdP-only connector.
    catalog
        .connectors()
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(name) || c.display_name.eq_ignore_ascii_case(name))
        .map(|c| (c.id.clone(), MatchBasis::ServerName))
}

/// A test of one row of the table of well-known names.
type KnownRule<'r> = dyn Fn(&known::KnownConnector) -> bool + 'r;

/// How many leading path segments two URLs share.
fn shared_segments(a: &Url, b: &Url) -> usize {
    let segs = |u: &Url| u.path().split('/').filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>();
    segs(a).iter().zip(segs(b).iter()).take_while(|(x, y)| x == y).count()
}

fn parse_http_url(s: &str) -> Option<Url> {
    let u = Url::parse(s.trim()).ok()?;
    matches!(u.scheme(), "http" | "https").then_some(u)
}

/// Records a secret seen at `name`; empty, too short and placeholder values are ignored.
fn push_hit(hits: &mut Vec<Hit>, location: SecretLocation, name: &str, value: &str) {
    let value = value.trim();
    // `Bearer abc`, `Basic abc`, `token abc`: the credential is after the scheme.
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if ["bearer", "basic", "token"].iter().any(|s| scheme.eq_ignore_ascii_case(s)) => {
            rest.trim()
        }
        _ => value,
    };
    let referenced = token.contains("${") || token.starts_with('$') || token.contains("{{");
    if !referenced && (token.len() < 8 || token.eq_ignore_ascii_case("changeme")) {
        return;
    }
    if location == SecretLocation::Helper {
        // A helper is a program: only a value written out literally in its command line is a
        // static token. `$VAR`, `$(op read ...)`, `` `security ...` `` or printf's `%s` mean the
        // value comes from elsewhere when it runs (a keychain, a vault, EMA): an opaque helper.
        let expanded = ['$', '`', '%', '<', '>', '|', '(', ')'].iter().any(|c| token.contains(*c));
        let fingerprint = Fingerprint::of(token);
        if referenced || expanded || hits.iter().any(|h| h.fingerprint.as_ref() == Some(&fingerprint)) {
            return;
        }
    }
    hits.push(Hit {
        location,
        name: name.to_string(),
        fingerprint: (!referenced).then(|| Fingerprint::of(token)),
        prefix_of: known::by_secret_prefix(token).map(|k| k.id),
    });
}

/// Secrets in command-line arguments: `--token X`, `--token=X`, `--header "Authorization: X"`,
/// and any argument with a vendor's token prefix.
fn scan_args(args: &[&str], location: SecretLocation, hits: &mut Vec<Hit>) {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        let next = args.get(i + 1).copied();
        if arg.starts_with('-') {
            if let Some((flag, value)) = arg.split_once('=') {
                if known::is_secret_name(flag) {
                    push_hit(hits, location, flag, value);
                }
            } else if matches!(arg, "--header" | "-H") {
                if let Some((header, value)) = next.and_then(|h| h.split_once(':'))
                    && known::is_secret_name(header.trim())
                {
                    push_hit(hits, location, header.trim(), value);
                }
                i += 1;
            } else if known::is_secret_name(arg)
                && let Some(value) = next.filter(|n| !n.starts_with('-'))
            {
                push_hit(hits, location, arg, value);
                i += 1;
            }
        } else if known::by_secret_prefix(arg).is_some() {
            let name = if location == SecretLocation::Helper { "headersHelper".into() } else { format!("args[{i}]") };
            push_hit(hits, location, &name, arg);
        }
        i += 1;
    }
}

/// Literal secrets in a `headersHelper` command line. A helper prints the headers as JSON, and
/// a helper that just prints a fixed token is a static token with extra steps:
/// `echo '{"Authorization": "Bearer lin_api_..."}'`, `printf '...'`, `cat <<EOF ... EOF`,
/// `TOKEN=... some-cmd`, `curl -H "Authorization: Bearer ..."`. Only values written out in the
/// command count (see [`push_hit`]); `ema headers linear` or a keychain lookup stay opaque.
fn scan_helper(helper: &str, hits: &mut Vec<Hit>) {
    let (command, bodies) = split_heredocs(helper);
    let words = posix_words(&command);
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    scan_args(&args, SecretLocation::Helper, hits);
    for word in words.iter().map(String::as_str).chain(bodies.iter().map(String::as_str)) {
        // `NAME=value` (an environment assignment, `export NAME=value`, `key=value`).
        if let Some((name, value)) = word.split_once('=')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && (known::is_secret_name(name) || known::by_secret_prefix(value).is_some())
        {
            push_hit(hits, SecretLocation::Helper, name, value);
        }
        // The JSON object the helper prints, wherever it sits in the word (`'{...}\n'`, `<<<{...}`).
        if let Some(headers) = json_object_in(word) {
            for (name, value) in &headers {
                if let Some(value) = value.as_str()
                    && (known::is_secret_name(name) || known::by_secret_prefix(value).is_some())
                {
                    push_hit(hits, SecretLocation::Helper, name, value);
                }
            }
        }
    }
}

/// The JSON object between the first `{` and the last `}` of `text`, if that parses as one.
fn json_object_in(text: &str) -> Option<Map<String, Value>> {
    let (start, end) = (text.find('{')?, text.rfind('}')?);
    match serde_json::from_str(text.get(start..=end)?) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Takes the bodies of here-documents (`<<EOF`, `<<-'EOF'`) out of a command line: the command
/// without them, and the bodies.
fn split_heredocs(line: &str) -> (String, Vec<String>) {
    let mut command = String::new();
    let mut bodies = Vec::new();
    let mut lines = line.lines();
    while let Some(l) = lines.next() {
        command.push_str(l);
        command.push('\n');
        let Some(at) = l.find("<<").filter(|at| !l[*at..].starts_with("<<<")) else {
            continue;
        };
        let spec = l[at + 2..].trim_start_matches('-').trim_start();
        let delimiter: String = spec
            .trim_start_matches(['\'', '"'])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if delimiter.is_empty() {
            continue;
        }
        let mut body = String::new();
        for b in lines.by_ref() {
            if b.trim() == delimiter {
                break;
            }
            body.push_str(b);
            body.push('\n');
        }
        bodies.push(body);
    }
    (command, bodies)
}

/// Splits a command line into words as a POSIX shell does (quotes, backslash escapes), for
/// reading the values a helper prints; [`shell_words`] keeps backslashes for Windows paths.
fn posix_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '\\' && chars.peek().is_some_and(|n| matches!(n, '"' | '\\' | '$' | '`')) => {
                word.extend(chars.next());
            }
            Some(_) => word.push(c),
            None if c == '\\' => {
                word.extend(chars.next());
                in_word = true;
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() || c == ';' || c == '&' || c == '|' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Splits a command line into words, honouring single and double quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The file name of a program path without `.exe`/`.cmd`, lower-case.
fn program_name(path: &str) -> String {
    let base = path.rsplit(['/', '\\']).next().unwrap_or(path).to_ascii_lowercase();
    for ext in [".exe", ".cmd", ".bat"] {
        if let Some(stem) = base.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    base
}

/// A program name fit for a message: it is a file name, but scrub it anyway.
fn shown_program(program: &str) -> String {
    crate::redact::scrub(program, 60)
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
