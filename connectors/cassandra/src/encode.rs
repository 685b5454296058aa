//! Turns a row value into the CQL values of its columns.

use std::fmt::Write as _;

use scylla::value::{CqlTimestamp, CqlValue};
use serde::Serialize;
use serde_json::Value;

use super::error::CassandraError;
use super::mapping::{BoundColumn, CqlType};

/// The columns a sink writes and which of them form the partition key.
#[derive(Debug, Clone)]
pub(crate) struct RowLayout {
    /// `keyspace.table`.
    pub table: String,
    pub columns: Vec<BoundColumn>,
    /// Positions of the partition key columns among `columns`, in key order.
    pub partition_key: Vec<usize>,
}

/// One row's values, in column order, with their approximate size on the wire.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EncodedRow {
    pub values: Vec<Option<CqlValue>>,
    pub bytes: usize,
}

impl RowLayout {
    /// Encodes `row`, and appends its partition key's bytes to `key` (rows with equal keys
    /// go to the same partition).
    pub(crate) fn encode<T: Serialize>(
        &self,
        row: &T,
        key: &mut Vec<u8>,
    ) -> Result<EncodedRow, CassandraError> {
        let encode_error = |column: &str, reason: String| CassandraError::Encode {
            table: self.table.clone(),
            column: column.to_string(),
            reason,
        };
        let json = serde_json::to_value(row).map_err(|e| encode_error("*", e.to_string()))?;
        let Value::Object(fields) = json else {
            return Err(encode_error("*", "the row is not a struct".into()));
        };
        let mut values = Vec::with_capacity(self.columns.len());
        let mut bytes = 0;
        for column in &self.columns {
            let value = match fields.get(&column.name) {
                None | Some(Value::Null) => None,
                Some(v) => Some(convert(v, &column.ty).map_err(|reason| encode_error(&column.name, reason))?),
            };
            bytes += 4 + value.as_ref().map_or(0, value_size);
            values.push(value);
        }
        for &i in &self.partition_key {
            match &values[i] {
                Some(v) => key_bytes(v, key),
                None => {
                    return Err(encode_error(
                        &self.columns[i].name,
                        "a partition key column cannot be null".into(),
                    ));
                }
            }
        }
        Ok(EncodedRow { values, bytes })
    }

    /// `column=value` of the partition key, for error messages.
    pub(crate) fn key_text(&self, row: &EncodedRow) -> String {
        let mut out = String::new();
        for (n, &i) in self.partition_key.iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}=", self.columns[i].name);
            render(row.values[i].as_ref(), &mut out);
        }
        if out.is_empty() {
            out.push_str("(unknown)");
        }
        out
    }

    /// The row as a JSON object of its columns, for dead-letter records.
    pub(crate) fn row_json(&self, row: &EncodedRow) -> String {
        let mut out = String::from("{");
        for (n, (column, value)) in self.columns.iter().zip(&row.values).enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&Value::String(column.name.clone()).to_string());
            out.push(':');
            match value {
                Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => {
                    out.push_str(&Value::String(s.clone()).to_string())
                }
                other => render(other.as_ref(), &mut out),
            }
        }
        out.push('}');
        out
    }
}

fn render(value: Option<&CqlValue>, out: &mut String) {
    let _ = match value {
        None => write!(out, "null"),
        Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => write!(out, "{s}"),
        Some(CqlValue::BigInt(v)) => write!(out, "{v}"),
        Some(CqlValue::Int(v)) => write!(out, "{v}"),
        Some(CqlValue::SmallInt(v)) => write!(out, "{v}"),
        Some(CqlValue::TinyInt(v)) => write!(out, "{v}"),
        Some(CqlValue::Timestamp(t)) => write!(out, "{}", t.0),
        Some(CqlValue::Double(v)) => write!(out, "{v}"),
        Some(CqlValue::Float(v)) => write!(out, "{v}"),
        Some(CqlValue::Boolean(v)) => write!(out, "{v}"),
        Some(other) => write!(out, "\"{other:?}\""),
    };
}

fn key_bytes(value: &CqlValue, key: &mut Vec<u8>) {
    match value {
        CqlValue::Text(s) | CqlValue::Ascii(s) => {
            key.extend_from_slice(&(s.len() as u32).to_le_bytes());
            key.extend_from_slice(s.as_bytes());
        }
        CqlValue::BigInt(v) => key.extend_from_slice(&v.to_le_bytes()),
        CqlValue::Timestamp(t) => key.extend_from_slice(&t.0.to_le_bytes()),
        CqlValue::Int(v) => key.extend_from_slice(&v.to_le_bytes()),
        CqlValue::SmallInt(v) => key.extend_from_slice(&v.to_le_bytes()),
        CqlValue::TinyInt(v) => key.extend_from_slice(&v.to_le_bytes()),
        CqlValue::Boolean(v) => key.push(u8::from(*v)),
        CqlValue::Blob(b) => {
            key.extend_from_slice(&(b.len() as u32).to_le_bytes());
            key.extend_from_slice(b);
        }
        other => key.extend_from_slice(format!("{other:?}").as_bytes()),
    }
}

/// Serialized size of a value (without its 4-byte length).
fn value_size(value: &CqlValue) -> usize {
    match value {
        CqlValue::Text(s) | CqlValue::Ascii(s) => s.len(),
        CqlValue::Blob(b) => b.len(),
        CqlValue::BigInt(_) | CqlValue::Timestamp(_) | CqlValue::Double(_) => 8,
        CqlValue::Int(_) | CqlValue::Float(_) => 4,
        CqlValue::SmallInt(_) => 2,
        CqlValue::TinyInt(_) | CqlValue::Boolean(_) => 1,
        CqlValue::List(items) | CqlValue::Set(items) => {
            4 + items.iter().map(|v| 4 + value_size(v)).sum::<usize>()
        }
        CqlValue::Map(pairs) => {
            4 + pairs
                .iter()
                .map(|(k, v)| 8 + value_size(k) + value_size(v))
                .sum::<usize>()
        }
        _ => 16,
    }
}

fn convert(value: &Value, ty: &CqlType) -> Result<CqlValue, String> {
    let int = |min: i64, max: i64| -> Result<i64, String> {
        match value.as_i64() {
            Some(v) if v >= min && v <= max => Ok(v),
            Some(v) => Err(format!("{v} does not fit {ty}")),
            None => Err(format!("{ty} needs an integer, got {value}")),
        }
    };
    Ok(match ty {
        CqlType::Text | CqlType::Ascii => match value {
            Value::String(s) if *ty == CqlType::Text => CqlValue::Text(s.clone()),
            Value::String(s) if s.is_ascii() => CqlValue::Ascii(s.clone()),
            _ => return Err(format!("{ty} needs a string, got {value}")),
        },
        CqlType::BigInt => CqlValue::BigInt(int(i64::MIN, i64::MAX)?),
        CqlType::Timestamp => CqlValue::Timestamp(CqlTimestamp(int(i64::MIN, i64::MAX)?)),
        CqlType::Int => CqlValue::Int(int(i32::MIN.into(), i32::MAX.into())? as i32),
        CqlType::SmallInt => CqlValue::SmallInt(int(i16::MIN.into(), i16::MAX.into())? as i16),
        CqlType::TinyInt => CqlValue::TinyInt(int(i8::MIN.into(), i8::MAX.into())? as i8),
        CqlType::Double => CqlValue::Double(
            value
                .as_f64()
                .ok_or_else(|| format!("double needs a number, got {value}"))?,
        ),
        CqlType::Float => CqlValue::Float(
            value
                .as_f64()
                .ok_or_else(|| format!("float needs a number, got {value}"))? as f32,
        ),
        CqlType::Boolean => CqlValue::Boolean(
            value
                .as_bool()
                .ok_or_else(|| format!("boolean needs a bool, got {value}"))?,
        ),
        CqlType::Blob => match value {
            Value::String(s) => CqlValue::Blob(s.as_bytes().to_vec()),
            Value::Array(items) => CqlValue::Blob(
                items
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| "blob needs bytes".to_string())?,
            ),
            _ => return Err(format!("blob needs bytes, got {value}")),
        },
        CqlType::List(inner) | CqlType::Set(inner) => {
            let Value::Array(items) = value else {
                return Err(format!("{ty} needs a sequence, got {value}"));
            };
            let items = items
                .iter()
                .map(|v| convert(v, inner))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(ty, CqlType::Set(_)) {
                CqlValue::Set(items)
            } else {
                CqlValue::List(items)
            }
        }
        CqlType::Map(k, v) => {
            let Value::Object(pairs) = value else {
                return Err(format!("{ty} needs a map, got {value}"));
            };
            CqlValue::Map(
                pairs
                    .iter()
                    .map(|(key, val)| Ok((convert(&Value::String(key.clone()), k)?, convert(val, v)?)))
                    .collect::<Result<Vec<_>, String>>()?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Row {
        product_id: String,
        window_start: i64,
        orders: i64,
        note: Option<String>,
    }

    fn layout() -> RowLayout {
        let col = |name: &str, ty| BoundColumn {
            name: name.into(),
            ty,
        };
        RowLayout {
            table: "shop.t".into(),
            columns: vec![
                col("product_id", CqlType::Text),
                col("window_start", CqlType::Timestamp),
                col("orders", CqlType::Int),
                col("note", CqlType::Text),
            ],
            partition_key: vec![0],
        }
    }

    #[test]
    fn rows_encode_in_column_order_with_key_bytes() {
        let row = Row {
            product_id: "p-7".into(),
            window_start: 60_000,
            orders: 3,
            note: None,
        };
        let mut key = Vec::new();
        let encoded = layout().encode(&row, &mut key).unwrap();
        assert_eq!(
            encoded.values,
            vec![
                Some(CqlValue::Text("p-7".into())),
                Some(CqlValue::Timestamp(CqlTimestamp(60_000))),
                Some(CqlValue::Int(3)),
                None
            ]
        );
        assert_eq!(key, [3, 0, 0, 0, b'p', b'-', b'7']);
        assert_eq!(layout().key_text(&encoded), "product_id=p-7");
        assert_eq!(
            layout().row_json(&encoded),
            r#"{"product_id":"p-7","window_start":60000,"orders":3,"note":null}"#
        );
    }

    #[test]
    fn out_of_range_values_name_their_column() {
        let row = Row {
            product_id: "p".into(),
            window_start: 0,
            orders: i64::from(i32::MAX) + 1,
            note: None,
        };
        let err = layout().encode(&row, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains("column 'orders'") && err.contains("does not fit int"),
            "{err}"
        );
    }
}
