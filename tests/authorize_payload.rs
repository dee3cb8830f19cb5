//! In a process of its own, because the switch is process-wide and one-way:
//! authentication layers keep the verified payload only once a policy that
//! reads scopes or roles has been built, and a policy built after a request
//! was authenticated answers that request 500, never lets it through.
//! Allocations are counted (a deterministic measure, not a timing) to show
//! what keeping the payload costs and that nothing else does.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use serde_json::json;
use tower::{Service, ServiceBuilder};
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::authorize::{Policy, Requirement, Roles};
use tower_jwt_auth::axum::Authorized;

use common::{AUDIENCE, ISSUER, SECRET, User, claims, hs256};

fn auth() -> JwtAuthLayer<User> {
    JwtAuthLayer::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap()
}

/// Counts the allocations made on the current thread (the services here
/// complete in one poll on it), for a deterministic cost measure.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Polls a future that completes at once.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the services here never wait"),
    }
}

/// One request through the authentication layer: how many extensions it
/// leaves, and how many allocations the layers and inner service made.
fn through_auth(auth: &JwtAuthLayer<User>, token: &str) -> (usize, usize) {
    let (seen, inner) = inner();
    let service = ServiceBuilder::new().layer(auth.clone()).service(inner);
    let allocations = count(service, token, &seen);
    (seen.load(Ordering::SeqCst), allocations)
}

/// The same, with a route policy behind the authentication layer.
fn through(auth: &JwtAuthLayer<User>, policy: Policy<User>, token: &str) -> usize {
    let (seen, inner) = inner();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(policy))
        .service(inner);
    count(service, token, &seen)
}

/// An inner service that records how many extensions reached it.
#[derive(Clone)]
struct Inner(Arc<AtomicUsize>);

impl Service<Request<()>> for Inner {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        self.0.store(request.extensions().len(), Ordering::SeqCst);
        std::future::ready(Ok(Response::new(())))
    }
}

fn inner() -> (Arc<AtomicUsize>, Inner) {
    let seen = Arc::new(AtomicUsize::new(0));
    (Arc::clone(&seen), Inner(seen))
}

fn count<S, B>(mut service: S, token: &str, seen: &AtomicUsize) -> usize
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    let request = || {
        Request::builder()
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap()
    };
    // Once to warm the thread-local verifier cache.
    assert_eq!(
        run(service.call(request())).unwrap().status(),
        StatusCode::OK
    );
    let request = request();
    let before = ALLOCATIONS.with(Cell::get);
    let response = run(service.call(request)).unwrap();
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(seen.load(Ordering::SeqCst) > 0);
    allocations
}

/// A requirement whose policy is (wrongly) first built on the first request.
struct Writers;

impl Requirement<User> for Writers {
    fn policy() -> &'static Policy<User> {
        static POLICY: LazyLock<Policy<User>> =
            LazyLock::new(|| Policy::builder().scope("movies:write").build().unwrap());
        &POLICY
    }
}

async fn write(Authorized(user, ..): Authorized<User, Writers>) -> String {
    user.sub
}

#[tokio::test]
async fn the_payload_is_kept_only_once_a_policy_reads_it() {
    let mut writer = claims();
    writer["scope"] = json!("movies:write");
    let writer = hs256(&writer);

    let layer = auth();
    // No policy yet: the claims alone.
    let (extensions, baseline) = through_auth(&layer, &writer);
    assert_eq!(extensions, 1);
    // A policy of predicates on `C` needs nothing more.
    Policy::<User>::builder().claims(|_| true).build().unwrap();
    assert_eq!(through_auth(&layer, &writer), (1, baseline));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/write", listener.local_addr().unwrap());
    let app = Router::new().route("/write", get(write)).layer(auth());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let call = || client.get(&url).bearer_auth(&writer).send();

    // The guard's policy is built during this request, after the layer
    // authenticated it without keeping the payload: it cannot judge.
    let response = call().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()["cache-control"], "no-store");
    // From now on the payload is kept, and the guard judges.
    let response = call().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "user-1");
    // Keeping costs one copy of the payload and one extension entry.
    let (extensions, keeping) = through_auth(&layer, &writer);
    assert_eq!(extensions, 2);
    assert_eq!(keeping, baseline + 2, "{baseline} allocations before");
    // Checking a scope reads it in place; roles are collected into a list.
    let scope = Policy::builder().scope("movies:write").build().unwrap();
    let scoped = through(&layer, scope, &writer);
    assert_eq!(scoped, keeping);
    let role = Policy::builder().role(Roles::claim("roles"), "editor");
    let mut editor = claims();
    editor["roles"] = json!(["viewer", "editor"]);
    let editor = hs256(&editor);
    let with_roles = through(&layer, role.build().unwrap(), &editor);
    println!(
        "allocations per request: {baseline} without route policies, {keeping} keeping the \
         payload, {scoped} with a route scope policy, {with_roles} with a route role policy"
    );
}
