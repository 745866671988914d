"""The connection budget: who is closed when a process is at its connection cap."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from segue.config import ConfigError, parse_config
from segue.connection_budget import ConnectionBudget, connection_limit


@dataclass(eq=False)
class FakeConnection:
    name: str
    budget: ConnectionBudget
    busy: bool = False
    was_shed: bool = False

    def sheddable(self) -> bool:
        return not self.busy

    def shed(self) -> None:
        self.was_shed = True
        self.budget.closed(self)  # what connection_lost does


def _open(budget: ConnectionBudget, *names: str) -> list[FakeConnection]:
    conns = [FakeConnection(name, budget) for name in names]
    for conn in conns:
        budget.opened(conn)
    return conns


def test_under_the_limit_nobody_is_closed() -> None:
    budget = ConnectionBudget(3)
    conns = _open(budget, "a", "b", "c")
    assert len(budget) == 3
    assert not any(c.was_shed for c in conns)


def test_at_the_limit_the_longest_unproductive_connection_goes() -> None:
    budget = ConnectionBudget(3)
    a, b, c = _open(budget, "a", "b", "c")
    budget.touched(a)  # a just did something: b is now the oldest
    (d,) = _open(budget, "d")
    assert b.was_shed and not (a.was_shed or c.was_shed or d.was_shed)
    assert len(budget) == 3 and budget.shed_total == 1


def test_a_connection_being_answered_is_never_closed() -> None:
    budget = ConnectionBudget(2)
    a, b = _open(budget, "a", "b")
    a.busy = True
    (c,) = _open(budget, "c")
    assert b.was_shed and not a.was_shed and not c.was_shed
    a.busy = False
    budget.touched(a)  # its response is done: idle from now on
    (d,) = _open(budget, "d")
    assert [x.was_shed for x in (a, c, d)] == [False, True, False]


def test_when_everyone_is_busy_the_newcomer_is_closed() -> None:
    budget = ConnectionBudget(2)
    a, b = _open(budget, "a", "b")
    a.busy = b.busy = True
    (c,) = _open(budget, "c")
    assert c.was_shed and not a.was_shed and not b.was_shed
    assert len(budget) == 2


def test_closed_connections_leave_the_budget() -> None:
    budget = ConnectionBudget(2)
    a, b = _open(budget, "a", "b")
    budget.closed(a)
    budget.touched(a)  # a late callback of a closed connection changes nothing
    (c,) = _open(budget, "c")
    assert not b.was_shed and not c.was_shed and len(budget) == 2


def test_the_limit_leaves_room_for_other_files() -> None:
    assert connection_limit(0, 1024) == 768  # a quarter kept for the database, logs, calls
    assert connection_limit(0, 256) == 128  # at least 128 kept
    assert connection_limit(0, 65536) == 49152
    assert connection_limit(500, 1024) == 500
    assert connection_limit(5000, 1024) == 768  # a configured value that does not fit


def test_server_limits_in_the_config_file() -> None:
    config = parse_config(
        {
            "server": {
                "header_timeout": 2.5,
                "body_timeout": 4,
                "max_header_size": 16384,
                "max_headers": 50,
                "max_connections": 900,
            }
        }
    )
    assert (config.header_timeout_s, config.body_timeout_s) == (2.5, 4)
    assert (config.max_header_bytes, config.max_headers, config.max_connections) == (
        16384,
        50,
        900,
    )
    defaults = parse_config({})
    assert (defaults.header_timeout_s, defaults.body_timeout_s) == (10.0, 10.0)
    assert (defaults.max_header_bytes, defaults.max_headers) == (65536, 100)
    assert defaults.max_connections == 0


@pytest.mark.parametrize(
    "server",
    [
        {"header_timeout": 0},
        {"body_timeout": -1},
        {"header_timeout": "5"},
        {"body_timeout": True},
        {"max_header_size": 100},
        {"max_headers": 0},
        {"max_connections": -1},
    ],
)
def test_bad_server_limits_are_refused(server: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        parse_config({"server": server})
