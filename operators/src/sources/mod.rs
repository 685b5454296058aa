//! Sources for jobs and tests.

pub(crate) mod generator;
pub(crate) mod json_lines;
pub(crate) mod line_reader;
pub(crate) mod memory;
