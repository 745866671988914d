"""The catalog on every store backend: validation, secrets sealed at rest, routing."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest

from segue.destinations.catalog import Catalog, CatalogError
from segue.destinations.models import APP, DESTINATION
from segue.destinations.secrets import MARKER, SecretBox, SecretError
from segue.destinations.settings import MASK
from segue.store import Source, Store

SECRET = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
TOKEN = "tok_Q2hhbmdlIG1l"


@pytest.fixture
async def catalog(store: Store) -> Catalog:
    await store.create_source("web", "wk_web")
    await store.create_source("ios", "wk_ios")
    catalog = Catalog(store, SecretBox("catalog test key"))
    await catalog.refresh()
    return catalog


def app_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "acme",
        "endpoint": "https://hooks.acme.example/segment",
        "settings": [
            {"label": "Region", "required": True, "description": "eu or us"},
            {"label": "Secret Token", "sensitive": True},
            {"label": "Custom Setting"},
        ],
    }
    body.update(overrides)
    return body


def destination_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "acme-prod",
        "app": "acme",
        "sources": ["web"],
        "settings": {
            "apiKey": SECRET,
            "region": "eu",
            "secretToken": TOKEN,
            "customSetting": "plain value",
        },
    }
    body.update(overrides)
    return body


async def source(store: Store, name: str = "web") -> Source:
    found = await store.get_source(name)
    assert found is not None
    return found


# -- apps ------------------------------------------------------------------------------
async def test_save_app_generates_keys_and_keeps_the_api_key_first(catalog: Catalog) -> None:
    app = await catalog.save_app(app_body())
    assert app.id.startswith("app_")
    assert [f.key for f in app.settings] == ["apiKey", "region", "secretToken", "customSetting"]
    assert catalog.app("acme") == app
    assert [a.name for a in catalog.apps()] == ["acme"]


async def test_apps_and_destinations_survive_a_restart(catalog: Catalog, store: Store) -> None:
    app = await catalog.save_app(app_body())
    destination = await catalog.save_destination(destination_body())
    fresh = Catalog(store, SecretBox("catalog test key"))
    await fresh.refresh()
    assert fresh.app("acme") == app
    assert fresh.destination("acme-prod") == destination
    assert fresh.destination_by_id(destination.id) == destination
    assert fresh.destination("acme-prod").settings["apiKey"] == SECRET  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (app_body(name="Bad Name"), "`name` is required"),
        (app_body(name=""), "`name` is required"),
        (app_body(endpoint="ftp://hooks.example/x"), "http(s) URL"),
        (app_body(endpoint="not a url"), "http(s) URL"),
        (app_body(endpoint=None), "needs an `endpoint`"),
        (app_body(settings="nope"), "must be a list"),
        (app_body(settings=[{"label": "A", "key": "k"}, {"label": "B", "key": "k"}]), "two"),
        (app_body(colour="red"), "unknown field(s): colour"),
        (app_body(function="fn.py"), "not both"),
    ],
)
async def test_invalid_apps_are_refused_with_a_clear_message(
    catalog: Catalog, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError) as info:
        await catalog.save_app(body)
    assert message in str(info.value)
    assert info.value.status == 400
    assert catalog.apps() == []


async def test_duplicate_app_is_a_conflict_and_missing_one_is_404(catalog: Catalog) -> None:
    await catalog.save_app(app_body())
    with pytest.raises(CatalogError) as conflict:
        await catalog.save_app(app_body())
    assert conflict.value.status == 409
    with pytest.raises(CatalogError) as missing:
        await catalog.save_app({"endpoint": "https://x.example/"}, replace="ghost")
    assert missing.value.status == 404
    with pytest.raises(CatalogError, match="cannot be renamed"):
        await catalog.save_app({"name": "other"}, replace="acme")


async def test_update_app_merges_fields(catalog: Catalog) -> None:
    created = await catalog.save_app(app_body())
    updated = await catalog.save_app({"endpoint": "https://v2.acme.example/"}, replace="acme")
    assert updated.id == created.id and updated.created_at_ms == created.created_at_ms
    assert updated.endpoint == "https://v2.acme.example/"
    assert updated.settings == created.settings


async def test_an_app_in_use_cannot_be_deleted(catalog: Catalog, store: Store) -> None:
    await catalog.save_app(app_body())
    await catalog.save_destination(destination_body())
    with pytest.raises(CatalogError) as info:
        await catalog.delete_app("acme")
    assert info.value.status == 409
    assert "acme-prod" in str(info.value)
    assert catalog.app("acme") is not None
    assert await store.get_object(APP, "acme") is not None

    await catalog.delete_destination("acme-prod")
    await catalog.delete_app("acme")
    assert catalog.app("acme") is None
    assert await store.get_object(APP, "acme") is None
    with pytest.raises(CatalogError) as missing:
        await catalog.delete_app("acme")
    assert missing.value.status == 404


# -- destinations ---------------------------------------------------------------------------
async def test_missing_required_setting_is_refused_naming_it(catalog: Catalog) -> None:
    await catalog.save_app(app_body())
    settings = {"apiKey": SECRET, "secretToken": TOKEN}
    with pytest.raises(CatalogError) as info:
        await catalog.save_destination(destination_body(settings=settings))
    assert info.value.status == 400
    assert "missing required setting" in str(info.value)
    assert "Region" in str(info.value)
    assert catalog.destinations() == []


async def test_settings_unknown_to_the_app_are_refused(catalog: Catalog) -> None:
    await catalog.save_app(app_body())
    settings = {"apiKey": SECRET, "region": "eu", "colour": "red"}
    with pytest.raises(CatalogError, match="colour"):
        await catalog.save_destination(destination_body(settings=settings))


async def test_unknown_source_is_refused(catalog: Catalog) -> None:
    await catalog.save_app(app_body())
    with pytest.raises(CatalogError) as info:
        await catalog.save_destination(destination_body(sources=["web", "android"]))
    assert info.value.status == 400
    assert "unknown source(s): android" in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"app": "ghost"}, "no app named 'ghost'"),
        ({"app": None}, "needs an `app` or an `endpoint`"),
        ({"sources": "web"}, "`sources` must be a list"),
        ({"sources": [1]}, "`sources` must be a list"),
        ({"settings": ["apiKey"]}, "`settings` must be an object"),
        ({"enabled": "yes"}, "`enabled` must be true or false"),
        ({"options": {"timeout_s": -1}}, "`timeout_s` must be a positive number"),
        ({"options": {"retries": 3}}, "unknown option"),
        ({"name": "Has Caps"}, "`name` is required"),
        ({"endpoint": "gopher://x.example/"}, "http(s) URL"),
        ({"extra": 1}, "unknown field(s): extra"),
    ],
)
async def test_invalid_destinations_are_refused(
    catalog: Catalog, overrides: dict[str, Any], message: str
) -> None:
    await catalog.save_app(app_body())
    with pytest.raises(CatalogError) as info:
        await catalog.save_destination(destination_body(**overrides))
    assert message in str(info.value)
    assert info.value.status == 400


async def test_inline_endpoint_destination_needs_no_app(catalog: Catalog) -> None:
    destination = await catalog.save_destination(
        {
            "name": "raw",
            "endpoint": "https://sink.example/in",
            "sources": ["web", "ios", "web"],
            "settings": {"apiKey": SECRET, "anything": [1, 2]},
        }
    )
    assert destination.app is None
    assert destination.sources == ("web", "ios")  # duplicates dropped, order kept
    assert catalog.endpoint_of(destination) == "https://sink.example/in"
    assert [f.key for f in catalog.fields_of(destination)] == ["apiKey"]
    assert catalog.sensitive_keys(destination) == {"apiKey"}


async def test_duplicate_destination_is_a_conflict_and_rename_refused(catalog: Catalog) -> None:
    await catalog.save_app(app_body())
    await catalog.save_destination(destination_body())
    with pytest.raises(CatalogError) as conflict:
        await catalog.save_destination(destination_body())
    assert conflict.value.status == 409
    with pytest.raises(CatalogError, match="cannot be renamed"):
        await catalog.save_destination({"name": "renamed"}, replace="acme-prod")
    with pytest.raises(CatalogError) as missing:
        await catalog.save_destination({"enabled": False}, replace="ghost")
    assert missing.value.status == 404
    with pytest.raises(CatalogError) as gone:
        await catalog.delete_destination("ghost")
    assert gone.value.status == 404


async def test_endpoint_comes_from_the_app_unless_the_destination_has_one(
    catalog: Catalog,
) -> None:
    await catalog.save_app(app_body())
    from_app = await catalog.save_destination(destination_body())
    own = await catalog.save_destination(
        destination_body(name="acme-staging", endpoint="https://staging.acme.example/")
    )
    assert catalog.endpoint_of(from_app) == "https://hooks.acme.example/segment"
    assert catalog.endpoint_of(own) == "https://staging.acme.example/"


# -- secrets at rest and in updates ----------------------------------------------------------
async def test_sensitive_values_are_sealed_in_the_stored_document(
    catalog: Catalog, store: Store
) -> None:
    await catalog.save_app(app_body())
    destination = await catalog.save_destination(destination_body())
    raw = await store.get_object(DESTINATION, "acme-prod")
    assert raw is not None
    encoded = orjson.dumps(raw)
    assert SECRET.encode() not in encoded
    assert TOKEN.encode() not in encoded
    assert set(raw["settings"]["apiKey"]) == {MARKER}
    assert set(raw["settings"]["secretToken"]) == {MARKER}
    # what is not sensitive is stored as given
    assert raw["settings"]["region"] == "eu"
    assert raw["settings"]["customSetting"] == "plain value"
    # and in memory the plain values are there for delivery
    assert destination.settings["apiKey"] == SECRET
    assert catalog.destination("acme-prod").settings["secretToken"] == TOKEN  # type: ignore[union-attr]
    assert catalog.sensitive_keys(destination) == {"apiKey", "secretToken"}


async def test_masked_value_in_an_update_keeps_the_old_secret(
    catalog: Catalog, store: Store
) -> None:
    await catalog.save_app(app_body())
    await catalog.save_destination(destination_body())
    before = await store.get_object(DESTINATION, "acme-prod")
    updated = await catalog.save_destination(
        {
            "settings": {
                "apiKey": MASK,
                "secretToken": MASK,
                "region": "us",
                "customSetting": "changed",
            }
        },
        replace="acme-prod",
    )
    assert updated.settings == {
        "apiKey": SECRET,
        "secretToken": TOKEN,
        "region": "us",
        "customSetting": "changed",
    }
    fresh = Catalog(store, SecretBox("catalog test key"))
    await fresh.refresh()
    assert fresh.destination("acme-prod").settings["apiKey"] == SECRET  # type: ignore[union-attr]
    after = await store.get_object(DESTINATION, "acme-prod")
    assert after is not None and before is not None
    assert MASK.encode() not in orjson.dumps(after)
    assert SECRET.encode() not in orjson.dumps(after)


async def test_a_new_secret_replaces_the_old_one(catalog: Catalog) -> None:
    await catalog.save_app(app_body())
    await catalog.save_destination(destination_body())
    settings = {"apiKey": "sk_new", "secretToken": MASK, "region": "eu"}
    updated = await catalog.save_destination({"settings": settings}, replace="acme-prod")
    assert updated.settings["apiKey"] == "sk_new"
    assert updated.settings["secretToken"] == TOKEN


async def test_a_mask_with_nothing_behind_it_does_not_satisfy_a_required_setting(
    catalog: Catalog,
) -> None:
    await catalog.save_app(
        app_body(settings=[{"label": "Region", "required": True, "sensitive": True}])
    )
    with pytest.raises(CatalogError, match="Region"):
        await catalog.save_destination(
            destination_body(settings={"apiKey": SECRET, "region": MASK})
        )


async def test_an_update_without_settings_keeps_them(catalog: Catalog) -> None:
    await catalog.save_app(app_body())
    created = await catalog.save_destination(destination_body())
    updated = await catalog.save_destination({"enabled": False}, replace="acme-prod")
    assert updated.settings == created.settings
    assert updated.enabled is False
    assert updated.id == created.id


async def test_a_changed_key_cannot_open_the_secrets(catalog: Catalog, store: Store) -> None:
    await catalog.save_app(app_body())
    await catalog.save_destination(destination_body())
    with pytest.raises(SecretError, match="SEGUE_SECRET_KEY"):
        await Catalog(store, SecretBox("another key")).refresh()


# -- routing ----------------------------------------------------------------------------------
async def routing_catalog(catalog: Catalog) -> dict[str, str]:
    await catalog.save_app(app_body())
    ids = {}
    for name, sources, enabled in (
        ("alpha", ["web"], True),
        ("beta", ["web", "ios"], True),
        ("off", ["web"], False),
    ):
        saved = await catalog.save_destination(
            {
                "name": name,
                "endpoint": f"https://{name}.example/",
                "sources": sources,
                "enabled": enabled,
                "settings": {"apiKey": "k"},
            }
        )
        ids[name] = saved.id
    via_app = await catalog.save_destination(destination_body())
    ids["acme-prod"] = via_app.id
    return ids


async def test_route_fans_out_to_enabled_destinations_of_the_source(
    catalog: Catalog, store: Store
) -> None:
    ids = await routing_catalog(catalog)
    web, ios = await source(store, "web"), await source(store, "ios")
    assert set(catalog.route(web, {"type": "track"})) == {
        ids["alpha"],
        ids["beta"],
        ids["acme-prod"],
    }
    assert catalog.route(ios, {"type": "track"}) == (ids["beta"],)
    assert ids["off"] not in catalog.route(web, {"type": "track", "integrations": {"off": True}})


@pytest.mark.parametrize(
    ("integrations", "expected"),
    [
        ({}, {"alpha", "beta", "acme-prod"}),
        ({"All": True}, {"alpha", "beta", "acme-prod"}),
        ({"All": False}, set()),
        ({"All": False, "beta": True}, {"beta"}),
        ({"All": False, "beta": {"someOption": 1}}, {"beta"}),  # options object = enabled
        ({"beta": False}, {"alpha", "acme-prod"}),
        ({"All": True, "alpha": False, "beta": False}, {"acme-prod"}),
        ({"All": False, "acme": True}, {"acme-prod"}),  # by app name
        ({"acme": False}, {"alpha", "beta"}),
        ({"All": False, "acme-prod": True, "acme": False}, {"acme-prod"}),  # name wins
    ],
)
async def test_route_honours_integrations(
    catalog: Catalog, store: Store, integrations: dict[str, Any], expected: set[str]
) -> None:
    ids = await routing_catalog(catalog)
    names = {v: k for k, v in ids.items()}
    chosen = catalog.route(await source(store), {"type": "track", "integrations": integrations})
    assert {names[i] for i in chosen} == expected


async def test_disabling_and_deleting_stop_routing(catalog: Catalog, store: Store) -> None:
    ids = await routing_catalog(catalog)
    web = await source(store)
    await catalog.save_destination({"enabled": False}, replace="alpha")
    assert ids["alpha"] not in catalog.route(web, {"type": "track"})
    await catalog.delete_destination("beta")
    assert set(catalog.route(web, {"type": "track"})) == {ids["acme-prod"]}
    assert catalog.destination_by_id(ids["beta"]) is None
    await catalog.save_destination({"enabled": True}, replace="off")
    assert ids["off"] in catalog.route(web, {"type": "track"})


async def test_a_source_without_destinations_routes_nowhere(catalog: Catalog, store: Store) -> None:
    await routing_catalog(catalog)
    await store.create_source("server", "wk_server")
    assert catalog.route(await source(store, "server"), {"type": "track"}) == ()


async def test_changes_by_another_node_are_seen_on_refresh(catalog: Catalog, store: Store) -> None:
    now = [0.0]
    reader = Catalog(store, SecretBox("catalog test key"), max_age=5.0, clock=lambda: now[0])
    await reader.refresh()
    await catalog.save_app(app_body())
    await catalog.save_destination(destination_body())
    await reader.refresh_if_stale()
    assert reader.destination("acme-prod") is None  # still fresh: no store round trip
    now[0] = 6.0
    await reader.refresh_if_stale()
    assert reader.destination("acme-prod") is not None


async def test_listeners_hear_every_change(catalog: Catalog) -> None:
    calls = []
    catalog.listeners.append(lambda: calls.append(1))
    await catalog.save_app(app_body())
    await catalog.save_destination(destination_body())
    await catalog.delete_destination("acme-prod")
    assert len(calls) == 3


# -- bugs found --------------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["http://[::1", "https://hooks.example:99999/"])
async def test_a_malformed_endpoint_is_a_catalog_error(catalog: Catalog, endpoint: str) -> None:
    with pytest.raises(CatalogError):
        await catalog.save_app(app_body(endpoint=endpoint))
    with pytest.raises(CatalogError):
        await catalog.save_destination(
            {"name": "raw", "endpoint": endpoint, "sources": ["web"], "settings": {}}
        )


async def test_a_setting_value_that_looks_sealed_does_not_break_the_catalog(
    catalog: Catalog, store: Store
) -> None:
    await catalog.save_app(app_body())
    with contextlib.suppress(CatalogError):  # refusing the value is a fine answer too
        await catalog.save_destination(
            destination_body(
                settings={"apiKey": SECRET, "region": "eu", "customSetting": {MARKER: "x"}}
            )
        )
    fresh = Catalog(store, SecretBox("catalog test key"))
    await fresh.refresh()  # must not raise
    await catalog.save_app(app_body(name="another"))


async def test_the_api_key_is_sealed_even_when_the_app_lists_it(
    catalog: Catalog, store: Store
) -> None:
    await catalog.save_app(
        app_body(settings=[{"label": "API Key", "required": True, "description": "hello"}])
    )
    await catalog.save_destination(destination_body(settings={"apiKey": SECRET}))
    raw = await store.get_object(DESTINATION, "acme-prod")
    assert SECRET.encode() not in orjson.dumps(raw)


async def test_a_fractional_concurrency_is_refused(catalog: Catalog) -> None:
    await catalog.save_app(app_body())
    with pytest.raises(CatalogError, match="concurrency"):
        await catalog.save_destination(destination_body(options={"concurrency": 0.5}))
