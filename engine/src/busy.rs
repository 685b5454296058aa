//! Time each operator spends working, without the time of the operators it calls.
//!
//! Chained operators call each other on one thread: a map's batch hands its output to the
//! filter after it inside the map's own call. Each timed section therefore subtracts the time
//! of the sections nested in it, so an operator's busy time is its own work only, and the
//! slowest operator of a chain is the one with the most busy time.

use std::cell::Cell;
use std::time::Instant;

use crate::metrics::Counter;

thread_local! {
    /// Nanoseconds spent in sections nested in the innermost open one.
    static NESTED: Cell<u64> = const { Cell::new(0) };
}

/// Runs `work`, adding the nanoseconds it took, less those of timed sections inside it, to
/// `busy`.
#[inline]
pub(crate) fn timed<R>(busy: &Counter, work: impl FnOnce() -> R) -> R {
    let outer = NESTED.with(|n| n.replace(0));
    let started = Instant::now();
    let result = work();
    let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let inner = NESTED.with(|n| n.replace(outer.saturating_add(elapsed)));
    busy.add(elapsed.saturating_sub(inner));
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_section_does_not_count_the_sections_nested_in_it() {
        let (outer, inner) = (Counter::default(), Counter::default());
        timed(&outer, || {
            std::thread::sleep(Duration::from_millis(5));
            timed(&inner, || std::thread::sleep(Duration::from_millis(40)));
        });
        assert!(inner.get() >= 40_000_000, "inner {} ns", inner.get());
        assert!(outer.get() >= 5_000_000, "outer {} ns", outer.get());
        assert!(
            outer.get() < inner.get(),
            "the outer section counts its own sleep, not the inner one: {} vs {} ns",
            outer.get(),
            inner.get()
        );
    }

    #[test]
    fn sections_one_after_another_each_count_their_own_time() {
        let (a, b, outer) = (Counter::default(), Counter::default(), Counter::default());
        timed(&outer, || {
            timed(&a, || std::thread::sleep(Duration::from_millis(10)));
            timed(&b, || std::thread::sleep(Duration::from_millis(10)));
        });
        assert!(a.get() >= 10_000_000 && b.get() >= 10_000_000);
        assert!(outer.get() < a.get().min(b.get()), "outer {} ns", outer.get());
    }
}
