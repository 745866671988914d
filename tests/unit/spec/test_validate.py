"""validate(): Segment's ingest checks, each rejection code, and which problem wins."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from segue.spec import DELIVERABLE_TYPES, MESSAGE_TYPES, Rejection, RejectionCode, validate

C = RejectionCode

VALID: dict[str, dict[str, Any]] = {
    "identify": {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"}},
    "track": {"type": "track", "anonymousId": "a1", "event": "Order Completed"},
    "page": {"type": "page", "userId": "u1", "name": "Home", "category": "Docs"},
    "screen": {"type": "screen", "anonymousId": "a1", "name": "Feed"},
    "group": {"type": "group", "userId": "u1", "groupId": "g1"},
    "alias": {"type": "alias", "userId": "u1", "previousId": "a1"},
}


def msg(kind: str, **fields: Any) -> dict[str, Any]:
    """A valid message of ``kind`` with ``fields`` overriding (a value of ... deletes)."""
    message = {**VALID[kind], **fields}
    return {k: v for k, v in message.items() if v is not ...}


def test_message_type_sets() -> None:
    assert {"identify", "track", "page", "screen", "group", "alias"} == MESSAGE_TYPES
    assert MESSAGE_TYPES | {"delete"} == DELIVERABLE_TYPES


def test_codes_are_segments_wire_strings() -> None:
    assert str(C.NO_USER_ANON_ID) == "no_user_anon_id"
    assert C("event_not_defined") is C.EVENT_NOT_DEFINED
    assert C.MULTI_USER_ERROR.value == "multi_user_error"
    assert str(C.RATE_LIMITED) == "rate_limited"
    assert len({c.value for c in C}) == 14


def test_rejection_is_frozen() -> None:
    rejection = Rejection(C.BAD_REQUEST, "nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rejection.message = "other"  # type: ignore[misc]


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_messages_pass(kind: str) -> None:
    assert validate(VALID[kind]) is None


@pytest.mark.parametrize(
    "message",
    [
        msg("track", userId=42, anonymousId=...),
        msg("track", userId=4.5, anonymousId=...),
        msg("track", userId="", anonymousId="a1"),
        msg("track", userId=None, anonymousId="a1"),
        msg("identify", userId="u1", properties=None, traits=None, context=None),
        msg("track", messageId=12345),
        msg("track", messageId="m" * 99),
        msg("track", messageId=10**99 - 1),
        msg("track", messageId=-(10**98) + 1),
        msg("track", userId=10**99),
        msg("track", timestamp="2024-01-02", sentAt="2024-01-02T03:04:05.123Z"),
        msg("track", originalTimestamp="2024-01-02T03:04:05+02:00"),
        msg("page", name="", category=None),
        msg("group", groupId=7),
        msg("alias", userId=1, previousId=2),
        msg("track", context={"traits": {"plan": "pro"}}, integrations={"All": True}),
        msg("identify", unknownKey=[1, 2], Traits="any casing is kept"),
    ],
)
def test_edge_cases_that_are_accepted(message: dict[str, Any]) -> None:
    assert validate(message) is None


@pytest.mark.parametrize(
    ("message", "code", "fragment"),
    [
        # type
        ({"type": "purchase", "userId": "u"}, C.BAD_REQUEST, "unsupported type 'purchase'"),
        ({"type": "delete", "userId": "u"}, C.BAD_REQUEST, "unsupported type 'delete'"),
        ({"userId": "u"}, C.BAD_REQUEST, "unsupported type None"),
        ({"type": ["track"], "userId": "u"}, C.BAD_REQUEST, "unsupported type"),
        # ids
        (msg("track", userId=True), C.ID_NOT_STRING, "`userId`"),
        (msg("track", anonymousId=["a"]), C.ID_NOT_STRING, "`anonymousId`"),
        (msg("track", anonymousId={"id": 1}), C.ID_NOT_STRING, "not an object"),
        (msg("track", userId=float("nan")), C.ID_NOT_STRING, "`userId` must be a finite"),
        (msg("track", anonymousId=float("inf")), C.ID_NOT_STRING, "`anonymousId`"),
        (msg("track", anonymousId=...), C.NO_USER_ANON_ID, "`userId` or an `anonymousId`"),
        (msg("track", anonymousId=""), C.NO_USER_ANON_ID, "track requires"),
        (msg("identify", userId=None, anonymousId=None), C.NO_USER_ANON_ID, "identify"),
        # alias
        (
            msg("alias", userId=..., anonymousId="a1"),
            C.NO_USER_ANON_ID,
            "alias requires a `userId`",
        ),
        (msg("alias", previousId=...), C.BAD_REQUEST, "alias requires `previousId`"),
        (msg("alias", previousId=""), C.BAD_REQUEST, "alias requires `previousId`"),
        (msg("alias", previousId=False), C.ID_NOT_STRING, "`previousId`"),
        # track
        (msg("track", event=...), C.EVENT_NOT_DEFINED, "track requires an `event` name"),
        (msg("track", event=None), C.EVENT_NOT_DEFINED, "`event`"),
        (msg("track", event=""), C.EVENT_NOT_DEFINED, "`event`"),
        (msg("track", event=5), C.EVENT_NOT_STRING, "`event` must be a string, not a number"),
        (msg("track", event=["x"]), C.EVENT_NOT_STRING, "not an array"),
        # properties / traits
        (msg("track", properties=[1]), C.PROPERTIES_NOT_OBJECT, "`properties` must be an object"),
        (msg("page", properties="x"), C.PROPERTIES_NOT_OBJECT, "not a string"),
        (msg("identify", traits="vip"), C.TRAITS_NOT_OBJECT, "`traits` must be an object"),
        (msg("group", traits=[]), C.TRAITS_NOT_OBJECT, "`traits`"),
        (msg("track", traits=1), C.TRAITS_NOT_OBJECT, "`traits`"),
        (msg("track", context={"traits": "x"}), C.TRAITS_NOT_OBJECT, "`context.traits`"),
        # page / screen
        (msg("page", name=3), C.NAME_NOT_STRING, "`name` must be a string"),
        (msg("screen", name={"a": 1}), C.NAME_NOT_STRING, "`name`"),
        (msg("page", category=True), C.CATEGORY_NOT_STRING, "`category` must be a string"),
        (msg("screen", category=[]), C.CATEGORY_NOT_STRING, "`category`"),
        # group
        (msg("group", groupId=...), C.BAD_REQUEST, "group requires `groupId`"),
        (msg("group", groupId=None), C.BAD_REQUEST, "group requires `groupId`"),
        (msg("group", groupId=""), C.BAD_REQUEST, "group requires `groupId`"),
        (msg("group", groupId=["g"]), C.ID_NOT_STRING, "`groupId`"),
        # envelope
        (msg("track", context="web"), C.BAD_REQUEST, "`context` must be an object"),
        (msg("track", integrations=[]), C.BAD_REQUEST, "`integrations` must be an object"),
        (msg("track", messageId=1.5), C.BAD_REQUEST, "`messageId` must be a string"),
        (msg("track", messageId=True), C.BAD_REQUEST, "`messageId`"),
        (msg("track", messageId="m" * 100), C.BAD_REQUEST, "shorter than 100 characters"),
        (msg("track", messageId=10**99), C.BAD_REQUEST, "shorter than 100"),
        (msg("track", messageId=-(10**98)), C.BAD_REQUEST, "shorter than 100"),
        (msg("track", messageId=10**5000), C.BAD_REQUEST, "shorter than 100"),
        (msg("track", userId=10**5000), C.ID_NOT_STRING, "too large a number"),
        (msg("group", groupId=-(10**100)), C.ID_NOT_STRING, "`groupId` is too large"),
        (msg("track", timestamp="soon"), C.BAD_REQUEST, "`timestamp` is not an ISO-8601"),
        (msg("track", timestamp=1700000000), C.BAD_REQUEST, "`timestamp`"),
        (msg("track", originalTimestamp="x"), C.BAD_REQUEST, "`originalTimestamp` is not"),
        (msg("track", sentAt="2024-02-30"), C.BAD_REQUEST, "`sentAt` is not an ISO-8601"),
    ],
)
def test_rejections(message: dict[str, Any], code: RejectionCode, fragment: str) -> None:
    rejection = validate(message)
    assert rejection is not None
    assert rejection.code is code
    assert fragment in rejection.message


def test_non_object_message_is_bad_request() -> None:
    rejection = validate(["track"])  # type: ignore[arg-type]
    assert rejection == Rejection(C.BAD_REQUEST, "a message must be a JSON object")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        # id type beats missing event
        (msg("track", userId=True, event=...), C.ID_NOT_STRING),
        # missing event beats bad properties
        (msg("track", event=..., properties=[]), C.EVENT_NOT_DEFINED),
        # bad properties beats bad page name
        (msg("page", properties=[], name=1), C.PROPERTIES_NOT_OBJECT),
        # page name beats category, which beats envelope problems
        (msg("page", name=1, category=1), C.NAME_NOT_STRING),
        (msg("screen", category=1, context="x"), C.CATEGORY_NOT_STRING),
        # traits beat missing groupId
        (msg("group", traits=1, groupId=...), C.TRAITS_NOT_OBJECT),
        # context shape beats messageId beats timestamps
        (msg("track", context=1, messageId="m" * 200), C.BAD_REQUEST),
        # no user beats everything after it
        (msg("track", anonymousId=..., event=...), C.NO_USER_ANON_ID),
    ],
)
def test_first_problem_wins(message: dict[str, Any], code: RejectionCode) -> None:
    rejection = validate(message)
    assert rejection is not None
    assert rejection.code is code


def test_first_problem_message_for_envelope_order() -> None:
    rejection = validate(msg("track", messageId="m" * 200, timestamp="bad"))
    assert rejection is not None
    assert "`messageId`" in rejection.message


def test_validate_does_not_mutate() -> None:
    message = msg("track", properties={"a": [1]}, context={"traits": {"x": 1}}, userId=5)
    before = copy.deepcopy(message)
    validate(message)
    assert message == before
