//! Files on disk that others may have touched: the user's MCP client configs EMA edits, the
//! policy files IT or the user hand it, and the private files holding secrets. Every write is
//! atomic (a temporary file and a rename, with a backup where a person's file is changed), and
//! every read is bounded, so a hostile or broken file costs an error, never a hang or a loss.

pub mod atomic_file;
pub mod bounded_read;
pub mod private_file;
