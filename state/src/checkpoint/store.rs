use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::checkpoint::fail_point;
use crate::checkpoint::manifest::{FileEntry, MANIFEST_FORMAT_VERSION, Manifest};
use crate::error::{Result, StateError};
use crate::rocks::list_files;

const MANIFEST: &str = "MANIFEST.json";
const MANIFEST_TEMP: &str = "MANIFEST.json.tmp";

/// The directory of a job's checkpoints and savepoints.
///
/// ```text
/// ROOT/checkpoints/chk-00000000000000000007/MANIFEST.json    written last, atomically
///                                          /worker-0.snap    operator snapshots of worker 0
///                                          /worker-0.db/     RocksDB checkpoint of worker 0
/// ROOT/savepoints/NAME/...                                    same layout, never deleted
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    root: PathBuf,
}

/// A checkpoint directory as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Checkpoint id.
    pub id: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// Whether it has a manifest (it may still fail verification).
    pub complete: bool,
}

/// Where a restore comes from.
#[derive(Debug, Clone)]
pub struct RestorePoint {
    /// The verified manifest.
    pub manifest: Manifest,
    /// The directory it lives in.
    pub dir: PathBuf,
    /// Newer checkpoints that were skipped, with the reason.
    pub skipped: Vec<(u64, String)>,
}

fn storage(path: &Path, what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Storage {
        path: path.display().to_string(),
        reason: format!("{what}: {e}"),
    }
}

fn unusable(dir: &Path, reason: impl Into<String>) -> StateError {
    StateError::Checkpoint {
        checkpoint: dir.display().to_string(),
        reason: reason.into(),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| storage(dir, "cannot sync directory", e))
}

impl CheckpointStore {
    /// The store under `root`, creating its directories.
    ///
    /// # Errors
    /// When the directories cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["checkpoints", "savepoints"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| storage(&dir, "cannot create directory", e))?;
        }
        Ok(CheckpointStore { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of checkpoint `id`.
    pub fn checkpoint_dir(&self, id: u64) -> PathBuf {
        self.root.join("checkpoints").join(format!("chk-{id:020}"))
    }

    /// The directory of savepoint `name`.
    pub fn savepoint_dir(&self, name: &str) -> PathBuf {
        self.root.join("savepoints").join(name)
    }

    /// Creates the (empty) directory for checkpoint `id`, removing a leftover of a failed one.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn prepare(&self, id: u64) -> Result<PathBuf> {
        let dir = self.checkpoint_dir(id);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| storage(&dir, "cannot remove leftover", e))?;
        }
        fs::create_dir_all(&dir).map_err(|e| storage(&dir, "cannot create directory", e))?;
        Ok(dir)
    }

    /// Writes `bytes` as file `name` of the checkpoint in `dir`, synced to disk.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<FileEntry> {
        let path = dir.join(name);
        let mut file = File::create(&path).map_err(|e| storage(&path, "cannot create", e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| storage(&path, "cannot write", e))?;
        Ok(FileEntry {
            name: name.to_string(),
            bytes: bytes.len() as u64,
            xxh3: xxhash_rust::xxh3::xxh3_64(bytes),
        })
    }

    /// Reads file `entry` of the checkpoint in `dir`, checking its size and checksum.
    ///
    /// # Errors
    /// When the file is missing or does not match the manifest.
    pub fn read_file(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>> {
        let path = dir.join(&entry.name);
        let bytes = fs::read(&path).map_err(|e| unusable(dir, format!("cannot read {}: {e}", entry.name)))?;
        if bytes.len() as u64 != entry.bytes || xxhash_rust::xxh3::xxh3_64(&bytes) != entry.xxh3 {
            return Err(unusable(
                dir,
                format!("{} does not match its checksum", entry.name),
            ));
        }
        Ok(bytes)
    }

    /// Completes the checkpoint in `dir` by writing its manifest atomically: the manifest is
    /// written to a temporary file and synced, then renamed into place and the directory synced.
    ///
    /// # Errors
    /// When a step fails; the checkpoint then stays incomplete.
    pub fn commit(dir: &Path, manifest: &mut Manifest) -> Result<()> {
        Self::commit_with_steps(dir, manifest, &mut |step| {
            fail_point(step);
            Ok(())
        })
    }

    /// [`CheckpointStore::commit`], calling `at_step` at the named steps of the commit
    /// (`after-manifest-write`, `before-manifest-rename`) instead of [`fail_point`]: an error
    /// it returns stops the commit there, as a crash would (crash tests).
    ///
    /// # Errors
    /// When a step fails or `at_step` refuses; the checkpoint then stays incomplete.
    pub fn commit_with_steps(
        dir: &Path,
        manifest: &mut Manifest,
        at_step: &mut dyn FnMut(&'static str) -> Result<()>,
    ) -> Result<()> {
        manifest.format_version = MANIFEST_FORMAT_VERSION;
        manifest.checksum = manifest.compute_checksum();
        let json =
            serde_json::to_vec_pretty(manifest).map_err(|e| storage(dir, "cannot encode manifest", e))?;
        let temp = dir.join(MANIFEST_TEMP);
        let mut file = File::create(&temp).map_err(|e| storage(&temp, "cannot create", e))?;
        file.write_all(&json)
            .map_err(|e| storage(&temp, "cannot write", e))?;
        at_step("after-manifest-write")?;
        file.sync_all().map_err(|e| storage(&temp, "cannot sync", e))?;
        at_step("before-manifest-rename")?;
        fs::rename(&temp, dir.join(MANIFEST)).map_err(|e| storage(&temp, "cannot rename", e))?;
        sync_dir(dir)
    }

    /// The checkpoints on disk, oldest first.
    ///
    /// # Errors
    /// When the directory cannot be listed.
    pub fn list(&self) -> Result<Vec<CheckpointInfo>> {
        let dir = self.root.join("checkpoints");
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| storage(&dir, "cannot list", e))? {
            let entry = entry.map_err(|e| storage(&dir, "cannot list", e))?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let path = entry.path();
            found.push(CheckpointInfo {
                id,
                complete: path.join(MANIFEST).is_file(),
                dir: path,
            });
        }
        found.sort_by_key(|c| c.id);
        Ok(found)
    }

    /// Reads and verifies the manifest in `dir`: its checksum and format, and that every file
    /// it names is present with its recorded size.
    ///
    /// # Errors
    /// [`StateError::Checkpoint`] saying what is wrong.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let bytes = fs::read(&path).map_err(|e| unusable(dir, format!("cannot read manifest: {e}")))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| unusable(dir, format!("manifest is damaged: {e}")))?;
        if manifest.format_version != MANIFEST_FORMAT_VERSION {
            return Err(unusable(
                dir,
                format!(
                    "manifest format {} is not {MANIFEST_FORMAT_VERSION}",
                    manifest.format_version
                ),
            ));
        }
        if manifest.compute_checksum() != manifest.checksum {
            return Err(unusable(dir, "manifest does not match its checksum"));
        }
        for worker in &manifest.workers {
            check_size(dir, &worker.snapshot.name, worker.snapshot.bytes)?;
            if let Some(db) = &worker.database {
                let db_dir = dir.join(&db.dir);
                let present = list_files(&db_dir).map_err(|e| unusable(dir, e.to_string()))?;
                for (name, size) in &db.files {
                    if !present.iter().any(|(n, s)| n == name && s == size) {
                        return Err(unusable(
                            dir,
                            format!("file {}/{name} is missing or truncated", db.dir),
                        ));
                    }
                }
            }
        }
        Ok(manifest)
    }

    /// The newest checkpoint that verifies, skipping (and reporting) newer damaged or partial
    /// ones.
    ///
    /// Returns `Ok(None)` when no checkpoint was ever completed.
    ///
    /// # Errors
    /// When complete checkpoints exist but none verifies: the job must not silently start over.
    pub fn latest(&self) -> Result<Option<RestorePoint>> {
        let mut skipped = Vec::new();
        let mut any_complete = false;
        for info in self.list()?.into_iter().rev() {
            if !info.complete {
                skipped.push((info.id, "incomplete (no manifest)".to_string()));
                continue;
            }
            any_complete = true;
            match Self::load(&info.dir) {
                Ok(manifest) => {
                    return Ok(Some(RestorePoint {
                        manifest,
                        dir: info.dir,
                        skipped,
                    }));
                }
                Err(e) => skipped.push((info.id, e.to_string())),
            }
        }
        if !any_complete {
            return Ok(None);
        }
        let reasons: Vec<String> = skipped
            .iter()
            .map(|(id, r)| format!("checkpoint {id}: {r}"))
            .collect();
        Err(unusable(
            &self.root,
            format!(
                "no usable checkpoint ({}); refusing to start without state (start fresh explicitly to discard it)",
                reasons.join("; ")
            ),
        ))
    }

    /// The savepoint `name`, verified.
    ///
    /// # Errors
    /// When it does not exist or does not verify.
    pub fn savepoint(&self, name: &str) -> Result<RestorePoint> {
        let dir = self.savepoint_dir(name);
        let manifest = Self::load(&dir)?;
        Ok(RestorePoint {
            manifest,
            dir,
            skipped: Vec::new(),
        })
    }

    /// Copies checkpoint `id` to the savepoint `name` (files are hard-linked where possible),
    /// which retention never deletes.
    ///
    /// # Errors
    /// When the checkpoint does not verify or the savepoint exists.
    pub fn create_savepoint(&self, id: u64, name: &str) -> Result<PathBuf> {
        let from = self.checkpoint_dir(id);
        Self::load(&from)?;
        let to = self.savepoint_dir(name);
        if to.exists() {
            return Err(unusable(&to, "a savepoint with this name exists"));
        }
        copy_tree(&from, &to)?;
        sync_dir(&to)?;
        Ok(to)
    }

    /// Deletes all but the newest `keep` complete checkpoints, and incomplete ones older than
    /// the newest complete one.
    ///
    /// # Errors
    /// When a directory cannot be removed.
    pub fn retain(&self, keep: usize) -> Result<()> {
        let all = self.list()?;
        let complete: Vec<u64> = all.iter().filter(|c| c.complete).map(|c| c.id).collect();
        let newest = complete.last().copied().unwrap_or(0);
        let cutoff = complete.len().saturating_sub(keep.max(1));
        let old: Vec<u64> = complete[..cutoff].to_vec();
        for info in all {
            if old.contains(&info.id) || (!info.complete && info.id < newest) {
                fs::remove_dir_all(&info.dir).map_err(|e| storage(&info.dir, "cannot remove", e))?;
            }
        }
        Ok(())
    }

    /// Removes every incomplete checkpoint (left by a crash).
    ///
    /// # Errors
    /// When a directory cannot be removed.
    pub fn remove_incomplete(&self) -> Result<()> {
        for info in self.list()?.into_iter().filter(|c| !c.complete) {
            fs::remove_dir_all(&info.dir).map_err(|e| storage(&info.dir, "cannot remove", e))?;
        }
        Ok(())
    }
}

fn check_size(dir: &Path, name: &str, bytes: u64) -> Result<()> {
    match fs::metadata(dir.join(name)) {
        Ok(m) if m.len() == bytes => Ok(()),
        Ok(_) => Err(unusable(dir, format!("{name} is truncated"))),
        Err(e) => Err(unusable(dir, format!("{name} is missing: {e}"))),
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| storage(to, "cannot create directory", e))?;
    for entry in fs::read_dir(from).map_err(|e| storage(from, "cannot list", e))? {
        let entry = entry.map_err(|e| storage(from, "cannot list", e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).map_err(|e| storage(&src, "cannot copy", e))?;
        }
    }
    Ok(())
}
