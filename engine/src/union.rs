use std::cell::RefCell;
use std::rc::Rc;

use crate::checkpoint::align::BarrierAligner;
use crate::error::Result;
use crate::push::{Barrier, Control, Data, Output, Push};
use crate::time::{Timestamp, Watermark};
use crate::watermark_tracker::{Combined, WatermarkTracker};

/// Merges several streams of the same type; its watermark is the minimum of its inputs'.
pub(crate) struct Union<T: Data> {
    tracker: WatermarkTracker,
    aligner: BarrierAligner,
    out: Output<T>,
    ended: bool,
}

impl<T: Data> Union<T> {
    pub(crate) fn new(inputs: usize, out: Output<T>) -> Self {
        Union {
            tracker: WatermarkTracker::new(inputs),
            aligner: BarrierAligner::new(inputs),
            out,
            ended: false,
        }
    }

    fn emit(&mut self, c: Combined) -> Result<()> {
        match c {
            Combined::Unchanged => Ok(()),
            Combined::Advanced(wm) | Combined::Resumed(wm) => self.out.watermark(wm),
            Combined::Idle => self.out.idle(),
            Combined::IdleAt(wm) => {
                self.out.watermark(wm)?;
                self.out.idle()
            }
        }
    }
}

/// One input of a [`Union`].
pub(crate) struct UnionInput<T: Data> {
    pub(crate) index: usize,
    pub(crate) union: Rc<RefCell<Union<T>>>,
}

impl<T: Data> Push<T> for UnionInput<T> {
    #[inline]
    fn push(&mut self, value: T, ts: Timestamp) -> Result<()> {
        self.union.borrow_mut().out.push(value, ts)
    }

    #[inline]
    fn push_batch(&mut self, batch: &mut Vec<(T, Timestamp)>) -> Result<()> {
        self.union.borrow_mut().out.push_batch(batch)
    }

    fn watermark(&mut self, wm: Watermark) -> Result<()> {
        let mut u = self.union.borrow_mut();
        let c = u.tracker.update(self.index, wm);
        u.emit(c)
    }

    fn idle(&mut self) -> Result<()> {
        let mut u = self.union.borrow_mut();
        let c = u.tracker.set_idle(self.index);
        u.emit(c)
    }

    fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        let mut u = self.union.borrow_mut();
        match u.aligner.barrier(self.index, barrier.id) {
            Some(id) => u.out.barrier(Barrier { id }),
            None => Ok(()),
        }
    }

    fn end(&mut self) -> Result<()> {
        let mut u = self.union.borrow_mut();
        let c = u.tracker.end(self.index);
        u.emit(c)?;
        if let Some(id) = u.aligner.end(self.index) {
            u.out.barrier(Barrier { id })?;
        }
        if u.tracker.all_ended() && !u.ended {
            u.ended = true;
            u.out.end()?;
        }
        Ok(())
    }
}
