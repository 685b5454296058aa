use serde::{Deserialize, Serialize};

use crate::error::{Result, StateError};
use crate::key_group::KeyGroupRange;

/// Version of the encoding of keyed state. A snapshot with another version is refused.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// The encoded contents of one operator's table for a range of key groups.
///
/// Each key group is encoded on its own, so a restore with a different number of workers
/// decodes only the groups it now owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// State format version that wrote this snapshot.
    pub format_version: u32,
    /// Operator (table) name.
    pub operator: String,
    /// Type names of key, namespace and value, checked on restore.
    pub type_signature: String,
    /// Key groups covered.
    pub range: KeyGroupRange,
    /// `(key group, bincode-encoded entries)` for each non-empty key group.
    pub groups: Vec<(u16, Vec<u8>)>,
    /// The entries are not in `groups` but in the backend's own checkpoint (RocksDB).
    pub in_backend: bool,
}

impl TableSnapshot {
    /// Checks that this snapshot can be read into the table `operator` with `type_signature`.
    pub fn check_compatible(&self, operator: &str, type_signature: &str) -> Result<()> {
        if self.operator != operator {
            return Err(StateError::WrongOperator {
                expected: operator.to_string(),
                found: self.operator.clone(),
            });
        }
        if self.format_version != STATE_FORMAT_VERSION || self.type_signature != type_signature {
            return Err(StateError::IncompatibleFormat {
                operator: operator.to_string(),
                expected: STATE_FORMAT_VERSION,
                found: self.format_version,
                detail: format!(
                    "snapshot has {}, table has {}",
                    self.type_signature, type_signature
                ),
            });
        }
        Ok(())
    }

    /// Encoded size in bytes of the entries.
    pub fn byte_len(&self) -> usize {
        self.groups.iter().map(|(_, b)| b.len()).sum()
    }
}
