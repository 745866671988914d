"""Property-based: whatever a client sends, the Tracking API answers within its contract.

No 5xx; every 4xx a JSON body with ``code`` and ``message``; the pixel always its GIF;
and every event an answer says was kept is stored with exactly what the client sent
(ids as their digits, big integers exact, lone surrogates as U+FFFD). In-process against
a fresh SQLite store, bounded to run in a few seconds.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings

from tests.fuzz.harness import BASIC, Request, TrackingHarness, check_answer
from tests.fuzz.strategies import EDGE_TIMESTAMPS, requests

# A few seconds in the suite; SEGUE_FUZZ_EXAMPLES=20000 for a long hunt.
EXAMPLES = int(os.environ.get("SEGUE_FUZZ_EXAMPLES", "400"))


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingHarness]:
    app = TrackingHarness(tmp_path_factory.mktemp("tracking-fuzz"))
    try:
        yield app
    finally:
        app.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # examples saved under older strategies mislead; a failure prints its own
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests)
def test_every_request_is_answered_within_the_contract(
    harness: TrackingHarness, request: Request
) -> None:
    response = harness.send(request)
    stored = check_answer(harness, request, response)
    event(f"{request.method} {response.status}, {min(stored, 2)}+ stored")


def test_every_timestamp_combination_is_answered(harness: TrackingHarness) -> None:
    """timestamp, originalTimestamp, sentAt, batch sentAt: every combination of edge values."""
    values = [None, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "2024-05-01T12:00:00Z"]
    values += [EDGE_TIMESTAMPS[2], "soon"]
    for combination in itertools.product(values, repeat=4):
        item = {"type": "track", "userId": "grid", "event": "Grid"}
        for key, value in zip(
            ("timestamp", "originalTimestamp", "sentAt"), combination, strict=False
        ):
            if value is not None:
                item[key] = value
        body = {"batch": [item], **({"sentAt": combination[3]} if combination[3] else {})}
        request = Request(
            "POST", "/v1/batch", json.dumps(body).encode(), [(b"authorization", BASIC)]
        )
        check_answer(harness, request, harness.send(request))


def test_harness_sees_a_good_event_stored(harness: TrackingHarness) -> None:
    """The oracle is not vacuous: a plain event is answered 200 and found stored."""
    body = {"userId": 12345678901234567890123456789, "event": "Big", "properties": {"n": 2**70}}
    request = Request("POST", "/v1/track", json.dumps(body).encode(), [(b"authorization", BASIC)])
    response = harness.send(request)
    assert response.status == 200
    check_answer(harness, request, response)
