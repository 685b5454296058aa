//! Checkpoint directories: atomic manifests, verification, fallback past damaged checkpoints,
//! refusal when none is usable, retention and savepoints.

use std::collections::BTreeMap;
use std::path::Path;

use sluice_state::KeyGroupRange;
use sluice_state::checkpoint::{CheckpointStore, DatabaseEntry, Manifest, WorkerEntry};

fn write_checkpoint(store: &CheckpointStore, id: u64) -> std::path::PathBuf {
    let dir = store.prepare(id).expect("prepare");
    let snapshot =
        CheckpointStore::write_file(&dir, "worker-0.snap", format!("state {id}").as_bytes()).expect("snap");
    let db = dir.join("worker-0.db");
    std::fs::create_dir_all(&db).expect("db dir");
    std::fs::write(db.join("000007.sst"), vec![7u8; 100]).expect("sst");
    let mut manifest = Manifest {
        format_version: 0,
        checkpoint_id: id,
        job: "test".into(),
        completed_at_ms: 0,
        fingerprint: 42,
        operators: Vec::new(),
        max_key_groups: 128,
        backend: "rocksdb".into(),
        watermark: 0,
        offsets: BTreeMap::from([("orders".to_string(), BTreeMap::from([(0, id * 10)]))]),
        event_time: BTreeMap::new(),
        reader_state: BTreeMap::new(),
        workers: vec![WorkerEntry {
            worker: 0,
            key_groups: KeyGroupRange::all(128),
            snapshot,
            database: Some(DatabaseEntry {
                dir: "worker-0.db".into(),
                files: vec![("000007.sst".into(), 100)],
            }),
        }],
        checksum: 0,
    };
    CheckpointStore::commit(&dir, &mut manifest).expect("commit");
    dir
}

fn latest_id(store: &CheckpointStore) -> u64 {
    store
        .latest()
        .expect("latest")
        .expect("some")
        .manifest
        .checkpoint_id
}

#[test]
fn a_committed_checkpoint_verifies_and_reads_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(root.path()).expect("store");
    assert!(store.latest().expect("empty store").is_none());
    let dir = write_checkpoint(&store, 1);
    let manifest = CheckpointStore::load(&dir).expect("load");
    assert_eq!(manifest.offsets["orders"][&0], 10);
    let bytes = CheckpointStore::read_file(&dir, &manifest.workers[0].snapshot).expect("snapshot");
    assert_eq!(bytes, b"state 1");
    assert!(!dir.join("MANIFEST.json.tmp").exists());
}

#[test]
fn damaged_or_partial_newest_checkpoints_fall_back_to_older_ones() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(root.path()).expect("store");
    for id in 1..=4 {
        write_checkpoint(&store, id);
    }
    // 4: manifest edited (checksum no longer matches).
    let manifest = store.checkpoint_dir(4).join("MANIFEST.json");
    let text = std::fs::read_to_string(&manifest).expect("read");
    std::fs::write(&manifest, text.replace("\"watermark\": 0", "\"watermark\": 1")).expect("edit");
    // 3: a table file is missing.
    std::fs::remove_file(store.checkpoint_dir(3).join("worker-0.db/000007.sst")).expect("rm");
    // 5: never completed (no manifest).
    store.prepare(5).expect("partial");
    let point = store.latest().expect("fallback").expect("some");
    assert_eq!(point.manifest.checkpoint_id, 2);
    let reasons: Vec<String> = point.skipped.iter().map(|(id, r)| format!("{id}: {r}")).collect();
    assert_eq!(point.skipped.len(), 3, "{reasons:?}");
    assert!(reasons[1].contains("checksum"), "{reasons:?}");
    assert!(reasons[2].contains("000007.sst"), "{reasons:?}");
}

#[test]
fn no_usable_checkpoint_is_a_clear_refusal() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(root.path()).expect("store");
    let dir = write_checkpoint(&store, 1);
    std::fs::write(dir.join("worker-0.snap"), b"x").expect("truncate");
    let err = store.latest().expect_err("nothing usable");
    let text = err.to_string();
    assert!(
        text.contains("no usable checkpoint") && text.contains("worker-0.snap"),
        "{text}"
    );
}

#[test]
fn retention_keeps_the_newest_and_savepoints_survive() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(root.path()).expect("store");
    for id in 1..=5 {
        write_checkpoint(&store, id);
    }
    store.create_savepoint(2, "before-upgrade").expect("savepoint");
    assert!(
        store.create_savepoint(3, "before-upgrade").is_err(),
        "names are unique"
    );
    store.retain(2).expect("retain");
    let ids: Vec<u64> = store.list().expect("list").iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![4, 5]);
    assert_eq!(latest_id(&store), 5);
    let saved = store.savepoint("before-upgrade").expect("savepoint still there");
    assert_eq!(saved.manifest.checkpoint_id, 2);
    assert!(Path::new(&saved.dir).join("worker-0.db/000007.sst").exists());
}
