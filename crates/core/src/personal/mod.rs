//! Personal connections: credentials for company connectors that bypass the IdP (a static token
//! in an MCP client's config, a personal OAuth grant cached by a client), which the admins want
//! to go through EMA instead (docs/personal-connections.md).
//!
//! One name for the concept in both faces (`personal` in the CLI and the tray): [`scan`] finds
//! them without changing anything, [`remedy`] removes or replaces one on the user's request, with
//! a backup and undo. `remedy` depends on `scan` (it acts on a fresh finding), never the reverse.

pub mod remedy;
pub mod scan;
