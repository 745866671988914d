"""JSON as clients send it: every integer kept exact, every value either stored or refused.

Segment's SDKs send ids and properties as JSON numbers of any size (a 30-digit order
number, a 20-digit id from another system). orjson reads integers beyond 64 bits as
floats, losing digits, and cannot write them back; msgspec reads them as exact Python
ints at the same speed. So bodies are decoded with msgspec and events are encoded with
orjson (the fastest encoder), falling back to msgspec for the rare value orjson refuses.

Two more things a browser can send that a strict decoder refuses, handled here:

- **Lone surrogates.** ``JSON.stringify`` writes a string cut in the middle of an emoji
  as ``"\\ud83d"``. Such an escape becomes U+FFFD, as Go's and JavaScript's UTF-8
  encoders do, instead of refusing the whole request.
- **Depth.** A stored event nests objects and arrays at most :data:`MAX_DEPTH` levels
  (the event itself is level 1). Far more than any real event needs, and far enough
  under orjson's limit (254) that whoever wraps a stored event in a response of its
  own (the admin API, a function call) can still encode it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson

MAX_DEPTH = 128
"""The deepest nesting of objects and arrays a stored event may have."""

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()

# Every backslash escape, left to right, so that an escaped backslash ("\\\\") is never
# read as the start of a \u escape; only the middle group (a surrogate without its
# partner) is replaced.
_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a valid pair
    rb"|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"  # a lone high or low surrogate
    rb"|\\.",
    re.DOTALL,
)
_LONE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_REPLACEMENT = rb"\ufffd"
_BRACKETS = b"{["
_TOO_DEEP = f"it nests objects and arrays more than {MAX_DEPTH} levels deep"


class JSONError(ValueError):
    """Bytes that are not JSON segue accepts, or a value too deep to store."""


def decode(data: bytes) -> Any:
    """Parse JSON text; integers of any size (up to 4,300 digits) stay exact ints.

    Raises :class:`JSONError` with a sentence naming the problem.
    """
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        error = str(exc)
    except RecursionError:
        raise JSONError("it is nested too deeply") from None
    if not data.strip():
        raise JSONError("it is empty")
    if _LONE_SURROGATE.search(data) is None:
        raise JSONError(error)
    try:  # the error path only: valid bodies never pay for this
        return _decoder.decode(_ESCAPE.sub(_replace_lone_surrogate, data))
    except msgspec.DecodeError as exc:
        raise JSONError(str(exc)) from None
    except RecursionError:
        raise JSONError("it is nested too deeply") from None


def _replace_lone_surrogate(match: re.Match[bytes]) -> bytes:
    return _REPLACEMENT if match.group(1) else match.group(0)


def encode(value: Any, *, check_depth: bool = True) -> bytes:
    """Serialize a decoded value; raises :class:`JSONError` if it nests over MAX_DEPTH.

    ``check_depth=False`` skips the depth check when orjson can write the value (to
    measure an event's size, say); the depth of what orjson refuses is always checked.
    """
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _encode_slowly(value)  # too deep for orjson, or an integer beyond 64 bits
    if check_depth and _may_be_too_deep(data) and nesting_depth(value) > MAX_DEPTH:
        raise JSONError(_TOO_DEEP)
    return data


def _encode_slowly(value: Any) -> bytes:
    if nesting_depth(value) > MAX_DEPTH:
        raise JSONError(_TOO_DEEP)
    try:
        return _encoder.encode(value)
    except (msgspec.EncodeError, TypeError, ValueError, RecursionError) as exc:
        raise JSONError(f"it cannot be written as JSON ({exc})") from None


def _may_be_too_deep(data: bytes) -> bool:
    """Nesting D levels takes at least D opening brackets (and 2D bytes): with fewer, no walk.

    Most events have a few dozen brackets. Deleting them and comparing lengths is the
    cheapest count in CPython (about 0.4 us for a 600-byte event; two ``count`` calls
    take 0.55 us).
    """
    size = len(data)
    return size > 2 * MAX_DEPTH and size - len(data.translate(None, _BRACKETS)) > MAX_DEPTH


def nesting_depth(value: Any, stop_after: int = MAX_DEPTH) -> int:
    """How many objects/arrays deep ``value`` goes (a scalar is 0); stops past ``stop_after``.

    Iterative, so any depth is measured without recursion.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > deepest:
            deepest = level
            if deepest > stop_after:
                break
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest
