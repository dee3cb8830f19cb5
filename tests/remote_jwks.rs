//! Remote JWKS (placeholder filled below).
