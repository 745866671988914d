"""How one claim shares a worker among the destinations that have due work.

The queue is one table, but a claim reads it as one queue per destination (the idea of
Segment's Centrifuge): each destination with due work gets a share of the claim, never
more than its own quota (what its concurrency leaves free), so that a destination with a
million-event backlog, or one whose endpoint hangs, cannot take the room of another.
Pure logic: both backends call :func:`allot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ClaimQuotas:
    """How many deliveries a claim may lease per destination.

    ``per_destination`` names the room of the destinations the worker knows; the others
    (a destination removed while its deliveries waited) get ``default`` (None: no
    limit of their own). ``start_after`` rotates who is served first when the claim's
    limit is too small for everyone: pass the last destination served.
    """

    per_destination: Mapping[str, int] = field(default_factory=dict)
    default: int | None = None
    start_after: str = ""

    def quota(self, destination_id: str) -> int | None:
        room = self.per_destination.get(destination_id, self.default)
        return None if room is None else max(0, room)


def allot(
    destinations: Iterable[str], limit: int, quotas: ClaimQuotas | None = None
) -> list[tuple[str, int]]:
    """(destination, how many to lease) for the destinations with due work, max-min fair.

    Every destination gets as much as it may take while the claim's ``limit`` allows;
    when it does not, the limit is shared equally (water-filling), and what is left of
    an uneven split goes to the destinations after ``start_after`` first.
    """
    quotas = quotas or ClaimQuotas()
    ordered = sorted(set(destinations))
    pivot = next((i for i, d in enumerate(ordered) if d > quotas.start_after), 0)
    ordered = ordered[pivot:] + ordered[:pivot]
    wanted = {d: quotas.quota(d) for d in ordered}
    active = [d for d in ordered if wanted[d] != 0]
    if limit <= 0 or not active:
        return []
    given = dict.fromkeys(active, 0)
    remaining = limit
    # Water-filling: the smallest quotas are met in full while they fit an equal share;
    # the others split what is left equally, the remainder going first in rotation order.
    open_ = sorted(active, key=lambda d: (wanted[d] is None, wanted[d] or 0))
    while open_:
        share = remaining // len(open_)
        quota = wanted[open_[0]]
        if quota is not None and quota <= share:
            given[open_[0]] = quota
            remaining -= quota
            open_.pop(0)
            continue
        extra = remaining - share * len(open_)
        for destination in (d for d in active if d in open_):  # rotation order
            given[destination] = share + (1 if extra > 0 else 0)
            extra -= 1
        break
    return [(d, given[d]) for d in active if given[d] > 0]
