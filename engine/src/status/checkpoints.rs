//! The checkpoints of a job as its console shows them: the recent ones, the latest restore.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Checkpoints kept in the history.
const KEPT: usize = 50;

/// How a checkpoint ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointState {
    /// Barriers are travelling or workers are writing their parts.
    InProgress,
    /// Its manifest is written: a restart can resume from it.
    Completed,
    /// Given up (timed out, the attempt ended, writing failed); see the reason.
    Abandoned,
}

/// One checkpoint of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointRecord {
    /// Its id.
    pub id: u64,
    /// When it was triggered, milliseconds since the epoch.
    pub triggered_at_ms: i64,
    /// Milliseconds from the trigger until every worker had acknowledged its part (barriers
    /// aligned, state written).
    pub acknowledged_ms: Option<u64>,
    /// Milliseconds from the trigger until it completed or was abandoned.
    pub duration_ms: Option<u64>,
    /// Bytes of the completed checkpoint.
    pub bytes: Option<u64>,
    /// Where it stands.
    pub state: CheckpointState,
    /// Why it was abandoned.
    pub reason: Option<String>,
    /// Savepoints copied from it.
    pub savepoints: Vec<String>,
}

/// The checkpoint a run restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreRecord {
    /// The checkpoint's id.
    pub checkpoint_id: u64,
    /// The directory it was read from.
    pub dir: String,
    /// When the run restored it, milliseconds since the epoch.
    pub at_ms: i64,
}

/// Recent checkpoints and the latest restore of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckpointHistory {
    /// Newest last; at most the last 50.
    pub checkpoints: Vec<CheckpointRecord>,
    /// The latest restore, if a run restored one.
    pub latest_restore: Option<RestoreRecord>,
}

/// Records checkpoints as the coordinator runs them.
#[derive(Debug, Default)]
pub(crate) struct CheckpointLog {
    records: Mutex<VecDeque<CheckpointRecord>>,
    restore: Mutex<Option<RestoreRecord>>,
}

impl CheckpointLog {
    pub(crate) fn started(&self, id: u64, at_ms: i64) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() == KEPT {
            records.pop_front();
        }
        records.push_back(CheckpointRecord {
            id,
            triggered_at_ms: at_ms,
            acknowledged_ms: None,
            duration_ms: None,
            bytes: None,
            state: CheckpointState::InProgress,
            reason: None,
            savepoints: Vec::new(),
        });
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut CheckpointRecord)) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = records.iter_mut().rev().find(|r| r.id == id) {
            change(r);
        }
    }

    pub(crate) fn acknowledged(&self, id: u64, ms: u64) {
        self.update(id, |r| r.acknowledged_ms = Some(ms));
    }

    pub(crate) fn completed(&self, id: u64, ms: u64, bytes: u64) {
        self.update(id, |r| {
            r.duration_ms = Some(ms);
            r.bytes = Some(bytes);
            r.state = CheckpointState::Completed;
        });
    }

    pub(crate) fn abandoned(&self, id: u64, ms: u64, reason: &str) {
        self.update(id, |r| {
            r.duration_ms = Some(ms);
            r.state = CheckpointState::Abandoned;
            r.reason = Some(reason.to_string());
        });
    }

    pub(crate) fn savepoint(&self, id: u64, name: &str) {
        self.update(id, |r| r.savepoints.push(name.to_string()));
    }

    pub(crate) fn restored(&self, record: RestoreRecord) {
        *self.restore.lock().unwrap_or_else(|p| p.into_inner()) = Some(record);
    }

    pub(crate) fn history(&self) -> CheckpointHistory {
        CheckpointHistory {
            checkpoints: self
                .records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
            latest_restore: self.restore.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_fifty_with_how_each_ended() {
        let log = CheckpointLog::default();
        for id in 1..=60 {
            log.started(id, id as i64 * 1000);
        }
        log.acknowledged(60, 12);
        log.completed(60, 15, 4096);
        log.savepoint(60, "before-upgrade");
        log.abandoned(59, 30_000, "it timed out");
        let h = log.history();
        assert_eq!(h.checkpoints.len(), 50);
        assert_eq!(h.checkpoints[0].id, 11);
        let last = &h.checkpoints[49];
        assert_eq!(
            (last.state, last.acknowledged_ms, last.duration_ms, last.bytes),
            (CheckpointState::Completed, Some(12), Some(15), Some(4096))
        );
        assert_eq!(last.savepoints, vec!["before-upgrade".to_string()]);
        assert_eq!(h.checkpoints[48].state, CheckpointState::Abandoned);
        assert_eq!(h.checkpoints[48].reason.as_deref(), Some("it timed out"));
        assert_eq!(h.checkpoints[47].state, CheckpointState::InProgress);
    }
}
