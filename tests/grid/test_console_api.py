"""What the officer console needs from the API: its page and assets at ``/`` and
``/console/*`` (same origin only, a strict Content-Security-Policy), the nodes of the
caller's jurisdiction with position and map state (``GET /v1/nodes``) and the findings an
incident may be resolved with (``GET /v1/findings``). The browser test is
test_console_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from grid import load_findings
from grid._api import CONSOLE
from tests.grid.conftest import T0, draft
from tests.grid.test_api import CHIEF, COUNTY, OTHER_VILLAGE, VILLAGE, Api, _build, _hashed


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    built = _build(tmp_path, {VILLAGE: _hashed()})
    yield built
    built.client.close()
    built.store.close()


def _nodes(api: Api, officer: str) -> dict[str, dict]:
    response = api.client.get("/v1/nodes", headers=api.login(officer))
    assert response.status_code == 200, response.text
    return {n["id"]: n for n in response.json()}


def _in(api: Api, township: str | None = None, village: str | None = None) -> set[str]:
    return {
        n.id
        for n in api.registry.nodes.values()
        if (township is None or n.place.township == township)
        and (village is None or n.place.village == village)
    }


# --- /v1/nodes ------------------------------------------------------------------------------


def test_nodes_follow_the_jurisdiction(api: Api) -> None:
    assert set(_nodes(api, VILLAGE)) == _in(api, "nanma", "dongli")
    assert set(_nodes(api, OTHER_VILLAGE)) == _in(api, "lishan", "shanxi")
    assert set(_nodes(api, CHIEF)) == _in(api, "nanma")
    assert set(_nodes(api, COUNTY)) == set(api.registry.nodes)
    assert len(_in(api, "nanma", "dongli")) < len(_in(api, "nanma")) < len(api.registry.nodes)


def test_a_node_carries_its_place_and_position(api: Api) -> None:
    node = _nodes(api, VILLAGE)["yy-0001"]
    registered = api.registry.nodes["yy-0001"]
    assert node == {
        "id": "yy-0001",
        "township": "nanma",
        "township_name": "南麻街道",
        "village": "dongli",
        "village_name": "东里村",
        "lat": registered.lat,
        "lon": registered.lon,
        "quantities": list(registered.quantities),
        "state": "open",  # the seeded incident a
        "incidents": [api.seeded.a.id],
    }


def test_node_state_follows_the_lifecycle(api: Api) -> None:
    a = api.seeded.a
    state = lambda: _nodes(api, VILLAGE)["yy-0001"]["state"]  # noqa: E731
    assert state() == "open"
    assert _nodes(api, VILLAGE)["yy-0002"]["state"] == "normal"
    api.store.transition(a.id, "acknowledged", VILLAGE, "seen", now=T0 + timedelta(minutes=5))
    assert state() == "acknowledged"
    api.store.transition(a.id, "dispatched", VILLAGE, "going", now=T0 + timedelta(minutes=6))
    assert state() == "acknowledged"  # amber until it is resolved
    api.store.transition(
        a.id, "resolved", VILLAGE, "done", finding="confirmed_source", now=T0 + timedelta(hours=1)
    )
    assert state() == "normal"
    assert _nodes(api, VILLAGE)["yy-0001"]["incidents"] == []


def test_open_beats_acknowledged_and_offline_beats_both(api: Api) -> None:
    a = api.seeded.a
    place = {"county": "yiyuan", "township": "nanma"}
    api.store.transition(a.id, "acknowledged", VILLAGE, "seen", now=T0 + timedelta(minutes=5))
    pm10, _ = api.store.open_or_extend(
        replace(draft("yy-0001", village="dongli", officer_id=VILLAGE, quantity="PM10"), **place),
        now=T0 + timedelta(minutes=10),
    )
    node = _nodes(api, VILLAGE)["yy-0001"]
    assert (node["state"], set(node["incidents"])) == ("open", {a.id, pm10.id})
    offline = replace(
        draft("yy-0001", village="dongli", officer_id=VILLAGE, quantity="status"),
        rule="node_offline",
        limit_value=None,
        **place,
    )
    silent, _ = api.store.open_or_extend(offline, now=T0 + timedelta(minutes=20))
    assert _nodes(api, VILLAGE)["yy-0001"]["state"] == "offline"
    # Acknowledged, the node is still offline: grey until the liveness incident ends.
    api.store.transition(silent.id, "acknowledged", VILLAGE, "seen", now=T0 + timedelta(hours=1))
    assert _nodes(api, VILLAGE)["yy-0001"]["state"] == "offline"


def test_incidents_of_another_cell_do_not_colour_my_nodes(api: Api) -> None:
    # b is at yy-0005 in xili: the dongli officer neither sees the node nor its incident.
    nodes = _nodes(api, VILLAGE)
    assert "yy-0005" not in nodes
    assert all(api.seeded.b.id not in n["incidents"] for n in nodes.values())
    assert _nodes(api, CHIEF)["yy-0005"]["incidents"] == [api.seeded.b.id]


def test_nodes_and_findings_need_a_token(api: Api) -> None:
    for url in ("/v1/nodes", "/v1/findings"):
        assert api.client.get(url).status_code == 401
        bad = {"Authorization": "Bearer tw_not-a-token"}
        assert api.client.get(url, headers=bad).status_code == 401


# --- /v1/findings ---------------------------------------------------------------------------


def test_findings_are_the_stores_with_chinese_labels(api: Api) -> None:
    response = api.client.get("/v1/findings", headers=api.login(VILLAGE))
    assert response.status_code == 200
    found = response.json()
    assert [(f["code"], f["label"]) for f in found] == list(load_findings().items())
    assert {f["code"]: f["label_zh"] for f in found}["sensor_fault"] == "设备故障"


# --- the page ---------------------------------------------------------------------------------


def test_the_console_page_is_served_with_a_strict_policy(api: Api) -> None:
    page = api.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(assets) == ["/console/console.css", "/console/console.js"]
    for asset, kind in [("/console/console.js", "javascript"), ("/console/console.css", "css")]:
        response = api.client.get(asset)
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert response.headers["content-security-policy"] == policy
    assert api.client.get("/console/nothing.js").status_code == 404
    assert api.client.get("/console/../_api.py").status_code == 404


def test_the_console_loads_nothing_from_elsewhere() -> None:
    for path in sorted(CONSOLE.iterdir()):
        text = path.read_text("utf-8")
        # The SVG namespace is a name, not a request.
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"'`)]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path.name, urls)
        assert "@import" not in text and "innerHTML" not in text, path.name


def test_the_console_is_not_in_the_openapi_document(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert {"/v1/nodes", "/v1/findings"} <= set(paths)
