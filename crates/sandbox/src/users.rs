//! Demo users, their groups, and which connectors each group is entitled to.
//!
//! The sandbox stands in for an enterprise directory: entitlement is decided by
//! group membership at the IdP (the place an admin assigns apps), which is what
//! makes a token exchange answer `access_denied` for a user who is "not assigned".
//! Everything here is static demo data; the password of every user is [`DEMO_PASSWORD`].

use serde::Serialize;

/// The password of every demo user (the sandbox is a demo, not a secret store).
pub const DEMO_PASSWORD: &str = "demo";

/// The email domain of every demo user.
pub const EMAIL_DOMAIN: &str = "example.com";

/// One demo user of the sandbox organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DemoUser {
    /// Login name (`alice`); `alice@example.com` is accepted too.
    pub username: &'static str,
    /// Display name, the OIDC `name` claim.
    pub name: &'static str,
    /// Email address, the OIDC `email` claim.
    pub email: &'static str,
    /// Directory groups, the `groups` claim; they decide entitlements.
    pub groups: &'static [&'static str],
}

impl DemoUser {
    /// The OIDC `sub` of this user: stable, opaque-looking, not the email.
    pub fn subject(&self) -> String {
        format!("sandbox-user-{}", self.username)
    }
}

/// All demo users.
pub static USERS: &[DemoUser] = &[
    DemoUser { username: "alice", name: "Alice Engineer", email: "alice@example.com", groups: &["Engineering"] },
    DemoUser { username: "bob", name: "Bob Designer", email: "bob@example.com", groups: &["Design"] },
    DemoUser { username: "carol", name: "Carol Seller", email: "carol@example.com", groups: &["Sales"] },
    DemoUser { username: "dave", name: "Dave Lead", email: "dave@example.com", groups: &["Engineering", "Design"] },
];

/// Group → built-in connector ids the group is assigned to.
/// Synthetic benchmark connectors are assigned to everybody and are not listed here.
pub static GROUP_ENTITLEMENTS: &[(&str, &[&str])] = &[
    ("Engineering", &["linear", "supabase", "atlassian"]),
    ("Design", &["figma", "canva"]),
    ("Sales", &["asana", "granola"]),
];

/// Finds a user by login (`alice` or `alice@example.com`, case-insensitive).
pub fn find_user(login: &str) -> Option<&'static DemoUser> {
    let login = login.trim().to_ascii_lowercase();
    let local = login.strip_suffix(&format!("@{EMAIL_DOMAIN}")).unwrap_or(&login);
    USERS.iter().find(|u| u.username == local)
}

/// Finds a user by OIDC subject.
pub(crate) fn find_by_subject(sub: &str) -> Option<&'static DemoUser> {
    USERS.iter().find(|u| u.subject() == sub)
}

/// The built-in connector ids `username` is entitled to, sorted.
///
/// Synthetic connectors (`synthetic-NN`) are entitled to every user on top of these;
/// [`crate::Sandbox::entitled_connectors`] includes them for a running sandbox.
/// An unknown user gets an empty list.
pub fn entitled_connectors(username: &str) -> Vec<String> {
    let Some(user) = find_user(username) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = GROUP_ENTITLEMENTS
        .iter()
        .filter(|(group, _)| user.groups.contains(group))
        .flat_map(|(_, connectors)| connectors.iter().map(|c| (*c).to_owned()))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Whether `user` may get an ID-JAG for `connector_id`.
pub(crate) fn is_entitled(user: &DemoUser, connector_id: &str, synthetic: bool) -> bool {
    synthetic || entitled_connectors(user.username).iter().any(|c| c == connector_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitlements_follow_groups() {
        assert_eq!(entitled_connectors("alice"), ["atlassian", "linear", "supabase"]);
        assert_eq!(entitled_connectors("bob@example.com"), ["canva", "figma"]);
        assert_eq!(entitled_connectors("carol"), ["asana", "granola"]);
        assert_eq!(entitled_connectors("dave"), ["atlassian", "canva", "figma", "linear", "supabase"]);
        assert!(entitled_connectors("mallory").is_empty());
    }

    #[test]
    fn login_accepts_email_form() {
        assert_eq!(find_user("Alice@Example.com").map(|u| u.username), Some("alice"));
        assert!(find_user("alice@other.com").is_none());
    }
}
