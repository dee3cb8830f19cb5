//! Claim rules, checked only after the signature holds.
//!
//! Registered claims are read by our own strict pass over the payload,
//! whatever the application's claims type contains: a claim of the wrong
//! JSON type is a rejection, never "absent" (jsonwebtoken's behaviour).
//!
//! | rule | default |
//! |---|---|
//! | `exp` | required; refused when `now >= exp + leeway` |
//! | `nbf` | when present, refused when `now + leeway < nbf` |
//! | `iat` | when present, refused when `iat > now + leeway`; optional maximum age |
//! | `iss` | checked against the configured issuers, required if any |
//! | `aud` | checked against the configured audiences, required if any; a token carrying `aud` is refused when none are configured (RFC 7519 §4.1.3) unless any audience is allowed |
//! | leeway | 30 seconds |
//! | `typ` | free, or `at+jwt` / `application/at+jwt` with the RFC 9068 profile |
//! | duplicate members | refused |

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::json::{SeenKeys, Str};
use crate::reject::Reason;

/// The default clock-skew allowance.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

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
    /// `exp`, seconds since the epoch.
    pub exp: Option<i64>,
    /// `nbf`, seconds since the epoch.
    pub nbf: Option<i64>,
    /// `iat`, seconds since the epoch.
    pub iat: Option<i64>,
}

/// The configured rules, assembled once by the builder.
#[derive(Clone, Debug)]
pub(crate) struct Rules {
    pub(crate) leeway: u64,
    pub(crate) max_age: Option<u64>,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) any_audience: bool,
    pub(crate) required: Vec<String>,
    pub(crate) typ_at_jwt: bool,
    pub(crate) scopes: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            leeway: DEFAULT_LEEWAY.as_secs(),
            max_age: None,
            issuers: Vec::new(),
            audiences: Vec::new(),
            any_audience: false,
            required: Vec::new(),
            typ_at_jwt: false,
            scopes: Vec::new(),
        }
    }
}

/// The registered claims as read from the payload, borrowed where possible.
#[derive(Debug, Default)]
pub(crate) struct Claims<'a> {
    pub(crate) exp: Option<i64>,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) iss: Option<Cow<'a, str>>,
    pub(crate) sub: Option<Cow<'a, str>>,
    pub(crate) jti: Option<Cow<'a, str>>,
    aud: Vec<Cow<'a, str>>,
    scope: Option<Cow<'a, str>>,
    scp: Vec<Cow<'a, str>>,
    /// Bit `i` set when `rules.required[i]` was present.
    required_seen: u64,
}

impl Claims<'_> {
    pub(crate) fn to_registered(&self) -> RegisteredClaims {
        RegisteredClaims {
            iss: self.iss.as_deref().map(str::to_owned),
            sub: self.sub.as_deref().map(str::to_owned),
            jti: self.jti.as_deref().map(str::to_owned),
            exp: self.exp,
            nbf: self.nbf,
            iat: self.iat,
        }
    }

    fn has_scope(&self, wanted: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|s| s == wanted))
            || self.scp.iter().any(|s| s == wanted)
    }
}

/// Seconds since the epoch; a clock before 1970 counts as 0.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Rules {
    /// Parses the payload's registered claims and applies every rule but
    /// the scope check.
    pub(crate) fn check<'a>(
        &self,
        payload: &'a [u8],
        typ_at_jwt: bool,
        now: u64,
    ) -> Result<Claims<'a>, Reason> {
        if self.typ_at_jwt && !typ_at_jwt {
            return Err(Reason::Type);
        }
        let claims = parse(payload, &self.required)?;
        let now = i128::from(now);
        let leeway = i128::from(self.leeway);
        let exp = claims.exp.ok_or(Reason::MissingClaim)?;
        if now >= i128::from(exp) + leeway {
            return Err(Reason::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now + leeway < i128::from(nbf)) {
            return Err(Reason::NotYetValid);
        }
        match (claims.iat, self.max_age) {
            (Some(iat), _) if i128::from(iat) > now + leeway => return Err(Reason::IssuedAt),
            (Some(iat), Some(max)) if now - i128::from(iat) > i128::from(max) + leeway => {
                return Err(Reason::IssuedAt);
            }
            (None, Some(_)) => return Err(Reason::MissingClaim),
            _ => {}
        }
        if !self.issuers.is_empty() {
            let iss = claims.iss.as_deref().ok_or(Reason::MissingClaim)?;
            if !self.issuers.iter().any(|accepted| accepted == iss) {
                return Err(Reason::Issuer);
            }
        }
        if !self.audiences.is_empty() {
            if claims.aud.is_empty() {
                return Err(Reason::MissingClaim);
            }
            if !claims
                .aud
                .iter()
                .any(|aud| self.audiences.iter().any(|a| a == aud))
            {
                return Err(Reason::Audience);
            }
        } else if !claims.aud.is_empty() && !self.any_audience {
            return Err(Reason::Audience);
        }
        let all_required = if self.required.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.required.len()) - 1
        };
        if claims.required_seen & all_required != all_required {
            return Err(Reason::MissingClaim);
        }
        Ok(claims)
    }

    /// The first required scope the token lacks, as the space-separated
    /// list to announce.
    pub(crate) fn missing_scope(&self, claims: &Claims<'_>) -> Option<String> {
        if self.scopes.iter().all(|s| claims.has_scope(s)) {
            None
        } else {
            Some(self.scopes.join(" "))
        }
    }
}

fn parse<'a>(payload: &'a [u8], required: &[String]) -> Result<Claims<'a>, Reason> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let visited = de
        .deserialize_map(ClaimsVisitor { required })
        .and_then(|c| de.end().map(|()| c));
    match visited {
        Ok(Ok(claims)) => Ok(claims),
        Ok(Err(reason)) => Err(reason),
        Err(_) => Err(Reason::BadClaims),
    }
}

struct ClaimsVisitor<'r> {
    required: &'r [String],
}

impl<'de> Visitor<'de> for ClaimsVisitor<'_> {
    type Value = Result<Claims<'de>, Reason>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut claims = Claims::default();
        let mut seen = SeenKeys::default();
        let mut duplicate = false;
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            if let Some(i) = self.required.iter().position(|r| *r == *key) {
                if i < 64 {
                    claims.required_seen |= 1 << i;
                }
            }
            match &*key {
                "exp" => claims.exp = Some(map.next_value::<NumericDate>()?.0),
                "nbf" => claims.nbf = Some(map.next_value::<NumericDate>()?.0),
                "iat" => claims.iat = Some(map.next_value::<NumericDate>()?.0),
                "iss" => claims.iss = Some(map.next_value::<Str<'de>>()?.0),
                "sub" => claims.sub = Some(map.next_value::<Str<'de>>()?.0),
                "jti" => claims.jti = Some(map.next_value::<Str<'de>>()?.0),
                "aud" => claims.aud = map.next_value::<StrOrList<'de>>()?.0,
                "scope" => claims.scope = Some(map.next_value::<Str<'de>>()?.0),
                "scp" => claims.scp = map.next_value::<StrOrList<'de>>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            duplicate |= !seen.insert(key);
        }
        Ok(if duplicate {
            Err(Reason::DuplicateMember)
        } else {
            Ok(claims)
        })
    }
}

/// RFC 7519 NumericDate: a non-negative JSON number of seconds; fractions
/// are truncated. Strings, negatives and non-finite values are refused.
struct NumericDate(i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl Visitor<'_> for DateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative NumericDate")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("date out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if v < 0 {
                    Err(E::custom("negative date"))
                } else {
                    Ok(NumericDate(v))
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // The cast saturates; the range check keeps it honest.
                if v.is_finite() && (0.0..9.0e18).contains(&v) {
                    #[allow(clippy::cast_possible_truncation)]
                    Ok(NumericDate(v.trunc() as i64))
                } else {
                    Err(E::custom("date out of range"))
                }
            }
        }
        deserializer.deserialize_any(DateVisitor)
    }
}

/// `aud` / `scp`: one string or a non-empty array of strings.
struct StrOrList<'de>(Vec<Cow<'de, str>>);

impl<'de> Deserialize<'de> for StrOrList<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StrOrList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a non-empty array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StrOrList(vec![Cow::Borrowed(v)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrOrList(vec![Cow::Owned(v.to_owned())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(Str(item)) = seq.next_element::<Str<'de>>()? {
                    items.push(item);
                }
                if items.is_empty() {
                    return Err(de::Error::custom("empty array"));
                }
                Ok(StrOrList(items))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn rules() -> Rules {
        Rules {
            leeway: 0,
            ..Rules::default()
        }
    }

    fn check(rules: &Rules, json: &str) -> Result<(), Reason> {
        rules.check(json.as_bytes(), false, NOW).map(drop)
    }

    #[test]
    fn exp_is_required_numeric_and_exclusive() {
        let r = rules();
        assert_eq!(check(&r, "{}"), Err(Reason::MissingClaim));
        assert_eq!(check(&r, r#"{"exp":"1800000000"}"#), Err(Reason::BadClaims));
        assert_eq!(check(&r, r#"{"exp":-1}"#), Err(Reason::BadClaims));
        assert_eq!(check(&r, r#"{"exp":null}"#), Err(Reason::BadClaims));
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{NOW}}}"#)),
            Err(Reason::Expired)
        );
        assert_eq!(check(&r, &format!(r#"{{"exp":{}}}"#, NOW + 1)), Ok(()));
        assert_eq!(check(&r, &format!(r#"{{"exp":{}.5}}"#, NOW + 1)), Ok(()));
        let lenient = Rules {
            leeway: 30,
            ..Rules::default()
        };
        assert_eq!(
            check(&lenient, &format!(r#"{{"exp":{}}}"#, NOW - 29)),
            Ok(())
        );
        assert_eq!(
            check(&lenient, &format!(r#"{{"exp":{}}}"#, NOW - 30)),
            Err(Reason::Expired)
        );
    }

    #[test]
    fn nbf_and_iat() {
        let r = rules();
        let exp = NOW + 60;
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp},"nbf":{}}}"#, NOW + 1)),
            Err(Reason::NotYetValid)
        );
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp},"nbf":{NOW}}}"#)),
            Ok(())
        );
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW + 1)),
            Err(Reason::IssuedAt)
        );
        let aged = Rules {
            max_age: Some(10),
            ..rules()
        };
        assert_eq!(
            check(&aged, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW - 11)),
            Err(Reason::IssuedAt)
        );
        assert_eq!(
            check(&aged, &format!(r#"{{"exp":{exp}}}"#)),
            Err(Reason::MissingClaim)
        );
    }

    #[test]
    fn iss_and_aud_types_are_strict() {
        let r = Rules {
            issuers: vec!["https://a".into()],
            audiences: vec!["api".into()],
            ..rules()
        };
        let exp = NOW + 60;
        assert_eq!(
            check(
                &r,
                &format!(r#"{{"exp":{exp},"iss":"https://a","aud":"api"}}"#)
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &r,
                &format!(r#"{{"exp":{exp},"iss":"https://a","aud":["x","api"]}}"#)
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &r,
                &format!(r#"{{"exp":{exp},"iss":["https://a"],"aud":"api"}}"#)
            ),
            Err(Reason::BadClaims)
        );
        assert_eq!(
            check(
                &r,
                &format!(r#"{{"exp":{exp},"iss":"https://a","aud":[]}}"#)
            ),
            Err(Reason::BadClaims)
        );
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp},"iss":"https://a","aud":7}}"#)),
            Err(Reason::BadClaims)
        );
        assert_eq!(
            check(
                &r,
                &format!(r#"{{"exp":{exp},"iss":"https://a","sub":1,"aud":"api"}}"#)
            ),
            Err(Reason::BadClaims)
        );
        assert_eq!(
            check(
                &r,
                &format!(r#"{{"exp":{exp},"iss":"https://b","aud":"api"}}"#)
            ),
            Err(Reason::Issuer)
        );
        assert_eq!(
            check(
                &r,
                &format!(r#"{{"exp":{exp},"iss":"https://a","aud":"web"}}"#)
            ),
            Err(Reason::Audience)
        );
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp},"aud":"api"}}"#)),
            Err(Reason::MissingClaim)
        );
        assert_eq!(
            check(&rules(), &format!(r#"{{"exp":{exp},"aud":"api"}}"#)),
            Err(Reason::Audience)
        );
        let any = Rules {
            any_audience: true,
            ..rules()
        };
        assert_eq!(
            check(&any, &format!(r#"{{"exp":{exp},"aud":"api"}}"#)),
            Ok(())
        );
    }

    #[test]
    fn duplicates_and_required_claims() {
        let exp = NOW + 60;
        let r = Rules {
            required: vec!["sub".into(), "tenant".into()],
            ..rules()
        };
        assert_eq!(
            check(
                &r,
                &format!(r#"{{"exp":{exp},"sub":"u","tenant":{{"id":1}}}}"#)
            ),
            Ok(())
        );
        assert_eq!(
            check(&r, &format!(r#"{{"exp":{exp},"sub":"u"}}"#)),
            Err(Reason::MissingClaim)
        );
        assert_eq!(
            check(&rules(), &format!(r#"{{"exp":{exp},"sub":"a","sub":"b"}}"#)),
            Err(Reason::DuplicateMember)
        );
        assert_eq!(
            check(&rules(), &format!(r#"{{"exp":{exp},"x":1,"x":1}}"#)),
            Err(Reason::DuplicateMember)
        );
        assert_eq!(check(&rules(), "[1]"), Err(Reason::BadClaims));
        assert_eq!(check(&rules(), "{"), Err(Reason::BadClaims));
    }

    #[test]
    fn typ_profile_and_scopes() {
        let exp = NOW + 60;
        let r = Rules {
            typ_at_jwt: true,
            scopes: vec!["a".into(), "b".into()],
            ..rules()
        };
        let json = format!(r#"{{"exp":{exp},"scope":"b a c"}}"#);
        assert_eq!(
            r.check(json.as_bytes(), false, NOW).err(),
            Some(Reason::Type)
        );
        let claims = r.check(json.as_bytes(), true, NOW).unwrap();
        assert_eq!(r.missing_scope(&claims), None);
        let json = format!(r#"{{"exp":{exp},"scp":["a"]}}"#);
        let claims = r.check(json.as_bytes(), true, NOW).unwrap();
        assert_eq!(r.missing_scope(&claims).as_deref(), Some("a b"));
    }
}
