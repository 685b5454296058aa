//! The state a job's build function fills in through [`crate::JobBuilder`] and its streams.

use std::collections::HashSet;
use std::sync::Arc;

use sluice_state::{KeyGroupRange, StateBackend};

use crate::config::JobConfig;
use crate::error::{EngineError, Result};
use crate::exchange::RunRegistry;
use crate::graph::{JobGraph, OperatorInfo, OperatorKind};
use crate::ids::WorkerId;
use crate::metrics::JobMetrics;
use crate::operator::OperatorContext;
use crate::push::{Data, Output};
use crate::worker_graph::WorkerGraph;

/// Whether the graph is only being planned (validated) or instantiated on a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Plan,
    Run,
}

/// The plan of one job graph while its build function runs: names, the graph description,
/// errors found, and (on a worker) the runtime graph being assembled.
pub(crate) struct BuildState {
    pub(crate) mode: Mode,
    pub(crate) config: Arc<JobConfig>,
    pub(crate) worker: usize,
    pub(crate) registry: Arc<RunRegistry>,
    pub(crate) state: StateBackend,
    pub(crate) metrics: JobMetrics,
    names: HashSet<String>,
    pub(crate) graph: JobGraph,
    pub(crate) errors: Vec<EngineError>,
    outputs: Vec<(String, Box<dyn Fn() -> usize>)>,
    /// What this worker runs (empty while planning).
    pub(crate) run: WorkerGraph,
    next_exchange: usize,
}

impl BuildState {
    pub(crate) fn new(
        mode: Mode,
        config: Arc<JobConfig>,
        worker: usize,
        registry: Arc<RunRegistry>,
        metrics: JobMetrics,
    ) -> Self {
        let range = KeyGroupRange::for_worker(worker, config.workers, config.max_key_groups);
        BuildState {
            mode,
            worker,
            registry,
            state: StateBackend::memory_for(range),
            metrics,
            names: HashSet::new(),
            graph: JobGraph::default(),
            errors: Vec::new(),
            outputs: Vec::new(),
            run: WorkerGraph::default(),
            next_exchange: 0,
            config,
        }
    }

    /// Registers an operator name; records an error when it is taken or malformed.
    pub(crate) fn claim_name(&mut self, name: &str) -> bool {
        let reason = if name.is_empty() {
            Some("names must not be empty")
        } else if name.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
            Some("names must not contain '/', '\\' or control characters")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.errors.push(EngineError::InvalidOperatorName {
                operator: name.to_string(),
                reason,
            });
            return false;
        }
        if !self.names.insert(name.to_string()) {
            self.errors.push(EngineError::DuplicateOperator {
                operator: name.to_string(),
            });
            return false;
        }
        true
    }

    pub(crate) fn record(&mut self, name: &str, kind: OperatorKind, inputs: &[&str], output_type: String) {
        self.graph.operators.push(OperatorInfo {
            name: name.to_string(),
            kind,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output_type,
        });
    }

    pub(crate) fn track_output<T: Data>(&mut self, producer: &str, out: &Output<T>) {
        let out = out.clone();
        self.outputs
            .push((producer.to_string(), Box::new(move || out.consumers())));
    }

    pub(crate) fn operator_context(&self, name: &str) -> OperatorContext {
        OperatorContext {
            name: Arc::from(name),
            worker: WorkerId(self.worker),
            workers: self.config.workers,
            max_key_groups: self.config.max_key_groups,
            state: self.state.clone(),
            metrics: self.metrics.clone(),
        }
    }

    pub(crate) fn next_exchange_id(&mut self) -> usize {
        self.next_exchange += 1;
        self.next_exchange - 1
    }

    /// Checks the finished graph: names, dangling streams, presence of a source.
    pub(crate) fn validate(&mut self) -> Result<()> {
        if let Some(e) = self.errors.drain(..).next() {
            return Err(e);
        }
        for (producer, consumers) in &self.outputs {
            if consumers() == 0 {
                return Err(EngineError::DanglingStream {
                    operator: producer.clone(),
                });
            }
        }
        // Every other stream is consumed, and only sinks consume without producing: a job
        // with a source therefore has a sink.
        if !self
            .graph
            .operators
            .iter()
            .any(|o| o.kind == OperatorKind::Source)
        {
            return Err(EngineError::InvalidJob {
                job: self.config.name.clone(),
                reason: "it has no source".into(),
            });
        }
        Ok(())
    }
}
