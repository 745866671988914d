"""The Segment Spec as pure functions: message types, validation, normalisation, samples."""

from __future__ import annotations

from segue.spec.codes import Rejection, RejectionCode
from segue.spec.messages import DELIVERABLE_TYPES, MESSAGE_TYPES, validate
from segue.spec.normalize import IngestContext, infer_channel, normalize
from segue.spec.samples import SAMPLE_TYPES, sample
from segue.spec.timestamps import corrected_timestamp, format_timestamp, parse_timestamp

__all__ = [
    "DELIVERABLE_TYPES",
    "MESSAGE_TYPES",
    "SAMPLE_TYPES",
    "IngestContext",
    "Rejection",
    "RejectionCode",
    "corrected_timestamp",
    "format_timestamp",
    "infer_channel",
    "normalize",
    "parse_timestamp",
    "sample",
    "validate",
]
