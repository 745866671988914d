"""In-process checks of what no real HTTP server lets through, and of the per-item guard.

A Content-Length of ``²`` or of 5,000 digits never reaches the app behind uvicorn, but
the app must not depend on that; and an item that trips a defect of segue's own is
refused alone, logged, while the rest of its batch is stored.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from tests.fuzz.harness import BASIC, WRITE_KEY, Request, TrackingHarness, check_answer

from segue.ingest import pipeline


@pytest.fixture
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingHarness]:
    app = TrackingHarness(tmp_path_factory.mktemp("ingest-guards"))
    try:
        yield app
    finally:
        app.close()


def post(path: str, body: Any, *headers: tuple[bytes, bytes]) -> Request:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request("POST", path, data, [(b"authorization", BASIC), *headers])


@pytest.mark.parametrize("length", [b"\xb2", b"9" * 5000, b"-1", b" 40 ", b"1e3", b""])
def test_a_content_length_that_is_not_a_number_is_not_a_500(
    length: bytes, harness: TrackingHarness
) -> None:
    request = post("/v1/track", {"userId": "u", "event": "E"}, (b"content-length", length))
    response = harness.send(request)
    assert response.status in (200, 400), response.body
    check_answer(harness, request, response)


def test_an_item_that_trips_a_defect_is_refused_alone(
    harness: TrackingHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_normalize = pipeline.normalize

    def failing(message: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        if message.get("event") == "Boom":
            raise KeyError("a defect")
        return real_normalize(message, *args, **kwargs)

    monkeypatch.setattr(pipeline, "normalize", failing)
    good = {"type": "track", "userId": "u", "event": "Good"}
    request = post("/v1/batch", {"batch": [good, {**good, "event": "Boom"}, good]})
    with caplog.at_level(logging.ERROR, logger="segue.ingest"):
        response = harness.send(request)
    assert response.status == 400
    body = response.json()
    assert body["code"] == "multi_user_error"
    assert body["accepted"] == 2
    assert body["rejected"] == [
        {
            "index": 1,
            "code": "bad_request",
            "message": "segue could not process the event (KeyError)",
        }
    ]
    assert "an event could not be ingested" in caplog.text
    assert len(harness.new_events()) == 2


def test_a_pixel_answers_its_gif_even_when_ingest_fails(
    harness: TrackingHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the store is gone")

    monkeypatch.setattr(harness.app.ingestor, "ingest", broken)
    message = json.dumps({"writeKey": WRITE_KEY, "userId": "u", "event": "E"}).encode()
    request = Request("GET", "/v1/pixel/track", query=b"data=" + base64.b64encode(message))
    with caplog.at_level(logging.ERROR, logger="segue.ingest"):
        response = harness.send(request)
    assert response.status == 200
    assert response.headers[b"content-type"] == b"image/gif"
    assert "a pixel event could not be ingested" in caplog.text
