//! Runs a whole job under the test's control.

use std::sync::Arc;
use std::time::Duration;

use sluice_engine::{
    CheckpointId, CheckpointStep, Clock, EngineError, Job, JobBuilder, JobConfig, JobHandle, JobMetrics,
    JobReport, Result, Timestamp,
};

type BuildFn = dyn Fn(&mut JobBuilder) -> Result<()> + Send + Sync;

/// Processing time a harness starts at: 2026-01-01T00:00:00Z.
pub const DEFAULT_START: Timestamp = 1_767_225_600_000;

/// Checkpoints happen only when the test asks: an interval no run reaches.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Runs a job with a manual clock, checkpoints when the test asks for them, and crashes and
/// restores wherever the test says, like Flink's operator test harnesses and Kafka Streams'
/// `TopologyTestDriver` do for those engines.
///
/// The job runs on its real workers and exchanges. The test feeds it through
/// [`TestInput`](crate::TestInput)s, then calls [`JobHarness::settle`] to wait until everything
/// it was given has gone as far as it can; processing time (timers, idleness) moves only by
/// [`JobHarness::advance`]. A crash ([`JobHarness::crash`], [`JobHarness::crash_at`]) drops the
/// running job without flushing anything; [`JobHarness::restart`] starts it again, as a new
/// process would, from its latest complete checkpoint, with the same or another number of
/// workers.
///
/// ```
/// use std::time::Duration;
/// use sluice_engine::{JobConfig, WatermarkStrategy};
/// use sluice_testing::{CaptureSink, JobHarness, TestInput};
///
/// # fn main() -> Result<(), sluice_engine::EngineError> {
/// let input = TestInput::<i64>::new(1);
/// let output = CaptureSink::new();
/// let (source, sink) = (input.source(), output.clone());
/// let mut h = JobHarness::new(JobConfig::new("doubling").workers(1), move |b| {
///     b.source("numbers", source.clone(), WatermarkStrategy::monotonous().with_timestamps(|n: &i64| *n))
///         .transform("double", "map", Double)
///         .sink("out", sink.clone());
///     Ok(())
/// })?;
/// h.start()?;
/// input.push(0, 21);
/// h.settle()?;
/// assert_eq!(output.values(), vec![42]);
/// input.end_all();
/// h.finish()?;
/// # Ok(())
/// # }
/// # struct Double;
/// # impl sluice_engine::Operator for Double {
/// #     type In = i64;
/// #     type Out = i64;
/// #     fn process(&mut self, v: i64, ts: i64, out: &mut sluice_engine::Output<i64>) -> sluice_engine::Result<()> {
/// #         out.push(v * 2, ts)
/// #     }
/// # }
/// ```
pub struct JobHarness {
    config: JobConfig,
    build: Arc<BuildFn>,
    clock: Clock,
    handle: Option<JobHandle>,
    settle_timeout: Duration,
    /// Outcomes of the runs that crashed or failed, oldest first.
    ended: Vec<std::result::Result<JobReport, EngineError>>,
    /// The report of a run that ended while the harness waited for it to settle.
    report: Option<JobReport>,
}

impl JobHarness {
    /// A harness for the job `build` builds under `config`, checked as [`Job::new`] checks it,
    /// not started yet. The harness replaces the config's clock with a manual one standing at
    /// [`DEFAULT_START`] and takes checkpoints only when asked.
    ///
    /// # Errors
    /// What [`Job::new`] refuses.
    pub fn new(
        config: JobConfig,
        build: impl Fn(&mut JobBuilder) -> Result<()> + Send + Sync + 'static,
    ) -> Result<Self> {
        let clock = Clock::manual(DEFAULT_START);
        let mut config = config.clock(clock.clone());
        if let Some(checkpoints) = config.checkpoint_config().cloned() {
            config = config.checkpoints(checkpoints.interval(NEVER));
        }
        let build: Arc<BuildFn> = Arc::new(build);
        let harness = JobHarness {
            config,
            build,
            clock,
            handle: None,
            settle_timeout: Duration::from_secs(60),
            ended: Vec::new(),
            report: None,
        };
        harness.job(harness.config.clone())?;
        Ok(harness)
    }

    /// How long [`JobHarness::settle`] waits before it reports that the job did not come to
    /// rest (default 60 s).
    pub fn settle_timeout(mut self, timeout: Duration) -> Self {
        self.settle_timeout = timeout;
        self
    }

    fn job(&self, config: JobConfig) -> Result<Job> {
        let build = Arc::clone(&self.build);
        Job::new(config, move |b| build(b))
    }

    /// The manual clock the job's processing time follows.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Starts the job (restoring its latest complete checkpoint, if there is one).
    ///
    /// # Errors
    /// When it is already running or cannot start.
    pub fn start(&mut self) -> Result<()> {
        let workers = self.config.worker_count();
        self.start_with(workers)
    }

    /// Starts the job again after a crash or a stop, from its latest complete checkpoint, with
    /// `workers` workers.
    ///
    /// # Errors
    /// As [`JobHarness::start`].
    pub fn restart(&mut self, workers: usize) -> Result<()> {
        self.start_with(workers)
    }

    fn start_with(&mut self, workers: usize) -> Result<()> {
        self.report = None;
        if self.handle.is_some() {
            return Err(EngineError::InvalidJob {
                job: self.config.name().to_string(),
                reason: "the harness's job is already running".into(),
            });
        }
        let config = self.config.clone().workers(workers);
        self.handle = Some(self.job(config)?.start()?);
        Ok(())
    }

    fn running(&self) -> Result<&JobHandle> {
        self.handle.as_ref().ok_or_else(|| EngineError::InvalidJob {
            job: self.config.name().to_string(),
            reason: "the harness's job is not running".into(),
        })
    }

    /// Takes the ended run's outcome: a finished run's report is kept for
    /// [`JobHarness::finish`], a failure is returned.
    fn collect(&mut self) -> Result<()> {
        if let Some(handle) = self.handle.take() {
            match handle.join() {
                Ok(report) => self.report = Some(report),
                Err(e) => {
                    let reason = e.to_string();
                    self.ended.push(Err(e));
                    return Err(EngineError::InvalidJob {
                        job: self.config.name().to_string(),
                        reason: format!("the job failed: {reason}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Waits until the job has processed everything it was given as far as the current
    /// watermarks and clock allow, or has ended.
    ///
    /// # Errors
    /// When the job failed, or did not come to rest within the settle timeout.
    pub fn settle(&mut self) -> Result<()> {
        let handle = self.running()?;
        let quiet = handle.wait_quiet(self.settle_timeout);
        if handle.is_finished() {
            return self.collect();
        }
        if quiet {
            Ok(())
        } else {
            Err(EngineError::InvalidJob {
                job: self.config.name().to_string(),
                reason: format!("the job did not come to rest within {:?}", self.settle_timeout),
            })
        }
    }

    /// Moves processing time forward by `by`, then [`settles`](JobHarness::settle).
    ///
    /// # Errors
    /// As [`JobHarness::settle`].
    pub fn advance(&mut self, by: Duration) -> Result<()> {
        self.clock.advance(by);
        self.settle()
    }

    /// Takes a checkpoint now (after settling) and waits until it is complete.
    ///
    /// # Errors
    /// When checkpoints are off or the checkpoint does not complete.
    pub fn checkpoint(&mut self) -> Result<CheckpointId> {
        self.settle()?;
        let timeout = self.settle_timeout;
        let id = self.running()?.checkpoint(timeout)?;
        self.settle()?;
        Ok(id)
    }

    /// Crashes the job now, wherever it is: nothing is flushed, a checkpoint in flight stays
    /// as far as it got. Start it again with [`JobHarness::restart`].
    ///
    /// # Errors
    /// When no job is running.
    pub fn crash(&mut self) -> Result<()> {
        self.running()?.abort();
        // An abort is the expected end of this run; a failure that raced it is kept.
        let _ = self.collect();
        Ok(())
    }

    /// Starts a checkpoint that crashes the job at `step` (see
    /// [`CheckpointConfig::crash_at`](sluice_engine::CheckpointConfig::crash_at)) and waits
    /// for the job to end there.
    ///
    /// # Errors
    /// When no job is running, or the job ended otherwise than by the simulated crash.
    pub fn crash_at(&mut self, step: CheckpointStep) -> Result<()> {
        self.settle()?;
        let timeout = self.settle_timeout;
        let handle = self.running()?;
        handle.crash_at_next_checkpoint(step);
        let asked = handle.checkpoint(timeout);
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        let outcome = handle.join();
        let crashed = matches!(outcome, Err(EngineError::SimulatedCrash { .. }));
        let reason = match (&asked, &outcome) {
            (_, Err(e)) if !crashed => Some(e.to_string()),
            (Ok(id), Ok(_)) => Some(format!("checkpoint {id} completed without crashing")),
            _ => None,
        };
        self.ended.push(outcome);
        match reason {
            Some(reason) => Err(EngineError::InvalidJob {
                job: self.config.name().to_string(),
                reason: format!("no crash at {}: {reason}", step.name()),
            }),
            None => Ok(()),
        }
    }

    /// Stops the job the way [`JobHandle::stop`] does and waits for it.
    ///
    /// # Errors
    /// The job's failure.
    pub fn stop(&mut self) -> Result<JobReport> {
        if let Some(h) = &self.handle {
            h.stop();
        }
        self.join()
    }

    /// Waits for the job to run out of input (end the [`TestInput`](crate::TestInput)s first).
    ///
    /// # Errors
    /// The job's failure.
    pub fn finish(&mut self) -> Result<JobReport> {
        self.join()
    }

    fn join(&mut self) -> Result<JobReport> {
        match (self.handle.take(), self.report.take()) {
            (Some(handle), _) => handle.join(),
            (None, Some(report)) => Ok(report),
            (None, None) => Err(EngineError::InvalidJob {
                job: self.config.name().to_string(),
                reason: "the harness's job is not running".into(),
            }),
        }
    }

    /// Live metrics of the running job.
    pub fn metrics(&self) -> Option<&JobMetrics> {
        self.handle.as_ref().map(|h| h.metrics())
    }

    /// The outcomes of the runs that ended by a crash or failure, oldest first.
    pub fn ended_runs(&self) -> &[std::result::Result<JobReport, EngineError>] {
        &self.ended
    }
}

impl Drop for JobHarness {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
            let _ = h.join();
        }
    }
}
