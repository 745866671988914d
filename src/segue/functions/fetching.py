"""``fetch`` for Python functions: an HTTP request made by segue's process, not the function's.

A function's sandbox has no network. The runtime installs the current call's
``FetchBridge`` in a context variable; ``fetch`` hands the request to it, the worker
forwards it to segue's parent process, and the parent makes it through the egress
guard (see ``segue.functions.proxy``). Outside a worker there is no bridge, so ``fetch``
refuses rather than silently reaching the network unguarded.
"""

from __future__ import annotations

import contextvars
import json as jsonlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from segue.functions.bridge import FetchBridge, FetchFailed, FetchReply, FetchRequest

DEFAULT_TIMEOUT_S = 5.0

current_bridge: contextvars.ContextVar[FetchBridge | None] = contextvars.ContextVar(
    "segue_fetch_bridge", default=None
)


class FetchError(Exception):
    """The request got no response: blocked by the egress guard, refused, timed out…"""


class Headers(Mapping[str, str]):
    """Response headers: names compare case-insensitively; repeated values joined by ", "."""

    def __init__(self, pairs: Iterable[tuple[str, str]] | Iterable[list[str]] = ()) -> None:
        self._pairs: list[tuple[str, str]] = [(str(k), str(v)) for k, v in pairs]
        joined: dict[str, str] = {}
        for name, value in self._pairs:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        self._joined = joined

    def __getitem__(self, name: str) -> str:
        return self._joined[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._joined

    def __iter__(self) -> Iterator[str]:
        return iter(self._joined)

    def __len__(self) -> int:
        return len(self._joined)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in the order received (Set-Cookie, …)."""
        key = name.lower()
        return [value for k, value in self._pairs if k.lower() == key]

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


class FetchResponse:
    """The answer to ``fetch``: like JavaScript's Response (``text()`` and ``json()`` are async)."""

    def __init__(self, reply: FetchReply) -> None:
        self.url: str = reply["url"]
        self.status: int = int(reply["status"])
        self.headers = Headers(reply["headers"])
        self._body: str = reply["body"]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    async def text(self) -> str:
        return self._body

    async def json(self) -> Any:
        return jsonlib.loads(self._body)

    def __repr__(self) -> str:
        return f"<FetchResponse {self.status} {self.url}>"


HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None


def _header_pairs(headers: HeadersArg) -> list[list[str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [[str(name), str(value)] for name, value in items]


def _body_text(body: str | bytes | None) -> str | None:
    if body is None or isinstance(body, str):
        return body
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError("fetch can only send text bodies (bytes must be UTF-8)") from None
    raise TypeError(f"fetch body must be str or bytes, not {type(body).__name__}")


async def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: HeadersArg = None,
    json: Any = None,
    body: str | bytes | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (the API Segment's users know)
) -> FetchResponse:
    """Make an HTTP request through segue's egress guard; raises FetchError if no response.

    ``json`` sends a JSON body (with Content-Type: application/json unless given);
    ``body`` sends text as is. An HTTP error status is a response, not an exception.
    """
    bridge = current_bridge.get()
    if bridge is None:
        raise RuntimeError("fetch is only available inside segue's function workers")
    pairs = _header_pairs(headers)
    text = _body_text(body)
    if json is not None:
        if text is not None:
            raise TypeError("fetch takes json= or body=, not both")
        text = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False)
        if not any(name.lower() == "content-type" for name, _ in pairs):
            pairs.append(["Content-Type", "application/json"])
    request = FetchRequest(
        url=str(url),
        method=str(method).upper(),
        headers=pairs,
        body=text,
        timeout=float(timeout) if timeout is not None else DEFAULT_TIMEOUT_S,
    )
    try:
        reply = await bridge(request)
    except FetchFailed as exc:
        raise FetchError(str(exc)) from None
    return FetchResponse(reply)
