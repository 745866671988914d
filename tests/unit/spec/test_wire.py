"""segue.spec.wire: JSON in with every integer exact, JSON out or a clear refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from segue.spec import wire


def nested(depth: int, leaf: Any = 1, as_list: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


@pytest.mark.parametrize(
    "number",
    [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**29 + 7, -(10**99), 10**4299],
)
def test_integers_of_any_size_round_trip_exactly(number: int) -> None:
    text = json.dumps({"n": number, "list": [number]}).encode()
    decoded = wire.decode(text)
    assert decoded == {"n": number, "list": [number]}
    assert type(decoded["n"]) is int
    assert wire.encode(decoded) == text.replace(b" ", b"")


def test_floats_and_small_numbers_are_what_orjson_gives() -> None:
    assert wire.decode(b'{"a": 1.5, "b": -0, "c": 1e300, "d": 3}') == {
        "a": 1.5,
        "b": 0,
        "c": 1e300,
        "d": 3,
    }
    assert wire.encode({"a": 1.5, "d": 3}) == b'{"a":1.5,"d":3}'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"a": ', "truncated"),
        (b'{"a": 1,}', "malformed"),
        (b'{"a": NaN}', "malformed"),
        (b'{"a": 1e400}', "out of range"),
        (b"[" + b"9" * 4301 + b"]", "out of range"),
        (b'{"a": "\xff"}', "UTF-8"),
        (b"\xef\xbb\xbf{}", "malformed"),
    ],
)
def test_what_is_not_json_is_refused_with_a_reason(text: bytes, problem: str) -> None:
    with pytest.raises(wire.JSONError, match=problem):
        wire.decode(text)


def test_nesting_past_the_decoders_limit_is_refused_not_crashing() -> None:
    with pytest.raises(wire.JSONError, match="nested too deeply"):
        wire.decode(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize(
    ("escaped", "expected"),
    [
        ("\\ud83d", "\ufffd"),  # a high surrogate cut from its pair (JSON.stringify)
        ("\\ude00", "\ufffd"),  # a low surrogate alone
        ("a\\ud83d\\ude00b", "a\U0001f600b"),  # a valid pair stays the emoji
        ("\\ude00\\ud83d", "\ufffd\ufffd"),  # the pair in the wrong order
        ("\\ud800\\ud800", "\ufffd\ufffd"),
        ("\\\\ud800", "\\ud800"),  # an escaped backslash: text, not an escape
        ("\\\\\\ud800", "\\\ufffd"),
        ("\\uD83D\\uDE00", "\U0001f600"),
    ],
)
def test_lone_surrogates_become_replacement_characters(escaped: str, expected: str) -> None:
    text = ('{"k' + escaped + '": "' + escaped + '"}').encode()
    assert wire.decode(text) == {"k" + expected: expected}


def test_a_repaired_body_that_is_still_not_json_is_refused() -> None:
    with pytest.raises(wire.JSONError, match="malformed"):
        wire.decode(b'{"a": "\\ud800", }')


def test_nul_is_an_ordinary_character() -> None:
    assert wire.decode(b'{"a": "x\\u0000y"}') == {"a": "x\x00y"}
    assert wire.encode({"a": "x\x00y"}) == b'{"a":"x\\u0000y"}'


@pytest.mark.parametrize("as_list", [False, True])
def test_encode_allows_max_depth_and_refuses_one_more(as_list: bool) -> None:
    assert wire.encode(nested(wire.MAX_DEPTH, as_list=as_list))
    for depth in (wire.MAX_DEPTH + 1, 254, 255, 900):
        with pytest.raises(wire.JSONError, match=f"more than {wire.MAX_DEPTH} levels"):
            wire.encode(nested(depth, as_list=as_list))


def test_the_depth_limit_is_the_same_when_a_big_integer_takes_the_slow_path() -> None:
    assert wire.encode(nested(wire.MAX_DEPTH, leaf=2**70)).count(b"1180591620717411303424") == 1
    with pytest.raises(wire.JSONError, match="levels"):
        wire.encode(nested(wire.MAX_DEPTH + 1, leaf=2**70))


def test_many_brackets_are_not_depth() -> None:
    """Wide events and brackets inside strings take the walk, and pass it."""
    wide = {"items": [{"a": [1]} for _ in range(500)], "text": "[[[[{{{{" * 100}
    assert wire.decode(wire.encode(wide)) == wide


def test_what_no_encoder_can_write_is_a_json_error() -> None:
    with pytest.raises(wire.JSONError, match="cannot be written"):
        wire.encode({"a": "\ud800"})  # a lone surrogate: not UTF-8
    with pytest.raises(wire.JSONError, match="cannot be written"):
        wire.encode({"a": object()})


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ("x", 0), ({}, 1), ([], 1), ({"a": [1, {"b": []}]}, 4), ([[], [[[]]]], 4)],
)
def test_nesting_depth(value: Any, depth: int) -> None:
    assert wire.nesting_depth(value) == depth


def test_nesting_depth_has_no_recursion_limit() -> None:
    assert wire.nesting_depth(nested(50_000), stop_after=10**9) == 50_000
