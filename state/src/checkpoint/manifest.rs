use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::key_group::KeyGroupRange;

/// Version of the manifest layout (and of the worker snapshot files it names). A manifest
/// with another version is not used.
pub const MANIFEST_FORMAT_VERSION: u32 = 2;

/// The record that makes a checkpoint complete: written last, atomically, with a checksum.
///
/// It is JSON so that people can read it (`sluice checkpoints show`); everything it refers to
/// lives in the same directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`MANIFEST_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Sequence number of the checkpoint within its job.
    pub checkpoint_id: u64,
    /// The job's name.
    pub job: String,
    /// Wall-clock time the checkpoint completed, epoch milliseconds (informational only).
    pub completed_at_ms: u64,
    /// Fingerprint of the job graph that wrote it.
    pub fingerprint: u64,
    /// The operators of that graph, to name what changed when a graph no longer matches.
    pub operators: Vec<ManifestOperator>,
    /// The job's maximum number of key groups (fixed for the life of its state).
    pub max_key_groups: u16,
    /// State backend kind: `memory` or `rocksdb`.
    pub backend: String,
    /// Lowest watermark of the job's sources when the checkpoint was taken (epoch ms).
    pub watermark: i64,
    /// Per source, per partition: the next offset to read after restoring.
    pub offsets: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Per source, per partition: the largest event timestamp read before the checkpoint, so a
    /// restored partition's watermark continues where it was.
    #[serde(default)]
    pub event_time: BTreeMap<String, BTreeMap<u32, i64>>,
    /// Per source, per partition: the reader's own state at that partition's offset (for
    /// example the deduplication marks of a repartition topic's reader), opaque bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reader_state: BTreeMap<String, BTreeMap<u32, Vec<u8>>>,
    /// One entry per worker of the run that wrote the checkpoint.
    pub workers: Vec<WorkerEntry>,
    /// Checksum (xxh3) of the manifest with this field set to 0.
    pub checksum: u64,
}

/// An operator as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestOperator {
    /// Stable name.
    pub name: String,
    /// Kind (`source`, `window`, ...).
    pub kind: String,
    /// Output (or key and value) type.
    pub output_type: String,
    /// Whether the checkpoint holds state of this operator.
    pub stateful: bool,
}

/// What one worker contributed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEntry {
    /// Worker index.
    pub worker: usize,
    /// Key groups its state covers.
    pub key_groups: KeyGroupRange,
    /// Operator snapshots (timers, buffers, in-memory tables): file name, size, xxh3.
    pub snapshot: FileEntry,
    /// RocksDB checkpoint directory (relative to the checkpoint) and its files.
    pub database: Option<DatabaseEntry>,
}

/// A file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Name relative to the checkpoint directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// xxh3 of the contents.
    pub xxh3: u64,
}

/// A worker's RocksDB checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseEntry {
    /// Directory name relative to the checkpoint directory.
    pub dir: String,
    /// Name and size of each file (RocksDB checks the contents of its table files itself).
    pub files: Vec<(String, u64)>,
}

impl Manifest {
    /// The checksum of this manifest's contents (with `checksum` taken as 0).
    pub fn compute_checksum(&self) -> u64 {
        let mut copy = self.clone();
        copy.checksum = 0;
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }

    /// Total bytes of the checkpoint's files.
    pub fn total_bytes(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| {
                w.snapshot.bytes
                    + w.database
                        .as_ref()
                        .map_or(0, |d| d.files.iter().map(|f| f.1).sum())
            })
            .sum()
    }
}
