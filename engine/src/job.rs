use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_state::StateBackend;
use sluice_state::checkpoint::RestorePoint;

use crate::build_state::{BuildState, Mode};
use crate::builder::JobBuilder;
use crate::checkpoint::StateBackendConfig;
use crate::checkpoint::coordinator::Coordinator;
use crate::checkpoint::restore;
use crate::checkpoint::worker_part::{WorkerPart, WorkerSnapshots};
use crate::config::JobConfig;
use crate::error::{EngineError, Result, panic_message};
use crate::exchange::RunRegistry;
use crate::graph::{JobGraph, OperatorKind};
use crate::metrics::JobMetrics;
use crate::observer::{JobObserver, Observed};
use crate::status::{GraphView, JobLife, JobState};
use crate::worker::{LoopSettings, LoopTime, RunFlags, WorkerExit, run_worker};

type BuildFn = dyn Fn(&mut JobBuilder) -> Result<()> + Send + Sync;

/// A validated job: its settings, its graph, and the function that builds it on each worker.
///
/// See [`JobBuilder`] for an example.
#[derive(Clone)]
pub struct Job {
    config: Arc<JobConfig>,
    build: Arc<BuildFn>,
    graph: JobGraph,
}

/// What a finished job run reports.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// Counters and gauges of the run (summed over attempts).
    pub metrics: JobMetrics,
    /// Number of attempts (1 when nothing failed).
    pub attempts: u32,
    /// Whether the job was stopped on request rather than running out of input.
    pub stopped: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Job {
    /// Validates `build` against `config` by building the graph once without running it.
    ///
    /// # Errors
    /// Invalid settings, duplicate or invalid operator names, dangling streams, a job without
    /// source or sink, or whatever `build` returns; each names the operator at fault.
    pub fn new(
        config: JobConfig,
        build: impl Fn(&mut JobBuilder) -> Result<()> + Send + Sync + 'static,
    ) -> Result<Job> {
        config.validate()?;
        let config = Arc::new(config);
        let build: Arc<BuildFn> = Arc::new(build);
        let state = BuildState::new(
            Mode::Plan,
            Arc::clone(&config),
            0,
            Arc::default(),
            JobMetrics::default(),
        );
        let mut builder = JobBuilder::new(state);
        build(&mut builder)?;
        let mut st = builder.state.borrow_mut();
        st.validate().map_err(|e| with_job(e, &config.name))?;
        let graph = st.graph.clone();
        drop(st);
        Ok(Job { config, build, graph })
    }

    /// The validated graph.
    pub fn graph(&self) -> &JobGraph {
        &self.graph
    }

    /// The job's settings.
    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    /// Runs the job to the end of its input (or its failure) on the calling thread's behalf.
    ///
    /// # Errors
    /// The first error of the last attempt, naming the operator that failed.
    pub fn run(&self) -> Result<JobReport> {
        self.start()?.join()
    }

    /// Starts the job in the background.
    ///
    /// # Errors
    /// When the supervisor thread cannot be spawned.
    pub fn start(&self) -> Result<JobHandle> {
        let metrics = JobMetrics::default();
        let coordinator = match &self.config.checkpoints {
            Some(c) => Some(Arc::new(
                Coordinator::new(
                    c.clone(),
                    &self.config.name,
                    self.graph.clone(),
                    self.config.workers,
                    self.config.max_key_groups,
                    self.config.state_backend.kind_name(),
                    &metrics,
                )
                .map_err(|e| with_job(e, &self.config.name))?,
            )),
            None => None,
        };
        let control = Arc::new(Control::default());
        let life = Arc::new(JobLife::new());
        let observer = JobObserver::new(Observed {
            name: self.config.name.clone(),
            workers: self.config.workers,
            graph: GraphView::new(&self.graph, self.config.workers),
            metrics: metrics.clone(),
            life: Arc::clone(&life),
            coordinator: coordinator.clone(),
            stop: Box::new({
                let control = Arc::clone(&control);
                move || control.stop()
            }),
        });
        #[cfg(feature = "console")]
        let console = match &self.config.console {
            Some(config) => Some(crate::console::Console::serve(observer.clone(), config)?),
            None => None,
        };
        let job = self.clone();
        let (m, c, coord) = (metrics.clone(), Arc::clone(&control), coordinator.clone());
        let supervisor = std::thread::Builder::new()
            .name(format!("sluice-{}", self.config.name))
            .spawn(move || {
                let result = job.supervise(&m, &c, coord.as_ref(), &life);
                life.set(match &result {
                    Ok(report) if report.stopped => JobState::Stopped,
                    Ok(_) => JobState::Finished,
                    Err(e) => JobState::Failed { error: e.to_string() },
                });
                result
            })
            .map_err(|e| EngineError::InvalidJob {
                job: self.config.name.clone(),
                reason: format!("cannot spawn supervisor thread: {e}"),
            })?;
        Ok(JobHandle {
            supervisor: Some(supervisor),
            control,
            metrics,
            coordinator,
            observer,
            #[cfg(feature = "console")]
            console,
        })
    }

    fn supervise(
        &self,
        metrics: &JobMetrics,
        control: &Arc<Control>,
        coordinator: Option<&Arc<Coordinator>>,
        life: &JobLife,
    ) -> Result<JobReport> {
        let started = Instant::now();
        let mut attempt = 1u32;
        loop {
            match self
                .attempt(metrics, control, coordinator)
                .map_err(|e| with_job(e, &self.config.name))
            {
                Ok(exit) => {
                    return Ok(JobReport {
                        metrics: metrics.clone(),
                        attempts: attempt,
                        stopped: exit != WorkerExit::Finished,
                        elapsed: started.elapsed(),
                    });
                }
                Err(e) => {
                    let stopping = control.flags().stop.load(Ordering::Relaxed);
                    let delay = self.config.restart.delay_before(attempt);
                    match delay {
                        Some(delay) if e.is_restartable() && !stopping => {
                            tracing::warn!(job = %self.config.name, attempt, error = %e, ?delay, "restarting job");
                            life.set(JobState::Restarting { error: e.to_string() });
                            std::thread::sleep(delay);
                            life.set(JobState::Running);
                            attempt += 1;
                        }
                        // A failure no restart can mend is the job's error as it is.
                        _ if attempt > 1 && e.is_restartable() => {
                            return Err(EngineError::RestartsExhausted {
                                attempts: attempt,
                                last: Box::new(e),
                            });
                        }
                        _ => return Err(e),
                    }
                }
            }
        }
    }

    fn attempt(
        &self,
        metrics: &JobMetrics,
        control: &Arc<Control>,
        coordinator: Option<&Arc<Coordinator>>,
    ) -> Result<WorkerExit> {
        let restore = match coordinator {
            Some(c) => {
                c.new_attempt();
                match c.restore_point()? {
                    Some(point) => {
                        restore::check_compatible(
                            &self.config.name,
                            self.config.max_key_groups,
                            self.config.state_backend.kind_name(),
                            &self.graph,
                            &point,
                        )?;
                        let snapshots = restore::read_snapshots(&self.config.name, &point)?;
                        Some(Arc::new((point, snapshots)))
                    }
                    None => None,
                }
            }
            None => None,
        };
        let flags = control.new_attempt();
        let sources = self
            .graph
            .operators
            .iter()
            .filter(|op| op.kind == OperatorKind::Source)
            .count();
        let registry = Arc::new(RunRegistry::new(sources, self.config.workers));
        control.set_run(Arc::clone(&registry.activity));
        let failure: Arc<Mutex<Option<EngineError>>> = Arc::default();
        let mut handles: Vec<JoinHandle<Result<WorkerExit>>> = Vec::new();
        for worker in 0..self.config.workers {
            let (job, worker_flags, registry, metrics, worker_failure) = (
                self.clone(),
                Arc::clone(&flags),
                Arc::clone(&registry),
                metrics.clone(),
                Arc::clone(&failure),
            );
            let (coordinator, restore) = (coordinator.cloned(), restore.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("sluice-worker-{worker}"))
                .spawn(move || {
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        job.run_worker(worker, &worker_flags, registry, metrics, coordinator, restore)
                    }))
                    .unwrap_or_else(|payload| {
                        Err(EngineError::WorkerPanicked {
                            worker,
                            message: panic_message(payload.as_ref()),
                        })
                    });
                    match result {
                        Err(EngineError::Aborted) => {
                            worker_flags.failed.store(true, Ordering::Relaxed);
                            Err(EngineError::Aborted)
                        }
                        Err(e) => {
                            // The first real failure is the job's; the others only follow it.
                            worker_failure
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                            worker_flags.failed.store(true, Ordering::Relaxed);
                            Err(EngineError::Aborted)
                        }
                        ok => ok,
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    flags.failed.store(true, Ordering::Relaxed);
                    failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(
                        EngineError::InvalidJob {
                            job: self.config.name.clone(),
                            reason: format!("cannot spawn worker thread: {e}"),
                        },
                    );
                    break;
                }
            }
        }
        let _ = registry
            .threads
            .set(handles.iter().map(|h| h.thread().clone()).collect());
        // Checkpoint timeouts are also enforced from here, in case every worker is stuck.
        while handles.iter().any(|h| !h.is_finished()) {
            if let Some(c) = coordinator {
                c.enforce_timeout();
            }
            std::thread::sleep(self.config.tick_interval);
        }
        let mut exit = WorkerExit::Finished;
        let mut aborted = false;
        for h in handles {
            match h.join() {
                Ok(Ok(WorkerExit::Finished)) => {}
                Ok(Ok(other)) => exit = other,
                Ok(Err(_)) => aborted = true,
                Err(payload) => {
                    aborted = true;
                    failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(
                        EngineError::WorkerPanicked {
                            worker: usize::MAX,
                            message: panic_message(payload.as_ref()),
                        },
                    );
                }
            }
        }
        if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        if exit != WorkerExit::Aborted {
            if let Some(c) = coordinator {
                c.run_ended();
            }
        }
        if aborted && exit == WorkerExit::Finished {
            return Err(EngineError::Aborted);
        }
        Ok(exit)
    }

    fn run_worker(
        &self,
        worker: usize,
        flags: &Arc<RunFlags>,
        registry: Arc<RunRegistry>,
        metrics: JobMetrics,
        coordinator: Option<Arc<Coordinator>>,
        restore: Option<Arc<RestoreData>>,
    ) -> Result<WorkerExit> {
        let time = LoopTime::new(&metrics, worker);
        let mut state = BuildState::new(Mode::Run, Arc::clone(&self.config), worker, registry, metrics);
        if let StateBackendConfig::RocksDb(rocks) = &self.config.state_backend {
            let range = state.state.key_groups();
            let point = restore.as_deref().map(|(p, _)| p);
            state.state = StateBackend::rocksdb(restore::open_database(rocks, worker, range, point)?);
        }
        let mut builder = JobBuilder::new(state);
        (self.build)(&mut builder)?;
        let mut state = into_build_state(builder)?;
        state.validate().map_err(|e| with_job(e, &self.config.name))?;
        let BuildState {
            mut run,
            state: backend,
            registry,
            ..
        } = state;
        run.drive_downstream_first();
        if let Some((point, snapshots)) = restore.as_deref() {
            restore::restore_worker(
                &self.config.name,
                point,
                snapshots,
                (worker, self.config.workers),
                &run.participants,
                &mut run.inputs,
            )?;
        }
        backend.check_all_tables_claimed()?;
        let part = coordinator.map(|c| WorkerPart::new(c, &self.config.name, worker, backend));
        let settings = LoopSettings {
            worker,
            tick_interval: self.config.tick_interval,
            clock: self.config.clock.clone(),
            activity: Arc::clone(&registry.activity),
            time,
        };
        run_worker(run, flags, &settings, part)
    }
}

fn into_build_state(builder: JobBuilder) -> Result<BuildState> {
    std::rc::Rc::try_unwrap(builder.state)
        .map(|cell| cell.into_inner())
        .map_err(|_| EngineError::InvalidJob {
            job: String::new(),
            reason: "a stream handle escaped the build function".into(),
        })
}

/// A restore point with the operator snapshots of each of its workers.
type RestoreData = (RestorePoint, Vec<WorkerSnapshots>);

fn with_job(e: EngineError, job: &str) -> EngineError {
    match e {
        EngineError::InvalidJob { job: j, reason } if j.is_empty() => EngineError::InvalidJob {
            job: job.to_string(),
            reason,
        },
        EngineError::Checkpoint { job: j, reason } if j.is_empty() => EngineError::Checkpoint {
            job: job.to_string(),
            reason,
        },
        other => other,
    }
}

#[derive(Default)]
struct Control {
    current: Mutex<Arc<RunFlags>>,
    /// Activity of the current attempt's workers.
    activity: Mutex<Option<Arc<crate::activity::Activity>>>,
    stop_requested: std::sync::atomic::AtomicBool,
    abort_requested: std::sync::atomic::AtomicBool,
}

impl Control {
    fn flags(&self) -> Arc<RunFlags> {
        Arc::clone(&self.current.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn new_attempt(&self) -> Arc<RunFlags> {
        let flags = Arc::new(RunFlags::default());
        if self.stop_requested.load(Ordering::Relaxed) {
            flags.stop.store(true, Ordering::Relaxed);
        }
        if self.abort_requested.load(Ordering::Relaxed) {
            flags.abort.store(true, Ordering::Relaxed);
        }
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&flags);
        flags
    }

    fn stop(&self) {
        self.stop_requested.store(true, Ordering::Relaxed);
        self.flags().stop.store(true, Ordering::Relaxed);
    }

    fn abort(&self) {
        self.abort_requested.store(true, Ordering::Relaxed);
        self.flags().abort.store(true, Ordering::Relaxed);
    }

    fn set_run(&self, activity: Arc<crate::activity::Activity>) {
        *self.activity.lock().unwrap_or_else(|p| p.into_inner()) = Some(activity);
    }

    fn activity(&self) -> Option<Arc<crate::activity::Activity>> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A running job.
pub struct JobHandle {
    supervisor: Option<JoinHandle<Result<JobReport>>>,
    control: Arc<Control>,
    metrics: JobMetrics,
    coordinator: Option<Arc<Coordinator>>,
    observer: JobObserver,
    /// Serves the console while the handle lives.
    #[cfg(feature = "console")]
    console: Option<crate::console::Console>,
}

impl JobHandle {
    /// A view of the job for other threads (the console): state, graph, metrics,
    /// checkpoints, savepoint and stop.
    pub fn observer(&self) -> JobObserver {
        self.observer.clone()
    }

    /// The address the job's console listens on, when it serves one
    /// ([`JobConfig::console`](crate::JobConfig::console)).
    #[cfg(feature = "console")]
    pub fn console_addr(&self) -> Option<std::net::SocketAddr> {
        self.console.as_ref().map(crate::console::Console::addr)
    }

    /// The address the job's console listens on: none in a build without the console.
    #[cfg(not(feature = "console"))]
    pub fn console_addr(&self) -> Option<std::net::SocketAddr> {
        None
    }

    /// Live metrics of the run.
    pub fn metrics(&self) -> &JobMetrics {
        &self.metrics
    }

    /// Asks for a checkpoint now and keeps the first one that completes after this call as
    /// savepoint `name` (never deleted by retention; restore it with
    /// [`crate::RestoreFrom::Savepoint`]). Waits up to `timeout`.
    ///
    /// # Errors
    /// When checkpoints are off, no checkpoint completes in time, or the name is taken.
    pub fn savepoint(&self, name: &str, timeout: Duration) -> Result<std::path::PathBuf> {
        self.observer.savepoint(name, timeout)
    }

    /// Id of the newest complete checkpoint in the job's checkpoint directory (this run's or an
    /// earlier run's; 0 when there is none or checkpoints are off).
    pub fn last_checkpoint(&self) -> u64 {
        self.coordinator.as_ref().map_or(0, |c| c.completed())
    }

    /// Asks for a checkpoint now and waits up to `timeout` for it to complete; returns its id.
    ///
    /// # Errors
    /// When checkpoints are off, or no checkpoint completes in time (it was abandoned, the job
    /// failed or crashed).
    pub fn checkpoint(&self, timeout: Duration) -> Result<crate::CheckpointId> {
        match &self.coordinator {
            Some(c) => c.checkpoint_now(timeout).map(crate::CheckpointId),
            None => Err(EngineError::InvalidConfig {
                key: "checkpoints",
                reason: "a checkpoint needs checkpoints to be configured".into(),
            }),
        }
    }

    /// For recovery tests: the next checkpoint that starts makes the job fail with
    /// [`EngineError::SimulatedCrash`] at `step`, as a crash of the process there would
    /// (see [`crate::CheckpointConfig::crash_at`]). Does nothing without checkpoints.
    pub fn crash_at_next_checkpoint(&self, step: crate::CheckpointStep) {
        if let Some(c) = &self.coordinator {
            c.crash_next_at(step);
        }
    }

    /// Asks every worker to stop promptly: sources stop reading, records between operators
    /// are dropped and open windows are not emitted, but every record that reached a sink is
    /// written ([`Sink::finish`](crate::Sink::finish)) before the job reports that it stopped.
    /// With checkpoints, a restart resumes from the last complete one.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Ends the job at once, as if its process died: no sink is flushed, no open window
    /// emitted, a checkpoint in flight stays as far as it got. For recovery tests; a new
    /// [`Job`] on the same state and checkpoint directories recovers.
    pub fn abort(&self) {
        self.control.abort();
    }

    /// Waits up to `timeout` until the job has come to rest: every worker has gone through two
    /// loop turns in which no record was read, processed or sent and no checkpoint was in
    /// flight (or has ended). With finite inputs that are fully read and a manual clock, this
    /// is the point where everything given to the job has gone as far as it can. Returns
    /// whether it came to rest in time.
    pub fn wait_quiet(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(activity) = self.control.activity() {
                return activity.wait_quiet(deadline.saturating_duration_since(Instant::now()));
            }
            if self.is_finished() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // The first attempt has not started its workers yet.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether the job has ended (finished, stopped or failed).
    pub fn is_finished(&self) -> bool {
        self.supervisor.as_ref().is_none_or(|s| s.is_finished())
    }

    /// Waits for the job to end.
    ///
    /// # Errors
    /// The job's failure, naming the operator at fault.
    pub fn join(mut self) -> Result<JobReport> {
        match self.supervisor.take().map(|s| s.join()) {
            Some(Ok(result)) => result,
            Some(Err(payload)) => Err(EngineError::WorkerPanicked {
                worker: usize::MAX,
                message: panic_message(payload.as_ref()),
            }),
            None => Err(EngineError::Aborted),
        }
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if let Some(s) = self.supervisor.take() {
            self.control.stop();
            let _ = s.join();
        }
    }
}
