use std::fmt;
use std::hash::Hasher;

/// One operator of a job graph, as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorInfo {
    /// Stable name.
    pub name: String,
    /// Kind (`source`, `map`, `key_by`, `window`, `sink`, ...).
    pub kind: String,
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
            for part in [&op.name, &op.kind, &op.output_type] {
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
