-- Named queries for the SQLite backend. Each block starts with "-- name: NAME".

-- name: insert_source
INSERT INTO sources (id, name, write_key, kind, enabled, rate_limit, created_at_ms)
VALUES (?, ?, ?, ?, 1, ?, ?);

-- name: select_source_by_name
SELECT id, name, write_key, kind, enabled, rate_limit, created_at_ms FROM sources WHERE name = ?;

-- name: select_sources
SELECT id, name, write_key, kind, enabled, rate_limit, created_at_ms FROM sources ORDER BY name;

-- name: update_source
UPDATE sources SET enabled = ?, write_key = ?, kind = ?, rate_limit = ? WHERE name = ?;

-- name: delete_source
DELETE FROM sources WHERE name = ?;

-- name: remember_message
INSERT INTO dedup (source_id, message_id, seen_at_ms) VALUES (?, ?, ?)
ON CONFLICT (source_id, message_id) DO UPDATE SET seen_at_ms = excluded.seen_at_ms
WHERE dedup.seen_at_ms < ?;

-- name: insert_event
INSERT INTO events (source_id, message_id, type, user_id, anonymous_id, received_at_ms, payload)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: insert_delivery
INSERT INTO deliveries (event_id, destination_id, state, next_attempt_at_ms, created_at_ms, updated_at_ms)
VALUES (?, ?, 'pending', ?, ?, ?);

-- name: count_events
SELECT count(*) FROM events;

-- name: count_events_of_source
SELECT count(*) FROM events WHERE source_id = ?;

-- name: prune_dedup
DELETE FROM dedup WHERE (source_id, message_id) IN (
    SELECT source_id, message_id FROM dedup WHERE seen_at_ms < ? LIMIT ?
);

-- name: select_due_deliveries
SELECT d.id FROM deliveries d
WHERE d.next_attempt_at_ms <= ?
  AND (d.state IN ('pending', 'awaiting_retry') OR (d.state = 'executing' AND d.lease_until_ms <= ?))
ORDER BY d.next_attempt_at_ms
LIMIT ?;

-- name: lease_delivery
UPDATE deliveries SET state = 'executing', lease_owner = ?, lease_until_ms = ?,
    next_attempt_at_ms = ?, attempts = attempts + 1, updated_at_ms = ?
WHERE id = ?
RETURNING id, event_id, destination_id, attempts, created_at_ms;

-- name: select_event_payload
SELECT payload FROM events WHERE id = ?;

-- name: settle_delivery
UPDATE deliveries SET state = ?, next_attempt_at_ms = ?, last_error = ?, lease_owner = NULL,
    lease_until_ms = NULL, updated_at_ms = ?
WHERE id = ?;

-- name: select_delivery
SELECT id, event_id, destination_id, state, attempts, created_at_ms, updated_at_ms,
    next_attempt_at_ms, last_error
FROM deliveries WHERE id = ?;

-- name: select_meta
SELECT value FROM meta WHERE key = ?;

-- name: upsert_meta
INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value;
