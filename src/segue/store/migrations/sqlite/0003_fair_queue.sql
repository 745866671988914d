-- Fair claims: the queue is read destination by destination, so that one destination's
-- backlog never stands in front of another's (Centrifuge's per-destination queues, kept
-- in one table). The index holds only deliveries that still have work to do; it takes
-- over from deliveries_due, which ordered every destination's work in one line.
CREATE INDEX deliveries_queue ON deliveries (destination_id, next_attempt_at_ms)
    WHERE state IN ('pending', 'awaiting_retry', 'executing');
DROP INDEX deliveries_due;
