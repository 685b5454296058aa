use std::path::Path;

use sluice_state::checkpoint::{CheckpointStore, Manifest};

use crate::error::Result;

/// A checkpoint found in a checkpoint directory.
#[derive(Debug)]
pub struct CheckpointSummary {
    /// Checkpoint id.
    pub id: u64,
    /// Its directory.
    pub dir: std::path::PathBuf,
    /// The verified manifest, or why the checkpoint cannot be used.
    pub manifest: std::result::Result<Manifest, String>,
}

/// The checkpoints under the checkpoint directory `dir`, oldest first, each verified.
///
/// # Errors
/// When the directory cannot be read.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<CheckpointSummary>> {
    let store = CheckpointStore::open(dir)?;
    Ok(store
        .list()?
        .into_iter()
        .map(|info| CheckpointSummary {
            id: info.id,
            manifest: CheckpointStore::load(&info.dir).map_err(|e| e.to_string()),
            dir: info.dir,
        })
        .collect())
}

/// The manifest of the checkpoint (or savepoint) in `checkpoint_dir`, verified, as
/// pretty-printed JSON.
///
/// # Errors
/// When the manifest is missing, damaged, or names missing files.
pub fn show_manifest(checkpoint_dir: &Path) -> Result<String> {
    let manifest = CheckpointStore::load(checkpoint_dir)?;
    Ok(serde_json::to_string_pretty(&manifest).unwrap_or_default())
}

/// Copies complete checkpoint `id` under `dir` to the savepoint `name`, which retention never
/// deletes; restore it with [`crate::RestoreFrom::Savepoint`].
///
/// # Errors
/// When the checkpoint does not verify or the savepoint name is taken.
pub fn create_savepoint(dir: &Path, id: u64, name: &str) -> Result<std::path::PathBuf> {
    Ok(CheckpointStore::open(dir)?.create_savepoint(id, name)?)
}
