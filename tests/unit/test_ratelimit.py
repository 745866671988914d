"""Token buckets for the per-source rate limit, driven by a fake clock."""

from __future__ import annotations

import pytest

from segue.ingest.ratelimit import RateLimiter, TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_burst_then_refusal_then_refill() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5  # a full second's worth at once
    wait = bucket.take()
    assert wait == pytest.approx(0.2)  # one token every 1/5 s
    clock.advance(0.1)
    assert bucket.take() == pytest.approx(0.1)  # half a token: not yet
    clock.advance(0.1)
    assert bucket.take() == 0.0
    assert bucket.take() > 0.0


def test_refill_never_exceeds_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, clock)
    clock.advance(3600)  # an hour idle is still only a burst of 2
    assert bucket.take() == 0.0
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)


def test_refused_takes_do_not_consume_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, clock)
    assert bucket.take() == 0.0
    for _ in range(10):  # a client hammering while limited does not dig a deeper hole
        assert bucket.take() == pytest.approx(1.0)
    clock.advance(1.0)
    assert bucket.take() == 0.0


def test_rate_below_one_has_a_burst_of_one() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.25, clock)
    assert bucket.burst == 1.0
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(4.0)
    clock.advance(4.0)
    assert bucket.take() == 0.0


def test_fractional_rate_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.5, clock)
    assert [bucket.take() for _ in range(2)] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.2)  # 0.5 token left, 0.5 more at 2.5/s


def test_steady_rate_is_sustained() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock)
    for _ in range(10):
        bucket.take()
    allowed = 0
    for _ in range(100):  # 10 s at one request every 0.1 s
        clock.advance(0.1)
        allowed += bucket.take() == 0.0
    assert allowed == 100


# -- RateLimiter -----------------------------------------------------------


@pytest.mark.parametrize("rate", [None, 0, 0.0])
def test_no_limit(rate: float | None) -> None:
    limiter = RateLimiter(FakeClock())
    assert all(limiter.check("src", rate) == 0 for _ in range(1000))


@pytest.mark.parametrize(
    ("rate", "retry_after"),
    [
        (100, 1),  # a 10 ms wait still says 1 s: Retry-After is whole seconds, at least 1
        (2, 1),  # 0.5 s → 1
        (1, 1),  # 1.0 s → 1
        (0.5, 2),  # 2.0 s → 2
        (0.4, 3),  # 2.5 s → rounded up to 3, never down
        (0.1, 10),
    ],
)
def test_retry_after_is_whole_seconds_rounded_up(rate: float, retry_after: int) -> None:
    limiter = RateLimiter(FakeClock())
    while (result := limiter.check("src", rate)) == 0:
        pass
    assert result == retry_after
    assert isinstance(result, int)


def test_sources_have_separate_buckets() -> None:
    limiter = RateLimiter(FakeClock())
    assert limiter.check("a", 1) == 0
    assert limiter.check("a", 1) == 1
    assert limiter.check("b", 1) == 0


def test_limiter_refills_with_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert limiter.check("src", 2) == 0
    assert limiter.check("src", 2) == 0
    assert limiter.check("src", 2) == 1
    clock.advance(0.5)
    assert limiter.check("src", 2) == 0
    assert limiter.check("src", 2) == 1


def test_changed_rate_takes_effect_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert limiter.check("src", 1) == 0
    assert limiter.check("src", 1) == 1
    # the admin raises the limit: the new rate applies to the next request
    assert limiter.check("src", 3) == 0
    assert limiter.check("src", 3) == 0
    assert limiter.check("src", 3) == 0
    assert limiter.check("src", 3) == 1
    # and removing it lets everything through
    assert limiter.check("src", None) == 0
