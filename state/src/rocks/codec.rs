//! How keyed state is laid out in RocksDB.
//!
//! Key: the key group as two big-endian bytes (so a key group, and a range of them, is one
//! contiguous key range), then the bincode encodings of the key and the namespace. Value: the
//! bincode encoding of the value. The format version and each table's types are recorded in
//! the database and checked when a table is opened.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StateError};
use crate::key_group::{KeyGroup, KeyGroupRange};

pub(crate) const TABLE_META_PREFIX: &[u8] = b"table/";

/// What the database records about a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableMeta {
    pub format_version: u32,
    pub type_signature: String,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

pub(crate) fn table_meta_key(operator: &str) -> Vec<u8> {
    [TABLE_META_PREFIX, operator.as_bytes()].concat()
}

pub(crate) fn encode_meta(operator: &str, meta: &TableMeta) -> Result<Vec<u8>> {
    encode_value(operator, meta)
}

pub(crate) fn decode_meta(operator: &str, bytes: &[u8]) -> Result<TableMeta> {
    decode_value(operator, bytes)
}

/// Writes the encoded `(key group, key, ns)` into `buf` (cleared first).
pub(crate) fn encode_key<K: Serialize, N: Serialize>(
    operator: &str,
    buf: &mut Vec<u8>,
    key_group: KeyGroup,
    key: &K,
    ns: &N,
) -> Result<()> {
    buf.clear();
    buf.extend_from_slice(&key_group.0.to_be_bytes());
    bincode::serde::encode_into_std_write((key, ns), buf, config()).map_err(|e| StateError::Encode {
        operator: operator.to_string(),
        reason: e.to_string(),
    })?;
    Ok(())
}

/// Splits an encoded key into its key group, key and namespace.
#[cfg(test)]
pub(crate) fn decode_key<K: DeserializeOwned, N: DeserializeOwned>(
    operator: &str,
    bytes: &[u8],
) -> Result<(KeyGroup, K, N)> {
    let bad = |reason: String| StateError::Decode {
        operator: operator.to_string(),
        reason,
    };
    let (group, rest) = bytes
        .split_first_chunk::<2>()
        .ok_or_else(|| bad("a stored key is shorter than its key group".into()))?;
    let ((key, ns), _): ((K, N), usize) =
        bincode::serde::decode_from_slice(rest, config()).map_err(|e| bad(format!("stored key: {e}")))?;
    Ok((KeyGroup(u16::from_be_bytes(*group)), key, ns))
}

pub(crate) fn encode_value<V: Serialize + ?Sized>(operator: &str, value: &V) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| StateError::Encode {
        operator: operator.to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn decode_value<V: DeserializeOwned>(operator: &str, bytes: &[u8]) -> Result<V> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(v, _)| v)
        .map_err(|e| StateError::Decode {
            operator: operator.to_string(),
            reason: format!("stored value: {e}"),
        })
}

/// The key range `[lower, upper)` holding the key groups of `range`.
pub(crate) fn group_bounds(range: KeyGroupRange) -> (Vec<u8>, Vec<u8>) {
    (
        range.start.to_be_bytes().to_vec(),
        range.end.to_be_bytes().to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_key_group() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        encode_key("t", &mut a, KeyGroup(3), &"zzz".to_string(), &7u64).unwrap();
        encode_key("t", &mut b, KeyGroup(4), &"aaa".to_string(), &1u64).unwrap();
        assert!(a < b);
        let (kg, k, n): (KeyGroup, String, u64) = decode_key("t", &a).unwrap();
        assert_eq!((kg, k.as_str(), n), (KeyGroup(3), "zzz", 7));
        let (lo, hi) = group_bounds(KeyGroupRange { start: 3, end: 4 });
        assert!(a >= lo && a < hi && b >= hi);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let err = decode_key::<String, u64>("t", &[0]).unwrap_err();
        assert!(err.to_string().contains("'t'"), "{err}");
        assert!(decode_value::<(u64, u64)>("t", &[0xFF]).is_err());
    }
}
