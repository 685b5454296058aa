use std::sync::Arc;

use sluice_engine::{
    BoxError, Data, PartitionId, PollStatus, Source, SourceContext, SourceOutput, SourcePosition,
    SourceReader,
};

type Generate<T> = Arc<dyn Fn(PartitionId, u64) -> T + Send + Sync>;

/// A deterministic, partitioned generator: record `i` of partition `p` is `generate(p, i)`.
/// Partition `p` is read by worker `p % workers`; `records_per_partition = None` never ends.
pub struct GeneratorSource<T> {
    partitions: u32,
    records_per_partition: Option<u64>,
    generate: Generate<T>,
}

impl<T> Clone for GeneratorSource<T> {
    fn clone(&self) -> Self {
        GeneratorSource {
            partitions: self.partitions,
            records_per_partition: self.records_per_partition,
            generate: Arc::clone(&self.generate),
        }
    }
}

impl<T: Data> GeneratorSource<T> {
    /// `partitions` partitions of `records_per_partition` records each (unbounded if `None`).
    pub fn new(
        partitions: u32,
        records_per_partition: Option<u64>,
        generate: impl Fn(PartitionId, u64) -> T + Send + Sync + 'static,
    ) -> Self {
        GeneratorSource {
            partitions,
            records_per_partition,
            generate: Arc::new(generate),
        }
    }
}

impl<T: Data> Source for GeneratorSource<T> {
    type Item = T;

    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        let owned = (0..self.partitions)
            .filter(|p| *p as usize % ctx.workers == ctx.worker.0)
            .map(|p| (PartitionId(p), 0u64, false))
            .collect();
        Ok(Box::new(GeneratorReader {
            source: self.clone(),
            owned,
            next: 0,
            batch: ctx.batch_size.max(1) as u64,
        }))
    }
}

struct GeneratorReader<T> {
    source: GeneratorSource<T>,
    owned: Vec<(PartitionId, u64, bool)>,
    next: usize,
    batch: u64,
}

impl<T: Data> SourceReader<T> for GeneratorReader<T> {
    fn partitions(&self) -> Vec<PartitionId> {
        self.owned.iter().map(|(p, ..)| *p).collect()
    }

    fn poll(&mut self, batch: &mut SourceOutput<'_, T>) -> Result<PollStatus, BoxError> {
        let n = self.owned.len();
        for _ in 0..n {
            let i = self.next % n;
            self.next += 1;
            let (p, offset, ended) = &mut self.owned[i];
            if *ended {
                continue;
            }
            let end = match self.source.records_per_partition {
                Some(total) => (*offset + self.batch).min(total),
                None => *offset + self.batch,
            };
            for index in *offset..end {
                batch.record(*p, (self.source.generate)(*p, index), None);
            }
            *offset = end;
            if self.source.records_per_partition == Some(end) {
                *ended = true;
                batch.partition_end(*p);
            }
            return Ok(PollStatus::Ready);
        }
        Ok(PollStatus::Finished)
    }

    fn position(&self) -> SourcePosition {
        SourcePosition::of_offsets(self.owned.iter().map(|(p, o, _)| (*p, *o)))
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        for (p, offset, ended) in &mut self.owned {
            if let Some(o) = position.offsets.get(p) {
                *offset = *o;
                *ended = false;
            }
        }
        Ok(())
    }
}
