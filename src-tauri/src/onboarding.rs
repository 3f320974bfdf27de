//! First-run onboarding in the tray: whether it is on, and what the welcome screens show.
//!
//! The decisions are the core's ([`ema_core::onboarding`]: the first-run marker, the live list
//! and its summary, the migration offers), shared with `ema login`; this module keeps the
//! tray's flag and builds the view the window renders. While onboarding lasts, the tray sends
//! the view on every change (`ToWindow::Onboarding`), so the window's connector list fills in
//! live as the engine connects them.

use std::path::PathBuf;
use std::sync::Mutex;

use ema_core::config::{Policy, managed_policy_path, user_policy_path};
use ema_core::onboarding::{is_first_run, mark_done, marker_path, migration_offers, progress};
use ema_core::status::{IdpSessionState, StatusSnapshot};

use crate::personal::{Personal, remedies};
use crate::views::{HelpDeskView, OfferView, OnboardingView, PolicyPlaces, ProgressView};

/// Whether onboarding is showing; managed as Tauri state.
pub struct Onboarding {
    marker: Option<PathBuf>,
    active: Mutex<bool>,
}

impl Onboarding {
    /// On when this user has no onboarding marker yet.
    pub fn at_start() -> Self {
        let marker = marker_path();
        let active = marker.as_deref().is_some_and(is_first_run);
        Onboarding { marker, active: Mutex::new(active) }
    }

    pub fn active(&self) -> bool {
        *self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends onboarding and records it; returns whether it was on.
    pub fn finish(&self, organization: &str) -> bool {
        let mut active = self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*active {
            return false;
        }
        *active = false;
        if let Some(path) = &self.marker
            && let Err(e) = mark_done(path, organization, "window")
        {
            tracing::warn!("cannot record that onboarding is done ({}): {e}", path.display());
        }
        true
    }
}

/// What the welcome screens show. Without a policy: where it was looked for and where a loaded
/// one goes. With one: the organisation and IdP, the sign-in, the live connector list with its
/// summary, and the old connections to migrate.
pub fn view(policy: Option<&Policy>, snapshot: Option<&StatusSnapshot>, personal: Option<&Personal>) -> OnboardingView {
    let places = PolicyPlaces {
        managed_path: managed_policy_path().display().to_string(),
        user_path: user_policy_path().map(|p| p.display().to_string()),
    };
    let (Some(policy), Some(snapshot)) = (policy, snapshot) else {
        return OnboardingView {
            configured: false,
            places,
            organization: None,
            idp_name: None,
            issuer: None,
            policy_source: None,
            signed_in: false,
            identity: None,
            progress: None,
            scanned: false,
            offers: Vec::new(),
            help_desk: None,
        };
    };
    let signed_in = snapshot.idp.state != IdpSessionState::SignedOut;
    let scanned = personal.and_then(Personal::report);
    let offers = match (personal, &scanned) {
        (Some(p), Some(report)) if signed_in => {
            migration_offers(&report.findings, snapshot, &remedies(), p.catalog()).iter().map(OfferView::from).collect()
        }
        _ => Vec::new(),
    };
    OnboardingView {
        configured: true,
        places,
        organization: Some(policy.organization.name.clone()),
        idp_name: Some(policy.idp.name()),
        issuer: Some(policy.idp.issuer.to_string()),
        policy_source: Some(policy.source.path().display().to_string()),
        signed_in,
        identity: snapshot.idp.identity.as_ref().map(|i| i.email.clone().unwrap_or_else(|| i.sub.clone())),
        progress: Some(ProgressView::from(&progress(snapshot))),
        scanned: scanned.is_some(),
        offers,
        help_desk: policy
            .organization
            .help_desk
            .as_ref()
            .map(|h| HelpDeskView { name: h.name.clone(), url: h.url.to_string() }),
    }
}
