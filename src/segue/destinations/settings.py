"""The settings builder: the fields an app asks its users for, and their validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

API_KEY = "apiKey"
MASK = "••••••"
_WORD = re.compile(r"[A-Za-z0-9]+")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SettingsError(ValueError):
    """Setting values or a settings schema that do not hold."""


def key_from_label(label: str) -> str:
    """The settings builder's generated key: ``"Custom Setting"`` → ``"customSetting"``.

    ``"API Key"`` → ``"apiKey"``; ``"publishable API key"`` → ``"publishableApiKey"``.
    """
    words: list[str] = _WORD.findall(label)
    if not words:
        raise SettingsError(f"cannot make a key from the label {label!r}")
    first, rest = words[0].lower(), [w[:1].upper() + w[1:].lower() for w in words[1:]]
    key = first + "".join(rest)
    return key if not key[0].isdigit() else "_" + key


@dataclass(frozen=True, slots=True)
class SettingField:
    label: str
    key: str
    description: str = ""
    required: bool = False
    sensitive: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "key": self.key,
            "description": self.description,
            "required": self.required,
            "sensitive": self.sensitive,
        }


API_KEY_FIELD = SettingField(label="API Key", key=API_KEY, sensitive=True)


def parse_fields(raw: object) -> tuple[SettingField, ...]:
    """Validate a settings schema; the API key field is always there (first)."""
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise SettingsError(
            "`settings` must be a list of {label, key, description, required, sensitive}"
        )
    fields: list[SettingField] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise SettingsError(f"setting #{index + 1} must be an object")
        unknown = set(item) - {"label", "key", "description", "required", "sensitive"}
        if unknown:
            raise SettingsError(
                f"setting #{index + 1}: unknown field(s) {', '.join(sorted(unknown))}"
            )
        label = item.get("label")
        if not isinstance(label, str) or not label.strip():
            raise SettingsError(f"setting #{index + 1} needs a `label`")
        key = item.get("key") or key_from_label(label)
        if not isinstance(key, str) or not _KEY.match(key):
            raise SettingsError(f"setting {label!r}: `key` must be letters, digits and _")
        for flag in ("required", "sensitive"):
            if not isinstance(item.get(flag, False), bool):
                raise SettingsError(f"setting {label!r}: `{flag}` must be true or false")
        description = item.get("description", "")
        if not isinstance(description, str):
            raise SettingsError(f"setting {label!r}: `description` must be text")
        fields.append(
            SettingField(
                label=label.strip(),
                key=key,
                description=description,
                required=item.get("required", False),
                # the API key travels in Authorization: it is always a secret
                sensitive=item.get("sensitive", False) or key == API_KEY,
            )
        )
    keys = [f.key for f in fields]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise SettingsError(f"two settings have the key {duplicates[0]!r}")
    if API_KEY not in keys:
        fields.insert(0, API_KEY_FIELD)
    return tuple(fields)


def check_values(
    fields: tuple[SettingField, ...], values: object, *, strict: bool
) -> dict[str, Any]:
    """Setting values against a schema: required ones present, (strict) no unknown keys."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise SettingsError("`settings` must be an object of setting values")
    by_key = {f.key: f for f in fields}
    if strict:
        unknown = sorted(set(values) - set(by_key))
        if unknown:
            raise SettingsError(
                f"unknown setting(s) {', '.join(unknown)}; the app defines {', '.join(by_key)}"
            )
    for key, value in values.items():
        if isinstance(value, dict) and "$secret" in value:
            raise SettingsError(f"setting {key!r}: `$secret` is reserved for encrypted values")
    missing = [f.label for f in fields if f.required and values.get(f.key) in (None, "")]
    if missing:
        raise SettingsError(f"missing required setting(s): {', '.join(missing)}")
    return dict(values)


def sensitive_keys(fields: tuple[SettingField, ...]) -> frozenset[str]:
    return frozenset(f.key for f in fields if f.sensitive)


def masked(values: dict[str, Any], sensitive: frozenset[str]) -> dict[str, Any]:
    """For API responses and logs: sensitive values never leave segue."""
    return {k: (MASK if k in sensitive and v not in (None, "") else v) for k, v in values.items()}
