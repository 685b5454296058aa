use std::marker::PhantomData;

use sluice_engine::{Data, Operator, Output, Result, Timestamp};

/// Emits every item a function returns for a record.
pub(crate) struct FlatMap<T, U, I, F> {
    f: F,
    _types: PhantomData<fn(T) -> (U, I)>,
}

impl<T, U, I, F> FlatMap<T, U, I, F> {
    pub(crate) fn new(f: F) -> Self {
        FlatMap {
            f,
            _types: PhantomData,
        }
    }
}

impl<T, U, I, F> Operator for FlatMap<T, U, I, F>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U> + 'static,
    F: FnMut(T) -> I + 'static,
{
    type In = T;
    type Out = U;

    #[inline]
    fn process(&mut self, value: T, ts: Timestamp, out: &mut Output<U>) -> Result<()> {
        for item in (self.f)(value) {
            out.push(item, ts)?;
        }
        Ok(())
    }
}
