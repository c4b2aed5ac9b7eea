//! Keys of secondary indexes: [`IndexKey`], an owned, hashable value whose
//! order agrees with [`compare_values`](super::compare_values); [`index_keys`],
//! the keys a document is filed under for a path; and the scans a filter asks
//! of an index ([`IndexPredicate`], [`IndexScan`]).

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::ops::{Bound, ControlFlow, RangeBounds};

use serde_json::Value;

use super::order::{NumberRepr, TypeBracket};
use super::path::FieldPath;

/// The order-preserving key of one JSON value, for secondary indexes.
///
/// `Ord` agrees with [`compare_values`](super::compare_values), and numbers
/// are normalised so that `1`, `1.0` and `1u64` are one key. Besides the keys
/// of values there are two sentinel keys per [`TypeBracket`],
/// [`IndexKey::bracket_start`] and [`IndexKey::bracket_end`], which sort
/// before and after every value of their bracket; they bound range scans to
/// one bracket and are never the key of a document.
#[derive(Debug, Clone)]
pub struct IndexKey(KeyRepr);

#[derive(Debug, Clone, Hash)]
enum KeyRepr {
    Start(TypeBracket),
    End(TypeBracket),
    Null,
    Number(NumberKey),
    String(String),
    Object(Vec<(String, IndexKey)>),
    Array(Vec<IndexKey>),
    Bool(bool),
}

/// A normalised number (see `NumberRepr`): equal numbers have one
/// representation, so hashing the representation agrees with equality.
#[derive(Debug, Clone, Copy)]
struct NumberKey(NumberRepr);

impl Hash for NumberKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self.0 {
            NumberRepr::Int(i) => (0_u8, i).hash(state),
            NumberRepr::Float(f) => (1_u8, f.to_bits()).hash(state),
        }
    }
}

/// Where a key sits within its bracket: sentinels at either end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Start,
    Value,
    End,
}

impl KeyRepr {
    fn position(&self) -> (TypeBracket, Place) {
        match self {
            KeyRepr::Start(b) => (*b, Place::Start),
            KeyRepr::End(b) => (*b, Place::End),
            KeyRepr::Null => (TypeBracket::Null, Place::Value),
            KeyRepr::Number(_) => (TypeBracket::Number, Place::Value),
            KeyRepr::String(_) => (TypeBracket::String, Place::Value),
            KeyRepr::Object(_) => (TypeBracket::Object, Place::Value),
            KeyRepr::Array(_) => (TypeBracket::Array, Place::Value),
            KeyRepr::Bool(_) => (TypeBracket::Boolean, Place::Value),
        }
    }
}

impl IndexKey {
    /// The key of a value. Objects and arrays have keys too (compared as
    /// [`compare_values`](super::compare_values) does), though
    /// [`index_keys`] files an array under its elements.
    pub fn from_value(value: &Value) -> IndexKey {
        IndexKey(match value {
            Value::Null => KeyRepr::Null,
            Value::Bool(b) => KeyRepr::Bool(*b),
            Value::Number(n) => KeyRepr::Number(NumberKey(NumberRepr::of(n))),
            Value::String(s) => KeyRepr::String(s.clone()),
            Value::Array(items) => KeyRepr::Array(items.iter().map(IndexKey::from_value).collect()),
            Value::Object(members) => KeyRepr::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), IndexKey::from_value(v)))
                    .collect(),
            ),
        })
    }

    /// A key below every value of `bracket` and above every value of the
    /// brackets before it.
    pub fn bracket_start(bracket: TypeBracket) -> IndexKey {
        IndexKey(KeyRepr::Start(bracket))
    }

    /// A key above every value of `bracket` and below every value of the
    /// brackets after it.
    pub fn bracket_end(bracket: TypeBracket) -> IndexKey {
        IndexKey(KeyRepr::End(bracket))
    }

    /// The bracket this key belongs to (sentinels included).
    pub fn bracket(&self) -> TypeBracket {
        self.0.position().0
    }
}

/// Tags of the binary key encoding used by the checkpoint (`encode`/`decode`).
const KEY_NULL: u8 = 0;
const KEY_INT: u8 = 1;
const KEY_FLOAT: u8 = 2;
const KEY_STRING: u8 = 3;
const KEY_OBJECT: u8 = 4;
const KEY_ARRAY: u8 = 5;
const KEY_FALSE: u8 = 6;
const KEY_TRUE: u8 = 7;
/// Nesting deeper than any stored document can produce is refused on decode.
const KEY_DEPTH_MAX: usize = crate::limits::DOC_DEPTH_MAX + 1;

impl IndexKey {
    /// Appends the binary encoding of this key (a document's key, never a
    /// sentinel) to `out`. `decode` reads it back to an equal key. Used by
    /// the checkpoint file (`docs/format.md`).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        fn put_len(out: &mut Vec<u8>, n: usize) {
            let n = u32::try_from(n).expect("keys come from documents of bounded size");
            out.extend_from_slice(&n.to_le_bytes());
        }
        match &self.0 {
            KeyRepr::Start(_) | KeyRepr::End(_) => {
                unreachable!("sentinel keys are never filed in an index")
            }
            KeyRepr::Null => out.push(KEY_NULL),
            KeyRepr::Bool(false) => out.push(KEY_FALSE),
            KeyRepr::Bool(true) => out.push(KEY_TRUE),
            KeyRepr::Number(NumberKey(NumberRepr::Int(i))) => {
                out.push(KEY_INT);
                out.extend_from_slice(&i.to_le_bytes());
            }
            KeyRepr::Number(NumberKey(NumberRepr::Float(f))) => {
                out.push(KEY_FLOAT);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            KeyRepr::String(s) => {
                out.push(KEY_STRING);
                put_len(out, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            KeyRepr::Object(members) => {
                out.push(KEY_OBJECT);
                put_len(out, members.len());
                for (name, key) in members {
                    put_len(out, name.len());
                    out.extend_from_slice(name.as_bytes());
                    key.encode(out);
                }
            }
            KeyRepr::Array(items) => {
                out.push(KEY_ARRAY);
                put_len(out, items.len());
                for key in items {
                    key.encode(out);
                }
            }
        }
    }

    /// Decodes one key written by `encode` from the front of `buf`,
    /// advancing it. `None` for anything `encode` never writes (unknown tag,
    /// cut short, invalid UTF-8, a non-finite or non-normalised number,
    /// nesting past the document depth limit); never panics.
    pub(crate) fn decode(buf: &mut &[u8]) -> Option<IndexKey> {
        Self::decode_at(buf, 0)
    }

    fn decode_at(buf: &mut &[u8], depth: usize) -> Option<IndexKey> {
        fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if buf.len() < n {
                return None;
            }
            let (head, rest) = buf.split_at(n);
            *buf = rest;
            Some(head)
        }
        fn len(buf: &mut &[u8]) -> Option<usize> {
            let n = u32::from_le_bytes(take(buf, 4)?.try_into().ok()?) as usize;
            // Every element takes at least one byte: a count past the rest
            // of the input is damage, not a reason to allocate.
            (n <= buf.len()).then_some(n)
        }
        fn string(buf: &mut &[u8]) -> Option<String> {
            let n = len(buf)?;
            std::str::from_utf8(take(buf, n)?).ok().map(str::to_owned)
        }
        if depth > KEY_DEPTH_MAX {
            return None;
        }
        let tag = *take(buf, 1)?.first()?;
        let repr = match tag {
            KEY_NULL => KeyRepr::Null,
            KEY_FALSE => KeyRepr::Bool(false),
            KEY_TRUE => KeyRepr::Bool(true),
            KEY_INT => KeyRepr::Number(NumberKey(NumberRepr::Int(i128::from_le_bytes(
                take(buf, 16)?.try_into().ok()?,
            )))),
            KEY_FLOAT => {
                let f = f64::from_bits(u64::from_le_bytes(take(buf, 8)?.try_into().ok()?));
                if !f.is_finite() {
                    return None;
                }
                match NumberRepr::from_f64(f) {
                    // An integral float is always stored as an integer key.
                    NumberRepr::Int(_) => return None,
                    float => KeyRepr::Number(NumberKey(float)),
                }
            }
            KEY_STRING => KeyRepr::String(string(buf)?),
            KEY_OBJECT => {
                let n = len(buf)?;
                let mut members = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = string(buf)?;
                    members.push((name, Self::decode_at(buf, depth + 1)?));
                }
                KeyRepr::Object(members)
            }
            KEY_ARRAY => {
                let n = len(buf)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(Self::decode_at(buf, depth + 1)?);
                }
                KeyRepr::Array(items)
            }
            _ => return None,
        };
        Some(IndexKey(repr))
    }
}

impl Ord for IndexKey {
    fn cmp(&self, other: &IndexKey) -> Ordering {
        let by_position = self.0.position().cmp(&other.0.position());
        if by_position != Ordering::Equal {
            return by_position;
        }
        match (&self.0, &other.0) {
            (KeyRepr::Number(a), KeyRepr::Number(b)) => a.0.cmp(b.0),
            (KeyRepr::String(a), KeyRepr::String(b)) => a.cmp(b),
            (KeyRepr::Object(a), KeyRepr::Object(b)) => a.cmp(b),
            (KeyRepr::Array(a), KeyRepr::Array(b)) => a.cmp(b),
            (KeyRepr::Bool(a), KeyRepr::Bool(b)) => a.cmp(b),
            // Equal positions with no payload: both null, or the same sentinel.
            _ => Ordering::Equal,
        }
    }
}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &IndexKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &IndexKey) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for IndexKey {}

impl Hash for IndexKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal keys have the same variant and normalised payload.
        self.0.hash(state);
    }
}

/// The keys under which an index on `path` files `doc`, ascending and without
/// duplicates: every value the path reaches, except that an array is filed
/// under each of its elements instead (multikey, like MongoDB; an empty array
/// gives no key). A path that reaches nothing, or is not a valid
/// [`FieldPath`], gives no keys: the document is not in the index.
pub fn index_keys(doc: &Value, path: &str) -> Vec<IndexKey> {
    match FieldPath::parse(path) {
        Ok(path) => index_keys_at(doc, &path),
        Err(_) => Vec::new(),
    }
}

/// [`index_keys`] for an already parsed path.
pub(crate) fn index_keys_at(doc: &Value, path: &FieldPath) -> Vec<IndexKey> {
    let mut keys = Vec::new();
    let _ = path.walk(doc, &mut |reached| {
        match reached {
            Some(Value::Array(items)) => keys.extend(items.iter().map(IndexKey::from_value)),
            Some(value) => keys.push(IndexKey::from_value(value)),
            None => {}
        }
        ControlFlow::Continue(())
    });
    keys.sort();
    keys.dedup();
    keys
}

/// A condition of a filter that an index on `path` can serve: every document
/// the filter matches has at least one of its [`index_keys`] on `path` inside
/// `scan`. Documents found through it must still be checked with
/// [`Filter::matches`](super::Filter::matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPredicate {
    /// The dotted field path, as written in the filter.
    pub path: String,
    /// The keys to visit.
    pub scan: IndexScan,
}

/// The part of an index to visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexScan {
    /// Point look-ups (`$eq`, `$in`): every document with any of these keys.
    /// Ascending, without duplicates; empty when the condition can match
    /// nothing (`$in: []`).
    Keys(Vec<IndexKey>),
    /// A key range (`$gt`/`$gte`/`$lt`/`$lte`, possibly several on one path),
    /// held within one [`TypeBracket`] by its sentinel keys. Never empty or
    /// inverted (a condition that can match nothing comes as an empty
    /// [`IndexScan::Keys`]), so it can be handed straight to
    /// `BTreeMap::range`.
    Range {
        /// The lower bound.
        lower: Bound<IndexKey>,
        /// The upper bound.
        upper: Bound<IndexKey>,
    },
}

impl IndexScan {
    /// Whether the scan visits `key`.
    pub fn contains(&self, key: &IndexKey) -> bool {
        match self {
            IndexScan::Keys(keys) => keys.binary_search(key).is_ok(),
            IndexScan::Range { lower, upper } => (lower.as_ref(), upper.as_ref()).contains(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::hash_map::DefaultHasher;

    fn key(v: Value) -> IndexKey {
        IndexKey::from_value(&v)
    }

    fn hash_of(k: &IndexKey) -> u64 {
        let mut h = DefaultHasher::new();
        k.hash(&mut h);
        h.finish()
    }

    #[test]
    fn binary_keys_round_trip_and_damage_is_refused() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(-7),
            json!(u64::MAX),
            json!(1.5),
            json!(1e300),
            json!("caf\u{e9}"),
            json!({"a": [1, {"b": null}], "c": "d"}),
            json!([[], [2.5, "x"]]),
        ] {
            let k = key(v.clone());
            let mut bytes = Vec::new();
            k.encode(&mut bytes);
            let mut rest = &bytes[..];
            let back = IndexKey::decode(&mut rest).expect("decodes");
            assert!(rest.is_empty(), "{v}: all bytes consumed");
            assert_eq!(back, k, "{v}");
            assert_eq!(hash_of(&back), hash_of(&k), "{v}");
            for cut in 0..bytes.len() {
                assert!(
                    IndexKey::decode(&mut &bytes[..cut]).is_none(),
                    "{v} cut at {cut}"
                );
            }
        }
        // An integral float is never written as a float; NaN never at all.
        for f in [2.0_f64, f64::NAN] {
            let mut bytes = vec![KEY_FLOAT];
            bytes.extend_from_slice(&f.to_bits().to_le_bytes());
            assert!(IndexKey::decode(&mut &bytes[..]).is_none());
        }
        assert!(IndexKey::decode(&mut &[99u8][..]).is_none());
    }

    #[test]
    fn integer_and_float_keys_are_one_key_with_one_hash() {
        for (a, b) in [
            (json!(1), json!(1.0)),
            (json!(0), json!(-0.0)),
            (json!(u64::MAX), json!(u64::MAX)),
            (json!(1e20), json!(100000000000000000000_u128 as f64)),
        ] {
            assert_eq!(key(a.clone()), key(b.clone()), "{a} vs {b}");
            assert_eq!(hash_of(&key(a)), hash_of(&key(b)));
        }
        assert_ne!(
            key(json!(9007199254740993_i64)),
            key(json!(9007199254740992.0))
        );
        assert!(key(json!(9007199254740993_i64)) > key(json!(9007199254740992.0)));
    }

    #[test]
    fn sentinels_bound_their_bracket() {
        let start = IndexKey::bracket_start(TypeBracket::Number);
        let end = IndexKey::bracket_end(TypeBracket::Number);
        for v in [json!(-1e300), json!(0), json!(u64::MAX), json!(1e300)] {
            assert!(start < key(v.clone()) && key(v) < end);
        }
        assert!(key(json!(null)) < start);
        assert!(end < key(json!("")));
        assert!(IndexKey::bracket_end(TypeBracket::Null) < start);
        assert!(IndexKey::bracket_end(TypeBracket::Boolean) > key(json!(true)));
        assert_eq!(end.bracket(), TypeBracket::Number);
        assert_eq!(key(json!([1])).bracket(), TypeBracket::Array);
    }

    #[test]
    fn index_keys_file_arrays_under_their_elements() {
        let doc = json!({"tags": ["b", "a", "b", 1.0, 1], "n": null, "e": []});
        assert_eq!(
            index_keys(&doc, "tags"),
            vec![key(json!(1)), key(json!("a")), key(json!("b"))]
        );
        assert_eq!(index_keys(&doc, "n"), vec![key(json!(null))]);
        assert!(index_keys(&doc, "e").is_empty());
        assert!(index_keys(&doc, "missing").is_empty());
        assert!(index_keys(&doc, "bad..path").is_empty());
    }

    #[test]
    fn index_keys_follow_dotted_paths_through_arrays_of_objects() {
        let doc = json!({"a": [{"b": 2}, {"b": [3, 1]}, {"c": 0}], "o": {"p": {"q": "x"}}});
        assert_eq!(
            index_keys(&doc, "a.b"),
            vec![key(json!(1)), key(json!(2)), key(json!(3))]
        );
        assert_eq!(
            index_keys(&doc, "a.1.b"),
            vec![key(json!(1)), key(json!(3))]
        );
        assert_eq!(index_keys(&doc, "o.p.q"), vec![key(json!("x"))]);
        assert_eq!(index_keys(&doc, "o.p"), vec![key(json!({"q": "x"}))]);
    }

    #[test]
    fn scan_contains_its_keys_and_range() {
        let keys = IndexScan::Keys(vec![key(json!(1)), key(json!("a"))]);
        assert!(keys.contains(&key(json!(1.0))));
        assert!(!keys.contains(&key(json!(2))));
        let range = IndexScan::Range {
            lower: Bound::Excluded(key(json!(5))),
            upper: Bound::Excluded(IndexKey::bracket_end(TypeBracket::Number)),
        };
        assert!(range.contains(&key(json!(5.5))));
        assert!(!range.contains(&key(json!(5))));
        assert!(!range.contains(&key(json!("6"))));
    }
}
