use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DBWithThreadMode, IteratorMode, MultiThreaded, Options,
    WriteBatch,
};

use crate::error::{Result, StateError};
use crate::key_group::KeyGroupRange;
use crate::rocks::codec::{self, TableMeta};
use crate::rocks::config::RocksDbConfig;
use crate::snapshot::STATE_FORMAT_VERSION;

pub(crate) type Db = DBWithThreadMode<MultiThreaded>;

/// Column family holding the database's own records: the state format and each table's types.
const META_CF: &str = "sluice.meta";
const FORMAT_KEY: &[u8] = b"format";

/// One worker's RocksDB database: a column family per stateful operator, keys prefixed by key
/// group.
pub struct WorkerDb {
    pub(crate) db: Db,
    pub(crate) config: RocksDbConfig,
    path: PathBuf,
    range: KeyGroupRange,
}

impl std::fmt::Debug for WorkerDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerDb")
            .field("path", &self.path)
            .field("range", &self.range)
            .finish()
    }
}

/// A RocksDB checkpoint of one worker's database: a directory of hard-linked files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCheckpoint {
    /// The checkpoint's directory.
    pub dir: PathBuf,
    /// Name and size of every file in it.
    pub files: Vec<(String, u64)>,
}

fn io_error(path: &Path, what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Storage {
        path: path.display().to_string(),
        reason: format!("{what}: {e}"),
    }
}

impl WorkerDb {
    fn options(config: &RocksDbConfig) -> Options {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_write_buffer_manager(&config.memory.write_buffers);
        opts.set_max_background_jobs(2);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&config.memory.cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        opts.set_block_based_table_factory(&table);
        // Reads of keys that are not stored (most new window slices) check a bloom filter of
        // the memtable instead of searching it.
        opts.set_memtable_prefix_bloom_ratio(0.1);
        opts.set_memtable_whole_key_filtering(true);
        opts
    }

    /// Opens (creating if needed) the database in `path` for the key groups in `range`.
    ///
    /// # Errors
    /// When RocksDB cannot open the directory, or it holds state of another format.
    pub fn open(config: &RocksDbConfig, path: &Path, range: KeyGroupRange) -> Result<WorkerDb> {
        std::fs::create_dir_all(path).map_err(|e| io_error(path, "cannot create directory", e))?;
        let opts = Self::options(config);
        let mut families = Db::list_cf(&opts, path).unwrap_or_default();
        if !families.iter().any(|f| f == META_CF) {
            families.push(META_CF.to_string());
        }
        let descriptors = families
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Self::options(config)));
        let db = Db::open_cf_descriptors(&opts, path, descriptors)
            .map_err(|e| io_error(path, "cannot open RocksDB", e))?;
        let worker_db = WorkerDb {
            db,
            config: config.clone(),
            path: path.to_path_buf(),
            range,
        };
        worker_db.check_format()?;
        Ok(worker_db)
    }

    /// A fresh, empty database in `path` (whatever was there is removed).
    ///
    /// # Errors
    /// As [`WorkerDb::open`], or when the old directory cannot be removed.
    pub fn create_empty(config: &RocksDbConfig, path: &Path, range: KeyGroupRange) -> Result<WorkerDb> {
        remove_dir(path)?;
        Self::open(config, path, range)
    }

    /// A database in `path` holding the key groups of `range` taken from `checkpoints`
    /// (checkpoint directories of the previous run, each with the range its worker owned).
    ///
    /// A checkpoint that covers exactly `range` is hard-linked (nothing is copied); otherwise
    /// the key groups in `range` are read out of every overlapping checkpoint, so a job can
    /// restart with another number of workers.
    ///
    /// # Errors
    /// When a checkpoint cannot be read, or holds state of another format.
    pub fn restore(
        config: &RocksDbConfig,
        path: &Path,
        range: KeyGroupRange,
        checkpoints: &[(KeyGroupRange, PathBuf)],
    ) -> Result<WorkerDb> {
        remove_dir(path)?;
        if let Some((_, dir)) = checkpoints.iter().find(|(r, _)| *r == range) {
            link_dir(dir, path)?;
            return Self::open(config, path, range);
        }
        let target = Self::open(config, path, range)?;
        for (source_range, dir) in checkpoints {
            if source_range.end <= range.start || source_range.start >= range.end {
                continue;
            }
            target.import(dir, range)?;
        }
        Ok(target)
    }

    /// Copies the entries of the key groups in `range` (and the table records) from the
    /// checkpoint in `dir`.
    fn import(&self, dir: &Path, range: KeyGroupRange) -> Result<()> {
        let opts = Self::options(&self.config);
        let families =
            Db::list_cf(&opts, dir).map_err(|e| io_error(dir, "cannot list column families", e))?;
        let source = Db::open_cf_for_read_only(&opts, dir, &families, false)
            .map_err(|e| io_error(dir, "cannot open checkpoint", e))?;
        let (lower, upper) = codec::group_bounds(range);
        for family in families.iter().filter(|f| *f != "default") {
            let Some(from) = source.cf_handle(family) else {
                continue;
            };
            if self.db.cf_handle(family).is_none() {
                self.db
                    .create_cf(family, &Self::options(&self.config))
                    .map_err(|e| io_error(&self.path, "cannot create column family", e))?;
            }
            let to = self
                .db
                .cf_handle(family)
                .ok_or_else(|| io_error(&self.path, "column family vanished", family))?;
            let mut batch = WriteBatch::default();
            let mut read = rocksdb::ReadOptions::default();
            if family != META_CF {
                read.set_iterate_range(lower.clone()..upper.clone());
            }
            for entry in source.iterator_cf_opt(&from, read, IteratorMode::Start) {
                let (k, v) = entry.map_err(|e| io_error(dir, "cannot read checkpoint", e))?;
                batch.put_cf(&to, k, v);
                if batch.size_in_bytes() > 4 << 20 {
                    self.write(std::mem::take(&mut batch))?;
                }
            }
            self.write(batch)?;
        }
        Ok(())
    }

    fn check_format(&self) -> Result<()> {
        let meta = self.meta_cf()?;
        let stored = self
            .db
            .get_cf(&meta, FORMAT_KEY)
            .map_err(|e| io_error(&self.path, "cannot read state format", e))?;
        match stored {
            None => self
                .db
                .put_cf(&meta, FORMAT_KEY, STATE_FORMAT_VERSION.to_le_bytes())
                .map_err(|e| io_error(&self.path, "cannot write state format", e)),
            Some(bytes) => {
                let found = bytes
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, u32::from_le_bytes);
                if found == STATE_FORMAT_VERSION {
                    Ok(())
                } else {
                    Err(StateError::IncompatibleFormat {
                        operator: format!("(database {})", self.path.display()),
                        expected: STATE_FORMAT_VERSION,
                        found,
                        detail: "the state format of the database".into(),
                    })
                }
            }
        }
    }

    fn meta_cf(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.db
            .cf_handle(META_CF)
            .ok_or_else(|| io_error(&self.path, "missing column family", META_CF))
    }

    /// Opens the column family of `operator`, checking (or recording) its key, namespace and
    /// value types.
    pub(crate) fn open_table(&self, operator: &str, type_signature: &str) -> Result<()> {
        let meta_key = codec::table_meta_key(operator);
        let meta = self.meta_cf()?;
        let stored = self
            .db
            .get_cf(&meta, &meta_key)
            .map_err(|e| io_error(&self.path, "cannot read table record", e))?;
        match stored {
            Some(bytes) => {
                let found = codec::decode_meta(operator, &bytes)?;
                if found.format_version != STATE_FORMAT_VERSION || found.type_signature != type_signature {
                    return Err(StateError::IncompatibleFormat {
                        operator: operator.to_string(),
                        expected: STATE_FORMAT_VERSION,
                        found: found.format_version,
                        detail: format!(
                            "stored state has {}, the operator has {type_signature}",
                            found.type_signature
                        ),
                    });
                }
            }
            None => {
                let record = TableMeta {
                    format_version: STATE_FORMAT_VERSION,
                    type_signature: type_signature.to_string(),
                };
                self.db
                    .put_cf(&meta, &meta_key, codec::encode_meta(operator, &record)?)
                    .map_err(|e| io_error(&self.path, "cannot write table record", e))?;
            }
        }
        if self.db.cf_handle(operator).is_none() {
            self.db
                .create_cf(operator, &Self::options(&self.config))
                .map_err(|e| io_error(&self.path, "cannot create column family", e))?;
        }
        Ok(())
    }

    /// Names of the tables recorded in this database.
    ///
    /// # Errors
    /// When the records cannot be read.
    pub fn tables(&self) -> Result<Vec<String>> {
        let meta = self.meta_cf()?;
        let mut names = Vec::new();
        for entry in self.db.prefix_iterator_cf(&meta, codec::TABLE_META_PREFIX) {
            let (k, _) = entry.map_err(|e| io_error(&self.path, "cannot read table records", e))?;
            match k.strip_prefix(codec::TABLE_META_PREFIX) {
                Some(name) => names.push(String::from_utf8_lossy(name).into_owned()),
                None => break,
            }
        }
        Ok(names)
    }

    pub(crate) fn write(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // No write-ahead log: durability comes from checkpoints, and a crash restores the last
        // one into a fresh database.
        self.db
            .write_without_wal(batch)
            .map_err(|e| io_error(&self.path, "cannot write", e))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The key groups this database holds.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    /// Writes a RocksDB checkpoint of the database into `dir` (which must not exist): memtables
    /// are flushed and the table files hard-linked, so only data written since the previous
    /// checkpoint costs new disk space.
    ///
    /// # Errors
    /// When RocksDB cannot write the checkpoint.
    pub fn checkpoint(&self, dir: &Path) -> Result<DbCheckpoint> {
        let checkpoint =
            Checkpoint::new(&self.db).map_err(|e| io_error(&self.path, "cannot start checkpoint", e))?;
        checkpoint
            .create_checkpoint(dir)
            .map_err(|e| io_error(dir, "cannot write checkpoint", e))?;
        Ok(DbCheckpoint {
            dir: dir.to_path_buf(),
            files: list_files(dir)?,
        })
    }
}

/// Name and size of the files in `dir`, sorted by name.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, "cannot list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, "cannot list", e))?;
        let meta = entry
            .metadata()
            .map_err(|e| io_error(&entry.path(), "cannot stat", e))?;
        if meta.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
        }
    }
    files.sort();
    Ok(files)
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, "cannot remove old database", e)),
    }
}

/// Recreates the database in `from` at `to`: immutable table files are hard-linked, the small
/// files RocksDB rewrites are copied.
fn link_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| io_error(to, "cannot create directory", e))?;
    for (name, _) in list_files(from)? {
        let (src, dst) = (from.join(&name), to.join(&name));
        let linked = name.ends_with(".sst") && std::fs::hard_link(&src, &dst).is_ok();
        if !linked {
            std::fs::copy(&src, &dst).map_err(|e| io_error(&src, "cannot copy", e))?;
        }
    }
    Ok(())
}
