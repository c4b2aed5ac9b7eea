//! The total order over JSON values ([`compare_values`]) and its type
//! brackets, including exact comparison of numbers across `i64`, `u64` and
//! `f64`. Everything else in the query language that compares values (equality,
//! ranges, sorting, index keys) goes through this module.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// The groups of JSON types, in the order they sort: every value of an earlier
/// bracket sorts before every value of a later one. Comparison operators only
/// match values of the same bracket as their operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeBracket {
    /// `null` (and a missing field).
    Null,
    /// All numbers, integer or floating point.
    Number,
    /// Strings.
    String,
    /// Objects.
    Object,
    /// Arrays.
    Array,
    /// `false` and `true`.
    Boolean,
}

impl TypeBracket {
    /// The bracket of a value.
    pub fn of(value: &Value) -> TypeBracket {
        match value {
            Value::Null => TypeBracket::Null,
            Value::Number(_) => TypeBracket::Number,
            Value::String(_) => TypeBracket::String,
            Value::Object(_) => TypeBracket::Object,
            Value::Array(_) => TypeBracket::Array,
            Value::Bool(_) => TypeBracket::Boolean,
        }
    }
}

/// 2^127, the first float above every `i128`.
const I128_END_F64: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

/// A number normalised for exact comparison: every integral value that fits
/// an `i128` is `Int` (whether it came as `i64`, `u64` or `f64`), so `Float`
/// only holds values with a fractional part or beyond the `i128` range, and
/// never NaN, an infinity or a zero.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NumberRepr {
    Int(i128),
    Float(f64),
}

impl NumberRepr {
    pub(crate) fn of(number: &Number) -> NumberRepr {
        if let Some(i) = number.as_i64() {
            return NumberRepr::Int(i128::from(i));
        }
        if let Some(u) = number.as_u64() {
            return NumberRepr::Int(i128::from(u));
        }
        match number.as_f64() {
            Some(f) if f.is_finite() => NumberRepr::from_f64(f),
            // Only reachable if serde_json's `arbitrary_precision` feature is
            // on and the number overflows f64: saturate, keeping the sign.
            Some(f) if f > 0.0 => NumberRepr::Float(f64::MAX),
            Some(_) => NumberRepr::Float(f64::MIN),
            None => NumberRepr::Int(0),
        }
    }

    pub(crate) fn from_f64(f: f64) -> NumberRepr {
        if f.fract() == 0.0 && (-I128_END_F64..I128_END_F64).contains(&f) {
            // Integral and within range, so the cast is exact.
            NumberRepr::Int(f as i128)
        } else {
            NumberRepr::Float(f)
        }
    }

    pub(crate) fn cmp(self, other: NumberRepr) -> Ordering {
        match (self, other) {
            (NumberRepr::Int(a), NumberRepr::Int(b)) => a.cmp(&b),
            (NumberRepr::Float(a), NumberRepr::Float(b)) => a.total_cmp(&b),
            (NumberRepr::Int(a), NumberRepr::Float(b)) => cmp_int_float(a, b),
            (NumberRepr::Float(a), NumberRepr::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }
}

/// Exact comparison of an integer with a finite float.
fn cmp_int_float(int: i128, float: f64) -> Ordering {
    if float >= I128_END_F64 {
        return Ordering::Less;
    }
    if float < -I128_END_F64 {
        return Ordering::Greater;
    }
    let whole = float.trunc();
    // `whole` is integral and within [-2^127, 2^127), so the cast is exact.
    match int.cmp(&(whole as i128)) {
        Ordering::Equal => 0.0_f64
            .partial_cmp(&(float - whole))
            .unwrap_or(Ordering::Equal),
        unequal => unequal,
    }
}

/// The one total order across JSON values, used for sorting, range operators
/// and equality: `null` < numbers < strings < objects < arrays < booleans
/// (`false` < `true`). Within a bracket, numbers compare by exact value
/// across `i64`, `u64` and `f64` (so `1` equals `1.0`, and
/// `9007199254740993` is greater than `9007199254740992.0`); strings by
/// Unicode code point; arrays element by element, a proper prefix first;
/// objects member by member in document order (name, then value), a proper
/// prefix first. A missing field sorts as `null`.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    let by_bracket = TypeBracket::of(a).cmp(&TypeBracket::of(b));
    if by_bracket != Ordering::Equal {
        return by_bracket;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => NumberRepr::of(x).cmp(NumberRepr::of(y)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (xe, ye) in x.iter().zip(y) {
                let ord = compare_values(xe, ye);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((xk, xv), (yk, yv)) in x.iter().zip(y) {
                let ord = xk.cmp(yk).then_with(|| compare_values(xv, yv));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            x.len().cmp(&y.len())
        }
        // Same bracket: both null.
        _ => Ordering::Equal,
    }
}

/// Whether two values are equal under [`compare_values`].
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmp(a: Value, b: Value) -> Ordering {
        compare_values(&a, &b)
    }

    #[test]
    fn brackets_sort_null_numbers_strings_objects_arrays_booleans() {
        let ascending = [
            json!(null),
            json!(-5),
            json!(3.5),
            json!(""),
            json!("z"),
            json!({}),
            json!({"a": 1}),
            json!([]),
            json!([1]),
            json!(false),
            json!(true),
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(compare_values(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn integer_and_float_with_the_same_value_are_equal() {
        assert_eq!(cmp(json!(1), json!(1.0)), Ordering::Equal);
        assert_eq!(cmp(json!(-0.0), json!(0)), Ordering::Equal);
        assert_eq!(
            cmp(json!(u64::MAX), json!(18446744073709551615.0_f64)),
            Ordering::Less
        );
    }

    #[test]
    fn big_integers_compare_exactly_against_floats() {
        // 2^53 + 1 is not representable as f64; a lossy conversion would call
        // these equal.
        assert_eq!(
            cmp(json!(9007199254740993_i64), json!(9007199254740992.0)),
            Ordering::Greater
        );
        assert_eq!(
            cmp(json!(9007199254740992.0), json!(9007199254740993_u64)),
            Ordering::Less
        );
        assert_eq!(
            cmp(json!(9007199254740992_i64), json!(9007199254740992.0)),
            Ordering::Equal
        );
        assert_eq!(cmp(json!(u64::MAX), json!(i64::MIN)), Ordering::Greater);
        assert_eq!(cmp(json!(i64::MAX), json!(1e300)), Ordering::Less);
        assert_eq!(cmp(json!(i64::MIN), json!(-1e300)), Ordering::Greater);
        assert_eq!(cmp(json!(2), json!(2.5)), Ordering::Less);
        assert_eq!(cmp(json!(-2), json!(-2.5)), Ordering::Greater);
        assert_eq!(cmp(json!(-3), json!(-2.5)), Ordering::Less);
    }

    #[test]
    fn arrays_compare_element_by_element_prefix_first() {
        assert_eq!(cmp(json!([1, 2]), json!([1, 3])), Ordering::Less);
        assert_eq!(cmp(json!([1]), json!([1, 0])), Ordering::Less);
        assert_eq!(cmp(json!([1, "a"]), json!([1.0, "a"])), Ordering::Equal);
    }

    #[test]
    fn objects_compare_member_by_member_in_document_order() {
        assert_eq!(cmp(json!({"a": 1}), json!({"b": 0})), Ordering::Less);
        assert_eq!(cmp(json!({"a": 1}), json!({"a": 2})), Ordering::Less);
        assert_eq!(
            cmp(json!({"a": 1}), json!({"a": 1, "b": 0})),
            Ordering::Less
        );
        assert_ne!(
            cmp(json!({"a": 1, "b": 2}), json!({"b": 2, "a": 1})),
            Ordering::Equal
        );
    }

    #[test]
    fn strings_compare_by_code_point() {
        assert_eq!(cmp(json!("B"), json!("a")), Ordering::Less);
        assert_eq!(cmp(json!("é"), json!("z")), Ordering::Greater);
    }
}
