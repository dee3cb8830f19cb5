//! Reading the registered claims (RFC 7519 §4.1) strictly, borrowed from
//! the payload where possible: exact JSON types, NumericDate rules,
//! duplicate members, required names. The [`Observer`] is driven either
//! alongside the application's own deserialization ([`crate::claims`]) or
//! on its own ([`parse`]), so both paths share one set of rules.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::json::{SeenKeys, Str};
use crate::reject::Reason;
use crate::validate::RegisteredClaims;

/// The registered claims as read from the payload, borrowed where possible.
#[derive(Debug, Default)]
pub(crate) struct Claims<'a> {
    pub(crate) exp: Option<i64>,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) iss: Option<Cow<'a, str>>,
    pub(crate) sub: Option<Cow<'a, str>>,
    pub(crate) jti: Option<Cow<'a, str>>,
    pub(crate) sid: Option<Cow<'a, str>>,
    pub(crate) aud: StrOrList<'a>,
    scope: Option<Cow<'a, str>>,
    scp: StrOrList<'a>,
    /// Bit `i` set when `rules.required[i]` was present.
    pub(crate) required_seen: u64,
}

impl Claims<'_> {
    pub(crate) fn to_registered(&self) -> RegisteredClaims {
        RegisteredClaims {
            iss: self.iss.as_deref().map(str::to_owned),
            sub: self.sub.as_deref().map(str::to_owned),
            jti: self.jti.as_deref().map(str::to_owned),
            sid: self.sid.as_deref().map(str::to_owned),
            exp: self.exp,
            nbf: self.nbf,
            iat: self.iat,
        }
    }

    pub(crate) fn has_scope(&self, wanted: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|s| s == wanted))
            || self.scp.iter().any(|s| s == wanted)
    }
}

/// RFC 7519 NumericDate: a non-negative JSON number of seconds; fractions
/// are truncated. Strings, negatives and non-finite values are refused.
/// The number as written is kept for the application's field.
struct NumericDate<'de> {
    seconds: i64,
    value: Value<'de>,
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

/// A registered claim the checks read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Field {
    Exp,
    Nbf,
    Iat,
    Iss,
    Sub,
    Jti,
    Sid,
    Aud,
    Scope,
    Scp,
}

/// Watches the top-level members of a claims object go by: records
/// duplicates and required names, and parses registered claims strictly.
/// Driven either by [`parse`] alone or alongside the application's own
/// deserialization ([`crate::claims`]), so both share one set of rules.
pub(crate) struct Observer<'r, 'de> {
    required: &'r [String],
    registered_seen: u16,
    seen: SeenKeys<'de>,
    pub(crate) claims: Claims<'de>,
    /// The first problem found; reported once the object has been read.
    pub(crate) problem: Option<Reason>,
}

impl<'r, 'de> Observer<'r, 'de> {
    pub(crate) fn new(required: &'r [String]) -> Self {
        Observer {
            required,
            registered_seen: 0,
            seen: SeenKeys::default(),
            claims: Claims::default(),
            problem: None,
        }
    }

    /// Records a member name; `Some` when its value must be handed to
    /// [`Observer::value`].
    pub(crate) fn key(&mut self, key: Cow<'de, str>) -> Option<Field> {
        if let Some(i) = self.required.iter().position(|r| *r == *key) {
            // `Rules` refuses configurations with more than 64 names.
            self.claims.required_seen |= 1 << i;
        }
        let field = match &*key {
            "exp" => Some(Field::Exp),
            "nbf" => Some(Field::Nbf),
            "iat" => Some(Field::Iat),
            "iss" => Some(Field::Iss),
            "sub" => Some(Field::Sub),
            "jti" => Some(Field::Jti),
            "sid" => Some(Field::Sid),
            "aud" => Some(Field::Aud),
            "scope" => Some(Field::Scope),
            "scp" => Some(Field::Scp),
            _ => None,
        };
        // Registered names are told apart by a bit each; only the others
        // need the general detector.
        let fresh = match field {
            Some(field) => {
                let bit = 1u16 << field as u16;
                let fresh = self.registered_seen & bit == 0;
                self.registered_seen |= bit;
                fresh
            }
            None => self.seen.insert(key),
        };
        if !fresh {
            self.problem.get_or_insert(Reason::DuplicateMember);
        }
        field
    }

    /// Reads a registered claim's value strictly and records it; the value
    /// comes back for the application's own field. A wrongly typed value
    /// is an error: the token is refused whatever the application expects.
    pub(crate) fn value<D: Deserializer<'de>>(
        &mut self,
        field: Field,
        deserializer: D,
    ) -> Result<Value<'de>, D::Error> {
        let result = self.read(field, deserializer);
        if result.is_err() {
            self.problem.get_or_insert(Reason::BadClaims);
        }
        result
    }

    fn read<D: Deserializer<'de>>(
        &mut self,
        field: Field,
        deserializer: D,
    ) -> Result<Value<'de>, D::Error> {
        let claims = &mut self.claims;
        Ok(match field {
            Field::Exp | Field::Nbf | Field::Iat => {
                let date = NumericDate::deserialize(deserializer)?;
                let slot = match field {
                    Field::Exp => &mut claims.exp,
                    Field::Nbf => &mut claims.nbf,
                    _ => &mut claims.iat,
                };
                *slot = Some(date.seconds);
                date.value
            }
            Field::Iss | Field::Sub | Field::Jti | Field::Sid | Field::Scope => {
                let Str(text) = Str::deserialize(deserializer)?;
                let slot = match field {
                    Field::Iss => &mut claims.iss,
                    Field::Sub => &mut claims.sub,
                    Field::Jti => &mut claims.jti,
                    Field::Sid => &mut claims.sid,
                    _ => &mut claims.scope,
                };
                *slot = Some(text.clone());
                Value::Str(text)
            }
            Field::Aud | Field::Scp => {
                let list = StrOrList::deserialize(deserializer)?;
                let value = match &list {
                    StrOrList::One(one) => Value::Str(one.clone()),
                    StrOrList::Many(many) => Value::List(many.clone()),
                    StrOrList::Absent => unreachable!("deserialized lists are never absent"),
                };
                *(if matches!(field, Field::Aud) {
                    &mut claims.aud
                } else {
                    &mut claims.scp
                }) = list;
                value
            }
        })
    }
}

/// Reads the registered claims on their own: the strict pass for
/// application types that do not read the payload as one object.
pub(crate) fn parse<'a>(payload: &'a [u8], required: &[String]) -> Result<Claims<'a>, Reason> {
    struct ObjectVisitor<'o, 'r, 'de>(&'o mut Observer<'r, 'de>);
    impl<'de> Visitor<'de> for ObjectVisitor<'_, '_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JWT claims object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                match self.0.key(key) {
                    Some(field) => {
                        map.next_value_seed(Registered(field, &mut *self.0))?;
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    struct Registered<'o, 'r, 'de>(Field, &'o mut Observer<'r, 'de>);
    impl<'de> de::DeserializeSeed<'de> for Registered<'_, '_, 'de> {
        type Value = Value<'de>;
        fn deserialize<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Value<'de>, D::Error> {
            self.1.value(self.0, deserializer)
        }
    }
    let mut observer = Observer::new(required);
    let mut de = serde_json::Deserializer::from_slice(payload);
    de.deserialize_map(ObjectVisitor(&mut observer))
        .and_then(|()| de.end())
        .map_err(|_| Reason::BadClaims)?;
    match observer.problem {
        Some(reason) => Err(reason),
        None => Ok(observer.claims),
    }
}
