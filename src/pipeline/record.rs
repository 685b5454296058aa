//! Records of a declarative pipeline: JSON objects decoded into what the pipeline reads from
//! them, refused (with the field named) when a field it needs is missing or of the wrong kind.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A key value: records are grouped by it and it is written back with its type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyValue {
    /// A string field.
    Text(String),
    /// An integer field.
    Int(i64),
}

impl KeyValue {
    /// The JSON value written to the key column.
    pub fn to_json(&self) -> Value {
        match self {
            KeyValue::Text(s) => Value::String(s.clone()),
            KeyValue::Int(i) => Value::from(*i),
        }
    }
}

/// A number as JSON had it: integers stay exact.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Num {
    /// An integer.
    Int(i64),
    /// Anything else.
    Float(f64),
}

impl Num {
    /// As a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// As JSON.
    pub fn to_json(self) -> Value {
        match self {
            Num::Int(i) => Value::from(i),
            Num::Float(f) => Value::from(f),
        }
    }
}

impl std::ops::Add for Num {
    type Output = Num;

    /// The sum; integers stay integers unless they overflow.
    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.checked_add(b).map_or(Num::Float(a as f64 + b as f64), Num::Int),
            (a, b) => Num::Float(a.as_f64() + b.as_f64()),
        }
    }
}

impl std::ops::Mul for Num {
    type Output = Num;

    /// The product; integers stay integers unless they overflow.
    fn mul(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.checked_mul(b).map_or(Num::Float(a as f64 * b as f64), Num::Int),
            (a, b) => Num::Float(a.as_f64() * b.as_f64()),
        }
    }
}

/// What a pipeline takes from one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decoded {
    /// The key field (windowed pipelines).
    pub key: Option<KeyValue>,
    /// The event time (epoch ms).
    pub ts: i64,
    /// One value per aggregate (`None` for `count`).
    pub numbers: Vec<Option<Num>>,
    /// Column → value (pipelines without a window).
    pub row: Map<String, Value>,
}

/// How to decode: the fields a pipeline reads.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    /// The key field, if the pipeline groups.
    pub key: Option<String>,
    /// The event-time field.
    pub event_time: String,
    /// Per aggregate: nothing (count), one field, or a product of two.
    pub numbers: Vec<Option<Vec<String>>>,
    /// Column → field, for pipelines without a window.
    pub columns: Vec<(String, String)>,
}

impl Fields {
    /// Decodes one JSON object; the error names the field.
    pub fn decode(&self, payload: &[u8]) -> Result<Decoded, String> {
        let object: Map<String, Value> =
            serde_json::from_slice(payload).map_err(|e| format!("not a JSON object: {e}"))?;
        let field = |name: &str| object.get(name).filter(|v| !v.is_null());
        let key = match &self.key {
            None => None,
            Some(name) => Some(match field(name) {
                Some(Value::String(s)) => KeyValue::Text(s.clone()),
                Some(Value::Number(n)) if n.is_i64() => KeyValue::Int(n.as_i64().unwrap_or_default()),
                Some(other) => {
                    return Err(format!(
                        "key field '{name}' is {other}, not a string or an integer"
                    ));
                }
                None => return Err(format!("key field '{name}' is missing")),
            }),
        };
        let ts = match field(&self.event_time) {
            Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or_default(),
            Some(other) => {
                return Err(format!(
                    "event-time field '{}' is {other}, not epoch milliseconds",
                    self.event_time
                ));
            }
            None => return Err(format!("event-time field '{}' is missing", self.event_time)),
        };
        let number = |name: &str| -> Result<Num, String> {
            match field(name) {
                Some(Value::Number(n)) => Ok(match n.as_i64() {
                    Some(i) => Num::Int(i),
                    None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
                }),
                Some(other) => Err(format!("field '{name}' is {other}, not a number")),
                None => Err(format!("field '{name}' is missing")),
            }
        };
        let mut numbers = Vec::with_capacity(self.numbers.len());
        for factors in &self.numbers {
            numbers.push(match factors {
                None => None,
                Some(factors) => {
                    let mut product = Num::Int(1);
                    for f in factors {
                        product = product * number(f)?;
                    }
                    Some(product)
                }
            });
        }
        let row = self
            .columns
            .iter()
            .map(|(column, name)| (column.clone(), field(name).cloned().unwrap_or(Value::Null)))
            .collect();
        Ok(Decoded {
            key,
            ts,
            numbers,
            row,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            key: Some("product_id".into()),
            event_time: "ts".into(),
            numbers: vec![None, Some(vec!["price".into(), "qty".into()])],
            columns: vec![],
        }
    }

    #[test]
    fn decodes_keys_times_and_products() {
        let d = fields()
            .decode(br#"{"product_id":"p-1","ts":5,"price":250,"qty":3}"#)
            .expect("valid");
        assert_eq!(d.key, Some(KeyValue::Text("p-1".into())));
        assert_eq!(d.ts, 5);
        assert_eq!(d.numbers, vec![None, Some(Num::Int(750))]);
        let d = fields()
            .decode(br#"{"product_id":7,"ts":5,"price":2.5,"qty":2}"#)
            .expect("valid");
        assert_eq!(d.key, Some(KeyValue::Int(7)));
        assert_eq!(d.numbers[1], Some(Num::Float(5.0)));
    }

    #[test]
    fn errors_name_the_field() {
        let f = fields();
        let e = f.decode(br#"{"ts":5,"price":1,"qty":1}"#).expect_err("no key");
        assert!(e.contains("'product_id' is missing"), "{e}");
        let e = f
            .decode(br#"{"product_id":"p","ts":"noon","price":1,"qty":1}"#)
            .expect_err("bad ts");
        assert!(e.contains("'ts'"), "{e}");
        let e = f
            .decode(br#"{"product_id":"p","ts":1,"price":"x","qty":1}"#)
            .expect_err("bad number");
        assert!(e.contains("'price'"), "{e}");
        assert!(f.decode(b"[1,2]").is_err());
    }

    #[test]
    fn integer_sums_stay_exact() {
        assert_eq!(Num::Int(i64::MAX - 1) + Num::Int(1), Num::Int(i64::MAX));
        assert!(matches!(Num::Int(i64::MAX) + Num::Int(1), Num::Float(_)));
        assert_eq!(Num::Int(2) + Num::Float(0.5), Num::Float(2.5));
    }
}
