//! Reading the registered claims (RFC 7519 §4.1) strictly, borrowed from
//! the payload where possible: exact JSON types, NumericDate rules,
//! duplicate members, required names. The [`Observer`] is driven either
//! alongside the application's own deserialization ([`super::decode`]) or
//! on its own ([`parse`]), so both paths share one set of rules.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::value::{NumericDate, StrOrList, Value};
use crate::json::{SeenKeys, Str};
use crate::reject::Reason;

/// The registered claims of a verified token (RFC 7519 §4.1), owned, as
/// handed to a [`RevocationCheck`](crate::revoke::RevocationCheck).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// `sid`, the OpenID Connect session id: lets a store revoke every
    /// token of a session (or refresh-token family) at once.
    pub sid: Option<String>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<i64>,
    /// `nbf`, seconds since the epoch.
    pub nbf: Option<i64>,
    /// `iat`, seconds since the epoch.
    pub iat: Option<i64>,
}

/// The registered claims as read from the payload, borrowed where possible:
/// what the rules check, before the owned [`RegisteredClaims`] is made (only
/// when a revocation check needs it).
#[derive(Debug, Default)]
pub(crate) struct Registered<'a> {
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
    /// `cnf.jkt` (RFC 9449 §6.1): the thumbprint of the DPoP key the token
    /// is bound to.
    #[cfg(feature = "dpop")]
    pub(crate) cnf_jkt: Option<Cow<'a, str>>,
    /// Bit `i` set when `rules.required[i]` was present.
    pub(crate) required_seen: u64,
}

impl Registered<'_> {
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

    /// The same claims, owned: what a verified-token cache keeps so that a
    /// hit re-runs the very checks a miss runs.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) fn into_owned(self) -> Registered<'static> {
        let own = |s: Option<Cow<'_, str>>| s.map(|s| Cow::Owned(s.into_owned()));
        Registered {
            exp: self.exp,
            nbf: self.nbf,
            iat: self.iat,
            iss: own(self.iss),
            sub: own(self.sub),
            jti: own(self.jti),
            sid: own(self.sid),
            aud: self.aud.into_owned(),
            scope: own(self.scope),
            scp: self.scp.into_owned(),
            #[cfg(feature = "dpop")]
            cnf_jkt: own(self.cnf_jkt),
            required_seen: self.required_seen,
        }
    }

    /// Whether `scope` (space-delimited, RFC 8693 / RFC 9068) or `scp`
    /// grants `wanted`. `scp` is a space-delimited string (Entra ID) or an
    /// array of scopes (Okta), each compared whole.
    pub(crate) fn has_scope(&self, wanted: &str) -> bool {
        let in_list = |list: &str| list.split(' ').any(|s| s == wanted);
        self.scope.as_deref().is_some_and(in_list)
            || match &self.scp {
                StrOrList::One(list) => in_list(list),
                many => many.iter().any(|s| s == wanted),
            }
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
    #[cfg(feature = "dpop")]
    Cnf,
}

/// Watches the top-level members of a claims object go by: records
/// duplicates and required names, and parses registered claims strictly.
/// Driven either by [`parse`] alone or alongside the application's own
/// deserialization ([`super::decode`]), so both share one set of rules.
pub(crate) struct Observer<'r, 'de> {
    required: &'r [String],
    registered_seen: u16,
    seen: SeenKeys<'de>,
    pub(crate) claims: Registered<'de>,
    /// The first problem found; reported once the object has been read.
    pub(crate) problem: Option<Reason>,
}

impl<'r, 'de> Observer<'r, 'de> {
    pub(crate) fn new(required: &'r [String]) -> Self {
        Observer {
            required,
            registered_seen: 0,
            seen: SeenKeys::default(),
            claims: Registered::default(),
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
            #[cfg(feature = "dpop")]
            "cnf" => Some(Field::Cnf),
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
            #[cfg(feature = "dpop")]
            Field::Cnf => {
                let raw = <&'de serde_json::value::RawValue>::deserialize(deserializer)?;
                match confirmation(raw.get()) {
                    Ok(jkt) => claims.cnf_jkt = jkt,
                    Err(reason) => {
                        self.problem.get_or_insert(reason);
                    }
                }
                Value::Raw(raw)
            }
        })
    }
}

/// Reads `cnf` (RFC 7800 §3.1) strictly: an object without duplicate
/// members whose `jkt`, when present, is a string. Other confirmation
/// methods (`x5t#S256`, `jwk`, …) are left alone.
#[cfg(feature = "dpop")]
fn confirmation(json: &str) -> Result<Option<Cow<'_, str>>, Reason> {
    struct Confirmation;
    impl<'de> Visitor<'de> for Confirmation {
        type Value = Result<Option<Cow<'de, str>>, Reason>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a confirmation object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen = SeenKeys::default();
            let mut jkt = None;
            let mut verdict = Ok(());
            while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                if key == "jkt" {
                    jkt = Some(map.next_value::<Str<'de>>()?.0);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
                if !seen.insert(key) {
                    verdict = Err(Reason::DuplicateMember);
                }
            }
            Ok(verdict.map(|()| jkt))
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    match de.deserialize_map(Confirmation) {
        Ok(verdict) => verdict,
        Err(_) => Err(Reason::BadClaims),
    }
}

/// Reads the registered claims on their own: the strict pass for
/// application types that do not read the payload as one object.
pub(crate) fn parse<'a>(payload: &'a [u8], required: &[String]) -> Result<Registered<'a>, Reason> {
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
