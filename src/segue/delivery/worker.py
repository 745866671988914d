"""The delivery worker: claim due deliveries fairly, run them concurrently, settle in batches.

The queue lives in the store, so a crash loses nothing: a delivery leased to a
worker that died is claimed again once its lease runs out (at-least-once).

A destination's trouble stays its own. Claims read the queue destination by destination
(``store.claims``): a destination holds at most ``PREFETCH`` times its concurrency in
leases, so a hanging endpoint, a trickling one or a million-event backlog fills only its
own share while every other destination with due work is claimed beside it. Every
claimed delivery ends in a settlement, whatever its destination kind raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from segue.delivery.attempt import AnyAttemptRecord, Deliverer, replay_payload
from segue.delivery.policy import AttemptOutcome, FailureKind, RetryDecision
from segue.destinations.catalog import Catalog
from segue.destinations.models import DeliveryOptions, Destination
from segue.metrics import Metrics
from segue.store import (
    ClaimedDelivery,
    ClaimQuotas,
    DeliveryState,
    Settlement,
    Store,
    StoreUnavailableError,
)
from segue.timeutil import now_ms

log = logging.getLogger("segue.delivery")
# A destination may hold this many times its concurrency in leases: the requests it
# has in flight, and the next ones, claimed while those run.
PREFETCH = 2
# Settlements the store could not take (a full disk) are kept and tried again this soon.
SETTLE_RETRY_S = 1.0


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        deliverer: Deliverer,
        *,
        clock: Callable[[], int] = now_ms,
        name: str | None = None,
        batch_size: int = 256,
        max_in_flight: int = 1024,
        lease_ms: int = 30_000,
        idle_poll_s: float = 1.0,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.deliverer = deliverer
        self.clock = clock
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.lease_ms = lease_ms
        self.idle_poll_s = idle_poll_s
        self.metrics = metrics
        self.rng = rng
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._settle_ready = asyncio.Event()
        self._pending: list[Settlement] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._leased: dict[int, str] = {}  # claimed, not yet settled: id -> destination id
        self._leases_of: Counter[str] = Counter()  # leases held per destination id
        self._last_served = ""  # the claim rotation: who came last
        self._semaphores: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self._stopping = False
        self._settle_failing = False  # the store refused settlements (a full disk)

    def wake(self) -> None:
        """New deliveries were committed: look now rather than at the next poll."""
        self._wakeup.set()

    # -- running -------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until ``stop()``; settles what finished before returning."""
        settler = asyncio.create_task(self._settle_forever())
        heartbeat = asyncio.create_task(self._extend_leases_forever())
        try:
            while not self._stopping:
                room = self.max_in_flight - len(self._leased)
                if room <= 0:
                    self._room.clear()
                    await self._room.wait()
                    continue
                self._wakeup.clear()
                claimed = await self._claim(min(room, self.batch_size))
                if claimed:
                    self._start(claimed)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.idle_poll_s)
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            for task in (settler, heartbeat):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._flush()

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        self._room.set()

    async def run_once(self) -> int:
        """Deliver and settle what is due now, in as many fair claims as it takes.

        For tests with a fake clock: a delivery is attempted at most once per call
        (one retried right away waits for the next call).
        """
        seen: set[int] = set()
        while True:
            claimed = await self._claim(self.batch_size)
            fresh = [d for d in claimed if d.id not in seen]
            seen.update(d.id for d in claimed)
            self._start(fresh)
            if self._in_flight:
                await asyncio.gather(*self._in_flight)
            await self._flush()
            if len(fresh) < len(claimed):  # handed back for now: the next call tries again
                for delivery in claimed:
                    if delivery not in fresh:
                        self._leased.pop(delivery.id, None)
                        self._leases_of[delivery.destination_id] -= 1
                await self.store.release_leases(self.name, self.clock())
            if not fresh:
                return len(seen)

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        try:
            claimed = await self.store.claim_deliveries(
                self.name, limit, self.clock(), self.lease_ms, self.quotas()
            )
        except StoreUnavailableError as exc:
            log.warning("claiming deliveries failed (%s); trying again shortly", exc)
            await asyncio.sleep(self.idle_poll_s)
            return []
        except Exception:
            log.exception("claiming deliveries failed; trying again shortly")
            await asyncio.sleep(self.idle_poll_s)
            return []
        if claimed:
            self._last_served = max(d.destination_id for d in claimed)
        return claimed

    def quotas(self) -> ClaimQuotas:
        """What each destination may still lease: its share, less the leases it holds."""
        room = {
            d.id: PREFETCH * d.options.concurrency - self._leases_of[d.id]
            for d in self.catalog.destinations()
        }
        # a destination unknown here (removed, or not yet seen) is settled without a call
        return ClaimQuotas(room, default=self.batch_size, start_after=self._last_served)

    def _start(self, claimed: list[ClaimedDelivery]) -> None:
        by_destination: dict[str, list[ClaimedDelivery]] = {}
        for delivery in claimed:
            self._leased[delivery.id] = delivery.destination_id
            self._leases_of[delivery.destination_id] += 1
            by_destination.setdefault(delivery.destination_id, []).append(delivery)
        for deliveries in by_destination.values():
            self._spawn(self._deliver_group(deliveries))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    async def _deliver_group(self, deliveries: list[ClaimedDelivery]) -> None:
        """A function with ``on_batch`` gets the group in one call; the rest one by one."""
        destination = self.catalog.destination_by_id(deliveries[0].destination_id)
        try:
            app = None
            if destination is not None and destination.enabled and len(deliveries) > 1:
                app = await self.deliverer.batch_function(destination)
            if destination is None or app is None:
                await asyncio.gather(*(self._deliver(d) for d in deliveries))
                return
            async with self._semaphore(destination):
                records = await self.deliverer.attempt_batch(
                    app,
                    destination,
                    [
                        orjson.loads(
                            replay_payload(d.payload, destination) if d.replay else d.payload
                        )
                        for d in deliveries
                    ],
                )
            for delivery, record in zip(deliveries, records, strict=True):
                self._queue_settlement(
                    self._settlement(
                        delivery, destination, record, self._decide(delivery, destination, record)
                    )
                )
        except Exception as exc:  # a defect: settle what is left, never keep a lease
            self._settle_failed([d for d in deliveries if d.id in self._leased], exc)

    def _settle_failed(self, deliveries: list[ClaimedDelivery], exc: Exception) -> None:
        """Deliveries whose attempt raised inside segue: retried (``INTERNAL_ERROR``)."""
        log.error("delivering %d deliveries failed inside segue", len(deliveries), exc_info=exc)
        message = f"segue could not make the attempt ({type(exc).__name__}: {exc})"
        outcome = AttemptOutcome(failure=FailureKind.INTERNAL, message=message)
        for delivery in deliveries:
            destination = self.catalog.destination_by_id(delivery.destination_id)
            policy = (destination.options if destination else DeliveryOptions()).retry
            decision = policy.decide(
                outcome,
                attempts=delivery.attempts,
                created_at_ms=delivery.window_start_ms or delivery.created_at_ms,
                now_ms=self.clock(),
                rng=self.rng,
            )
            self._queue_settlement(
                Settlement(
                    delivery.id,
                    decision.state,
                    next_attempt_at_ms=decision.next_attempt_at_ms,
                    error=message,
                    reason=decision.reason,
                    attempt_number=delivery.attempts,
                    attempt={"error": message, "reason": outcome.reason, "message": message},
                )
            )

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._room.set()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("a delivery task failed", exc_info=error)

    # -- one delivery --------------------------------------------------------
    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        destination = self.catalog.destination_by_id(delivery.destination_id)
        if destination is None or not destination.enabled:
            why = "removed" if destination is None else "disabled"
            self._queue_settlement(
                Settlement(
                    delivery.id,
                    DeliveryState.DISCARDED,
                    error=f"the destination was {why}",
                    reason=f"discarded.DESTINATION_{why.upper()}",
                    attempted=False,
                )
            )
            return
        try:
            async with self._semaphore(destination):
                record = await self.deliverer.attempt(
                    destination, delivery.payload, replay=delivery.replay
                )
            decision = self._decide(delivery, destination, record)
            settlement = self._settlement(delivery, destination, record, decision)
        except Exception as exc:
            self._settle_failed([delivery], exc)
            return
        self._queue_settlement(settlement)

    def _decide(
        self, delivery: ClaimedDelivery, destination: Destination, record: AnyAttemptRecord
    ) -> RetryDecision:
        return destination.options.retry.decide(
            record.outcome,
            attempts=delivery.attempts,
            created_at_ms=delivery.window_start_ms or delivery.created_at_ms,
            now_ms=self.clock(),
            rng=self.rng,
        )

    def _settlement(
        self,
        delivery: ClaimedDelivery,
        destination: Destination,
        record: AnyAttemptRecord,
        decision: RetryDecision,
    ) -> Settlement:
        if self.metrics is not None:
            self.metrics.deliveries.labels(destination.name, decision.state.value).inc()
            self.metrics.attempt_seconds.observe(record.duration_ms / 1000)
        redactor = self.catalog.redactor(destination)
        error = record.outcome.message or record.error
        return Settlement(
            delivery.id,
            decision.state,
            next_attempt_at_ms=decision.next_attempt_at_ms,
            error=None if error is None else redactor.text(error),
            reason=decision.reason,
            attempt_number=delivery.attempts,
            attempt=record.as_json(self.catalog.sensitive_keys(destination), redactor),
        )

    def _semaphore(self, destination: Destination) -> asyncio.Semaphore:
        """The destination's concurrency limit; a new one when its option changes."""
        limit = destination.options.concurrency
        known = self._semaphores.get(destination.id)
        if known is None or known[0] != limit:
            known = self._semaphores[destination.id] = (limit, asyncio.Semaphore(limit))
        return known[1]

    # -- settling ------------------------------------------------------------
    def _queue_settlement(self, settlement: Settlement) -> None:
        destination_id = self._leased.pop(settlement.delivery_id, None)
        if destination_id is not None:
            left = self._leases_of[destination_id] = self._leases_of[destination_id] - 1
            if left <= 0:
                del self._leases_of[destination_id]
            # Claim again once the prefetched half is used up: in sets, not one by one
            # (a claim is a write transaction), and before the destination runs dry.
            destination = self.catalog.destination_by_id(destination_id)
            if destination is None or left in (0, destination.options.concurrency):
                self._wakeup.set()
        self._room.set()
        self._pending.append(settlement)
        self._settle_ready.set()

    async def _extend_leases_forever(self) -> None:
        """A delivery waiting for a slow endpoint keeps its lease, so that no other
        worker claims it meanwhile (which would deliver it twice)."""
        interval = self.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.extend_leases()
            except Exception:
                log.exception("extending delivery leases failed")

    async def extend_leases(self) -> int:
        """Renew the lease of every delivery claimed and not yet settled."""
        if not self._leased:
            return 0
        return await self.store.extend_leases(
            self.name, sorted(self._leased), self.clock() + self.lease_ms
        )

    async def _settle_forever(self) -> None:
        while True:
            await self._settle_ready.wait()
            self._settle_ready.clear()
            if not await self._flush():  # kept in _pending: try again a little later
                await asyncio.sleep(SETTLE_RETRY_S)
                self._settle_ready.set()

    async def _flush(self) -> bool:
        """Store pending settlements; False when the store could not take them now."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.store.settle_deliveries(batch, self.clock())
            except StoreUnavailableError as exc:
                self._pending[:0] = batch  # kept, in order, for the next try
                if not self._settle_failing:
                    log.warning("settling deliveries failed (%s); trying again until it works", exc)
                self._settle_failing = True
                return False
            except Exception:
                # the leases run out and the deliveries are tried again: at-least-once
                log.exception("settling %d deliveries failed", len(batch))
                return True
            if self._settle_failing:
                self._settle_failing = False
                log.warning("settling deliveries works again")
        return True
