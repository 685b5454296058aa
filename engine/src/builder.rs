use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use sluice_state::{KeyGroupRange, StateBackend};

use crate::alignment::AlignmentBoard;
use crate::checkpoint::participant::Participant;
use crate::config::JobConfig;
use crate::error::{EngineError, Result};
use crate::exchange::{Flush, RunRegistry};
use crate::graph::{JobGraph, OperatorInfo, OperatorKind};
use crate::ids::WorkerId;
use crate::metrics::JobMetrics;
use crate::operator::{OperatorContext, Tick};
use crate::push::{Data, Output};
use crate::source::{Source, SourceContext};
use crate::source_driver::{Alignment, SourceCounters, SourceDriver};
use crate::stream::Stream;
use crate::watermark_strategy::WatermarkStrategy;
use crate::worker::WorkerInput;

/// Whether the graph is only being planned (validated) or instantiated on a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Plan,
    Run,
}

/// Everything one worker's instance of the job graph is made of.
pub(crate) struct BuildState {
    pub(crate) mode: Mode,
    pub(crate) config: Arc<JobConfig>,
    pub(crate) worker: usize,
    pub(crate) registry: Arc<RunRegistry>,
    pub(crate) state: StateBackend,
    pub(crate) metrics: JobMetrics,
    names: HashSet<String>,
    pub(crate) graph: JobGraph,
    pub(crate) errors: Vec<EngineError>,
    outputs: Vec<(String, Box<dyn Fn() -> usize>)>,
    /// Worker inputs with their level: 0 for sources, `exchange id + 1` for exchange receivers.
    pub(crate) inputs: Vec<(usize, Box<dyn WorkerInput>)>,
    pub(crate) senders: Vec<(usize, Rc<RefCell<dyn Flush>>)>,
    pub(crate) tickers: Vec<Rc<RefCell<dyn Tick>>>,
    pub(crate) sinks: Vec<Rc<RefCell<bool>>>,
    /// Operators and sinks, for checkpoints.
    pub(crate) participants: Vec<Rc<RefCell<dyn Participant>>>,
    next_exchange: usize,
}

impl BuildState {
    pub(crate) fn new(
        mode: Mode,
        config: Arc<JobConfig>,
        worker: usize,
        registry: Arc<RunRegistry>,
        metrics: JobMetrics,
    ) -> Self {
        let range = KeyGroupRange::for_worker(worker, config.workers, config.max_key_groups);
        BuildState {
            mode,
            worker,
            registry,
            state: StateBackend::memory_for(range),
            metrics,
            names: HashSet::new(),
            graph: JobGraph::default(),
            errors: Vec::new(),
            outputs: Vec::new(),
            inputs: Vec::new(),
            senders: Vec::new(),
            tickers: Vec::new(),
            sinks: Vec::new(),
            participants: Vec::new(),
            next_exchange: 0,
            config,
        }
    }

    /// Registers an operator name; records an error when it is taken or malformed.
    pub(crate) fn claim_name(&mut self, name: &str) -> bool {
        let reason = if name.is_empty() {
            Some("names must not be empty")
        } else if name.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
            Some("names must not contain '/', '\\' or control characters")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.errors.push(EngineError::InvalidOperatorName {
                operator: name.to_string(),
                reason,
            });
            return false;
        }
        if !self.names.insert(name.to_string()) {
            self.errors.push(EngineError::DuplicateOperator {
                operator: name.to_string(),
            });
            return false;
        }
        true
    }

    pub(crate) fn record(&mut self, name: &str, kind: OperatorKind, inputs: &[&str], output_type: String) {
        self.graph.operators.push(OperatorInfo {
            name: name.to_string(),
            kind,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output_type,
        });
    }

    pub(crate) fn track_output<T: Data>(&mut self, producer: &str, out: &Output<T>) {
        let out = out.clone();
        self.outputs
            .push((producer.to_string(), Box::new(move || out.consumers())));
    }

    pub(crate) fn operator_context(&self, name: &str) -> OperatorContext {
        OperatorContext {
            name: Arc::from(name),
            worker: WorkerId(self.worker),
            workers: self.config.workers,
            max_key_groups: self.config.max_key_groups,
            state: self.state.clone(),
            metrics: self.metrics.clone(),
        }
    }

    pub(crate) fn next_exchange_id(&mut self) -> usize {
        self.next_exchange += 1;
        self.next_exchange - 1
    }

    /// Checks the finished graph: names, dangling streams, presence of a source.
    pub(crate) fn validate(&mut self) -> Result<()> {
        if let Some(e) = self.errors.drain(..).next() {
            return Err(e);
        }
        for (producer, consumers) in &self.outputs {
            if consumers() == 0 {
                return Err(EngineError::DanglingStream {
                    operator: producer.clone(),
                });
            }
        }
        // Every other stream is consumed, and only sinks consume without producing: a job
        // with a source therefore has a sink.
        if !self
            .graph
            .operators
            .iter()
            .any(|o| o.kind == OperatorKind::Source)
        {
            return Err(EngineError::InvalidJob {
                job: self.config.name.clone(),
                reason: "it has no source".into(),
            });
        }
        Ok(())
    }
}

/// Builds one job graph. The job's build function receives it once for validation and once on
/// every worker, and must build the same graph each time.
///
/// ```
/// use sluice_engine::{Job, JobConfig, WatermarkStrategy};
/// # use sluice_engine::{Source, SourceContext, SourceReader, SourceBatch, PollStatus, SourcePosition, PartitionId, BoxError, Sink, SinkFactory, Timestamp};
/// # struct Nothing;
/// # impl Source for Nothing { type Item = u64;
/// #   fn open(&mut self, _: &SourceContext) -> Result<Box<dyn SourceReader<u64>>, BoxError> { Ok(Box::new(NoReader)) } }
/// # struct NoReader;
/// # impl SourceReader<u64> for NoReader {
/// #   fn partitions(&self) -> Vec<PartitionId> { vec![] }
/// #   fn poll(&mut self, _: &mut SourceBatch<u64>) -> Result<PollStatus, BoxError> { Ok(PollStatus::Finished) }
/// #   fn position(&self) -> SourcePosition { SourcePosition::default() }
/// #   fn seek(&mut self, _: &SourcePosition) -> Result<(), BoxError> { Ok(()) } }
/// # struct Discard;
/// # impl Sink<u64> for Discard { fn write(&mut self, _: u64, _: Timestamp) -> Result<(), BoxError> { Ok(()) } }
/// # impl SinkFactory<u64> for Discard { fn create(&self, _: usize, _: usize) -> Result<Box<dyn Sink<u64>>, BoxError> { Ok(Box::new(Discard)) } }
/// let job = Job::new(JobConfig::new("example").workers(1), |b| {
///     let numbers = b.source("numbers", Nothing, WatermarkStrategy::monotonous());
///     numbers.sink("discard", Discard);
///     Ok(())
/// })?;
/// assert_eq!(job.graph().operators.len(), 2);
/// # Ok::<(), sluice_engine::EngineError>(())
/// ```
pub struct JobBuilder {
    pub(crate) state: Rc<RefCell<BuildState>>,
}

impl JobBuilder {
    pub(crate) fn new(state: BuildState) -> Self {
        JobBuilder {
            state: Rc::new(RefCell::new(state)),
        }
    }

    /// This worker's index (0 while the graph is validated).
    pub fn worker(&self) -> WorkerId {
        WorkerId(self.state.borrow().worker)
    }

    /// The job's settings.
    pub fn config(&self) -> Arc<JobConfig> {
        Arc::clone(&self.state.borrow().config)
    }

    /// Adds a source called `name`; its records get event time and watermarks from `strategy`.
    pub fn source<S: Source>(
        &mut self,
        name: &str,
        mut source: S,
        strategy: WatermarkStrategy<S::Item>,
    ) -> Stream<S::Item> {
        let out = Output::<S::Item>::new();
        let mut st = self.state.borrow_mut();
        st.claim_name(name);
        st.record(
            name,
            OperatorKind::Source,
            &[],
            std::any::type_name::<S::Item>().to_string(),
        );
        st.track_output(name, &out);
        if st.mode == Mode::Run {
            let ctx = SourceContext {
                name: name.to_string(),
                worker: WorkerId(st.worker),
                workers: st.config.workers,
                batch_size: st.config.batch_size,
                metrics: st.metrics.clone(),
                shared: Arc::clone(&st.registry.shared),
                idleness: Arc::clone(&st.registry.idleness),
            };
            match source.open(&ctx) {
                Ok(reader) => {
                    let metrics = &st.metrics;
                    let counters = SourceCounters {
                        records_out: metrics.counter(name, "records_out", st.worker),
                        skipped: metrics.counter(name, "bad_records_skipped", st.worker),
                        idle_partitions: metrics.counter(name, "idle_partitions", st.worker),
                        beyond_bound: metrics.counter(name, "records_beyond_bound", st.worker),
                        paused_partitions: metrics.gauge(name, "paused_partitions", st.worker),
                        watermark: metrics.gauge(name, "watermark", st.worker),
                    };
                    let alignment = strategy.max_drift.map(|drift| Alignment {
                        board: st
                            .registry
                            .shared
                            .get_or_insert(name, || AlignmentBoard::new(st.config.workers)),
                        worker: st.worker,
                        max_drift: crate::time::millis(drift),
                        unsupported: false,
                    });
                    let driver = SourceDriver::new(
                        name.to_string(),
                        reader,
                        strategy,
                        source.bad_record_policy(),
                        out.clone(),
                        counters,
                        st.config.batch_size,
                        ctx.idle_vote(),
                        st.config.clock.clone(),
                        alignment,
                    );
                    st.inputs.push((0, Box::new(driver)));
                }
                Err(source) => st.errors.push(EngineError::SourceFailed {
                    source_name: name.to_string(),
                    source,
                }),
            }
        }
        drop(st);
        Stream::new(Rc::clone(&self.state), out, name)
    }
}
