"""Key casing: snake_case for the legacy direct form; case-insensitive reads for partners."""

from __future__ import annotations

import pytest

from segue.spec.casing import CaseInsensitiveDict, snake_case, snake_case_keys


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("userId", "user_id"),
        ("anonymousId", "anonymous_id"),
        ("messageId", "message_id"),
        ("receivedAt", "received_at"),
        ("originalTimestamp", "original_timestamp"),
        ("userAgent", "user_agent"),
        ("groupId", "group_id"),
        ("previousId", "previous_id"),
        ("URLPath", "url_path"),
        ("HTMLParser", "html_parser"),
        ("ABTest", "ab_test"),
        ("messageID", "message_id"),
        ("v2Name", "v2_name"),
        ("address2Line", "address2_line"),
        ("UserId", "user_id"),
        ("user_id", "user_id"),
        ("already_snake_case", "already_snake_case"),
        ("type", "type"),
        ("ip", "ip"),
        ("ID", "id"),
        ("user-agent", "user_agent"),
        ("Custom Setting", "custom_setting"),
        ("", ""),
    ],
)
def test_snake_case(key: str, expected: str) -> None:
    assert snake_case(key) == expected


def test_snake_case_is_idempotent() -> None:
    for key in ("userId", "URLPath", "receivedAt", "ABTest", "messageID"):
        once = snake_case(key)
        assert snake_case(once) == once


def test_snake_case_keys_rewrites_every_key_at_every_depth_but_no_value() -> None:
    event = {
        "type": "track",
        "userId": "userId",
        "context": {"userAgent": "UA", "library": {"name": "analytics-python", "version": "2"}},
        "properties": {
            "orderId": "o1",
            "productList": [{"productId": "p1", "unitPrice": 2.5}, {"productId": "p2"}],
            "nestedLists": [[{"deepKey": 1}]],
            "emptyObj": {},
        },
        "integrations": {"All": False, "Google Analytics": True},
    }
    assert snake_case_keys(event) == {
        "type": "track",
        "user_id": "userId",  # values untouched
        "context": {"user_agent": "UA", "library": {"name": "analytics-python", "version": "2"}},
        "properties": {
            "order_id": "o1",
            "product_list": [{"product_id": "p1", "unit_price": 2.5}, {"product_id": "p2"}],
            "nested_lists": [[{"deep_key": 1}]],
            "empty_obj": {},
        },
        "integrations": {"all": False, "google_analytics": True},
    }


def test_snake_case_keys_leaves_scalars_and_the_input_alone() -> None:
    original = {"userId": {"innerKey": [1, "twoThree"]}}
    copy = snake_case_keys(original)
    assert copy == {"user_id": {"inner_key": [1, "twoThree"]}}
    assert original == {"userId": {"innerKey": [1, "twoThree"]}}
    for scalar in (None, 1, 2.5, "camelCase", True):
        assert snake_case_keys(scalar) == scalar


def test_every_key_of_a_real_event_ends_up_snake_case() -> None:
    def keys(value: object) -> list[str]:
        if isinstance(value, dict):
            return [k for k in value] + [k for v in value.values() for k in keys(v)]
        if isinstance(value, list):
            return [k for item in value for k in keys(item)]
        return []

    event = {
        "anonymousId": "1234",
        "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0", "pageInfo": {"referrerURL": "x"}},
        "messageId": "022bb90c",
        "receivedAt": "2015-02-23T22:28:55.387Z",
        "sentAt": "2015-02-23T22:28:55.111Z",
        "traits": {"name": "John Doe", "firstLoginAt": "2015"},
        "type": "identify",
        "userId": "5678",
    }
    for key in keys(snake_case_keys(event)):
        assert key == key.lower(), key
        assert " " not in key and "-" not in key


# -- CaseInsensitiveDict ---------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["userId", "user_id", "UserId", "USERID", "user-id"])
def test_any_casing_reads_the_same_key(spelling: str) -> None:
    event = CaseInsensitiveDict({"userId": "5678", "type": "track"})
    assert event[spelling] == "5678"
    assert spelling in event
    assert event.get(spelling) == "5678"


def test_snake_case_events_read_with_camel_case_names() -> None:
    event = CaseInsensitiveDict({"user_id": "5678", "anonymous_id": "a"})
    assert event["userId"] == "5678"
    assert event["AnonymousId"] == "a"


def test_an_exact_key_wins_over_a_folded_one() -> None:
    event = CaseInsensitiveDict({"userId": "camel", "user_id": "snake"})
    assert event["userId"] == "camel"
    assert event["user_id"] == "snake"


def test_missing_keys_behave_like_a_dict() -> None:
    event = CaseInsensitiveDict({"userId": "5678"})
    with pytest.raises(KeyError):
        event["groupId"]
    assert event.get("groupId") is None
    assert event.get("groupId", "none") == "none"
    assert "groupId" not in event
    assert 3 not in event  # type: ignore[comparison-overlap]


def test_nested_objects_are_case_insensitive_too() -> None:
    event = CaseInsensitiveDict({"context": {"userAgent": "UA", "library": {"libName": "x"}}})
    assert event["context"]["user_agent"] == "UA"
    assert event["Context"]["Library"]["lib_name"] == "x"


def test_it_is_still_a_plain_dict_for_json() -> None:
    import json

    data = {"userId": "5678", "traits": {"firstName": "J"}}
    event = CaseInsensitiveDict(data)
    assert isinstance(event, dict)
    assert json.loads(json.dumps(event)) == data
    assert list(event.keys()) == ["userId", "traits"]


def test_objects_inside_lists_are_case_insensitive_too() -> None:
    event = CaseInsensitiveDict({"properties": {"products": [{"productId": "p1"}]}})
    assert event["properties"]["products"][0]["product_id"] == "p1"


def test_nested_changes_stick_and_new_keys_match_any_casing() -> None:
    from segue.spec.casing import CaseInsensitiveDict

    event = CaseInsensitiveDict({"traits": {"first_name": "Ada"}, "products": [{"productId": 1}]})
    event["traits"]["avatar"] = "a.png"
    assert event["Traits"]["avatar"] == "a.png"
    event["userId"] = "u1"
    assert event["user_id"] == "u1"
    event["USER_ID"] = "u2"  # the same field, whatever the casing of the write
    assert event["userId"] == "u2"
    assert len([k for k in event if k.lower().replace("_", "") == "userid"]) == 1
    assert event["products"][0]["product_id"] == 1
    del event["User_Id"]
    assert "userId" not in event
