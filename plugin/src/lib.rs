//! `kubectl gateway`: why Gateway API traffic goes where it goes.
//!
//! The crate is a pure view layer over a snapshot of objects ([`model`]):
//! [`status`] rows, [`describe`] descriptions, [`tree`] forests and
//! [`check`] issues are computed from an [`model::Inventory`] and a clock,
//! without I/O, and tested with golden files. The thin [`fetch`] layer fills
//! the snapshot from a cluster (API discovery, concurrent list calls);
//! [`files`] fills it from YAML. The binary wires the two.
//!
//! Attachment follows the Gateway API rules in [`analysis`]; see the
//! README for the JSON schema of `-o json` and the issue codes of `check`.

pub mod analysis;
pub mod check;
pub mod cli;
pub mod describe;
pub mod fetch;
pub mod files;
pub mod model;
pub mod output;
pub mod rules;
pub mod status;
pub mod table;
pub mod time;
pub mod tree;

/// A mistake in the command line found after parsing (exit code 64).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Exit code when `check` finds issues.
pub const EXIT_ISSUES: u8 = 79;
/// Exit code of usage errors (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
