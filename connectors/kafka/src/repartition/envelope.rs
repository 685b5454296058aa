//! What a repartition topic's records hold: a re-keyed record with its id, or a writer's
//! word on an upstream partition's event time.

use serde::{Deserialize, Serialize};

/// One record of a repartition topic (bincode payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Envelope<T> {
    /// A re-keyed record. Its id, `(upstream, offset, index)`, is the upstream partition and
    /// offset of the input record that caused it and its place among that input's outputs:
    /// the same each time the upstream partition is read again.
    Record {
        upstream: u32,
        offset: u64,
        index: u32,
        ts: i64,
        value: T,
    },
    /// No record of `upstream` written after this one is older than `watermark`.
    Watermark { upstream: u32, watermark: i64 },
    /// `upstream` has nothing for now and must not hold event time back, until its next
    /// record or watermark.
    Idle { upstream: u32 },
}

/// A record's id within its upstream partition, in the order they are written.
pub(crate) type RecordId = (u64, u32);

/// Encodes `envelope` (bincode, standard configuration) into `buffer`, replacing what it held.
pub(crate) fn encode_into<T: Serialize>(envelope: &Envelope<T>, buffer: &mut Vec<u8>) -> Result<(), String> {
    buffer.clear();
    bincode::serde::encode_into_std_write(envelope, buffer, bincode::config::standard())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Bincode, RecordDeserializer};

    #[test]
    fn envelopes_decode_with_the_bincode_format() {
        let sent = Envelope::Record {
            upstream: 3,
            offset: 17,
            index: 1,
            ts: 1_000,
            value: "x".to_string(),
        };
        let mut bytes = vec![9, 9, 9];
        encode_into(&sent, &mut bytes).unwrap();
        let back: Envelope<String> = Bincode.deserialize(None, Some(&bytes)).unwrap();
        assert_eq!(back, sent);
        let mark = Envelope::<String>::Watermark {
            upstream: 0,
            watermark: -5,
        };
        encode_into(&mark, &mut bytes).unwrap();
        let back: Envelope<String> = Bincode.deserialize(None, Some(&bytes)).unwrap();
        assert_eq!(back, mark);
    }
}
