//! Checkpoints: barriers, the coordinator, restore, and inspection of checkpoint directories.

pub(crate) mod align;
mod config;
pub(crate) mod coordinator;
mod inspect;
#[cfg(feature = "remote-checkpoints")]
mod remote;
pub(crate) mod restore;
#[cfg(feature = "remote-checkpoints")]
mod upload;
pub(crate) mod worker_part;

pub use config::{CheckpointConfig, CheckpointStep, RestoreFrom, StateBackendConfig};
pub use inspect::{CheckpointSummary, create_savepoint, list_checkpoints, show_manifest};
#[cfg(feature = "remote-checkpoints")]
pub use remote::{Head as RemoteHead, RemoteCheckpoints, RemoteError};
