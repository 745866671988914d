"""The settings builder: keys from labels, schema validation, value checks, masking."""

from __future__ import annotations

import re
from typing import Any

import pytest

from segue.destinations.models import DeliveryOptions
from segue.destinations.settings import (
    API_KEY,
    MASK,
    SettingField,
    SettingsError,
    check_values,
    key_from_label,
    masked,
    parse_fields,
    sensitive_keys,
)


# -- keys from labels ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "key"),
    [
        ("API Key", "apiKey"),
        ("Custom Setting", "customSetting"),
        ("publishable API key", "publishableApiKey"),
        ("Region", "region"),
        ("  spaced   out  label ", "spacedOutLabel"),
        ("Use HTTPS?", "useHttps"),
        ("Account-ID", "accountId"),
        ("2nd Key", "_2ndKey"),
        ("webhook_url", "webhookUrl"),
    ],
)
def test_key_from_label(label: str, key: str) -> None:
    assert key_from_label(label) == key


@pytest.mark.parametrize("label", ["", "   ", "!!!", "—"])
def test_a_label_without_words_gives_no_key(label: str) -> None:
    with pytest.raises(SettingsError, match="cannot make a key"):
        key_from_label(label)


# -- schemas -------------------------------------------------------------------------
def test_the_api_key_field_is_always_there_first_and_sensitive() -> None:
    fields = parse_fields([{"label": "Custom Setting"}])
    assert [f.key for f in fields] == [API_KEY, "customSetting"]
    assert fields[0].sensitive is True
    assert fields[0].label == "API Key"
    assert parse_fields(None) == parse_fields([])
    assert [f.key for f in parse_fields([])] == [API_KEY]


def test_fields_keep_what_the_builder_said() -> None:
    fields = parse_fields(
        [
            {
                "label": "  publishable API key ",
                "description": "Go to the settings page of our site and",
                "required": True,
                "sensitive": True,
            },
            {"label": "Custom Setting", "key": "custom_setting_v2"},
        ]
    )
    publishable, custom = fields[1], fields[2]
    assert publishable == SettingField(
        label="publishable API key",
        key="publishableApiKey",
        description="Go to the settings page of our site and",
        required=True,
        sensitive=True,
    )
    assert custom.key == "custom_setting_v2"  # an edited key is kept
    assert custom.required is False and custom.sensitive is False
    assert publishable.as_json() == {
        "label": "publishable API key",
        "key": "publishableApiKey",
        "description": "Go to the settings page of our site and",
        "required": True,
        "sensitive": True,
    }


def test_an_explicit_api_key_field_replaces_the_default() -> None:
    fields = parse_fields([{"label": "API Key", "required": True, "description": "hello"}])
    assert [f.key for f in fields] == [API_KEY]
    assert fields[0].required is True and fields[0].description == "hello"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"label": "x"}, "must be a list"),
        ("settings", "must be a list"),
        (["label"], "#1 must be an object"),
        ([{"label": "ok"}, 3], "#2 must be an object"),
        ([{"label": "x", "kind": "text"}], "unknown field"),
        ([{"description": "no label"}], "needs a `label`"),
        ([{"label": "   "}], "needs a `label`"),
        ([{"label": 5}], "needs a `label`"),
        ([{"label": "Bad", "key": "has space"}], "`key` must be"),
        ([{"label": "Bad", "key": "1abc"}], "`key` must be"),
        ([{"label": "Bad", "key": "a-b"}], "`key` must be"),
        ([{"label": "Bad", "key": 7}], "`key` must be"),
        ([{"label": "Flag", "required": "yes"}], "`required` must be true or false"),
        ([{"label": "Flag", "sensitive": 1}], "`sensitive` must be true or false"),
        ([{"label": "Text", "description": ["x"]}], "`description` must be text"),
        ([{"label": "Region"}, {"label": "region"}], "two settings have the key 'region'"),
        ([{"label": "A", "key": "k"}, {"label": "B", "key": "k"}], "two settings have the key"),
        ([{"label": "!!!"}], "cannot make a key"),
    ],
)
def test_parse_fields_errors(raw: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        parse_fields(raw)


# -- values ----------------------------------------------------------------------------
FIELDS = parse_fields(
    [
        {"label": "API Key", "required": True},
        {"label": "Region", "required": True},
        {"label": "Secret Token", "sensitive": True},
        {"label": "Custom Setting"},
    ]
)


def test_check_values_accepts_complete_settings() -> None:
    values = {"apiKey": "k", "region": "eu", "customSetting": "c"}
    checked = check_values(FIELDS, values, strict=True)
    assert checked == values
    assert checked is not values  # a copy


def test_missing_required_settings_are_named_by_label() -> None:
    with pytest.raises(SettingsError, match=r"missing required setting\(s\): API Key, Region"):
        check_values(FIELDS, {}, strict=True)
    with pytest.raises(SettingsError, match=r"Region"):
        check_values(FIELDS, {"apiKey": "k", "region": ""}, strict=True)
    with pytest.raises(SettingsError, match=r"Region"):
        check_values(FIELDS, {"apiKey": "k", "region": None}, strict=True)
    with pytest.raises(SettingsError, match="API Key"):
        check_values(FIELDS, None, strict=True)


def test_strict_check_refuses_unknown_settings_and_lists_the_known_ones() -> None:
    with pytest.raises(SettingsError) as info:
        check_values(FIELDS, {"apiKey": "k", "region": "eu", "colour": "red"}, strict=True)
    message = str(info.value)
    assert "colour" in message
    assert "apiKey" in message and "customSetting" in message


def test_loose_check_keeps_unknown_settings() -> None:
    values = {"apiKey": "k", "anything": 1}
    assert check_values(parse_fields([]), values, strict=False) == values


def test_settings_must_be_an_object() -> None:
    with pytest.raises(SettingsError, match="must be an object"):
        check_values(FIELDS, ["apiKey"], strict=False)


def test_sensitive_keys_and_masking() -> None:
    fields = parse_fields([{"label": "Region"}, {"label": "Secret Token", "sensitive": True}])
    secret = sensitive_keys(fields)
    assert secret == frozenset({"apiKey", "secretToken"})
    shown = masked({"apiKey": "k", "secretToken": "t", "region": "eu", "customSetting": ""}, secret)
    assert shown == {"apiKey": MASK, "secretToken": MASK, "region": "eu", "customSetting": ""}
    assert masked({"apiKey": "", "secretToken": None}, secret) == {
        "apiKey": "",
        "secretToken": None,
    }


def test_the_api_key_stays_sensitive_when_the_app_lists_it() -> None:
    fields = parse_fields([{"label": "API Key", "required": True, "description": "hello"}])
    assert fields[0].key == API_KEY
    assert API_KEY in sensitive_keys(fields)


# -- per-destination delivery options --------------------------------------------------
def test_delivery_options_defaults() -> None:
    options = DeliveryOptions.from_doc(None)
    assert options.timeout_s == 5.0
    assert options.snake_case is False and options.allow_http is False
    assert options.retry.first_backoff_s == 2.0
    assert options.retry.max_backoff_s == 600.0
    assert options.retry.window_s == 4 * 3600.0
    assert DeliveryOptions.from_doc(options.doc()) == options


def test_delivery_options_round_trip() -> None:
    doc = {
        "timeout_s": 0.2,
        "concurrency": 4,
        "snake_case": True,
        "allow_http": True,
        "first_backoff_s": 1,
        "max_backoff_s": 30,
        "retry_window_s": 60,
    }
    options = DeliveryOptions.from_doc(doc)
    assert (options.timeout_s, options.concurrency, options.snake_case) == (0.2, 4, True)
    assert options.retry.window_s == 60.0 and options.retry.max_backoff_s == 30.0
    assert DeliveryOptions.from_doc(options.doc()) == options


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"timeout": 1}, "unknown option"),
        ({"timeout_s": 0}, "`timeout_s` must be a positive number"),
        ({"timeout_s": -1}, "`timeout_s` must be a positive number"),
        ({"timeout_s": "5"}, "`timeout_s` must be a positive number"),
        ({"retry_window_s": True}, "`retry_window_s` must be a positive number"),
        ({"snake_case": "yes"}, "`snake_case` must be true or false"),
        ({"allow_http": 1}, "`allow_http` must be true or false"),
    ],
)
def test_delivery_options_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        DeliveryOptions.from_doc(doc)


def test_concurrency_must_be_a_whole_number_of_at_least_one() -> None:
    with pytest.raises(SettingsError, match="concurrency"):
        DeliveryOptions.from_doc({"concurrency": 0.5})
