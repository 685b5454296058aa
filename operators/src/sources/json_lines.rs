use std::io::{self, Read};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sluice_engine::{
    BoxError, Data, Message, OnBadRecord, PartitionId, PollStatus, RecordLocation, Source, SourceContext,
    SourceOutput, SourcePosition, SourceReader,
};

use super::line_reader::LineReader;

/// JSON objects, one per line, from a file or from every file of a directory.
///
/// The input is cut into byte-range splits (a split owns the lines that start in it) dealt out
/// to the workers in turn, so parsing runs in parallel. Each worker reads its splits in file
/// order, one at a time; a split is a source partition with its own watermark.
///
/// Lines that are not valid JSON for `T` follow the bad-record policy (default `fail`, with
/// the file and line number in the error). Blank lines are ignored.
pub struct JsonLinesSource<T> {
    path: PathBuf,
    split_size: u64,
    policy: OnBadRecord,
    _record: PhantomData<fn() -> T>,
}

impl<T> Clone for JsonLinesSource<T> {
    fn clone(&self) -> Self {
        JsonLinesSource {
            path: self.path.clone(),
            split_size: self.split_size,
            policy: self.policy,
            _record: PhantomData,
        }
    }
}

/// Default split size: large enough to amortise opening, small enough to keep workers in step.
const DEFAULT_SPLIT_SIZE: u64 = 4 << 20;

impl<T: DeserializeOwned + Data> JsonLinesSource<T> {
    /// Reads `path`, a file or a directory of files (hidden files are skipped).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonLinesSource {
            path: path.into(),
            split_size: DEFAULT_SPLIT_SIZE,
            policy: OnBadRecord::Fail,
            _record: PhantomData,
        }
    }

    /// Target size of a split in bytes.
    pub fn split_size(mut self, bytes: u64) -> Self {
        self.split_size = bytes.max(1);
        self
    }

    /// What to do with lines that do not parse.
    pub fn on_bad_record(mut self, policy: OnBadRecord) -> Self {
        self.policy = policy;
        self
    }
}

/// A byte range of one file.
#[derive(Debug, Clone)]
struct Split {
    id: PartitionId,
    file: PathBuf,
    start: u64,
    end: u64,
}

fn list_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type()?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn plan_splits(files: &[PathBuf], split_size: u64) -> io::Result<Vec<Split>> {
    let mut splits = Vec::new();
    for file in files {
        let len = std::fs::metadata(file)?.len();
        let mut start = 0;
        while start < len {
            let end = (start + split_size).min(len);
            splits.push(Split {
                id: PartitionId(splits.len() as u32),
                file: file.clone(),
                start,
                end,
            });
            start = end;
        }
    }
    Ok(splits)
}

impl<T: DeserializeOwned + Data> Source for JsonLinesSource<T> {
    type Item = T;

    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        let context = |e: io::Error| -> BoxError {
            Box::new(Message(format!("cannot read {}: {e}", self.path.display())))
        };
        let files = list_files(&self.path).map_err(context)?;
        let splits: Vec<Split> = plan_splits(&files, self.split_size)
            .map_err(context)?
            .into_iter()
            .filter(|s| s.id.0 as usize % ctx.workers == ctx.worker.0)
            .collect();
        Ok(Box::new(JsonLinesReader::<T> {
            splits,
            current: 0,
            reader: None,
            offsets: Vec::new(),
            line_cache: None,
            spare_buffer: Vec::new(),
            _record: PhantomData,
        }))
    }

    fn bad_record_policy(&self) -> OnBadRecord {
        self.policy
    }
}

struct JsonLinesReader<T> {
    splits: Vec<Split>,
    current: usize,
    reader: Option<LineReader>,
    /// Next offset per split already started.
    offsets: Vec<(PartitionId, u64)>,
    line_cache: LineCache,
    /// The last split's read buffer, for the next split.
    spare_buffer: Vec<u8>,
    _record: PhantomData<fn() -> T>,
}

/// (file, offset, line number at offset): where the last line count stopped.
type LineCache = Option<(PathBuf, u64, u64)>;

/// 1-based line number of the line starting at `offset` (only computed for errors; counting
/// resumes from the previous answer when it can).
fn line_number(cache: &mut LineCache, file: &Path, offset: u64) -> io::Result<u64> {
    let (from, mut line) = match cache {
        Some((f, o, l)) if f == file && *o <= offset => (*o, *l),
        _ => (0, 1),
    };
    let mut f = std::fs::File::open(file)?;
    io::Seek::seek(&mut f, io::SeekFrom::Start(from))?;
    let mut remaining = offset - from;
    let mut buf = vec![0u8; 1 << 16];
    while remaining > 0 {
        let want = remaining.min(buf.len() as u64) as usize;
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        line += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        remaining -= n as u64;
    }
    *cache = Some((file.to_path_buf(), offset, line));
    Ok(line)
}

impl<T: DeserializeOwned + Data> SourceReader<T> for JsonLinesReader<T> {
    fn partitions(&self) -> Vec<PartitionId> {
        self.splits.first().map(|s| s.id).into_iter().collect()
    }

    fn poll(&mut self, batch: &mut SourceOutput<'_, T>) -> Result<PollStatus, BoxError> {
        let Some(split) = self.splits.get(self.current) else {
            return Ok(PollStatus::Finished);
        };
        let io_error = |e: io::Error| -> BoxError {
            Box::new(Message(format!("cannot read {}: {e}", split.file.display())))
        };
        let reader = match &mut self.reader {
            Some(r) => r,
            None => {
                let start = self
                    .offsets
                    .iter()
                    .find(|(p, _)| *p == split.id)
                    .map_or(split.start, |(_, o)| *o);
                let buffer = std::mem::take(&mut self.spare_buffer);
                self.reader
                    .insert(LineReader::with_buffer(&split.file, start, split.end, buffer).map_err(io_error)?)
            }
        };
        let mut finished_split = false;
        while !batch.is_full() {
            let Some((offset, line)) = reader.next_line().map_err(io_error)? else {
                finished_split = true;
                break;
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<T>(line) {
                Ok(value) => batch.record(split.id, value, None),
                Err(e) => {
                    let line = line_number(&mut self.line_cache, &split.file, offset).map_err(io_error)?;
                    let location = RecordLocation::new(
                        split.file.display().to_string().into(),
                        split.id.0,
                        line,
                        |l, f| write!(f, "{}:{}", l.source, l.position),
                    );
                    batch.bad_record(split.id, location, e.to_string());
                }
            }
        }
        let position = reader.position();
        match self.offsets.iter_mut().find(|(p, _)| *p == split.id) {
            Some(entry) => entry.1 = position,
            None => self.offsets.push((split.id, position)),
        }
        if finished_split {
            if let Some(done) = self.reader.take() {
                self.spare_buffer = done.into_buffer();
            }
            self.current += 1;
            if let Some(next) = self.splits.get(self.current) {
                batch.partition_start(next.id);
            }
            batch.partition_end(split.id);
        }
        Ok(PollStatus::Ready)
    }

    fn position(&self) -> SourcePosition {
        SourcePosition::of_offsets(self.offsets.iter().copied())
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        for (id, offset) in &position.offsets {
            match self.offsets.iter_mut().find(|(p, _)| p == id) {
                Some(entry) => entry.1 = *offset,
                None => self.offsets.push((*id, *offset)),
            }
        }
        // Resume at the first split that is not read to its end.
        self.current = self
            .splits
            .iter()
            .position(|s| position.offsets.get(&s.id).is_none_or(|o| *o < s.end))
            .unwrap_or(self.splits.len());
        self.reader = None;
        Ok(())
    }
}
