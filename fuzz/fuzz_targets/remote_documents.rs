//! Remote keys (`RemoteKeys`, feature `remote-jwks`) against a fuzzed
//! server: an `HttpClient` with no network answers every request from the
//! input (status, `content-type`, `cache-control`, `etag`, `location`,
//! `content-length`, the body and how it is streamed), in JWKS-URL or OIDC
//! mode, through two or three `refresh()` calls on a current-thread tokio
//! runtime.
//!
//! Input: a flags byte, then fields split at `0xFF`, six per response:
//! control bytes, content-type, cache-control, etag, location, body (an
//! empty header field: no such header). Responses are served in order;
//! once they run out every request fails at the transport.
//!
//! Properties, beyond "no panic, no hang":
//! - every request is a `GET` to `https`, or `http` on loopback, without
//!   credentials; discovery requests (and in JWKS mode all requests) stay
//!   on the configured origin; each refresh starts at the configured URL
//!   (OIDC: at the discovery document until one refresh succeeded, and
//!   again after a failure);
//! - `If-None-Match` goes only on JWKS requests, carries an `ETag` served
//!   with a JWK set earlier, and only while keys are held;
//! - no symmetric (HS*) key ever reaches the store;
//! - a failed refresh leaves the store as it was (so a failed first
//!   refresh leaves it empty); a successful one leaves keys;
//! - a success ends on a JWKS answer: a 304 (to a request that had
//!   `If-None-Match`) keeps the very same key set, a 2xx installs exactly
//!   the keys `KeySet::from_jwks_with` reads from that body under the
//!   remote policy;
//! - one fetch per `refresh()`, none in the background meanwhile, and
//!   `status()` agrees.
#![no_main]

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::keys::JwkPolicy;
use tower_jwt_auth::keys::remote::{FetchFuture, HttpClient, RemoteKeys, RemoteOptions};
use tower_jwt_auth::{Algorithm, KeySet, KeyStore};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ORIGIN: &str = "http://127.0.0.1:1";
const JWKS_URL: &str = "http://127.0.0.1:1/jwks";
const JWKS_ACCEPT: &str = "application/jwk-set+json, application/json";
const MAX_RESPONSES: usize = 12;

/// One scripted answer.
struct Canned {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    cache_control: Option<HeaderValue>,
    etag: Option<HeaderValue>,
    location: Option<HeaderValue>,
    content_length: Option<HeaderValue>,
    body: Bytes,
    chunk: usize,
    fail_at_end: bool,
}

/// What the client answered to one request.
struct Served {
    uri: Uri,
    jwks: bool,
    if_none_match: bool,
    /// `None`: the client failed the request (script exhausted).
    status: Option<StatusCode>,
    etag: Option<HeaderValue>,
    body: Bytes,
    /// The body ends in an error frame.
    fail_at_end: bool,
}

#[derive(Default)]
struct Script {
    responses: VecDeque<Canned>,
    served: Vec<Served>,
    /// ETags served with 2xx JWKS answers.
    jwks_etags: Vec<HeaderValue>,
}

#[derive(Clone)]
struct FuzzClient {
    script: Arc<Mutex<Script>>,
    store: Arc<OnceLock<KeyStore>>,
    /// The origin discovery requests must stay on (and, in JWKS mode,
    /// every request).
    jwks_mode: bool,
}

fn origin_of(uri: &Uri) -> (Option<String>, Option<String>, Option<u16>) {
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    });
    (
        uri.scheme_str().map(str::to_owned),
        uri.host().map(str::to_ascii_lowercase),
        port,
    )
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl HttpClient for FuzzClient {
    fn fetch(&self, request: Request<()>) -> FetchFuture {
        let uri = request.uri().clone();
        assert_eq!(request.method(), Method::GET);
        let authority = uri.authority().expect("a request without a host");
        assert!(!authority.as_str().contains('@'), "credentials sent: {uri}");
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => assert!(
                is_loopback(authority.host()),
                "plain http off loopback: {uri}"
            ),
            other => panic!("scheme {other:?} fetched: {uri}"),
        }
        let accept = request.headers().get(ACCEPT).expect("no Accept");
        let jwks = accept == JWKS_ACCEPT;
        assert!(jwks || accept == "application/json", "Accept {accept:?}");
        let configured: Uri = ORIGIN.parse().unwrap();
        if self.jwks_mode || !jwks {
            assert_eq!(
                origin_of(&uri),
                origin_of(&configured),
                "left the origin: {uri}"
            );
        }
        let if_none_match = request.headers().get(IF_NONE_MATCH).cloned();
        let mut script = self.script.lock().unwrap();
        if let Some(tag) = &if_none_match {
            assert!(jwks, "If-None-Match on a discovery request");
            assert!(
                script.jwks_etags.contains(tag),
                "If-None-Match {tag:?} was never served with a JWK set"
            );
            let held = self.store.get().is_some_and(|s| !s.load().is_empty());
            assert!(held, "If-None-Match sent while no keys are held");
        }
        let Some(canned) = script.responses.pop_front() else {
            script.served.push(Served {
                uri,
                jwks,
                if_none_match: if_none_match.is_some(),
                status: None,
                etag: None,
                body: Bytes::new(),
                fail_at_end: false,
            });
            return Box::pin(async { Err::<_, BoxError>("script exhausted".into()) });
        };
        if jwks
            && canned.status.is_success()
            && let Some(tag) = &canned.etag
        {
            script.jwks_etags.push(tag.clone());
        }
        script.served.push(Served {
            uri,
            jwks,
            if_none_match: if_none_match.is_some(),
            status: Some(canned.status),
            etag: canned.etag.clone(),
            body: canned.body.clone(),
            fail_at_end: canned.fail_at_end,
        });
        drop(script);
        let mut response = Response::new(
            Chunked {
                data: canned.body,
                chunk: canned.chunk,
                fail_at_end: canned.fail_at_end,
            }
            .boxed_unsync(),
        );
        *response.status_mut() = canned.status;
        let headers = response.headers_mut();
        for (name, value) in [
            (CONTENT_TYPE, canned.content_type),
            (CACHE_CONTROL, canned.cache_control),
            (ETAG, canned.etag),
            (LOCATION, canned.location),
            (CONTENT_LENGTH, canned.content_length),
        ] {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        Box::pin(async move { Ok(response) })
    }
}

/// A finite body in frames of `chunk` bytes, ending in an error frame
/// when `fail_at_end`.
struct Chunked {
    data: Bytes,
    chunk: usize,
    fail_at_end: bool,
}

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.data.is_empty() {
            if std::mem::take(&mut self.fail_at_end) {
                return Poll::Ready(Some(Err("connection reset".into())));
            }
            return Poll::Ready(None);
        }
        let n = self.chunk.min(self.data.len());
        let frame = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }
}

fn header(field: &[u8]) -> Option<HeaderValue> {
    if field.is_empty() {
        None
    } else {
        HeaderValue::from_bytes(field).ok()
    }
}

fn canned(fields: &[&[u8]]) -> Canned {
    let field = |i: usize| fields.get(i).copied().unwrap_or(&[]);
    let ctl = field(0);
    let c = |i: usize| ctl.get(i).copied().unwrap_or(0);
    let status = match c(0) % 8 {
        0..=2 => 200,
        3 => 304,
        4 => [301, 302, 303, 307, 308][usize::from(c(2)) % 5],
        5 => [400, 401, 403, 404, 410, 429][usize::from(c(2)) % 6],
        6 => [500, 502, 503, 504][usize::from(c(2)) % 4],
        _ => u16::from_be_bytes([c(2), c(3)]),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let body = Bytes::copy_from_slice(field(5));
    let content_length = match c(1) & 3 {
        0 => None,
        1 => Some(HeaderValue::from(body.len())),
        2 => Some(HeaderValue::from(u32::from_be_bytes([
            c(2),
            c(3),
            c(4),
            c(5),
        ]))),
        _ => header(field(4)), // the location field doubles as a raw value
    };
    let chunk = match (c(1) >> 2) & 7 {
        0 => usize::MAX,
        k => 1 << (k - 1),
    };
    Canned {
        status,
        content_type: header(field(1)),
        cache_control: header(field(2)),
        etag: header(field(3)),
        location: header(field(4)),
        content_length,
        body,
        chunk,
        fail_at_end: c(1) & 0x20 != 0,
    }
}

fn symmetric(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// (kid, algorithm) of every key, in order.
fn labels(set: &KeySet) -> Vec<(Option<String>, Algorithm)> {
    set.keys()
        .iter()
        .map(|k| (k.kid().map(str::to_owned), k.algorithm()))
        .collect()
}

/// `REMOTE_FUZZ_TRACE=1`: print each refresh's requests and outcome (to
/// read what a reproducer does).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("REMOTE_FUZZ_TRACE").is_some())
}

fn remote_policy() -> JwkPolicy {
    JwkPolicy::default().without_symmetric_keys()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let oidc = flags & 1 != 0;
    let refreshes = 2 + usize::from(flags >> 1 & 1);
    let fields: Vec<&[u8]> = rest.split(|&b| b == 0xFF).collect();
    let responses: VecDeque<Canned> = fields.chunks(6).take(MAX_RESPONSES).map(canned).collect();
    let issuer = if flags & 0x20 != 0 {
        "http://127.0.0.1:1/r/"
    } else {
        ORIGIN
    };
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let first_url: Uri = if oidc { &discovery_url } else { JWKS_URL }
        .parse()
        .unwrap();

    let script = Arc::new(Mutex::new(Script {
        responses,
        ..Script::default()
    }));
    let store_cell = Arc::new(OnceLock::new());
    let client = FuzzClient {
        script: Arc::clone(&script),
        store: Arc::clone(&store_cell),
        jwks_mode: !oidc,
    };
    let mut options = RemoteOptions::default().http_client(client);
    // No fetch but the ones asked for: retries and refreshes lie far ahead.
    options.initial_backoff = Duration::from_secs(3600);
    options.max_backoff = Duration::from_secs(3600);
    options.max_redirects = usize::from(flags >> 3 & 3);
    if flags & 0x40 != 0 {
        options.max_body_len = 300;
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let keys = if oidc {
            RemoteKeys::oidc_issuer(issuer, options)
        } else {
            RemoteKeys::jwks_url(JWKS_URL, options)
        }
        .expect("a valid configuration");
        let store = keys.key_store().clone();
        let _ = store_cell.set(store.clone());
        let mut succeeded = false;
        let mut last_failed = false;
        for round in 0..refreshes {
            let before = store.load();
            let start = script.lock().unwrap().served.len();
            let result = tokio::time::timeout(Duration::from_secs(8), keys.refresh())
                .await
                .expect("refresh() hung");
            let after = store.load();
            let script = script.lock().unwrap();
            let served = &script.served[start..];

            if trace() {
                for s in served {
                    eprintln!(
                        "  {} {} inm={} -> {:?}",
                        if s.jwks { "jwks" } else { "disc" },
                        s.uri,
                        s.if_none_match,
                        s.status
                    );
                }
                eprintln!("refresh {round}: {result:?}, {} keys", after.len());
            }
            assert!(!served.is_empty(), "a refresh without a request");
            if !oidc || !succeeded || last_failed {
                assert_eq!(
                    served[0].uri, first_url,
                    "refresh {round} started elsewhere"
                );
            }
            for key in after.keys() {
                assert!(
                    !symmetric(key.algorithm()),
                    "symmetric key {:?} stored",
                    key.kid()
                );
            }
            let status = keys.status();
            assert_eq!(
                status.fetches,
                round as u64 + 1,
                "fetches in the background"
            );
            assert_eq!(status.keys, after.len());
            match &result {
                Err(err) => {
                    assert!(
                        Arc::ptr_eq(&before, &after),
                        "failed refresh ({err}) changed the keys"
                    );
                    assert_eq!(status.last_error.as_ref(), Some(err));
                    if !succeeded {
                        assert!(after.is_empty(), "keys without a successful refresh");
                    }
                }
                Ok(()) => {
                    assert!(!after.is_empty(), "a successful refresh left no key");
                    assert!(status.last_error.is_none());
                    let last = served.last().unwrap();
                    assert!(last.jwks, "success ending on a discovery answer");
                    let code = last.status.expect("success after a transport error");
                    assert!(!last.fail_at_end || code == StatusCode::NOT_MODIFIED);
                    if code == StatusCode::NOT_MODIFIED {
                        assert!(last.if_none_match, "304 to an unconditional request taken");
                        assert!(succeeded, "304 taken before any success");
                        assert!(Arc::ptr_eq(&before, &after), "304 changed the keys");
                    } else {
                        assert!(code.is_success(), "success on status {code}");
                        let value: serde_json::Value = serde_json::from_slice(&last.body)
                            .expect("JWK set taken from non-JSON");
                        let expected = KeySet::from_jwks_with(&value, &remote_policy())
                            .expect("keys the policy does not read");
                        assert_eq!(labels(&after), labels(&expected), "keys not those served");
                        let _ = &last.etag;
                    }
                    succeeded = true;
                }
            }
            last_failed = result.is_err();
        }
        drop(keys);
    });
});
