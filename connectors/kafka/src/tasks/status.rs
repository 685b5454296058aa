//! Who runs which task: the members of a task group and their assignments, as the group's
//! coordinator reports them.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use sluice_engine::BoxError;

use crate::config::KafkaConfig;
use crate::context::LoggingContext;
use crate::error::{Context, KafkaConnectorError};

/// A task and the member running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOwner {
    /// The task (the partition number of the stage's lead topic).
    pub task: u32,
    /// The member's client id (`sluice-<pid>` for a [`TaskGroup`](super::TaskGroup)).
    pub client_id: String,
    /// The member's address as the coordinator sees it.
    pub host: String,
}

/// A task group as its coordinator reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGroupStatus {
    /// The consumer group.
    pub group: String,
    /// The group's state (`Stable`, `PreparingRebalance`, `Empty`, ...).
    pub state: String,
    /// Members of the group.
    pub members: usize,
    /// Every assigned task and its owner, by task.
    pub owners: Vec<TaskOwner>,
}

/// The task groups named `prefix` or `prefix-<stage>` that have members, with their members
/// and assignments. (A job's other groups, which only hold committed offsets, have none.)
///
/// # Errors
/// When the brokers cannot be reached or refuse the request.
pub fn task_groups(config: &KafkaConfig, prefix: &str) -> Result<Vec<TaskGroupStatus>, BoxError> {
    let consumer: BaseConsumer<LoggingContext> = config
        .client_config(&[])
        .create_with_context(LoggingContext::default())
        .context(|| format!("cannot create a Kafka client for {}", config.brokers()))?;
    let list = consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .map_err(|e| {
            KafkaConnectorError::client(format!("cannot list the groups of {}", config.brokers()), e)
        })?;
    let stage_prefix = format!("{prefix}-");
    let mut groups: Vec<TaskGroupStatus> = list
        .groups()
        .iter()
        .filter(|g| g.name() == prefix || g.name().starts_with(&stage_prefix))
        .filter(|g| !g.members().is_empty())
        .map(|g| {
            let mut owners: Vec<TaskOwner> = g
                .members()
                .iter()
                .flat_map(|m| {
                    let tasks = m.assignment().map(assigned_partitions).unwrap_or_default();
                    tasks.into_iter().map(|task| TaskOwner {
                        task,
                        client_id: m.client_id().to_string(),
                        host: m.client_host().to_string(),
                    })
                })
                .collect();
            owners.sort_by_key(|o| o.task);
            TaskGroupStatus {
                group: g.name().to_string(),
                state: g.state().to_string(),
                members: g.members().len(),
                owners,
            }
        })
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(groups)
}

/// The partitions of a consumer-protocol assignment (version, then per topic its name and
/// partitions; user data after that is ignored). Undecodable bytes give none.
fn assigned_partitions(bytes: &[u8]) -> Vec<u32> {
    let mut r = Reader(bytes);
    let mut partitions = Vec::new();
    let decoded = (|| {
        r.i16()?;
        for _ in 0..r.i32()? {
            let len = r.i16()?;
            r.skip(usize::try_from(len).ok()?)?;
            for _ in 0..r.i32()? {
                partitions.push(u32::try_from(r.i32()?).ok()?);
            }
        }
        Some(())
    })();
    if decoded.is_none() {
        partitions.clear();
    }
    partitions
}

/// Big-endian reads from a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take::<2>().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignment_decodes_to_its_partitions() {
        let mut bytes = vec![0, 1]; // version 1
        bytes.extend(1i32.to_be_bytes()); // one topic
        bytes.extend(6i16.to_be_bytes());
        bytes.extend(b"orders");
        bytes.extend(2i32.to_be_bytes());
        bytes.extend(3i32.to_be_bytes());
        bytes.extend(0i32.to_be_bytes());
        bytes.extend((-1i32).to_be_bytes()); // no user data
        assert_eq!(assigned_partitions(&bytes), vec![3, 0]);
        assert_eq!(assigned_partitions(&bytes[..9]), Vec::<u32>::new(), "cut short");
    }
}
