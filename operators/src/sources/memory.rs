use std::sync::Arc;

use sluice_engine::{
    BoxError, Data, PartitionId, PollStatus, Source, SourceContext, SourceOutput, SourcePosition,
    SourceReader,
};

/// Records held in memory, in one or more partitions. Partition `p` is read by worker
/// `p % workers`; each poll reads a chunk from one partition, taking turns.
#[derive(Debug, Clone)]
pub struct MemorySource<T> {
    partitions: Arc<Vec<Vec<T>>>,
    chunk: usize,
}

impl<T: Data> MemorySource<T> {
    /// One partition holding `records`.
    pub fn new(records: Vec<T>) -> Self {
        Self::partitioned(vec![records])
    }

    /// One partition per inner vector.
    pub fn partitioned(partitions: Vec<Vec<T>>) -> Self {
        MemorySource {
            partitions: Arc::new(partitions),
            chunk: 256,
        }
    }

    /// Shares already built partitions (cheap to clone into every worker).
    pub fn shared(partitions: Arc<Vec<Vec<T>>>) -> Self {
        MemorySource {
            partitions,
            chunk: 256,
        }
    }

    /// Records per poll (smaller chunks interleave partitions more finely).
    pub fn chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
}

impl<T: Data> Source for MemorySource<T> {
    type Item = T;

    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        let owned = (0..self.partitions.len())
            .filter(|p| p % ctx.workers == ctx.worker.0)
            .map(|p| (p, 0usize, false))
            .collect();
        Ok(Box::new(MemoryReader {
            partitions: Arc::clone(&self.partitions),
            owned,
            next: 0,
            chunk: self.chunk,
        }))
    }
}

struct MemoryReader<T> {
    partitions: Arc<Vec<Vec<T>>>,
    /// (partition index, next offset, ended)
    owned: Vec<(usize, usize, bool)>,
    next: usize,
    chunk: usize,
}

impl<T: Data> SourceReader<T> for MemoryReader<T> {
    fn partitions(&self) -> Vec<PartitionId> {
        self.owned.iter().map(|(p, ..)| PartitionId(*p as u32)).collect()
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
            let records = &self.partitions[*p];
            let end = (*offset + self.chunk).min(records.len());
            let id = PartitionId(*p as u32);
            for r in &records[*offset..end] {
                batch.record(id, r.clone(), None);
            }
            *offset = end;
            if end == records.len() {
                *ended = true;
                batch.partition_end(id);
            }
            return Ok(PollStatus::Ready);
        }
        Ok(PollStatus::Finished)
    }

    fn position(&self) -> SourcePosition {
        SourcePosition::of_offsets(
            self.owned
                .iter()
                .map(|(p, o, _)| (PartitionId(*p as u32), *o as u64)),
        )
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        for (p, offset, ended) in &mut self.owned {
            if let Some(o) = position.offsets.get(&PartitionId(*p as u32)) {
                let len = self.partitions[*p].len();
                *offset = usize::try_from(*o).unwrap_or(usize::MAX).min(len);
                *ended = false;
            }
        }
        Ok(())
    }
}
