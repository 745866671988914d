"""Checks a request body against the admin API's own OpenAPI schemas.

The handlers validate what they receive with the very schemas the document publishes,
so the two cannot drift apart: whatever the document forbids is a 400 with a message
naming the field, and what it allows reaches the handler. Only the keywords the
document uses are understood (a small subset of JSON Schema 2020-12); ``format`` is
checked for ``date-time`` and ``date``, which segue parses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from segue.spec.timestamps import parse_timestamp

Schema = Mapping[str, Any]

_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}
_WORDS = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "boolean": "true or false",
    "null": "null",
    "number": "a number",
    "integer": "a whole number",
}
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class SchemaError(ValueError):
    """The value breaks the schema; the message names where and how."""


def _where(path: str) -> str:
    return f"`{path}`" if path else "the body"


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", text))


def _format_ok(fmt: str, value: str) -> bool:
    """``date-time`` (RFC 3339) and ``date`` as segue parses them; other formats are
    annotations that the handlers check themselves."""
    shape = {"date-time": _DATE_TIME, "date": _DATE}.get(fmt)
    if shape is None:
        return True
    return shape.fullmatch(value) is not None and parse_timestamp(value) is not None


class Validator:
    """Validates values against the schemas of ``components`` (``#/components/schemas/…``)."""

    def __init__(self, components: Mapping[str, Schema]) -> None:
        self.components = components

    def check(self, value: object, schema: Schema, path: str = "") -> None:
        if "$ref" in schema:
            schema = self.components[str(schema["$ref"]).rsplit("/", 1)[-1]]
        self._check_type(value, schema, path)
        self._check_choices(value, schema, path)
        if isinstance(value, str):
            self._check_string(value, schema, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._check_number(value, schema, path)
        elif isinstance(value, list):
            self._check_array(value, schema, path)
        elif isinstance(value, dict):
            self._check_object(value, schema, path)

    def _check_type(self, value: object, schema: Schema, path: str) -> None:
        wanted = schema.get("type")
        if wanted is None:
            return
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        if not any(_TYPES[name](value) for name in names):
            raise SchemaError(f"{_where(path)} must be {' or '.join(_WORDS[n] for n in names)}")

    def _check_choices(self, value: object, schema: Schema, path: str) -> None:
        if "enum" in schema and not any(_same(value, v) for v in schema["enum"]):
            choices = ", ".join(str(v) for v in schema["enum"])
            raise SchemaError(f"{_where(path)} must be one of {choices}")
        if "const" in schema and not _same(value, schema["const"]):
            raise SchemaError(f"{_where(path)} must be {schema['const']!r}")
        if "not" in schema and self._passes(value, schema["not"], path):
            shown = repr(value) if not isinstance(value, dict | list) else "that"
            raise SchemaError(_custom(schema, path) or f"{_where(path)} cannot be {shown}")
        if "anyOf" in schema:
            errors = [self._error(value, branch, path) for branch in schema["anyOf"]]
            if all(errors):
                raise SchemaError(_custom(schema, path) or str(errors[0]))
        for branch in schema.get("allOf", ()):
            self.check(value, branch, path)

    def _check_string(self, value: str, schema: Schema, path: str) -> None:
        if len(value) < schema.get("minLength", 0):
            raise SchemaError(f"{_where(path)} must not be empty")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaError(f"{_where(path)} is longer than {schema['maxLength']} characters")
        if "pattern" in schema and not _matches(schema["pattern"], value):
            raise SchemaError(
                _custom(schema, path) or f"{_where(path)} must match {schema['pattern']}"
            )
        if "format" in schema and not _format_ok(schema["format"], value):
            raise SchemaError(f"{_where(path)} must be a {schema['format']} (ISO 8601)")

    def _check_number(self, value: float, schema: Schema, path: str) -> None:
        low, high = schema.get("minimum"), schema.get("maximum")
        above = schema.get("exclusiveMinimum")
        if low is not None and value < low:
            raise SchemaError(f"{_where(path)} must be at least {low}")
        if high is not None and value > high:
            raise SchemaError(f"{_where(path)} must be at most {high}")
        if above is not None and value <= above:
            raise SchemaError(f"{_where(path)} must be greater than {above}")

    def _check_array(self, value: list[Any], schema: Schema, path: str) -> None:
        if len(value) < schema.get("minItems", 0):
            raise SchemaError(f"{_where(path)} needs at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaError(f"{_where(path)} takes at most {schema['maxItems']} item(s)")
        if "items" in schema:
            for index, item in enumerate(value):
                self.check(item, schema["items"], f"{path}[{index}]")

    def _check_object(self, value: dict[str, Any], schema: Schema, path: str) -> None:
        properties: Mapping[str, Schema] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if extra is False and (unknown := sorted(set(value) - set(properties))):
            where = f" in {_where(path)}" if path else ""
            raise SchemaError(f"unknown field(s){where}: {', '.join(unknown)}")
        if missing := [k for k in schema.get("required", ()) if k not in value]:
            raise SchemaError(f"`{_join(path, missing[0])}` is required")
        for key, item in value.items():
            if key in properties:
                self.check(item, properties[key], _join(path, key))
            elif isinstance(extra, Mapping):
                self.check(item, extra, _join(path, key))

    def _error(self, value: object, schema: Schema, path: str) -> str | None:
        try:
            self.check(value, schema, path)
        except SchemaError as exc:
            return str(exc)
        return None

    def _passes(self, value: object, schema: Schema, path: str) -> bool:
        return self._error(value, schema, path) is None


def _matches(pattern: str, value: str) -> bool:
    """ECMA-262 semantics: a search, where ``$`` is the very end (not before a newline)."""
    return _pattern(pattern).search(value) is not None


def _custom(schema: Schema, path: str) -> str | None:
    """The schema's own ``x-invalid`` message, after the field's name below the top."""
    message = schema.get("x-invalid")
    if not message:
        return None
    return f"{_where(path)} {message}" if path else str(message)


def _same(value: object, other: object) -> bool:
    return type(value) is type(other) and value == other


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
