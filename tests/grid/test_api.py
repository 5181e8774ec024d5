"""Officer API: login and tokens, jurisdiction per role (village 网格员, township 网格长, county
duty officer), the lifecycle through HTTP ending in the store's audit log, the login rate
limit; in-process (Starlette's TestClient over httpx) and once over a real socket."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from grid import (
    Incident,
    IncidentStore,
    TokenBuckets,
    Tokens,
    create_app,
    hash_password,
    jurisdiction,
)
from tests.grid.conftest import T0, draft
from tianwang.registry import Registry, load_registry

ROOT = Path(__file__).resolve().parents[2]
VILLAGE, CHIEF, COUNTY = "off-nanma-dongli", "chief-nanma", "hb-yiyuan-duty"
OTHER_VILLAGE = "off-lishan-shanxi"
PASSWORD = "correct horse battery staple"


@cache
def _hashed() -> str:
    return hash_password(PASSWORD)  # scrypt once per run


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Client:
    """httpx over ASGITransport, in-process, with a synchronous face."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
        self._client = httpx.AsyncClient(transport=transport, base_url="http://officer-api")

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self._loop.run_until_complete(self._client.get(url, **kwargs))  # type: ignore[arg-type]

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self._loop.run_until_complete(self._client.post(url, **kwargs))  # type: ignore[arg-type]

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


@dataclass
class Seeded:
    a: Incident  # nanma/dongli
    b: Incident  # nanma/xili
    parent: Incident  # the nanma township parent of a and b
    c: Incident  # lishan/shanxi
    elsewhere: Incident  # another county


@dataclass
class Api:
    client: Client
    store: IncidentStore
    tokens: Tokens
    clock: Clock
    registry: Registry
    seeded: Seeded

    def login(self, officer_id: str) -> dict[str, str]:
        token = self.tokens.issue(officer_id).token
        return {"Authorization": f"Bearer {token}"}


def seed(store: IncidentStore) -> Seeded:
    place = {"county": "yiyuan", "township": "nanma"}
    a, _ = store.open_or_extend(
        replace(draft("yy-0001", village="dongli", officer_id=VILLAGE), **place), now=T0
    )
    b, _ = store.open_or_extend(
        replace(draft("yy-0005", village="xili", officer_id="off-nanma-xili"), **place), now=T0
    )
    c, _ = store.open_or_extend(
        replace(
            draft("yy-0017", township="lishan", village="shanxi", officer_id=OTHER_VILLAGE),
            county="yiyuan",
        ),
        now=T0,
    )
    elsewhere, _ = store.open_or_extend(
        replace(draft("zz-0001", township="nanma", village="dongli"), county="other"), now=T0
    )
    a, b = store.get(a.id), store.get(b.id)
    assert a.parent_id is not None and a.parent_id == b.parent_id
    return Seeded(a, b, store.get(a.parent_id), c, elsewhere)


def _build(tmp_path: Path, passwords: dict[str, str]) -> Api:
    registry = load_registry(ROOT / "examples" / "county.yaml")
    store = IncidentStore(f"sqlite:///{tmp_path / 'incidents.sqlite'}")
    clock = Clock()
    tokens = Tokens(store, passwords, ttl_s=3600, clock=clock)
    client = Client(create_app(registry, store, tokens))
    return Api(client, store, tokens, clock, registry, seed(store))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    built = _build(tmp_path, {VILLAGE: _hashed(), CHIEF: _hashed(), "ghost": _hashed()})
    yield built
    built.client.close()
    built.store.close()


def _ids(api: Api, headers: dict[str, str], **params: str) -> set[int]:
    response = api.client.get("/v1/incidents", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


# --- jurisdiction per role ------------------------------------------------------------------


def test_jurisdiction_follows_the_roles_in_the_grid_file(api: Api) -> None:
    village = jurisdiction(api.registry, VILLAGE)
    chief = jurisdiction(api.registry, CHIEF)
    county = jurisdiction(api.registry, COUNTY)
    assert (village.villages, village.townships, village.whole_county) == (
        {("nanma", "dongli")},
        frozenset(),
        False,
    )
    assert (chief.townships, chief.whole_county) == ({"nanma"}, False)
    assert county.whole_county
    me = api.client.get("/v1/me", headers=api.login(CHIEF)).json()
    assert me == {
        "officer_id": CHIEF,
        "name": "刘志强",
        "county": "yiyuan",
        "roles": [{"level": "township", "cell": "yiyuan/nanma", "name": "南麻街道"}],
    }


def test_each_role_lists_its_own_cells_only(api: Api) -> None:
    s = api.seeded
    assert _ids(api, api.login(VILLAGE)) == {s.a.id}  # not the township parent
    assert _ids(api, api.login(CHIEF)) == {s.a.id, s.b.id, s.parent.id}
    assert _ids(api, api.login(COUNTY)) == {s.a.id, s.b.id, s.parent.id, s.c.id}
    assert _ids(api, api.login(OTHER_VILLAGE)) == {s.c.id}


@pytest.mark.parametrize(
    ("officer", "visible", "hidden"),
    [
        (VILLAGE, ["a"], ["b", "parent", "c", "elsewhere"]),
        (CHIEF, ["a", "b", "parent"], ["c", "elsewhere"]),
        (COUNTY, ["a", "b", "parent", "c"], ["elsewhere"]),
    ],
)
def test_each_role_reads_and_acts_inside_and_gets_404_outside(
    api: Api, officer: str, visible: list[str], hidden: list[str]
) -> None:
    headers = api.login(officer)
    for name in visible:
        incident: Incident = getattr(api.seeded, name)
        assert api.client.get(f"/v1/incidents/{incident.id}", headers=headers).status_code == 200
        acked = api.client.post(
            f"/v1/incidents/{incident.id}/acknowledge", headers=headers, json={"reason": "seen"}
        )
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged"
    missing = api.client.get("/v1/incidents/999999", headers=headers)
    for name in hidden:
        incident = getattr(api.seeded, name)
        url = f"/v1/incidents/{incident.id}"
        read = api.client.get(url, headers=headers)
        # The same answer as for an id that does not exist: existence does not leak.
        assert (read.status_code, read.json()) == (404, missing.json())
        for action, body in [
            ("acknowledge", {"reason": "x"}),
            ("dispatch", {"reason": "x"}),
            ("resolve", {"reason": "x", "finding": "sensor_fault"}),
            ("reassign", {"officer_id": officer, "reason": "x"}),
            ("notes", {"text": "x"}),
        ]:
            write = api.client.post(f"{url}/{action}", headers=headers, json=body)
            assert (write.status_code, write.json()) == (404, missing.json()), action
        after = api.store.get(incident.id)
        assert (after.status, after.officer_id) == (incident.status, incident.officer_id)
        assert not [e for e in api.store.audit(incident.id) if e.actor == officer]


def test_filters_and_paging(api: Api) -> None:
    s, headers = api.seeded, api.login(COUNTY)
    assert _ids(api, headers, township="lishan") == {s.c.id}
    assert _ids(api, headers, village="xili") == {s.b.id}
    assert _ids(api, headers, node="yy-0001") == {s.a.id}
    assert _ids(api, headers, quantity="PM10") == set()
    assert _ids(api, headers, rule="1h_mean") == {s.a.id, s.b.id, s.parent.id, s.c.id}
    api.store.transition(s.c.id, "acknowledged", COUNTY, "seen", now=T0 + timedelta(hours=2))
    assert _ids(api, headers, status="acknowledged") == {s.c.id}
    assert _ids(api, headers, since=(T0 + timedelta(hours=1)).isoformat()) == {s.c.id}
    assert _ids(api, headers, since="2026-03-01T09:00:00") == {s.c.id}  # naive: UTC
    page = api.client.get("/v1/incidents", headers=headers, params={"limit": 2, "offset": 1})
    body = page.json()
    assert (body["total"], body["limit"], body["offset"]) == (4, 2, 1)
    newest_first = sorted([s.a.id, s.b.id, s.parent.id, s.c.id], reverse=True)
    assert [i["id"] for i in body["items"]] == newest_first[1:3]
    bad = api.client.get("/v1/incidents", headers=headers, params={"status": "lost"})
    assert bad.status_code == 422


# --- the lifecycle through the API ------------------------------------------------------------


def test_lifecycle_through_the_api_is_audited_with_the_officer_as_actor(api: Api) -> None:
    a, headers = api.seeded.a, api.login(VILLAGE)
    url = f"/v1/incidents/{a.id}"
    steps = [
        ("acknowledge", {"reason": "received"}, "acknowledged"),
        ("dispatch", {"reason": "on my way to the kiln"}, "dispatched"),
        ("resolve", {"reason": "kiln stopped", "finding": "confirmed_source"}, "resolved"),
    ]
    for action, body, status in steps:
        response = api.client.post(f"{url}/{action}", headers=headers, json=body)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    note = api.client.post(f"{url}/notes", headers=headers, json={"text": "photos uploaded"})
    assert note.status_code == 201 and note.json()["actor"] == VILLAGE
    moves = [
        (e.actor, e.from_status, e.to_status, e.reason)
        for e in api.store.audit(a.id)
        if e.action == "transition"
    ]
    assert moves == [
        (VILLAGE, "open", "acknowledged", "received"),
        (VILLAGE, "acknowledged", "dispatched", "on my way to the kiln"),
        (VILLAGE, "dispatched", "resolved", "kiln stopped"),
    ]
    assert api.store.get(a.id).finding == "confirmed_source"
    detail = api.client.get(url, headers=headers).json()
    assert [e["action"] for e in detail["audit"]][-4:] == ["transition"] * 3 + ["note"]
    assert [(n["actor"], n["reason"]) for n in detail["notes"]] == [(VILLAGE, "photos uploaded")]
    assert detail["status"] == "resolved" and detail["finding"] == "confirmed_source"


def test_moves_the_lifecycle_refuses_are_409_and_bad_bodies_422(api: Api) -> None:
    a, headers = api.seeded.a, api.login(VILLAGE)
    url = f"/v1/incidents/{a.id}"
    early = api.client.post(f"{url}/dispatch", headers=headers, json={"reason": "x"})
    assert early.status_code == 409 and "open -> dispatched" in early.json()["detail"]
    for body in ({"reason": "x", "finding": "aliens"}, {"reason": "x"}):
        assert api.client.post(f"{url}/resolve", headers=headers, json=body).status_code == 422
    for reason in ("", "   ", "nul\x00byte"):
        blank = api.client.post(f"{url}/acknowledge", headers=headers, json={"reason": reason})
        assert blank.status_code == 422, reason
    assert api.store.get(a.id).status == "open"


def test_reassign_only_to_an_officer_who_covers_the_incident(api: Api) -> None:
    a, headers = api.seeded.a, api.login(CHIEF)
    url = f"/v1/incidents/{a.id}/reassign"
    for target in (OTHER_VILLAGE, "nobody"):
        refused = api.client.post(url, headers=headers, json={"officer_id": target, "reason": "x"})
        assert refused.status_code == 422, target
    to_county = api.client.post(
        url, headers=headers, json={"officer_id": COUNTY, "reason": "needs the 生态环境局"}
    )
    assert to_county.status_code == 200 and to_county.json()["officer_id"] == COUNTY
    [entry] = [e for e in api.store.audit(a.id) if e.action == "reassigned"]
    assert (entry.actor, entry.detail) == (CHIEF, {"from_officer": VILLAGE, "to_officer": COUNTY})


# --- tokens ---------------------------------------------------------------------------------


def test_login_gives_a_token_that_works_and_only_its_digest_is_stored(
    api: Api, tmp_path: Path
) -> None:
    response = api.client.post("/v1/login", json={"officer_id": VILLAGE, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["officer_id"] == VILLAGE
    assert datetime.fromisoformat(body["expires_at"]) == api.clock.now + timedelta(hours=1)
    token = body["access_token"]
    me = api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["officer_id"] == VILLAGE
    api.store.close()  # flush the WAL into the file
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("incidents.sqlite*"))
    assert token.encode() not in stored


@pytest.mark.parametrize(
    ("officer_id", "password"),
    [(VILLAGE, "wrong"), ("nobody", PASSWORD), (COUNTY, PASSWORD), ("ghost", PASSWORD)],
    ids=["wrong-password", "unknown-officer", "no-password-set", "not-in-grid-file"],
)
def test_login_refused(api: Api, officer_id: str, password: str) -> None:
    response = api.client.post("/v1/login", json={"officer_id": officer_id, "password": password})
    assert response.status_code == 401
    assert response.json() == {"detail": "officer id or password wrong"}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer nonsense", "Bearer tw_" + "A" * 43, "Basic dXNlcjpwYXNz"],
)
def test_bad_tokens_are_401(api: Api, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("/v1/me", "/v1/incidents", f"/v1/incidents/{api.seeded.a.id}"):
        response = api.client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_token_expires(api: Api) -> None:
    headers = api.login(VILLAGE)
    api.clock.advance(3599)
    assert api.client.get("/v1/me", headers=headers).status_code == 200
    api.clock.advance(1)
    assert api.client.get("/v1/me", headers=headers).status_code == 401


def test_logout_revokes_that_token_only(api: Api) -> None:
    first, second = api.login(VILLAGE), api.login(VILLAGE)
    assert api.client.post("/v1/logout", headers=first).status_code == 204
    assert api.client.get("/v1/me", headers=first).status_code == 401
    assert api.client.get("/v1/me", headers=second).status_code == 200


def test_revoking_an_officer_ends_all_their_tokens(api: Api) -> None:
    tokens = [api.login(VILLAGE) for _ in range(3)]
    chief = api.login(CHIEF)
    assert api.tokens.revoke_officer(VILLAGE) == 3
    assert all(api.client.get("/v1/me", headers=h).status_code == 401 for h in tokens)
    assert api.client.get("/v1/me", headers=chief).status_code == 200


def test_an_officer_removed_from_the_grid_file_loses_access(api: Api) -> None:
    headers = api.login("ghost")  # a live token, but no such officer in the grid file
    assert api.client.get("/v1/me", headers=headers).status_code == 401


def test_tokens_and_passwords_are_never_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    login = api.client.post("/v1/login", json={"officer_id": VILLAGE, "password": PASSWORD})
    token = login.json()["access_token"]
    api.client.get("/v1/incidents", headers={"Authorization": f"Bearer {token}"})
    api.client.post("/v1/login", json={"officer_id": VILLAGE, "password": "guess"})
    assert token not in caplog.text and PASSWORD not in caplog.text and "guess" not in caplog.text


# --- login rate limit -------------------------------------------------------------------------


def test_login_is_rate_limited_per_officer(api: Api) -> None:
    wrong = {"officer_id": VILLAGE, "password": "wrong"}
    assert [api.client.post("/v1/login", json=wrong).status_code for _ in range(5)] == [401] * 5
    limited = api.client.post("/v1/login", json={"officer_id": VILLAGE, "password": PASSWORD})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
    # Another officer from the same address is not held up by VILLAGE's bucket.
    chief = api.client.post("/v1/login", json={"officer_id": CHIEF, "password": PASSWORD})
    assert chief.status_code == 200
    api.clock.advance(60)  # one attempt back a minute later
    right = {"officer_id": VILLAGE, "password": PASSWORD}
    assert api.client.post("/v1/login", json=right).status_code == 200
    assert api.client.post("/v1/login", json=right).status_code == 429


def test_login_is_rate_limited_per_client_address(api: Api) -> None:
    codes = [
        api.client.post("/v1/login", json={"officer_id": f"guess-{i}", "password": "x"}).status_code
        for i in range(21)
    ]
    assert codes == [401] * 20 + [429]
    # A blocked address did not use up the officer's own bucket.
    api.clock.advance(6)
    right = {"officer_id": VILLAGE, "password": PASSWORD}
    assert api.client.post("/v1/login", json=right).status_code == 200


def test_token_buckets_forget_refilled_keys_and_stay_bounded() -> None:
    buckets = TokenBuckets(capacity=2, refill_s=10.0, max_keys=3)
    for i in range(10):
        assert buckets.wait_s(f"k{i}", 0.0) == 0.0
        buckets.take(f"k{i}", 0.0)
    assert len(buckets._buckets) <= 3
    buckets.take("k9", 0.0)
    assert buckets.wait_s("k9", 0.0) == pytest.approx(10.0)
    assert buckets.wait_s("k9", 5.0) == pytest.approx(5.0)
    assert buckets.wait_s("k9", 10.0) == 0.0


# --- over a real socket -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_over_a_real_socket(tmp_path: Path) -> None:
    built = _build(tmp_path, {VILLAGE: _hashed()})
    built.clock.now = datetime.now(UTC)  # uvicorn's clients see the wall clock's token expiry
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(built.client.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            assert client.get("/openapi.json").json()["info"]["title"] == "tianwang officer API"
            login = client.post("/v1/login", json={"officer_id": VILLAGE, "password": PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            [item] = client.get("/v1/incidents", headers=headers).json()["items"]
            acked = client.post(
                f"/v1/incidents/{item['id']}/acknowledge", headers=headers, json={"reason": "ok"}
            )
            assert acked.json()["status"] == "acknowledged"
            assert client.post("/v1/logout", headers=headers).status_code == 204
            assert client.get("/v1/me", headers=headers).status_code == 401
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        built.client.close()
        built.store.close()
    assert not thread.is_alive()
