"""The fair share of one claim among the destinations with due work (pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from segue.store.claims import ClaimQuotas, allot


def test_one_destination_takes_what_its_quota_allows() -> None:
    assert allot(["a"], 100, ClaimQuotas({"a": 64})) == [("a", 64)]
    assert allot(["a"], 10, ClaimQuotas({"a": 64})) == [("a", 10)]
    assert allot(["a"], 10) == [("a", 10)]  # no quotas: the limit only


def test_a_destination_at_its_quota_gets_nothing_and_leaves_room_to_others() -> None:
    quotas = ClaimQuotas({"hanging": 0, "healthy": 64})
    assert allot(["hanging", "healthy"], 256, quotas) == [("healthy", 64)]
    assert allot(["hanging"], 256, quotas) == []


def test_a_backlog_cannot_take_the_share_of_another() -> None:
    quotas = ClaimQuotas(default=None)
    # two unbounded queues share a small claim equally
    assert dict(allot(["big", "small"], 10, quotas)) == {"big": 5, "small": 5}
    # a small need is met in full, the rest goes to the big one
    quotas = ClaimQuotas({"small": 2})
    assert dict(allot(["big", "small"], 10, quotas)) == {"big": 8, "small": 2}


def test_unknown_destinations_get_the_default_quota() -> None:
    assert allot(["gone"], 100, ClaimQuotas({}, default=7)) == [("gone", 7)]


def test_an_uneven_split_rotates_after_the_last_served() -> None:
    three = ["a", "b", "c"]
    assert dict(allot(three, 4, ClaimQuotas(start_after="a"))) == {"a": 1, "b": 2, "c": 1}
    assert dict(allot(three, 4, ClaimQuotas(start_after="b"))) == {"a": 1, "b": 1, "c": 2}
    assert dict(allot(three, 4, ClaimQuotas(start_after="c"))) == {"a": 2, "b": 1, "c": 1}


def test_nothing_to_claim() -> None:
    assert allot([], 10) == []
    assert allot(["a"], 0) == []


names = st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8)
room = st.one_of(st.none(), st.integers(min_value=-3, max_value=50))


@settings(max_examples=300, deadline=None)
@given(names, st.integers(0, 300), st.dictionaries(st.sampled_from("abcdefgh"), room), room)
def test_the_allotment_is_max_min_fair(
    due: list[str], limit: int, per: dict[str, int | None], default: int | None
) -> None:
    quotas = ClaimQuotas({k: v for k, v in per.items() if v is not None}, default=default)
    given_ = dict(allot(due, limit, quotas))
    assert set(given_) <= set(due)
    assert sum(given_.values()) <= max(0, limit)
    for name, count in given_.items():
        quota = quotas.quota(name)
        assert count > 0 and (quota is None or count <= quota)
    wants = {n: quotas.quota(n) for n in due if quotas.quota(n) != 0}
    if sum(given_.values()) < limit:  # room left: everyone got all it may take
        assert all(w is not None and given_.get(n, 0) == w for n, w in wants.items())
    else:  # the limit binds: nobody below its quota has less than another minus one
        starved = [n for n, w in wants.items() if w is None or given_.get(n, 0) < w]
        for n in starved:
            assert all(given_.get(n, 0) >= c - 1 for c in given_.values())
