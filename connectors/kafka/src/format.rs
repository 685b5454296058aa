use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_engine::PartitionId;

/// Turns a Kafka record's key and payload into a value; an `Err` is a bad record.
///
/// The formats here ([`Json`], [`Bincode`], [`RawBytes`], [`Utf8`]) refuse a record without
/// a payload (a Kafka tombstone) with "record has no payload (tombstone)".
pub trait RecordDeserializer<T>: Send + Sync + 'static {
    /// Decodes one record.
    ///
    /// # Errors
    /// A description of why the record is unusable.
    fn deserialize(&self, key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<T, String>;

    /// Decodes one record knowing where it was read: the source's partition id (see
    /// [`KafkaSource`](crate::KafkaSource)) and the record's offset. The default ignores both.
    ///
    /// # Errors
    /// As [`Self::deserialize`].
    fn deserialize_at(
        &self,
        _partition: PartitionId,
        _offset: u64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<T, String> {
        self.deserialize(key, payload)
    }
}

impl<T, F> RecordDeserializer<T> for F
where
    F: Fn(Option<&[u8]>, Option<&[u8]>) -> Result<T, String> + Send + Sync + 'static,
{
    fn deserialize(&self, key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<T, String> {
        self(key, payload)
    }
}

/// The payload, or the bad-record reason for a record without one. Kafka marks a deleted
/// key with such a record (a tombstone); none of these formats has a value for "deleted",
/// so it goes to the source's bad-record policy instead of becoming an empty value. A
/// payload of zero bytes is not a tombstone. To handle tombstones as values, deserialize
/// with a closure over `Option<&[u8]>`.
fn payload_of(payload: Option<&[u8]>) -> Result<&[u8], String> {
    payload.ok_or_else(|| "record has no payload (tombstone)".to_string())
}

/// The payload is JSON for `T` (serde_json).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: DeserializeOwned> RecordDeserializer<T> for Json {
    fn deserialize(&self, _key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<T, String> {
        serde_json::from_slice(payload_of(payload)?).map_err(|e| format!("invalid JSON: {e}"))
    }
}

/// The payload is bincode (standard configuration) for `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl<T: DeserializeOwned> RecordDeserializer<T> for Bincode {
    fn deserialize(&self, _key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<T, String> {
        bincode::serde::decode_from_slice(payload_of(payload)?, bincode::config::standard())
            .map(|(v, _)| v)
            .map_err(|e| format!("invalid bincode: {e}"))
    }
}

/// The raw payload bytes. A record without a payload (a tombstone) is a bad record, as in
/// every format here; an empty payload is an empty value.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawBytes;

impl RecordDeserializer<Vec<u8>> for RawBytes {
    fn deserialize(&self, _key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<Vec<u8>, String> {
        Ok(payload_of(payload)?.to_vec())
    }
}

/// The payload as UTF-8 text. A record without a payload (a tombstone) is a bad record, as
/// in every format here; an empty payload is an empty string.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl RecordDeserializer<String> for Utf8 {
    fn deserialize(&self, _key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<String, String> {
        String::from_utf8(payload_of(payload)?.to_vec()).map_err(|e| format!("invalid UTF-8: {e}"))
    }
}

/// Turns a value into a Kafka record's key and payload.
pub trait RecordSerializer<T>: Send + Sync + 'static {
    /// Encodes one value as `(key, payload)`.
    ///
    /// # Errors
    /// A description of why the value cannot be encoded.
    fn serialize(&self, value: &T) -> Result<(Option<Vec<u8>>, Vec<u8>), String>;
}

/// JSON payloads, with the key taken from the value by a function.
pub struct JsonRecord<T, F> {
    key: F,
    _value: PhantomData<fn(&T)>,
}

impl<T, F> JsonRecord<T, F>
where
    F: Fn(&T) -> Option<String>,
{
    /// JSON payload, key `key(value)` (UTF-8) or none.
    pub fn keyed_by(key: F) -> Self {
        JsonRecord {
            key,
            _value: PhantomData,
        }
    }
}

impl<T, F> RecordSerializer<T> for JsonRecord<T, F>
where
    T: Serialize + 'static,
    F: Fn(&T) -> Option<String> + Send + Sync + 'static,
{
    fn serialize(&self, value: &T) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
        let payload = serde_json::to_vec(value).map_err(|e| format!("cannot encode JSON: {e}"))?;
        Ok(((self.key)(value).map(String::into_bytes), payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_decode_and_explain_failures() {
        let ok: Result<Vec<u32>, _> = Json.deserialize(None, Some(b"[1,2]"));
        assert_eq!(ok, Ok(vec![1, 2]));
        let bad: Result<Vec<u32>, _> = Json.deserialize(None, Some(b"[1,"));
        assert!(bad.unwrap_err().starts_with("invalid JSON"));
        let none: Result<u32, _> = Json.deserialize(None, None);
        assert_eq!(none.unwrap_err(), "record has no payload (tombstone)");
        let bytes = bincode::serde::encode_to_vec((7u8, "x"), bincode::config::standard()).unwrap();
        let back: (u8, String) = Bincode.deserialize(None, Some(&bytes)).unwrap();
        assert_eq!(back, (7, "x".to_string()));
        assert_eq!(Utf8.deserialize(None, Some(b"hi")).unwrap(), "hi");
        assert!(Utf8.deserialize(None, Some(&[0xff])).is_err());
        assert_eq!(RawBytes.deserialize(None, Some(b"\x00\x01")).unwrap(), vec![0, 1]);
        let custom =
            |_: Option<&[u8]>, p: Option<&[u8]>| p.map(<[u8]>::len).ok_or_else(|| "empty".to_string());
        assert_eq!(
            RecordDeserializer::<usize>::deserialize(&custom, None, Some(b"abc")),
            Ok(3)
        );
        let ser = JsonRecord::keyed_by(|v: &(String, u32)| Some(v.0.clone()));
        let (key, payload) = ser.serialize(&("k".to_string(), 1)).unwrap();
        assert_eq!(key.as_deref(), Some(&b"k"[..]));
        assert_eq!(payload, b"[\"k\",1]");
    }

    #[test]
    fn a_tombstone_is_a_bad_record_in_every_format() {
        let tombstone = "record has no payload (tombstone)";
        let key = Some(&b"p-7"[..]);
        let raw = RecordDeserializer::<Vec<u8>>::deserialize(&RawBytes, key, None);
        assert_eq!(raw.unwrap_err(), tombstone);
        assert_eq!(Utf8.deserialize(key, None).unwrap_err(), tombstone);
        let json = RecordDeserializer::<Vec<u32>>::deserialize(&Json, key, None);
        assert_eq!(json.unwrap_err(), tombstone);
        let bincode = RecordDeserializer::<u32>::deserialize(&Bincode, key, None);
        assert_eq!(bincode.unwrap_err(), tombstone);
        // An empty payload is a value, not a tombstone.
        assert_eq!(RawBytes.deserialize(key, Some(b"")), Ok(Vec::new()));
        assert_eq!(Utf8.deserialize(key, Some(b"")), Ok(String::new()));
    }
}
