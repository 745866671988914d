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
INSERT INTO deliveries (event_id, destination_id, state, next_attempt_at_ms, created_at_ms,
    updated_at_ms, window_start_ms)
VALUES (?, ?, 'pending', ?, ?, ?, ?);

-- name: count_events
SELECT count(*) FROM events;

-- name: count_events_of_source
SELECT count(*) FROM events WHERE source_id = ?;

-- name: dedup_key_page
SELECT source_id, message_id, seen_at_ms FROM dedup
WHERE (source_id, message_id) > (?, ?) ORDER BY source_id, message_id LIMIT ?;

-- name: forget_message
DELETE FROM dedup WHERE source_id = ? AND message_id = ?;

-- name: destinations_with_due_work
-- The destinations that have due work, found by a skip scan over deliveries_queue (one
-- index probe per destination with unfinished work, whatever its backlog). The state
-- tests repeat the partial index's condition word for word, so that SQLite uses it.
WITH RECURSIVE queued(destination_id) AS (
    SELECT min(destination_id) FROM deliveries
    WHERE state IN ('pending', 'awaiting_retry', 'executing')
    UNION ALL
    SELECT (SELECT min(destination_id) FROM deliveries
            WHERE state IN ('pending', 'awaiting_retry', 'executing')
              AND destination_id > queued.destination_id)
    FROM queued WHERE queued.destination_id IS NOT NULL
)
SELECT destination_id FROM queued
WHERE destination_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM deliveries
    WHERE state IN ('pending', 'awaiting_retry', 'executing')
      AND destination_id = queued.destination_id AND next_attempt_at_ms <= ?
);

-- name: lease_due_deliveries
-- Leases one destination's due deliveries, oldest first. A leased delivery's
-- next_attempt_at_ms is its lease's end, so a lease that ran out is due again.
UPDATE deliveries SET state = 'executing', lease_owner = ?, lease_until_ms = ?,
    next_attempt_at_ms = ?, updated_at_ms = ?
WHERE id IN (
    SELECT id FROM deliveries
    WHERE state IN ('pending', 'awaiting_retry', 'executing')
      AND destination_id = ?
      AND next_attempt_at_ms <= ?
      AND (state != 'executing' OR lease_until_ms <= ?)
    ORDER BY next_attempt_at_ms
    LIMIT ?
)
RETURNING id, event_id, destination_id, attempts, created_at_ms, window_start_ms, replay_id;

-- name: select_event_payloads
SELECT id, payload FROM events WHERE id IN (SELECT value FROM json_each(?));

-- name: select_event_payload
SELECT payload FROM events WHERE id = ?;

-- name: settle_delivery
UPDATE deliveries SET state = ?, next_attempt_at_ms = ?, last_error = ?, reason = ?,
    completed_at_ms = ?, lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = ?,
    attempts = attempts + ?
WHERE id = ?;

-- name: insert_attempt
INSERT INTO attempts (delivery_id, number, at_ms, state, reason, record) VALUES (?, ?, ?, ?, ?, ?);

-- name: select_delivery
SELECT id, event_id, destination_id, state, attempts, created_at_ms, updated_at_ms,
    next_attempt_at_ms, last_error, reason, completed_at_ms, window_start_ms, replay_id
FROM deliveries WHERE id = ?;

-- name: select_attempts
SELECT delivery_id, number, at_ms, state, reason, record FROM attempts
WHERE delivery_id = ? ORDER BY id;

-- name: retry_deliveries
UPDATE deliveries SET state = 'pending', next_attempt_at_ms = ?, window_start_ms = ?,
    completed_at_ms = NULL, reason = NULL, updated_at_ms = ?
WHERE destination_id = ? AND state IN (SELECT value FROM json_each(?))
  AND (? IS NULL OR reason = ?) AND (? IS NULL OR created_at_ms >= ?);

-- name: select_events_in_range
SELECT id FROM events
WHERE source_id = ? AND received_at_ms >= ? AND received_at_ms < ? AND id > ?
ORDER BY id LIMIT ?;

-- name: insert_replay_delivery
INSERT INTO deliveries (event_id, destination_id, state, next_attempt_at_ms, created_at_ms,
    updated_at_ms, window_start_ms, replay_id)
VALUES (?, ?, 'pending', ?, ?, ?, ?, ?);

-- name: count_replay_deliveries
SELECT state, count(*) FROM deliveries WHERE replay_id = ? GROUP BY state;

-- name: select_event_by_id
SELECT id, source_id, message_id, type, received_at_ms, payload, user_id, anonymous_id
FROM events WHERE id = ?;

-- name: count_deliveries_by_state
SELECT state, count(*) FROM deliveries WHERE destination_id = ? AND updated_at_ms >= ?
GROUP BY state;

-- name: completed_latencies
SELECT completed_at_ms - created_at_ms FROM deliveries
WHERE destination_id = ? AND completed_at_ms >= ? AND state = 'succeeded';

-- name: completed_buckets
SELECT (completed_at_ms / ?) * ? AS bucket, state, count(*) FROM deliveries
WHERE destination_id = ? AND completed_at_ms >= ?
GROUP BY bucket, state ORDER BY bucket;

-- name: failure_reasons
SELECT reason, state, count(*) FROM deliveries
WHERE destination_id = ? AND updated_at_ms >= ? AND state IN ('discarded', 'expired', 'awaiting_retry')
GROUP BY reason, state ORDER BY count(*) DESC;

-- name: put_object
INSERT INTO objects (kind, name, doc, updated_at_ms) VALUES (?, ?, ?, ?)
ON CONFLICT (kind, name) DO UPDATE SET doc = excluded.doc, updated_at_ms = excluded.updated_at_ms;

-- name: get_object
SELECT doc FROM objects WHERE kind = ? AND name = ?;

-- name: list_objects
SELECT doc FROM objects WHERE kind = ? ORDER BY name;

-- name: delete_object
DELETE FROM objects WHERE kind = ? AND name = ?;

-- name: select_meta
SELECT value FROM meta WHERE key = ?;

-- name: upsert_meta
INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: release_leases
UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until_ms = NULL,
    next_attempt_at_ms = ?, updated_at_ms = ?
WHERE state = 'executing' AND lease_owner = ?;

-- name: extend_leases
UPDATE deliveries SET lease_until_ms = ?, next_attempt_at_ms = ?
WHERE lease_owner = ? AND state = 'executing' AND id IN (SELECT value FROM json_each(?));
