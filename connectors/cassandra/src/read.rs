use futures_util::StreamExt;
use scylla::deserialize::row::DeserializeRow;

use super::config::CassandraConfig;
use super::driver_runtime;
use super::error::CassandraError;

/// Runs `cql` (a `SELECT`) and returns every row, reading page by page.
///
/// A blocking helper for reports, tests and benchmarks that read results back; it opens its
/// own session. Rows are tuples or structs deriving the driver's `DeserializeRow`.
///
/// # Errors
/// When the store cannot be reached, the statement fails or a row does not fit `R`.
pub fn read_rows<R>(config: &CassandraConfig, cql: &str) -> Result<Vec<R>, CassandraError>
where
    R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
{
    read_with_columns(config, cql).map(|(_, rows)| rows)
}

/// Runs `cql` and returns the names of its columns and every row, reading page by page.
fn read_with_columns<R>(config: &CassandraConfig, cql: &str) -> Result<(Vec<String>, Vec<R>), CassandraError>
where
    R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
{
    let runtime = driver_runtime("sluice-cql-client")?;
    let failed = |reason: String| CassandraError::Statement {
        what: cql.to_string(),
        reason,
    };
    runtime.block_on(async {
        let session = config.connect().await?;
        let pager = session
            .query_iter(cql, &[])
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut rows = pager.rows_stream::<R>().map_err(|e| failed(e.to_string()))?;
        let columns = rows.column_specs().iter().map(|c| c.name().to_string()).collect();
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            out.push(row.map_err(|e| failed(e.to_string()))?);
        }
        Ok((columns, out))
    })
}

/// Runs each statement of `cql` in order (schema changes, truncation), blocking.
///
/// # Errors
/// When the store cannot be reached or a statement fails.
pub fn execute_cql(config: &CassandraConfig, cql: &[&str]) -> Result<(), CassandraError> {
    let runtime = driver_runtime("sluice-cql-client")?;
    runtime.block_on(async {
        let session = config.connect().await?;
        for statement in cql {
            session
                .query_unpaged(*statement, &[])
                .await
                .map_err(|e| CassandraError::Statement {
                    what: (*statement).to_string(),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    })
}

/// The result of a statement as text: column names and each row's values (`null` for none),
/// for showing a table to a person (`sluice cql`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextTable {
    /// The columns' names.
    pub columns: Vec<String>,
    /// The rows, one string per column.
    pub rows: Vec<Vec<String>>,
}

/// Runs `cql` and returns its columns and rows as text (a `SELECT`), or an empty table (any
/// other statement), reading page by page.
///
/// # Errors
/// When the store cannot be reached or the statement fails.
pub fn query_text(config: &CassandraConfig, cql: &str) -> Result<TextTable, CassandraError> {
    let (columns, rows) = read_with_columns::<scylla::value::Row>(config, cql)?;
    let rows = rows
        .into_iter()
        .map(|row| {
            row.columns
                .iter()
                .map(|v| v.as_ref().map_or_else(|| "null".to_string(), shown))
                .collect()
        })
        .collect();
    Ok(TextTable { columns, rows })
}

/// A value as cqlsh shows it: text without CQL's quotes, everything else as the driver
/// formats it, less the quotes around timestamps and dates.
fn shown(value: &scylla::value::CqlValue) -> String {
    use scylla::value::CqlValue;
    match value {
        CqlValue::Text(s) | CqlValue::Ascii(s) => s.clone(),
        other => {
            let text = other.to_string();
            match text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
                Some(inner) => inner.to_string(),
                None => text,
            }
        }
    }
}
