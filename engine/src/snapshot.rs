//! What a checkpoint keeps of one operator instance.

use sluice_state::TableSnapshot;

/// The snapshot of one operator instance: its keyed tables and any operator-local bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorSnapshot {
    /// Keyed tables of the operator.
    pub tables: Vec<TableSnapshot>,
    /// Operator-specific encoded state (timers, buffers).
    pub local: Vec<u8>,
}
