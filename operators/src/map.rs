use std::marker::PhantomData;

use sluice_engine::{Data, Operator, Output, Result, Timestamp};

/// Applies a function to every record.
pub(crate) struct Map<T, U, F> {
    f: F,
    _types: PhantomData<fn(T) -> U>,
}

impl<T, U, F> Map<T, U, F> {
    pub(crate) fn new(f: F) -> Self {
        Map {
            f,
            _types: PhantomData,
        }
    }
}

impl<T: Data, U: Data, F: FnMut(T) -> U + 'static> Operator for Map<T, U, F> {
    type In = T;
    type Out = U;

    #[inline]
    fn process(&mut self, value: T, ts: Timestamp, out: &mut Output<U>) -> Result<()> {
        out.push((self.f)(value), ts)
    }
}
