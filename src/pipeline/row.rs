//! The row a windowed pipeline writes: the key, the window and one column per aggregate.

use serde_json::Value;
use sluice_engine::{EngineError, Operator, Output, Timestamp};
use sluice_operators::WindowResult;

use super::Row;
use super::aggregate::SumOutOfRange;
use super::error::PipelineError;
use super::record::KeyValue;

/// One window's aggregates, as [`super::Aggregates`] gives them.
type Aggregated = WindowResult<KeyValue, Vec<Result<Value, SumOutOfRange>>>;

/// Column names of a windowed row.
pub(super) struct RowNames {
    pub key: String,
    pub start: String,
    pub end: Option<String>,
    pub aggregates: Vec<String>,
}

impl RowNames {
    /// The row of one window's result.
    ///
    /// # Errors
    /// [`PipelineError::SumOutOfRange`] naming the column of an integer sum that does not fit
    /// 64 bits.
    fn row(&self, r: Aggregated) -> Result<Row, PipelineError> {
        let mut row = Row::new();
        row.insert(self.key.clone(), r.key.to_json());
        row.insert(self.start.clone(), Value::from(r.window.start));
        if let Some(end) = &self.end {
            row.insert(end.clone(), Value::from(r.window.end));
        }
        for (name, value) in self.aggregates.iter().zip(r.value) {
            let value = value.map_err(|SumOutOfRange(sum)| PipelineError::SumOutOfRange {
                column: name.clone(),
                key: r.key.to_json().to_string(),
                window_start: r.window.start,
                sum,
            })?;
            row.insert(name.clone(), value);
        }
        Ok(row)
    }
}

/// Turns window results into rows; a result without an exact row fails the job.
pub(super) struct WindowRows(pub RowNames);

impl Operator for WindowRows {
    type In = Aggregated;
    type Out = Row;

    fn process(
        &mut self,
        value: Aggregated,
        ts: Timestamp,
        out: &mut Output<Row>,
    ) -> sluice_engine::Result<()> {
        let row = self.0.row(value).map_err(EngineError::user)?;
        out.push(row, ts)
    }
}
