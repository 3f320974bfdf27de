//! The managed policy document pointing at a running sandbox.
//!
//! It has exactly the shape of `examples/policy.example.json` (what an MDM would
//! deliver), so the app can be pointed at the sandbox with no other configuration.
//! It necessarily contains the per-start client secrets: the sandbox is a demo. A client
//! registered for `private_key_jwt` gets the path of its per-start private key instead.

use serde_json::{Value, json};

use crate::oauth::RegisteredClient;
use crate::state::SandboxState;

/// Policy `schema_version` this document follows.
pub const SCHEMA_VERSION: u32 = 1;

fn client_auth(client: &RegisteredClient) -> Value {
    if let (Some(key_file), Some(key)) = (&client.key_file, &client.key) {
        // The key file is this start's own (an absolute path the sandbox wrote, 0600).
        return json!({
            "method": client.method.as_str(),
            "key_file": key_file.to_string_lossy(),
            "key_id": key.kid(),
            "alg": "ES256",
        });
    }
    match &client.secret {
        Some(secret) => json!({ "method": client.method.as_str(), "client_secret": secret }),
        None => json!({ "method": client.method.as_str() }),
    }
}

/// The complete policy document for `state`.
pub(crate) fn document(state: &SandboxState) -> Value {
    let connectors: Vec<Value> = state
        .connector_order
        .iter()
        .filter_map(|id| state.connectors.get(id))
        .map(|c| {
            let id = c.def.id.as_str();
            json!({
                "id": id,
                "display_name": c.def.display_name,
                "mcp_url": state.mcp_url(id),
                "authorization_server": state.as_issuer(id),
                "scopes": c.def.scopes,
                "client_id": c.client.client_id,
                "client_auth": client_auth(&c.client),
                "idp_only": true,
            })
        })
        .chain(state.external.iter().map(|e| {
            json!({
                "id": e.id,
                "display_name": e.display_name,
                "mcp_url": e.mcp_url,
                "authorization_server": e.as_issuer,
                "scopes": e.scopes,
                "client_id": e.client_id,
                "client_auth": e.client_auth,
                "idp_only": true,
            })
        }))
        .collect();
    json!({
        "schema_version": SCHEMA_VERSION,
        "organization": {
            "name": "Sandbox Org",
            "email_domains": [crate::users::EMAIL_DOMAIN],
            "help_desk": { "name": "Sandbox Help Desk", "url": format!("{}/help", state.origin) },
        },
        "idp": {
            "issuer": state.idp_issuer(),
            "display_name": "Sandbox IdP",
            "client_id": state.idp_client.client_id,
            "client_auth": client_auth(&state.idp_client),
            "scopes": ["openid", "email", "profile", "offline_access"],
        },
        "connectors": connectors,
        "settings": {},
    })
}
