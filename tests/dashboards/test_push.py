"""``tianwang dashboards push`` against a recording server that answers as Grafana's HTTP API
documents (tests/dashboards/grafana_recorder.py): the requests, their bodies, idempotency,
and a clear error with a non-zero exit when Grafana refuses."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from dashboards import DATASOURCE_UID, build_dashboards
from tests.dashboards.grafana_recorder import RecordingGrafana
from tianwang.cli import main

TOKEN = "glsa_test-token"
FOLDER_UID = "tianwang"


@pytest.fixture
def grafana() -> Iterator[RecordingGrafana]:
    with RecordingGrafana(TOKEN) as server:
        yield server


def push(grafana: RecordingGrafana, token: str = TOKEN, url: str | None = None) -> int:
    return main(["dashboards", "push", "--url", url or grafana.url, "--token", token,
                 "--lang", "en", "--influx", "http://influx.example:8086"])  # fmt: skip


def test_first_push_creates_folder_datasource_and_dashboards(
    grafana: RecordingGrafana, capsys: pytest.CaptureFixture
) -> None:
    assert push(grafana) == 0
    boards = build_dashboards("en")
    assert grafana.calls() == [
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("POST", "/api/folders"),
        ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
        ("POST", "/api/datasources"),
        *[("POST", "/api/dashboards/db")] * len(boards),
    ]
    assert grafana.violations == []
    for request in grafana.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
    saves = [r.body for r in grafana.requests if r.path == "/api/dashboards/db"]
    for body in saves:
        assert set(body) == {"dashboard", "folderUid", "overwrite", "message"}
        assert body["overwrite"] is True and body["folderUid"] == FOLDER_UID
        assert "id" not in body["dashboard"]
    assert {b["dashboard"]["uid"] for b in saves} == set(boards)
    state = grafana.state
    assert list(state.folders) == [FOLDER_UID]
    (source,) = state.datasources.values()
    assert source["uid"] == DATASOURCE_UID and source["type"] == "influxdb"
    assert source["url"] == "http://influx.example:8086"
    assert source["jsonData"] == {"version": "InfluxQL", "dbName": "tianwang", "httpMode": "POST"}
    for uid, stored in state.dashboards.items():
        assert stored["folderUid"] == FOLDER_UID and stored["version"] == 1
        assert stored["model"]["panels"] == boards[uid]["panels"]
    out = json.loads(capsys.readouterr().out)
    assert out == {"folder": "created", "datasource": "created",
                   "dashboards": dict.fromkeys(boards, 1)}  # fmt: skip


def test_pushing_again_updates_in_place(
    grafana: RecordingGrafana, capsys: pytest.CaptureFixture
) -> None:
    assert push(grafana) == 0
    first = len(grafana.requests)
    capsys.readouterr()
    assert push(grafana) == 0
    again = grafana.calls()[first:]
    boards = build_dashboards("en")
    assert again == [
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
        ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}"),
        *[("POST", "/api/dashboards/db")] * len(boards),
    ]
    assert grafana.violations == []
    state = grafana.state
    assert len(state.folders) == 1 and len(state.datasources) == 1
    assert set(state.dashboards) == set(boards)
    assert {stored["version"] for stored in state.dashboards.values()} == {2}
    out = json.loads(capsys.readouterr().out)
    assert out["folder"] == "exists" and out["datasource"] == "updated"


def test_a_refused_dashboard_is_a_clear_error_and_a_failing_exit(
    grafana: RecordingGrafana, capsys: pytest.CaptureFixture
) -> None:
    grafana.fail("POST", "/api/dashboards/db", 500, "database is locked")
    assert push(grafana) == 1
    err = capsys.readouterr().err
    assert "cannot push the dashboards" in err
    assert "dashboard tianwang-" in err and "500" in err and "database is locked" in err


def test_a_wrong_token_is_refused(grafana: RecordingGrafana, capsys: pytest.CaptureFixture) -> None:
    assert push(grafana, token="wrong") == 1
    err = capsys.readouterr().err
    assert "folder" in err and "401" in err and "Unauthorized" in err
    assert grafana.state.dashboards == {}


def test_no_grafana_listening_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert main(["dashboards", "push", "--url", url, "--token", TOKEN]) == 1
    assert "cannot reach Grafana" in capsys.readouterr().err
