//! Running a scan: each client's files read under the limits, each MCP server entry judged
//! against the catalog and the company's identity (`judge`), findings collected.

use super::*;

/// Scans the clients' files under `roots` and reports every MCP server entry and cached OAuth
/// grant, matched to `catalog` and judged against `company`. Never fails: what cannot be read
/// is a finding.
pub fn scan(roots: &ScanRoots, catalog: &Catalog, company: &CompanyIdentity, limits: &ScanLimits) -> ScanReport {
    let started = Instant::now();
    let mut ctx = Ctx {
        reader: fsread::Reader::new(limits),
        catalog,
        company,
        findings: Vec::new(),
        entries_seen: 0,
        seen_urls: Vec::new(),
    };
    sources::scan_all(&mut ctx, roots);
    let mut findings = ctx.findings;
    findings.sort_by(|a, b| {
        (a.verdict, a.client, &a.path, &a.key_path, &a.connector, a.class.code()).cmp(&(
            b.verdict,
            b.client,
            &b.path,
            &b.key_path,
            &b.connector,
            b.class.code(),
        ))
    });
    ScanReport {
        findings,
        files_read: ctx.reader.files_read,
        entries_seen: ctx.entries_seen,
        file_limit_reached: ctx.reader.limit_reached,
        duration: started.elapsed(),
        looked_at: ctx.reader.looked_at,
        listed_dirs: ctx.reader.listed,
    }
}

/// State shared by the sources during one scan.
pub(in crate::personal::scan) struct Ctx<'a> {
    pub(in crate::personal::scan) reader: fsread::Reader<'a>,
    pub(in crate::personal::scan) catalog: &'a Catalog,
    pub(in crate::personal::scan) company: &'a CompanyIdentity,
    pub(in crate::personal::scan) findings: Vec<Finding>,
    pub(in crate::personal::scan) entries_seen: usize,
    /// Server URLs seen in configuration entries: candidates for mcp-remote's hashed file names.
    pub(in crate::personal::scan) seen_urls: Vec<String>,
}

/// Where an entry was found.
pub(in crate::personal::scan) struct Site<'p> {
    pub(in crate::personal::scan) client: Client,
    pub(in crate::personal::scan) scope: Scope,
    pub(in crate::personal::scan) path: &'p Path,
}

impl Ctx<'_> {
    /// Records that `path` could not be checked.
    pub(in crate::personal::scan) fn could_not_read(
        &mut self,
        client: Client,
        scope: Scope,
        path: &Path,
        reason: String,
    ) {
        let why = format!("This file could not be checked: {reason}.");
        let class = CredentialClass::CouldNotRead { reason };
        self.findings.push(Finding {
            id: finding_id(path, "", &class, None),
            client,
            scope,
            path: path.to_path_buf(),
            key_path: String::new(),
            server_name: None,
            connector: None,
            matched_by: None,
            why,
            what_to_do: "Check the file by hand (is it valid JSON, readable by you, a normal file?) and run the scan \
                         again."
                .to_string(),
            class,
            verdict: Verdict::Review,
            fingerprint: None,
            file_sha256: None,
        });
    }

    /// Judges an analysed entry and records the finding.
    pub(in crate::personal::scan) fn record(
        &mut self,
        site: &Site<'_>,
        key_path: String,
        server_name: Option<String>,
        a: entry::Analysis,
    ) {
        self.entries_seen += 1;
        let connector = a.connector.and_then(|(id, basis)| self.catalog.get(&id).map(|c| (c, basis)));
        let (verdict, what_to_do) = judge(&a.class, connector.map(|(c, _)| c), site);
        let why = match connector {
            Some((c, basis)) => format!("{} (matched to {} by {}).", a.why, c.display_name, basis_words(basis)),
            None => format!("{} (not a connector of the company catalog).", a.why),
        };
        self.findings.push(Finding {
            id: finding_id(site.path, &key_path, &a.class, a.fingerprint.as_ref()),
            file_sha256: self.reader.digests.get(site.path).cloned(),
            client: site.client,
            scope: site.scope,
            path: site.path.to_path_buf(),
            key_path,
            // Another program's words, shown to the user and the help desk: scrubbed like any
            // text we did not write (found by fuzzing: a `serverName` carrying a Linear key).
            server_name: server_name.map(|n| crate::redact::scrub(&n, 200)),
            connector: connector.map(|(c, _)| c.id.clone()),
            matched_by: connector.map(|(_, b)| b),
            class: a.class,
            verdict,
            why,
            what_to_do,
            fingerprint: a.fingerprint,
        });
    }
}

fn basis_words(basis: MatchBasis) -> &'static str {
    match basis {
        MatchBasis::McpUrl => "the host of its MCP URL in the policy",
        MatchBasis::KnownHost => "a well-known host of the vendor",
        MatchBasis::Package => "a well-known MCP server package",
        MatchBasis::EnvVar => "a well-known environment variable",
        MatchBasis::SecretPrefix => "the vendor's token prefix",
        MatchBasis::ServerName => "the entry's name",
    }
}

/// The verdict and the advice for a class of credential for a connector (if any).
fn judge(class: &CredentialClass, connector: Option<&CatalogConnector>, site: &Site<'_>) -> (Verdict, String) {
    let file = site.path.display();
    let Some(c) = connector else {
        return (Verdict::Ok, "Nothing to do for the company: this server is not one of its connectors.".into());
    };
    let name = &c.display_name;
    if !c.idp_only {
        return (
            Verdict::Ok,
            format!(
                "Nothing to do: the company allows personal accounts for {name}. Connecting it through the company app is still the simplest way."
            ),
        );
    }
    match class {
        CredentialClass::Managed => {
            (Verdict::Ok, "Nothing to do: this entry gets its credential from the company app.".into())
        }
        CredentialClass::PersonalOAuth { identity: IdentityKind::Company, .. } => {
            (Verdict::Ok, "Nothing to do: the cached sign-in is your company account.".into())
        }
        CredentialClass::StaticToken { value_in_file: true, .. } => (
            Verdict::Flagged,
            format!(
                "{name} may only be used through the company sign-in. Revoke this token in {name}'s settings, remove it \
                 from {file}, and connect {name} from the company app instead (its `ema headers {id}` helper).",
                id = c.id
            ),
        ),
        CredentialClass::StaticToken { value_in_file: false, .. } => (
            Verdict::Flagged,
            format!(
                "{name} may only be used through the company sign-in. This entry sends a personal token kept elsewhere \
                 (an environment variable or a saved prompt): revoke it in {name}'s settings, remove the entry from \
                 {file}, and connect {name} from the company app instead.",
            ),
        ),
        CredentialClass::PersonalOAuth { identity: IdentityKind::Personal, .. } => (
            Verdict::Flagged,
            format!(
                "{name} may only be used through the company sign-in, and this client is signed in with another account. \
                 Sign out of {name} in that client (or delete the cached token file), then connect {name} from the \
                 company app."
            ),
        ),
        CredentialClass::PersonalOAuth { identity: IdentityKind::Unknown, .. } => (
            Verdict::Flagged,
            format!(
                "{name} may only be used through the company sign-in, and the account of this cached sign-in cannot be \
                 read from the token. Unless you know it is your company account, sign out of {name} in that client \
                 (or delete the cached token) and connect {name} from the company app."
            ),
        ),
        CredentialClass::OpaqueHelper => (
            Verdict::Review,
            format!(
                "Check which account this program signs in to {name} with. To be sure it is the company account, \
                 replace it with the company app's helper (`ema headers {id}`).",
                id = c.id
            ),
        ),
        CredentialClass::NoCredential => (
            Verdict::Ok,
            format!(
                "Nothing stored here. If this client asks you to sign in to {name}, prefer connecting {name} from the \
                 company app."
            ),
        ),
        CredentialClass::CouldNotRead { .. } => {
            (Verdict::Review, "Check the file by hand and run the scan again.".into())
        }
    }
}

/// An RFC 6901 JSON pointer from unescaped reference tokens.
pub(in crate::personal::scan) fn json_pointer<'s>(tokens: impl IntoIterator<Item = &'s str>) -> String {
    let mut out = String::new();
    for t in tokens {
        out.push('/');
        out.push_str(&t.replace('~', "~0").replace('/', "~1"));
    }
    out
}
