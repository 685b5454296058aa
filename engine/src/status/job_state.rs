//! Whether a job runs, restarts, failed or ended, and the errors it met on the way.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

/// Errors kept for the console.
const KEPT_ERRORS: usize = 20;

/// Where a job's life stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Its workers are starting or running.
    Running,
    /// An attempt failed; the next starts after the restart delay.
    Restarting {
        /// The failure.
        error: String,
    },
    /// It failed for good.
    Failed {
        /// The failure.
        error: String,
    },
    /// It read all of its input.
    Finished,
    /// It was stopped on request.
    Stopped,
}

/// An error the job met, with when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorRecord {
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    /// The error, naming the operator at fault.
    pub error: String,
}

/// The state, restarts and recent errors of a job, kept by its supervisor.
#[derive(Debug)]
pub(crate) struct JobLife {
    state: Mutex<JobState>,
    restarts: AtomicU32,
    errors: Mutex<VecDeque<ErrorRecord>>,
    /// When the job started, milliseconds since the epoch.
    pub(crate) started_at_ms: i64,
}

impl JobLife {
    pub(crate) fn new() -> Self {
        JobLife {
            state: Mutex::new(JobState::Running),
            restarts: AtomicU32::new(0),
            errors: Mutex::new(VecDeque::new()),
            started_at_ms: crate::time::now_millis(),
        }
    }

    pub(crate) fn set(&self, state: JobState) {
        if let JobState::Restarting { error } | JobState::Failed { error } = &state {
            let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
            if errors.len() == KEPT_ERRORS {
                errors.pop_front();
            }
            errors.push_back(ErrorRecord {
                at_ms: crate::time::now_millis(),
                error: error.clone(),
            });
        }
        if matches!(state, JobState::Restarting { .. }) {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub(crate) fn state(&self) -> JobState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub(crate) fn errors(&self) -> Vec<ErrorRecord> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}
