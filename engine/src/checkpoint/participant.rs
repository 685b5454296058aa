use crate::error::Result;
use crate::ids::CheckpointId;
use crate::operator::OperatorSnapshot;
use crate::source::SourcePosition;
use crate::time::Watermark;

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
}

/// A source reader as checkpoints see it.
pub(crate) trait SourceControl {
    /// The source's name.
    fn name(&self) -> &str;

    /// Whether every partition of this reader has ended.
    fn is_finished(&self) -> bool;

    /// Emits barrier `id` after everything read so far; returns the position it stands for.
    fn inject_barrier(&mut self, id: CheckpointId) -> Result<SourcePosition>;

    /// The reader's watermark.
    fn watermark(&self) -> Watermark;

    /// Continues from a restored position.
    fn seek(&mut self, position: &SourcePosition) -> Result<()>;

    /// Keeps connections and memberships alive while paused for a checkpoint.
    fn keep_alive(&mut self) -> Result<()>;

    /// The checkpoint that recorded `position` is complete (e.g. commit offsets to Kafka).
    fn checkpoint_complete(&mut self, position: &SourcePosition) -> Result<()>;
}
