"""The Redactor: a destination's secret values masked in any text or JSON value."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from segue.destinations.redaction import Redactor
from segue.destinations.settings import MASK

SECRET = "sk_live_4f9a2b7c"


def test_every_common_form_of_the_secret_is_masked() -> None:
    redact = Redactor.for_settings({"apiKey": SECRET, "region": "eu"}, {"apiKey"})
    basic = base64.b64encode(f"{SECRET}:".encode()).decode()
    for shown in (
        f"key={SECRET}",
        f"Authorization: Basic {basic}",
        f"auth {basic.rstrip('=')}",
        f"plain {base64.b64encode(SECRET.encode()).decode()}",
        f"url ?k={quote(SECRET, safe='')}",
        json.dumps({"apiKey": SECRET}),
    ):
        assert SECRET not in redact.text(shown)
        assert MASK in redact.text(shown)
    assert redact.text("region eu") == "region eu"  # what is not secret stays


def test_json_escaped_values_are_masked() -> None:
    secret = 'p"a\\ss/wörd'
    redact = Redactor.of([secret])
    assert MASK in redact.text(json.dumps({"password": secret}))
    assert redact.text(json.dumps({"password": secret}, ensure_ascii=False)).count(MASK) == 1


def test_structures_are_walked_keys_and_all() -> None:
    redact = Redactor.of([SECRET])
    data = {"settings": {"apiKey": SECRET}, SECRET: [1, f"x{SECRET}y", None, True]}
    assert redact.value(data) == {
        "settings": {"apiKey": MASK},
        MASK: [1, f"x{MASK}y", None, True],
    }


def test_short_values_are_masked_only_as_whole_strings() -> None:
    redact = Redactor.of(["abc"])
    assert redact.value({"key": "abc"}) == {"key": MASK}
    assert redact.text("abcdef") == "abcdef"


def test_no_secrets_no_change() -> None:
    redact = Redactor.for_settings({"apiKey": "", "n": None}, {"apiKey", "n"})
    data = {"a": ["b"]}
    assert redact.value(data) is data
    assert redact.text("anything") == "anything"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=4, max_size=40), st.text(max_size=60), st.text(max_size=60))
def test_the_secret_never_survives_in_text(secret: str, before: str, after: str) -> None:
    shown = Redactor.of([secret]).text(before + secret + after)
    assert secret not in shown or secret in MASK
