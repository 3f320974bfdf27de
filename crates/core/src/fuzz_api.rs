//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), compiled only with the
//! `fuzzing` feature, which no product crate enables.
//!
//! Why a separate module: most parsers are already public and the targets call them directly;
//! the few checks that are private stay private in the product, and this file holds the thin
//! wrappers that reach them, so the product modules change by a visibility word at most.
//! Nothing here adds behaviour.

use std::path::Path;

use crate::personal::remedy::{Edit, RemedyError};

/// The remedy's checked edit (`remedy::edited`): [`crate::personal::remedy::jsonedit::apply`] followed by
/// the check that the new text means the old one with only the entry at `pointer` changed.
/// `path` only names the file in errors; nothing is read or written.
pub fn remedy_edit(path: &Path, before: &[u8], pointer: &str, edit: &Edit) -> Result<Vec<u8>, RemedyError> {
    crate::personal::remedy::edited(path, before, pointer, edit)
}
