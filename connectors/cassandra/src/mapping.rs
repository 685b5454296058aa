//! How a row type's fields map to a table's columns.

use std::fmt;

use scylla::frame::response::result::{CollectionType, ColumnType, NativeType};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_reflection::{ContainerFormat, Format, Named, Tracer, TracerConfig};

use super::error::CassandraError;

/// The CQL column types a row field can be written to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CqlType {
    /// `text` (or `varchar`).
    Text,
    /// `ascii`.
    Ascii,
    /// `bigint`.
    BigInt,
    /// `int`.
    Int,
    /// `smallint`.
    SmallInt,
    /// `tinyint`.
    TinyInt,
    /// `double`.
    Double,
    /// `float`.
    Float,
    /// `boolean`.
    Boolean,
    /// `blob`.
    Blob,
    /// `timestamp`: an `i64` of epoch milliseconds in the row.
    Timestamp,
    /// `list<T>`.
    List(Box<CqlType>),
    /// `set<T>`.
    Set(Box<CqlType>),
    /// `map<K, V>`.
    Map(Box<CqlType>, Box<CqlType>),
}

impl fmt::Display for CqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CqlType::Text => f.write_str("text"),
            CqlType::Ascii => f.write_str("ascii"),
            CqlType::BigInt => f.write_str("bigint"),
            CqlType::Int => f.write_str("int"),
            CqlType::SmallInt => f.write_str("smallint"),
            CqlType::TinyInt => f.write_str("tinyint"),
            CqlType::Double => f.write_str("double"),
            CqlType::Float => f.write_str("float"),
            CqlType::Boolean => f.write_str("boolean"),
            CqlType::Blob => f.write_str("blob"),
            CqlType::Timestamp => f.write_str("timestamp"),
            CqlType::List(t) => write!(f, "list<{t}>"),
            CqlType::Set(t) => write!(f, "set<{t}>"),
            CqlType::Map(k, v) => write!(f, "map<{k}, {v}>"),
        }
    }
}

impl CqlType {
    /// The sink's type for a column type the store reported, if it can write it.
    pub(crate) fn from_column(typ: &ColumnType<'_>) -> Option<CqlType> {
        Some(match typ {
            ColumnType::Native(n) => match n {
                NativeType::Text => CqlType::Text,
                NativeType::Ascii => CqlType::Ascii,
                NativeType::BigInt => CqlType::BigInt,
                NativeType::Int => CqlType::Int,
                NativeType::SmallInt => CqlType::SmallInt,
                NativeType::TinyInt => CqlType::TinyInt,
                NativeType::Double => CqlType::Double,
                NativeType::Float => CqlType::Float,
                NativeType::Boolean => CqlType::Boolean,
                NativeType::Blob => CqlType::Blob,
                NativeType::Timestamp => CqlType::Timestamp,
                _ => return None,
            },
            ColumnType::Collection { typ, .. } => match typ {
                CollectionType::List(t) => CqlType::List(Box::new(Self::from_column(t)?)),
                CollectionType::Set(t) => CqlType::Set(Box::new(Self::from_column(t)?)),
                CollectionType::Map(k, v) => {
                    CqlType::Map(Box::new(Self::from_column(k)?), Box::new(Self::from_column(v)?))
                }
                _ => return None,
            },
            _ => return None,
        })
    }

    /// The column type a field of this Rust shape gets in `CREATE TABLE`.
    pub(crate) fn for_field(format: &FieldFormat) -> Option<CqlType> {
        Some(match format {
            FieldFormat::Str => CqlType::Text,
            FieldFormat::Int(bits) if *bits <= 8 => CqlType::TinyInt,
            FieldFormat::Int(16) => CqlType::SmallInt,
            FieldFormat::Int(32) => CqlType::Int,
            FieldFormat::Int(_) => CqlType::BigInt,
            FieldFormat::Float(32) => CqlType::Float,
            FieldFormat::Float(_) => CqlType::Double,
            FieldFormat::Bool => CqlType::Boolean,
            FieldFormat::Bytes => CqlType::Blob,
            FieldFormat::Seq(inner) => CqlType::List(Box::new(Self::for_field(inner)?)),
            FieldFormat::Map(k, v) => {
                CqlType::Map(Box::new(Self::for_field(k)?), Box::new(Self::for_field(v)?))
            }
            FieldFormat::Other(_) | FieldFormat::Any => return None,
        })
    }

    /// Whether a field of `format` can be written to a column of this type.
    fn accepts(&self, format: &FieldFormat) -> bool {
        match (self, format) {
            (_, FieldFormat::Any) => true,
            (CqlType::Text | CqlType::Ascii, FieldFormat::Str) => true,
            (CqlType::BigInt | CqlType::Timestamp, FieldFormat::Int(_)) => true,
            (CqlType::Int, FieldFormat::Int(bits)) => *bits <= 32,
            (CqlType::SmallInt, FieldFormat::Int(bits)) => *bits <= 16,
            (CqlType::TinyInt, FieldFormat::Int(bits)) => *bits <= 8,
            (CqlType::Double | CqlType::Float, FieldFormat::Float(_) | FieldFormat::Int(_)) => true,
            (CqlType::Boolean, FieldFormat::Bool) => true,
            (CqlType::Blob, FieldFormat::Bytes | FieldFormat::Str) => true,
            // `Vec<u8>`: a u8 counts as 16 bits (see `FieldFormat::Int`).
            (CqlType::Blob, FieldFormat::Seq(inner)) => **inner == FieldFormat::Int(16),
            (CqlType::List(t) | CqlType::Set(t), FieldFormat::Seq(inner)) => t.accepts(inner),
            (CqlType::Map(k, v), FieldFormat::Map(fk, fv)) => k.accepts(fk) && v.accepts(fv),
            _ => false,
        }
    }
}

/// The shape of a row field as serde describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldFormat {
    Str,
    /// An integer of this many bits (unsigned ones count one more, so `u32` needs a `bigint`).
    Int(u8),
    Float(u8),
    Bool,
    Bytes,
    Seq(Box<FieldFormat>),
    Map(Box<FieldFormat>, Box<FieldFormat>),
    Other(String),
    /// Not known before a row is written (rows such as `serde_json::Map`): any column type,
    /// each value converted when written.
    Any,
}

impl fmt::Display for FieldFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldFormat::Str => f.write_str("a string"),
            FieldFormat::Int(bits) => write!(f, "a {bits}-bit integer"),
            FieldFormat::Float(bits) => write!(f, "a {bits}-bit float"),
            FieldFormat::Bool => f.write_str("a bool"),
            FieldFormat::Bytes => f.write_str("bytes"),
            FieldFormat::Seq(inner) => write!(f, "a sequence of {inner}"),
            FieldFormat::Map(k, v) => write!(f, "a map from {k} to {v}"),
            FieldFormat::Other(s) => f.write_str(s),
            FieldFormat::Any => f.write_str("a value of any type"),
        }
    }
}

/// One field of the row type.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: String,
    pub format: FieldFormat,
    pub nullable: bool,
}

/// The named fields of `T`, read from its serde implementation without a value.
pub(crate) fn row_fields<T: Serialize + DeserializeOwned>() -> Result<Vec<Field>, String> {
    let mut tracer = Tracer::new(TracerConfig::default());
    let (format, _) = tracer
        .trace_simple_type::<T>()
        .map_err(|e| format!("cannot read the row type's fields: {e}"))?;
    let registry = tracer
        .registry()
        .map_err(|e| format!("cannot read the row type's fields: {e}"))?;
    let fields = struct_fields(&format, &registry)?;
    let describe = |format: &Format| describe_format(format, &registry);
    Ok(fields
        .iter()
        .map(|named| {
            let (format, nullable) = match &named.value {
                Format::Option(inner) => (describe(inner), true),
                other => (describe(other), false),
            };
            Field {
                name: named.name.clone(),
                format,
                nullable,
            }
        })
        .collect())
}

/// The fields of the struct `format` names (looking through newtype wrappers).
fn struct_fields<'a>(
    mut format: &'a Format,
    registry: &'a serde_reflection::Registry,
) -> Result<Vec<Named<Format>>, String> {
    loop {
        let Format::TypeName(name) = format else {
            return Err("a row must be a struct with named fields".into());
        };
        match registry.get(name) {
            Some(ContainerFormat::Struct(fields)) => return Ok(fields.clone()),
            Some(ContainerFormat::NewTypeStruct(inner)) => format = inner,
            _ => return Err(format!("a row must be a struct with named fields, {name} is not")),
        }
    }
}

fn describe_format(format: &Format, registry: &serde_reflection::Registry) -> FieldFormat {
    match format {
        Format::Str | Format::Char => FieldFormat::Str,
        Format::I8 => FieldFormat::Int(8),
        Format::U8 | Format::I16 => FieldFormat::Int(16),
        Format::U16 | Format::I32 => FieldFormat::Int(32),
        Format::U32 | Format::I64 => FieldFormat::Int(64),
        Format::U64 | Format::I128 | Format::U128 => FieldFormat::Int(128),
        Format::F32 => FieldFormat::Float(32),
        Format::F64 => FieldFormat::Float(64),
        Format::Bool => FieldFormat::Bool,
        Format::Bytes => FieldFormat::Bytes,
        Format::Option(inner) => describe_format(inner, registry),
        Format::Seq(inner) => FieldFormat::Seq(Box::new(describe_format(inner, registry))),
        Format::Map { key, value } => FieldFormat::Map(
            Box::new(describe_format(key, registry)),
            Box::new(describe_format(value, registry)),
        ),
        Format::TypeName(name) => match registry.get(name) {
            Some(ContainerFormat::NewTypeStruct(inner)) => describe_format(inner, registry),
            _ => FieldFormat::Other(format!("a {name}")),
        },
        other => FieldFormat::Other(format!("{other:?}")),
    }
}

/// A row field bound to a table column.
#[derive(Debug, Clone)]
pub(crate) struct BoundColumn {
    pub name: String,
    pub ty: CqlType,
}

/// Checks every field of the row type against the table's columns (name → type) and returns
/// the columns the sink writes, in field order.
pub(crate) fn bind_columns(
    row: &'static str,
    table: &str,
    fields: &[Field],
    columns: &[(String, ColumnType<'static>)],
) -> Result<Vec<BoundColumn>, CassandraError> {
    let mismatch = |reason: String| CassandraError::Mapping {
        row,
        table: table.to_string(),
        reason,
    };
    if fields.is_empty() {
        return Err(mismatch("the row type has no fields".into()));
    }
    fields
        .iter()
        .map(|field| {
            let Some((_, typ)) = columns.iter().find(|(name, _)| *name == field.name) else {
                let known: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
                return Err(mismatch(format!(
                    "field '{}' has no column in the table (columns: {})",
                    field.name,
                    known.join(", ")
                )));
            };
            let Some(ty) = CqlType::from_column(typ) else {
                return Err(mismatch(format!(
                    "column '{}' has type {typ:?}, which the sink cannot write",
                    field.name
                )));
            };
            if !ty.accepts(&field.format) {
                return Err(mismatch(format!(
                    "column '{}' is {ty} but field '{}' is {}",
                    field.name, field.name, field.format
                )));
            }
            Ok(BoundColumn {
                name: field.name.clone(),
                ty,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Revenue {
        product_id: String,
        window_start: i64,
        revenue_cents: i64,
        #[serde(rename = "orders")]
        order_count: u32,
        note: Option<String>,
    }

    fn columns() -> Vec<(String, ColumnType<'static>)> {
        vec![
            ("product_id".into(), ColumnType::Native(NativeType::Text)),
            ("window_start".into(), ColumnType::Native(NativeType::Timestamp)),
            ("revenue_cents".into(), ColumnType::Native(NativeType::BigInt)),
            ("orders".into(), ColumnType::Native(NativeType::BigInt)),
            ("note".into(), ColumnType::Native(NativeType::Text)),
        ]
    }

    #[test]
    fn fields_are_read_from_the_type_with_serde_names() {
        let fields = row_fields::<Revenue>().unwrap();
        let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["product_id", "window_start", "revenue_cents", "orders", "note"]
        );
        assert!(fields[4].nullable);
        assert_eq!(fields[3].format, FieldFormat::Int(64));
        let bound = bind_columns("Revenue", "shop.t", &fields, &columns()).unwrap();
        assert_eq!(bound[1].ty, CqlType::Timestamp);
    }

    #[test]
    fn a_missing_or_mistyped_column_is_named() {
        let fields = row_fields::<Revenue>().unwrap();
        let mut missing = columns();
        missing.remove(2);
        let err = bind_columns("Revenue", "shop.t", &fields, &missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("field 'revenue_cents' has no column"), "{err}");
        let mut mistyped = columns();
        mistyped[2].1 = ColumnType::Native(NativeType::Text);
        let err = bind_columns("Revenue", "shop.t", &fields, &mistyped)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("column 'revenue_cents' is text but field 'revenue_cents' is a 64-bit integer"),
            "{err}"
        );
        let mut narrow = columns();
        narrow[3].1 = ColumnType::Native(NativeType::Int);
        let err = bind_columns("Revenue", "shop.t", &fields, &narrow)
            .unwrap_err()
            .to_string();
        assert!(err.contains("column 'orders' is int"), "{err}");
    }

    #[test]
    fn only_structs_are_rows() {
        assert!(row_fields::<(String, i64)>().is_err());
        assert!(row_fields::<i64>().is_err());
    }
}
