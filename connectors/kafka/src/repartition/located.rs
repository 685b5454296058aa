//! Records that know where they were read.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_engine::PartitionId;

use crate::format::RecordDeserializer;

/// A value with the source partition and offset of the record it came from
/// ([`KafkaSource::located`](crate::KafkaSource::located)). Stateless operators between the
/// source and a [`Repartition`](super::Repartition) keep the location with
/// [`Located::map`] and friends, so that every re-keyed record gets an id that is the same
/// each time its input is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located<T> {
    /// The source's partition id.
    pub partition: PartitionId,
    /// The record's offset in that partition.
    pub offset: u64,
    /// The decoded value.
    pub value: T,
}

impl<T> Located<T> {
    /// The same location with `f(value)`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Located<U> {
        Located {
            partition: self.partition,
            offset: self.offset,
            value: f(self.value),
        }
    }
}

/// Decodes with the source's format and adds the record's location.
pub(crate) struct LocatedFormat<T>(pub(crate) Arc<dyn RecordDeserializer<T>>);

impl<T: 'static> RecordDeserializer<Located<T>> for LocatedFormat<T> {
    fn deserialize(&self, _key: Option<&[u8]>, _payload: Option<&[u8]>) -> Result<Located<T>, String> {
        Err("a located record needs its partition and offset".to_string())
    }

    fn deserialize_at(
        &self,
        partition: PartitionId,
        offset: u64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<Located<T>, String> {
        let value = self.0.deserialize_at(partition, offset, key, payload)?;
        Ok(Located {
            partition,
            offset,
            value,
        })
    }
}
