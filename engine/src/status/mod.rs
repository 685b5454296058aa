//! What a running job shows of itself: its state, where each partition stands, its
//! checkpoints, its sinks, and how busy each operator is. The console serves it.

pub mod checkpoints;
mod graph_view;
pub(crate) mod job_state;
pub mod partitions;
mod sinks;

pub use checkpoints::{CheckpointHistory, CheckpointRecord, CheckpointState, RestoreRecord};
pub use graph_view::{EdgeKind, GraphEdge, GraphOperator, GraphView};
pub(crate) use job_state::JobLife;
pub use job_state::{ErrorRecord, JobState};
pub use partitions::{PartitionBoard, PartitionStatus};
pub use sinks::{LatencyPercentiles, SinkReport, SinkReports, SinkStatus};
