//! A job graph as the console draws it: operators with their parallelism, edges with how
//! records cross them.

use serde::Serialize;

use crate::graph::{JobGraph, OperatorKind};

/// How records travel along an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// On the same worker, in the same call.
    Forward,
    /// To the worker that owns the record's key, through a bounded queue.
    Exchange,
    /// Into a union of several streams, on the same worker.
    Union,
}

/// One operator of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphOperator {
    /// Its name.
    pub name: String,
    /// What it is (`source`, `window`, ...).
    pub kind: String,
    /// The type of what it emits (for keyed operators, key and value types).
    pub output_type: String,
    /// Workers it runs on.
    pub parallelism: usize,
}

/// One edge of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphEdge {
    /// The upstream operator.
    pub from: String,
    /// The downstream operator.
    pub to: String,
    /// How records cross it.
    pub kind: EdgeKind,
}

/// The operators and edges of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphView {
    /// In creation order: sources first.
    pub operators: Vec<GraphOperator>,
    /// Every input of every operator.
    pub edges: Vec<GraphEdge>,
}

impl GraphView {
    /// The view of `graph` run on `workers` workers (every operator runs on every worker).
    pub fn new(graph: &JobGraph, workers: usize) -> Self {
        let operators = graph
            .operators
            .iter()
            .map(|op| GraphOperator {
                name: op.name.clone(),
                kind: op.kind.as_str().to_string(),
                output_type: op.output_type.clone(),
                parallelism: workers,
            })
            .collect();
        let edges = graph
            .operators
            .iter()
            .flat_map(|op| {
                let kind = match op.kind {
                    OperatorKind::KeyBy => EdgeKind::Exchange,
                    OperatorKind::Union => EdgeKind::Union,
                    _ => EdgeKind::Forward,
                };
                op.inputs.iter().map(move |input| GraphEdge {
                    from: input.clone(),
                    to: op.name.clone(),
                    kind,
                })
            })
            .collect();
        GraphView { operators, edges }
    }
}
