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
