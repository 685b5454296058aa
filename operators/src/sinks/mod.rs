//! Sinks for jobs and tests.

pub(crate) mod collect;
pub(crate) mod dead_letter;
pub(crate) mod stdout;
