// Written by crates/core/src/status/mod.rs (status_types_for_the_ui_are_current); do not edit.

type StatusSnapshot = { schema_version: number, generated_at: string, organization: string, 
/**
 * Where the policy came from.
 */
policy_source: string, idp: IdpStatus, connectors: Array<ConnectorStatus>, };

type IdpStatus = { issuer: string, state: IdpSessionState, identity: Identity | null, id_token_expires_at: string | null, signed_in_at: string | null, 
/**
 * Why the last renewal at the IdP failed, if it did.
 */
last_error: StatusError | null, 
/**
 * Whether the IdP gave a refresh token: without one, the session cannot be renewed
 * silently and ends when the ID token expires.
 */
renewable: boolean, };

type Identity = { 
/**
 * OIDC `sub` (OIDC Core §2).
 */
sub: string, email: string | null, name: string | null, };

type IdpSessionState = "signed_out" | "active" | "expired" | "unreachable" | "step_up_required";

type ConnectorStatus = { id: string, display_name: string, mcp_url: string, state: ConnectorState, 
/**
 * Whose account the token is for.
 */
identity: Identity | null, 
/**
 * The authorization server issuer that issued the token.
 */
authorization_server: string | null, expires_at: string | null, scopes: Array<string>, last_renewal: string | null, 
/**
 * SHA-256 fingerprint of the access token, never the token.
 */
token_fingerprint: string | null, 
/**
 * Why the connector is in `error`, `not_entitled` or `expired`.
 */
error: StatusError | null, 
/**
 * Why the last renewal failed while the current token is still valid.
 */
renewal_error: StatusError | null, };

type ConnectorState = "needs_sign_in" | "connecting" | "active" | "expiring_soon" | "expired" | "not_entitled" | "step_up_required" | "error";

type StatusError = { code: string, 
/**
 * Absent from records written before it existed: read from `code` then.
 */
oauth_error: string | null, message: string, fix: string, 
/**
 * Absent from records written before it existed.
 */
fix_action: FixAction | null, at: string, };

type FixAction = "sign_in" | "refresh";
