//! Property tests across the query modules: index predicates never exclude a
//! matching document, `compare_values` is a total order that `IndexKey`
//! agrees with, and no input makes parsing or matching panic.

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{compare_values, index_keys, Filter, IndexKey, IndexScan, Projection, SortSpec};

fn small_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3_i64..=3).prop_map(|i| json!(i)),
        prop::sample::select(vec![-1.5, 0.0, 1.0, 2.5, 3.0]).prop_map(|f: f64| json!(f)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => small_number(),
        1 => prop::sample::select(vec!["", "a", "b", "ab"]).prop_map(|s: &str| json!(s)),
    ]
}

fn member_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "0"]).prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(small_number(), 1..4).prop_map(Value::Array),
            prop::collection::vec((member_name(), inner), 0..3)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn doc() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), value()), 0..3).prop_map(
        |members| {
            Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            )
        },
    )
}

fn path() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => Just("a"),
        1 => prop::sample::select(vec!["b", "a.b", "a.0", "b.a", "a.b.a", "a.0.b"]),
    ]
}

fn range_object(bounds: Vec<(&'static str, Value)>) -> Value {
    Value::Object(
        bounds
            .into_iter()
            .map(|(op, v)| (op.to_owned(), v))
            .collect(),
    )
}

/// One operator object (or a plain value for implicit equality), weighted
/// towards the index-usable kinds.
fn condition() -> impl Strategy<Value = Value> {
    let range_op = || prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]);
    let leaf = prop_oneof![
        3 => scalar(),
        1 => value(),
        1 => value().prop_map(|v| json!({"$eq": v})),
        1 => value().prop_map(|v| json!({"$ne": v})),
        2 => prop::collection::vec(scalar(), 0..4).prop_map(|v| json!({"$in": v})),
        1 => prop::collection::vec(value(), 0..4).prop_map(|v| json!({"$in": v})),
        1 => prop::collection::vec(value(), 0..4).prop_map(|v| json!({"$nin": v})),
        1 => any::<bool>().prop_map(|b| json!({"$exists": b})),
        4 => prop::collection::vec((range_op(), small_number()), 1..3).prop_map(range_object),
        1 => prop::collection::vec((range_op(), scalar()), 1..4).prop_map(range_object),
        1 => (value(), scalar()).prop_map(|(eq, gt)| json!({"$eq": eq, "$gte": gt})),
    ];
    let negated = leaf
        .clone()
        .prop_filter_map("$not needs an operator object", |op| match &op {
            Value::Object(m) if !m.is_empty() && m.keys().all(|k| k.starts_with('$')) => {
                Some(json!({"$not": op}))
            }
            _ => None,
        });
    prop_oneof![8 => leaf, 1 => negated]
}

fn field_filter() -> impl Strategy<Value = Value> {
    (path(), condition()).prop_map(|(p, c)| {
        let mut m = Map::new();
        m.insert(p.to_owned(), c);
        Value::Object(m)
    })
}

/// Merges filter objects into one (an implicit `$and`; a repeated key keeps
/// the last).
fn merged(filters: Vec<Value>) -> Value {
    let mut out = Map::new();
    for f in filters {
        if let Value::Object(m) = f {
            out.extend(m);
        }
    }
    Value::Object(out)
}

/// Any filter, logical operators included.
fn nested_filter() -> impl Strategy<Value = Value> {
    field_filter().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|fs| json!({"$and": fs})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|fs| json!({"$or": fs})),
            inner.clone().prop_map(|f| json!({"$not": f})),
            prop::collection::vec(inner, 1..3).prop_map(merged),
        ]
    })
}

/// A filter whose top level is mostly plain field conditions, so that index
/// predicates are common.
fn filter() -> impl Strategy<Value = Value> {
    let conjunct = prop_oneof![3 => field_filter(), 1 => nested_filter()];
    prop::collection::vec(conjunct, 1..4).prop_flat_map(|conjuncts| {
        prop_oneof![
            Just(merged(conjuncts.clone())),
            Just(json!({"$and": conjuncts})),
        ]
    })
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop::sample::select(vec![
            json!(9007199254740992_i64),
            json!(9007199254740993_i64),
            json!(9007199254740992.0),
            json!(9007199254740994.0),
            json!(u64::MAX),
            json!(18446744073709551616.0_f64),
            json!(i64::MIN),
            json!(-9223372036854775808.0_f64),
            json!(0.5),
            json!(-0.0),
            json!(0),
        ]),
    ]
}

fn ordered_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![scalar(), number()];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((member_name(), inner), 0..3)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Arbitrary JSON drawn from a vocabulary that reaches every parser branch.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "$and", "$or", "$not", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin",
            "$exists", "$where", "_id", "a", "a.b", "a..b", "", ".", "a.$b", "0", "a.0",
        ])
        .prop_map(str::to_owned),
        ".{0,6}",
    ];
    let leaf = prop_oneof![scalar(), number(), any::<String>().prop_map(Value::String),];
    leaf.prop_recursive(6, 48, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn hash_of(key: &IndexKey) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

fn config() -> ProptestConfig {
    // Seeded by proptest's deterministic default RNG; enough cases to find
    // counterexamples without slowing the suite.
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matching_the_encoded_document_agrees_with_matching_the_parsed_one(
        filter_json in nested_filter(),
        doc in doc(),
        skipped in value(),
        pretty in any::<bool>(),
    ) {
        let filter = Filter::parse(&filter_json)
            .map_err(|e| TestCaseError::fail(format!("{filter_json} refused: {e}")))?;
        // A member no filter names, with characters that need escaping.
        let mut doc = doc;
        if let Value::Object(members) = &mut doc {
            members.insert("x\u{e9}\"\\".to_owned(), skipped);
        }
        let encoded = if pretty {
            serde_json::to_vec_pretty(&doc)
        } else {
            serde_json::to_vec(&doc)
        }
        .expect("serializes");
        prop_assert_eq!(
            filter.matches_encoded(&encoded),
            Some(filter.matches(&doc)),
            "{} on {}", filter_json, doc
        );
    }

    #[test]
    fn index_predicates_never_exclude_a_matching_document(
        filter_json in filter(),
        docs in prop::collection::vec(doc(), 1..8),
    ) {
        let filter = Filter::parse(&filter_json)
            .map_err(|e| TestCaseError::fail(format!("{filter_json} refused: {e}")))?;
        let matching: BTreeSet<usize> = (0..docs.len()).filter(|&i| filter.matches(&docs[i])).collect();
        for predicate in filter.index_predicates() {
            // Serve the predicate the way an engine would: a BTreeMap index
            // from key to document numbers, scanned with the predicate as is
            // (BTreeMap::range panics on an inverted range, so this also
            // checks that ranges are well formed).
            let mut index: BTreeMap<IndexKey, BTreeSet<usize>> = BTreeMap::new();
            for (i, doc) in docs.iter().enumerate() {
                for key in index_keys(doc, &predicate.path) {
                    index.entry(key).or_default().insert(i);
                }
            }
            let found: BTreeSet<usize> = match &predicate.scan {
                IndexScan::Keys(keys) => {
                    prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys not ascending: {:?}", keys);
                    keys.iter().filter_map(|k| index.get(k)).flatten().copied().collect()
                }
                IndexScan::Range { lower, upper } => index
                    .range((lower.clone(), upper.clone()))
                    .flat_map(|(_, docs)| docs.iter().copied())
                    .collect(),
            };
            for i in &matching {
                prop_assert!(
                    found.contains(i),
                    "{} matches {} but the scan {:?} on {} does not find it",
                    filter_json, docs[*i], predicate.scan, predicate.path
                );
            }
            for i in &found {
                let keys = index_keys(&docs[*i], &predicate.path);
                prop_assert!(keys.iter().any(|k| predicate.scan.contains(k)));
            }
        }
    }

    #[test]
    fn compare_values_is_a_total_order_that_index_keys_agree_with(
        a in ordered_value(),
        b in ordered_value(),
        c in ordered_value(),
    ) {
        let ab = compare_values(&a, &b);
        prop_assert_eq!(ab, compare_values(&b, &a).reverse());
        prop_assert_eq!(compare_values(&a, &a), Ordering::Equal);
        let bc = compare_values(&b, &c);
        let ac = compare_values(&a, &c);
        if ab != Ordering::Greater && bc != Ordering::Greater {
            prop_assert_ne!(ac, Ordering::Greater, "{} <= {} <= {} but not {} <= {}", a, b, c, a, c);
        }
        if ab == Ordering::Less && bc == Ordering::Less {
            prop_assert_eq!(ac, Ordering::Less);
        }
        let (ka, kb) = (IndexKey::from_value(&a), IndexKey::from_value(&b));
        prop_assert_eq!(ka.cmp(&kb), ab);
        if ab == Ordering::Equal {
            prop_assert_eq!(hash_of(&ka), hash_of(&kb));
        }
    }

    #[test]
    fn numbers_compare_like_exact_rationals(a in number(), b in number()) {
        // Reference: integers as i128; floats exactly via their integer part
        // and whether a fraction remains.
        fn exact(v: &Value) -> (i128, bool) {
            let n = v.as_number().expect("numbers only");
            if let Some(i) = n.as_i64() { return (i128::from(i), false); }
            if let Some(u) = n.as_u64() { return (i128::from(u), false); }
            let f = n.as_f64().expect("finite");
            let clamped = f.clamp(-1.0e38, 1.0e38);
            let floor = clamped.floor();
            (floor as i128, clamped != floor)
        }
        let (ia, fa) = exact(&a);
        let (ib, fb) = exact(&b);
        let reference = ia.cmp(&ib).then(fa.cmp(&fb));
        let within_clamp = |v: &Value| v.as_f64().is_some_and(|f| f.abs() < 1.0e38);
        if within_clamp(&a) && within_clamp(&b) && !(fa && fb && ia == ib) {
            prop_assert_eq!(compare_values(&a, &b), reference, "{} vs {}", a, b);
        }
    }

    #[test]
    fn parsing_arbitrary_json_never_panics(
        input in arbitrary_json(),
        docs in prop::collection::vec(arbitrary_json(), 0..4),
    ) {
        if let Ok(filter) = Filter::parse(&input) {
            let _ = filter.index_predicates();
            for doc in &docs {
                let _ = filter.matches(doc);
            }
        }
        if let Ok(sort) = SortSpec::parse(&input) {
            for pair in docs.windows(2) {
                let _ = sort.compare(&pair[0], &pair[1]);
            }
        }
        if let Ok(projection) = Projection::parse(&input) {
            for doc in &docs {
                let _ = projection.apply(doc);
            }
        }
        for doc in &docs {
            let _ = index_keys(doc, "a.b");
        }
    }

    #[test]
    fn sort_compare_is_a_consistent_ordering(
        docs in prop::collection::vec(doc(), 3),
        descending in any::<bool>(),
        sort_path in path(),
    ) {
        let mut spec = Map::new();
        spec.insert(sort_path.to_owned(), json!(if descending { -1 } else { 1 }));
        let spec = SortSpec::parse(&Value::Object(spec)).expect("valid spec");
        let (a, b, c) = (&docs[0], &docs[1], &docs[2]);
        prop_assert_eq!(spec.compare(a, b), spec.compare(b, a).reverse());
        if spec.compare(a, b) != Ordering::Greater && spec.compare(b, c) != Ordering::Greater {
            prop_assert_ne!(spec.compare(a, c), Ordering::Greater);
        }
    }
}
