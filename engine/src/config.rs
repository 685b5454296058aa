use std::time::Duration;

use sluice_state::DEFAULT_MAX_KEY_GROUPS;

use crate::checkpoint::{CheckpointConfig, StateBackendConfig};
use crate::clock::Clock;
use crate::console_config::ConsoleConfig;
use crate::error::{EngineError, Result};

/// What the engine does when an attempt of a job fails.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RestartStrategy {
    /// Fail at the first error.
    #[default]
    Never,
    /// Restart up to `attempts` times, waiting `initial_backoff` before the first restart and
    /// doubling the wait each time up to `max_backoff`.
    Backoff {
        /// Restarts allowed after the first attempt.
        attempts: u32,
        /// Wait before the first restart.
        initial_backoff: Duration,
        /// Longest wait between restarts.
        max_backoff: Duration,
    },
}

impl RestartStrategy {
    /// Restart up to `attempts` times with exponential backoff starting at `initial_backoff`
    /// and capped at 30 s.
    pub fn backoff(attempts: u32, initial_backoff: Duration) -> Self {
        RestartStrategy::Backoff {
            attempts,
            initial_backoff,
            max_backoff: Duration::from_secs(30),
        }
    }

    /// The wait before restart number `restart` (1-based), or `None` when no restart is left.
    pub fn delay_before(&self, restart: u32) -> Option<Duration> {
        match self {
            RestartStrategy::Never => None,
            RestartStrategy::Backoff {
                attempts,
                initial_backoff,
                max_backoff,
            } => (restart <= *attempts).then(|| {
                let factor = 2u32.saturating_pow(restart.saturating_sub(1));
                initial_backoff.saturating_mul(factor).min(*max_backoff)
            }),
        }
    }
}

/// Settings of a job run.
///
/// ```
/// use sluice_engine::JobConfig;
/// let config = JobConfig::new("revenue").workers(2);
/// assert_eq!(config.worker_count(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub(crate) name: String,
    pub(crate) workers: usize,
    pub(crate) max_key_groups: u16,
    pub(crate) batch_size: usize,
    pub(crate) channel_capacity: usize,
    pub(crate) tick_interval: Duration,
    pub(crate) restart: RestartStrategy,
    pub(crate) state_backend: StateBackendConfig,
    pub(crate) checkpoints: Option<CheckpointConfig>,
    pub(crate) clock: Clock,
    pub(crate) console: Option<ConsoleConfig>,
}

impl JobConfig {
    /// Defaults: one worker per available core, 128 key groups, 512-record exchange batches,
    /// 16 batches per channel, a 20 ms processing-time tick, no restarts.
    pub fn new(name: impl Into<String>) -> Self {
        JobConfig {
            name: name.into(),
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            max_key_groups: DEFAULT_MAX_KEY_GROUPS,
            batch_size: 512,
            channel_capacity: 16,
            tick_interval: Duration::from_millis(20),
            restart: RestartStrategy::Never,
            state_backend: StateBackendConfig::Memory,
            checkpoints: None,
            clock: Clock::System,
            console: None,
        }
    }

    /// Number of worker threads.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Maximum number of key groups (the most workers the job's state can be spread over).
    pub fn max_key_groups(mut self, max_key_groups: u16) -> Self {
        self.max_key_groups = max_key_groups;
        self
    }

    /// Records per exchange batch.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Batches an exchange channel holds before its senders pause their inputs.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity;
        self
    }

    /// Interval of processing-time timers and idleness checks.
    pub fn tick_interval(mut self, interval: Duration) -> Self {
        self.tick_interval = interval;
        self
    }

    /// What to do when an attempt fails.
    pub fn restart_strategy(mut self, restart: RestartStrategy) -> Self {
        self.restart = restart;
        self
    }

    /// Where operators keep keyed state (in memory by default).
    pub fn state_backend(mut self, backend: StateBackendConfig) -> Self {
        self.state_backend = backend;
        self
    }

    /// Takes checkpoints as `checkpoints` says; without this, a restart replays from the
    /// sources' configured start.
    pub fn checkpoints(mut self, checkpoints: CheckpointConfig) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Where processing time comes from (the system clock by default; tests use
    /// [`Clock::manual`] to move processing-time timers and idleness by hand).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Serves a web console and REST API while the job runs (needs the `console` feature).
    pub fn console(mut self, console: ConsoleConfig) -> Self {
        self.console = Some(console);
        self
    }

    /// The console settings, if the job serves one.
    pub fn console_config(&self) -> Option<&ConsoleConfig> {
        self.console.as_ref()
    }

    /// The job's processing-time clock.
    pub fn clock_source(&self) -> &Clock {
        &self.clock
    }

    /// The checkpoint settings, if checkpoints are on.
    pub fn checkpoint_config(&self) -> Option<&CheckpointConfig> {
        self.checkpoints.as_ref()
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of worker threads.
    pub fn worker_count(&self) -> usize {
        self.workers
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`EngineError::InvalidConfig`] naming the offending setting.
    pub fn validate(&self) -> Result<()> {
        let invalid = |key, reason: String| Err(EngineError::InvalidConfig { key, reason });
        if self.workers == 0 {
            return invalid("workers", "must be at least 1".into());
        }
        if self.max_key_groups == 0 {
            return invalid("max_key_groups", "must be at least 1".into());
        }
        if self.workers > usize::from(self.max_key_groups) {
            return invalid(
                "workers",
                format!(
                    "{} workers exceed max_key_groups = {}",
                    self.workers, self.max_key_groups
                ),
            );
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "must be at least 1".into());
        }
        if self.channel_capacity == 0 {
            return invalid("channel_capacity", "must be at least 1".into());
        }
        if self.tick_interval.is_zero() {
            return invalid("tick_interval", "must be positive".into());
        }
        if self.console.is_some() && !cfg!(feature = "console") {
            return invalid(
                "console",
                "this build of sluice-engine has no console (enable its `console` feature)".into(),
            );
        }
        if let Some(c) = &self.checkpoints {
            if c.interval.is_zero() {
                return invalid("checkpoints.interval", "must be positive".into());
            }
            if c.retain == 0 {
                return invalid("checkpoints.retain", "must keep at least 1 checkpoint".into());
            }
        }
        Ok(())
    }
}
