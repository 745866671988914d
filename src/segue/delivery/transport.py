"""Transport: the one place HTTP requests leave segue (aiohttp, guarded), and a fake.

Workers and Send Test Event speak to a Transport, so tests can swap in a fake that
answers from a script, and the real one is shared: one session, keep-alive, guard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import aiohttp

from segue.delivery.egress import EgressBlockedError, EgressPolicy, blocked_cause, guarded_session
from segue.delivery.policy import FailureKind

if TYPE_CHECKING:
    from segue.delivery.webhook import WebhookRequest, WebhookResponse

MAX_RESPONSE_BYTES = 64 * 1024


class TransportError(Exception):
    """No HTTP answer: the kind says why (timeout, refused, blocked…)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Transport(Protocol):
    async def post(
        self, request: WebhookRequest, *, timeout_s: float, allow_http: bool = False
    ) -> WebhookResponse:
        """POST; ``allow_http`` lets one destination use plain http when the policy does not."""

    async def close(self) -> None: ...


class HTTPTransport:
    """aiohttp with the egress guard; the session is made lazily inside the loop.

    No shared connection limit by default (``connection_limit=0``): a pool-wide cap would
    let one hanging destination hold every connection. Each destination's concurrency,
    and the worker's ``max_in_flight``, bound the requests in flight instead.
    """

    def __init__(self, policy: EgressPolicy, *, connection_limit: int = 0) -> None:
        self.policy = policy
        self._limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = guarded_session(
                self.policy, limit=self._limit, skip_auto_headers=("Accept-Encoding",)
            )
        return self._session

    async def post(
        self, request: WebhookRequest, *, timeout_s: float, allow_http: bool = False
    ) -> WebhookResponse:
        from segue.delivery.webhook import WebhookResponse

        try:
            url = self.policy.check_url(request.url, allow_http=allow_http)
        except EgressBlockedError as exc:
            raise TransportError(FailureKind.BLOCKED, str(exc)) from None
        except (ValueError, UnicodeError) as exc:
            raise TransportError(FailureKind.INVALID_SETTINGS, f"invalid URL: {exc}") from None
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self.session().post(
                url,
                data=request.body,
                headers=list(request.headers),
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                body = await read_capped(response, MAX_RESPONSE_BYTES)
                return WebhookResponse(
                    status=response.status,
                    headers=tuple((str(k), str(v)) for k, v in response.headers.items()),
                    body=body,
                )
        except TimeoutError:
            raise TransportError(
                FailureKind.TIMEOUT, f"no response within {timeout_s:g} s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            blocked = blocked_cause(exc)
            if blocked is not None:
                raise TransportError(FailureKind.BLOCKED, str(blocked)) from None
            raise TransportError(_connector_kind(exc), str(exc)) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise TransportError(
                FailureKind.CONNECTION_RESET, str(exc) or "connection reset"
            ) from None
        except aiohttp.InvalidURL as exc:
            raise TransportError(FailureKind.INVALID_SETTINGS, f"invalid URL: {exc}") from None
        except aiohttp.ClientError as exc:
            raise TransportError(
                FailureKind.CONNECTION_RESET, f"{type(exc).__name__}: {exc}"
            ) from None
        except (ValueError, UnicodeError) as exc:  # a request the client refuses to make
            raise TransportError(
                FailureKind.INVALID_SETTINGS, f"the request cannot be sent: {exc}"
            ) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body up to ``cap`` bytes, however many chunks it arrives in."""
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        chunk = await response.content.read(cap - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _connector_kind(exc: aiohttp.ClientConnectorError) -> FailureKind:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FailureKind.DNS
    if isinstance(exc.os_error, ConnectionRefusedError):
        return FailureKind.CONNECTION_REFUSED
    return FailureKind.UNREACHABLE


Responder = Callable[["WebhookRequest"], Awaitable["WebhookResponse"]]


class FakeTransport:
    """Answers with a function of the request; records every request it saw."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: list[WebhookRequest] = []

    async def post(
        self, request: WebhookRequest, *, timeout_s: float, allow_http: bool = False
    ) -> WebhookResponse:
        self.requests.append(request)
        try:
            return await asyncio.wait_for(self.responder(request), timeout_s)
        except TimeoutError:
            raise TransportError(
                FailureKind.TIMEOUT, f"no response within {timeout_s:g} s"
            ) from None

    async def close(self) -> None:
        return None
