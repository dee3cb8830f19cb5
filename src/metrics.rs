//! Metrics on the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): what the layer allowed and refused, and why; key fetches and
//! the keys' age; the verified-token cache; revocation store errors.
//!
//! The crate records; the application chooses the exporter. Install a
//! recorder (e.g. `metrics-exporter-prometheus`), then call [`describe`]
//! once so exporters can print each metric's help text and unit.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `tower_jwt_auth_requests_allowed_total` | counter | `token` | requests passed to the inner service: `verified` (a valid token), `absent` (no token on an [`optional`](crate::JwtAuthBuilder::optional) route) |
//! | `tower_jwt_auth_requests_refused_total` | counter | `kind`, `reason` | requests answered by the layer; `kind` is the [`RejectionKind`], `reason` the [`Reason`] of an `invalid_token`, otherwise the kind again |
//! | `tower_jwt_auth_key_fetches_total` | counter | `result` | key set fetches: `ok`, `not_modified`, `failed` |
//! | `tower_jwt_auth_keys_age_seconds` | gauge | | seconds since the key set was last fetched successfully |
//! | `tower_jwt_auth_token_cache_hits_total` | counter | | tokens found in the verified-token cache |
//! | `tower_jwt_auth_token_cache_misses_total` | counter | | tokens verified in full because the cache did not hold them |
//! | `tower_jwt_auth_token_cache_evictions_total` | counter | | entries the cache dropped to stay within its bounds |
//! | `tower_jwt_auth_revocation_errors_total` | counter | | revocation store errors (each failed check answered 503) |
//! | `tower_jwt_auth_dpop_replay_errors_total` | counter | | DPoP replay store errors (each failed check answered 503; feature `dpop`) |
//!
//! Every label value comes from a fixed set written in this module: never
//! the token, a claim, or anything else a client sends. Tokens verified
//! outside a request ([`JwtAuthLayer::verify`](crate::JwtAuthLayer::verify))
//! are not counted as requests.
//!
//! # Example
//!
//! ```
//! # // Doctests of this module are collected even without the feature.
//! # #[cfg(not(feature = "metrics"))] fn main() {}
//! # #[cfg(feature = "metrics")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use http::{Request, StatusCode};
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_jwt_auth::JwtAuthLayer;
//! use tower_jwt_auth::metrics::{REQUESTS_REFUSED, describe};
//!
//! // An application installs its exporter's recorder globally instead.
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//!
//! let status = metrics::with_local_recorder(&recorder, || {
//!     describe();
//!     let auth = JwtAuthLayer::<serde_json::Value>::builder()
//!         .hs256(b"0123456789abcdef0123456789abcdef")
//!         .build()?;
//!     let service = ServiceBuilder::new().layer(auth).service(service_fn(|_: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     }));
//!     let response = runtime.block_on(service.oneshot(Request::new(String::new())))?;
//!     Ok::<_, Box<dyn std::error::Error>>(response.status())
//! })?;
//! assert_eq!(status, StatusCode::UNAUTHORIZED);
//!
//! let (key, _, help, value) = snapshotter.snapshot().into_vec().pop().unwrap();
//! assert_eq!(key.key().name(), REQUESTS_REFUSED);
//! let labels: Vec<_> = key.key().labels().map(|l| (l.key(), l.value())).collect();
//! assert_eq!(labels, [("kind", "missing_token"), ("reason", "missing_token")]);
//! assert!(help.is_some());
//! assert_eq!(value, DebugValue::Counter(1));
//! # Ok(()) }
//! ```

// Without the feature this module is private and every function is empty:
// call sites stay one un-`cfg`'d line and compile to nothing.
#![cfg_attr(not(feature = "metrics"), allow(dead_code, unreachable_pub))]

use std::time::Duration;

use crate::authenticate::Outcome;
use crate::reject::{Reason, Rejection, RejectionKind};

/// A key for a `static` item: name, label and hash fixed at compile time.
#[cfg(feature = "metrics")]
macro_rules! static_key {
    ($name:expr) => {
        metrics::Key::from_static_name($name)
    };
    ($name:expr, $label:expr => $value:literal) => {{
        static LABELS: [metrics::Label; 1] = [metrics::Label::from_static_parts($label, $value)];
        metrics::Key::from_static_parts($name, &LABELS)
    }};
}

/// Counter: requests passed to the inner service. Label [`LABEL_TOKEN`].
pub const REQUESTS_ALLOWED: &str = "tower_jwt_auth_requests_allowed_total";
/// Counter: requests the layer answered itself. Labels [`LABEL_KIND`] and
/// [`LABEL_REASON`].
pub const REQUESTS_REFUSED: &str = "tower_jwt_auth_requests_refused_total";
/// Counter: key set fetches. Label [`LABEL_RESULT`].
pub const KEY_FETCHES: &str = "tower_jwt_auth_key_fetches_total";
/// Gauge: seconds since the key set was last fetched successfully.
pub const KEYS_AGE: &str = "tower_jwt_auth_keys_age_seconds";
/// Counter: tokens found in the verified-token cache.
pub const TOKEN_CACHE_HITS: &str = "tower_jwt_auth_token_cache_hits_total";
/// Counter: tokens the verified-token cache did not hold.
pub const TOKEN_CACHE_MISSES: &str = "tower_jwt_auth_token_cache_misses_total";
/// Counter: entries the verified-token cache dropped to stay within bounds.
pub const TOKEN_CACHE_EVICTIONS: &str = "tower_jwt_auth_token_cache_evictions_total";
/// Counter: revocation store errors.
pub const REVOCATION_ERRORS: &str = "tower_jwt_auth_revocation_errors_total";
/// Counter: DPoP replay store errors (feature `dpop`).
pub const DPOP_REPLAY_ERRORS: &str = "tower_jwt_auth_dpop_replay_errors_total";

/// Label of [`REQUESTS_ALLOWED`]: `verified` or `absent`.
pub const LABEL_TOKEN: &str = "token";
/// Label of [`REQUESTS_REFUSED`]: the [`RejectionKind`], in snake case
/// (`missing_token`, `ambiguous_token`, `invalid_token`,
/// `insufficient_scope`, `forbidden`, `unavailable`, `invalid_dpop_proof`,
/// `use_dpop_nonce`).
pub const LABEL_KIND: &str = "kind";
/// Label of [`REQUESTS_REFUSED`]: the [`Reason`] of an `invalid_token` or
/// `invalid_dpop_proof`, in snake case (`expired`, `signature`, `revoked`,
/// `proof_replayed`, …); for other kinds the kind again, so grouping by
/// `reason` alone gives the whole breakdown (except a reason both kinds
/// share, such as `signature`: group by `kind` too).
pub const LABEL_REASON: &str = "reason";
/// Label of [`KEY_FETCHES`]: `ok`, `not_modified` or `failed`.
pub const LABEL_RESULT: &str = "result";

/// Describes every metric (help text and unit) to the installed recorder.
/// Call it once, after installing the recorder; metrics appear in the
/// exporter's output when first recorded.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_gauge};
        describe_counter!(
            REQUESTS_ALLOWED,
            Unit::Count,
            "Requests passed to the inner service, by token: verified, or absent on an optional route."
        );
        describe_counter!(
            REQUESTS_REFUSED,
            Unit::Count,
            "Requests refused by the JWT layer, by rejection kind and reason."
        );
        describe_counter!(
            KEY_FETCHES,
            Unit::Count,
            "Key set fetches, by result: ok, not_modified, failed."
        );
        describe_gauge!(
            KEYS_AGE,
            Unit::Seconds,
            "Seconds since the key set was last fetched successfully."
        );
        describe_counter!(
            TOKEN_CACHE_HITS,
            Unit::Count,
            "Tokens found in the verified-token cache."
        );
        describe_counter!(
            TOKEN_CACHE_MISSES,
            Unit::Count,
            "Tokens verified in full because the verified-token cache did not hold them."
        );
        describe_counter!(
            TOKEN_CACHE_EVICTIONS,
            Unit::Count,
            "Entries the verified-token cache dropped to stay within its bounds."
        );
        describe_counter!(
            REVOCATION_ERRORS,
            Unit::Count,
            "Revocation store errors; each failed check was answered 503."
        );
        describe_counter!(
            DPOP_REPLAY_ERRORS,
            Unit::Count,
            "DPoP replay store errors; each failed check was answered 503."
        );
    }
}

/// Whether an allowed request carried a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    /// A valid token.
    Verified,
    /// No token, on an optional route.
    Absent,
}

/// How a key set fetch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyFetch {
    /// A key set was fetched and parsed.
    Ok,
    /// The server answered 304: the key set held is current.
    NotModified,
    /// Transport error, bad status or an unusable document.
    Failed,
}

/// What the layer concluded for a request, unless a revocation check is
/// still to answer ([`checked`] counts those).
#[inline]
pub(crate) fn outcome<C>(outcome: &Outcome<C>) {
    match outcome {
        Outcome::Anonymous => allowed(Token::Absent),
        Outcome::Verified { .. } => allowed(Token::Verified),
        Outcome::Rejected(rejection) => refused(rejection.kind()),
        // Counted when the check answers, or once verified again after
        // the refetch.
        Outcome::Pending { .. } => {}
        #[cfg(feature = "remote-jwks")]
        Outcome::Refetch(_) => {}
    }
}

/// What the layer concluded once a revocation check answered: `None`
/// passes the request on.
#[inline]
pub(crate) fn checked(rejection: Option<&Rejection>) {
    match rejection {
        Some(rejection) => refused(rejection.kind()),
        None => allowed(Token::Verified),
    }
}

/// A request passed to the inner service.
#[inline]
fn allowed(token: Token) {
    #[cfg(feature = "metrics")]
    {
        // Static keys: no allocation and no hashing on the path of a valid
        // token, only the recorder's own lookup.
        static VERIFIED: metrics::Key = static_key!(REQUESTS_ALLOWED, LABEL_TOKEN => "verified");
        static ABSENT: metrics::Key = static_key!(REQUESTS_ALLOWED, LABEL_TOKEN => "absent");
        let key = match token {
            Token::Verified => &VERIFIED,
            Token::Absent => &ABSENT,
        };
        counter(key).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = token;
}

/// A request the layer answered with `kind`.
#[inline]
fn refused(kind: &RejectionKind) {
    // The key is built per call (one small allocation for two labels): a
    // refusal allocates its answer anyway, and a table of static keys for
    // every kind and reason would be a second list to keep in step.
    #[cfg(feature = "metrics")]
    metrics::counter!(
        REQUESTS_REFUSED,
        LABEL_KIND => kind_label(kind),
        LABEL_REASON => reason_label(kind)
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// A key set fetch ended with `result`.
#[inline]
pub(crate) fn key_fetch(result: KeyFetch) {
    #[cfg(feature = "metrics")]
    metrics::counter!(KEY_FETCHES, LABEL_RESULT => fetch_label(result)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = result;
}

/// The time since the key set was last fetched successfully (set it after
/// each fetch, failed ones included, so the gauge grows while fetches fail).
#[inline]
pub(crate) fn keys_age(age: Duration) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(KEYS_AGE).set(age.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = age;
}

/// A token found in the verified-token cache.
#[inline]
pub(crate) fn cache_hit() {
    #[cfg(feature = "metrics")]
    {
        static KEY: metrics::Key = static_key!(TOKEN_CACHE_HITS);
        counter(&KEY).increment(1);
    }
}

/// A token the verified-token cache did not hold.
#[inline]
pub(crate) fn cache_miss() {
    #[cfg(feature = "metrics")]
    {
        static KEY: metrics::Key = static_key!(TOKEN_CACHE_MISSES);
        counter(&KEY).increment(1);
    }
}

/// `entries` dropped by the verified-token cache to stay within bounds
/// (expired entries it drops are not evictions).
#[inline]
pub(crate) fn cache_evicted(entries: usize) {
    #[cfg(feature = "metrics")]
    if entries > 0 {
        metrics::counter!(TOKEN_CACHE_EVICTIONS)
            .increment(u64::try_from(entries).unwrap_or(u64::MAX));
    }
    #[cfg(not(feature = "metrics"))]
    let _ = entries;
}

/// The revocation store failed: a check returned an error, or a store that
/// mirrors its data in the background lost it.
#[inline]
pub(crate) fn revocation_error() {
    #[cfg(feature = "metrics")]
    metrics::counter!(REVOCATION_ERRORS).increment(1);
}

/// The DPoP replay store failed to answer.
#[inline]
#[cfg_attr(not(feature = "dpop"), allow(dead_code))]
pub(crate) fn replay_error() {
    #[cfg(feature = "metrics")]
    metrics::counter!(DPOP_REPLAY_ERRORS).increment(1);
}

/// The registered counter for `key`, as `metrics::counter!` would return it.
#[cfg(feature = "metrics")]
fn counter(key: &metrics::Key) -> metrics::Counter {
    static METADATA: metrics::Metadata<'static> =
        metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
}

/// The [`LABEL_KIND`] value of a rejection.
pub(crate) fn kind_label(kind: &RejectionKind) -> &'static str {
    match kind {
        RejectionKind::MissingToken => "missing_token",
        RejectionKind::AmbiguousToken => "ambiguous_token",
        RejectionKind::InvalidToken(_) => "invalid_token",
        RejectionKind::InsufficientScope { .. } => "insufficient_scope",
        RejectionKind::Forbidden => "forbidden",
        RejectionKind::Unavailable => "unavailable",
        RejectionKind::InvalidDpopProof(_) => "invalid_dpop_proof",
        RejectionKind::UseDpopNonce => "use_dpop_nonce",
    }
}

/// The [`LABEL_REASON`] value of a rejection.
pub(crate) fn reason_label(kind: &RejectionKind) -> &'static str {
    let (RejectionKind::InvalidToken(reason) | RejectionKind::InvalidDpopProof(reason)) = kind
    else {
        return kind_label(kind);
    };
    // Exhaustive: a new `Reason` needs its label here before it compiles.
    match reason {
        Reason::TooLarge => "too_large",
        Reason::Malformed => "malformed",
        Reason::BadHeader => "bad_header",
        Reason::Algorithm => "algorithm",
        Reason::UnknownKey => "unknown_key",
        Reason::Signature => "signature",
        Reason::Critical => "critical",
        Reason::Nested => "nested",
        Reason::Type => "type",
        Reason::DuplicateMember => "duplicate_member",
        Reason::BadClaims => "bad_claims",
        Reason::MissingClaim => "missing_claim",
        Reason::Expired => "expired",
        Reason::NotYetValid => "not_yet_valid",
        Reason::IssuedAt => "issued_at",
        Reason::Issuer => "issuer",
        Reason::Audience => "audience",
        Reason::ClaimsType => "claims_type",
        Reason::ClaimsRule => "claims_rule",
        Reason::Revoked => "revoked",
        Reason::TokenBound => "token_bound",
        Reason::TokenNotBound => "token_not_bound",
        Reason::BindingMismatch => "binding_mismatch",
        Reason::ProofMissing => "proof_missing",
        Reason::ProofRepeated => "proof_repeated",
        Reason::ProofType => "proof_type",
        Reason::ProofKey => "proof_key",
        Reason::ProofClaims => "proof_claims",
        Reason::ProofMethod => "proof_method",
        Reason::ProofUri => "proof_uri",
        Reason::ProofIssuedAt => "proof_issued_at",
        Reason::ProofTokenHash => "proof_token_hash",
        Reason::ProofReplayed => "proof_replayed",
    }
}

/// The [`LABEL_RESULT`] value of a key fetch.
fn fetch_label(result: KeyFetch) -> &'static str {
    match result {
        KeyFetch::Ok => "ok",
        KeyFetch::NotModified => "not_modified",
        KeyFetch::Failed => "failed",
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::{CompositeKey, MetricKind};

    use super::*;

    type Labels = Vec<(String, String)>;

    /// One recorded series: kind, name, labels, unit and help, value.
    type Series = (
        MetricKind,
        String,
        Labels,
        Option<::metrics::Unit>,
        Option<String>,
        DebugValue,
    );

    /// Runs `f` with a recorder of its own (tests run in parallel) and
    /// returns what it recorded.
    fn record(f: impl FnOnce()) -> Vec<Series> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, f);
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, unit, help, value): (CompositeKey, _, _, _)| {
                let labels = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (
                    key.kind(),
                    key.key().name().to_owned(),
                    labels,
                    unit,
                    help.map(|h| h.to_string()),
                    value,
                )
            })
            .collect()
    }

    fn pairs(labels: &[(&str, &str)]) -> Labels {
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// name, labels, value of every series, units and help left out.
    fn values(series: Vec<Series>) -> Vec<(String, Labels, DebugValue)> {
        series
            .into_iter()
            .map(|(_, name, labels, _, _, value)| (name, labels, value))
            .collect()
    }

    #[test]
    fn key_fetches_count_by_result_and_the_age_is_a_gauge_in_seconds() {
        let recorded = values(record(|| {
            key_fetch(KeyFetch::Ok);
            key_fetch(KeyFetch::NotModified);
            key_fetch(KeyFetch::NotModified);
            key_fetch(KeyFetch::Failed);
            keys_age(Duration::from_secs(90));
            keys_age(Duration::from_millis(1500));
        }));
        assert_eq!(
            recorded,
            [
                (
                    KEY_FETCHES.to_owned(),
                    pairs(&[(LABEL_RESULT, "ok")]),
                    DebugValue::Counter(1)
                ),
                (
                    KEY_FETCHES.to_owned(),
                    pairs(&[(LABEL_RESULT, "not_modified")]),
                    DebugValue::Counter(2)
                ),
                (
                    KEY_FETCHES.to_owned(),
                    pairs(&[(LABEL_RESULT, "failed")]),
                    DebugValue::Counter(1)
                ),
                (KEYS_AGE.to_owned(), vec![], DebugValue::Gauge(1.5.into())),
            ]
        );
    }

    #[test]
    fn cache_hits_misses_and_evictions_are_counted() {
        let recorded = values(record(|| {
            cache_hit();
            cache_hit();
            cache_miss();
            cache_evicted(3);
            cache_evicted(0);
            cache_evicted(2);
        }));
        assert_eq!(
            recorded,
            [
                (TOKEN_CACHE_HITS.to_owned(), vec![], DebugValue::Counter(2)),
                (
                    TOKEN_CACHE_MISSES.to_owned(),
                    vec![],
                    DebugValue::Counter(1)
                ),
                (
                    TOKEN_CACHE_EVICTIONS.to_owned(),
                    vec![],
                    DebugValue::Counter(5)
                ),
            ]
        );
    }

    #[test]
    fn revocation_errors_are_counted() {
        let recorded = values(record(|| {
            revocation_error();
            revocation_error();
        }));
        assert_eq!(
            recorded,
            [(REVOCATION_ERRORS.to_owned(), vec![], DebugValue::Counter(2))]
        );
    }

    #[test]
    fn outcomes_count_allowed_and_refused_requests_by_label() {
        let invalid = |reason| Rejection::from(RejectionKind::InvalidToken(reason));
        let recorded = values(record(|| {
            outcome(&Outcome::<()>::Verified {
                claims: (),
                payload: None,
                proof: None,
            });
            outcome(&Outcome::<()>::Anonymous);
            outcome(&Outcome::<()>::Rejected(invalid(Reason::Expired)));
            outcome(&Outcome::<()>::Rejected(
                RejectionKind::InsufficientScope {
                    required: "admin".into(),
                }
                .into(),
            ));
            outcome(&Outcome::<()>::Pending {
                claims: (),
                payload: None,
                proof: None,
                check: Box::pin(async { None }),
                denial: None,
            });
            checked(None);
            checked(Some(&invalid(Reason::Revoked)));
        }));
        let refused = |kind: &str, reason: &str| {
            (
                REQUESTS_REFUSED.to_owned(),
                pairs(&[(LABEL_KIND, kind), (LABEL_REASON, reason)]),
                DebugValue::Counter(1),
            )
        };
        assert_eq!(
            recorded,
            [
                (
                    REQUESTS_ALLOWED.to_owned(),
                    pairs(&[(LABEL_TOKEN, "verified")]),
                    DebugValue::Counter(2)
                ),
                (
                    REQUESTS_ALLOWED.to_owned(),
                    pairs(&[(LABEL_TOKEN, "absent")]),
                    DebugValue::Counter(1)
                ),
                refused("invalid_token", "expired"),
                refused("insufficient_scope", "insufficient_scope"),
                refused("invalid_token", "revoked"),
            ]
        );
    }

    #[test]
    fn every_metric_is_described_with_a_unit_and_named_by_prometheus_conventions() {
        let recorded = record(|| {
            describe();
            outcome(&Outcome::<()>::Verified {
                claims: (),
                payload: None,
                proof: None,
            });
            outcome(&Outcome::<()>::Rejected(RejectionKind::Forbidden.into()));
            key_fetch(KeyFetch::Ok);
            keys_age(Duration::ZERO);
            cache_hit();
            cache_miss();
            cache_evicted(1);
            revocation_error();
            replay_error();
        });
        let names: Vec<&str> = recorded.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(
            names,
            [
                REQUESTS_ALLOWED,
                REQUESTS_REFUSED,
                KEY_FETCHES,
                KEYS_AGE,
                TOKEN_CACHE_HITS,
                TOKEN_CACHE_MISSES,
                TOKEN_CACHE_EVICTIONS,
                REVOCATION_ERRORS,
                DPOP_REPLAY_ERRORS,
            ]
        );
        for (kind, name, _, unit, help, _) in &recorded {
            assert!(name.starts_with("tower_jwt_auth_"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(help.as_deref().is_some_and(|h| !h.is_empty()), "{name}");
            match kind {
                MetricKind::Counter => {
                    assert!(name.ends_with("_total"), "{name}");
                    assert_eq!(*unit, Some(::metrics::Unit::Count), "{name}");
                }
                MetricKind::Gauge => {
                    assert!(name.ends_with("_seconds"), "{name}");
                    assert_eq!(*unit, Some(::metrics::Unit::Seconds), "{name}");
                }
                MetricKind::Histogram => panic!("no histograms: {name}"),
            }
        }
    }

    #[test]
    fn rejection_labels_are_distinct_snake_case_words() {
        let reasons = [
            Reason::TooLarge,
            Reason::Malformed,
            Reason::BadHeader,
            Reason::Algorithm,
            Reason::UnknownKey,
            Reason::Signature,
            Reason::Critical,
            Reason::Nested,
            Reason::Type,
            Reason::DuplicateMember,
            Reason::BadClaims,
            Reason::MissingClaim,
            Reason::Expired,
            Reason::NotYetValid,
            Reason::IssuedAt,
            Reason::Issuer,
            Reason::Audience,
            Reason::ClaimsType,
            Reason::ClaimsRule,
            Reason::Revoked,
            Reason::TokenBound,
            Reason::TokenNotBound,
            Reason::BindingMismatch,
            Reason::ProofMissing,
            Reason::ProofRepeated,
            Reason::ProofType,
            Reason::ProofKey,
            Reason::ProofClaims,
            Reason::ProofMethod,
            Reason::ProofUri,
            Reason::ProofIssuedAt,
            Reason::ProofTokenHash,
            Reason::ProofReplayed,
        ];
        let kinds = [
            RejectionKind::MissingToken,
            RejectionKind::AmbiguousToken,
            RejectionKind::InsufficientScope {
                required: "a b".into(),
            },
            RejectionKind::Forbidden,
            RejectionKind::Unavailable,
            RejectionKind::UseDpopNonce,
        ];
        let mut labels: Vec<&str> = reasons
            .into_iter()
            .map(|reason| reason_label(&RejectionKind::InvalidToken(reason)))
            .chain(kinds.iter().map(reason_label))
            .collect();
        for label in &labels {
            assert!(
                !label.is_empty() && label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{label}"
            );
        }
        let count = labels.len();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), count, "a reason label is used twice");
        for kind in &kinds {
            assert_eq!(reason_label(kind), kind_label(kind));
        }
    }
}
