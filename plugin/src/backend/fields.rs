//! Request bodies: a JSON object whose fields are checked by name. HTTP clients send typed JSON,
//! the CLI sends every value as a string; both are accepted, nothing else is. The body's text is
//! kept, so a field whose numbers must be read exactly (typed data) can be read again from it.

use serde_json::{Map, Value};

use super::reply::{Reply, invalid};
use crate::eth::exact::Exact;

pub struct Fields {
    map: Map<String, Value>,
    text: String,
}

impl Fields {
    pub fn parse(data: &str) -> Result<Fields, Reply> {
        let trimmed = data.trim();
        if trimmed.is_empty() || trimmed == "null" {
            return Ok(Fields {
                map: Map::new(),
                text: String::new(),
            });
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(map)) => Ok(Fields {
                map,
                text: trimmed.to_owned(),
            }),
            Ok(_) => Err(invalid("the request body must be a JSON object")),
            Err(e) => Err(invalid(format!("the request body is not JSON: {e}"))),
        }
    }

    /// Refuses any field not in `known`, so a misspelt constraint is never silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), Reply> {
        let mut unknown: Vec<&str> = self
            .map
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        unknown.sort_unstable();
        match unknown.first() {
            None => Ok(()),
            Some(k) => Err(invalid(format!(
                "unknown field '{k}' (this path takes: {})",
                known.join(", ")
            ))),
        }
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A field read again from the body's text with its numbers exactly as the client wrote
    /// them (serde_json alone rounds an integer beyond 64 bits to an f64).
    pub fn exact(&self, name: &str) -> Result<Option<Exact>, Reply> {
        if self.value(name).is_none() {
            return Ok(None);
        }
        let body = Exact::parse(&self.text)
            .map_err(|e| invalid(format!("the request body is not JSON: {e}")))?;
        match body {
            Exact::Object(mut map) => Ok(map.remove(name)),
            _ => Err(invalid("the request body must be a JSON object")),
        }
    }

    pub fn str(&self, name: &str) -> Result<Option<&str>, Reply> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(format!("field '{name}' must be a string"))),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, Reply> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(v) => Err(invalid(format!(
                "field '{name}' must be true or false, not {v}"
            ))),
        }
    }

    /// A list of strings: a JSON array, or one comma-separated string (as the CLI sends it).
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, Reply> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_owned()),
                    _ => Err(invalid(format!("field '{name}' must be a list of strings"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(Vec::new())),
            Some(Value::String(s)) => Ok(Some(s.split(',').map(|p| p.trim().to_owned()).collect())),
            Some(_) => Err(invalid(format!("field '{name}' must be a list of strings"))),
        }
    }
}

/// `bad` from the eth parsers is already a complete message naming the field.
pub fn field_err(msg: String) -> Reply {
    Reply::Invalid(msg)
}
