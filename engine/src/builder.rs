use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::alignment::AlignmentBoard;
use crate::build_state::{BuildState, Mode};
use crate::config::JobConfig;
use crate::error::EngineError;
use crate::graph::OperatorKind;
use crate::ids::WorkerId;
use crate::push::Output;
use crate::source::{Source, SourceContext};
use crate::source_driver::{Alignment, SourceCounters, SourceDriver};
use crate::stream::Stream;
use crate::watermark_strategy::WatermarkStrategy;

/// Builds one job graph. The job's build function receives it once for validation and once on
/// every worker, and must build the same graph each time.
///
/// ```
/// use sluice_engine::{Job, JobConfig, WatermarkStrategy};
/// # use sluice_engine::{Source, SourceContext, SourceReader, SourceOutput, PollStatus, SourcePosition, PartitionId, BoxError, Sink, SinkFactory, Timestamp};
/// # struct Nothing;
/// # impl Source for Nothing { type Item = u64;
/// #   fn open(&mut self, _: &SourceContext) -> Result<Box<dyn SourceReader<u64>>, BoxError> { Ok(Box::new(NoReader)) } }
/// # struct NoReader;
/// # impl SourceReader<u64> for NoReader {
/// #   fn partitions(&self) -> Vec<PartitionId> { vec![] }
/// #   fn poll(&mut self, _: &mut SourceOutput<u64>) -> Result<PollStatus, BoxError> { Ok(PollStatus::Finished) }
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
                        busy: metrics.counter(name, "busy_ns", st.worker),
                        board: metrics.partitions().clone(),
                        worker: st.worker,
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
                    st.run.inputs.push((0, Box::new(driver)));
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
