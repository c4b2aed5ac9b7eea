//! TEMPORARY SHIM (not committed): replaced by the query helper's module.
#![allow(missing_docs)]
use serde_json::Value;
use std::cmp::Ordering;
use std::ops::Bound;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum QueryError {
    #[error("unknown operator {operator}")]
    UnknownOperator { operator: String },
    #[error("invalid query: {reason}")]
    InvalidQuery { reason: String },
}
#[derive(Debug, Clone)]
pub struct Filter(Vec<(String, Value)>);
impl Filter {
    pub fn parse(v: &Value) -> Result<Filter, QueryError> {
        let Value::Object(m) = v else { return Err(QueryError::UnknownOperator { operator: "x".into() }) };
        Ok(Filter(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
    }
    pub fn all() -> Filter { Filter(vec![]) }
    pub fn is_empty(&self) -> bool { self.0.is_empty() }
    pub fn matches(&self, doc: &Value) -> bool {
        self.0.iter().all(|(k, v)| doc.get(k) == Some(v))
    }
    pub fn index_predicates(&self) -> Vec<IndexPredicate> {
        self.0.iter().map(|(k, v)| IndexPredicate { path: k.clone(), scan: IndexScan::Keys(vec![IndexKey::from_value(v)]) }).collect()
    }
}
pub struct IndexPredicate { pub path: String, pub scan: IndexScan }
pub enum IndexScan { Keys(Vec<IndexKey>), Range { lower: Bound<IndexKey>, upper: Bound<IndexKey> } }
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexKey(String);
impl IndexKey { pub fn from_value(v: &Value) -> IndexKey { IndexKey(v.to_string()) } }
pub fn index_keys(doc: &Value, path: &str) -> Vec<IndexKey> {
    doc.get(path).map(|v| vec![IndexKey::from_value(v)]).unwrap_or_default()
}
#[derive(Debug, Clone)]
pub struct SortSpec(Vec<(String, i64)>);
impl SortSpec {
    pub fn parse(v: &Value) -> Result<SortSpec, QueryError> {
        let Value::Object(m) = v else { return Err(QueryError::UnknownOperator { operator: "x".into() }) };
        Ok(SortSpec(m.iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(1))).collect()))
    }
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for (k, d) in &self.0 {
            let o = compare_values(a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
            let o = if *d < 0 { o.reverse() } else { o };
            if o != Ordering::Equal { return o; }
        }
        Ordering::Equal
    }
}
#[derive(Debug, Clone)]
pub struct Projection(Vec<String>);
impl Projection {
    pub fn parse(v: &Value) -> Result<Projection, QueryError> {
        let Value::Object(m) = v else { return Err(QueryError::UnknownOperator { operator: "x".into() }) };
        Ok(Projection(m.keys().cloned().collect()))
    }
    pub fn apply(&self, doc: &Value) -> Value {
        let mut out = serde_json::Map::new();
        for k in self.0.iter().chain(std::iter::once(&"_id".to_string())) {
            if let Some(v) = doc.get(k) { out.insert(k.clone(), v.clone()); }
        }
        Value::Object(out)
    }
}
pub fn compare_values(a: &Value, b: &Value) -> Ordering { a.to_string().cmp(&b.to_string()) }
