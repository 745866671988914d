"""What fuzzing the admin API from its OpenAPI document found (issue 10), pinned.

A delivery id past SQLite's integers was a 500; requests the document allowed were
refused, and requests it forbade were accepted; 405s had no ``Allow``. Each request
here is judged twice: by the document (with ``jsonschema_rs``, not segue's own checker)
and by the server, and the two must agree.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from starlette.exceptions import StarletteDeprecationWarning
from tests.support.transport import AlwaysOK

from segue.app import Segue
from segue.config import ServerConfig
from segue.devcenter.openapi import openapi_document

with warnings.catch_warnings():  # Starlette would rather have httpx2 behind its TestClient
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TOKEN = "regression-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data: Path = tmp_path_factory.mktemp("openapi-regressions")
    app = Segue.build(ServerConfig(data_dir=data, admin_token=TOKEN), transport=AlwaysOK())
    with TestClient(app, base_url="http://testserver") as http:
        http.headers.update(AUTH)
        assert http.post("/api/v1/sources", json={"name": "web"}).status_code == 201
        app_body = {"name": "hook", "endpoint": "https://hooks.example/in"}
        assert http.post("/api/v1/apps", json=app_body).status_code == 201
        destination = {"name": "dst", "app": "hook", "sources": ["web"]}
        assert http.post("/api/v1/destinations", json=destination).status_code == 201
        yield http


def document_allows(schema_name: str, body: Any) -> bool:
    document = openapi_document()
    schema = {"components": document["components"], "$ref": f"#/components/schemas/{schema_name}"}
    validator = jsonschema_rs.validator_for(schema, validate_formats=True)
    return bool(validator.is_valid(body))


def refused_with_a_message(response: Any) -> str:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["message"]
    assert isinstance(message, str) and message
    return message


# -- the 500 ---------------------------------------------------------------------------


@pytest.mark.parametrize("delivery_id", ["99999999999999999999", "9223372036854775808", "0"])
def test_a_delivery_id_out_of_range_is_a_400_not_a_500(
    client: TestClient, delivery_id: str
) -> None:
    assert "`id`" in refused_with_a_message(client.get(f"/api/v1/deliveries/{delivery_id}"))


def test_the_largest_delivery_id_is_looked_up(client: TestClient) -> None:
    response = client.get("/api/v1/deliveries/9223372036854775807")
    assert response.status_code == 404, response.text
    id_schema = openapi_document()["paths"]["/deliveries/{id}"]["parameters"][0]["schema"]
    assert id_schema == {"type": "integer", "minimum": 1, "maximum": 9223372036854775807}


# -- valid requests refused, invalid ones accepted: now the document says what is refused --

REFUSED_BODIES = [
    ("POST", "/sources", "SourceCreate", {"name": "x1", "7T": 1}),
    ("PATCH", "/sources/web", "SourcePatch", {"write_key": ""}),
    ("PATCH", "/sources/web", "SourcePatch", {"rotate_write_key": "yes"}),
    ("POST", "/apps", "AppCreate", {"name": "a1", "endpoint": "https://a.example/", "x": 1}),
    ("PATCH", "/apps/hook", "AppPatch", {"": [[None]]}),
    ("POST", "/apps", "AppCreate", {"name": "new", "endpoint": "https://a.example/"}),
    ("POST", "/apps", "AppCreate", {"name": "a2", "code": "x = 1"}),
    ("POST", "/apps/hook/test", "TestRequest", {}),
    ("POST", "/apps/hook/test/suite", "SuiteRequest", {"x": []}),
    ("POST", "/settings/key", "SettingKeyRequest", {"label": ""}),
    ("POST", "/destinations", "DestinationCreate", {"name": "d1", "sources": []}),
    ("PATCH", "/destinations/d1", "DestinationPatch", {"colour": "red"}),
    ("POST", "/deliveries/retry", "RetryRequest", {"destination": ""}),
    ("POST", "/replays", "ReplayCreate", {"source": "web", "destination": "d", "since": "soon"}),
    (
        "POST",
        "/destinations",
        "DestinationCreate",
        {"name": "d2", "app": "hook", "options": {"concurrency": 2**70}},
    ),
]


@pytest.mark.parametrize(("method", "path", "schema", "body"), REFUSED_BODIES)
def test_what_the_document_forbids_is_refused(
    client: TestClient, method: str, path: str, schema: str, body: dict[str, Any]
) -> None:
    assert not document_allows(schema, body)
    refused_with_a_message(client.request(method, f"/api/v1{path}", json=body))


ACCEPTED_BODIES = [
    ("POST", "/sources", "SourceCreate", {"name": "off", "enabled": False}, 201),
    ("PATCH", "/sources/web", "SourcePatch", {"rotate_write_key": None, "enabled": None}, 200),
    ("POST", "/settings/key", "SettingKeyRequest", {"label": "Custom Setting"}, 200),
    ("POST", "/apps/hook/test", "TestRequest", {"type": "track"}, 200),
    ("POST", "/apps/hook/test/suite", "SuiteRequest", {"settings": {"apiKey": "k"}}, 200),
]


@pytest.mark.parametrize(("method", "path", "schema", "body", "status"), ACCEPTED_BODIES)
def test_what_the_document_allows_is_accepted(
    client: TestClient, method: str, path: str, schema: str, body: dict[str, Any], status: int
) -> None:
    assert document_allows(schema, body)
    response = client.request(method, f"/api/v1{path}", json=body)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    "query",
    [
        "/events?cursor=Q",
        "/deliveries?cursor=%C3%98j",
        "/deliveries?state=",
        "/events?limit=%205",
        "/events?limit=1001",
        "/destinations/dst/stats?window=1h%0A",
        "/destinations/dst/stats?window=91d",
    ],
)
def test_a_query_the_document_forbids_is_a_400(client: TestClient, query: str) -> None:
    refused_with_a_message(client.get(f"/api/v1{query}"))


def test_a_page_cursor_leads_to_the_next_page(client: TestClient) -> None:
    key = client.get("/api/v1/sources/web").json()["write_key"]
    for n in range(3):
        event = {"userId": "pager", "event": f"Step {n}"}
        assert client.post("/v1/track", json=event, auth=(key, "")).status_code == 200
    first = client.get("/api/v1/events", params={"user_id": "pager", "limit": 2}).json()
    cursor = first["next_cursor"]
    second = client.get("/api/v1/events", params={"user_id": "pager", "cursor": cursor}).json()
    assert [e["event"]["event"] for e in first["events"] + second["events"]] == [
        "Step 2",
        "Step 1",
        "Step 0",
    ]
    assert second["next_cursor"] is None


# -- 405 and Allow -------------------------------------------------------------------------


def _documented_paths() -> list[tuple[str, set[str]]]:
    found = []
    for path, item in openapi_document()["paths"].items():
        concrete = path.replace("{name}", "hook").replace("{id}", "1")
        found.append((concrete, {m.upper() for m in item if m in METHODS}))
    return found


@pytest.mark.parametrize(("path", "methods"), _documented_paths(), ids=lambda v: str(v))
def test_every_405_of_the_admin_api_names_the_documented_methods(
    client: TestClient, path: str, methods: set[str]
) -> None:
    other = next(m for m in ("PUT", "DELETE", "PATCH", "POST") if m not in methods)
    response = client.request(other, f"/api/v1{path}")
    assert response.status_code == 405, response.text
    assert response.json()["message"]
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed - {"HEAD"} == methods


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/ui/sources", {"GET", "HEAD", "POST"}),
        ("/ui/sign-in", {"GET", "HEAD", "POST"}),
        ("/ui/apps/new", {"GET", "HEAD", "POST"}),
        ("/ui/destinations/x/edit", {"GET", "HEAD", "POST"}),
        ("/ui/destinations/x/retry", {"POST"}),
        ("/ui/static/app.css", {"GET", "HEAD"}),
    ],
)
def test_every_405_elsewhere_names_every_method_of_the_path(
    client: TestClient, path: str, allowed: set[str]
) -> None:
    response = client.request("PUT", path)
    assert response.status_code == 405, response.text
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
