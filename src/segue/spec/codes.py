"""Segment's ingest rejection codes, so clients see the errors they already handle."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RejectionCode(enum.StrEnum):
    """Why an incoming message (or request) was refused; values are Segment's wire codes."""

    EMPTY_BATCH = "empty_batch"
    MULTI_USER_ERROR = "multi_user_error"
    NO_USER_ANON_ID = "no_user_anon_id"
    ID_NOT_STRING = "id_not_string"
    EVENT_NOT_DEFINED = "event_not_defined"
    EVENT_NOT_STRING = "event_not_string"
    PROPERTIES_NOT_OBJECT = "properties_not_object"
    TRAITS_NOT_OBJECT = "traits_not_object"
    NAME_NOT_STRING = "name_not_string"
    CATEGORY_NOT_STRING = "category_not_string"
    SOURCE_DISABLED = "source_disabled"
    BAD_REQUEST = "bad_request"
    UNKNOWN_SOURCE = "unknown_source"
    RATE_LIMITED = "rate_limited"  # segue's own, answered with HTTP 429


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refusal: a machine code plus a sentence a developer can act on."""

    code: RejectionCode
    message: str
