// Written by src-tauri/src/window_protocol.rs (protocol_types_for_the_ui_are_current); do not edit.

type Command = { "command": "sign-in" } | { "command": "refresh" } | { "command": "sign-out" } | { "command": "set-autostart", enabled: boolean, } | { "command": "fix-personal", id: string, action: "remove" | "replace", } | { "command": "undo-personal" } | { "command": "scan-personal" } | { "command": "prepare-export" } | { "command": "save-export" } | { "command": "load-policy", source: string, } | { "command": "set-notifications", enabled: boolean, } | { "command": "finish-onboarding" } | { "command": "open-help-desk" };

type CommandError = { code: string, message: string, };

type AppSettings = { 
/**
 * The app starts at login (tauri-plugin-autostart).
 */
autostart: boolean, 
/**
 * The organisation's policy sets `start_at_login`: the user cannot change it.
 */
autostart_locked: boolean, 
/**
 * Desktop notifications are on.
 */
notifications: boolean, 
/**
 * The organisation's policy sets `notifications`.
 */
notifications_locked: boolean, };

type OnboardingView = { configured: boolean, places: PolicyPlaces, organization: string | null, 
/**
 * "Okta": for "Sign in with Okta".
 */
idp_name: string | null, issuer: string | null, policy_source: string | null, signed_in: boolean, 
/**
 * The signed-in person's e-mail (else their `sub`).
 */
identity: string | null, progress: ProgressView | null, 
/**
 * Whether the personal-connection scan has run (offers are meaningful).
 */
scanned: boolean, offers: Array<OfferView>, help_desk: HelpDeskView | null, };

type PolicyPlaces = { 
/**
 * The managed policy IT deploys (`/etc/ema/policy.json` and its kin).
 */
managed_path: string, 
/**
 * Where a policy the user loads is kept.
 */
user_path: string | null, };

type ProgressView = { rows: Array<ProgressRowView>, 
/**
 * No connector is still connecting.
 */
settled: boolean, 
/**
 * "6 connectors ready", "5 connectors ready, 1 needs help".
 */
summary: string, };

type ProgressRowView = { id: string, display_name: string, 
/**
 * `ema_core::onboarding::Phase` as serde writes it (checked by a test below).
 */
phase: "connecting" | "ready" | "not-entitled" | "failed", 
/**
 * Why it failed, in plain words.
 */
reason: string | null, 
/**
 * The engine's own message, for whoever helps.
 */
detail: string | null, };

type OfferView = { 
/**
 * The finding's id, for `fix-personal`.
 */
id: string, action: "remove" | "replace", 
/**
 * "Replace your personal Linear token in Claude Code by the company connection".
 */
description: string, connector_name: string, client_name: string, path: string, key_path: string, };

type HelpDeskView = { name: string, url: string, };

type Extras = { help_desk: HelpDeskView | null, start_export: boolean, };

type PersonalView = { 
/**
 * Whether a scan has finished.
 */
scanned: boolean, 
/**
 * The findings that need the user (flagged or to review).
 */
findings: Array<PersonalFindingView>, 
/**
 * The last change that can be undone, in words ("Removed linear in ~/.claude.json").
 */
undo: string | null, };

type PersonalFindingView = { id: string, 
/**
 * `ema_core::personal::scan::Verdict` as serde writes it (checked by a test below).
 */
verdict: "flagged" | "review" | "ok", 
/**
 * The catalog connector it is for, if matched.
 */
connector: string | null, 
/**
 * The entry's name in the client's configuration.
 */
server_name: string | null, 
/**
 * "Claude Code".
 */
client_name: string, path: string, 
/**
 * RFC 6901 pointer of the entry in the file; empty for a whole file.
 */
key_path: string, why: string, what_to_do: string, can_remove: boolean, can_replace: boolean, };
