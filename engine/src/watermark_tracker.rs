use crate::time::Watermark;

/// Progress of one input of a multi-input point (a source partition, an exchange sender, a
/// union input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputProgress {
    Active(Watermark),
    Idle(Watermark),
    Ended,
}

/// What a change of one input means for the combined watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combined {
    /// Nothing to tell downstream.
    Unchanged,
    /// The combined watermark moved forward to this value.
    Advanced(Watermark),
    /// Every input that has not ended is idle: downstream should not wait for this point.
    Idle,
    /// The last active input went idle: the combined watermark first moved forward to the
    /// largest watermark of the idle inputs (no input will advance it any more, so none holds
    /// it back), then the point is idle as with [`Combined::Idle`].
    IdleAt(Watermark),
    /// After [`Combined::Idle`], an input is active again without moving the watermark:
    /// downstream must wait for this point again, at this watermark.
    Resumed(Watermark),
}

/// Combines the watermarks of several inputs: the minimum over active inputs. Idle inputs do
/// not hold it back, ended inputs count as `+inf`, and the result never moves backwards.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    inputs: Vec<InputProgress>,
    current: Watermark,
    idle: bool,
}

impl WatermarkTracker {
    /// A tracker over `inputs` inputs, all active at `-inf`.
    pub fn new(inputs: usize) -> Self {
        WatermarkTracker {
            inputs: vec![InputProgress::Active(Watermark::MIN); inputs],
            current: Watermark::MIN,
            idle: false,
        }
    }

    /// The combined watermark so far.
    pub fn current(&self) -> Watermark {
        self.current
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Adds an input (e.g. a newly assigned partition), active at `-inf` only if that does not
    /// move the combined watermark backwards: it starts at the current watermark.
    pub fn add_input(&mut self) -> usize {
        self.inputs.push(InputProgress::Active(self.current));
        self.inputs.len() - 1
    }

    /// Makes an ended or idle input active again at the current watermark (a partition
    /// assigned again after it was given up): it holds the combined watermark where it is until
    /// it reports its own.
    pub fn reopen(&mut self, i: usize) -> Combined {
        if matches!(self.inputs[i], InputProgress::Ended | InputProgress::Idle(_)) {
            self.inputs[i] = InputProgress::Active(self.current);
            return self.recompute();
        }
        Combined::Unchanged
    }

    /// The watermark input `i` reported last (`None` once it ended).
    pub fn input(&self, i: usize) -> Option<Watermark> {
        match self.inputs.get(i)? {
            InputProgress::Active(wm) | InputProgress::Idle(wm) => Some(*wm),
            InputProgress::Ended => None,
        }
    }

    /// Whether every input that has not ended is idle (and at least one is).
    pub fn is_all_idle(&self) -> bool {
        self.idle
    }

    /// Whether input `i` is idle.
    pub fn is_idle(&self, i: usize) -> bool {
        matches!(self.inputs.get(i), Some(InputProgress::Idle(_)))
    }

    /// Whether every input has ended.
    pub fn all_ended(&self) -> bool {
        self.inputs.iter().all(|p| *p == InputProgress::Ended)
    }

    /// Input `i` reports watermark `wm` (an idle input becomes active again).
    pub fn update(&mut self, i: usize, wm: Watermark) -> Combined {
        match self.inputs[i] {
            InputProgress::Ended => return Combined::Unchanged,
            InputProgress::Active(old) if old >= wm => return Combined::Unchanged,
            InputProgress::Active(old) => {
                self.inputs[i] = InputProgress::Active(wm);
                // Only the input that held the minimum can move the minimum.
                if old > self.current && !self.idle {
                    return Combined::Unchanged;
                }
            }
            InputProgress::Idle(old) => self.inputs[i] = InputProgress::Active(old.max(wm)),
        }
        self.recompute()
    }

    /// Input `i` has seen no data for its idle timeout.
    pub fn set_idle(&mut self, i: usize) -> Combined {
        if let InputProgress::Active(wm) = self.inputs[i] {
            self.inputs[i] = InputProgress::Idle(wm);
            return self.recompute();
        }
        Combined::Unchanged
    }

    /// Input `i` will send nothing more.
    pub fn end(&mut self, i: usize) -> Combined {
        if self.inputs[i] == InputProgress::Ended {
            return Combined::Unchanged;
        }
        self.inputs[i] = InputProgress::Ended;
        self.recompute()
    }

    fn recompute(&mut self) -> Combined {
        let mut min_active: Option<Watermark> = None;
        let mut any_idle = false;
        for p in &self.inputs {
            match *p {
                InputProgress::Active(w) => min_active = Some(min_active.map_or(w, |m| m.min(w))),
                InputProgress::Idle(_) => any_idle = true,
                InputProgress::Ended => {}
            }
        }
        let target = match min_active {
            Some(m) => m,
            None if any_idle => {
                if self.idle {
                    return Combined::Unchanged;
                }
                self.idle = true;
                // As Flink's watermark valve does: once every input is idle, none will move
                // the minimum, so the largest of their watermarks holds nothing back. Without
                // this, an input that went idle while holding the minimum (e.g. a partition
                // that never delivered) would keep the point at that minimum for good.
                let largest = self
                    .inputs
                    .iter()
                    .filter_map(|p| match *p {
                        InputProgress::Idle(w) => Some(w),
                        _ => None,
                    })
                    .max();
                return match largest {
                    Some(w) if w > self.current => {
                        self.current = w;
                        Combined::IdleAt(w)
                    }
                    _ => Combined::Idle,
                };
            }
            None => Watermark::MAX,
        };
        let resumed = std::mem::replace(&mut self.idle, false);
        if target > self.current {
            self.current = target;
            Combined::Advanced(target)
        } else if resumed {
            Combined::Resumed(self.current)
        } else {
            Combined::Unchanged
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_active_inputs() {
        let mut t = WatermarkTracker::new(2);
        assert_eq!(t.update(0, Watermark(10)), Combined::Unchanged);
        assert_eq!(t.update(1, Watermark(5)), Combined::Advanced(Watermark(5)));
        assert_eq!(t.update(1, Watermark(20)), Combined::Advanced(Watermark(10)));
        assert_eq!(t.update(1, Watermark(15)), Combined::Unchanged);
    }

    #[test]
    fn idle_input_does_not_hold_back_and_never_regresses() {
        let mut t = WatermarkTracker::new(2);
        t.update(0, Watermark(100));
        assert_eq!(t.set_idle(1), Combined::Advanced(Watermark(100)));
        assert_eq!(t.update(1, Watermark(50)), Combined::Unchanged);
        assert_eq!(t.current(), Watermark(100));
        assert_eq!(t.update(1, Watermark(120)), Combined::Unchanged);
        assert_eq!(t.update(0, Watermark(130)), Combined::Advanced(Watermark(120)));
    }

    #[test]
    fn when_every_input_is_idle_the_largest_watermark_holds_nothing_back() {
        let mut t = WatermarkTracker::new(2);
        // Input 0 is ahead, input 1 never reported: the minimum is input 1's.
        assert_eq!(t.update(0, Watermark(100)), Combined::Unchanged);
        // Input 0 goes idle first: input 1 still holds the minimum.
        assert_eq!(t.set_idle(0), Combined::Unchanged);
        // Then input 1: nothing will move the minimum any more.
        assert_eq!(t.set_idle(1), Combined::IdleAt(Watermark(100)));
        assert_eq!(t.current(), Watermark(100));
        // Input 1 comes back behind: the watermark does not go back.
        assert_eq!(t.update(1, Watermark(40)), Combined::Resumed(Watermark(100)));
    }

    #[test]
    fn an_input_active_again_after_all_were_idle_is_announced() {
        let mut t = WatermarkTracker::new(2);
        t.update(0, Watermark(100));
        t.update(1, Watermark(100));
        t.set_idle(0);
        assert_eq!(t.set_idle(1), Combined::Idle);
        // Active again, but behind: the combined watermark cannot go back, yet downstream must
        // wait for this point again.
        assert_eq!(t.update(1, Watermark(90)), Combined::Resumed(Watermark(100)));
        assert_eq!(t.update(1, Watermark(95)), Combined::Unchanged);
        assert_eq!(t.set_idle(1), Combined::Idle);
        assert_eq!(t.reopen(0), Combined::Resumed(Watermark(100)));
    }

    #[test]
    fn all_idle_reports_idle_once_and_all_ended_is_max() {
        let mut t = WatermarkTracker::new(2);
        assert_eq!(t.set_idle(0), Combined::Unchanged);
        assert_eq!(t.set_idle(1), Combined::Idle);
        assert_eq!(t.end(0), Combined::Unchanged);
        assert_eq!(t.end(1), Combined::Advanced(Watermark::MAX));
        assert!(t.all_ended());
    }
}
