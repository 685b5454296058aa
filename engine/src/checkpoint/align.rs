use crate::ids::CheckpointId;

/// Counts the barriers of one checkpoint over the inputs of an operator with several inputs
/// (a union, the senders of an exchange).
///
/// A barrier is passed on once every input that has not ended has delivered it. Sources pause
/// from the moment they emit a barrier until the checkpoint settles, so nothing follows a
/// barrier on any input before every input has delivered it: counting is all the alignment
/// needed, and no input is ever blocked.
#[derive(Debug)]
pub(crate) struct BarrierAligner {
    seen: Vec<bool>,
    ended: Vec<bool>,
    pending: Option<CheckpointId>,
}

impl BarrierAligner {
    pub(crate) fn new(inputs: usize) -> Self {
        BarrierAligner {
            seen: vec![false; inputs],
            ended: vec![false; inputs],
            pending: None,
        }
    }

    /// Input `input` delivered barrier `id`. Returns the barrier when it is complete.
    pub(crate) fn barrier(&mut self, input: usize, id: CheckpointId) -> Option<CheckpointId> {
        if self.pending.is_none_or(|p| id > p) {
            // A newer barrier supersedes an incomplete older one (its checkpoint was abandoned).
            self.pending = Some(id);
            self.seen.iter_mut().for_each(|s| *s = false);
        } else if self.pending != Some(id) {
            return None;
        }
        if let Some(s) = self.seen.get_mut(input) {
            *s = true;
        }
        self.complete()
    }

    /// Input `input` ended. Returns a pending barrier that it completes.
    pub(crate) fn end(&mut self, input: usize) -> Option<CheckpointId> {
        if let Some(e) = self.ended.get_mut(input) {
            *e = true;
        }
        self.complete()
    }

    fn complete(&mut self) -> Option<CheckpointId> {
        let done = self.seen.iter().zip(&self.ended).all(|(s, e)| *s || *e);
        if done { self.pending.take() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_a_barrier_once_all_live_inputs_delivered_it() {
        let mut a = BarrierAligner::new(3);
        assert_eq!(a.barrier(0, CheckpointId(1)), None);
        assert_eq!(a.barrier(2, CheckpointId(1)), None);
        assert_eq!(a.barrier(1, CheckpointId(1)), Some(CheckpointId(1)));
        // An ended input counts as delivered.
        assert_eq!(a.barrier(0, CheckpointId(2)), None);
        assert_eq!(a.end(1), None);
        assert_eq!(a.barrier(2, CheckpointId(2)), Some(CheckpointId(2)));
        // A newer barrier replaces an abandoned one; a stale one is ignored.
        assert_eq!(a.barrier(0, CheckpointId(3)), None);
        assert_eq!(a.barrier(0, CheckpointId(4)), None);
        assert_eq!(a.barrier(2, CheckpointId(3)), None);
        assert_eq!(a.barrier(2, CheckpointId(4)), Some(CheckpointId(4)));
    }

    #[test]
    fn an_input_ending_completes_a_pending_barrier() {
        let mut a = BarrierAligner::new(2);
        assert_eq!(a.barrier(0, CheckpointId(1)), None);
        assert_eq!(a.end(1), Some(CheckpointId(1)));
    }
}
