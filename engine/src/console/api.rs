//! The JSON the console's API answers with, built from a [`JobObserver`] and the counter
//! samples of the last minute.

use std::collections::BTreeMap;

use serde::Serialize;

use super::rates::RateHistory;
use crate::observer::JobObserver;
use crate::status::{CheckpointHistory, ErrorRecord, GraphView, JobState, PartitionStatus, SinkStatus};
use crate::worker::WORKER_SCOPE;

/// `GET /api/job`.
#[derive(Debug, Serialize)]
pub(crate) struct JobView {
    name: String,
    #[serde(flatten)]
    state: JobState,
    started_at_ms: i64,
    uptime_ms: i64,
    restarts: u32,
    workers: usize,
    graph: GraphView,
    errors: Vec<ErrorRecord>,
}

pub(crate) fn job(obs: &JobObserver) -> JobView {
    JobView {
        name: obs.name().to_string(),
        state: obs.state(),
        started_at_ms: obs.started_at_ms(),
        uptime_ms: crate::time::now_millis() - obs.started_at_ms(),
        restarts: obs.restarts(),
        workers: obs.workers(),
        graph: obs.graph().clone(),
        errors: obs.errors(),
    }
}

/// One operator on one worker.
#[derive(Debug, Serialize)]
struct OperatorWorker {
    worker: usize,
    /// Every counter of the operator on this worker (`records_in`, `records_out`,
    /// `late_records`, `busy_ns`, ...).
    counters: BTreeMap<&'static str, u64>,
    /// Every gauge set (`watermark`, `state_entries`, `queued_batches`, ...).
    gauges: BTreeMap<&'static str, i64>,
    records_in_per_sec: f64,
    records_out_per_sec: f64,
    /// Share of the last minute spent in this operator's own work, 0 to 1.
    busy: f64,
}

/// One operator over all workers.
#[derive(Debug, Serialize)]
struct OperatorView {
    name: String,
    kind: String,
    parallelism: usize,
    records_in: u64,
    records_out: u64,
    records_in_per_sec: f64,
    records_out_per_sec: f64,
    /// The busiest worker's share of the last minute in this operator's own work.
    busy: f64,
    /// The lowest input watermark over the workers (sources: their output watermark).
    watermark: Option<i64>,
    late_records: u64,
    bad_records_skipped: u64,
    dead_lettered: u64,
    /// Keyed state entries over the workers, where the operator reports them.
    state_entries: Option<i64>,
    /// For exchanges: the fullest worker queue's share of its capacity, 0 to 1.
    queue_fill: Option<f64>,
    workers: Vec<OperatorWorker>,
}

/// Where one worker thread's time went over the last minute, shares 0 to 1.
#[derive(Debug, Serialize)]
struct WorkerTime {
    worker: usize,
    busy: f64,
    backpressured: f64,
    idle: f64,
}

/// The operator with the largest busy share: the job's bottleneck when it is near 1.
#[derive(Debug, Serialize)]
struct Busiest {
    operator: String,
    worker: usize,
    busy: f64,
}

/// `GET /api/operators`.
#[derive(Debug, Serialize)]
pub(crate) struct OperatorsView {
    operators: Vec<OperatorView>,
    busiest: Option<Busiest>,
    workers: Vec<WorkerTime>,
}

pub(crate) fn operators(obs: &JobObserver, rates: &RateHistory) -> OperatorsView {
    let metrics = obs.metrics();
    let (counters, gauges) = (metrics.counters(), metrics.gauges());
    let mut busiest: Option<Busiest> = None;
    let operators = obs
        .graph()
        .operators
        .iter()
        .map(|op| {
            let name = op.name.as_str();
            let workers: Vec<OperatorWorker> = (0..obs.workers())
                .map(|worker| {
                    let mine = |o: &str, w: usize| o == name && w == worker;
                    let counters: BTreeMap<_, _> = counters
                        .iter()
                        .filter(|(o, _, w, _)| mine(o, *w))
                        .map(|(_, n, _, v)| (*n, *v))
                        .collect();
                    let gauges: BTreeMap<_, _> = gauges
                        .iter()
                        .filter(|(o, _, w, _)| mine(o, *w))
                        .map(|(_, n, _, v)| (*n, *v))
                        .collect();
                    let busy = rates.share(name, "busy_ns", worker);
                    if busiest.as_ref().is_none_or(|b| busy > b.busy) {
                        busiest = Some(Busiest {
                            operator: name.to_string(),
                            worker,
                            busy,
                        });
                    }
                    OperatorWorker {
                        worker,
                        records_in_per_sec: rates.per_second(name, "records_in", worker),
                        records_out_per_sec: rates.per_second(name, "records_out", worker),
                        busy,
                        counters,
                        gauges,
                    }
                })
                .collect();
            let sum = |n: &str| -> u64 {
                workers
                    .iter()
                    .map(|w| w.counters.get(n).copied().unwrap_or(0))
                    .sum()
            };
            let gauge = |w: &OperatorWorker, n: &str| w.gauges.get(n).copied();
            let queue_fill = workers
                .iter()
                .filter_map(|w| {
                    let capacity = gauge(w, "queue_capacity").filter(|c| *c > 0)?;
                    Some(gauge(w, "queued_batches").unwrap_or(0) as f64 / capacity as f64)
                })
                .reduce(f64::max);
            let state_entries = workers
                .iter()
                .filter_map(|w| gauge(w, "state_entries"))
                .reduce(|a, b| a + b);
            OperatorView {
                name: name.to_string(),
                kind: op.kind.clone(),
                parallelism: op.parallelism,
                records_in: sum("records_in"),
                records_out: sum("records_out"),
                records_in_per_sec: workers.iter().map(|w| w.records_in_per_sec).sum(),
                records_out_per_sec: workers.iter().map(|w| w.records_out_per_sec).sum(),
                busy: workers.iter().map(|w| w.busy).fold(0.0, f64::max),
                watermark: workers.iter().filter_map(|w| gauge(w, "watermark")).min(),
                late_records: sum("late_records"),
                bad_records_skipped: sum("bad_records_skipped"),
                dead_lettered: sum("dead_lettered"),
                state_entries,
                queue_fill,
                workers,
            }
        })
        .collect();
    let workers = (0..obs.workers())
        .map(|worker| WorkerTime {
            worker,
            busy: rates.share(WORKER_SCOPE, "busy_ns", worker),
            backpressured: rates.share(WORKER_SCOPE, "backpressured_ns", worker),
            idle: rates.share(WORKER_SCOPE, "idle_ns", worker),
        })
        .collect();
    OperatorsView {
        operators,
        busiest,
        workers,
    }
}

/// The partition whose watermark is the job's.
#[derive(Debug, Serialize)]
struct Holder {
    source: String,
    partition: u32,
    worker: usize,
    /// Its watermark; none when it has not delivered a record yet.
    watermark: Option<i64>,
}

/// The job's event time.
#[derive(Debug, Serialize)]
struct JobWatermark {
    /// The lowest watermark of the partitions that are not idle; none while one of them has
    /// not delivered a record, or when all are idle.
    watermark: Option<i64>,
    /// The partition holding it back.
    held_by: Option<Holder>,
    /// Wall-clock time minus the watermark, milliseconds.
    gap_ms: Option<i64>,
}

/// `GET /api/partitions`.
#[derive(Debug, Serialize)]
pub(crate) struct PartitionsView {
    partitions: Vec<PartitionStatus>,
    job: JobWatermark,
}

pub(crate) fn partitions(obs: &JobObserver) -> PartitionsView {
    let partitions = obs.metrics().partitions().all();
    // A partition without a watermark holds event time at its very beginning.
    let holder = partitions
        .iter()
        .filter(|p| !p.idle)
        .min_by_key(|p| p.watermark.unwrap_or(i64::MIN));
    let watermark = holder.and_then(|p| p.watermark);
    let job = JobWatermark {
        watermark,
        held_by: holder.map(|p| Holder {
            source: p.source.clone(),
            partition: p.partition,
            worker: p.worker,
            watermark: p.watermark,
        }),
        gap_ms: watermark.map(|wm| crate::time::now_millis().saturating_sub(wm)),
    };
    PartitionsView { partitions, job }
}

/// `GET /api/checkpoints`.
#[derive(Debug, Serialize)]
pub(crate) struct CheckpointsView {
    enabled: bool,
    interval_ms: Option<u64>,
    #[serde(flatten)]
    history: CheckpointHistory,
}

pub(crate) fn checkpoints(obs: &JobObserver) -> CheckpointsView {
    let history = obs.checkpoints();
    CheckpointsView {
        enabled: history.is_some(),
        interval_ms: obs
            .checkpoint_interval()
            .map(|i| u64::try_from(i.as_millis()).unwrap_or(u64::MAX)),
        history: history.unwrap_or_default(),
    }
}

/// One sink.
#[derive(Debug, Serialize)]
struct SinkView {
    name: String,
    records_in: u64,
    records_in_per_sec: f64,
    /// What the sink reports of its store, if it writes to one.
    store: Option<SinkStatus>,
}

/// `GET /api/sinks`.
#[derive(Debug, Serialize)]
pub(crate) struct SinksView {
    sinks: Vec<SinkView>,
}

pub(crate) fn sinks(obs: &JobObserver, rates: &RateHistory) -> SinksView {
    let reports: BTreeMap<String, SinkStatus> = obs.metrics().sinks().all().into_iter().collect();
    let sinks = obs
        .graph()
        .operators
        .iter()
        .filter(|op| op.kind == "sink")
        .map(|op| SinkView {
            name: op.name.clone(),
            records_in: obs.metrics().total(&op.name, "records_in"),
            records_in_per_sec: (0..obs.workers())
                .map(|w| rates.per_second(&op.name, "records_in", w))
                .sum(),
            store: reports.get(&op.name).cloned(),
        })
        .collect();
    SinksView { sinks }
}

/// One operator's rate over the last minute.
#[derive(Debug, Serialize)]
struct RateSeries {
    operator: String,
    /// `[milliseconds since the epoch, records per second]`, oldest first; sources and
    /// exchanges count the records they handed on, other operators those they took.
    points: Vec<(i64, f64)>,
}

/// `GET /api/rates`.
#[derive(Debug, Serialize)]
pub(crate) struct RatesView {
    series: Vec<RateSeries>,
}

pub(crate) fn rates(obs: &JobObserver, rates: &RateHistory) -> RatesView {
    let series = obs
        .graph()
        .operators
        .iter()
        .map(|op| RateSeries {
            operator: op.name.clone(),
            points: rates.series(
                &op.name,
                if op.kind == "source" || op.kind == "key_by" {
                    "records_out"
                } else {
                    "records_in"
                },
            ),
        })
        .collect();
    RatesView { series }
}
