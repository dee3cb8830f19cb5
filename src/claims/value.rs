//! The values of registered claims: NumericDate, one-or-many strings, and
//! the replay of a value already read to the application's own field.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

use crate::json::Str;

/// RFC 7519 NumericDate: a non-negative JSON number of seconds; fractions
/// are truncated. Strings, negatives and non-finite values are refused.
/// The number as written is kept for the application's field.
pub(crate) struct NumericDate<'de> {
    pub(crate) seconds: i64,
    pub(super) value: Value<'de>,
}

impl<'de> Deserialize<'de> for NumericDate<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl<'de> Visitor<'de> for DateVisitor {
            type Value = NumericDate<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative NumericDate")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                let seconds = i64::try_from(v).map_err(|_| E::custom("date out of range"))?;
                Ok(NumericDate {
                    seconds,
                    value: Value::U64(v),
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if v < 0 {
                    Err(E::custom("negative date"))
                } else {
                    Ok(NumericDate {
                        seconds: v,
                        value: Value::I64(v),
                    })
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // The cast saturates; the range check keeps it honest.
                if v.is_finite() && (0.0..9.0e18).contains(&v) {
                    #[allow(clippy::cast_possible_truncation)]
                    Ok(NumericDate {
                        seconds: v.trunc() as i64,
                        value: Value::F64(v),
                    })
                } else {
                    Err(E::custom("date out of range"))
                }
            }
        }
        deserializer.deserialize_any(DateVisitor)
    }
}

/// A registered claim's value, replayed to the application's field.
/// Unlike serde's `value` deserializers it answers `Option<T>` and
/// newtype fields, which claims types use all the time.
#[derive(Debug)]
pub(crate) enum Value<'de> {
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    List(Vec<Cow<'de, str>>),
    /// An object (`cnf`), replayed from its JSON text.
    #[cfg(feature = "dpop")]
    Raw(&'de serde_json::value::RawValue),
}

impl<'de> Value<'de> {
    fn visit<V: Visitor<'de>, E: de::Error>(self, visitor: V) -> Result<V::Value, E> {
        match self {
            Value::U64(v) => visitor.visit_u64(v),
            Value::I64(v) => visitor.visit_i64(v),
            Value::F64(v) => visitor.visit_f64(v),
            Value::Str(Cow::Borrowed(v)) => visitor.visit_borrowed_str(v),
            Value::Str(Cow::Owned(v)) => visitor.visit_string(v),
            Value::List(items) => {
                let items = items
                    .into_iter()
                    .map(|item| Value::<'de>::Str(item).into_deserializer::<E>());
                let mut seq = de::value::SeqDeserializer::new(items);
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            #[cfg(feature = "dpop")]
            Value::Raw(raw) => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                de.deserialize_any(visitor).map_err(E::custom)
            }
        }
    }

    pub(crate) fn into_deserializer<E>(self) -> ValueDeserializer<'de, E> {
        ValueDeserializer {
            value: self,
            error: std::marker::PhantomData,
        }
    }
}

pub(crate) struct ValueDeserializer<'de, E> {
    value: Value<'de>,
    error: std::marker::PhantomData<E>,
}

impl<'de, E: de::Error> de::IntoDeserializer<'de, E> for ValueDeserializer<'de, E> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de, E: de::Error> Deserializer<'de> for ValueDeserializer<'de, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        self.value.visit(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            Value::Str(text) => {
                de::value::CowStrDeserializer::new(text).deserialize_enum(name, variants, visitor)
            }
            other => other.visit(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// `aud` / `scp`: one string or a non-empty array of strings. One string,
/// the common case, needs no allocation.
#[derive(Debug, Default)]
pub(crate) enum StrOrList<'de> {
    #[default]
    Absent,
    One(Cow<'de, str>),
    Many(Vec<Cow<'de, str>>),
}

impl<'de> StrOrList<'de> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[Cow<'de, str>]) = match self {
            StrOrList::Absent => (None, &[]),
            StrOrList::One(one) => (Some(one), &[]),
            StrOrList::Many(many) => (None, many),
        };
        one.into_iter().chain(many.iter().map(|s| &**s))
    }

    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, StrOrList::Absent)
    }

    /// The same strings, owned: for a cached entry that outlives the payload.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) fn into_owned(self) -> StrOrList<'static> {
        match self {
            StrOrList::Absent => StrOrList::Absent,
            StrOrList::One(one) => StrOrList::One(Cow::Owned(one.into_owned())),
            StrOrList::Many(many) => StrOrList::Many(
                many.into_iter()
                    .map(|s| Cow::Owned(s.into_owned()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for StrOrList<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StrOrList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a non-empty array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StrOrList::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrOrList::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(Str(item)) = seq.next_element::<Str<'de>>()? {
                    items.push(item);
                }
                if items.is_empty() {
                    return Err(de::Error::custom("empty array"));
                }
                Ok(StrOrList::Many(items))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}
