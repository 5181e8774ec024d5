"""Create or update the folder, data source and dashboards in a running Grafana through its
HTTP API, with grafana-client: the only module that imports it (or requests).

Idempotent: the folder is created only when ``GET /api/folders/<uid>`` says it is missing,
the data source is created (``POST /api/datasources``) or replaced by uid
(``PUT /api/datasources/uid/<uid>``), and every dashboard goes to ``POST /api/dashboards/db``
with ``overwrite: true``, so pushing again updates in place (Grafana bumps the version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from dashboards._build import build_dashboards
from dashboards._influxql import DATASOURCE_UID
from dashboards._provision import FOLDER, datasource_model
from dashboards._text import Lang

PUSH_MESSAGE = "tianwang dashboards push"


class PushError(RuntimeError):
    """Grafana refused a request or could not be reached; the message says which step."""


@dataclass(frozen=True, slots=True)
class PushResult:
    folder: str  # "created" or "exists"
    datasource: str  # "created" or "updated"
    dashboards: dict[str, int]  # uid -> version Grafana reports


def push_dashboards(
    url: str,
    token: str,
    lang: Lang,
    influx_url: str = "http://127.0.0.1:8086",
    database: str = "tianwang",
    timeout_s: float = 10.0,
) -> PushResult:
    """Push the folder, the InfluxDB data source and the dashboards of ``lang`` to the Grafana
    at ``url`` (a service account token, sent as ``Authorization: Bearer``)."""
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    boards = build_dashboards(lang)
    folder = _step("folder", url, lambda: _ensure_folder(api))
    datasource = _step("data source", url, lambda: _put_datasource(api, influx_url, database))
    versions = {
        uid: _step(f"dashboard {uid}", url, lambda model=model: _put_dashboard(api, model))
        for uid, model in boards.items()
    }
    return PushResult(folder, datasource, versions)


def _step(what: str, url: str, call: Any) -> Any:
    """Run one API step; grafana-client's and requests' exceptions become PushError."""
    try:
        return call()
    except GrafanaException as exc:
        raise PushError(f"{what}: Grafana at {url} answered {exc.status_code}: "
                        f"{_message(exc.response)}") from exc  # fmt: skip
    except requests.RequestException as exc:
        raise PushError(f"{what}: cannot reach Grafana at {url}: {exc}") from exc


def _message(response: object) -> str:
    if isinstance(response, Mapping) and "message" in response:
        return str(response["message"])
    return str(response)[:300]


def _missing(call: Any) -> bool:
    """True when a GET answers 404 (anything else but success raises)."""
    try:
        call()
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return True
        raise
    return False


def _ensure_folder(api: GrafanaApi) -> str:
    uid, title = FOLDER
    if _missing(lambda: api.folder.get_folder(uid)):
        api.folder.create_folder(title, uid=uid)
        return "created"
    return "exists"


def _put_datasource(api: GrafanaApi, influx_url: str, database: str) -> str:
    model = datasource_model(influx_url, database)
    if _missing(lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID)):
        api.datasource.create_datasource(model)
        return "created"
    api.datasource.update_datasource_by_uid(DATASOURCE_UID, model)
    return "updated"


def _put_dashboard(api: GrafanaApi, model: dict[str, Any]) -> int:
    # No "id": Grafana finds the dashboard by uid, and overwrite replaces whatever is there.
    dashboard = {k: v for k, v in model.items() if k != "id"}
    body = {"dashboard": dashboard, "folderUid": FOLDER[0], "overwrite": True,
            "message": PUSH_MESSAGE}  # fmt: skip
    answer = api.dashboard.update_dashboard(body)
    return int(answer.get("version", 0)) if isinstance(answer, Mapping) else 0
