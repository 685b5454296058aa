use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_engine::{EngineError, Result};

/// Encodes operator-local state (timers, buffers) for a snapshot.
pub(crate) fn encode<T: Serialize>(operator: &str, value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| EngineError::user(format!("cannot encode local state of '{operator}': {e}")))
}

/// Decodes operator-local state written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(operator: &str, bytes: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| EngineError::user(format!("cannot decode local state of '{operator}': {e}")))
}
