use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_engine::state::KeyedTable;
use sluice_engine::{EngineError, OperatorSnapshot, Result, TimerQueue};

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

/// The snapshot of an operator made of one keyed table and one timer queue.
pub(crate) fn table_and_timers<K, N, V, TN>(
    operator: &str,
    table: &mut dyn KeyedTable<K, N, V>,
    timers: &TimerQueue<K, TN>,
) -> Result<OperatorSnapshot>
where
    K: Serialize + Hash + Eq,
    TN: Serialize + Hash + Eq,
{
    Ok(OperatorSnapshot {
        tables: vec![table.snapshot(table.key_groups())?],
        local: encode(operator, timers)?,
    })
}

/// Restores what [`table_and_timers`] captured, keeping only the key groups `table` owns.
pub(crate) fn restore_table_and_timers<K, N, V, TN>(
    operator: &str,
    table: &mut dyn KeyedTable<K, N, V>,
    timers: &mut TimerQueue<K, TN>,
    snapshot: &OperatorSnapshot,
) -> Result<()>
where
    K: DeserializeOwned + Hash + Eq + Clone,
    TN: DeserializeOwned + Hash + Eq + Clone,
{
    let owned = table.key_groups();
    for t in &snapshot.tables {
        table.restore(t)?;
    }
    let saved: TimerQueue<K, TN> = decode(operator, &snapshot.local)?;
    timers.absorb(saved, |kg| owned.contains(kg));
    Ok(())
}

/// The snapshot of an operator made of two keyed tables and one timer queue.
pub(crate) fn two_tables_and_timers<K, NA, A, NB, B, TN>(
    operator: &str,
    a: &mut dyn KeyedTable<K, NA, A>,
    b: &mut dyn KeyedTable<K, NB, B>,
    timers: &TimerQueue<K, TN>,
) -> Result<OperatorSnapshot>
where
    K: Serialize + Hash + Eq,
    TN: Serialize + Hash + Eq,
{
    Ok(OperatorSnapshot {
        tables: vec![a.snapshot(a.key_groups())?, b.snapshot(b.key_groups())?],
        local: encode(operator, timers)?,
    })
}

/// Restores what [`two_tables_and_timers`] captured: each table snapshot goes to the table of
/// its name; only the key groups the tables own are kept.
pub(crate) fn restore_two_tables_and_timers<K, NA, A, NB, B, TN>(
    operator: &str,
    a: &mut dyn KeyedTable<K, NA, A>,
    b: &mut dyn KeyedTable<K, NB, B>,
    timers: &mut TimerQueue<K, TN>,
    snapshot: &OperatorSnapshot,
) -> Result<()>
where
    K: DeserializeOwned + Hash + Eq + Clone,
    TN: DeserializeOwned + Hash + Eq + Clone,
{
    let owned = a.key_groups();
    for table in &snapshot.tables {
        if table.operator == a.operator() {
            a.restore(table)?;
        } else if table.operator == b.operator() {
            b.restore(table)?;
        } else {
            return Err(EngineError::user(format!(
                "snapshot of '{operator}' holds table '{}', which it does not have",
                table.operator
            )));
        }
    }
    let saved: TimerQueue<K, TN> = decode(operator, &snapshot.local)?;
    timers.absorb(saved, |kg| owned.contains(kg));
    Ok(())
}
