//! Checkpoint storage: the directory layout, atomic manifests, verification, retention and
//! savepoints.

mod manifest;
mod store;

pub use manifest::{
    DatabaseEntry, FileEntry, MANIFEST_FORMAT_VERSION, Manifest, ManifestOperator, WorkerEntry,
};
pub use store::{CheckpointInfo, CheckpointStore, RestorePoint};

/// Environment variable naming a fail point at which the process aborts, for crash tests.
pub const FAIL_POINT_ENV: &str = "SLUICE_FAIL_POINT";

/// Aborts the process (as a crash would) when `SLUICE_FAIL_POINT` names `point`: `NAME`
/// aborts the first time the point is reached, `NAME:N` the N-th time.
///
/// The points are `after-first-ack`, `after-snapshot`, `after-manifest-write`,
/// `before-manifest-rename` and `after-manifest-rename`, one per step of completing a checkpoint.
///
/// Only with the feature `fail-points` (the crash tests turn it on); without it this does
/// nothing and costs nothing.
#[cfg(feature = "fail-points")]
pub fn fail_point(point: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static CONFIGURED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let configured = CONFIGURED.get_or_init(|| {
        let value = std::env::var(FAIL_POINT_ENV).ok()?;
        match value.split_once(':') {
            Some((name, n)) => Some((name.to_string(), n.parse().unwrap_or(1))),
            None => Some((value, 1)),
        }
    });
    if let Some((name, nth)) = configured {
        if name == point && HITS.fetch_add(1, Ordering::SeqCst) + 1 >= *nth {
            eprintln!("sluice: fail point '{point}' reached, aborting");
            std::process::abort();
        }
    }
}

/// Does nothing: this build has no fail points (see the feature `fail-points`).
#[cfg(not(feature = "fail-points"))]
#[inline(always)]
pub fn fail_point(_point: &str) {}
