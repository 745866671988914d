"""The delivery half of the OpenAPI document: apps, destinations, test events,
deliveries, stats, bulk retry and replays (merged by ``openapi.openapi_document``)."""

from __future__ import annotations

from typing import Any

from segue.devcenter.openapi_requests import CURSOR, DELIVERY_ID, LIMIT, WINDOW
from segue.devcenter.openapi_requests import ref as _ref
from segue.spec.samples import SAMPLE_TYPES


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _list_of(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": _ref(item)}}}


_ERROR = _json(_ref("Error"), "Error, with a human-readable message")
_BAD = {"400": _json(_ref("Error"), "Invalid body, field or query parameter"), "401": _ERROR}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_REPLAY_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_STATES = ["pending", "executing", "succeeded", "discarded", "awaiting_retry", "expired"]
_TIME = {
    "type": ["string", "integer"],
    "description": "ISO-8601 time or epoch milliseconds",
}
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_STR = {"type": ["string", "null"]}
_MASKED = "sensitive values are shown as `••••••`; sending that back means unchanged"

_SETTING_FIELD = {
    "type": "object",
    "required": ["label", "key", "description", "required", "sensitive"],
    "properties": {
        "label": {"type": "string"},
        "key": {"type": "string", "description": "camelCase of the label unless given"},
        "description": {"type": "string"},
        "required": {"type": "boolean"},
        "sensitive": {"type": "boolean", "description": "encrypted at rest, masked in output"},
    },
}
_OPTIONS = {
    "type": "object",
    "required": [
        "timeout_s",
        "concurrency",
        "snake_case",
        "allow_http",
        "first_backoff_s",
        "max_backoff_s",
        "retry_window_s",
    ],
    "properties": {
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 5},
        "concurrency": {"type": "integer", "minimum": 1, "default": 32},
        "snake_case": {"type": "boolean", "description": "legacy direct-integration keys"},
        "allow_http": {"type": "boolean", "description": "plain http for this destination"},
        "first_backoff_s": {"type": "number", "exclusiveMinimum": 0, "default": 2},
        "max_backoff_s": {"type": "number", "exclusiveMinimum": 0, "default": 600},
        "retry_window_s": {"type": "number", "exclusiveMinimum": 0, "default": 14400},
    },
}
_SENT_REQUEST = {
    "type": "object",
    "description": "the request segue sent: Authorization masked; X-Segment-Settings is "
    "base64 JSON with sensitive values masked",
    "properties": {
        "method": {"type": "string"},
        "url": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": "string", "description": "capped at 4 KiB"},
    },
}
_RECEIVED_RESPONSE = {
    "type": ["object", "null"],
    "description": "the destination's answer; null when none came (timeout, refused…)",
    "properties": {
        "status": {"type": "integer"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": "string", "description": "capped at 4 KiB"},
    },
}
_OUTCOME_FIELDS = {
    "request": _ref("SentRequest"),
    "response": _ref("ReceivedResponse"),
    "status": _NULLABLE_INT,
    "reason": {"type": "string", "description": "`429`, `ETIMEDOUT`, `EGRESS_BLOCKED`…"},
    "message": {
        "type": ["string", "null"],
        "description": "`message` of a JSON error body (Content-Type application/json)",
    },
    "error": _NULLABLE_STR,
    "duration_ms": {"type": "number"},
}
_OUTCOME = {"type": "string", "enum": ["succeeded", "discarded", "retry"]}
_COUNTS = {
    k: {"type": "integer"} for k in ("delivered", "discarded", "retrying", "expired", "pending")
}

SCHEMAS: dict[str, Any] = {
    "SettingField": _SETTING_FIELD,
    "App": {
        "type": "object",
        "required": ["id", "name", "endpoint", "settings", "destinations", "created_at_ms"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "endpoint": {"type": ["string", "null"], "description": "null for a function app"},
            "settings": {"type": "array", "items": _ref("SettingField")},
            "destinations": {"type": "array", "items": {"type": "string"}},
            "created_at_ms": {"type": "integer"},
        },
    },
    "SettingKey": {
        "type": "object",
        "required": ["label", "key"],
        "properties": {"label": {"type": "string"}, "key": {"type": "string"}},
    },
    "DeliveryOptions": _OPTIONS,
    "Destination": {
        "type": "object",
        "required": [
            "id",
            "name",
            "app",
            "endpoint",
            "effective_endpoint",
            "sources",
            "settings",
            "fields",
            "enabled",
            "options",
            "created_at_ms",
        ],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "app": _NULLABLE_STR,
            "endpoint": {"type": ["string", "null"], "description": "the inline endpoint"},
            "effective_endpoint": {
                "type": ["string", "null"],
                "description": "where events go: the inline endpoint or the app's",
            },
            "sources": {"type": "array", "items": {"type": "string"}},
            "settings": {"type": "object", "description": _MASKED},
            "fields": {"type": "array", "items": _ref("SettingField")},
            "enabled": {"type": "boolean"},
            "options": _ref("DeliveryOptions"),
            "created_at_ms": {"type": "integer"},
        },
    },
    "SentRequest": _SENT_REQUEST,
    "ReceivedResponse": _RECEIVED_RESPONSE,
    "TestResult": {
        "type": "object",
        "properties": {
            **_OUTCOME_FIELDS,
            "outcome": _OUTCOME,
            "event": {"type": "object", "description": "the event that was sent"},
        },
    },
    "SuiteRow": {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": list(SAMPLE_TYPES)},
            "passed": {"type": "boolean", "description": "the endpoint answered 2xx"},
            "outcome": _OUTCOME,
            **_OUTCOME_FIELDS,
        },
    },
    "Attempt": {
        "type": "object",
        "properties": {
            "number": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "at_ms": {"type": "integer"},
            "state": {"type": "string", "enum": _STATES},
            **_OUTCOME_FIELDS,
            "reason": {"type": ["string", "null"], "description": "e.g. `discarded.400`"},
            "outcome_reason": {"type": "string", "description": "e.g. `400`, `ETIMEDOUT`"},
        },
    },
    "Delivery": {
        "type": "object",
        "required": [
            "id",
            "event_id",
            "destination",
            "destination_id",
            "state",
            "reason",
            "message",
            "attempt_count",
            "replay",
            "created_at_ms",
            "updated_at_ms",
            "next_attempt_at_ms",
            "completed_at_ms",
            "latency_ms",
            "event",
            "attempts",
        ],
        "properties": {
            "id": {"type": "integer"},
            "event_id": {"type": "integer"},
            "destination": _NULLABLE_STR,
            "destination_id": {"type": "string"},
            "state": {"type": "string", "enum": _STATES},
            "reason": {"type": ["string", "null"], "description": "e.g. `discarded.400`"},
            "message": _NULLABLE_STR,
            "attempt_count": {"type": "integer"},
            "replay": {"type": "boolean"},
            "created_at_ms": {"type": "integer"},
            "updated_at_ms": {"type": "integer"},
            "next_attempt_at_ms": _NULLABLE_INT,
            "completed_at_ms": _NULLABLE_INT,
            "latency_ms": {"type": ["integer", "null"], "description": "ingest to 2xx"},
            "event": {
                "type": ["object", "null"],
                "description": "the stored event (\u201cYou sent\u201d)",
            },
            "attempts": {"type": "array", "items": _ref("Attempt")},
        },
    },
    "Stats": {
        "type": "object",
        "properties": {
            "destination": {"type": "string"},
            "window": {"type": "string"},
            "since_ms": {"type": "integer"},
            "until_ms": {"type": "integer"},
            "bucket_ms": {"type": "integer"},
            **_COUNTS,
            "p50_latency_ms": {"type": ["number", "null"]},
            "p95_latency_ms": {"type": ["number", "null"]},
            "buckets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "start_ms": {"type": "integer"},
                        "succeeded": {"type": "integer"},
                        "discarded": {"type": "integer"},
                        "expired": {"type": "integer"},
                    },
                },
            },
            "reasons": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "reason": {"type": "string"},
                        "state": {"type": "string", "enum": _STATES},
                        "count": {"type": "integer"},
                        "sample": {
                            "type": ["object", "null"],
                            "properties": {
                                "delivery_id": {"type": "integer"},
                                "you_sent": {"type": ["object", "null"]},
                                "request": _ref("SentRequest"),
                                "response": _ref("ReceivedResponse"),
                                "message": _NULLABLE_STR,
                            },
                        },
                    },
                },
            },
        },
    },
    "RetryResult": {
        "type": "object",
        "required": ["retried"],
        "properties": {"retried": {"type": "integer"}},
    },
    "ReplayProgress": {
        "type": "object",
        "properties": {
            **{
                k: {"type": "integer"}
                for k in ("succeeded", "discarded", "expired", "retrying", "pending", "done")
            },
            "complete": {"type": "boolean", "description": "queueing finished, all settled"},
        },
    },
    "Replay": {
        "type": "object",
        "required": [
            "id",
            "source",
            "destination",
            "since",
            "until",
            "since_ms",
            "until_ms",
            "queued",
            "state",
            "error",
            "created_at",
            "created_at_ms",
            "finished_at",
            "finished_at_ms",
        ],
        "properties": {
            "id": {"type": "string"},
            "source": {"type": "string"},
            "destination": {"type": "string"},
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "since_ms": {"type": "integer"},
            "until_ms": {"type": "integer"},
            "queued": {"type": "integer", "description": "deliveries queued so far"},
            "state": {"type": "string", "enum": ["running", "finished", "failed"]},
            "error": _NULLABLE_STR,
            "created_at": {"type": "string", "format": "date-time"},
            "created_at_ms": {"type": "integer"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at_ms": _NULLABLE_INT,
            "progress": _ref("ReplayProgress"),
        },
    },
}


def _crud(kind: str, schema: str, conflict: str) -> dict[str, Any]:
    """``/<kind>s`` and ``/<kind>s/{name}``: list, create, read, update, delete."""
    plural = f"{kind}s"
    return {
        f"/{plural}": {
            "get": {
                "summary": f"List {plural}",
                "responses": {"200": _json(_list_of(plural, schema)), "401": _ERROR},
            },
            "post": {
                "summary": f"Create a{'n' if kind[0] in 'aeiou' else ''} {kind}",
                "requestBody": _body(_ref(f"{schema}Create")),
                "responses": {
                    "201": _json(_ref(schema), "Created"),
                    **_BAD,
                    "409": _ERROR,
                },
            },
        },
        f"/{plural}/{{name}}": {
            "parameters": [_NAME],
            "get": {
                "summary": f"One {kind}",
                "responses": {"200": _json(_ref(schema)), "401": _ERROR, "404": _ERROR},
            },
            "patch": {
                "summary": f"Change a{'n' if kind[0] in 'aeiou' else ''} {kind} (no renaming)",
                "requestBody": _body(_ref(f"{schema}Patch")),
                "responses": {
                    "200": _json(_ref(schema)),
                    **_BAD,
                    "404": _ERROR,
                },
            },
            "delete": {
                "summary": f"Delete a{'n' if kind[0] in 'aeiou' else ''} {kind}{conflict}",
                "responses": {
                    "204": {"description": "Deleted"},
                    "401": _ERROR,
                    "404": _ERROR,
                    **({"409": _ERROR} if conflict else {}),
                },
            },
        },
    }


def _tests(kind: str) -> dict[str, Any]:
    """Send Test Event and the suite for apps and destinations."""
    return {
        f"/{kind}s/{{name}}/test": {
            "parameters": [_NAME],
            "post": {
                "summary": f"Send Test Event: one delivery to the {kind} right away (no queue)",
                "requestBody": _body(_ref("TestRequest")),
                "responses": {
                    "200": _json(_ref("TestResult"), "What segue sent and what came back"),
                    **_BAD,
                    "404": _ERROR,
                },
            },
        },
        f"/{kind}s/{{name}}/test/suite": {
            "parameters": [_NAME],
            "post": {
                "summary": f"Test suite: one sample of every type to the {kind}",
                "requestBody": _body(_ref("SuiteRequest"), required=False),
                "responses": {
                    "200": _json(_list_of("results", "SuiteRow"), "One row per type"),
                    **_BAD,
                    "404": _ERROR,
                },
            },
        },
    }


PATHS: dict[str, Any] = {
    **_crud("app", "App", " (409 while a destination uses it)"),
    **_tests("app"),
    "/settings/key": {
        "post": {
            "summary": "The settings builder's key for a label (`Custom Setting` → "
            "`customSetting`)",
            "requestBody": _body(_ref("SettingKeyRequest")),
            "responses": {"200": _json(_ref("SettingKey")), **_BAD},
        }
    },
    **_crud("destination", "Destination", ""),
    **_tests("destination"),
    "/destinations/{name}/stats": {
        "parameters": [_NAME],
        "get": {
            "summary": "Event Delivery summary: counts, latency, buckets, failure reasons",
            "parameters": [WINDOW],
            "responses": {
                "200": _json(_ref("Stats")),
                **_BAD,
                "404": _ERROR,
            },
        },
    },
    "/deliveries": {
        "get": {
            "summary": "Deliveries, newest first, each with its attempts and event",
            "parameters": [
                {"name": "destination", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "state",
                    "in": "query",
                    "schema": {"type": "string", "enum": _STATES},
                    "description": "given (even empty), one of the states",
                },
                {
                    "name": "reason",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "e.g. `discarded.400`",
                },
                LIMIT,
                CURSOR,
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["deliveries", "next_cursor"],
                        "properties": {
                            "deliveries": {"type": "array", "items": _ref("Delivery")},
                            "next_cursor": _NULLABLE_STR,
                        },
                    }
                ),
                **_BAD,
                "404": _ERROR,
            },
        }
    },
    "/deliveries/{id}": {
        "parameters": [DELIVERY_ID],
        "get": {
            "summary": "One delivery with its attempts and event",
            "responses": {"200": _json(_ref("Delivery")), **_BAD, "404": _ERROR},
        },
    },
    "/deliveries/retry": {
        "post": {
            "summary": "Bulk retry: put discarded/expired deliveries back in the queue",
            "requestBody": _body(_ref("RetryRequest")),
            "responses": {
                "200": _json(_ref("RetryResult")),
                **_BAD,
                "404": _ERROR,
            },
        }
    },
    "/replays": {
        "get": {
            "summary": "Replays, newest first",
            "responses": {"200": _json(_list_of("replays", "Replay")), "401": _ERROR},
        },
        "post": {
            "summary": "Re-send stored events of a time range to one destination",
            "description": 'Replayed events carry `integrations = {"All": false, '
            '"<destination>": true}`.',
            "requestBody": _body(_ref("ReplayCreate")),
            "responses": {
                "202": _json(_ref("Replay"), "Started"),
                **_BAD,
            },
        },
    },
    "/replays/{id}": {
        "parameters": [_REPLAY_ID],
        "get": {
            "summary": "One replay with the progress of its deliveries",
            "responses": {"200": _json(_ref("Replay")), "401": _ERROR, "404": _ERROR},
        },
    },
}
