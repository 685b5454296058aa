use std::collections::BTreeMap;

use crate::error::Result;
use crate::ids::{CheckpointId, PartitionId};
use crate::snapshot::OperatorSnapshot;
use crate::source::SourcePosition;
use crate::time::Timestamp;
use crate::time::Watermark;

/// Per partition, the largest event timestamp a source read.
pub(crate) type EventTime = BTreeMap<PartitionId, Timestamp>;

/// An operator or sink of one worker as checkpoints see it.
pub(crate) trait Participant {
    /// The operator's name.
    fn name(&self) -> &str;

    /// Whether barrier `id` has passed this operator (or its input has ended, so none will).
    fn reached(&self, id: CheckpointId) -> bool;

    /// The snapshot taken when barrier `id` passed, or one taken now if the input ended
    /// before it. `None` for operators without state (sinks).
    fn take_snapshot(&mut self, id: CheckpointId) -> Result<Option<OperatorSnapshot>>;

    /// Loads the snapshots of this operator from every worker of the run that wrote them.
    fn restore(&mut self, snapshots: &[&OperatorSnapshot]) -> Result<()>;

    /// The input watermark when barrier `id` passed (now, if the input ended before it);
    /// `None` for sinks.
    fn input_watermark(&self, _id: CheckpointId) -> Option<Watermark> {
        None
    }

    /// Takes up the input watermark a restored checkpoint recorded.
    fn restore_watermark(&mut self, _wm: Watermark) -> Result<()> {
        Ok(())
    }

    /// The job is stopping: write out what was handed over so far (sinks).
    fn flush_on_stop(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A source reader as checkpoints see it.
pub(crate) trait SourceControl {
    /// The source's name.
    fn name(&self) -> &str;

    /// Whether every partition of this reader has ended.
    fn is_finished(&self) -> bool;

    /// Emits barrier `id` after everything read so far; returns the position it stands for
    /// and, per partition, the largest event timestamp read up to it.
    fn inject_barrier(&mut self, id: CheckpointId) -> Result<(SourcePosition, EventTime)>;

    /// Takes up the event time per partition that a restored checkpoint recorded.
    fn restore_event_time(&mut self, event_time: &EventTime);

    /// The reader's watermark.
    fn watermark(&self) -> Watermark;

    /// Continues from a restored position.
    fn seek(&mut self, position: &SourcePosition) -> Result<()>;

    /// Keeps connections and memberships alive while paused for a checkpoint.
    fn keep_alive(&mut self) -> Result<()>;

    /// The checkpoint that recorded `position` is complete (e.g. commit offsets to Kafka).
    fn checkpoint_complete(&mut self, position: &SourcePosition) -> Result<()>;
}
