-- Apps, destinations and replays as JSON documents; attempts for the debugger.
CREATE TABLE objects (
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    doc           TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;

ALTER TABLE deliveries ADD COLUMN window_start_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN completed_at_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN reason TEXT;
-- set on deliveries queued by a replay
ALTER TABLE deliveries ADD COLUMN replay_id TEXT;
CREATE INDEX deliveries_by_destination_state ON deliveries (destination_id, state, id);
CREATE INDEX deliveries_by_replay ON deliveries (replay_id, state) WHERE replay_id IS NOT NULL;
CREATE INDEX deliveries_by_completion ON deliveries (destination_id, completed_at_ms)
    WHERE completed_at_ms IS NOT NULL;

CREATE TABLE attempts (
    id             INTEGER PRIMARY KEY,
    delivery_id    INTEGER NOT NULL,
    number         INTEGER NOT NULL,
    at_ms          INTEGER NOT NULL,
    state          TEXT NOT NULL,
    reason         TEXT,
    record         TEXT NOT NULL
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, id);

-- replays find a time range through events_by_source: ids follow arrival time, and an
-- index on received_at_ms would cost every ingested event
