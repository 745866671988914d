"""The admin API (``/api/v1``) over real sockets: auth, sources CRUD, events, OpenAPI."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.support.server import ADMIN_TOKEN, WRITE_KEY, SegueProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegueProcess]:
    process = SegueProcess(tmp_path_factory.mktemp("admin-api") / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def admin(server: SegueProcess) -> Iterator[httpx.Client]:
    with server.admin() as http:
        yield http


@pytest.fixture(scope="module")
def tracking(server: SegueProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_message(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["message"]
    assert isinstance(message, str)
    assert message
    return message


def create_source(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = admin.post("/sources", json={"name": unique("src"), **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def track(tracking: httpx.Client, key: str, **fields: Any) -> httpx.Response:
    body = {"userId": "u1", "event": "Order Completed", **fields}
    return tracking.post("/v1/track", json=body, auth=(key, ""))


# -- auth ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong", "longer", "basic-scheme", "no-scheme", "bearer-no-token"],
)
@pytest.mark.parametrize("path", ["/api/v1/sources", "/api/v1/events", "/api/v1/sources/test"])
def test_admin_api_needs_the_bearer_token(
    path: str, headers: dict[str, str], server: SegueProcess
) -> None:
    response = httpx.get(f"{server.url}{path}", headers=headers, timeout=10.0)
    assert_message(response, 401)
    assert response.headers["www-authenticate"].lower().startswith("bearer")


def test_admin_token_unlocks_the_api(admin: httpx.Client) -> None:
    response = admin.get("/sources")
    assert response.status_code == 200
    names = [source["name"] for source in response.json()["sources"]]
    assert "test" in names


def test_write_key_is_not_an_admin_token(server: SegueProcess) -> None:
    response = httpx.get(
        f"{server.url}/api/v1/sources",
        headers={"Authorization": f"Bearer {WRITE_KEY}"},
        timeout=10.0,
    )
    assert_message(response, 401)


def test_unknown_admin_route_is_a_json_404(admin: httpx.Client) -> None:
    assert_message(admin.get("/nothing-here"), 404)


# -- sources ---------------------------------------------------------------


def test_create_source_generates_a_write_key(admin: httpx.Client) -> None:
    name = unique("web")
    response = admin.post("/sources", json={"name": name})
    assert response.status_code == 201, response.text
    source = response.json()
    assert source["name"] == name
    assert re.fullmatch(r"[A-Za-z0-9]{32}", source["write_key"])
    assert source["enabled"] is True
    assert source["kind"] == "standard"
    assert source["rate_limit"] is None
    assert source["event_count"] == 0
    assert source["id"]

    other = create_source(admin)
    assert other["write_key"] != source["write_key"]
    assert other["id"] != source["id"]


def test_create_source_with_given_fields(admin: httpx.Client) -> None:
    key = f"wk_{uuid.uuid4().hex}"
    source = create_source(admin, write_key=key, kind="stream", rate_limit=5)
    assert source["write_key"] == key
    assert source["kind"] == "stream"
    assert source["rate_limit"] == 5


def test_create_duplicate_name_is_a_conflict(admin: httpx.Client) -> None:
    source = create_source(admin)
    assert_message(admin.post("/sources", json={"name": source["name"]}), 409)


def test_create_duplicate_write_key_is_a_conflict(admin: httpx.Client) -> None:
    assert_message(
        admin.post("/sources", json={"name": unique("dup"), "write_key": WRITE_KEY}), 409
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "Has Spaces"},
        {"name": "UPPER"},
        {"name": "dots.not.allowed"},
        {"name": 42},
        {"name": "ok-name", "kind": "firehose"},
        {"name": "ok-name", "rate_limit": -1},
        {"name": "ok-name", "rate_limit": "fast"},
        {"name": "ok-name", "rate_limit": True},
        {"name": "ok-name", "write_key": 123},
    ],
)
def test_create_source_bad_input(body: dict[str, Any], admin: httpx.Client) -> None:
    assert_message(admin.post("/sources", json=body), 400)
    assert admin.get("/sources/ok-name").status_code == 404


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
def test_create_source_body_must_be_a_json_object(content: bytes, admin: httpx.Client) -> None:
    assert_message(admin.post("/sources", content=content), 400)


def test_get_one_source_with_event_count(admin: httpx.Client, tracking: httpx.Client) -> None:
    source = create_source(admin)
    assert track(tracking, source["write_key"]).status_code == 200
    assert track(tracking, source["write_key"]).status_code == 200
    response = admin.get(f"/sources/{source['name']}")
    assert response.status_code == 200
    fetched = response.json()
    assert fetched["id"] == source["id"]
    assert fetched["write_key"] == source["write_key"]
    assert fetched["event_count"] == 2

    listed = {s["name"]: s for s in admin.get("/sources").json()["sources"]}
    assert listed[source["name"]]["event_count"] == 2


def test_get_unknown_source_is_404(admin: httpx.Client) -> None:
    assert_message(admin.get("/sources/no-such-source"), 404)


def test_patch_enabled(admin: httpx.Client, tracking: httpx.Client) -> None:
    source = create_source(admin)
    key = source["write_key"]
    response = admin.patch(f"/sources/{source['name']}", json={"enabled": False})
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is False
    assert admin.get(f"/sources/{source['name']}").json()["enabled"] is False
    refused = track(tracking, key)
    assert refused.status_code == 403
    assert refused.json()["code"] == "source_disabled"

    assert admin.patch(f"/sources/{source['name']}", json={"enabled": True}).status_code == 200
    assert track(tracking, key).status_code == 200


def test_rotate_write_key(admin: httpx.Client, tracking: httpx.Client) -> None:
    source = create_source(admin)
    old_key = source["write_key"]
    assert track(tracking, old_key).status_code == 200

    response = admin.patch(f"/sources/{source['name']}", json={"rotate_write_key": True})
    assert response.status_code == 200, response.text
    new_key = response.json()["write_key"]
    assert re.fullmatch(r"[A-Za-z0-9]{32}", new_key)
    assert new_key != old_key

    refused = track(tracking, old_key)
    assert refused.status_code == 401
    assert refused.json()["code"] == "unknown_source"
    assert track(tracking, new_key).status_code == 200
    # the body form of the old key is refused too
    body = {"writeKey": old_key, "userId": "u1", "event": "E"}
    assert tracking.post("/v1/track", json=body).status_code == 401


def test_patch_write_key_explicitly(admin: httpx.Client, tracking: httpx.Client) -> None:
    source = create_source(admin)
    new_key = f"wk_{uuid.uuid4().hex}"
    response = admin.patch(f"/sources/{source['name']}", json={"write_key": new_key})
    assert response.status_code == 200
    assert response.json()["write_key"] == new_key
    assert track(tracking, source["write_key"]).status_code == 401
    assert track(tracking, new_key).status_code == 200
    # taking another source's key is a conflict
    assert_message(admin.patch(f"/sources/{source['name']}", json={"write_key": WRITE_KEY}), 409)


def test_patch_rate_limit_set_and_remove(admin: httpx.Client) -> None:
    source = create_source(admin)
    name = source["name"]
    assert admin.patch(f"/sources/{name}", json={"rate_limit": 3.5}).json()["rate_limit"] == 3.5
    assert admin.patch(f"/sources/{name}", json={"rate_limit": 0}).json()["rate_limit"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"enabled": "no"},
        {"colour": "blue"},
        {"kind": "firehose"},
        {"rate_limit": -2},
        {"write_key": 7},
    ],
)
def test_patch_bad_input(body: dict[str, Any], admin: httpx.Client) -> None:
    source = create_source(admin)
    assert_message(admin.patch(f"/sources/{source['name']}", json=body), 400)
    assert admin.get(f"/sources/{source['name']}").json() == {**source, "event_count": 0}


def test_patch_unknown_source_is_404(admin: httpx.Client) -> None:
    assert_message(admin.patch("/sources/no-such-source", json={"enabled": False}), 404)


def test_delete_source(admin: httpx.Client, tracking: httpx.Client) -> None:
    source = create_source(admin)
    name = source["name"]
    response = admin.delete(f"/sources/{name}")
    assert response.status_code == 204
    assert response.content == b""
    assert_message(admin.get(f"/sources/{name}"), 404)
    assert_message(admin.delete(f"/sources/{name}"), 404)
    assert name not in [s["name"] for s in admin.get("/sources").json()["sources"]]
    assert track(tracking, source["write_key"]).status_code == 401
    # the name can be used again
    assert admin.post("/sources", json={"name": name}).status_code == 201


# -- events ----------------------------------------------------------------


@pytest.fixture(scope="module")
def listed(admin: httpx.Client, tracking: httpx.Client) -> dict[str, Any]:
    """Two fresh sources with known events, sent in a known order."""
    first = create_source(admin)
    second = create_source(admin)
    alice, bob = unique("alice"), unique("bob")
    sent = [
        (first, {"type": "identify", "userId": alice, "traits": {"n": 0}}),
        (first, {"type": "track", "userId": alice, "event": "E1"}),
        (first, {"type": "track", "userId": bob, "event": "E2"}),
        (second, {"type": "page", "userId": alice, "name": "Home"}),
        (second, {"type": "track", "userId": bob, "event": "E3"}),
        (first, {"type": "track", "userId": alice, "event": "E4"}),
    ]
    for index, (source, item) in enumerate(sent):
        body = {**item, "messageId": f"{alice}-{index}"}
        response = tracking.post(f"/v1/{item['type']}", json=body, auth=(source["write_key"], ""))
        assert response.status_code == 200, response.text
    return {"first": first, "second": second, "alice": alice, "bob": bob}


def events(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = admin.get("/events", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


def test_events_filtered_by_source_newest_first(
    admin: httpx.Client, listed: dict[str, Any]
) -> None:
    first = events(admin, source=listed["first"]["name"])
    assert [e["event"]["messageId"].rsplit("-", 1)[1] for e in first] == ["5", "2", "1", "0"]
    ids = [e["id"] for e in first]
    assert ids == sorted(ids, reverse=True)
    assert {e["source_id"] for e in first} == {listed["first"]["id"]}
    event = first[0]
    assert event["type"] == "track"
    assert event["user_id"] == listed["alice"]
    assert event["event"]["event"] == "E4"
    assert event["message_id"] == event["event"]["messageId"]
    assert isinstance(event["received_at_ms"], int)


def test_events_filtered_by_user_and_type(admin: httpx.Client, listed: dict[str, Any]) -> None:
    alice = events(admin, user_id=listed["alice"])
    assert [e["type"] for e in alice] == ["track", "page", "track", "identify"]
    alice_tracks = events(admin, user_id=listed["alice"], type="track")
    assert [e["event"]["event"] for e in alice_tracks] == ["E4", "E1"]
    bob_second = events(admin, user_id=listed["bob"], source=listed["second"]["name"])
    assert [e["event"]["event"] for e in bob_second] == ["E3"]
    assert events(admin, user_id=listed["bob"], type="identify") == []


def test_events_limit(admin: httpx.Client, listed: dict[str, Any]) -> None:
    response = admin.get("/events", params={"user_id": listed["alice"], "limit": 2})
    body = response.json()
    assert len(body["events"]) == 2
    assert body["next_cursor"]
    rest = admin.get(
        "/events", params={"user_id": listed["alice"], "limit": 2, "cursor": body["next_cursor"]}
    ).json()
    assert [e["type"] for e in rest["events"]] == ["track", "identify"]


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1.5"])
def test_events_limit_validation(limit: str, admin: httpx.Client) -> None:
    assert_message(admin.get("/events", params={"limit": limit}), 400)


def test_events_limit_bounds_are_inclusive(admin: httpx.Client) -> None:
    assert admin.get("/events", params={"limit": 1}).status_code == 200
    assert admin.get("/events", params={"limit": 1000}).status_code == 200


def test_events_bad_cursor(admin: httpx.Client) -> None:
    assert_message(admin.get("/events", params={"cursor": "%%%not-a-cursor"}), 400)


def test_events_unknown_source_is_404(admin: httpx.Client) -> None:
    assert_message(admin.get("/events", params={"source": "no-such-source"}), 404)


def test_cursor_paging_returns_every_event_exactly_once(
    admin: httpx.Client, tracking: httpx.Client
) -> None:
    source = create_source(admin)
    prefix = unique("page")
    total = 2500
    for start in range(0, total, 500):
        batch = [
            {"type": "track", "userId": "pager", "event": "Paged", "messageId": f"{prefix}-{i}"}
            for i in range(start, start + 500)
        ]
        response = tracking.post("/v1/batch", json={"batch": batch}, auth=(source["write_key"], ""))
        assert response.status_code == 200, response.text

    seen: list[str] = []
    ids: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"source": source["name"], "limit": 700}
        if cursor:
            params["cursor"] = cursor
        body = admin.get("/events", params=params).json()
        pages += 1
        seen.extend(e["message_id"] for e in body["events"])
        ids.extend(e["id"] for e in body["events"])
        cursor = body["next_cursor"]
        if not cursor:
            break
        assert pages < 10, "the cursor never ends"
    assert pages == 4  # 700 + 700 + 700 + 400
    assert len(seen) == total
    assert set(seen) == {f"{prefix}-{i}" for i in range(total)}
    assert ids == sorted(ids, reverse=True)
    assert seen[0] == f"{prefix}-{total - 1}"  # newest first
    assert seen[-1] == f"{prefix}-0"


# -- OpenAPI ---------------------------------------------------------------


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_document_is_public_and_valid(server: SegueProcess) -> None:
    response = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=10.0)  # no token
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()

    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    paths = document["paths"]
    assert {"/sources", "/sources/{name}", "/events"} <= set(paths)
    assert set(paths["/sources"]) >= {"get", "post"}
    assert set(paths["/sources/{name}"]) >= {"get", "patch", "delete"}
    assert "get" in paths["/events"]

    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    for path, item in paths.items():
        assert path.startswith("/")
        for method, operation in item.items():
            if method not in methods:
                continue
            assert operation["responses"], f"{method} {path} has no responses"
            for status in operation["responses"]:
                assert re.fullmatch(r"[1-5]\d\d|[1-5]XX|default", status), status
        if "{name}" in path:  # every path template parameter is declared
            declared = [p for p in item.get("parameters", []) if p["in"] == "path"]
            assert [p["name"] for p in declared] == ["name"]
            assert all(p["required"] is True for p in declared)

    for ref in _refs(document):
        assert isinstance(_resolve(document, ref), dict), ref
    schemes = document["components"]["securitySchemes"]
    for requirement in document.get("security", []):
        assert set(requirement) <= set(schemes)


def test_openapi_paths_exist_on_the_server(admin: httpx.Client, server: SegueProcess) -> None:
    """Every documented GET path is routed: 200, or a JSON 404 for a missing resource."""
    document = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=10.0).json()
    for path, item in document["paths"].items():
        if "get" not in item:
            continue
        if path == "/sources/{name}":
            assert admin.get("/sources/test").status_code == 200
            continue
        concrete = path.replace("{name}", "missing").replace("{id}", "12345")
        response = admin.get(concrete)
        if "{" in path:
            assert response.status_code == 404, (path, response.text)
            assert "missing" in response.json()["message"] or "12345" in response.json()["message"]
        else:
            assert response.status_code == 200, (path, response.text)
