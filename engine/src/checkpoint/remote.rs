//! Checkpoints copied to object storage (S3-compatible, or any `object_store` backend), so a
//! job can restore on another machine, and fenced so that an older instance of the job can
//! never publish a checkpoint over a newer one's.
//!
//! ```text
//! PREFIX/HEAD                                        {"epoch": 7, "checkpoint": 12, "name": "chk-…12-e…7"}
//! PREFIX/chk-00000000000000000012-e0000000007/MANIFEST.json   uploaded last
//! PREFIX/chk-00000000000000000012-e0000000007/worker-0.snap   ...
//! ```
//!
//! Each run of the job *claims* an epoch when it starts (the `HEAD` epoch plus one, written
//! with a compare-and-swap), uploads every completed checkpoint under a prefix of its own
//! (checkpoint id and epoch: two runs never write the same object), and
//! publishes it by moving `HEAD` with a compare-and-swap that also refuses to go back to a
//! lower epoch. A run that finds a higher epoch in `HEAD` has been superseded: it is fenced,
//! and fails instead of publishing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

/// What went wrong with the object store.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A newer run of the job has claimed the checkpoints.
    #[error(
        "checkpoints at {location}: fenced: a newer run of the job (epoch {newer}) took over from this one (epoch {mine})"
    )]
    Fenced {
        /// The store and prefix.
        location: String,
        /// This run's epoch.
        mine: u64,
        /// The epoch in `HEAD`.
        newer: u64,
    },
    /// The store could not be reached or refused a request.
    #[error("checkpoints at {location}: {reason}")]
    Store {
        /// The store and prefix.
        location: String,
        /// What failed.
        reason: String,
    },
}

/// `HEAD`: the pointer to the newest published checkpoint, and the newest epoch claimed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The epoch of the newest run that claimed the checkpoints.
    pub epoch: u64,
    /// The newest published checkpoint's id.
    pub checkpoint: Option<u64>,
    /// The published checkpoint's prefix (`chk-<id>-e<epoch of the run that wrote it>`).
    pub name: Option<String>,
}

/// A job's checkpoints in object storage. Cheap to clone.
#[derive(Clone)]
pub struct RemoteCheckpoints {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    location: String,
    runtime: tokio::runtime::Runtime,
    /// This run's epoch; 0 until claimed.
    epoch: AtomicU64,
}

impl std::fmt::Debug for RemoteCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCheckpoints")
            .field("location", &self.inner.location)
            .field("epoch", &self.inner.epoch.load(Ordering::Relaxed))
            .finish()
    }
}

impl RemoteCheckpoints {
    /// Checkpoints under `prefix` of `store`; `location` names them in errors and logs.
    ///
    /// # Errors
    /// When the runtime for the store's requests cannot be started.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        location: impl Into<String>,
    ) -> Result<Self, RemoteError> {
        let location = location.into();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Store {
                location: location.clone(),
                reason: format!("cannot start a runtime: {e}"),
            })?;
        Ok(RemoteCheckpoints {
            inner: Arc::new(Inner {
                store,
                prefix: ObjectPath::from(prefix),
                location,
                runtime,
                epoch: AtomicU64::new(0),
            }),
        })
    }

    /// Checkpoints at `url` (`s3://bucket/prefix`), with the options of `object_store`'s
    /// S3 builder (`aws_endpoint`, `aws_allow_http`, `aws_region`, ...). Credentials come from
    /// the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) unless given as options.
    ///
    /// # Errors
    /// A URL or an option the S3 builder does not take.
    #[cfg(feature = "s3")]
    pub fn s3(url: &str, options: &[(&str, &str)]) -> Result<Self, RemoteError> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
        let invalid = |reason: String| RemoteError::Store {
            location: url.to_string(),
            reason,
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_url(url)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key
                .parse()
                .map_err(|_| invalid(format!("unknown S3 option '{key}'")))?;
            builder = builder.with_config(key, *value);
        }
        let store = builder.build().map_err(|e| invalid(e.to_string()))?;
        let prefix = url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .map_or("", |(_, prefix)| prefix.trim_matches('/'));
        Self::new(Arc::new(store), prefix, url)
    }

    /// Where the checkpoints are, for messages.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// This run's epoch (0 before [`RemoteCheckpoints::claim`]).
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> RemoteError {
        RemoteError::Store {
            location: self.inner.location.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    fn path(&self, name: &str) -> ObjectPath {
        self.inner.prefix.child(name)
    }

    /// `HEAD` and its version, or none yet.
    async fn head(&self) -> Result<Option<(Head, UpdateVersion)>, RemoteError> {
        match self.inner.store.get(&self.path("HEAD")).await {
            Ok(found) => {
                let version = UpdateVersion {
                    e_tag: found.meta.e_tag.clone(),
                    version: found.meta.version.clone(),
                };
                let bytes = found
                    .bytes()
                    .await
                    .map_err(|e| self.error("cannot read HEAD", e))?;
                let head = serde_json::from_slice(&bytes).map_err(|e| self.error("HEAD is not valid", e))?;
                Ok(Some((head, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("cannot read HEAD", e)),
        }
    }

    /// Moves `HEAD` to what `next` makes of it, by compare-and-swap, retrying when another
    /// writer moved it in between. `next` refuses (fences) by returning an error.
    async fn update_head(
        &self,
        next: impl Fn(Head) -> Result<Head, RemoteError>,
    ) -> Result<Head, RemoteError> {
        loop {
            let current = self.head().await?;
            let (old, mode) = match current {
                Some((head, version)) => (head, PutMode::Update(version)),
                None => (Head::default(), PutMode::Create),
            };
            let new = next(old)?;
            let body = serde_json::to_vec(&new).map_err(|e| self.error("cannot encode HEAD", e))?;
            let options = PutOptions {
                mode,
                ..PutOptions::default()
            };
            match self
                .inner
                .store
                .put_opts(&self.path("HEAD"), PutPayload::from(body), options)
                .await
            {
                Ok(_) => return Ok(new),
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                    continue;
                }
                Err(e) => return Err(self.error("cannot write HEAD", e)),
            }
        }
    }

    /// Claims the next epoch for this run: from now on, runs with a lower epoch cannot
    /// publish. Returns the epoch.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub fn claim(&self) -> Result<u64, RemoteError> {
        let head = self.inner.runtime.block_on(self.update_head(|head| {
            Ok(Head {
                epoch: head.epoch + 1,
                ..head
            })
        }))?;
        self.inner.epoch.store(head.epoch, Ordering::Release);
        tracing::info!(location = %self.inner.location, epoch = head.epoch, "claimed the job's checkpoints");
        Ok(head.epoch)
    }

    /// The newest published checkpoint's id.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub fn published(&self) -> Result<Option<u64>, RemoteError> {
        Ok(self
            .inner
            .runtime
            .block_on(self.head())?
            .and_then(|(h, _)| h.checkpoint))
    }

    /// What `HEAD` says now, if there is one.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub fn head_now(&self) -> Result<Option<Head>, RemoteError> {
        Ok(self.inner.runtime.block_on(self.head())?.map(|(h, _)| h))
    }

    /// The published checkpoint's id and prefix.
    async fn published_name(&self) -> Result<Option<(u64, String)>, RemoteError> {
        Ok(self
            .head()
            .await?
            .and_then(|(h, _)| Some((h.checkpoint?, h.name?))))
    }

    /// Uploads the completed checkpoint `id` in `dir` (its manifest last) and publishes it.
    ///
    /// # Errors
    /// [`RemoteError::Fenced`] when a newer run has claimed the checkpoints; otherwise when
    /// a file cannot be read or the store refuses a request.
    pub fn upload(&self, dir: &Path, id: u64) -> Result<(), RemoteError> {
        let mine = self.epoch();
        let runtime = &self.inner.runtime;
        let newer = |head: &Head| (head.epoch > mine).then_some(head.epoch);
        // Nothing is uploaded by a run that is already superseded.
        if let Some(newer) = runtime.block_on(self.head())?.and_then(|(head, _)| newer(&head)) {
            return Err(self.fenced(mine, newer));
        }
        let mut files =
            files_under(dir).map_err(|e| self.error(&format!("cannot read {}", dir.display()), e))?;
        // The manifest last: a checkpoint prefix without one is incomplete.
        files.sort_by_key(|(name, _)| name.ends_with("MANIFEST.json"));
        let name = checkpoint_name(id, mine);
        let target = self.inner.prefix.child(name.as_str());
        runtime.block_on(async {
            for (name, path) in &files {
                let bytes = std::fs::read(path)
                    .map_err(|e| self.error(&format!("cannot read {}", path.display()), e))?;
                let location = name.split('/').fold(target.clone(), |p, part| p.child(part));
                self.inner
                    .store
                    .put(&location, PutPayload::from(bytes))
                    .await
                    .map_err(|e| self.error(&format!("cannot upload {name}"), e))?;
            }
            self.update_head(|head| match newer(&head) {
                Some(newer) => Err(self.fenced(mine, newer)),
                None => Ok(Head {
                    epoch: mine,
                    checkpoint: Some(id),
                    name: Some(name.clone()),
                }),
            })
            .await
        })?;
        tracing::debug!(location = %self.inner.location, checkpoint = id, files = files.len(), "checkpoint uploaded");
        Ok(())
    }

    fn fenced(&self, mine: u64, newer: u64) -> RemoteError {
        RemoteError::Fenced {
            location: self.inner.location.clone(),
            mine,
            newer,
        }
    }

    /// Downloads the newest published checkpoint into `dir` (created; the manifest written
    /// last, through a temporary name). Returns its id, or none when nothing is published.
    ///
    /// # Errors
    /// When the store cannot be reached or a file cannot be written.
    pub fn download_latest(&self, dir: impl Fn(u64) -> PathBuf) -> Result<Option<u64>, RemoteError> {
        let Some((id, name)) = self.inner.runtime.block_on(self.published_name())? else {
            return Ok(None);
        };
        let dir = dir(id);
        let source = self.inner.prefix.child(name.as_str());
        self.inner.runtime.block_on(async {
            let objects: Vec<_> = self
                .inner
                .store
                .list(Some(&source))
                .try_collect()
                .await
                .map_err(|e| self.error("cannot list the checkpoint", e))?;
            let mut manifest = None;
            for object in objects {
                let relative: Vec<String> = object
                    .location
                    .prefix_match(&source)
                    .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
                    .unwrap_or_default();
                if relative.is_empty() || relative.iter().any(|p| p == ".." || p == ".") {
                    continue;
                }
                let local = relative.iter().fold(dir.clone(), |d, part| d.join(part));
                let bytes = self
                    .inner
                    .store
                    .get(&object.location)
                    .await
                    .map_err(|e| self.error("cannot download", e))?
                    .bytes()
                    .await
                    .map_err(|e| self.error("cannot download", e))?;
                if relative.last().is_some_and(|n| n == "MANIFEST.json") && relative.len() == 1 {
                    manifest = Some(bytes);
                    continue;
                }
                write(&local, &bytes)
                    .map_err(|e| self.error(&format!("cannot write {}", local.display()), e))?;
            }
            let bytes = manifest.ok_or_else(|| self.error("the published checkpoint has no manifest", id))?;
            let temp = dir.join("MANIFEST.json.download");
            write(&temp, &bytes).map_err(|e| self.error(&format!("cannot write {}", temp.display()), e))?;
            std::fs::rename(&temp, dir.join("MANIFEST.json"))
                .map_err(|e| self.error(&format!("cannot write {}", dir.display()), e))
        })?;
        tracing::info!(location = %self.inner.location, checkpoint = id, "checkpoint downloaded");
        Ok(Some(id))
    }

    /// Deletes the uploaded checkpoints older than the `keep` newest published ones.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub fn retain(&self, keep: usize) -> Result<(), RemoteError> {
        self.inner.runtime.block_on(async {
            let listed: Vec<_> = self
                .inner
                .store
                .list(Some(&self.inner.prefix))
                .try_collect()
                .await
                .map_err(|e| self.error("cannot list the checkpoints", e))?;
            let id_of = |location: &ObjectPath| {
                location
                    .prefix_match(&self.inner.prefix)
                    .and_then(|mut parts| parts.next())
                    .and_then(|part| {
                        part.as_ref()
                            .strip_prefix("chk-")?
                            .split('-')
                            .next()?
                            .parse::<u64>()
                            .ok()
                    })
            };
            let mut ids: Vec<u64> = listed.iter().filter_map(|o| id_of(&o.location)).collect();
            ids.sort_unstable();
            ids.dedup();
            let published = self.head().await?.and_then(|(h, _)| h.checkpoint).unwrap_or(0);
            let kept: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| *id <= published)
                .rev()
                .take(keep.max(1))
                .collect();
            let oldest_kept = kept.last().copied().unwrap_or(0);
            for object in &listed {
                if id_of(&object.location).is_some_and(|id| id < oldest_kept) {
                    self.inner
                        .store
                        .delete(&object.location)
                        .await
                        .map_err(|e| self.error("cannot delete an old checkpoint", e))?;
                }
            }
            Ok(())
        })
    }
}

fn checkpoint_name(id: u64, epoch: u64) -> String {
    format!("chk-{id:020}-e{epoch:010}")
}

/// Every file under `dir`, as (path relative to `dir` with `/`, path).
fn files_under(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut pending = vec![(String::new(), dir.to_path_buf())];
    while let Some((prefix, d)) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if entry.file_type()?.is_dir() {
                pending.push((relative, entry.path()));
            } else {
                out.push((relative, entry.path()));
            }
        }
    }
    Ok(out)
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    /// The in-memory store stands in for S3 here (it implements the same conditional puts);
    /// tests/remote_checkpoints.rs runs against a real S3-compatible server.
    fn remote(store: &Arc<InMemory>) -> RemoteCheckpoints {
        RemoteCheckpoints::new(
            Arc::clone(store) as Arc<dyn ObjectStore>,
            "jobs/shop",
            "memory://jobs/shop",
        )
        .expect("runtime")
    }

    fn checkpoint(dir: &Path, id: u64, payload: &str) -> PathBuf {
        let chk = dir.join(format!("chk-{id}"));
        std::fs::create_dir_all(chk.join("worker-0.db")).expect("dir");
        std::fs::write(chk.join("worker-0.snap"), payload).expect("snap");
        std::fs::write(chk.join("worker-0.db").join("000012.sst"), payload).expect("sst");
        std::fs::write(chk.join("MANIFEST.json"), format!("{{\"id\":{id}}}")).expect("manifest");
        chk
    }

    #[test]
    fn a_published_checkpoint_comes_back_whole_and_a_superseded_run_is_fenced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(InMemory::new());
        let first = remote(&store);
        assert_eq!(first.claim().expect("claim"), 1);
        first
            .upload(&checkpoint(dir.path(), 3, "three"), 3)
            .expect("upload");
        assert_eq!(first.published().expect("head"), Some(3));

        let second = remote(&store);
        assert_eq!(second.claim().expect("claim"), 2);
        let restored = dir.path().join("restored");
        let id = second
            .download_latest(|id| restored.join(format!("chk-{id}")))
            .expect("download");
        assert_eq!(id, Some(3));
        let back = restored.join("chk-3");
        assert_eq!(
            std::fs::read_to_string(back.join("worker-0.snap")).expect("snap"),
            "three"
        );
        assert_eq!(
            std::fs::read_to_string(back.join("worker-0.db").join("000012.sst")).expect("sst"),
            "three"
        );
        assert!(back.join("MANIFEST.json").exists());

        // The first run, still alive, cannot publish over its successor.
        let err = first
            .upload(&checkpoint(dir.path(), 4, "four"), 4)
            .expect_err("fenced");
        assert!(
            matches!(
                err,
                RemoteError::Fenced {
                    mine: 1,
                    newer: 2,
                    ..
                }
            ),
            "{err}"
        );
        second
            .upload(&checkpoint(dir.path(), 5, "five"), 5)
            .expect("upload");
        assert_eq!(second.published().expect("head"), Some(5));
        second.retain(1).expect("retain");
        let left: Vec<String> = second.inner.runtime.block_on(async {
            store
                .list(None)
                .map_ok(|o| o.location.to_string())
                .try_collect()
                .await
                .expect("list")
        });
        assert!(
            left.iter().all(|l| !l.contains("chk-00000000000000000003")),
            "{left:?}"
        );
        assert!(
            left.iter().any(|l| l.contains("chk-00000000000000000005")),
            "{left:?}"
        );
    }
}
