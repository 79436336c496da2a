//! The vocabulary of statement shapes: what a builder says about the text
//! it would render, as a sequence of [`Token`]s, and its bind values in
//! placeholder order. The cache that maps shapes to rendered SQL
//! (`query::shape_cache`) only ever sees these.
//!
//! A shape's tokens must name everything the SQL text depends on and
//! nothing that is only a bind value (a tenant's key is a value, never a
//! token). Every producer writes its tokens in prefix form with a fixed
//! arity per tag, so two different token sequences can never describe the
//! same builder state, and the cache compares the full sequence on every
//! hit, so no two shapes share an entry.

use std::any::TypeId;

use sea_query::{ArrayType, OptionEnum, Value};
use sea_query_postgres::PostgresValue;

/// Receives a shape's tokens: hashed for the lookup, compared with a
/// stored key on a hit, recorded on a miss.
pub(crate) trait KeySink {
    /// A tag or small number (an operator, a count, a flag).
    fn num(&mut self, n: u64);
    /// A name (schema, enum type), compared by content.
    fn str(&mut self, s: &str);
    /// A column's name, a constant of its model: compared by content
    /// too, but a hash may take its address instead (the same constant
    /// is the same text; the same text at two addresses only makes two
    /// entries).
    fn column(&mut self, name: &'static str) {
        self.str(name);
    }
    /// The model a statement is on. Its table and columns are constants of
    /// the type, so one token stands for all of them: cheaper to hash and
    /// compare than their names on every statement.
    fn model(&mut self, model: TypeId);
}

/// Tags: one per kind of node a shape is made of. Numbers, not strings,
/// so hashing and comparing them is one step each.
pub(crate) mod tag {
    pub(crate) const SELECT: u64 = 1;
    pub(crate) const UPDATE: u64 = 2;
    pub(crate) const DELETE: u64 = 3;
    pub(crate) const INSERT: u64 = 4;
    pub(crate) const CMP: u64 = 10;
    pub(crate) const BETWEEN: u64 = 11;
    pub(crate) const ANY: u64 = 12;
    pub(crate) const NULL: u64 = 13;
    pub(crate) const AND: u64 = 14;
    pub(crate) const OR: u64 = 15;
    pub(crate) const NOT: u64 = 16;
    pub(crate) const ROW: u64 = 17;
    pub(crate) const VALUE: u64 = 20;
    pub(crate) const ENUM: u64 = 21;
    pub(crate) const ENUM_ARRAY: u64 = 22;
    pub(crate) const DEFAULT: u64 = 23;
    pub(crate) const SCOPE_PLAIN: u64 = 30;
    pub(crate) const SCOPE_TENANT: u64 = 31;
    pub(crate) const SCOPE_SCHEMA: u64 = 32;
    pub(crate) const SCOPE_CROSS: u64 = 33;
    pub(crate) const END: u64 = 40;
    /// Every column of the statement's model, in field order.
    pub(crate) const ALL_COLUMNS: u64 = 41;
}

/// The tokens of a bind value: only a native enum changes the text (sea-query
/// writes `$n::"type"`, and `$n::"type"[]` for an array of them); any other
/// value is a bare `$n`.
pub(crate) fn value_key(value: &Value, key: &mut impl KeySink) {
    match value {
        Value::Enum(OptionEnum::Some(e)) => {
            key.num(tag::ENUM);
            key.str(e.type_name.as_ref());
        }
        Value::Enum(OptionEnum::None(type_name)) => {
            key.num(tag::ENUM);
            key.str(type_name.as_ref());
        }
        Value::Array(ArrayType::Enum(type_name), _) => {
            key.num(tag::ENUM_ARRAY);
            key.str(type_name.as_ref().as_ref());
        }
        _ => key.num(tag::VALUE),
    }
}

/// The parameter sea-query binds for `value` (it sends a native enum as its
/// label's text and lets the cast in the SQL do the rest). Anything this
/// gets wrong is caught before a shape is cached: the values of a fresh
/// rendering are compared with these.
pub(crate) fn bound(value: Value) -> PostgresValue {
    PostgresValue(match value {
        Value::Enum(OptionEnum::Some(e)) => Value::String(Some(e.value.into_owned())),
        Value::Enum(OptionEnum::None(_)) => Value::String(None),
        Value::Array(ArrayType::Enum(_), values) => Value::Array(
            ArrayType::String,
            values.map(|values| {
                Box::new(
                    values
                        .into_iter()
                        .map(|value| match value {
                            Value::Enum(OptionEnum::Some(e)) => {
                                Value::String(Some(e.value.into_owned()))
                            }
                            // Not what pebble builds; left as is, the
                            // comparison with sea-query's values refuses
                            // to cache it.
                            other => other,
                        })
                        .collect(),
                )
            }),
        ),
        other => other,
    })
}

/// Whether two lists of bind values send the same bytes: `==` on each,
/// except that floats are compared by their bits. A NaN is not `==` to
/// itself, yet it is a value like any other (PostgreSQL stores and
/// compares it), so a shape first seen with one must check out as well.
pub(crate) fn same_values(a: &[PostgresValue], b: &[PostgresValue]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(&a.0, &b.0))
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(a), Value::Float(b)) => a.map(f32::to_bits) == b.map(f32::to_bits),
        (Value::Double(a), Value::Double(b)) => a.map(f64::to_bits) == b.map(f64::to_bits),
        (Value::Array(ta, Some(a)), Value::Array(tb, Some(b))) => {
            ta == tb && a.len() == b.len() && a.iter().zip(b.iter()).all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(values: impl IntoIterator<Item = Value>) -> Vec<PostgresValue> {
        values.into_iter().map(PostgresValue).collect()
    }

    #[test]
    fn a_nan_is_the_same_value_as_itself_and_nothing_else() {
        let nan = || values([Value::Double(Some(f64::NAN)), Value::Float(Some(f32::NAN))]);
        assert!(same_values(&nan(), &nan()));
        let array = |x: f64| {
            values([Value::Array(
                ArrayType::Double,
                Some(Box::new(vec![Value::Double(Some(x))])),
            )])
        };
        assert!(same_values(&array(f64::NAN), &array(f64::NAN)));
        assert!(!same_values(&array(f64::NAN), &array(1.0)));
        assert!(!same_values(
            &nan(),
            &values([Value::Double(Some(1.0)), Value::Float(Some(f32::NAN))])
        ));
        // 0.0 and -0.0 are `==` but not the same bytes.
        assert!(!same_values(
            &values([Value::Double(Some(0.0))]),
            &values([Value::Double(Some(-0.0))])
        ));
        assert!(!same_values(
            &values([Value::Double(None)]),
            &values([Value::Float(None)])
        ));
        assert!(!same_values(&nan(), &nan()[..1]));
    }
}
