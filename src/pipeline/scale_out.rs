//! A pipeline spread over processes (`[scale_out]`): every process started with the same
//! group runs its share of the pipeline's tasks, as the Kafka consumer groups of its stages
//! give them out.
//!
//! - Without a window, one stage, `rows`: task *q* writes the rows of partition *q* of the
//!   source topic.
//! - With a window, the records are re-keyed through a repartition topic, since the topic's
//!   partitioning need not follow the key field: stage `read`, task *q* of the source topic,
//!   writes its records to `<group>-by_key-repartition` by key; stage `windows`, task *q* of
//!   that topic, computes the windows of its keys and writes them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sluice_kafka::{Located, Repartition, StartFrom, TaskGroup, ensure_topic};

use super::error::PipelineError;
use super::{Decoded, KeyValue, Pipeline};
use crate::scale_out::{TaskJobs, TaskStore, run_stages, stage_group};

/// This process's part of a pipeline spread over processes.
pub struct ScaledPipeline {
    pipeline: Pipeline,
    group: String,
    store: TaskStore,
    /// The topic the records are re-keyed through (windowed pipelines).
    by_key: Option<Repartition>,
}

impl ScaledPipeline {
    /// The tasks of `pipeline`, whose file has `[scale_out]`; creates the repartition topic
    /// of a windowed pipeline if missing.
    ///
    /// # Errors
    /// A pipeline without `[scale_out]` (or without its store); a repartition topic that
    /// cannot be created or has another partition count.
    pub fn new(pipeline: &Pipeline) -> Result<Self, PipelineError> {
        let spec = pipeline.spec();
        let (Some(scale_out), Some(state_dir), Some(store)) =
            (&spec.scale_out, &spec.state_dir, &spec.checkpoint_store)
        else {
            return Err(PipelineError::NotScaledOut(spec.name.clone()));
        };
        let scale_out = scale_out.get_ref();
        let interval = spec.checkpoint_interval.unwrap_or(Duration::from_secs(10));
        let source = spec.source.get_ref();
        let refused = |e: &dyn std::fmt::Display| PipelineError::Kafka {
            brokers: source.brokers.clone(),
            reason: e.to_string(),
        };
        let by_key = match &spec.window {
            None => None,
            Some(_) => {
                let partitions = match scale_out.partitions {
                    Some(n) => n,
                    None => match sluice_kafka::partition_count(&pipeline.kafka, &source.topic)
                        .map_err(|e| refused(&e))?
                    {
                        Some(n) if n > 0 => n as u32,
                        _ => return Err(refused(&format!("topic '{}' does not exist", source.topic))),
                    },
                };
                let topic = Repartition::topic_name(&scale_out.group, "by_key");
                ensure_topic(&pipeline.kafka, &topic, partitions as i32).map_err(|e| refused(&e))?;
                Some(
                    Repartition::new(pipeline.kafka.clone(), topic, partitions, &[&source.topic])
                        .out_of_orderness(pipeline.out_of_orderness()),
                )
            }
        };
        Ok(ScaledPipeline {
            pipeline: pipeline.clone(),
            group: scale_out.group.clone(),
            store: TaskStore::new(state_dir, store, interval),
            by_key,
        })
    }

    /// The stages' names, task groups and task jobs.
    fn stages(self: &Arc<Self>) -> Vec<(String, TaskGroup, TaskJobs)> {
        let kafka = &self.pipeline.kafka;
        let topic = &self.pipeline.spec().source.get_ref().topic;
        let stage = |name: &str, lead: &str, jobs: TaskJobs| {
            let group = TaskGroup::new(kafka.clone(), stage_group(&self.group, name), lead);
            (name.to_string(), group, jobs)
        };
        let this = Arc::clone(self);
        match &self.by_key {
            None => vec![stage("rows", topic, Box::new(move |q| this.rows_task(q)))],
            Some(by_key) => {
                let (read, written) = (Arc::clone(self), by_key.clone());
                let read_by_key = by_key.clone();
                vec![
                    stage("read", topic, Box::new(move |q| read.read_task(&read_by_key, q))),
                    stage(
                        "windows",
                        by_key.topic(),
                        Box::new(move |q| this.windows_task(&written, q)),
                    ),
                ]
            }
        }
    }

    fn config(&self, stage: &str, q: u32) -> sluice_engine::Result<sluice_engine::JobConfig> {
        self.store.job_config(&self.pipeline.spec().name, stage, q)
    }

    /// Task `q` of stage `rows`: the rows of partition `q`.
    fn rows_task(&self, q: u32) -> sluice_engine::Result<sluice_engine::Job> {
        let pipeline = self.pipeline.clone();
        sluice_engine::Job::new(self.config("rows", q)?, move |b| {
            let source = pipeline
                .source()
                .only_partitions(&[q])
                .start_from(StartFrom::Earliest);
            let records = b.source("source", source, pipeline.watermarks(|d: &Decoded| d.ts));
            pipeline.write(&records);
            Ok(())
        })
    }

    /// Task `q` of stage `read`: the records of partition `q`, re-keyed.
    fn read_task(&self, by_key: &Repartition, q: u32) -> sluice_engine::Result<sluice_engine::Job> {
        let (pipeline, by_key) = (self.pipeline.clone(), by_key.clone());
        sluice_engine::Job::new(self.config("read", q)?, move |b| {
            let source = pipeline
                .source()
                .only_partitions(&[q])
                .start_from(StartFrom::Earliest)
                .located();
            let records = b.source(
                "source",
                source,
                pipeline.watermarks(|d: &Located<Decoded>| d.value.ts),
            );
            let writer = by_key
                .clone()
                .upstream_partitions(&[q])
                .writer(|d: &Decoded| d.key.clone().unwrap_or(KeyValue::Int(0)));
            records.sink("by_key_write", writer);
            Ok(())
        })
    }

    /// Task `q` of stage `windows`: the windows of the keys of partition `q` of the
    /// repartition topic.
    fn windows_task(&self, by_key: &Repartition, q: u32) -> sluice_engine::Result<sluice_engine::Job> {
        let (pipeline, by_key) = (self.pipeline.clone(), by_key.clone());
        sluice_engine::Job::new(self.config("windows", q)?, move |b| {
            let input = by_key.clone().only_partitions(&[q]);
            let records = b.source("by_key_read", input.reader::<Decoded>(), input.watermarks());
            pipeline.write(&records);
            Ok(())
        })
    }

    /// Runs this process's share of the tasks until `stop` is set, then hands them over.
    ///
    /// # Errors
    /// The first stage that failed.
    pub fn run(self: &Arc<Self>, stop: &Arc<AtomicBool>) -> Result<(), PipelineError> {
        run_stages(self.stages(), stop).map_err(PipelineError::Stage)
    }
}
