//! The one-pass decoder: one read of the payload for both the
//! application's claims type and the registered-claim checks.
//!
//! The application's `Deserialize` runs on a thin wrapper around
//! serde_json's deserializer. Top-level member names are shown to an
//! [`Observer`] on their way to the application's visitor; the values of
//! registered claims (`exp`, `iss`, `aud`, …, small) are read once as raw
//! JSON and parsed by both sides; everything else streams straight to the
//! application. Types that do not read the payload as one object (a
//! newtype, `Option<T>`, a unit) leave the observation incomplete, and the
//! strict pass then runs on its own, so no check is ever skipped.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};

use super::registered::{self, Field, Observer, Registered};
use crate::json::Str;
use crate::reject::Reason;

/// Deserializes `C` and the registered claims from one payload.
pub(crate) fn decode<'p, C: Deserialize<'p>>(
    payload: &'p [u8],
    required: &[String],
) -> Result<(C, Registered<'p>), Reason> {
    // Validating UTF-8 once lets serde_json skip it for every string.
    let text = std::str::from_utf8(payload).map_err(|_| Reason::BadClaims)?;
    let mut watch = Watch {
        observer: Observer::new(required),
        complete: false,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let app = C::deserialize(Top {
        de: &mut de,
        watch: &mut watch,
    })
    .and_then(|c| de.end().map(|()| c));
    if !watch.complete {
        let claims = registered::parse(payload, required)?;
        return Ok((app.map_err(|_| Reason::ClaimsType)?, claims));
    }
    if let Some(reason) = watch.observer.problem {
        return Err(reason);
    }
    Ok((app.map_err(|_| Reason::ClaimsType)?, watch.observer.claims))
}

struct Watch<'r, 'de> {
    observer: Observer<'r, 'de>,
    /// Set when the top-level object was read to its end.
    complete: bool,
}

struct Top<'s, 'r, 'de> {
    de: &'s mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
    watch: &'s mut Watch<'r, 'de>,
}

impl<'de> Deserializer<'de> for Top<'_, '_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.de.deserialize_any(Wrap {
            visitor,
            watch: self.watch,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.de.deserialize_map(Wrap {
            visitor,
            watch: self.watch,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_struct(
            name,
            fields,
            Wrap {
                visitor,
                watch: self.watch,
            },
        )
    }

    // Everything else is not an object read: hand it over unobserved and
    // let the strict pass run separately.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.de.deserialize_ignored_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.de.deserialize_option(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct identifier
    }
}

/// The application's visitor, with its map access observed.
struct Wrap<'s, 'r, 'de, V> {
    visitor: V,
    watch: &'s mut Watch<'r, 'de>,
}

macro_rules! forward_visits {
    ($($method:ident($ty:ty);)*) => {
        $(fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(v)
        })*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, '_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_map(Observed {
            map,
            watch: self.watch,
            pending: None,
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_seq(seq)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    forward_visits! {
        visit_bool(bool);
        visit_i64(i64);
        visit_i128(i128);
        visit_u64(u64);
        visit_u128(u128);
        visit_f64(f64);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }
}

/// serde_json's map access with each top-level member shown to the
/// observer.
struct Observed<'s, 'r, 'de, A> {
    map: A,
    watch: &'s mut Watch<'r, 'de>,
    pending: Option<Field>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Observed<'_, '_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(Str(key)) = self.map.next_key::<Str<'de>>()? else {
            self.watch.complete = true;
            return Ok(None);
        };
        let value = match &key {
            Cow::Borrowed(name) => seed.deserialize(BorrowedStrDeserializer::new(name))?,
            Cow::Owned(name) => seed.deserialize(StringDeserializer::new(name.clone()))?,
        };
        self.pending = self.watch.observer.key(key);
        Ok(Some(value))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.pending.take() {
            None => self.map.next_value_seed(seed),
            Some(field) => self.map.next_value_seed(Shared {
                field,
                seed,
                observer: &mut self.watch.observer,
            }),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// Reads a registered claim's value once, strictly, and hands the same
/// value to the application's field.
struct Shared<'o, 'r, 'de, S> {
    field: Field,
    seed: S,
    observer: &'o mut Observer<'r, 'de>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Shared<'_, '_, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        let value = self.observer.value(self.field, deserializer)?;
        self.seed.deserialize(value.into_deserializer())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct App {
        sub: String,
        exp: u64,
        #[serde(default)]
        roles: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Wrapper(App);

    #[derive(Debug, Deserialize, PartialEq)]
    struct WithFlatten {
        sub: String,
        #[serde(flatten)]
        rest: std::collections::BTreeMap<String, serde_json::Value>,
    }

    const GOOD: &[u8] = br#"{"sub":"u","exp":1800000000,"aud":["a","b"],"roles":["x"],"n":{"exp":"nested is not checked"}}"#;

    #[test]
    fn one_pass_yields_both_views() {
        let (app, claims) = decode::<App>(GOOD, &[]).unwrap();
        assert_eq!(
            app,
            App {
                sub: "u".into(),
                exp: 1_800_000_000,
                roles: vec!["x".into()]
            }
        );
        assert_eq!(claims.exp, Some(1_800_000_000));
        assert_eq!(claims.sub.as_deref(), Some("u"));
    }

    #[test]
    fn every_application_shape_gets_the_same_strict_checks() {
        let dup = br#"{"sub":"u","exp":1800000000,"exp":1}"#;
        let bad_type = br#"{"sub":"u","exp":1800000000,"iss":["x"]}"#;
        let bad_exp_for_us_only = br#"{"sub":"u","exp":1800000000,"nbf":"soon"}"#;
        for (payload, reason) in [
            (&dup[..], Reason::DuplicateMember),
            (bad_type, Reason::BadClaims),
            (bad_exp_for_us_only, Reason::BadClaims),
        ] {
            assert_eq!(decode::<App>(payload, &[]).err(), Some(reason));
            assert_eq!(decode::<Wrapper>(payload, &[]).err(), Some(reason));
            assert_eq!(decode::<Option<App>>(payload, &[]).err(), Some(reason));
            assert_eq!(
                decode::<serde_json::Value>(payload, &[]).err(),
                Some(reason)
            );
            assert_eq!(decode::<WithFlatten>(payload, &[]).err(), Some(reason));
            assert_eq!(decode::<de::IgnoredAny>(payload, &[]).err(), Some(reason));
        }
    }

    #[test]
    fn application_type_mismatch_is_claims_type() {
        assert_eq!(
            decode::<App>(br#"{"exp":1800000000}"#, &[]).err(),
            Some(Reason::ClaimsType)
        );
        assert_eq!(
            decode::<Vec<u8>>(br#"{"exp":1800000000}"#, &[]).err(),
            Some(Reason::ClaimsType)
        );
        assert_eq!(decode::<App>(b"[1]", &[]).err(), Some(Reason::BadClaims));
    }

    #[test]
    fn escaped_names_and_values_still_count() {
        let payload = br#"{"s\u0075b":"\u0075","exp":1800000000,"e\u0078p":1}"#;
        assert_eq!(
            decode::<serde_json::Value>(payload, &[]).err(),
            Some(Reason::DuplicateMember)
        );
        let (app, claims) =
            decode::<WithFlatten>(br#"{"s\u0075b":"\u0075","exp":1800000000}"#, &[]).unwrap();
        assert_eq!(app.sub, "u");
        assert_eq!(claims.sub.as_deref(), Some("u"));
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Issuer(String);

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Scope {
        Admin,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Rich {
        sub: Option<String>,
        aud: Option<Vec<String>>,
        exp: Option<f64>,
        iat: i64,
        iss: Issuer,
        scope: Scope,
        jti: serde_json::Value,
    }

    #[test]
    fn registered_claims_reach_every_kind_of_application_field() {
        let payload = br#"{"sub":"u","aud":["a","b"],"exp":1800000000,"iat":1700000000,"iss":"i","scope":"admin","jti":"j"}"#;
        let (app, claims) = decode::<Rich>(payload, &[]).unwrap();
        assert_eq!(
            app,
            Rich {
                sub: Some("u".into()),
                aud: Some(vec!["a".into(), "b".into()]),
                exp: Some(1.8e9),
                iat: 1_700_000_000,
                iss: Issuer("i".into()),
                scope: Scope::Admin,
                jti: serde_json::json!("j"),
            }
        );
        assert_eq!(claims.iss.as_deref(), Some("i"));
        let (value, _) = decode::<serde_json::Value>(payload, &[]).unwrap();
        assert_eq!(
            value,
            serde_json::from_slice::<serde_json::Value>(payload).unwrap()
        );
    }

    #[test]
    fn required_claims_are_seen_through_the_application_pass() {
        let required = vec!["roles".to_owned()];
        assert!(decode::<App>(GOOD, &required).is_ok());
        let (_, claims) = decode::<App>(br#"{"sub":"u","exp":1800000000}"#, &required).unwrap();
        let rules = crate::claims::Rules {
            required,
            leeway: 0,
            ..Default::default()
        };
        assert_eq!(
            rules.check(&claims, false, 1_700_000_000),
            Err(Reason::MissingClaim)
        );
    }
}
