//! Helpers shared by the integration tests: a scripted source whose partitions can stall,
//! and batch computations of windows to compare the engine with.
#![allow(dead_code)]

pub mod kafka;
pub mod kafka_jobs;
pub mod services;
pub mod shop;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sluice::engine::{
    BoxError, Data, PartitionId, PollStatus, Source, SourceContext, SourceOutput, SourcePosition,
    SourceReader,
};

/// A keyed, timestamped test event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    pub key: String,
    pub ts: i64,
    pub value: i64,
}

impl Event {
    pub fn new(key: &str, ts: i64, value: i64) -> Self {
        Event {
            key: key.to_string(),
            ts,
            value,
        }
    }
}

/// One step of a partition's script.
#[derive(Debug, Clone)]
pub enum Step<T> {
    Emit(T),
    /// Produce nothing for this long (the partition is alive but silent).
    Stall(Duration),
}

/// A source whose partitions follow scripts; partition `p` is read by worker `p % workers`.
/// Each poll emits up to `chunk` records of one partition, taking turns.
#[derive(Debug, Clone)]
pub struct ScriptedSource<T> {
    pub partitions: Vec<Vec<Step<T>>>,
    pub chunk: usize,
}

impl<T: Data> ScriptedSource<T> {
    pub fn new(partitions: Vec<Vec<Step<T>>>, chunk: usize) -> Self {
        ScriptedSource { partitions, chunk }
    }
}

impl<T: Data> Source for ScriptedSource<T> {
    type Item = T;

    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        let owned = self
            .partitions
            .iter()
            .enumerate()
            .filter(|(p, _)| p % ctx.workers == ctx.worker.0)
            .map(|(p, steps)| ScriptedPartition {
                id: PartitionId(p as u32),
                steps: steps.clone(),
                next: 0,
                stalled_until: None,
                ended: false,
            })
            .collect();
        Ok(Box::new(ScriptedReader {
            owned,
            turn: 0,
            chunk: self.chunk.max(1),
        }))
    }
}

struct ScriptedPartition<T> {
    id: PartitionId,
    steps: Vec<Step<T>>,
    next: usize,
    stalled_until: Option<Instant>,
    ended: bool,
}

struct ScriptedReader<T> {
    owned: Vec<ScriptedPartition<T>>,
    turn: usize,
    chunk: usize,
}

impl<T: Data> SourceReader<T> for ScriptedReader<T> {
    fn partitions(&self) -> Vec<PartitionId> {
        self.owned.iter().map(|p| p.id).collect()
    }

    fn poll(&mut self, batch: &mut SourceOutput<'_, T>) -> Result<PollStatus, BoxError> {
        let n = self.owned.len();
        if self.owned.iter().all(|p| p.ended) {
            return Ok(PollStatus::Finished);
        }
        let now = Instant::now();
        for _ in 0..n {
            let i = self.turn % n;
            self.turn += 1;
            let p = &mut self.owned[i];
            if p.ended || p.stalled_until.is_some_and(|t| now < t) {
                continue;
            }
            p.stalled_until = None;
            let mut emitted = 0;
            while emitted < self.chunk {
                match p.steps.get(p.next) {
                    Some(Step::Emit(v)) => {
                        batch.record(p.id, v.clone(), None);
                        emitted += 1;
                        p.next += 1;
                    }
                    Some(Step::Stall(d)) => {
                        p.stalled_until = Some(now + *d);
                        p.next += 1;
                        break;
                    }
                    None => {
                        p.ended = true;
                        batch.partition_end(p.id);
                        break;
                    }
                }
            }
            return Ok(PollStatus::Ready);
        }
        Ok(PollStatus::Pending)
    }

    fn position(&self) -> SourcePosition {
        SourcePosition::of_offsets(self.owned.iter().map(|p| (p.id, p.next as u64)))
    }

    fn seek(&mut self, _position: &SourcePosition) -> Result<(), BoxError> {
        Err("scripted sources cannot seek".into())
    }
}

/// `(key, window start, window end) → (count, sum)` rows.
pub type Rows = BTreeMap<(String, i64, i64), (u64, i64)>;

/// Tumbling (`slide == size`) or sliding windows computed in one pass over all events.
pub fn batch_fixed(events: &[Event], size: i64, slide: i64) -> Rows {
    let mut rows = Rows::new();
    for e in events {
        let mut start = e.ts - e.ts.rem_euclid(slide);
        while start > e.ts - size {
            let r = rows.entry((e.key.clone(), start, start + size)).or_default();
            r.0 += 1;
            r.1 += e.value;
            start -= slide;
        }
    }
    rows
}

/// Session windows computed by sorting each key's events.
pub fn batch_sessions(events: &[Event], gap: i64) -> Rows {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_key.entry(&e.key).or_default().push(e);
    }
    let mut rows = Rows::new();
    for (key, mut es) in by_key {
        es.sort_by_key(|e| e.ts);
        let mut current: Option<(i64, i64, u64, i64)> = None;
        for e in es {
            current = match current {
                Some((s, end, c, sum)) if e.ts < end => Some((s, end.max(e.ts + gap), c + 1, sum + e.value)),
                Some((s, end, c, sum)) => {
                    rows.insert((key.to_string(), s, end), (c, sum));
                    Some((e.ts, e.ts + gap, 1, e.value))
                }
                None => Some((e.ts, e.ts + gap, 1, e.value)),
            };
        }
        if let Some((s, end, c, sum)) = current {
            rows.insert((key.to_string(), s, end), (c, sum));
        }
    }
    rows
}

/// A unique scratch directory under the system temp dir, removed on drop.
/// The path of example `name`, which `cargo test` builds next to the test binaries
/// (`target/<profile>/examples`).
pub fn example(name: &str) -> std::path::PathBuf {
    let test = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/examples/<name>
    let profile = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    profile.join("examples").join(name)
}

/// Sends one HTTP/1.1 request (`method path`, extra header lines each ending in `\r\n`) to
/// `host:port` and returns the whole response.
pub fn http(host: &str, method_and_path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("{host}: {e}"));
    write!(
        stream,
        "{method_and_path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

/// The S3-compatible server (`SLUICE_S3_ENDPOINT`: moto's under scripts/test.sh), with the
/// tests' bucket created (moto takes unsigned requests; buckets are outside `object_store`).
pub fn s3_endpoint() -> String {
    let endpoint = std::env::var("SLUICE_S3_ENDPOINT")
        .expect("SLUICE_S3_ENDPOINT must name an S3-compatible server (scripts/test.sh starts one)");
    let response = http(
        endpoint.trim_start_matches("http://"),
        "PUT /sluice-checkpoints",
        "",
    );
    assert!(
        response.starts_with("HTTP/1.1 200") || response.contains("BucketAlreadyOwnedByYou"),
        "{response}"
    );
    endpoint
}

pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (up to 30 s) until `out` captured `n` records.
pub fn wait_for(out: &sluice::testing::CaptureSink<Event>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records arrived",
            out.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the running job has completed checkpoint `n` (counting earlier runs' too).
pub fn wait_for_checkpoint(handle: &sluice::engine::JobHandle, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while handle.last_checkpoint() < n {
        assert!(!handle.is_finished(), "the job ended before checkpoint {n}");
        assert!(std::time::Instant::now() < deadline, "no checkpoints completed");
        std::thread::sleep(Duration::from_millis(5));
    }
}
