"""Durable state behind the ``Store`` protocol: SQLite (embedded) and PostgreSQL."""

from segue.store.availability import StoreHealth, StoreUnavailableError, UnavailableReason
from segue.store.claims import ClaimQuotas
from segue.store.protocol import SourceExistsError, Store
from segue.store.records import (
    FINAL_STATES,
    Attempt,
    ClaimedDelivery,
    Delivery,
    DeliveryQuery,
    DeliveryState,
    DeliveryStats,
    EventQuery,
    NewEvent,
    RetryFilter,
    Settlement,
    Source,
    SourceKind,
    StoredEvent,
)

__all__ = [
    "FINAL_STATES",
    "Attempt",
    "ClaimQuotas",
    "ClaimedDelivery",
    "Delivery",
    "DeliveryQuery",
    "DeliveryState",
    "DeliveryStats",
    "EventQuery",
    "NewEvent",
    "RetryFilter",
    "Settlement",
    "Source",
    "SourceExistsError",
    "SourceKind",
    "Store",
    "StoreHealth",
    "StoreUnavailableError",
    "StoredEvent",
    "UnavailableReason",
]
