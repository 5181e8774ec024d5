"""Authorization of every route of the officer API, enumerated from the app itself: a route
missing from ``ROUTES`` fails the first test, so a new endpoint cannot ship without saying
who may call it. Each protected route refuses a missing, malformed, expired, revoked or
orphaned token (401); each incident route answers 404 outside the caller's jurisdiction,
for every role, and changes nothing there; list routes cannot be widened by their filters.

tests/grid/test_api.py holds the lifecycle and the per-role checks on the seeded cases;
this file is the exhaustive route x role x token matrix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from grid import Incident
from tests.grid.test_api import CHIEF, COUNTY, OTHER_VILLAGE, VILLAGE, Api, _build, _hashed

PUBLIC, TOKEN, INCIDENT = "public", "token", "incident"
# (method, path) -> who may call it; the incident routes with the body they take.
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/v1/login"): PUBLIC,
    ("GET", "/"): PUBLIC,  # the console's static page; it holds no data
    ("GET", "/console"): PUBLIC,  # its scripts and styles
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("POST", "/v1/logout"): TOKEN,
    ("GET", "/v1/me"): TOKEN,
    ("GET", "/v1/incidents"): TOKEN,
    ("GET", "/v1/nodes"): TOKEN,
    ("GET", "/v1/findings"): TOKEN,
    ("GET", "/v1/incidents/{incident_id}"): INCIDENT,
    ("POST", "/v1/incidents/{incident_id}/acknowledge"): INCIDENT,
    ("POST", "/v1/incidents/{incident_id}/dispatch"): INCIDENT,
    ("POST", "/v1/incidents/{incident_id}/resolve"): INCIDENT,
    ("POST", "/v1/incidents/{incident_id}/reassign"): INCIDENT,
    ("POST", "/v1/incidents/{incident_id}/notes"): INCIDENT,
}
BODIES: dict[str, dict[str, Any]] = {
    "/v1/login": {"officer_id": VILLAGE, "password": "x"},
    "/v1/incidents/{incident_id}/acknowledge": {"reason": "x"},
    "/v1/incidents/{incident_id}/dispatch": {"reason": "x"},
    "/v1/incidents/{incident_id}/resolve": {"reason": "x", "finding": "sensor_fault"},
    "/v1/incidents/{incident_id}/reassign": {"officer_id": COUNTY, "reason": "x"},
    "/v1/incidents/{incident_id}/notes": {"text": "x"},
}
PROTECTED = sorted(k for k, v in ROUTES.items() if v != PUBLIC)
ON_INCIDENTS = sorted(k for k, v in ROUTES.items() if v == INCIDENT)
# which seeded incidents each role covers (tests/grid/test_api.py seed)
VISIBLE = {
    VILLAGE: {"a"},
    CHIEF: {"a", "b", "parent"},
    COUNTY: {"a", "b", "parent", "c"},
    OTHER_VILLAGE: {"c"},
}
SEEDED = ("a", "b", "parent", "c", "elsewhere")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    built = _build(tmp_path, {VILLAGE: _hashed()})
    yield built
    built.client.close()
    built.store.close()


def _app_routes(api: Api) -> set[tuple[str, str]]:
    found = set()
    for route in api.client.app.routes:
        if isinstance(route, APIRoute | Route):
            found |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
        elif isinstance(route, Mount):
            found.add(("GET", route.path))
    return found


def _call(api: Api, method: str, path: str, headers: dict[str, str], incident_id: int = 0) -> Any:
    url = path.replace("{incident_id}", str(incident_id))
    if method == "GET":
        return api.client.get(url, headers=headers)
    return api.client.post(url, headers=headers, json=BODIES.get(path, {}))


def test_every_route_of_the_app_is_in_the_table(api: Api) -> None:
    assert _app_routes(api) == set(ROUTES)
    assert {p for m, p in ROUTES if m == "POST"} == set(BODIES) | {"/v1/logout"}


def _tokens(api: Api) -> dict[str, dict[str, str]]:
    expired = api.tokens.issue(VILLAGE).token
    revoked = api.tokens.issue(VILLAGE).token
    api.tokens.revoke(revoked)
    orphan = api.tokens.issue("ghost").token  # an officer no longer in the grid file
    api.clock.advance(3601)  # past the 1 h ttl of _build: `expired` has expired
    live = api.tokens.issue(VILLAGE).token
    bearer = {name: {"Authorization": f"Bearer {t}"} for name, t in
              [("expired", expired), ("revoked", revoked), ("orphan", orphan)]}  # fmt: skip
    return {
        "none": {},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "empty": {"Authorization": "Bearer "},
        "unknown": {"Authorization": "Bearer tw_" + "A" * 43},
        "not-ours": {"Authorization": "Bearer " + "x" * 500},
        "live-token-in-a-query": {"X-Token": live},
        **bearer,
    }


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_protected_route_refuses_a_bad_token(api: Api, method: str, path: str) -> None:
    before = [api.store.audit(i.id) for i in (api.seeded.a, api.seeded.c)]
    for name, headers in _tokens(api).items():
        response = _call(api, method, path, headers, api.seeded.a.id)
        assert response.status_code == 401, (name, response.text)
        assert response.headers["www-authenticate"] == "Bearer", name
    assert [api.store.audit(i.id) for i in (api.seeded.a, api.seeded.c)] == before


def _status_inside(method: str, path: str) -> set[int]:
    if method == "GET":
        return {200}
    # a move may be refused by the lifecycle (409) or a reassignment by its target (422),
    # but never as "not found"
    return {200, 201, 409, 422}


@pytest.mark.parametrize("officer", sorted(VISIBLE))
@pytest.mark.parametrize(("method", "path"), ON_INCIDENTS)
def test_incident_routes_answer_404_outside_the_jurisdiction_for_every_role(
    api: Api, officer: str, method: str, path: str
) -> None:
    headers = api.login(officer)
    missing = _call(api, method, path, headers, 999_999)
    assert missing.status_code == 404
    for name in SEEDED:
        incident: Incident = getattr(api.seeded, name)
        audit = api.store.audit(incident.id)
        response = _call(api, method, path, headers, incident.id)
        if name in VISIBLE[officer]:
            assert response.status_code in _status_inside(method, path), (name, response.text)
        else:
            # the answer for an id that does not exist: existence does not leak
            assert (response.status_code, response.json()) == (404, missing.json()), name
            after = api.store.get(incident.id)
            assert (after.status, after.officer_id) == (incident.status, incident.officer_id)
            assert api.store.audit(incident.id) == audit


@pytest.mark.parametrize(
    "widening",
    [
        {"township": "lishan"},
        {"village": "shanxi"},
        {"node": "yy-0017"},
        {"township": "nanma", "village": "xili"},
        {"limit": "500", "offset": "0"},
    ],
)
def test_filters_cannot_widen_a_village_officers_list(api: Api, widening: dict[str, str]) -> None:
    response = api.client.get("/v1/incidents", headers=api.login(VILLAGE), params=widening)
    assert response.status_code == 200
    ids = {item["id"] for item in response.json()["items"]}
    assert ids <= {api.seeded.a.id}
    nodes = api.client.get("/v1/nodes", headers=api.login(VILLAGE), params=widening).json()
    assert {n["village"] for n in nodes} == {"dongli"}
