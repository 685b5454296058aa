//! A Kafka topic as the destination of dead letters.

use sluice_engine::{BoxError, CheckpointId, Sink, SinkFactory, Timestamp};

use super::config::KafkaConfig;
use super::dead_letter::DeadLetterWriter;
use super::error::with_retry_hint;
use sluice_operators::DeadLetter;

/// Writes [`DeadLetter`]s to a Kafka topic (created with one partition if missing): the key
/// and payload as the record's, the headers as Kafka headers. Every write is acknowledged by
/// the next checkpoint, so a checkpoint never covers a dead letter that could still be lost.
#[derive(Debug, Clone)]
pub struct KafkaDeadLetters {
    config: KafkaConfig,
    topic: String,
}

impl KafkaDeadLetters {
    /// Dead letters to `topic` of the cluster `config` names.
    pub fn new(config: KafkaConfig, topic: impl Into<String>) -> Self {
        KafkaDeadLetters {
            config,
            topic: topic.into(),
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl SinkFactory<DeadLetter> for KafkaDeadLetters {
    fn create(&self, _worker: usize, _workers: usize) -> Result<Box<dyn Sink<DeadLetter>>, BoxError> {
        let writer = DeadLetterWriter::open(&self.config, &self.topic).map_err(with_retry_hint)?;
        Ok(Box::new(TopicWriter(writer)))
    }
}

struct TopicWriter(DeadLetterWriter);

impl Sink<DeadLetter> for TopicWriter {
    fn write(&mut self, letter: DeadLetter, _ts: Timestamp) -> Result<(), BoxError> {
        let headers: Vec<(&str, &str)> = letter
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.0
            .send(letter.key.as_deref(), Some(&letter.payload), &headers)
            .and_then(|_| self.0.check())
            .map_err(with_retry_hint)
    }

    fn on_checkpoint(&mut self, _id: CheckpointId) -> Result<(), BoxError> {
        self.0.flush().map_err(with_retry_hint)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.0.flush().map_err(with_retry_hint)
    }
}
