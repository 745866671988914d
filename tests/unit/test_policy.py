"""The retry policy: the partner contract's status table, backoff, Retry-After, the window."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from segue.delivery.policy import (
    RETRYABLE_STATUSES,
    AttemptOutcome,
    FailureKind,
    RetryDecision,
    RetryPolicy,
    parse_retry_after,
)
from segue.store.records import DeliveryState

T0 = 1_700_000_000_000
HOUR_MS = 3600 * 1000


class FixedRandom(random.Random):
    """``random()`` always returns the same draw: exact backoff values."""

    def __init__(self, draw: float) -> None:
        super().__init__(0)
        self.draw = draw

    def random(self) -> float:
        return self.draw


def decide(
    outcome: AttemptOutcome,
    *,
    attempts: int = 1,
    now_ms: int = T0,
    created_at_ms: int = T0,
    policy: RetryPolicy | None = None,
    rng: random.Random | None = None,
) -> RetryDecision:
    return (policy or RetryPolicy()).decide(
        outcome,
        attempts=attempts,
        created_at_ms=created_at_ms,
        now_ms=now_ms,
        rng=rng or random.Random(1),
    )


# -- the status table -------------------------------------------------------
@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_succeeds(status: int) -> None:
    decision = decide(AttemptOutcome(status=status))
    assert decision.state is DeliveryState.SUCCEEDED
    assert decision.next_attempt_at_ms is None
    assert decision.reason is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 413, 415, 422])
def test_client_errors_are_discarded_after_one_attempt(status: int) -> None:
    decision = decide(AttemptOutcome(status=status, message="Missing email address"))
    assert decision.state is DeliveryState.DISCARDED
    assert decision.reason == f"discarded.{status}"
    assert decision.next_attempt_at_ms is None


def test_501_is_discarded_as_unsupported() -> None:
    decision = decide(AttemptOutcome(status=501))
    assert decision.state is DeliveryState.DISCARDED
    assert decision.reason is not None and "unsupported" in decision.reason


@pytest.mark.parametrize(
    "status", [408, 423, 429, 500, 502, 503, 504, 505, 506, 507, 508, 509, 510, 511]
)
def test_retryable_statuses_wait_and_retry(status: int) -> None:
    decision = decide(AttemptOutcome(status=status))
    assert decision.state is DeliveryState.AWAITING_RETRY
    assert decision.reason == f"awaiting-retry.{status}"
    assert decision.next_attempt_at_ms is not None and decision.next_attempt_at_ms > T0


def test_the_retryable_set_is_exactly_the_contracts() -> None:
    assert frozenset({408, 423, 429, 500, *range(502, 512)}) == RETRYABLE_STATUSES
    assert 501 not in RETRYABLE_STATUSES
    assert 512 not in RETRYABLE_STATUSES


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed_nor_retried(status: int) -> None:
    decision = decide(AttemptOutcome(status=status))
    assert decision.state is DeliveryState.DISCARDED
    assert decision.reason == f"discarded.{status}"


@pytest.mark.parametrize(
    "kind",
    [
        FailureKind.TIMEOUT,
        FailureKind.CONNECTION_REFUSED,
        FailureKind.CONNECTION_RESET,
        FailureKind.DNS,
        FailureKind.UNREACHABLE,
        FailureKind.RETRY,
    ],
)
def test_network_failures_are_retried(kind: FailureKind) -> None:
    decision = decide(AttemptOutcome(failure=kind, message="boom"))
    assert decision.state is DeliveryState.AWAITING_RETRY
    assert decision.reason == f"awaiting-retry.{kind.value}"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (FailureKind.BLOCKED, "discarded.EGRESS_BLOCKED"),
        (FailureKind.INVALID_SETTINGS, "discarded.INVALID_SETTINGS"),
        (FailureKind.REJECTED, "discarded.MESSAGE_REJECTED"),
        (FailureKind.UNSUPPORTED, "discarded.unsupported"),
    ],
)
def test_failures_that_cannot_get_better_are_discarded(kind: FailureKind, reason: str) -> None:
    decision = decide(AttemptOutcome(failure=kind))
    assert decision.state is DeliveryState.DISCARDED
    assert decision.reason == reason


def test_outcome_reason_names() -> None:
    assert AttemptOutcome(status=503).reason == "503"
    assert AttemptOutcome(failure=FailureKind.TIMEOUT).reason == "ETIMEDOUT"
    assert AttemptOutcome(failure=FailureKind.CONNECTION_REFUSED).reason == "ECONNREFUSED"
    assert AttemptOutcome().reason == "unknown"


# -- backoff ------------------------------------------------------------------
def test_backoff_doubles_from_the_first_wait() -> None:
    policy = RetryPolicy(first_backoff_s=2.0, max_backoff_s=10_000.0, jitter=0.5)
    top = FixedRandom(0.0)  # no jitter taken: the base itself
    assert [policy.backoff_s(n, top) for n in range(1, 7)] == [2, 4, 8, 16, 32, 64]
    bottom = FixedRandom(1.0)  # the whole jitter taken: half the base
    assert [policy.backoff_s(n, bottom) for n in range(1, 5)] == [1, 2, 4, 8]


def test_backoff_jitter_stays_within_bounds_with_a_seeded_rng() -> None:
    policy = RetryPolicy()  # 2 s first, doubling, cap 600 s, jitter 0.5
    rng = random.Random(1234)
    for attempts in range(1, 30):
        base = min(600.0, 2.0 * 2 ** (attempts - 1))
        for _ in range(50):
            wait = policy.backoff_s(attempts, rng)
            assert base * 0.5 <= wait <= base


def test_backoff_is_randomised_but_reproducible() -> None:
    policy = RetryPolicy()
    first = [policy.backoff_s(3, random.Random(42)) for _ in range(3)]
    again = [policy.backoff_s(3, random.Random(42)) for _ in range(3)]
    assert first == again
    rng = random.Random(42)
    draws = {policy.backoff_s(3, rng) for _ in range(20)}
    assert len(draws) > 1  # jitter: not every client retries at the same instant


def test_backoff_is_capped_at_max_backoff() -> None:
    policy = RetryPolicy(first_backoff_s=2.0, max_backoff_s=600.0)
    assert policy.backoff_s(50, FixedRandom(0.0)) == 600.0
    assert policy.backoff_s(200, FixedRandom(0.0)) == 600.0  # no float overflow surprises
    assert 300.0 <= policy.backoff_s(50, random.Random(3)) <= 600.0
    small = RetryPolicy(first_backoff_s=1.0, max_backoff_s=5.0)
    assert [small.backoff_s(n, FixedRandom(0.0)) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_default_first_retry_is_about_two_seconds() -> None:
    decision = decide(AttemptOutcome(status=503), rng=FixedRandom(0.0))
    assert decision.next_attempt_at_ms == T0 + 2000
    decision = decide(AttemptOutcome(status=503), rng=FixedRandom(0.999))
    assert decision.next_attempt_at_ms is not None
    assert T0 + 1000 <= decision.next_attempt_at_ms <= T0 + 2000


def test_later_attempts_wait_longer() -> None:
    first = decide(AttemptOutcome(status=500), attempts=1, rng=FixedRandom(0.0))
    third = decide(AttemptOutcome(status=500), attempts=3, rng=FixedRandom(0.0))
    assert first.next_attempt_at_ms == T0 + 2000
    assert third.next_attempt_at_ms == T0 + 8000


# -- Retry-After ----------------------------------------------------------------
def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    decision = decide(AttemptOutcome(status=429, retry_after_s=30.0))
    assert decision.state is DeliveryState.AWAITING_RETRY
    assert decision.next_attempt_at_ms == T0 + 30_000


def test_retry_after_of_two_seconds_is_never_earlier_than_two_seconds() -> None:
    for seed in range(50):
        decision = decide(AttemptOutcome(status=429, retry_after_s=2.0), rng=random.Random(seed))
        assert decision.next_attempt_at_ms == T0 + 2000  # backoff (1..2 s) never wins


def test_a_short_retry_after_does_not_shorten_the_backoff() -> None:
    decision = decide(
        AttemptOutcome(status=503, retry_after_s=0.0), attempts=4, rng=FixedRandom(0.0)
    )
    assert decision.next_attempt_at_ms == T0 + 16_000


def test_retry_after_beyond_the_window_expires() -> None:
    policy = RetryPolicy(window_s=60.0)
    decision = decide(
        AttemptOutcome(status=429, retry_after_s=3600.0),
        now_ms=T0 + 1000,
        policy=policy,
    )
    assert decision.state is DeliveryState.EXPIRED
    assert decision.reason == "expired.429"


# -- the retry window --------------------------------------------------------------
def test_past_the_window_a_delivery_expires() -> None:
    policy = RetryPolicy(window_s=4 * 3600.0)
    decision = decide(
        AttemptOutcome(status=503),
        attempts=12,
        created_at_ms=T0,
        now_ms=T0 + 4 * HOUR_MS,
        policy=policy,
    )
    assert decision.state is DeliveryState.EXPIRED
    assert decision.reason == "expired.503"
    assert decision.next_attempt_at_ms is None


def test_expired_reason_names_the_failure() -> None:
    decision = decide(
        AttemptOutcome(failure=FailureKind.TIMEOUT),
        now_ms=T0 + 5 * HOUR_MS,
    )
    assert (decision.state, decision.reason) == (DeliveryState.EXPIRED, "expired.ETIMEDOUT")


def test_a_retry_landing_exactly_on_the_window_end_is_still_allowed() -> None:
    policy = RetryPolicy(first_backoff_s=2.0, window_s=10.0)
    inside = decide(
        AttemptOutcome(status=503), now_ms=T0 + 8000, policy=policy, rng=FixedRandom(0.0)
    )
    assert inside.state is DeliveryState.AWAITING_RETRY
    assert inside.next_attempt_at_ms == T0 + 10_000
    outside = decide(
        AttemptOutcome(status=503), now_ms=T0 + 8001, policy=policy, rng=FixedRandom(0.0)
    )
    assert outside.state is DeliveryState.EXPIRED


def test_default_window_is_four_hours() -> None:
    assert RetryPolicy().window_s == 4 * 3600
    inside = decide(AttemptOutcome(status=503), attempts=1, now_ms=T0 + 3 * HOUR_MS)
    assert inside.state is DeliveryState.AWAITING_RETRY


def test_success_and_discard_ignore_the_window() -> None:
    late = T0 + 100 * HOUR_MS
    assert decide(AttemptOutcome(status=200), now_ms=late).state is DeliveryState.SUCCEEDED
    assert decide(AttemptOutcome(status=400), now_ms=late).state is DeliveryState.DISCARDED


# -- parse_retry_after ----------------------------------------------------------------
@pytest.mark.parametrize(("value", "seconds"), [("2", 2.0), ("0", 0.0), (" 120 ", 120.0)])
def test_retry_after_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now_s=1e9) == seconds


def test_retry_after_http_date() -> None:
    now = datetime(2015, 10, 21, 7, 26, 0, tzinfo=UTC)
    value = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(value, now_s=now.timestamp()) == 120.0
    later = datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC)
    at = format_datetime(later, usegmt=True)
    assert parse_retry_after(at, now_s=later.timestamp() - 10) == 10.0


def test_retry_after_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_s=2e9) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "2.5", "-1", "Thu, 99 Foo 2015"])
def test_retry_after_garbage_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now_s=1e9) is None
