//! The stable error codes of the status JSON (`docs/status-schema.md`), as one closed type.
//!
//! Why a type and not strings: the faces, `ema doctor` and the onboarding words decide from the
//! code which leg failed and what to say. When codes were strings built with `format!` and read
//! back by prefix, a code could be matched that nothing produced, or produced that nothing
//! matched. Now every producer returns an [`ErrorCode`], every reader matches on it, and the one
//! place that turns it into the documented string and back is here ([`ErrorCode::wire`],
//! [`ErrorCode::parse`]). The server's OAuth `error` (RFC 6749 §5.2) is not part of the type: it
//! travels beside it ([`super::StatusError::oauth_error`]) and only enters the string, as the
//! schema has always shown it (`connector-grant-oauth-invalid-grant`).

use std::fmt;

/// The request a failure happened in, for the codes that name it as a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Sign-in or session renewal at the IdP's token endpoint (`idp-`).
    Idp,
    /// The IdP's OpenID configuration (`idp-discovery-`).
    IdpDiscovery,
    /// The token exchange at the IdP, ID-JAG draft -04 §4.3 (`token-exchange-`).
    TokenExchange,
    /// The JWT-bearer grant at the connector's authorization server, §4.4 (`connector-grant-`).
    /// (The connector's metadata has codes of its own: [`DiscoveryCode`].)
    ConnectorGrant,
}

impl Leg {
    pub const ALL: [Leg; 4] = [Leg::Idp, Leg::IdpDiscovery, Leg::TokenExchange, Leg::ConnectorGrant];

    fn prefix(self) -> &'static str {
        match self {
            Leg::Idp => "idp",
            Leg::IdpDiscovery => "idp-discovery",
            Leg::TokenExchange => "token-exchange",
            Leg::ConnectorGrant => "connector-grant",
        }
    }
}

/// Why a request got no usable answer at all (`http::TransportError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportCode {
    /// The URL broke the https-except-loopback rule (RFC 8252 §8.3, RFC 9700 §2.6).
    UrlRefused,
    Timeout,
    /// No connection: DNS, TLS, refused (the kind is in the trace: `http::NetworkFailure`).
    Unreachable,
    ResponseTooLarge,
    TransportFailed,
    /// HTTP 5xx or 429 where the caller treats it as "down", not as an answer.
    ServerUnavailable,
}

impl TransportCode {
    pub const ALL: [TransportCode; 6] = [
        TransportCode::UrlRefused,
        TransportCode::Timeout,
        TransportCode::Unreachable,
        TransportCode::ResponseTooLarge,
        TransportCode::TransportFailed,
        TransportCode::ServerUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransportCode::UrlRefused => "url-refused",
            TransportCode::Timeout => "timeout",
            TransportCode::Unreachable => "unreachable",
            TransportCode::ResponseTooLarge => "response-too-large",
            TransportCode::TransportFailed => "transport-failed",
            TransportCode::ServerUnavailable => "server-unavailable",
        }
    }

    /// True when the network (or the server being down) is the likely cause, not the answer.
    pub fn is_unreachable(self) -> bool {
        matches!(self, TransportCode::Timeout | TransportCode::Unreachable | TransportCode::ServerUnavailable)
    }
}

impl fmt::Display for TransportCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for TransportCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What a token endpoint (or the IdP's configuration) answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// An OAuth error response (RFC 6749 §5.2); its `error` is kept beside the code.
    OAuth,
    /// A non-success status without an OAuth error body.
    Http(u16),
    /// A success that breaks its RFC (a missing field, `expires_in` beyond a year).
    InvalidResponse,
    Transport(TransportCode),
}

/// What the connector's metadata was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscoveryCode {
    HttpError,
    InvalidMetadata,
    /// RFC 9728 §3.3: the document is for another resource.
    ResourceMismatch,
    /// RFC 8414 §3.3: the document names another issuer.
    IssuerMismatch,
    NoAsMetadata,
    Transport(TransportCode),
}

/// Why the OS keyring failed (`store::StoreError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyringCode {
    Unavailable,
    Denied,
    EntryDamaged,
}

/// A stable error code. Its string form ([`ErrorCode::wire`]) is an interface documented in
/// `docs/status-schema.md`; a test checks that every code has its line there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A leg's request failed: `<leg>-oauth-<error>`, `<leg>-http-<status>`,
    /// `<leg>-invalid-response`, `<leg>-<transport code>`.
    Response(Leg, ResponseKind),
    /// The connector's metadata: `discovery-*`.
    Discovery(DiscoveryCode),
    /// The policy pins an authorization server the MCP server does not name.
    AsPinMismatch,
    /// The MCP server names another authorization server than the one first trusted.
    AuthorizationServerChanged,
    /// The policy moved to another IdP (or IdP client) than the last sign-in's: sign in again.
    IdpChanged,
    /// The IdP does not assign this connector to the user (a state, not a failure).
    NotEntitled,
    /// The IdP wants a fresher or stronger sign-in (RFC 9470).
    StepUpRequired,
    /// The IdP refused the ID token in the exchange (session ended or revoked).
    IdpSessionInvalid,
    /// The IdP refused the refresh token: the session ended.
    IdpSessionExpired,
    SignedOut,
    /// The IdP renewed the session without a new ID token.
    IdTokenNotRenewed,
    /// The ID token failed verification (OIDC Core §3.1.3.7).
    IdTokenInvalid,
    /// EMA held back a request to the IdP (its own budget, not the IdP's limit).
    IdpRequestBudget,
    /// The system browser could not be opened.
    Browser,
    /// The loopback redirect (RFC 8252 §7.3) could not listen.
    LoopbackBind,
    SignInTimeout,
    /// The callback's `state` was not ours (RFC 6749 §10.12).
    StateMismatch,
    /// The callback's `iss` was not the IdP's (RFC 9207).
    IssuerMismatch,
    /// The IdP answered the authorization request with an error (RFC 6749 §4.1.2.1).
    SignInRefused,
    MissingCode,
    /// The JWT-bearer grant issued a token type other than Bearer (RFC 6750).
    GrantTokenType,
    /// The connector's token lives too short to be kept fresh.
    GrantLifetimeTooShort,
    /// The policy's client key (private_key_jwt, RFC 7523 §2.2) cannot be used.
    ClientAuthKey,
    McpUnauthorized,
    McpTimeout,
    McpFailed,
    Keyring(KeyringCode),
    /// A server judged something by time and this computer's clock is far off its own.
    ClockSkew,
    /// A stored connector never connected (no token yet).
    NotConnected,
    /// `ema headers`: no token to hand out.
    ConnectorNoToken,
    /// A bug in EMA while connecting one connector.
    InternalError,
    /// A code this version does not know, read from a record another version of EMA wrote. Kept
    /// as written so the record is not lost; never produced.
    Unknown(String),
}

/// `idp-unreachable`: the IdP did not answer (network, DNS, TLS, HTTP 5xx).
pub const IDP_UNREACHABLE: ErrorCode =
    ErrorCode::Response(Leg::Idp, ResponseKind::Transport(TransportCode::Unreachable));

impl ErrorCode {
    /// The documented string. `oauth_error` is the server's `error`, for the OAuth kind (which
    /// always has one: `OAuthErrorResponse` requires it).
    pub fn wire(&self, oauth_error: Option<&str>) -> String {
        debug_assert!(
            oauth_error.is_some() || !matches!(self, ErrorCode::Response(_, ResponseKind::OAuth)),
            "an OAuth code printed without the server's error"
        );
        match self {
            ErrorCode::Response(leg, kind) => {
                let what = match kind {
                    ResponseKind::OAuth => format!("oauth-{}", oauth_error.unwrap_or("error").replace('_', "-")),
                    ResponseKind::Http(status) => format!("http-{status}"),
                    ResponseKind::InvalidResponse => "invalid-response".into(),
                    ResponseKind::Transport(t) => t.as_str().into(),
                };
                format!("{}-{what}", leg.prefix())
            }
            ErrorCode::Discovery(d) => match d {
                DiscoveryCode::HttpError => "discovery-http-error".into(),
                DiscoveryCode::InvalidMetadata => "discovery-invalid-metadata".into(),
                DiscoveryCode::ResourceMismatch => "discovery-resource-mismatch".into(),
                DiscoveryCode::IssuerMismatch => "discovery-issuer-mismatch".into(),
                DiscoveryCode::NoAsMetadata => "discovery-no-as-metadata".into(),
                DiscoveryCode::Transport(t) => format!("discovery-{t}"),
            },
            ErrorCode::Keyring(k) => match k {
                KeyringCode::Unavailable => "keyring-unavailable".into(),
                KeyringCode::Denied => "keyring-denied".into(),
                KeyringCode::EntryDamaged => "keyring-entry-damaged".into(),
            },
            ErrorCode::Unknown(s) => s.clone(),
            simple => simple.simple_str().unwrap_or_default().into(),
        }
    }

    /// The string of a code without parts; `None` for the others.
    fn simple_str(&self) -> Option<&'static str> {
        Some(match self {
            ErrorCode::AsPinMismatch => "as-pin-mismatch",
            ErrorCode::AuthorizationServerChanged => "authorization-server-changed",
            ErrorCode::IdpChanged => "idp-changed",
            ErrorCode::NotEntitled => "not-entitled",
            ErrorCode::StepUpRequired => "step-up-required",
            ErrorCode::IdpSessionInvalid => "idp-session-invalid",
            ErrorCode::IdpSessionExpired => "idp-session-expired",
            ErrorCode::SignedOut => "signed-out",
            ErrorCode::IdTokenNotRenewed => "id-token-not-renewed",
            ErrorCode::IdTokenInvalid => "id-token-invalid",
            ErrorCode::IdpRequestBudget => "idp-request-budget",
            ErrorCode::Browser => "browser",
            ErrorCode::LoopbackBind => "loopback-bind",
            ErrorCode::SignInTimeout => "sign-in-timeout",
            ErrorCode::StateMismatch => "state-mismatch",
            ErrorCode::IssuerMismatch => "issuer-mismatch",
            ErrorCode::SignInRefused => "sign-in-refused",
            ErrorCode::MissingCode => "missing-code",
            ErrorCode::GrantTokenType => "connector-grant-token-type",
            ErrorCode::GrantLifetimeTooShort => "connector-grant-lifetime-too-short",
            ErrorCode::ClientAuthKey => "client-auth-key",
            ErrorCode::McpUnauthorized => "mcp-unauthorized",
            ErrorCode::McpTimeout => "mcp-timeout",
            ErrorCode::McpFailed => "mcp-failed",
            ErrorCode::ClockSkew => "clock-skew",
            ErrorCode::NotConnected => "not-connected",
            ErrorCode::ConnectorNoToken => "connector-no-token",
            ErrorCode::InternalError => "internal-error",
            ErrorCode::Response(..) | ErrorCode::Discovery(_) | ErrorCode::Keyring(_) | ErrorCode::Unknown(_) => {
                return None;
            }
        })
    }

    /// Reads a documented string back (records stored by this or an earlier version), with the
    /// server's OAuth `error` when the code carries one. The inverse of [`ErrorCode::wire`]; a
    /// string it does not know becomes [`ErrorCode::Unknown`].
    pub fn parse(s: &str) -> (ErrorCode, Option<String>) {
        if let Some(code) = Self::every_simple().into_iter().find(|c| c.wire(None) == s) {
            return (code, None);
        }
        for t in TransportCode::ALL {
            // Earlier versions wrote discovery's transport failures without a prefix; discovery
            // was the only leg that did.
            if s.strip_prefix("discovery-").unwrap_or(s) == t.as_str() {
                return (ErrorCode::Discovery(DiscoveryCode::Transport(t)), None);
            }
        }
        // Longest prefix first: `idp-discovery-` before `idp-`.
        let mut legs = Leg::ALL;
        legs.sort_by_key(|l| std::cmp::Reverse(l.prefix().len()));
        for leg in legs {
            let Some(rest) = s.strip_prefix(leg.prefix()).and_then(|r| r.strip_prefix('-')) else { continue };
            let kind = if let Some(error) = rest.strip_prefix("oauth-").filter(|e| !e.is_empty()) {
                return (ErrorCode::Response(leg, ResponseKind::OAuth), Some(error.replace('-', "_")));
            } else if let Some(status) = rest.strip_prefix("http-").and_then(|n| n.parse::<u16>().ok()) {
                ResponseKind::Http(status)
            } else if rest == "invalid-response" {
                ResponseKind::InvalidResponse
            } else if let Some(t) = TransportCode::ALL.into_iter().find(|t| t.as_str() == rest) {
                ResponseKind::Transport(t)
            } else {
                continue;
            };
            return (ErrorCode::Response(leg, kind), None);
        }
        (ErrorCode::Unknown(s.to_string()), None)
    }

    /// The request that failed, for the codes that say (`ema doctor`'s "failed leg").
    pub fn leg(&self) -> Option<FailedLeg> {
        Some(match self {
            ErrorCode::McpUnauthorized | ErrorCode::McpTimeout | ErrorCode::McpFailed => FailedLeg::McpServer,
            ErrorCode::Response(Leg::ConnectorGrant, _)
            | ErrorCode::GrantTokenType
            | ErrorCode::GrantLifetimeTooShort
            | ErrorCode::ClientAuthKey => FailedLeg::Grant,
            ErrorCode::Response(Leg::TokenExchange, _) | ErrorCode::NotEntitled | ErrorCode::StepUpRequired => {
                FailedLeg::TokenExchange
            }
            ErrorCode::Discovery(_) | ErrorCode::AsPinMismatch | ErrorCode::AuthorizationServerChanged => {
                FailedLeg::Discovery
            }
            ErrorCode::Response(Leg::Idp | Leg::IdpDiscovery, _)
            | ErrorCode::IdpSessionInvalid
            | ErrorCode::IdpSessionExpired
            | ErrorCode::IdTokenNotRenewed
            | ErrorCode::IdTokenInvalid => FailedLeg::SignIn,
            _ => return None,
        })
    }

    /// A refusal a server may have judged by time (an OAuth error, a 401, an ID token): a wrong
    /// clock on this computer can explain it.
    pub fn may_be_judged_by_time(&self) -> bool {
        matches!(
            self,
            ErrorCode::Response(_, ResponseKind::OAuth | ResponseKind::Http(401))
                | ErrorCode::IdTokenInvalid
                | ErrorCode::IdTokenNotRenewed
        )
    }

    /// The network (or the server being down) is the likely cause.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ErrorCode::Response(_, ResponseKind::Transport(t)) | ErrorCode::Discovery(DiscoveryCode::Transport(t))
                if t.is_unreachable()
        )
    }

    fn every_simple() -> Vec<ErrorCode> {
        use ErrorCode::*;
        vec![
            AsPinMismatch,
            AuthorizationServerChanged,
            IdpChanged,
            NotEntitled,
            StepUpRequired,
            IdpSessionInvalid,
            IdpSessionExpired,
            SignedOut,
            IdTokenNotRenewed,
            IdTokenInvalid,
            IdpRequestBudget,
            Browser,
            LoopbackBind,
            SignInTimeout,
            StateMismatch,
            IssuerMismatch,
            SignInRefused,
            MissingCode,
            GrantTokenType,
            GrantLifetimeTooShort,
            ClientAuthKey,
            McpUnauthorized,
            McpTimeout,
            McpFailed,
            Keyring(KeyringCode::Unavailable),
            Keyring(KeyringCode::Denied),
            Keyring(KeyringCode::EntryDamaged),
            Discovery(DiscoveryCode::HttpError),
            Discovery(DiscoveryCode::InvalidMetadata),
            Discovery(DiscoveryCode::ResourceMismatch),
            Discovery(DiscoveryCode::IssuerMismatch),
            Discovery(DiscoveryCode::NoAsMetadata),
            ClockSkew,
            NotConnected,
            ConnectorNoToken,
            InternalError,
        ]
    }

    /// One of every code EMA can produce (each leg with each kind; one HTTP status stands for
    /// all). The docs test and the round-trip test walk it; [`exhaustive`] keeps it complete.
    pub fn every() -> Vec<ErrorCode> {
        let mut all = Self::every_simple();
        all.extend(TransportCode::ALL.map(|t| ErrorCode::Discovery(DiscoveryCode::Transport(t))));
        for leg in Leg::ALL {
            all.extend(
                [ResponseKind::OAuth, ResponseKind::Http(400), ResponseKind::InvalidResponse]
                    .map(|k| ErrorCode::Response(leg, k)),
            );
            all.extend(TransportCode::ALL.map(|t| ErrorCode::Response(leg, ResponseKind::Transport(t))));
        }
        all
    }
}

/// Fails to compile when a variant is added without a thought for [`ErrorCode::every`] (and so
/// for the documentation of its string).
#[allow(dead_code)]
fn exhaustive(c: &ErrorCode) {
    use ErrorCode::*;
    match c {
        Response(_, ResponseKind::OAuth | ResponseKind::Http(_) | ResponseKind::InvalidResponse)
        | Response(_, ResponseKind::Transport(_))
        | Unknown(_) => {}
        Discovery(
            DiscoveryCode::HttpError
            | DiscoveryCode::InvalidMetadata
            | DiscoveryCode::ResourceMismatch
            | DiscoveryCode::IssuerMismatch
            | DiscoveryCode::NoAsMetadata
            | DiscoveryCode::Transport(_),
        )
        | Keyring(KeyringCode::Unavailable | KeyringCode::Denied | KeyringCode::EntryDamaged) => {}
        AsPinMismatch
        | AuthorizationServerChanged
        | IdpChanged
        | NotEntitled
        | StepUpRequired
        | IdpSessionInvalid
        | IdpSessionExpired
        | SignedOut
        | IdTokenNotRenewed
        | IdTokenInvalid
        | IdpRequestBudget
        | Browser
        | LoopbackBind
        | SignInTimeout
        | StateMismatch
        | IssuerMismatch
        | SignInRefused
        | MissingCode
        | GrantTokenType
        | GrantLifetimeTooShort
        | ClientAuthKey
        | McpUnauthorized
        | McpTimeout
        | McpFailed
        | ClockSkew
        | NotConnected
        | ConnectorNoToken
        | InternalError => {}
    }
}

/// Which leg of a connector failed (`ema doctor`'s `failed_leg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailedLeg {
    /// Signing in at the IdP, or the IdP session (refresh) itself.
    SignIn,
    /// Finding the connector's authorization server (RFC 9728 / RFC 8414 metadata).
    Discovery,
    /// The RFC 8693 token exchange at the IdP (ID token for an ID-JAG).
    TokenExchange,
    /// The RFC 7523 grant at the connector's authorization server (ID-JAG for an access token).
    Grant,
    /// The MCP server refused or failed `initialize` with the token.
    McpServer,
}

impl FailedLeg {
    /// Plain words for the summary.
    pub fn words(self) -> &'static str {
        match self {
            FailedLeg::SignIn => "sign-in at the IdP",
            FailedLeg::Discovery => "finding the connector's authorization server",
            FailedLeg::TokenExchange => "the token exchange at the IdP",
            FailedLeg::Grant => "the grant at the connector's authorization server",
            FailedLeg::McpServer => "the MCP server",
        }
    }
}

// No `Display`: printing a code without the server's OAuth error beside it would lose it
// (`connector-grant-oauth-error`); `StatusError::code_str` and `ErrorCode::wire` print it whole.

/// Tests compare a code with its documented string; an OAuth code never equals one, since the
/// server's `error` is not part of the code (compare `wire(oauth_error)` instead).
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        !matches!(self, ErrorCode::Response(_, ResponseKind::OAuth)) && self.wire(None) == *other
    }
}

#[cfg(test)]
#[path = "code_tests.rs"]
mod tests;
