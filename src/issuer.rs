//! Several issuers behind one layer: [`Issuer`], one issuer's keys and
//! rules, and choosing among several by a token's `iss`.

use std::time::Duration;

use crate::claims::{self, Rules};
use crate::error::Error;
use crate::jws;
use crate::keys::{KeySet, KeyStore, VerifyingKey};
use crate::reject::Reason;

#[cfg(feature = "remote-jwks")]
use crate::keys::remote::{HttpClient, RemoteKeys, RemoteOptions, RemoteSetup};

/// One trusted issuer: the exact `iss` its tokens carry, the keys that
/// verify them and the rules they must meet, handed to
/// [`JwtAuthBuilder::issuer_config`](crate::JwtAuthBuilder::issuer_config)
/// once per issuer when one layer accepts tokens from several.
///
/// The token's `iss` is read before its signature is checked, with the same
/// strict decoding as the verified claims (canonical base64url, duplicate
/// members and a non-string `iss` refused), and only picks which issuer's
/// keys and rules apply. That issuer's rules then name exactly its `iss`,
/// so the verified `iss` must equal the one that picked them: a token of
/// issuer A signed with B's key fails B's signature check or A's rules,
/// never both pass. A token whose `iss` is missing or unknown is refused
/// (401 `invalid_token`) before any key is looked at. With one issuer,
/// nothing is read before the signature: that path is the plain builder's.
///
/// Defaults as for [`JwtAuthBuilder`](crate::JwtAuthBuilder): `exp`
/// required, 30 s leeway, no audience accepted unless configured. Methods
/// that take key material keep the first error, reported by
/// [`JwtAuthBuilder::build`](crate::JwtAuthBuilder::build). With the
/// `remote-jwks` feature an issuer's keys may also come from the network
/// (`jwks_url`, `oidc_discovery`, `remote_keys`), each issuer's source its
/// own: an unknown `kid` refetches only its issuer's keys, and an unknown
/// `iss` reaches no source.
///
/// # Example
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_jwt_auth::{Issuer, JwtAuthLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let partner_jwks = r#"{"keys":[{"kty":"oct","kid":"p1","alg":"HS256",
/// #     "k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}"#;
/// let auth = JwtAuthLayer::<serde_json::Value>::builder()
///     .issuer_config(
///         Issuer::new("https://login.example.com")
///             .hs256(b"0123456789abcdef0123456789abcdef")
///             .audience("movies-api"),
///     )
///     .issuer_config(
///         Issuer::new("https://partner.example.net")
///             .jwks_str(partner_jwks)
///             .audience("api://movies")
///             .require_typ_at_jwt(),
///     )
///     .build()?;
///
/// let service = ServiceBuilder::new()
///     .layer(auth)
///     .service(service_fn(|_: Request<String>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
///     }));
/// let response = service.oneshot(Request::new(String::new())).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Issuer {
    iss: String,
    keys: Vec<VerifyingKey>,
    store: Option<KeyStore>,
    #[cfg(feature = "remote-jwks")]
    remote: RemoteSetup,
    error: Option<Error>,
    rules: Rules,
}

impl Issuer {
    /// An issuer whose tokens carry exactly this `iss`.
    pub fn new(iss: impl Into<String>) -> Self {
        let iss = iss.into();
        Issuer {
            rules: Rules {
                issuers: vec![iss.clone()],
                ..Rules::default()
            },
            iss,
            keys: Vec::new(),
            store: None,
            #[cfg(feature = "remote-jwks")]
            remote: RemoteSetup::default(),
            error: None,
        }
    }

    /// The `iss` this issuer's tokens carry.
    pub fn iss(&self) -> &str {
        &self.iss
    }

    crate::builder::key_methods!();

    /// Reads this issuer's keys from a store that can be replaced while
    /// serving (key rotation). Use either a store or individual keys.
    pub fn key_store(mut self, store: KeyStore) -> Self {
        self.store = Some(store);
        self
    }

    crate::builder::rule_methods!();

    /// This issuer's keys and rules.
    fn into_verifier(self) -> Result<Verifier, Error> {
        if self.iss.is_empty() {
            return Err(Error::Config("an issuer's `iss` must not be empty".into()));
        }
        if let Some(err) = self.error {
            return Err(err);
        }
        let rules = self.rules;
        let iss = self.iss;
        Verifier::new(
            self.keys,
            self.store,
            #[cfg(feature = "remote-jwks")]
            self.remote,
            rules,
        )
        .map_err(|err| match err {
            Error::Config(msg) => Error::Config(format!("issuer {iss:?}: {msg}")),
            other => other,
        })
    }
}

/// Keys from the network for one issuer (feature `remote-jwks`; see
/// [`keys::remote`](crate::keys::remote)): each issuer's source is its
/// own, fetched, refreshed and refetched apart from the others, and an
/// unknown `iss` never reaches any of them.
#[cfg(feature = "remote-jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote-jwks")))]
impl Issuer {
    fn remote_source(mut self, set: impl FnOnce(&mut RemoteSetup) -> Result<(), Error>) -> Self {
        let result = if self.remote.is_set() {
            Err(Error::Config(format!(
                "issuer {:?}: one remote key source per issuer",
                self.iss
            )))
        } else {
            set(&mut self.remote)
        };
        if let Err(err) = result {
            self.error.get_or_insert(err);
        }
        self
    }

    /// Reads this issuer's keys from the JWK set at `url` (`https`, or
    /// `http` on loopback), as
    /// [`JwtAuthBuilder::jwks_url`](crate::JwtAuthBuilder::jwks_url) does.
    pub fn jwks_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.remote_source(|remote| remote.jwks(url))
    }

    /// Reads this issuer's keys through OpenID discovery: its
    /// `<iss>/.well-known/openid-configuration` must name exactly this
    /// issuer, and its `jwks_uri` is then read as by
    /// [`jwks_url`](Self::jwks_url).
    pub fn oidc_discovery(self) -> Self {
        let iss = self.iss.clone();
        self.remote_source(|remote| remote.oidc(iss))
    }

    /// Reads this issuer's keys from a remote source made beforehand. One
    /// made with [`RemoteKeys::oidc_issuer`] must be for this issuer.
    pub fn remote_keys(self, keys: RemoteKeys) -> Self {
        let iss = self.iss.clone();
        self.remote_source(|remote| match keys.issuer() {
            Some(other) if other != iss => Err(Error::Config(format!(
                "issuer {iss:?}: remote keys discovered for {other:?}"
            ))),
            _ => remote.keys(keys),
        })
    }

    /// Settings of the source made by [`jwks_url`](Self::jwks_url) or
    /// [`oidc_discovery`](Self::oidc_discovery).
    pub fn remote_options(mut self, options: RemoteOptions) -> Self {
        self.remote.options(options);
        self
    }

    /// Sends this issuer's fetches, discovery included, through `client`.
    pub fn http_client(mut self, client: impl HttpClient) -> Self {
        self.remote.http_client(client);
        self
    }
}

/// A key source and the rules its tokens must meet.
#[derive(Debug)]
pub(crate) struct Verifier {
    pub(crate) keys: KeyStore,
    pub(crate) rules: Rules,
    /// The remote source filling `keys`, asked to refetch for unknown keys.
    #[cfg(feature = "remote-jwks")]
    pub(crate) remote: Option<RemoteKeys>,
}

impl Verifier {
    /// Checks one key configuration: exactly one of individual keys, a
    /// store or (feature `remote-jwks`) a remote source.
    pub(crate) fn new(
        keys: Vec<VerifyingKey>,
        store: Option<KeyStore>,
        #[cfg(feature = "remote-jwks")] remote: RemoteSetup,
        rules: Rules,
    ) -> Result<Self, Error> {
        #[cfg(feature = "remote-jwks")]
        let (remote, store) = remote.build(store, !keys.is_empty())?;
        let keys = match (store, keys.is_empty()) {
            (Some(store), true) => store,
            (None, false) => KeyStore::new(KeySet::new(keys)),
            (None, true) => return Err(Error::Config("no verification key configured".into())),
            (Some(_), false) => {
                return Err(Error::Config(
                    "use either a key store or individual keys".into(),
                ));
            }
        };
        if rules.required.len() > 64 {
            return Err(Error::Config("at most 64 required claims".into()));
        }
        Ok(Verifier {
            keys,
            rules,
            #[cfg(feature = "remote-jwks")]
            remote,
        })
    }
}

/// The layer's verifiers: the plain builder's one, or one per issuer.
#[derive(Debug)]
pub(crate) enum Verifiers {
    /// Every token meets these keys and rules (which may accept several
    /// `iss` values, or none in particular).
    One(Verifier),
    /// Picked by the token's `iss`, exactly; linear: a layer trusts a few
    /// issuers, and comparing a few short strings beats hashing one.
    ByIssuer(Box<[(Box<str>, Verifier)]>),
}

impl Verifiers {
    /// Assembles [`Verifiers::ByIssuer`] (or [`Verifiers::One`] for a single
    /// issuer). `layer` is the builder's own rules (scopes and authorization
    /// rules are the layer's policy, whoever issued the token); any
    /// claim rule, or `layer_keys`, belongs on an [`Issuer`] and is
    /// refused here rather than silently ignored.
    pub(crate) fn by_issuer(
        issuers: Vec<Issuer>,
        layer: Rules,
        layer_keys: bool,
    ) -> Result<Self, Error> {
        // Spelled out so that a new rule must be placed on one side.
        let Rules {
            leeway,
            max_age,
            issuers: layer_issuers,
            audiences,
            any_audience,
            required,
            typ_at_jwt,
        } = layer;
        let layer_rules = leeway != Rules::default().leeway
            || max_age.is_some()
            || !layer_issuers.is_empty()
            || !audiences.is_empty()
            || any_audience
            || !required.is_empty()
            || typ_at_jwt;
        if layer_keys || layer_rules {
            return Err(Error::Config(
                "with issuer_config, keys, issuer, audience, leeway, max_age, \
                 require_claim and require_typ_at_jwt go on each Issuer"
                    .into(),
            ));
        }
        let mut verifiers: Vec<(Box<str>, Verifier)> = Vec::with_capacity(issuers.len());
        for issuer in issuers {
            if verifiers.iter().any(|(iss, _)| **iss == issuer.iss) {
                return Err(Error::Config(format!(
                    "issuer {:?} configured twice",
                    issuer.iss
                )));
            }
            let iss: Box<str> = issuer.iss.as_str().into();
            verifiers.push((iss, issuer.into_verifier()?));
        }
        // One issuer needs no choosing: its rules check `iss` after the
        // signature, as the plain builder's do.
        if verifiers.len() == 1 {
            let (_, verifier) = verifiers.pop().expect("one verifier");
            return Ok(Verifiers::One(verifier));
        }
        Ok(Verifiers::ByIssuer(verifiers.into_boxed_slice()))
    }

    /// The longest leeway any verifier allows past a token's `exp`.
    pub(crate) fn max_leeway(&self) -> Duration {
        let seconds = match self {
            Verifiers::One(verifier) => verifier.rules.leeway,
            Verifiers::ByIssuer(verifiers) => verifiers
                .iter()
                .map(|(_, verifier)| verifier.rules.leeway)
                .max()
                .unwrap_or(0),
        };
        Duration::from_secs(seconds)
    }

    /// Every remote key source, for waiting until all have keys.
    #[cfg(feature = "remote-jwks")]
    pub(crate) fn remotes(&self) -> impl Iterator<Item = &RemoteKeys> {
        let (one, many) = match self {
            Verifiers::One(verifier) => (Some(verifier), &[][..]),
            Verifiers::ByIssuer(verifiers) => (None, &verifiers[..]),
        };
        one.into_iter()
            .chain(many.iter().map(|(_, verifier)| verifier))
            .filter_map(|verifier| verifier.remote.as_ref())
    }

    /// The verifier for `token`: the only one, or the one its unverified
    /// `iss` names. Nothing here is trusted: the chosen rules check the
    /// verified `iss` again.
    pub(crate) fn select(&self, token: &[u8]) -> Result<&Verifier, Reason> {
        match self {
            Verifiers::One(verifier) => Ok(verifier),
            Verifiers::ByIssuer(verifiers) => {
                let compact = jws::split(token)?;
                let mut stack = [0u8; 1024];
                let payload = jws::decode_payload(compact.payload, &mut stack)?;
                let claims = claims::parse_registered(&payload)?;
                let iss = claims.iss.as_deref().ok_or(Reason::MissingClaim)?;
                verifiers
                    .iter()
                    .find(|(name, _)| **name == *iss)
                    .map(|(_, verifier)| verifier)
                    .ok_or(Reason::Issuer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const SECRET_A: &[u8] = b"secret-of-issuer-a-0123456789abcdef";
    const SECRET_B: &[u8] = b"secret-of-issuer-b-0123456789abcdef";

    fn two() -> Verifiers {
        Verifiers::by_issuer(
            vec![
                Issuer::new("https://a").hs256(SECRET_A).audience("api"),
                Issuer::new("https://b").hs256(SECRET_B).any_audience(),
            ],
            Rules::default(),
            false,
        )
        .unwrap()
    }

    /// An unsigned token: `select` must not care about the signature.
    fn token(payload: &str) -> String {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2ln", b64(r#"{"alg":"HS256"}"#), b64(payload))
    }

    fn select(verifiers: &Verifiers, payload: &str) -> Result<Vec<String>, Reason> {
        verifiers
            .select(token(payload).as_bytes())
            .map(|v| v.rules.issuers.clone())
    }

    #[test]
    fn iss_picks_exactly_its_issuer() {
        let v = two();
        assert_eq!(
            select(&v, r#"{"iss":"https://a"}"#),
            Ok(vec!["https://a".into()])
        );
        assert_eq!(
            select(&v, r#"{"iss":"https://b"}"#),
            Ok(vec!["https://b".into()])
        );
        // Escapes decode before comparing: the same string, the same issuer.
        assert_eq!(
            select(&v, r#"{"iss":"https:\/\/b"}"#),
            Ok(vec!["https://b".into()])
        );
        let picked = v
            .select(token(r#"{"iss":"https://a"}"#).as_bytes())
            .unwrap();
        assert_eq!(picked.rules.audiences, ["api"]);
    }

    #[test]
    fn unknown_missing_or_ambiguous_iss_is_refused() {
        let v = two();
        for (payload, reason) in [
            (r#"{"iss":"https://c"}"#, Reason::Issuer),
            (r#"{"iss":"https://a/"}"#, Reason::Issuer),
            (r#"{"iss":"HTTPS://A"}"#, Reason::Issuer),
            (r#"{"iss":""}"#, Reason::Issuer),
            (r#"{"sub":"x"}"#, Reason::MissingClaim),
            (r#"{"iss":["https://a"]}"#, Reason::BadClaims),
            (r#"{"iss":null}"#, Reason::BadClaims),
            (
                r#"{"iss":"https://a","iss":"https://b"}"#,
                Reason::DuplicateMember,
            ),
            (
                r#"{"iss":"https://b","iss":"https://a"}"#,
                Reason::DuplicateMember,
            ),
            (r#"["https://a"]"#, Reason::BadClaims),
            (r#"{"iss":"https://a""#, Reason::BadClaims),
        ] {
            assert_eq!(select(&v, payload), Err(reason), "{payload}");
        }
        for token in [&b"a.b"[..], b"e30.!!!.c2ln", b"e30.e30=.c2ln"] {
            assert_eq!(v.select(token).err(), Some(Reason::Malformed));
        }
    }

    #[test]
    fn a_large_payload_is_read_too() {
        let filler = "x".repeat(4000);
        let payload = format!(r#"{{"pad":"{filler}","iss":"https://b"}}"#);
        assert_eq!(select(&two(), &payload), Ok(vec!["https://b".into()]));
    }

    #[test]
    fn one_issuer_reads_nothing_before_the_signature() {
        let v = Verifiers::by_issuer(
            vec![Issuer::new("https://a").hs256(SECRET_A)],
            Rules::default(),
            false,
        )
        .unwrap();
        assert!(matches!(v, Verifiers::One(_)));
        // Not even a payload: the signature check is what refuses this.
        assert!(v.select(b"garbage").is_ok());
    }

    fn config_error(issuers: Vec<Issuer>, layer: Rules, layer_keys: bool) -> String {
        match Verifiers::by_issuer(issuers, layer, layer_keys) {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn contradictory_configurations_are_refused() {
        let a = || Issuer::new("https://a").hs256(SECRET_A);
        let b = || Issuer::new("https://b").hs256(SECRET_B);
        let msg = config_error(vec![a(), a()], Rules::default(), false);
        assert!(msg.contains("configured twice"), "{msg}");
        let msg = config_error(vec![a(), Issuer::new("https://b")], Rules::default(), false);
        assert_eq!(msg, "issuer \"https://b\": no verification key configured");
        let both = b().key_store(KeyStore::new(KeySet::default()));
        let msg = config_error(vec![a(), both], Rules::default(), false);
        assert!(msg.contains("either a key store"), "{msg}");
        let msg = config_error(
            vec![Issuer::new("").hs256(SECRET_A)],
            Rules::default(),
            false,
        );
        assert!(msg.contains("must not be empty"), "{msg}");
        // Rules or keys given to the layer itself would be ignored: refused.
        let msg = config_error(vec![a(), b()], Rules::default(), true);
        assert!(msg.contains("go on each Issuer"), "{msg}");
        for layer in [
            Rules {
                audiences: vec!["api".into()],
                ..Rules::default()
            },
            Rules {
                issuers: vec!["https://a".into()],
                ..Rules::default()
            },
            Rules {
                leeway: 0,
                ..Rules::default()
            },
            Rules {
                typ_at_jwt: true,
                ..Rules::default()
            },
        ] {
            let msg = config_error(vec![a(), b()], layer, false);
            assert!(msg.contains("go on each Issuer"), "{msg}");
        }
        let many = (0..65).fold(a(), |i, n| i.require_claim(format!("c{n}")));
        let msg = config_error(vec![many, b()], Rules::default(), false);
        assert!(msg.contains("64 required claims"), "{msg}");
    }

    #[test]
    fn a_bad_key_is_reported() {
        let weak = Issuer::new("https://a").hs256(b"short");
        let err = Verifiers::by_issuer(vec![weak], Rules::default(), false).unwrap_err();
        assert!(matches!(err, Error::WeakSecret { len: 5 }), "{err:?}");
    }
}
