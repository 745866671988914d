"""A tiny CRM that receives Segment events, built with segue.partner.

identify stores a contact (email required), track counts events per user, delete
forgets the user. Other call types answer 501, as the seeds ask. Run it with
``python examples/partner_endpoint.py --port 9000``; the API key your users enter
in Segment (or segue) is CRM_API_KEY, default ``segment``.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from typing import Any

from segue.partner import Context, Destination, InvalidEventPayload

API_KEY = os.environ.get("CRM_API_KEY", "segment")

contacts: dict[str, dict[str, Any]] = {}  # user → traits
tracks: Counter[str] = Counter()  # user → number of track calls

dest = Destination(api_key_check=lambda key: key == API_KEY)


def user_of(event: dict[str, Any]) -> str:
    user = event.get("userId") or event.get("anonymousId")  # any casing works
    if not user:
        raise InvalidEventPayload("Missing userId or anonymousId")
    return str(user)


@dest.identify
async def identify(event: dict[str, Any], context: Context) -> dict[str, str]:
    traits = event.get("traits") or {}
    if not traits.get("email"):
        raise InvalidEventPayload("Missing email address")
    user = user_of(event)
    contacts[user] = {**contacts.get(user, {}), **traits}
    return {"contact": user}


@dest.track
async def track(event: dict[str, Any], context: Context) -> None:
    tracks[user_of(event)] += 1


@dest.delete
async def delete(event: dict[str, Any], context: Context) -> None:
    user = user_of(event)
    contacts.pop(user, None)
    tracks.pop(user, None)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(dest, host=args.host, port=args.port)
