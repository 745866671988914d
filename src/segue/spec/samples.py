"""Realistic, fully normalised sample events (``segue sample TYPE``, the Event Tester).

Each sample is built the way a real SDK would send it, then run through
``normalize``, so samples always show exactly what segue delivers.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from segue.spec.normalize import IngestContext, normalize
from segue.spec.timestamps import format_timestamp

SAMPLE_TYPES: tuple[str, ...] = ("identify", "track", "page", "screen", "group", "alias", "delete")

SAMPLE_SOURCE_ID = "src_2Hb7YkQz9mN4xPq1"

# (first, last, email, plan, company, company id)
_PEOPLE = (
    ("Ada", "Lovelace", "ada@analytical.example", "premium", "Analytical Engines", "grp_ae_1843"),
    ("Grace", "Hopper", "grace@cobol.example", "enterprise", "Compiler Works", "grp_cw_1952"),
    ("Alan", "Turing", "alan@bletchley.example", "starter", "Bletchley Labs", "grp_bl_1936"),
    ("Katherine", "Johnson", "kj@trajectory.example", "premium", "Trajectory Co", "grp_tc_1962"),
)
# (product_id, sku, name, category, price, brand)
_PRODUCTS = (
    ("507f1f77bcf86cd799439011", "G-32", "Monopoly: 3rd Edition", "Games", 19.0, "Hasbro"),
    ("505bd76785ebb509fc183733", "F-32", "Uno Card Game", "Games", 3.0, "Mattel"),
    ("60a3c9e1f1d2b34a5c6e7f80", "P-104", "Wingspan", "Games", 54.99, "Stonemaier"),
    ("61b4dae2a2e3c45b6d7f8091", "B-77", "Catan Expansion Pack", "Games", 24.5, "Kosmos"),
)
_CHROME_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
_SITE = "https://shop.example.com"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _browser_context(rng: random.Random, path: str, title: str) -> dict[str, Any]:
    """What analytics.js (analytics-next) puts in `context` on a desktop Chrome."""
    return {
        "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
        "locale": "en-US",
        "timezone": rng.choice(("Europe/Berlin", "America/New_York", "Asia/Tokyo")),
        "userAgent": _CHROME_UA,
        "userAgentData": {
            "brands": [
                {"brand": "Chromium", "version": "124"},
                {"brand": "Google Chrome", "version": "124"},
            ],
            "mobile": False,
            "platform": "macOS",
        },
        "page": {
            "path": path,
            "referrer": "https://www.google.com/",
            "search": "",
            "title": title,
            "url": _SITE + path,
        },
    }


def _identify(rng: random.Random, person: tuple[str, ...]) -> dict[str, Any]:
    first, last, email, plan, company, _ = person
    return {
        "type": "identify",
        "traits": {
            "email": email,
            "firstName": first,
            "lastName": last,
            "name": f"{first} {last}",
            "plan": plan,
            "logins": rng.randint(1, 40),
            "createdAt": "2023-06-14T09:12:45.000Z",
            "company": {"name": company},
        },
        "context": _browser_context(rng, "/account", "Your account"),
    }


def _track(rng: random.Random, person: tuple[str, ...]) -> dict[str, Any]:
    """An e-commerce v2 "Order Completed" with consistent money arithmetic."""
    products: list[dict[str, Any]] = []
    for position, (pid, sku, name, category, price, brand) in enumerate(
        rng.sample(_PRODUCTS, rng.randint(1, 3)), start=1
    ):
        products.append(
            {
                "product_id": pid,
                "sku": sku,
                "name": name,
                "brand": brand,
                "category": category,
                "price": price,
                "quantity": rng.randint(1, 3),
                "position": position,
                "url": f"{_SITE}/products/{sku.lower()}",
                "image_url": f"{_SITE}/images/{sku.lower()}.jpg",
            }
        )
    subtotal = round(sum(p["price"] * p["quantity"] for p in products), 2)
    discount = 2.5 if subtotal > 20 else 0.0
    tax = round((subtotal - discount) * 0.08, 2)
    shipping = 3.0
    revenue = round(subtotal - discount, 2)
    properties: dict[str, Any] = {
        "checkout_id": f"chk_{rng.getrandbits(48):012x}",
        "order_id": f"ord_{rng.randint(10_000, 99_999)}",
        "affiliation": "Google Store",
        "total": round(revenue + tax + shipping, 2),
        "subtotal": subtotal,
        "revenue": revenue,
        "shipping": shipping,
        "tax": tax,
        "discount": discount,
        "currency": "USD",
        "products": products,
    }
    if discount:
        properties["coupon"] = "SPRING25"
    return {
        "type": "track",
        "event": "Order Completed",
        "properties": properties,
        "context": _browser_context(rng, "/checkout/complete", "Thank you for your order"),
    }


def _page(rng: random.Random, person: tuple[str, ...]) -> dict[str, Any]:
    context = _browser_context(rng, "/pricing", "Pricing | Example Shop")
    context["campaign"] = {
        "name": "spring_sale",
        "source": "newsletter",
        "medium": "email",
        "content": "hero_button",
    }
    return {
        "type": "page",
        "name": "Pricing",
        "category": "Marketing",
        "properties": {**context["page"], "search": "?utm_source=newsletter"},
        "context": context,
    }


def _screen(rng: random.Random, person: tuple[str, ...]) -> dict[str, Any]:
    """analytics-swift on an iPhone; Segment records the request IP for mobile too."""
    sku = rng.choice(_PRODUCTS)
    return {
        "type": "screen",
        "name": "Product Detail",
        "properties": {"product_id": sku[0], "name": sku[2]},
        "context": {
            "library": {"name": "analytics-swift", "version": "1.5.11"},
            "app": {
                "name": "Example Shop",
                "version": "3.4.0",
                "build": "3400",
                "namespace": "com.example.shop",
            },
            "device": {
                "id": _uuid(rng).upper(),
                "manufacturer": "Apple",
                "model": "iPhone15,2",
                "name": "iPhone",
                "type": "ios",
                "adTrackingEnabled": False,
            },
            "os": {"name": "iOS", "version": "17.4.1"},
            "network": {"wifi": True, "cellular": False, "bluetooth": False, "carrier": "T-Mobile"},
            "screen": {"width": 393, "height": 852, "density": 3},
            "locale": "en-US",
            "timezone": "America/Los_Angeles",
            "ip": f"198.51.100.{rng.randint(2, 254)}",
        },
    }


def _group(rng: random.Random, person: tuple[str, ...]) -> dict[str, Any]:
    *_, company, group_id = person
    return {
        "type": "group",
        "groupId": group_id,
        "traits": {
            "name": company,
            "industry": "Technology",
            "employees": rng.choice((12, 80, 450, 2300)),
            "plan": person[3],
            "website": f"https://{company.lower().replace(' ', '')}.example",
        },
        "context": _browser_context(rng, "/settings/team", "Team settings"),
    }


def _alias(rng: random.Random, person: tuple[str, ...]) -> dict[str, Any]:
    """Sent from a backend with analytics-python, linking the pre-signup anonymous id."""
    return {
        "type": "alias",
        "previousId": _uuid(rng),
        "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
        "integrations": {},
    }


def _delete(rng: random.Random, person: tuple[str, ...]) -> dict[str, Any]:
    """The federated user-deletion message partners receive (segue-generated)."""
    return {
        "type": "delete",
        "channel": "server",
        "messageId": "delete-" + _uuid(rng),
        "context": {},
        "integrations": {},
    }


_BUILDERS = {
    "identify": _identify,
    "track": _track,
    "page": _page,
    "screen": _screen,
    "group": _group,
    "alias": _alias,
    "delete": _delete,
}


def sample(type: str, *, now: datetime | None = None, seed: int | None = None) -> dict[str, Any]:
    """A realistic normalised event of ``type``; equal ``seed`` and ``now`` give equal events."""
    builder = _BUILDERS.get(type)
    if builder is None:
        raise ValueError(f"unknown sample type {type!r}; expected one of {', '.join(SAMPLE_TYPES)}")
    rng = random.Random(seed)
    received_at = datetime.now(UTC) if now is None else now
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    person = rng.choice(_PEOPLE)
    user_id = f"{rng.getrandbits(52):013x}"
    raw = builder(rng, person)
    raw["userId"] = user_id
    ctx = IngestContext(source_id=SAMPLE_SOURCE_ID, received_at=received_at)

    if type == "delete":
        raw["sentAt"] = format_timestamp(received_at - timedelta(milliseconds=rng.randint(5, 50)))
        return normalize(raw, ctx)

    if type != "alias":
        raw["anonymousId"] = _uuid(rng)
    if type in ("identify", "track", "page", "group"):
        raw["messageId"] = f"ajs-next-{rng.getrandbits(128):032x}"
        ctx = IngestContext(
            source_id=SAMPLE_SOURCE_ID,
            received_at=received_at,
            client_ip=f"203.0.113.{rng.randint(2, 254)}",
        )
    else:
        raw["messageId"] = _uuid(rng)
    # The client's clock is off by a few seconds; the event waited in its queue
    # before being sent, then spent a little time on the network.
    skew = timedelta(milliseconds=rng.randint(-4000, 4000))
    queued = timedelta(milliseconds=rng.randint(20, 1500))
    network = timedelta(milliseconds=rng.randint(30, 400))
    raw["timestamp"] = format_timestamp(received_at + skew - network - queued)
    raw["sentAt"] = format_timestamp(received_at + skew - network)
    event = normalize(raw, ctx)
    event["version"] = 2
    return event
