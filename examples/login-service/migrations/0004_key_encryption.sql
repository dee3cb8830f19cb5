-- Private keys in signing_keys are encrypted under a key-encryption key
-- (KEK) kept in a file, outside the database. This one row records which
-- KEK that is (a digest, not the key), so that a start with another KEK is
-- refused before anything is written.
CREATE TABLE key_encryption (
    id     BIGINT PRIMARY KEY,
    kek_id TEXT NOT NULL
);
