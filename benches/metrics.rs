//! What recording metrics (feature `metrics`) adds to a request, measured
//! in one run: the same HS256 request through the layer, first with no
//! recorder installed (the facade's no-op, the baseline), then with a
//! recorder installed globally that stores values the way exporters do
//! (`metrics-util`'s registry of atomics, which
//! `metrics-exporter-prometheus` builds on). `DebuggingRecorder` would
//! measure itself: it locks and clones on every registration.
//!
//! - `allowed/…`: a valid token (one counter with a static key);
//! - `refused/…`: an expired token (one counter with two labels).
//!
//! Run with `cargo bench --bench metrics --features metrics`.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use tower::{Service, ServiceBuilder, service_fn};
use tower_jwt_auth::issue::SigningKey;
use tower_jwt_auth::{Algorithm, JwtAuthLayer};

const SECRET: &[u8] = b"benchmark-secret-0123456789abcdef0123456789";

/// The inner service completes at once; a no-op waker keeps executor
/// overhead out of the figures.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("benchmark services never wait"),
    }
}

fn request(token: &str) -> Request<()> {
    Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

async fn echo(request: Request<()>) -> Result<Response<()>, Infallible> {
    black_box(request.extensions().get::<serde_json::Value>().is_some());
    Ok(Response::new(()))
}

/// Counters, gauges and histograms as atomics in a sharded map: an
/// exporter's storage without its rendering.
struct Atomics(Registry<Key, AtomicStorage>);

impl Recorder for Atomics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

fn bench(c: &mut Criterion) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = SigningKey::hmac(Algorithm::HS256, "k", SECRET).unwrap();
    let valid = key
        .sign(&serde_json::json!({"sub": "user-1", "exp": now + 3600}))
        .unwrap();
    let expired = key
        .sign(&serde_json::json!({"sub": "user-1", "exp": now - 3600}))
        .unwrap();
    let layer = JwtAuthLayer::<serde_json::Value>::builder()
        .hs256(SECRET)
        .build()
        .unwrap();
    let mut service = ServiceBuilder::new().layer(layer).service(service_fn(echo));
    assert_eq!(run(service.call(request(&valid))).unwrap().status(), 200);
    assert_eq!(run(service.call(request(&expired))).unwrap().status(), 401);

    let mut measure = |c: &mut Criterion, recorder: &str| {
        for (case, token) in [("allowed", &valid), ("refused", &expired)] {
            c.bench_function(&format!("{case}/{recorder}"), |b| {
                b.iter_batched(
                    || request(token),
                    |req| run(service.call(req)).unwrap(),
                    BatchSize::SmallInput,
                )
            });
        }
    };
    measure(c, "no-recorder");
    metrics::set_global_recorder(Atomics(Registry::atomic()))
        .unwrap_or_else(|_| panic!("no recorder installed yet"));
    measure(c, "recorder");
}

criterion_group!(benches, bench);
criterion_main!(benches);
