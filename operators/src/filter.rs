use std::marker::PhantomData;

use sluice_engine::{Data, Operator, Output, Result, Timestamp};

/// Keeps the records a predicate accepts.
pub(crate) struct Filter<T, F> {
    predicate: F,
    _types: PhantomData<fn(T)>,
}

impl<T, F> Filter<T, F> {
    pub(crate) fn new(predicate: F) -> Self {
        Filter {
            predicate,
            _types: PhantomData,
        }
    }
}

impl<T: Data, F: FnMut(&T) -> bool + 'static> Operator for Filter<T, F> {
    type In = T;
    type Out = T;

    #[inline]
    fn process(&mut self, value: T, ts: Timestamp, out: &mut Output<T>) -> Result<()> {
        if (self.predicate)(&value) {
            out.push(value, ts)?;
        }
        Ok(())
    }
}
