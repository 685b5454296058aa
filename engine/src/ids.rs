use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// Index of a worker thread, `0..workers`.
    WorkerId(usize)
);
id_type!(
    /// A partition of a source (a Kafka partition, a file split, a generator partition).
    PartitionId(u32)
);
id_type!(
    /// Sequence number of a checkpoint.
    CheckpointId(u64)
);
