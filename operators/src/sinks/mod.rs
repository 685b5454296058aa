//! Sinks for jobs and tests.

pub(crate) mod collect;
pub(crate) mod stdout;
