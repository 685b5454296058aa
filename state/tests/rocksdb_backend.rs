//! The RocksDB backend against real RocksDB: reads and writes through the write-back cache,
//! checkpoints, restores into the same and into other key-group ranges, type and format checks.

use sluice_state::{KeyGroup, KeyGroupRange, KeyedTable, RocksDbConfig, StateBackend, StateError, WorkerDb};

const GROUPS: u16 = 128;

fn kg(k: &u32) -> KeyGroup {
    KeyGroup::of(k, GROUPS)
}

fn fill(table: &mut dyn KeyedTable<u32, u64, u64>, keys: std::ops::Range<u32>) {
    for k in keys {
        table
            .upsert(kg(&k), &k, &7, &mut || 0, &mut |v| *v += u64::from(k))
            .expect("upsert");
    }
}

#[test]
fn reads_writes_and_counts_through_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RocksDbConfig::new(dir.path());
    let db = WorkerDb::create_empty(&config, &dir.path().join("w0"), KeyGroupRange::all(GROUPS)).expect("db");
    let backend = StateBackend::rocksdb(db);
    assert_eq!(backend.kind_name(), "rocksdb");
    let mut t = backend.open_table::<u32, u64, u64>("sums").expect("table");
    fill(t.as_mut(), 0..1000);
    fill(t.as_mut(), 0..1000);
    assert_eq!(t.len(), 1000);
    assert_eq!(t.get(kg(&10), &10, &7).expect("get"), Some(20));
    assert_eq!(t.get(kg(&10), &10, &8).expect("get"), None);
    assert_eq!(t.remove(kg(&10), &10, &7).expect("remove"), Some(20));
    assert_eq!(t.remove(kg(&10), &10, &7).expect("remove"), None);
    t.put(kg(&5000), 5000, 1, 1).expect("put");
    assert_eq!(t.len(), 1000);
    let err = KeyedTable::put(t.as_mut(), KeyGroup(GROUPS + 1), 1, 1, 1).expect_err("out of range");
    assert!(matches!(err, StateError::KeyGroupOutOfRange { .. }), "{err}");
}

#[test]
fn a_small_budget_writes_hot_entries_back_and_reads_them_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 16 MiB budget: 4 MiB of hot entries, far less than 200,000 entries need.
    let config = RocksDbConfig::new(dir.path()).memory_budget(16 << 20);
    let db = WorkerDb::create_empty(&config, &dir.path().join("w0"), KeyGroupRange::all(GROUPS)).expect("db");
    let backend = StateBackend::rocksdb(db);
    let mut t = backend.open_table::<u32, u64, u64>("sums").expect("table");
    fill(t.as_mut(), 0..200_000);
    assert!(
        config.hot_entry_usage() <= 4 << 20,
        "hot entries hold {} bytes",
        config.hot_entry_usage()
    );
    fill(t.as_mut(), 0..200_000);
    assert_eq!(t.len(), 200_000);
    for k in (0..200_000).step_by(997) {
        assert_eq!(t.get(kg(&k), &k, &7).expect("get"), Some(2 * u64::from(k)));
    }
}

/// Writes 1000 keys into a database owning all key groups and checkpoints it.
fn checkpointed(root: &std::path::Path, config: &RocksDbConfig) -> std::path::PathBuf {
    let db = WorkerDb::create_empty(config, &root.join("w0"), KeyGroupRange::all(GROUPS)).expect("db");
    let backend = StateBackend::rocksdb(db);
    let mut t = backend.open_table::<u32, u64, u64>("sums").expect("table");
    fill(t.as_mut(), 0..1000);
    t.snapshot(KeyGroupRange::all(GROUPS)).expect("flush");
    let chk = root.join("chk");
    let written = backend
        .rocksdb_database()
        .expect("db")
        .checkpoint(&chk)
        .expect("checkpoint");
    assert!(
        written.files.iter().any(|(name, _)| name.ends_with(".sst")),
        "{written:?}"
    );
    // Later writes do not reach the checkpoint.
    fill(t.as_mut(), 1000..2000);
    chk
}

#[test]
fn restores_a_checkpoint_into_the_same_and_into_split_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RocksDbConfig::new(dir.path());
    let chk = checkpointed(dir.path(), &config);
    let all = KeyGroupRange::all(GROUPS);

    let same =
        WorkerDb::restore(&config, &dir.path().join("same"), all, &[(all, chk.clone())]).expect("restore");
    let t = StateBackend::rocksdb(same)
        .open_table::<u32, u64, u64>("sums")
        .expect("table");
    assert_eq!(t.len(), 1000);

    let mut total = 0;
    for w in 0..3 {
        let range = KeyGroupRange::for_worker(w, 3, GROUPS);
        let db = WorkerDb::restore(
            &config,
            &dir.path().join(format!("part{w}")),
            range,
            &[(all, chk.clone())],
        )
        .expect("restore part");
        let backend = StateBackend::rocksdb(db);
        let mut t = backend.open_table::<u32, u64, u64>("sums").expect("table");
        total += t.len();
        for k in 0..1000u32 {
            let expected = range.contains(kg(&k)).then_some(u64::from(k));
            if expected.is_some() {
                assert_eq!(t.get(kg(&k), &k, &7).expect("get"), expected);
            }
        }
        backend.check_all_tables_claimed().expect("all claimed");
    }
    assert_eq!(total, 1000);
}

#[test]
fn other_types_and_forgotten_tables_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RocksDbConfig::new(dir.path());
    let chk = checkpointed(dir.path(), &config);
    let all = KeyGroupRange::all(GROUPS);

    let db =
        WorkerDb::restore(&config, &dir.path().join("typed"), all, &[(all, chk.clone())]).expect("restore");
    let err = StateBackend::rocksdb(db)
        .open_table::<String, u64, u64>("sums")
        .err()
        .expect("key type changed");
    assert!(
        matches!(&err, StateError::IncompatibleFormat { operator, .. } if operator == "sums"),
        "{err}"
    );

    let db = WorkerDb::restore(&config, &dir.path().join("renamed"), all, &[(all, chk)]).expect("restore");
    let backend = StateBackend::rocksdb(db);
    backend.open_table::<u32, u64, u64>("totals").expect("new table");
    let err = backend
        .check_all_tables_claimed()
        .expect_err("sums is not claimed");
    assert!(err.to_string().contains("operator 'sums'"), "{err}");
}
