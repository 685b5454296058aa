//! Event-time windows on keyed streams.

mod assigner;
mod fixed;
mod session;
mod windowed_stream;

pub use assigner::{Emit, Window, WindowResult, Windows};
pub use windowed_stream::WindowedStream;
