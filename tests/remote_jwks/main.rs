//! Keys from the network (feature `remote-jwks`): a JWKS / OpenID discovery
//! provider on 127.0.0.1 whose behaviour each test sets and whose hits it
//! counts, and the layer in a real hyper server (or tonic) in front of a
//! handler, driven by reqwest. Fetches are forced with
//! `RemoteKeys::refresh` and awaited, never slept for; scheduled refreshes
//! and backoff are set far away unless a test is about them.

#[path = "../common/mod.rs"]
mod common;
mod provider;
mod support;

mod caching;
mod discovery;
mod outages;
mod rotation;
