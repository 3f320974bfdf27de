//! The connector's access token for a client that sends it now (`ema headers`, Claude Code's
//! `headersHelper`), renewed first when it would expire too soon.

use std::time::Duration;

use crate::secret::AccessToken;
use crate::status::{ConnectorState, ErrorCode};

use super::{Engine, from_unix};

impl Engine {
    /// The connector's access token for a client that sends it now (Claude Code's
    /// `headersHelper` through `ema headers`). A token that expires within `min_validity` is
    /// renewed first (one connect, single flight with the background renewal).
    pub async fn fresh_access_token(&self, id: &str, min_validity: Duration) -> Result<AccessToken, TokenUnavailable> {
        let cfg = self.policy.connector(id).ok_or_else(|| TokenUnavailable::UnknownConnector(id.to_string()))?;
        if !self.is_signed_in().await {
            return Err(TokenUnavailable::SignedOut);
        }
        let wanted = time::Duration::try_from(min_validity).unwrap_or(time::Duration::MINUTE);
        let usable = |engine: &Self, margin: time::Duration| {
            let records = engine.records.lock().unwrap_or_else(|p| p.into_inner());
            let record = records.get(id)?;
            let expires = record.expires_at.and_then(from_unix)?;
            (expires - margin > self.now()).then(|| record.access_token.clone()).flatten()
        };
        if let Some(token) = usable(self, wanted) {
            return Ok(token);
        }
        self.start_round();
        self.connect(id, true).await;
        // When renewal failed, a token with a few seconds left still beats no token.
        if let Some(token) = usable(self, time::Duration::seconds(5)) {
            return Ok(token);
        }
        let status = self.snapshot().connectors.into_iter().find(|c| c.id == id);
        Err(match status.and_then(|c| c.error.map(|e| (c.state, e))) {
            Some((ConnectorState::NotEntitled, _)) => TokenUnavailable::NotEntitled(cfg.display_name.clone()),
            Some((_, e)) => {
                TokenUnavailable::Failed { connector: cfg.display_name.clone(), code: e.code_str(), message: e.message }
            }
            None => TokenUnavailable::Failed {
                connector: cfg.display_name.clone(),
                code: ErrorCode::ConnectorNoToken.wire(None),
                message: "no token could be obtained".into(),
            },
        })
    }
}

/// Why [`Engine::fresh_access_token`] has no token to give.
#[derive(Debug, thiserror::Error)]
pub enum TokenUnavailable {
    #[error("no connector {0:?} in the policy; `ema status` lists the connectors")]
    UnknownConnector(String),
    #[error("you are not signed in; run `ema login`")]
    SignedOut,
    #[error("your company has not given you access to {0}; ask your help desk")]
    NotEntitled(String),
    #[error("{connector} has no usable token [{code}]: {message}")]
    Failed { connector: String, code: String, message: String },
}
