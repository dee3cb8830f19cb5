//! Claim rules, checked only after the signature holds.
//!
//! Registered claims are read strictly by [`super::registered`], whatever
//! the application's claims type contains: a claim of the wrong JSON type
//! is a rejection, never "absent" (jsonwebtoken's behaviour).
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

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::registered::Registered;
use crate::reject::Reason;

/// The default clock-skew allowance.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

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
        }
    }
}

/// Seconds since the epoch; a clock before 1970 counts as 0.
pub(crate) fn now() -> u64 {
    seconds(SystemTime::now())
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Where the checks read the time: the system clock, or the application's
/// function (tests that move time, replays).
#[derive(Clone, Default)]
pub(crate) struct Clock(Option<Arc<dyn Fn() -> SystemTime + Send + Sync>>);

impl Clock {
    pub(crate) fn new(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Clock(Some(Arc::new(now)))
    }

    /// Seconds since the epoch.
    pub(crate) fn now(&self) -> u64 {
        match &self.0 {
            None => now(),
            Some(now) => seconds(now()),
        }
    }

    /// The time itself.
    #[cfg(feature = "dpop")]
    pub(crate) fn time(&self) -> SystemTime {
        match &self.0 {
            None => SystemTime::now(),
            Some(now) => now(),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(custom)"
        } else {
            "Clock(system)"
        })
    }
}

impl Rules {
    /// Applies every rule (scopes are a [`crate::authorize`] matter).
    pub(crate) fn check(
        &self,
        claims: &Registered<'_>,
        typ_at_jwt: bool,
        now: u64,
    ) -> Result<(), Reason> {
        if self.typ_at_jwt && !typ_at_jwt {
            return Err(Reason::Type);
        }
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
            if claims.aud.is_absent() {
                return Err(Reason::MissingClaim);
            }
            if !claims
                .aud
                .iter()
                .any(|aud| self.audiences.iter().any(|a| a == aud))
            {
                return Err(Reason::Audience);
            }
        } else if !claims.aud.is_absent() && !self.any_audience {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::registered::parse;

    const NOW: u64 = 1_700_000_000;

    fn rules() -> Rules {
        Rules {
            leeway: 0,
            ..Rules::default()
        }
    }

    fn check(rules: &Rules, json: &str) -> Result<(), Reason> {
        rules.check(&parse(json.as_bytes(), &rules.required)?, false, NOW)
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
    fn typ_profile() {
        let exp = NOW + 60;
        let r = Rules {
            typ_at_jwt: true,
            ..rules()
        };
        let json = format!(r#"{{"exp":{exp}}}"#);
        let claims = parse(json.as_bytes(), &[]).unwrap();
        assert_eq!(r.check(&claims, false, NOW), Err(Reason::Type));
        assert_eq!(r.check(&claims, true, NOW), Ok(()));
    }
}
