use std::fmt;
use std::hash::Hasher;

/// What an operator of a job graph is. Its name ([`OperatorKind::as_str`]) is part of the
/// graph's fingerprint and of checkpoint manifests, so it never changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OperatorKind {
    /// Reads a source.
    Source,
    /// One record in, one out.
    Map,
    /// Keeps the records a predicate accepts.
    Filter,
    /// One record in, any number out.
    FlatMap,
    /// Partitions the stream by key: an exchange between workers.
    KeyBy,
    /// Windows and aggregates keyed records.
    Window,
    /// Joins records of two keyed streams within an interval.
    IntervalJoin,
    /// Enriches records with the latest record of another keyed stream.
    Enrich,
    /// A keyed process function.
    Process,
    /// Merges streams of one type.
    Union,
    /// Writes records out.
    Sink,
    /// An operator of the user's own, described by its name.
    Custom(String),
}

impl OperatorKind {
    /// The kind's stable name: `source`, `map`, `key_by`, ..., or a custom operator's own.
    pub fn as_str(&self) -> &str {
        match self {
            OperatorKind::Source => "source",
            OperatorKind::Map => "map",
            OperatorKind::Filter => "filter",
            OperatorKind::FlatMap => "flat_map",
            OperatorKind::KeyBy => "key_by",
            OperatorKind::Window => "window",
            OperatorKind::IntervalJoin => "interval_join",
            OperatorKind::Enrich => "enrich",
            OperatorKind::Process => "process",
            OperatorKind::Union => "union",
            OperatorKind::Sink => "sink",
            OperatorKind::Custom(name) => name,
        }
    }
}

impl From<&str> for OperatorKind {
    /// A custom kind called `name` (a custom operator's description in the job graph).
    fn from(name: &str) -> Self {
        OperatorKind::Custom(name.to_string())
    }
}

impl fmt::Display for OperatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operator of a job graph, as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorInfo {
    /// Stable name.
    pub name: String,
    /// What it is.
    pub kind: OperatorKind,
    /// Names of the operators feeding it.
    pub inputs: Vec<String>,
    /// Type of the records it emits (or, for keyed operators, key and value types).
    pub output_type: String,
}

/// The validated shape of a job: its operators in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobGraph {
    /// The operators.
    pub operators: Vec<OperatorInfo>,
}

impl JobGraph {
    /// A hash of the graph's names, kinds, edges and types, stable across runs. A checkpoint
    /// taken by one graph is only restored into a graph with the same fingerprint.
    pub fn fingerprint(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for op in &self.operators {
            for part in [op.name.as_str(), op.kind.as_str(), op.output_type.as_str()] {
                h.write(part.as_bytes());
                h.write_u8(0);
            }
            for input in &op.inputs {
                h.write(input.as_bytes());
                h.write_u8(1);
            }
        }
        h.finish()
    }

    /// The operator called `name`.
    pub fn operator(&self, name: &str) -> Option<&OperatorInfo> {
        self.operators.iter().find(|o| o.name == name)
    }
}

impl fmt::Display for JobGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.operators {
            write!(f, "{} [{}]", op.name, op.kind)?;
            if !op.inputs.is_empty() {
                write!(f, " <- {}", op.inputs.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
