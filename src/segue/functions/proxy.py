"""The parent side of a function's ``fetch``: the request leaves through the egress guard.

Functions never touch the network themselves (their sandbox has none): the worker
hands each fetch to segue's process, which makes it with the same guarded aiohttp
session as webhooks, so a function can reach no address a webhook could not.
"""

from __future__ import annotations

import aiohttp

from segue.delivery.egress import EgressBlockedError, blocked_cause
from segue.delivery.transport import HTTPTransport, read_capped
from segue.functions.bridge import FetchFailed, FetchReply, FetchRequest

MAX_FETCH_BODY = 4 * 1024 * 1024
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class FetchProxy:
    def __init__(self, transport: HTTPTransport) -> None:
        self.transport = transport

    async def __call__(self, request: FetchRequest) -> FetchReply:
        url, method = request["url"], request["method"].upper()
        if method not in _METHODS:
            raise FetchFailed(f"request to {url} failed, reason: unsupported method {method}")
        try:
            checked = self.transport.policy.check_url(url)
        except EgressBlockedError as exc:
            raise FetchFailed(f"request to {url} failed, reason: {exc}") from None
        body = request["body"].encode() if request["body"] is not None else None
        timeout = aiohttp.ClientTimeout(total=max(0.1, float(request["timeout"])))
        try:
            async with self.transport.session().request(
                method,
                checked,
                headers=[(k, v) for k, v in request["headers"]],
                data=body,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                data = await read_capped(response, MAX_FETCH_BODY)
                return FetchReply(
                    url=str(response.url),
                    status=response.status,
                    headers=[[str(k), str(v)] for k, v in response.headers.items()],
                    body=data.decode(response.charset or "utf-8", "replace"),
                )
        except TimeoutError:
            raise FetchFailed(f"request to {url} failed, reason: timed out") from None
        except aiohttp.ClientError as exc:
            blocked = blocked_cause(exc)
            reason = str(blocked) if blocked is not None else (str(exc) or type(exc).__name__)
            raise FetchFailed(f"request to {url} failed, reason: {reason}") from None
