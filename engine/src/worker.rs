use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::activity::Activity;
use crate::checkpoint::worker_part::WorkerPart;
use crate::clock::Clock;
use crate::error::{EngineError, Result};
use crate::metrics::{Counter, JobMetrics};
use crate::runtime::Drive;
use crate::worker_graph::WorkerGraph;

/// Flags shared by the workers of one attempt.
#[derive(Default)]
pub(crate) struct RunFlags {
    /// Stop promptly, flushing the sinks.
    pub stop: AtomicBool,
    /// Stop at once, flushing nothing (as a crash would).
    pub abort: AtomicBool,
    pub failed: AtomicBool,
}

/// How a worker's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerExit {
    Finished,
    Stopped,
    Aborted,
}

/// What a worker loop needs besides its graph.
pub(crate) struct LoopSettings {
    pub worker: usize,
    pub tick_interval: Duration,
    pub clock: Clock,
    pub activity: Arc<Activity>,
    pub time: LoopTime,
}

/// Where a worker's time goes, in nanoseconds: turns that moved something, turns in which an
/// exchange it feeds was full (backpressure), and turns with nothing to do.
pub(crate) struct LoopTime {
    pub busy: Arc<Counter>,
    pub backpressured: Arc<Counter>,
    pub idle: Arc<Counter>,
}

/// Name under which the workers' loop time is reported.
pub(crate) const WORKER_SCOPE: &str = "workers";

impl LoopTime {
    pub(crate) fn new(metrics: &JobMetrics, worker: usize) -> Self {
        LoopTime {
            busy: metrics.counter(WORKER_SCOPE, "busy_ns", worker),
            backpressured: metrics.counter(WORKER_SCOPE, "backpressured_ns", worker),
            idle: metrics.counter(WORKER_SCOPE, "idle_ns", worker),
        }
    }

    fn add(&self, since: Instant, now: Instant, blocked: bool, worked: bool) {
        let ns = u64::try_from(now.duration_since(since).as_nanos()).unwrap_or(u64::MAX);
        match (blocked, worked) {
            (true, _) => &self.backpressured,
            (false, true) => &self.busy,
            (false, false) => &self.idle,
        }
        .add(ns);
    }
}

/// Runs one worker's graph until all its inputs end, the job is stopped, or something fails.
///
/// Inputs are driven downstream first. An input is only driven while no exchange it may feed
/// is over capacity, so a slow consumer pauses its producers instead of growing queues, and
/// the most downstream blocked exchange can always drain.
///
/// With checkpoints on, `part` runs this worker's side of the protocol: while a checkpoint is
/// in flight the sources are not polled and timers do not fire, so nothing changes state
/// between an operator's snapshot and the worker's database checkpoint.
pub(crate) fn run_worker(
    mut st: WorkerGraph,
    flags: &Arc<RunFlags>,
    settings: &LoopSettings,
    mut part: Option<WorkerPart>,
) -> Result<WorkerExit> {
    let result = worker_loop(&mut st, flags, settings, &mut part);
    settings.activity.exited(settings.worker);
    if matches!(result, Ok(WorkerExit::Stopped)) {
        // What reached a sink is written before the job reports that it stopped.
        for p in &st.participants {
            p.borrow_mut().flush_on_stop()?;
        }
    }
    result
}

fn worker_loop(
    st: &mut WorkerGraph,
    flags: &Arc<RunFlags>,
    settings: &LoopSettings,
    part: &mut Option<WorkerPart>,
) -> Result<WorkerExit> {
    let tick_interval = settings.tick_interval;
    let clock = &settings.clock;
    let mut last_housekeeping = Instant::now();
    let mut last_tick_at = clock.now();
    let mut idle_spins = 0u32;
    let mut paused = false;
    let mut turn_started = Instant::now();
    loop {
        if flags.abort.load(Ordering::Relaxed) {
            return Ok(WorkerExit::Aborted);
        }
        if flags.stop.load(Ordering::Relaxed) {
            return Ok(WorkerExit::Stopped);
        }
        if flags.failed.load(Ordering::Relaxed) {
            return Err(EngineError::Aborted);
        }
        let max_blocked = st
            .senders
            .iter()
            .filter(|(_, s)| s.borrow().is_blocked())
            .map(|(id, _)| *id)
            .max();
        // While checkpoint `aligning` is in flight, sources stay paused and an input that
        // passed its barrier delivers nothing more: nothing may change state between an
        // operator's snapshot and the worker's database checkpoint.
        let mut aligning = None;
        if let Some(part) = part.as_mut() {
            paused = part.step(&mut st.inputs, &st.participants)?;
            aligning = paused.then(|| part.in_flight());
        }
        let mut worked = false;
        let mut all_finished = true;
        for (level, input) in st.inputs.iter_mut() {
            if input.is_finished() {
                continue;
            }
            let aligned = aligning.is_some_and(|id| input.passed_barrier().is_some_and(|b| b >= id));
            if max_blocked.is_some_and(|m| m >= *level) || (paused && *level == 0) || aligned {
                all_finished = false;
                continue;
            }
            match input.drive()? {
                Drive::Worked => {
                    worked = true;
                    all_finished = false;
                }
                Drive::Waiting => all_finished = false,
                Drive::Finished => worked = true,
            }
        }
        let mut drained = true;
        for (_, sender) in &st.senders {
            let mut s = sender.borrow_mut();
            worked |= s.flush()?;
            drained &= s.is_drained();
        }
        let housekeeping = last_housekeeping.elapsed() >= tick_interval;
        if housekeeping {
            last_housekeeping = Instant::now();
            if let Some(part) = part.as_ref() {
                part.poll_coordinator()?;
                if paused {
                    part.keep_sources_alive(&mut st.inputs)?;
                }
            }
        }
        // Processing time moves with the clock: every tick interval on the system clock, and
        // whenever a manual clock was moved.
        let now = clock.now();
        let tick = if clock.is_manual() {
            now > last_tick_at
        } else {
            housekeeping
        };
        if tick {
            last_tick_at = now;
            if paused {
                // No timers fire while a checkpoint is in flight.
                for (_, input) in st.inputs.iter_mut() {
                    input.tick_paused(now);
                }
            } else {
                for (_, input) in st.inputs.iter_mut() {
                    input.tick(now)?;
                }
                for t in &st.tickers {
                    t.borrow_mut().tick(now)?;
                }
            }
        }
        settings
            .activity
            .turn(settings.worker, !worked && drained && !paused);
        if all_finished && drained && st.inputs.iter().all(|(_, i)| i.is_finished()) {
            // With checkpoints, a finished worker still answers barriers (with its final state
            // and end positions) until every worker has finished.
            if part.as_mut().is_none_or(|part| part.finish()) {
                return Ok(WorkerExit::Finished);
            }
        }
        if worked {
            idle_spins = 0;
        } else {
            // Back off gently: senders unpark this thread when they hand it data.
            idle_spins = idle_spins.saturating_add(1);
            let wait = if idle_spins < 8 {
                Duration::from_micros(50)
            } else {
                Duration::from_millis(1)
            };
            std::thread::park_timeout(wait.min(tick_interval));
        }
        let now = Instant::now();
        settings
            .time
            .add(turn_started, now, max_blocked.is_some(), worked);
        turn_started = now;
    }
}
