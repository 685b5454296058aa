//! `CREATE TABLE IF NOT EXISTS` from a row type, for examples and quick starts.

use scylla::client::session::Session;

use super::error::CassandraError;
use super::mapping::{CqlType, Field};

/// The keys (and any column types other than the defaults) of a table created from a row type.
///
/// Field types map to `text`, `bigint`, `int`, `double`, `boolean`, `blob`, `list`, `map`;
/// name the columns that are `timestamp`s (an `i64` of epoch milliseconds in the row).
///
/// ```
/// use sluice_cassandra::TableSchema;
/// let schema = TableSchema::partition_key(["product_id"])
///     .clustering_key(["window_start"])
///     .timestamp_columns(["window_start"]);
/// assert_eq!(schema.replication(), "{'class': 'SimpleStrategy', 'replication_factor': 1}");
/// ```
#[derive(Debug, Clone)]
pub struct TableSchema {
    partition_key: Vec<String>,
    clustering_key: Vec<String>,
    types: Vec<(String, CqlType)>,
    replication: String,
}

impl TableSchema {
    /// A table whose partition key is `columns` (in order).
    pub fn partition_key(columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        TableSchema {
            partition_key: columns.into_iter().map(Into::into).collect(),
            clustering_key: Vec::new(),
            types: Vec::new(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
        }
    }

    /// Clustering columns (in order).
    pub fn clustering_key(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.clustering_key = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Columns of type `timestamp`.
    pub fn timestamp_columns(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.types
            .extend(columns.into_iter().map(|c| (c.into(), CqlType::Timestamp)));
        self
    }

    /// A column of another type than its field's default.
    pub fn column_type(mut self, column: impl Into<String>, ty: CqlType) -> Self {
        self.types.push((column.into(), ty));
        self
    }

    /// Replication of the keyspace if it has to be created (default `SimpleStrategy`, factor 1).
    pub fn keyspace_replication(mut self, replication: impl Into<String>) -> Self {
        self.replication = replication.into();
        self
    }

    /// The keyspace replication map.
    pub fn replication(&self) -> &str {
        &self.replication
    }

    /// The `CREATE TABLE` statement for `fields`.
    pub(crate) fn create_table_cql(&self, table: &str, fields: &[Field]) -> Result<String, String> {
        let mut columns = Vec::new();
        for field in fields {
            let ty = match self.types.iter().find(|(c, _)| *c == field.name) {
                Some((_, ty)) => ty.clone(),
                None => CqlType::for_field(&field.format).ok_or_else(|| {
                    format!(
                        "field '{}' is {}: no column type for it",
                        field.name, field.format
                    )
                })?,
            };
            columns.push(format!("{} {ty}", field.name));
        }
        for key in self.partition_key.iter().chain(&self.clustering_key) {
            match fields.iter().find(|f| f.name == *key) {
                None => return Err(format!("key column '{key}' is not a field of the row type")),
                Some(f) if f.nullable => return Err(format!("key column '{key}' cannot be optional")),
                Some(_) => {}
            }
        }
        if self.partition_key.is_empty() {
            return Err("a table needs a partition key".into());
        }
        let mut key = format!("({})", self.partition_key.join(", "));
        for c in &self.clustering_key {
            key.push_str(", ");
            key.push_str(c);
        }
        Ok(format!(
            "CREATE TABLE IF NOT EXISTS {table} ({}, PRIMARY KEY ({key}))",
            columns.join(", ")
        ))
    }

    /// Creates the keyspace and table if missing.
    pub(crate) async fn create<T>(
        &self,
        session: &Session,
        keyspace: &str,
        table: &str,
        fields: &[Field],
    ) -> Result<(), CassandraError> {
        let qualified = format!("{keyspace}.{table}");
        let cql = self
            .create_table_cql(&qualified, fields)
            .map_err(|reason| CassandraError::Mapping {
                row: std::any::type_name::<T>(),
                table: qualified.clone(),
                reason,
            })?;
        let keyspace_cql = format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
            self.replication
        );
        for statement in [keyspace_cql, cql] {
            session
                .query_unpaged(statement.as_str(), &[])
                .await
                .map_err(|e| CassandraError::Statement {
                    what: statement.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::FieldFormat;

    fn field(name: &str, format: FieldFormat) -> Field {
        Field {
            name: name.into(),
            format,
            nullable: false,
        }
    }

    #[test]
    fn create_table_from_fields_and_keys() {
        let fields = [
            field("product_id", FieldFormat::Str),
            field("window_start", FieldFormat::Int(64)),
            field("revenue_cents", FieldFormat::Int(64)),
            field("share", FieldFormat::Float(64)),
        ];
        let schema = TableSchema::partition_key(["product_id"])
            .clustering_key(["window_start"])
            .timestamp_columns(["window_start"]);
        assert_eq!(
            schema.create_table_cql("shop.t", &fields).unwrap(),
            "CREATE TABLE IF NOT EXISTS shop.t (product_id text, window_start timestamp, \
             revenue_cents bigint, share double, PRIMARY KEY ((product_id), window_start))"
        );
        let err = TableSchema::partition_key(["sku"])
            .create_table_cql("shop.t", &fields)
            .unwrap_err();
        assert!(err.contains("'sku'"), "{err}");
    }
}
