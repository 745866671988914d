"""What the admin API accepts: request bodies and query parameters of the OpenAPI document.

The handlers check every body against these schemas (``validation.Validator``) before
they act, so the document and the handlers agree by construction. Rules a schema cannot
state (a name that must exist, a URL the egress rules can use, two settings with one
key) are given in ``description`` and custom ``format`` names, and answered with a
``400`` and a message by the handler.
"""

from __future__ import annotations

from typing import Any

from segue.spec.samples import SAMPLE_TYPES

MAX_ID = 9_223_372_036_854_775_807  # the store's ids are signed 64-bit integers
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_PAGE = 1000


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


NAME_PATTERN = "^[a-z0-9_-]+$"
_NAME = {
    "type": "string",
    "pattern": NAME_PATTERN,
    "x-invalid": "is required: lower-case letters, digits, - and _",
}
_NEW_NAME = {
    **_NAME,
    "not": {"const": "new"},
    "description": "lower-case letters, digits, - and _; `new` is reserved",
}
_ENDPOINT = {
    "type": "string",
    "format": "segue-endpoint",
    "pattern": "^\\s*[Hh][Tt][Tt][Pp][Ss]?://",
    "description": "an http(s) URL with a host (a name, IPv4 or [IPv6]), no user:password@, "
    "no spaces or control characters, a port from 1 to 65535, at most 2048 characters; "
    "international host names are stored in their ASCII form. A URL that breaks one of "
    "these is a 400 that says which.",
}
_NAMED = "the name of an existing {}; an unknown name is a 400"
_SOURCE_NAME = {
    "type": "string",
    "minLength": 1,
    "format": "source-name",
    "description": _NAMED.format("source"),
}
_APP_NAME = {
    "type": "string",
    "minLength": 1,
    "format": "app-name",
    "description": _NAMED.format("app"),
}
_DESTINATION_NAME = {
    "type": "string",
    "minLength": 1,
    "format": "destination-name",
    "description": _NAMED.format("destination"),
}
_CODE = {"type": "string", "pattern": "\\S", "description": "the function's source text"}
_RUNTIME = {"type": "string", "enum": ["python", "javascript"]}
_FUNCTION = {
    "type": "string",
    "format": "server-file",
    "pattern": "\\.(py|js)$",
    "description": "path of a .py or .js file that segue can read (400 if it cannot); "
    "its text is stored as `code`",
}
_NOT_SECRET = {
    "not": {"type": "object", "required": ["$secret"]},
    "description": "any JSON value; objects with a `$secret` key are reserved",
}
_SETTING_VALUES = {
    "type": "object",
    "additionalProperties": _NOT_SECRET,
    "description": "setting values by key. With an `app`, only the keys the app defines, "
    "and every required one (else 400). Sensitive values are shown as `••••••`; sending "
    "that back means unchanged.",
}
_TIME_WORDS = (
    "an ISO-8601 date or date-time, epoch milliseconds (a number or its "
    "digits), or null / empty for none"
)
_TIME: dict[str, Any] = {
    "description": _TIME_WORDS,
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MS},
        {"type": "string", "pattern": "^[0-9]{1,15}$"},
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "string", "maxLength": 0},
        {"type": "null"},
    ],
    "x-invalid": "must be an ISO-8601 date or time, or epoch milliseconds (0 to 9999-12-31)",
}

_SETTING_FIELD_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["label"],
    "description": "two fields may not end up with one key (400)",
    "properties": {
        "label": {
            "type": "string",
            "pattern": "[A-Za-z0-9]",
            "description": "has a letter or digit",
        },
        "key": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "description": "camelCase of the label unless given",
        },
        "description": {"type": "string"},
        "required": {"type": "boolean"},
        "sensitive": {"type": "boolean", "description": "encrypted at rest, masked in output"},
    },
}
_APP_TARGETS = {
    "endpoint": _ENDPOINT,
    "function": _FUNCTION,
    "code": _CODE,
    "runtime": _RUNTIME,
    "settings": {
        "type": "array",
        "items": ref("SettingFieldInput"),
        "description": "the settings builder; `apiKey` is always added",
    },
}
_ONE_TARGET = (
    "an app needs an `endpoint`, or its `code` and `runtime` (or a `function` file), not both"
)
_ENDPOINT_AND_CODE = {
    "anyOf": [{"required": ["endpoint", "code"]}, {"required": ["endpoint", "function"]}]
}

_OPTIONS_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "snake_case": {"type": "boolean", "description": "legacy direct-integration keys"},
        "allow_http": {"type": "boolean", "description": "plain http for this destination"},
        "first_backoff_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 86_400},
        "max_backoff_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 604_800},
        "retry_window_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 31_536_000},
    },
}
_DESTINATION_INPUT = {
    "app": {**_APP_NAME, "type": ["string", "null"]},
    "endpoint": {**_ENDPOINT, "type": ["string", "null"], "description": "inline endpoint"},
    "sources": {"type": "array", "items": _SOURCE_NAME},
    "settings": _SETTING_VALUES,
    "enabled": {"type": "boolean"},
    "options": ref("DeliveryOptionsInput"),
}

REQUEST_SCHEMAS: dict[str, Any] = {
    "SourceCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": _NAME,
            "write_key": {
                "type": ["string", "null"],
                "description": "omitted, null or empty: generated",
            },
            "kind": {"type": "string", "enum": ["standard", "stream"]},
            "rate_limit": {
                "type": ["number", "null"],
                "minimum": 0,
                "description": "requests per second; 0 or null: none",
            },
            "enabled": {"type": "boolean", "default": True},
        },
    },
    "SourcePatch": {
        "type": "object",
        "additionalProperties": False,
        "description": "null means unchanged (for `rate_limit`: no limit)",
        "properties": {
            "enabled": {"type": ["boolean", "null"]},
            "write_key": {"type": ["string", "null"], "minLength": 1},
            "rotate_write_key": {
                "type": ["boolean", "null"],
                "description": "true: generate a new key (wins over `write_key`)",
            },
            "kind": {"type": "string", "enum": ["standard", "stream"]},
            "rate_limit": {
                "type": ["number", "null"],
                "minimum": 0,
                "description": "0 or null removes the limit",
            },
        },
    },
    "SettingFieldInput": _SETTING_FIELD_INPUT,
    "AppCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {"name": _NEW_NAME, **_APP_TARGETS},
        "anyOf": [
            {
                "required": ["endpoint"],
                "not": {"anyOf": [{"required": ["code"]}, {"required": ["function"]}]},
            },
            {"required": ["code", "runtime"], "not": {"required": ["endpoint"]}},
            {"required": ["function"], "not": {"required": ["endpoint"]}},
        ],
        "x-invalid": _ONE_TARGET,
    },
    "AppPatch": {
        "type": "object",
        "additionalProperties": False,
        "description": "`endpoint` turns a function app into an endpoint app and back; "
        "new `code` comes with its `runtime`",
        "properties": _APP_TARGETS,
        "allOf": [
            {"not": _ENDPOINT_AND_CODE, "x-invalid": _ONE_TARGET},
            {
                "anyOf": [
                    {"not": {"required": ["code"]}},
                    {"required": ["runtime"]},
                    {"required": ["function"]},
                ],
                "x-invalid": "`code` needs its `runtime` (python or javascript)",
            },
        ],
    },
    "SettingKeyRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["label"],
        "properties": {"label": {"type": "string", "pattern": "[A-Za-z0-9]"}},
    },
    "DeliveryOptionsInput": _OPTIONS_INPUT,
    "DestinationCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {"name": _NEW_NAME, **_DESTINATION_INPUT},
        "anyOf": [
            {"required": ["app"], "properties": {"app": {"type": "string"}}},
            {"required": ["endpoint"], "properties": {"endpoint": {"type": "string"}}},
        ],
        "x-invalid": "a destination needs an `app` or an `endpoint`",
    },
    "DestinationPatch": {
        "type": "object",
        "additionalProperties": False,
        "description": "`app: null` with an `endpoint` makes it an inline destination",
        "properties": _DESTINATION_INPUT,
    },
    "TestRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": "`type` (a generated sample) or `event` (sent as is; wins over `type`)",
        "properties": {
            "type": {"type": "string", "enum": list(SAMPLE_TYPES)},
            "event": {"type": "object", "description": "a Segment message, sent as is"},
            "settings": {
                **_SETTING_VALUES,
                "description": "apps: every setting, checked against the app's fields; "
                "destinations: laid over the destination's own values",
            },
        },
        "anyOf": [{"required": ["type"]}, {"required": ["event"]}],
        "x-invalid": f"give `type` (one of {', '.join(SAMPLE_TYPES)}) or `event` "
        "(a Segment message)",
    },
    "SuiteRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"settings": _SETTING_VALUES},
    },
    "RetryRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["destination"],
        "properties": {
            "destination": _DESTINATION_NAME,
            "states": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": ["discarded", "expired"]},
                "default": ["discarded", "expired"],
            },
            "reason": {
                "type": ["string", "null"],
                "description": "only this reason, e.g. `discarded.400`",
            },
            "since": {
                **_TIME,
                "description": "only deliveries created since; " + _TIME_WORDS,
            },
        },
    },
    "ReplayCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["source", "destination"],
        "description": "the destination must subscribe to the source and be enabled, and "
        "`until` (default: now) must come after `since` (else 400)",
        "properties": {
            "source": _SOURCE_NAME,
            "destination": _DESTINATION_NAME,
            "since": {
                **_TIME,
                "description": "start (inclusive), default all time; " + _TIME_WORDS,
            },
            "until": {
                **_TIME,
                "description": "end (exclusive), default now; " + _TIME_WORDS,
            },
        },
    },
}

# -- query and path parameters ----------------------------------------------------------

CURSOR_PATTERN = "^[0-9a-f]{0,16}$"
WINDOW_PATTERN = (
    "^0*(([1-9][0-9]{0,5}|[1-6][0-9]{6}|7[0-6][0-9]{5}|77[0-6][0-9]{4}|777[0-5][0-9]{3}|7776000)s"
    "|([1-9][0-9]{0,4}|1[01][0-9]{4}|12[0-8][0-9]{3}|129[0-5][0-9]{2}|129600)m"
    "|([1-9][0-9]{0,2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)h"
    "|([1-9]|[1-8][0-9]|90)d)$"
)
LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100},
}
CURSOR = {
    "name": "cursor",
    "in": "query",
    "schema": {"type": "string", "pattern": CURSOR_PATTERN},
    "description": "next_cursor of the previous page (empty: the first page)",
}
WINDOW = {
    "name": "window",
    "in": "query",
    "schema": {"type": "string", "pattern": WINDOW_PATTERN, "default": "1h"},
    "description": "a number and a unit (s, m, h, d): 5m, 1h, 24h, 7d…, at most 90d",
}
DELIVERY_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}
