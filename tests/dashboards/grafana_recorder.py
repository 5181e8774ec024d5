"""A small HTTP server on a free loopback port that records what a Grafana HTTP API client
sends and answers as Grafana's documented API does, for the parts ``dashboards push`` uses:

- ``GET /api/folders/:uid`` (404 when missing), ``POST /api/folders`` {uid, title}
  (409 when the uid exists) — https://grafana.com/docs/grafana/latest/developers/http_api/folder/
- ``GET /api/datasources/uid/:uid`` (404 when missing), ``POST /api/datasources`` (409 when
  the name exists), ``PUT /api/datasources/uid/:uid`` — .../http_api/data_source/
- ``POST /api/dashboards/db`` {dashboard, folderUid, overwrite, message}: 412 when the uid
  exists and overwrite is not true, 400 for a folder that does not exist; the answer carries
  id, uid, url, status, version, slug — .../http_api/dashboard/
- every request needs ``Authorization: Bearer <token>`` (401 otherwise); bodies are JSON.

A request outside that, or with a body of another shape, is recorded as a violation and
answered 400 or 404, so a test sees it. ``fail`` makes one path answer an error.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

DASHBOARD_KEYS = {"dashboard", "folderUid", "folderId", "overwrite", "message"}
FOLDER_KEYS = {"uid", "title", "parentUid", "description"}
DATASOURCE_REQUIRED = {"name", "type", "access"}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class GrafanaState:
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> stored


class RecordingGrafana:
    """``with RecordingGrafana(token) as grafana:`` serves on ``grafana.url``."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.state = GrafanaState()
        self.failures: dict[tuple[str, str], tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail(self, method: str, path: str, status: int, message: str) -> None:
        self.failures[(method, path)] = (status, message)

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- the API ----------------------------------------------------------------------------

    def answer(self, request: Recorded) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return 401, {"message": "Unauthorized"}
            failure = self.failures.get((request.method, request.path))
            if failure is not None:
                return failure[0], {"message": failure[1]}
            if request.method in ("POST", "PUT"):
                if not request.headers.get("content-type", "").startswith("application/json"):
                    return self._violation(f"{request.path}: body is not JSON")
                if not isinstance(request.body, dict):
                    return self._violation(f"{request.path}: body is not an object")
            return self._route(request)

    def _violation(self, text: str, status: int = 400) -> tuple[int, Any]:
        self.violations.append(text)
        return status, {"message": text}

    def _route(self, r: Recorded) -> tuple[int, Any]:
        s = self.state
        if match := re.fullmatch(r"/api/folders/([\w-]+)", r.path):
            if r.method == "GET":
                folder = s.folders.get(match[1])
                return (200, folder) if folder else (404, {"message": "folder not found"})
        elif r.path == "/api/folders" and r.method == "POST":
            return self._create_folder(r.body)
        elif match := re.fullmatch(r"/api/datasources/uid/([\w-]+)", r.path):
            if r.method == "GET":
                source = s.datasources.get(match[1])
                return (200, source) if source else (404, {"message": "Data source not found"})
            if r.method == "PUT":
                return self._update_datasource(match[1], r.body)
        elif r.path == "/api/datasources" and r.method == "POST":
            return self._create_datasource(r.body)
        elif r.path == "/api/dashboards/db" and r.method == "POST":
            return self._save_dashboard(r.body)
        return self._violation(f"{r.method} {r.path} is not an API this client should use", 404)

    def _create_folder(self, body: dict[str, Any]) -> tuple[int, Any]:
        if not set(body) <= FOLDER_KEYS or not isinstance(body.get("title"), str):
            return self._violation(f"POST /api/folders: bad body {sorted(body)}")
        uid = body.get("uid") or f"f{len(self.state.folders)}"
        if uid in self.state.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        folder = {"id": len(self.state.folders) + 1, "uid": uid, "title": body["title"]}
        self.state.folders[uid] = folder
        return 200, folder

    def _create_datasource(self, body: dict[str, Any]) -> tuple[int, Any]:
        if not set(body) >= DATASOURCE_REQUIRED:
            return self._violation(f"POST /api/datasources: missing {DATASOURCE_REQUIRED}")
        if any(d["name"] == body["name"] for d in self.state.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        uid = body.get("uid") or f"d{len(self.state.datasources)}"
        source = {**body, "id": len(self.state.datasources) + 1, "uid": uid}
        self.state.datasources[uid] = source
        return 200, {"message": "Datasource added", "id": source["id"], "name": body["name"],
                     "datasource": source}  # fmt: skip

    def _update_datasource(self, uid: str, body: dict[str, Any]) -> tuple[int, Any]:
        old = self.state.datasources.get(uid)
        if old is None:
            return 404, {"message": "Data source not found"}
        if not set(body) >= DATASOURCE_REQUIRED:
            return self._violation(f"PUT /api/datasources/uid/{uid}: missing fields")
        source = {**body, "id": old["id"], "uid": uid}
        self.state.datasources[uid] = source
        return 200, {"message": "Datasource updated", "id": old["id"], "name": body["name"],
                     "datasource": source}  # fmt: skip

    def _save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        if not set(body) <= DASHBOARD_KEYS or not isinstance(body.get("dashboard"), dict):
            return self._violation(f"POST /api/dashboards/db: bad body {sorted(body)}")
        model = body["dashboard"]
        uid, title = model.get("uid"), model.get("title")
        if not (isinstance(uid, str) and uid and isinstance(title, str) and title):
            return self._violation("POST /api/dashboards/db: dashboard without uid or title")
        folder = body.get("folderUid")
        if folder and folder not in self.state.folders:
            return 400, {"message": "folder not found"}
        old = self.state.dashboards.get(uid)
        if old is not None and body.get("overwrite") is not True:
            return 412, {"status": "name-exists", "message": "A dashboard with the same uid "
                         "already exists"}  # fmt: skip
        version = old["version"] + 1 if old else 1
        number = old["id"] if old else len(self.state.dashboards) + 1
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        self.state.dashboards[uid] = {"id": number, "version": version, "folderUid": folder,
                                      "model": model}  # fmt: skip
        return 200, {"id": number, "uid": uid, "url": f"/d/{uid}/{slug}", "status": "success",
                     "version": version, "slug": slug}  # fmt: skip


def _handler(grafana: RecordingGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = grafana.answer(Recorded(self.command, self.path, headers, body))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    return Handler
