"""Officer HTTP API (FastAPI; OpenAPI at /openapi.json, pages at /docs).

An officer logs in (``POST /v1/login``) for a bearer token, then lists the incidents of
their jurisdiction and works them: acknowledge, dispatch, resolve with a finding, reassign,
add a note. Every change goes through ``IncidentStore`` and so into its audit log, with the
officer as the actor.

Jurisdiction (grid/_auth.py): an incident outside it is answered 404, for reads and writes
alike, the same answer as for an id that does not exist, so that its existence does not
leak. 401: no token, or an unknown, expired or revoked one. 409: a move the lifecycle does
not allow. 422: a malformed request, an unknown finding or a reassignment to an officer who
could not see the incident. 429: too many login attempts (``Retry-After``).

The officer console (grid/console, a static page) is served at ``/``; it logs in and polls
this API, with ``/v1/nodes`` for its map.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at
# runtime, and some name types local to create_app.
import math
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import yaml
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from grid._auth import Jurisdiction, LoginRefused, RateLimited, Tokens, jurisdiction
from grid._store import (
    ACTIVE_STATES,
    FINDINGS_FILE,
    STATES,
    AuditEntry,
    Incident,
    IncidentError,
    IncidentStore,
    UnknownIncident,
)
from tianwang.registry import Node, Registry

_IDENT = r"^[A-Za-z0-9_.-]{1,64}$"
_MAX_ID = 2**31 - 1  # an INTEGER column; a larger id is just not found


def _storable(text: str) -> str:
    # PostgreSQL refuses NUL in text and UTF-8 cannot carry a lone surrogate.
    if "\x00" in text:
        raise ValueError("must not contain NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    if not text.strip():
        raise ValueError("must not be blank")
    return text


Text = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_storable)]
Ident = Annotated[str, StringConstraints(pattern=_IDENT)]
IncidentId = Annotated[int, Path(ge=1, le=_MAX_ID, description="incident id", examples=[1])]
State = Literal["open", "acknowledged", "dispatched", "resolved", "closed"]
assert set(STATES) == set(State.__args__)  # type: ignore[attr-defined]


class LoginRequest(BaseModel):
    officer_id: Ident
    password: Annotated[
        str, StringConstraints(min_length=1, max_length=256), AfterValidator(_storable)
    ]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    officer_id: str
    expires_at: datetime


class RoleOut(BaseModel):
    level: Literal["village", "township", "county"]
    cell: str = Field(description="cell path: county, county/township or county/township/village")
    name: str


class MeOut(BaseModel):
    officer_id: str
    name: str
    county: str
    roles: list[RoleOut]


class IncidentOut(BaseModel):
    id: int
    scope: Literal["node", "township"]
    node: str | None
    quantity: str
    rule: str
    status: State
    county: str
    township: str
    village: str = Field(description='"" for a township parent')
    officer_id: str = Field(description="the assigned officer")
    parent_id: int | None
    severity: str
    assigned_level: str
    value: float | None = Field(description="last value (null if not finite)")
    peak: float | None
    limit_value: float | None
    unit: str
    standard: str
    edition: str
    events: int
    finding: str | None
    ack_due_at: datetime | None
    started_at: datetime | None
    updated_at: datetime | None
    ended_at: datetime | None


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description='officer id, or "system"')
    action: str
    from_status: str | None
    to_status: str | None
    reason: str
    detail: dict[str, Any] | None


class IncidentDetailOut(IncidentOut):
    audit: list[AuditOut]
    notes: list[AuditOut]
    attachments: list[AuditOut]


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    total: int = Field(description="matching incidents before limit and offset")
    limit: int
    offset: int


class ReasonIn(BaseModel):
    reason: Text


class ResolveIn(BaseModel):
    reason: Text
    finding: Ident = Field(description="a code of grid/data/findings.yaml")


class ReassignIn(BaseModel):
    officer_id: Ident = Field(description="the officer to take the incident over")
    reason: Text


class NoteIn(BaseModel):
    text: Text


class ErrorOut(BaseModel):
    detail: str


NodeState = Literal["offline", "open", "acknowledged", "normal"]


class NodeOut(BaseModel):
    id: str
    township: str
    township_name: str
    village: str
    village_name: str
    lat: float
    lon: float
    quantities: list[str]
    state: NodeState = Field(
        description="offline: an active node_offline incident; open: an incident not yet "
        "acknowledged; acknowledged: active incidents, all acknowledged or dispatched; normal"
    )
    incidents: list[int] = Field(description="ids of the node's active incidents")


class FindingOut(BaseModel):
    code: str
    label: str = Field(description="English description")
    label_zh: str = Field(description='Chinese label ("" if none)')


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _incident_out(incident: Incident) -> IncidentOut:
    fields = {name: getattr(incident, name) for name in IncidentOut.model_fields}
    return IncidentOut(**fields | {k: _finite(fields[k]) for k in ("value", "peak", "limit_value")})


def _audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(**{name: getattr(entry, name) for name in AuditOut.model_fields})


RULE_OFFLINE = "node_offline"  # ingest/_liveness.py: the liveness watch's rule
CONSOLE = FilePath(__file__).parent / "console"
# The console loads nothing from elsewhere: scripts, styles and requests stay on this origin.
_CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _node_state(active: list[Incident]) -> str:
    """Map colour of a node from its active incidents: offline (grey) first, since its other
    incidents are stale while it is silent; then open (red), acknowledged (amber), normal."""
    if any(i.rule == RULE_OFFLINE for i in active):
        return "offline"
    if any(i.status == "open" for i in active):
        return "open"
    return "acknowledged" if active else "normal"


def _zh_findings() -> dict[str, str]:
    try:
        raw = yaml.safe_load(FINDINGS_FILE.read_text(encoding="utf-8"))["findings"]
        return {str(code): str(entry.get("zh", "")) for code, entry in raw.items()}
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return {}


class _ConsoleFiles(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(_CONSOLE_HEADERS)
        return response


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:  # an offset that pushes year 1 or 9999 out of range
        raise HTTPException(422, "since: out of range") from None


_NOT_FOUND = "incident not found"
_AUTH = {401: {"model": ErrorOut, "description": "missing, unknown, expired or revoked token"}}
_READ = _AUTH | {404: {"model": ErrorOut, "description": "no such incident in your jurisdiction"}}
_WRITE = _READ | {
    409: {"model": ErrorOut, "description": "the lifecycle does not allow this move"},
}


def create_app(registry: Registry, store: IncidentStore, tokens: Tokens) -> FastAPI:
    app = FastAPI(
        title="tianwang officer API",
        version="1",
        description=(__doc__ or "").split("\n\n", 1)[1],
    )
    bearer = HTTPBearer(auto_error=False, description="token from POST /v1/login")

    def unauthorized(detail: str) -> HTTPException:
        return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})

    def officer(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Jurisdiction:
        if credentials is None:
            raise unauthorized("bearer token required")
        officer_id = tokens.officer(credentials.credentials)
        # An officer removed from the grid file loses access with their live tokens.
        if officer_id is None or officer_id not in registry.officers:
            raise unauthorized("token unknown, expired or revoked")
        return jurisdiction(registry, officer_id)

    Me = Annotated[Jurisdiction, Depends(officer)]

    def visible(me: Jurisdiction, incident_id: int) -> Incident:
        try:
            incident = store.get(incident_id)
        except UnknownIncident:
            raise HTTPException(404, _NOT_FOUND) from None
        if not me.covers(incident):
            raise HTTPException(404, _NOT_FOUND)
        return incident

    @app.exception_handler(IncidentError)
    def _conflict(_request: Request, exc: IncidentError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(UnknownIncident)
    def _gone(_request: Request, _exc: UnknownIncident) -> JSONResponse:
        return JSONResponse({"detail": _NOT_FOUND}, status_code=404)

    @app.post(
        "/v1/login",
        response_model=TokenOut,
        tags=["auth"],
        responses={
            401: {"model": ErrorOut, "description": "officer id or password wrong"},
            429: {"model": ErrorOut, "description": "too many attempts; see Retry-After"},
        },
    )
    def login(body: LoginRequest, request: Request) -> TokenOut:
        """A bearer token for the officer, valid for one shift (8 h by default)."""
        client = request.client.host if request.client else "unknown"
        try:
            issued = tokens.login(
                body.officer_id, body.password, client, allowed=body.officer_id in registry.officers
            )
        except RateLimited as exc:
            retry = str(math.ceil(exc.retry_after_s))
            raise HTTPException(429, str(exc), headers={"Retry-After": retry}) from None
        except LoginRefused:
            raise unauthorized("officer id or password wrong") from None
        return TokenOut(
            access_token=issued.token, officer_id=issued.officer_id, expires_at=issued.expires_at
        )

    @app.post("/v1/logout", status_code=204, tags=["auth"], responses=_AUTH)
    def logout(
        me: Me, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Response:
        """Revoke the token of this request."""
        assert credentials is not None  # `me` has checked it
        tokens.revoke(credentials.credentials)
        return Response(status_code=204)

    @app.get("/v1/me", response_model=MeOut, tags=["auth"], responses=_AUTH)
    def whoami(me: Me) -> MeOut:
        """The officer and the cells whose role they hold: their jurisdiction."""
        return MeOut(
            officer_id=me.officer_id,
            name=registry.officers[me.officer_id].name,
            county=me.county,
            roles=[RoleOut(level=r.level, cell=r.cell, name=r.name) for r in me.roles],
        )

    @app.get("/v1/incidents", response_model=IncidentPage, tags=["incidents"], responses=_AUTH)
    def list_incidents(
        me: Me,
        status: State | None = None,
        quantity: Annotated[str | None, Query(max_length=32)] = None,
        rule: Annotated[str | None, Query(max_length=32)] = None,
        township: Annotated[str | None, Query(max_length=64)] = None,
        village: Annotated[str | None, Query(max_length=64)] = None,
        node: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[
            datetime | None, Query(description="changed at or after (naive: UTC)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> IncidentPage:
        """Incidents of the caller's jurisdiction, newest first."""
        wanted = {
            "status": status,
            "quantity": quantity,
            "rule": rule,
            "township": township,
            "village": village,
            "node": node,
        }
        wanted = {k: v for k, v in wanted.items() if v is not None}
        after = _utc(since) if since is not None else None
        found = [
            i
            for i in reversed(store.all())
            if me.covers(i)
            and all(getattr(i, k) == v for k, v in wanted.items())
            and (after is None or (i.updated_at is not None and i.updated_at >= after))
        ]
        page = found[offset : offset + limit]
        return IncidentPage(
            items=[_incident_out(i) for i in page], total=len(found), limit=limit, offset=offset
        )

    @app.get(
        "/v1/incidents/{incident_id}",
        response_model=IncidentDetailOut,
        tags=["incidents"],
        responses=_READ,
    )
    def get_incident(me: Me, incident_id: IncidentId) -> IncidentDetailOut:
        """One incident with its audit log, notes and attachments."""
        incident = visible(me, incident_id)
        audit = [_audit_out(a) for a in store.audit(incident_id)]
        return IncidentDetailOut(
            **_incident_out(incident).model_dump(),
            audit=audit,
            notes=[a for a in audit if a.action == "note"],
            attachments=[a for a in audit if a.action == "attachment"],
        )

    def move(
        me: Jurisdiction, incident_id: int, to: str, reason: str, **finding: str
    ) -> IncidentOut:
        visible(me, incident_id)
        return _incident_out(store.transition(incident_id, to, me.officer_id, reason, **finding))

    @app.post(
        "/v1/incidents/{incident_id}/acknowledge",
        response_model=IncidentOut,
        tags=["incidents"],
        responses=_WRITE,
    )
    def acknowledge(me: Me, incident_id: IncidentId, body: ReasonIn) -> IncidentOut:
        """open -> acknowledged; stops the escalation timer."""
        return move(me, incident_id, "acknowledged", body.reason)

    @app.post(
        "/v1/incidents/{incident_id}/dispatch",
        response_model=IncidentOut,
        tags=["incidents"],
        responses=_WRITE,
    )
    def dispatch(me: Me, incident_id: IncidentId, body: ReasonIn) -> IncidentOut:
        """acknowledged -> dispatched: someone is on the way or on site."""
        return move(me, incident_id, "dispatched", body.reason)

    @app.post(
        "/v1/incidents/{incident_id}/resolve",
        response_model=IncidentOut,
        tags=["incidents"],
        responses=_WRITE | {422: {"model": ErrorOut, "description": "unknown finding"}},
    )
    def resolve(me: Me, incident_id: IncidentId, body: ResolveIn) -> IncidentOut:
        """acknowledged or dispatched -> resolved, with a finding."""
        # Checked before the incident is looked up: the answer says nothing about it.
        if body.finding not in store.findings:
            raise HTTPException(422, f"finding must be one of: {', '.join(store.findings)}")
        return move(me, incident_id, "resolved", body.reason, finding=body.finding)

    @app.post(
        "/v1/incidents/{incident_id}/reassign",
        response_model=IncidentOut,
        tags=["incidents"],
        responses=_WRITE | {422: {"model": ErrorOut, "description": "officer cannot take it"}},
    )
    def reassign(me: Me, incident_id: IncidentId, body: ReassignIn) -> IncidentOut:
        """Hand an active incident to another officer whose jurisdiction covers it."""
        incident = visible(me, incident_id)
        if body.officer_id not in registry.officers or not jurisdiction(
            registry, body.officer_id
        ).covers(incident):
            raise HTTPException(422, f"{body.officer_id} cannot take this incident")
        updated = store.reassign(incident_id, body.officer_id, me.officer_id, body.reason)
        return _incident_out(updated)

    @app.post(
        "/v1/incidents/{incident_id}/notes",
        response_model=AuditOut,
        status_code=201,
        tags=["incidents"],
        responses=_READ,
    )
    def add_note(me: Me, incident_id: IncidentId, body: NoteIn) -> AuditOut:
        """A note in the incident's audit log."""
        visible(me, incident_id)
        return _audit_out(store.add_note(incident_id, me.officer_id, body.text))

    # --- the officer console (grid/console): its page and what its map needs -------------

    def covers_node(me: Jurisdiction, node: Node) -> bool:
        place = node.place
        if place.county != me.county:
            return False
        return (
            me.whole_county
            or place.township in me.townships
            or (place.township, place.village) in me.villages
        )

    @app.get("/v1/nodes", response_model=list[NodeOut], tags=["console"], responses=_AUTH)
    def list_nodes(me: Me) -> list[NodeOut]:
        """The nodes of the caller's jurisdiction with their position and state (for the
        console's map)."""
        mine = [n for n in registry.nodes.values() if covers_node(me, n)]
        wanted = {n.id for n in mine}
        active: dict[str, list[Incident]] = {}
        for incident in store.active():
            if incident.node in wanted and incident.status in ACTIVE_STATES and me.covers(incident):
                active.setdefault(incident.node, []).append(incident)
        out = []
        for node in sorted(mine, key=lambda n: n.id):
            village = registry.village_of(node)
            found = active.get(node.id, [])
            out.append(
                NodeOut(
                    id=node.id,
                    township=village.township,
                    township_name=registry.township_names.get(village.township, ""),
                    village=village.id,
                    village_name=village.name,
                    lat=node.lat,
                    lon=node.lon,
                    quantities=list(node.quantities),
                    state=_node_state(found),
                    incidents=[i.id for i in found],
                )
            )
        return out

    @app.get("/v1/findings", response_model=list[FindingOut], tags=["console"], responses=_AUTH)
    def list_findings(_me: Me) -> list[FindingOut]:
        """The findings an incident may be resolved with (grid/data/findings.yaml)."""
        zh = _zh_findings()
        return [
            FindingOut(code=code, label=label, label_zh=zh.get(code, ""))
            for code, label in store.findings.items()
        ]

    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        """The officer console: a static page; it logs in and polls the API from the browser."""
        return FileResponse(CONSOLE / "index.html", headers=_CONSOLE_HEADERS)

    app.mount("/console", _ConsoleFiles(directory=CONSOLE), name="console")

    return app


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the API until interrupted. Behind a reverse proxy that terminates TLS, pass the
    proxy's address to uvicorn's ``forwarded_allow_ips`` so the login rate limit sees the
    officer's address rather than the proxy's."""
    import uvicorn  # here: importing grid need not load the server

    uvicorn.run(app, host=host, port=port, log_level="info")
