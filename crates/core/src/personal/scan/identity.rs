//! Whose account a cached OAuth token belongs to, as far as the token itself says.
//!
//! Why: a cached grant for an IdP-only connector is fine when it is the company account and a
//! problem otherwise. Many access tokens are opaque; when one is a JWT (or an ID token sits
//! next to it) its unverified `email` and `iss` claims tell. Nothing here is verified, so it
//! only ever decides what to *report*, never what to trust.

use serde::Serialize;
use serde_json::Value;

use super::CompanyIdentity;
use crate::jwt::decode_claims_unverified;

/// Whose account a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum IdentityKind {
    /// The e-mail domain is a company domain, or the issuer is the company IdP.
    #[serde(rename = "company")]
    Company,
    /// A readable e-mail address outside the company's domains.
    #[serde(rename = "personal")]
    Personal,
    /// Nothing readable tells (an opaque token, or a JWT without e-mail from another issuer).
    #[serde(rename = "unknown")]
    Unknown,
}

/// The identity read from a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub kind: IdentityKind,
    pub email: Option<String>,
    pub issuer: Option<String>,
}

/// Reads the identity from the first of `tokens` that is a decodable JWT.
pub(super) fn identify<'t>(tokens: impl IntoIterator<Item = &'t str>, company: &CompanyIdentity) -> Identity {
    for token in tokens {
        let Ok(claims) = decode_claims_unverified(token) else {
            continue;
        };
        let email = ["email", "preferred_username", "upn"]
            .iter()
            .filter_map(|k| claims.get(*k).and_then(Value::as_str))
            .find(|v| looks_like_email(v))
            .map(str::to_ascii_lowercase);
        let issuer = claims.get("iss").and_then(Value::as_str).map(str::to_string);
        let company_email = email.as_deref().map(|e| is_company_email(e, company));
        let company_issuer = issuer.as_deref().is_some_and(|i| is_company_issuer(i, company));
        let kind = match company_email {
            Some(true) => IdentityKind::Company,
            Some(false) => IdentityKind::Personal,
            None if company_issuer => IdentityKind::Company,
            None => IdentityKind::Unknown,
        };
        return Identity { kind, email, issuer };
    }
    Identity { kind: IdentityKind::Unknown, email: None, issuer: None }
}

fn looks_like_email(v: &str) -> bool {
    let mut parts = v.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None) if !l.is_empty() && d.contains('.'))
        && v.len() <= 254
        && !v.contains(char::is_whitespace)
}

fn is_company_email(email: &str, company: &CompanyIdentity) -> bool {
    let Some((_, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    company.email_domains.iter().any(|d| d.eq_ignore_ascii_case(&domain))
}

/// Issuers compare as identical strings (RFC 8414 §3.3), forgiving only a trailing slash,
/// which `url::Url` adds to a bare origin.
fn is_company_issuer(issuer: &str, company: &CompanyIdentity) -> bool {
    company.issuers.iter().any(|i| i.trim_end_matches('/') == issuer.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(claims: &str) -> String {
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims))
    }

    fn company() -> CompanyIdentity {
        CompanyIdentity { email_domains: vec!["example.com".into()], issuers: vec!["https://idp.example.com/".into()] }
    }

    #[test]
    fn email_decides_then_issuer() {
        let t = jwt(r#"{"email":"Alice@Example.com","iss":"https://auth.vendor.example"}"#);
        assert_eq!(identify([t.as_str()], &company()).kind, IdentityKind::Company);
        let t = jwt(r#"{"email":"someone@gmail.com","iss":"https://idp.example.com"}"#);
        assert_eq!(identify([t.as_str()], &company()).kind, IdentityKind::Personal);
        let t = jwt(r#"{"sub":"123","iss":"https://idp.example.com"}"#);
        assert_eq!(identify([t.as_str()], &company()).kind, IdentityKind::Company);
        let t = jwt(r#"{"sub":"123","iss":"https://auth.vendor.example"}"#);
        assert_eq!(identify([t.as_str()], &company()).kind, IdentityKind::Unknown);
    }

    #[test]
    fn opaque_tokens_are_unknown_and_later_tokens_are_tried() {
        assert_eq!(identify(["opaque-token"], &company()).kind, IdentityKind::Unknown);
        let t = jwt(r#"{"preferred_username":"bob@gmail.com"}"#);
        let id = identify(["opaque", t.as_str()], &company());
        assert_eq!((id.kind, id.email.as_deref()), (IdentityKind::Personal, Some("bob@gmail.com")));
    }
}
