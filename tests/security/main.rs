//! The verifier's security checklist, `docs/security-checklist.md`, one
//! module per section and one test (at least) per item; each test's doc
//! comment names its item. The items apply to static keys and key stores;
//! §5.6 (a flood of unknown `kid`s) waits for a remote key source.
//!
//! Every request goes through tower (`ServiceBuilder` + `service_fn` +
//! `oneshot`), and every answer is checked byte for byte: status,
//! `WWW-Authenticate`, JSON body, or the gRPC trailers-only form. Wherever a
//! token is refused, a control shows that the same construction without the
//! flaw is accepted, so a refusal cannot pass for the wrong reason.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod answers;
mod claims;
mod jose;
mod keys;
mod revocation;
mod robustness;
mod token;
