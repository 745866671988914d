"""What a destination's endpoint URL may be: checked when it is saved, again before a send.

A URL that the HTTP client cannot use must be refused with a message that says how to
fix it, never raised from the middle of a delivery. Internationalised host names are
converted to their ASCII (IDNA) form, so the URL that is stored is the one that is sent.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from yarl import URL

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")  # controls and spaces: no client sends them
MAX_URL_LENGTH = 2048


class EndpointError(ValueError):
    """The endpoint URL cannot be used; the message says why and how to fix it."""


@functools.lru_cache(maxsize=1024)
def normalized_endpoint(url: str) -> str:
    """``url`` in the form that is stored and sent (ASCII host), or EndpointError."""
    if not isinstance(url, str) or not url.strip():
        raise EndpointError("the endpoint must be an http(s) URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise EndpointError(f"the endpoint URL is longer than {MAX_URL_LENGTH} characters")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("http", "https"):
        raise EndpointError(
            f"the endpoint must be an http(s) URL such as https://api.example.com/segment,"
            f" not {url[:100]!r}"
        )
    if _FORBIDDEN.search(url):
        raise EndpointError(
            "the endpoint URL contains a space or a control character: percent-encode it"
        )
    try:
        parsed = URL(url)
        port = parsed.port
        raw_host = parsed.raw_host
    except (ValueError, UnicodeError) as exc:
        raise EndpointError(f"the endpoint is not a valid URL: {exc}") from None
    if parsed.user is not None or parsed.password is not None:
        raise EndpointError(
            "the endpoint URL must not carry credentials (user:password@): segue sends the "
            "destination's apiKey setting as Basic auth; put the credential there"
        )
    if not raw_host:
        raise EndpointError(f"the endpoint URL {url!r} has no host")
    if port is not None and not 0 < port < 65536:
        raise EndpointError(f"the endpoint's port {port} is not between 1 and 65535")
    _check_host(raw_host)
    return str(parsed)


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return
    name = host.rstrip(".")
    if len(name) > 253 or not name:
        raise EndpointError(f"the endpoint's host {host!r} is not a valid host name")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise EndpointError(
                f"the endpoint's host {host!r} is not a valid host name"
                " (letters, digits and hyphens, in labels of at most 63 characters)"
            )
