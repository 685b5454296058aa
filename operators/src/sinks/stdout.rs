use std::io::{BufWriter, Stdout, Write};
use std::sync::Arc;

use serde::Serialize;
use sluice_engine::{BoxError, Data, Sink, SinkFactory, Timestamp, Watermark};

type Format<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;

/// Prints one line per record to standard output.
pub struct StdoutSink<T> {
    format: Format<T>,
}

impl<T> Clone for StdoutSink<T> {
    fn clone(&self) -> Self {
        StdoutSink {
            format: Arc::clone(&self.format),
        }
    }
}

impl<T: Data> StdoutSink<T> {
    /// Prints `format(record)`.
    pub fn new(format: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        StdoutSink {
            format: Arc::new(format),
        }
    }

    /// Prints records with their `Debug` form.
    pub fn debug() -> Self
    where
        T: std::fmt::Debug,
    {
        Self::new(|r| format!("{r:?}"))
    }

    /// Prints records as JSON.
    pub fn json() -> Self
    where
        T: Serialize,
    {
        Self::new(|r| serde_json::to_string(r).unwrap_or_else(|e| format!("<unserializable: {e}>")))
    }
}

impl<T: Data> SinkFactory<T> for StdoutSink<T> {
    fn create(&self, _worker: usize, _workers: usize) -> Result<Box<dyn Sink<T>>, BoxError> {
        Ok(Box::new(StdoutWriter {
            format: Arc::clone(&self.format),
            out: BufWriter::new(std::io::stdout()),
        }))
    }
}

struct StdoutWriter<T> {
    format: Format<T>,
    out: BufWriter<Stdout>,
}

impl<T: Data> Sink<T> for StdoutWriter<T> {
    fn write(&mut self, value: T, _ts: Timestamp) -> Result<(), BoxError> {
        writeln!(self.out, "{}", (self.format)(&value))?;
        Ok(())
    }

    fn on_watermark(&mut self, _wm: Watermark) -> Result<(), BoxError> {
        self.out.flush()?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.out.flush()?;
        Ok(())
    }
}
