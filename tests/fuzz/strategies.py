"""Hypothesis strategies for whatever a client can send the Tracking API.

JSON of any shape, depth and number size, strings with lone surrogates and NUL,
timestamps at the edges of the calendar, every route, raw bytes, content encodings
and odd headers. Most messages start valid for their type and then get a few fields
replaced by anything at all, and most requests travel cleanly, so that the deep paths
(normalisation, encoding, storage) are reached and not only the first check.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.harness import BASIC, BATCH_ROUTES, SINGLE_ROUTES, WRITE_KEY, Request

TYPES = ("identify", "track", "page", "screen", "group", "alias")
ODD_CHARS = ("\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00", "\x00", "\ufffd", "\\")
EDGE_TIMESTAMPS = (
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00.000+00:00",
    "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:30:00-01:00",  # after year 9999 in UTC
    "1970-01-01",
    "2024-02-30T00:00:00Z",
    "2024-01-01T00:00:00z",
    " 2024-01-01T00:00:00Z ",
    "",
)
EDGE_INTEGERS = (2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30, -(10**99))
FIELDS = (
    *("type", "userId", "anonymousId", "groupId", "previousId", "event", "name", "category"),
    *("properties", "traits", "context", "integrations", "messageId", "timestamp"),
    *("originalTimestamp", "sentAt", "channel", "writeKey"),
)

_chars = st.one_of(st.characters(), st.sampled_from(ODD_CHARS))
texts = st.lists(_chars, max_size=12).map("".join)
non_empty_texts = st.lists(_chars, min_size=1, max_size=12).map("".join)
integers = st.one_of(st.integers(), st.integers(-(10**40), 10**40), st.sampled_from(EDGE_INTEGERS))
floats = st.floats(allow_nan=False, allow_infinity=False)
leaves = st.one_of(st.none(), st.booleans(), integers, floats, texts)
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=10,
)


def nested(depth: int, as_list: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


depths = st.one_of(st.sampled_from([125, 126, 127, 128, 253, 254, 255]), st.integers(100, 1100))
deep_values = st.builds(nested, depths, st.booleans())
objects = st.one_of(
    st.dictionaries(texts, json_values, max_size=5),
    st.dictionaries(texts, json_values, max_size=5),
    st.builds(lambda deep: {"deep": deep}, deep_values),
)
offsets = st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23)))
valid_timestamps = st.one_of(
    st.sampled_from(EDGE_TIMESTAMPS[:2] + EDGE_TIMESTAMPS[3:4] + EDGE_TIMESTAMPS[5:6]),
    st.datetimes(timezones=st.one_of(st.none(), offsets)).map(datetime.isoformat),
    st.just(datetime.now(UTC).isoformat()),
)
timestamps = st.one_of(valid_timestamps, st.sampled_from(EDGE_TIMESTAMPS), texts)
good_ids = st.one_of(non_empty_texts, integers)
# Hypothesis favours the first, simplest choice: the common, clean path comes first.
rarely = st.sampled_from([False] * 9 + [True])


@st.composite
def messages(draw: st.DrawFn, kind: str | None = None) -> Any:
    """A message valid for its type, then 0-2 fields replaced by anything at all."""
    if draw(rarely):
        return draw(json_values)  # not even an object, mostly
    kind = kind or draw(st.sampled_from(TYPES))
    message: dict[str, Any] = {"type": kind, "userId": draw(good_ids)}
    if kind == "track":
        message["event"] = draw(non_empty_texts)
    if kind == "group":
        message["groupId"] = draw(good_ids)
    if kind == "alias":
        message["previousId"] = draw(good_ids)
    optional = {
        "anonymousId": good_ids,
        "properties": objects,
        "traits": objects,
        "context": st.fixed_dictionaries({}, optional=_context_fields()),
        "integrations": st.dictionaries(texts, st.booleans(), max_size=3),
        "messageId": st.one_of(texts, st.integers(-(10**40), 10**40)),
        "timestamp": valid_timestamps,
        "originalTimestamp": valid_timestamps,
        "sentAt": valid_timestamps,
        "channel": st.sampled_from(["server", "browser", "mobile", "tv"]),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=5, unique=True)):
        message[key] = draw(optional[key])
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)):
        message[key] = draw(st.one_of(json_values, timestamps, objects))
    return message


def _context_fields() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "library": st.fixed_dictionaries({"name": st.one_of(texts, json_values)}),
        "ip": st.one_of(texts, json_values),
        "direct": st.booleans(),
        "traits": st.one_of(objects, json_values),
    }


def padded(message: Any, pad: bool) -> Any:
    """Over the 32 KB per-event limit when ``pad`` (a big property, built, not drawn)."""
    if pad and isinstance(message, dict):
        return {**message, "properties": {"pad": "x" * (33 * 1024)}}
    return message


batch_bodies = st.fixed_dictionaries(
    {"batch": st.lists(st.builds(padded, messages(), rarely), max_size=6)},
    optional={
        "sentAt": timestamps,
        "context": objects,
        "integrations": objects,
        "writeKey": st.just(WRITE_KEY),
    },
)


def to_json(value: Any, ascii_only: bool) -> bytes:
    """Lone surrogates as \\u escapes (ascii_only), or as raw bytes: not UTF-8 at all."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def post_requests(draw: st.DrawFn) -> Request:
    route = draw(st.sampled_from([*SINGLE_ROUTES, *BATCH_ROUTES]))
    if route in BATCH_ROUTES:
        value = draw(st.one_of(batch_bodies, batch_bodies, batch_bodies, messages()))
    else:
        value = draw(st.builds(padded, messages(SINGLE_ROUTES[route]), rarely))
    if draw(rarely):
        body = draw(st.binary(max_size=64))
    else:
        body = to_json(value, ascii_only=not draw(rarely))
    clean = not draw(st.sampled_from([False, False, False, True]))
    body, headers = draw(encoded(body)) if not clean else (body, [])
    if clean and draw(st.booleans()):
        body, headers = gzip.compress(body), [(b"content-encoding", b"gzip")]
    headers += draw(request_headers(len(body), clean))
    chunk = draw(st.sampled_from([0, 0, 0, 1, 7, 4096]))
    return Request("POST", f"/v1/{route}", body, headers, chunk=chunk)


@st.composite
def encoded(draw: st.DrawFn, body: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body under a Content-Encoding, honest or not."""
    kind = draw(st.sampled_from(["none", "gzip", "deflate", "odd"]))
    if kind == "none":
        return body, []
    if kind == "deflate":
        return zlib.compress(body), [(b"content-encoding", b"deflate")]
    if kind == "odd":
        name = draw(st.sampled_from([b"br", b"identity", b"gzip", b" GZip ", b"\xff", b""]))
        return body, [(b"content-encoding", name)]
    name = draw(st.sampled_from([b"gzip", b"x-gzip", b"GZIP"]))
    packed = gzip.compress(body)
    tail = draw(st.sampled_from([b"", b"garbage", b"\x00\x00", packed, packed[:5], packed[:-3]]))
    return packed + tail, [(b"content-encoding", name)]


@st.composite
def request_headers(draw: st.DrawFn, length: int, clean: bool) -> list[tuple[bytes, bytes]]:
    auth: bytes | None = BASIC
    content_length: bytes | None = str(length).encode()
    if not clean:
        auth = draw(st.sampled_from([BASIC, None, b"Bearer t", b"Basic !!!", b"Basic " + bytes(5)]))
        content_length = draw(st.sampled_from([None, b"0", b"\xb2", b"9" * 5000, b" 12 ", b"-1"]))
    content_type = draw(st.sampled_from([b"text/plain", b"application/json", b"\xff\xfe"]))
    headers = [(b"content-type", content_type)]
    if auth is not None:
        headers.append((b"authorization", auth))
    if content_length is not None:
        headers.append((b"content-length", content_length))
    return headers


@st.composite
def pixel_requests(draw: st.DrawFn) -> Request:
    pixel_type = draw(st.sampled_from([*SINGLE_ROUTES, "nope", ""]))
    message = draw(st.builds(padded, messages(SINGLE_ROUTES.get(pixel_type)), rarely))
    if isinstance(message, dict):
        message = {**message, "writeKey": WRITE_KEY}
    raw = draw(st.one_of(st.builds(to_json, st.just(message), st.just(True)), st.binary()))
    if draw(st.booleans()):
        data = base64.urlsafe_b64encode(raw).rstrip(b"=")
    else:
        data = base64.b64encode(raw)
    query = draw(st.sampled_from([b"data=" + data, b"x=1&data=" + data, b"", b"data=%zz"]))
    return Request("GET", f"/v1/pixel/{pixel_type}", query=query, pixel_json=raw)


other_requests = st.builds(
    Request,
    method=st.sampled_from(["GET", "PUT", "DELETE", "OPTIONS", "HEAD"]),
    path=st.sampled_from(["/v1/track", "/v1/batch", "/v1/", "/v1/nope", "/v1/pixel/"]),
    body=st.binary(max_size=16),
    headers=st.just([(b"authorization", BASIC)]),
)

requests = st.one_of(
    post_requests(),
    post_requests(),
    post_requests(),
    post_requests(),
    pixel_requests(),
    other_requests,
)
