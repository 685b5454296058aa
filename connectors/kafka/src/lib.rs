//! Kafka for Sluice jobs, on rdkafka (librdkafka): [`KafkaSource`] (static or consumer-group
//! assignment, offsets in checkpoints, bad records failed, skipped or dead-lettered exactly
//! once), [`KafkaSink`], [`KafkaDeadLetters`] (a topic as a dead-letter sink), the formats
//! records are read and written in, and topic administration.

mod admin;
mod config;
mod context;
mod dead_letter;
mod dead_letter_sink;
mod dead_lettered;
mod delivery;
mod error;
mod format;
mod gaps;
mod repartition;
mod security;
mod sink;
mod source;
mod start;
mod tasks;

pub use admin::{ensure_topic, partition_count, topic_exists};
pub use config::KafkaConfig;
pub use context::{LoggingContext, Refusal};
pub use dead_letter_sink::KafkaDeadLetters;
pub use error::KafkaConnectorError;
pub use format::{Bincode, Json, JsonRecord, RawBytes, RecordDeserializer, RecordSerializer, Utf8};
pub use repartition::{Located, Repartition};
pub use security::{KafkaSecurity, KafkaTls, Sasl, SaslMechanism};
pub use sink::KafkaSink;
pub use source::{KafkaSource, StartFrom};
pub use tasks::{TaskGroup, TaskGroupStatus, TaskOwner, task_groups};
