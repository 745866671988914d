"""The admin API's OpenAPI 3.1 document, written by hand to stay exact."""

from __future__ import annotations

from functools import cache
from typing import Any

from segue import __version__
from segue.devcenter.openapi_delivery import PATHS as DELIVERY_PATHS
from segue.devcenter.openapi_delivery import SCHEMAS as DELIVERY_SCHEMAS
from segue.devcenter.openapi_requests import CURSOR, LIMIT, REQUEST_SCHEMAS
from segue.devcenter.openapi_requests import ref as _ref


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "Error, with a human-readable message")
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string", "minLength": 1}},
    },
    "Source": {
        "type": "object",
        "required": ["id", "name", "write_key", "kind", "enabled", "rate_limit", "created_at_ms"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "write_key": {"type": "string"},
            "kind": {"type": "string", "enum": ["standard", "stream"]},
            "enabled": {"type": "boolean"},
            "rate_limit": {"type": ["number", "null"], "description": "requests per second"},
            "created_at_ms": {"type": "integer"},
            "event_count": {
                "type": "integer",
                "description": "in list, get and create answers",
            },
        },
    },
    "StoredEvent": {
        "type": "object",
        "required": [
            "id",
            "source_id",
            "type",
            "message_id",
            "user_id",
            "anonymous_id",
            "received_at_ms",
            "event",
        ],
        "properties": {
            "id": {"type": "integer"},
            "source_id": {"type": "string"},
            "type": {"type": "string"},
            "message_id": {"type": "string"},
            "user_id": {"type": ["string", "null"]},
            "anonymous_id": {"type": ["string", "null"]},
            "received_at_ms": {"type": "integer"},
            "event": {"type": "object", "description": "the normalised Segment message"},
        },
    },
}


_SOURCE_PATHS: dict[str, Any] = {
    "/sources": {
        "get": {
            "summary": "List sources with their event counts",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["sources"],
                        "properties": {"sources": {"type": "array", "items": _ref("Source")}},
                    }
                ),
                "401": _ERROR,
            },
        },
        "post": {
            "summary": "Create a source",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("SourceCreate")}},
            },
            "responses": {
                "201": _json(_ref("Source"), "Created"),
                "400": _ERROR,
                "401": _ERROR,
                "409": _ERROR,
            },
        },
    },
    "/sources/{name}": {
        "parameters": [_NAME],
        "get": {
            "summary": "One source",
            "responses": {"200": _json(_ref("Source")), "401": _ERROR, "404": _ERROR},
        },
        "patch": {
            "summary": "Enable or disable, rotate the write key, set the rate limit",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("SourcePatch")}},
            },
            "responses": {
                "200": _json(_ref("Source")),
                "400": _ERROR,
                "401": _ERROR,
                "404": _ERROR,
                "409": _ERROR,
            },
        },
        "delete": {
            "summary": "Delete a source (its stored events stay)",
            "responses": {"204": {"description": "Deleted"}, "401": _ERROR, "404": _ERROR},
        },
    },
    "/events": {
        "get": {
            "summary": "Stored, normalised events, newest first",
            "parameters": [
                {"name": "source", "in": "query", "schema": {"type": "string"}},
                {"name": "user_id", "in": "query", "schema": {"type": "string"}},
                {"name": "type", "in": "query", "schema": {"type": "string"}},
                LIMIT,
                CURSOR,
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["events", "next_cursor"],
                        "properties": {
                            "events": {"type": "array", "items": _ref("StoredEvent")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    }
                ),
                "400": _ERROR,
                "401": _ERROR,
                "404": _ERROR,
            },
        }
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "segue admin API",
            "version": __version__,
            "description": "Manage sources, apps and destinations; read stored events and "
            "every delivery attempt; send test events, retry and replay. "
            "Every call needs `Authorization: Bearer <admin token>`. "
            "Sensitive setting values are never returned: they show as `••••••`. "
            "Every error is JSON with a `message`: 400 for a body, field or query parameter "
            "this document does not allow (or a rule it states in words), 401 without the "
            "token, 404 for an unknown object or path, 405 (with `Allow`) for a method a "
            "path does not have, 409 for a name or key already taken.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"adminToken": []}],
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {**_SCHEMAS, **REQUEST_SCHEMAS, **DELIVERY_SCHEMAS},
            "responses": {
                "MethodNotAllowed": {
                    "description": "The path has no such method; `Allow` lists those it has",
                    "headers": {"Allow": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
            },
        },
        "paths": {**_SOURCE_PATHS, **DELIVERY_PATHS},
    }
