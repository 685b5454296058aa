//! Dead letters: records a job could not process, handed to a sink of the user's choice.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_engine::{BoxError, Sink, SinkFactory};

/// A record a job could not process, as a dead-letter sink receives it: the record as it was
/// (or as JSON, for a row), its key if it had one, and headers that say where it came from
/// and why (`sluice.error`, `sluice.table`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The record's key, if it had one.
    pub key: Option<Vec<u8>>,
    /// The record.
    pub payload: Vec<u8>,
    /// Where it came from and why it is here, as (name, value) pairs.
    pub headers: Vec<(String, String)>,
}

impl DeadLetter {
    /// The value of header `name`, if there is one.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where dead letters go: any sink of [`DeadLetter`]s, e.g. a Kafka topic
/// (`sluice::kafka::KafkaDeadLetters`) or a [`crate::CollectSink`] in tests. A sink
/// that writes them makes each durable by the next checkpoint (its `on_checkpoint`).
#[derive(Clone)]
pub struct DeadLetterSink(Arc<dyn SinkFactory<DeadLetter> + Send + Sync>);

impl DeadLetterSink {
    /// Dead letters go to `sink`.
    pub fn new(sink: impl SinkFactory<DeadLetter> + Send + Sync) -> Self {
        DeadLetterSink(Arc::new(sink))
    }
}

impl SinkFactory<DeadLetter> for DeadLetterSink {
    fn create(&self, worker: usize, workers: usize) -> Result<Box<dyn Sink<DeadLetter>>, BoxError> {
        self.0.create(worker, workers)
    }
}

/// Shows no more than that it is a dead-letter sink: its settings may hold credentials.
impl std::fmt::Debug for DeadLetterSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeadLetterSink(..)")
    }
}
