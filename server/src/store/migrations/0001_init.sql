-- natter schema, version 1.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL,           -- as typed at registration
    username_key  TEXT    NOT NULL UNIQUE,    -- ASCII-lowercased: names are unique ignoring case
    password_hash TEXT    NOT NULL,           -- argon2id PHC string
    created_at    INTEGER NOT NULL            -- unix milliseconds
);

CREATE TABLE tokens (
    token_hash BLOB    PRIMARY KEY,           -- SHA-256 of the bearer token; the token itself is never stored
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: an id is never reused
    sender_id   INTEGER NOT NULL REFERENCES users(id),
    receiver_id INTEGER REFERENCES users(id),       -- NULL = everyone
    text        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    client_id   TEXT
);

-- Idempotency: one message per (sender, client_id).
CREATE UNIQUE INDEX messages_sender_client_id ON messages(sender_id, client_id) WHERE client_id IS NOT NULL;
-- Direct-message visibility scans.
CREATE INDEX messages_receiver ON messages(receiver_id, id) WHERE receiver_id IS NOT NULL;
CREATE INDEX messages_sender_direct ON messages(sender_id, id) WHERE receiver_id IS NOT NULL;
