//! Checkpoint storage: the directory layout, atomic manifests, verification, retention and
//! savepoints.

mod manifest;
mod store;

use std::sync::OnceLock;

pub use manifest::{
    DatabaseEntry, FileEntry, MANIFEST_FORMAT_VERSION, Manifest, ManifestOperator, WorkerEntry,
};
pub use store::{CheckpointInfo, CheckpointStore, RestorePoint};

/// Environment variable naming a fail point at which the process aborts, for crash tests.
pub const FAIL_POINT_ENV: &str = "SLUICE_FAIL_POINT";

/// Aborts the process (as a crash would) when `SLUICE_FAIL_POINT` names `point`.
///
/// The points are `after-snapshot`, `after-manifest-write`, `before-manifest-rename` and
/// `after-manifest-rename`, one per step of completing a checkpoint.
pub fn fail_point(point: &str) {
    static CONFIGURED: OnceLock<Option<String>> = OnceLock::new();
    let configured = CONFIGURED.get_or_init(|| std::env::var(FAIL_POINT_ENV).ok());
    if configured.as_deref() == Some(point) {
        eprintln!("sluice: fail point '{point}' reached, aborting");
        std::process::abort();
    }
}
