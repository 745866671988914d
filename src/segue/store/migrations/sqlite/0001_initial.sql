-- Sources, events, the dedup window and the delivery queue.
CREATE TABLE sources (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    write_key     TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL DEFAULT 'standard',
    enabled       INTEGER NOT NULL DEFAULT 1,
    rate_limit    REAL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE events (
    id             INTEGER PRIMARY KEY,
    source_id      TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    type           TEXT NOT NULL,
    user_id        TEXT,
    anonymous_id   TEXT,
    received_at_ms INTEGER NOT NULL,
    payload        BLOB NOT NULL
);
CREATE INDEX events_by_source ON events (source_id, id);
CREATE INDEX events_by_user ON events (user_id, id) WHERE user_id IS NOT NULL;

-- (source, messageId) pairs seen recently: a duplicate inside the window is dropped.
CREATE TABLE dedup (
    source_id  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seen_at_ms INTEGER NOT NULL,
    PRIMARY KEY (source_id, message_id)
) WITHOUT ROWID;
-- no index on seen_at_ms: it would cost every event; pruning walks the key instead

CREATE TABLE deliveries (
    id                 INTEGER PRIMARY KEY,
    event_id           INTEGER NOT NULL,
    destination_id     TEXT NOT NULL,
    state              TEXT NOT NULL DEFAULT 'pending',
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    lease_owner        TEXT,
    lease_until_ms     INTEGER,
    last_error         TEXT,
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL
);
-- Only deliveries that still have work to do are in the queue index.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at_ms)
    WHERE state IN ('pending', 'awaiting_retry', 'executing');
CREATE INDEX deliveries_by_destination ON deliveries (destination_id, id);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
