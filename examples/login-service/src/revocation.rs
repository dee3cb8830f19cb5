//! The library's revocation hook, answered by the store from the denylist
//! that logout writes to and from revoked refresh-token families
//! ([`Store::is_access_token_revoked`]), so a logged-out token, or one whose
//! family was revoked for refresh-token reuse, is refused by every instance
//! on the database.

use std::future::Future;
use std::pin::Pin;

use tower_jwt_auth::revoke::RevocationCheck;
use tower_jwt_auth::{BoxError, RegisteredClaims};

use crate::store::Store;

#[derive(Debug, Clone)]
pub struct DbRevocations {
    store: Store,
}

impl DbRevocations {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl RevocationCheck for DbRevocations {
    fn is_revoked(
        &self,
        claims: &RegisteredClaims,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'static>> {
        let store = self.store.clone();
        let jti = claims.jti.clone();
        let sid = claims.sid.clone();
        Box::pin(async move {
            // Every token this service issues has a jti and a sid (its
            // refresh-token family); one without cannot have been logged out.
            let (Some(jti), Some(sid)) = (jti, sid) else {
                return Ok(false);
            };
            Ok(store.is_access_token_revoked(&jti, &sid).await?)
        })
    }
}
