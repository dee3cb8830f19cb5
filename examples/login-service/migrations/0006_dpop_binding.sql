-- DPoP (RFC 9449): a login session started, or refreshed, with a DPoP proof
-- is bound to the proof's key, named by its RFC 7638 SHA-256 thumbprint
-- (base64url). Its refresh tokens then work only with a proof by that key.
-- NULL: an unbound (Bearer) session, as every session before this one.
ALTER TABLE refresh_families ADD COLUMN dpop_jkt TEXT;
