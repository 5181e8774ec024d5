"""The node registry: the county's places, nodes and officers, read from a grid file (YAML).

Ingest checks nodes and topic paths against it, firmware_sim builds its fleet from it and
grid routes incidents with it: to the officer on duty in the node's village cell, then up
to the township and the county (``on_duty``, ``escalation_path``). Format:
docs/architecture.md and examples/county.yaml, examples/county_large.yaml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tianwang.escalation import (
    LEVELS,
    Escalation,
    EscalationError,
    default_escalation,
    parse_escalation,
)
from tianwang.quantities import quantity_table
from tianwang.roster import RosterError, Rota, always, check_timezone, parse_rota
from tianwang.standards import NOISE_ZONES, WATER_CLASSES, Permit
from tianwang.topics import NodeTopic

_IDENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class RegistryError(ValueError):
    """A grid file that cannot be used; the message names the offending field."""


# the role whose holders are on duty in a cell of each level
ROLES = {"village": "grid_officer", "township": "grid_chief", "county": "county_officer"}
CellKey = tuple[str, ...]  # () the county, (township,), (township, village)


@dataclass(frozen=True, slots=True)
class Officer:
    id: str
    name: str
    phone: str
    email: str = ""
    mqtt: str = ""  # notification channels, optional
    webhook: str = ""


@dataclass(frozen=True, slots=True)
class Cell:
    """A grid cell (网格): the county, a township or a village; ``holders`` hold its role
    (``ROLES``) and ``rota`` says which of them is on duty when (None: nobody holds it,
    allowed for a township or the county, which escalation then skips)."""

    key: CellKey
    path: str  # "county/township/village", as a roster names the cell
    name: str
    role: str
    holders: tuple[str, ...]
    rota: Rota | None

    @property
    def level(self) -> str:
        return LEVELS[2 - len(self.key)]


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    place: NodeTopic
    lat: float
    lon: float
    zone_class: int  # GB 3095 ambient air zone grade, 1 or 2
    sampling_s: float
    quantities: tuple[str, ...]
    water_class: str = "III"  # GB 3838 target class of the water body, I-V
    noise_zone: str = "2"  # GB 3096 acoustic functional zone, 0-4b
    permit: str | None = None  # id of the site's permit (Registry.permits)


@dataclass(frozen=True, slots=True)
class Village:
    id: str
    name: str
    township: str
    officer: Officer  # its first grid_officer; who is on duty when: Registry.on_duty


@dataclass(frozen=True, slots=True)
class Registry:
    county: str
    county_name: str
    timezone: str
    township_names: dict[str, str]
    villages: dict[tuple[str, str], Village]
    nodes: dict[str, Node]
    permits: dict[str, Permit] = field(default_factory=dict)
    officers: dict[str, Officer] = field(default_factory=dict)
    cells: dict[CellKey, Cell] = field(default_factory=dict)
    escalation: dict[str, Escalation] = field(default_factory=default_escalation)

    def limit_class(self, node: Node, quantity: str) -> str:
        """Which limits judge this node's quantity (tianwang.standards.LimitBook): the site's
        permit where it sets one for the quantity (a source monitor is not judged against
        ambient standards), else the standard of the quantity's medium for the node's class."""
        if node.permit is not None and self.permits[node.permit].covers(quantity):
            return f"permit:{node.permit}"
        medium = quantity_table().quantities[quantity].medium
        if medium == "water":
            return f"water:{node.water_class}"
        if medium == "noise":
            return f"noise:{node.noise_zone}"
        return f"air:{node.zone_class}"

    def village_of(self, node: Node) -> Village:
        return self.villages[(node.place.township, node.place.village)]

    def place_name(self, node: Node) -> str:
        village = self.village_of(node)
        return f"{self.county_name} {self.township_names[village.township]} {village.name}"

    def cell(self, ref: Cell | Village | CellKey) -> Cell:
        if isinstance(ref, Cell):
            return ref
        return self.cells[(ref.township, ref.id) if isinstance(ref, Village) else ref]

    def on_duty(self, cell: Cell | Village | CellKey, at: datetime) -> Officer:
        """The officer on duty in ``cell`` at ``at`` (timezone-aware); LookupError if
        nobody holds the cell's role."""
        rota = self._rota(cell)
        return self.officers[rota.at(at)]

    def hand_off_times(self, cell: Cell | Village | CellKey, start: datetime,
                       end: datetime) -> list[tuple[datetime, Officer]]:  # fmt: skip
        """Each time in ``[start, end)`` at which duty in ``cell`` passes to another
        officer, with that officer: an open incident is handed over then."""
        return [(t, self.officers[o]) for t, o in self._rota(cell).hand_offs(start, end)]

    def escalation_path(self, node: Node, severity: str) -> tuple[Cell, ...]:
        """The cells an incident of ``severity`` at ``node`` climbs through, in order:
        village, township, county, up to the policy's ``up_to``, skipping a township or
        county where nobody holds the role. Each gets ``ack_within_min`` to acknowledge."""
        place = node.place
        keys = [(place.township, place.village), (place.township,), ()]
        top = LEVELS.index(self.escalation[severity].up_to)
        return tuple(self.cells[k] for k in keys[: top + 1] if self.cells[k].rota is not None)

    def _rota(self, cell: Cell | Village | CellKey) -> Rota:
        found = self.cell(cell)
        if found.rota is None:
            raise LookupError(f"{found.path}: nobody holds {found.role}")
        return found.rota


def _need(raw: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(raw, dict) or key not in raw or raw[key] in (None, ""):
        raise RegistryError(f"{where}.{key}: missing")
    return raw[key]


def _ident(raw: dict[str, Any], where: str) -> str:
    """An id that is safe as a topic level (no '/', '+', '#') and as an InfluxDB tag."""
    value = str(_need(raw, "id", where))
    if not _IDENT.fullmatch(value):
        raise RegistryError(f"{where}.id: {value!r} must match {_IDENT.pattern}")
    return value


def _number(raw: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = raw.get(key, default) if default is not None else _need(raw, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RegistryError(f"{where}.{key}: must be a number, got {value!r}")
    return float(value)


def _choice(raw: dict[str, Any], key: str, where: str, allowed: tuple[str, ...],
            default: str) -> str:  # fmt: skip
    value = str(raw.get(key, default))
    if value not in allowed:
        raise RegistryError(f"{where}.{key}: must be one of {', '.join(allowed)}, got {value!r}")
    return value


_PERMIT_PERIODS = ("1h", "24h")


def _permit(raw: dict[str, Any], where: str) -> Permit:
    """A permit: id, holder, clause (where its limits come from) and limits, each
    ``{quantity, period: 1h|24h, max and/or min}``."""
    limits: dict[tuple[str, str], tuple[float, float]] = {}
    for li, entry in enumerate(_need(raw, "limits", where)):
        at = f"{where}.limits[{li}]"
        quantity = str(_need(entry, "quantity", at))
        if quantity not in quantity_table().quantities:
            raise RegistryError(f"{at}.quantity: unknown quantity {quantity!r}")
        period = _choice(entry, "period", at, _PERMIT_PERIODS, "1h")
        if "max" not in entry and "min" not in entry:
            raise RegistryError(f"{at}: needs max or min")
        upper = _number(entry, "max", at) if "max" in entry else float("inf")
        lower = _number(entry, "min", at) if "min" in entry else float("-inf")
        if lower > upper:
            raise RegistryError(f"{at}: min {lower:g} is above max {upper:g}")
        if (quantity, period) in limits:
            raise RegistryError(f"{at}: duplicate limit for {quantity} {period}")
        limits[(quantity, period)] = (lower, upper)
    return Permit(_ident(raw, where), str(raw.get("holder", "")),
                  str(_need(raw, "clause", where)), limits)  # fmt: skip


def _permits(raw: list[Any] | None) -> dict[str, Permit]:
    permits: dict[str, Permit] = {}
    for pi, entry in enumerate(raw or []):
        permit = _permit(entry, f"permits[{pi}]")
        if permit.id in permits:
            raise RegistryError(f"permits[{pi}].id: duplicate permit {permit.id!r}")
        permits[permit.id] = permit
    return permits


def _node(raw: dict[str, Any], place: tuple[str, str, str], where: str) -> Node:
    node_id = _ident(raw, where)
    quantities = tuple(_need(raw, "quantities", where))
    known = quantity_table().quantities
    for q in quantities:
        if q not in known:
            raise RegistryError(f"{where}.quantities: unknown quantity {q!r}")
    zone_class = raw.get("zone_class", 2)
    if zone_class not in (1, 2) or isinstance(zone_class, bool | float):
        raise RegistryError(f"{where}.zone_class: must be 1 or 2, got {zone_class!r}")
    sampling_s = _number(raw, "sampling_s", where, 60.0)
    if not 0 < sampling_s <= 3600:
        raise RegistryError(f"{where}.sampling_s: must be in (0, 3600], got {sampling_s}")
    return Node(
        id=node_id,
        place=NodeTopic(*place, node_id),
        lat=_number(raw, "lat", where),
        lon=_number(raw, "lon", where),
        zone_class=zone_class,
        sampling_s=sampling_s,
        quantities=quantities,
        water_class=_choice(raw, "water_class", where, WATER_CLASSES, "III"),
        noise_zone=_choice(raw, "noise_zone", where, NOISE_ZONES, "2"),
        permit=str(raw["permit"]) if raw.get("permit") is not None else None,
    )


def _officer(raw: dict[str, Any], where: str) -> Officer:
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: must be a mapping with id, name and phone")
    optional = {k: str(raw.get(k) or "") for k in ("phone", "email", "mqtt", "webhook")}
    return Officer(id=_ident(raw, where), name=str(_need(raw, "name", where)), **optional)


def _officers(raw: list[Any] | None) -> dict[str, Officer]:
    officers: dict[str, Officer] = {}
    for oi, entry in enumerate(raw or []):
        officer = _officer(entry, f"officers[{oi}]")
        if officer.id in officers:
            raise RegistryError(f"officers[{oi}].id: duplicate officer {officer.id!r}")
        officers[officer.id] = officer
    return officers


@dataclass(slots=True)
class _Draft:
    """A cell as read from its township, village or county entry, before the rosters."""

    key: CellKey
    path: str
    name: str
    role: str
    holders: tuple[str, ...]
    where: str  # of the role field, for messages


def _holders(raw: dict[str, Any], role: str, where: str, required: bool) -> tuple[str, ...]:
    """The officer ids of a role: one id or a list of them."""
    value = raw.get(role)
    if value in (None, "", []):
        if required:
            raise RegistryError(f"{where}.{role}: missing")
        return ()
    ids = tuple(str(v) for v in (value if isinstance(value, list) else [value]))
    if len(set(ids)) != len(ids):
        raise RegistryError(f"{where}.{role}: an officer is listed twice in {ids}")
    return ids


def _village_holders(raw: dict[str, Any], where: str,
                     officers: dict[str, Officer]) -> tuple[str, ...]:  # fmt: skip
    """``grid_officer`` ids, or the legacy inline ``officer`` (declared here, on duty all
    the time)."""
    if raw.get("officer") in (None, ""):
        if raw.get("grid_officer") in (None, "", []):
            # names `officer` too: the field a legacy file lacks
            raise RegistryError(f"{where}.officer: missing; a village needs grid_officer "
                                "(officer ids) or an inline officer")  # fmt: skip
        return _holders(raw, "grid_officer", where, required=True)
    if raw.get("grid_officer") not in (None, "", []):
        raise RegistryError(f"{where}: has both officer and grid_officer; use grid_officer")
    officer = _officer(raw["officer"], f"{where}.officer")
    if officers.setdefault(officer.id, officer) != officer:
        raise RegistryError(f"{where}.officer: officer {officer.id!r} is declared elsewhere "
                            "with other details")  # fmt: skip
    return (officer.id,)


def _rosters(raw: list[Any] | None, drafts: dict[str, _Draft],
             timezone: str) -> dict[str, tuple[Rota, str]]:  # fmt: skip
    """Cell path -> (rota, where) of the top-level ``rosters`` list."""
    rosters: dict[str, tuple[Rota, str]] = {}
    for ri, entry in enumerate(raw or []):
        where = f"rosters[{ri}]"
        path = str(_need(entry, "cell", where))
        draft = drafts.get(path)
        if draft is None:
            raise RegistryError(f"{where}.cell: unknown cell {path!r}; a cell is county, "
                                "county/township or county/township/village")  # fmt: skip
        if path in rosters:
            raise RegistryError(f"{where}.cell: {path!r} already has {rosters[path][1]}")
        rota = parse_rota(entry, where, timezone, draft.holders, draft.role)
        rosters[path] = (rota, where)
    return rosters


def _cell(draft: _Draft, roster: tuple[Rota, str] | None, timezone: str) -> Cell:
    if roster is not None:
        rota: Rota | None = roster[0]
    elif len(draft.holders) == 1:
        rota = always(draft.holders[0], timezone)
    elif draft.holders:
        raise RegistryError(f"{draft.where}.{draft.role}: {len(draft.holders)} officers and no "
                            f"roster for {draft.path!r} says who is on duty when")  # fmt: skip
    else:
        rota = None
    return Cell(draft.key, draft.path, draft.name, draft.role, draft.holders, rota)


def _check_known(drafts: dict[str, _Draft], officers: dict[str, Officer]) -> None:
    for draft in drafts.values():
        for officer_id in draft.holders:
            if officer_id not in officers:
                raise RegistryError(f"{draft.where}.{draft.role}: unknown officer "
                                    f"{officer_id!r}")  # fmt: skip


def parse_registry(raw: dict[str, Any]) -> Registry:
    try:
        return _parse(raw)
    except (RosterError, EscalationError) as exc:
        raise RegistryError(str(exc)) from None


def _parse(raw: dict[str, Any]) -> Registry:
    county = _need(raw, "county", "grid")
    county_id = _ident(county, "county")
    timezone = check_timezone(county.get("timezone", "Asia/Shanghai"), "county.timezone")
    townships: dict[str, str] = {}
    village_raw: dict[tuple[str, str], dict[str, Any]] = {}
    nodes: dict[str, Node] = {}
    permits = _permits(raw.get("permits"))
    officers = _officers(raw.get("officers"))
    county_name = str(county.get("name", county_id))
    drafts = {
        county_id: _Draft(
            (),
            county_id,
            county_name,
            ROLES["county"],
            _holders(county, ROLES["county"], "county", False),
            "county",
        )
    }
    for ti, township in enumerate(_need(raw, "townships", "grid")):
        t_where = f"townships[{ti}]"
        t_id = _ident(township, t_where)
        if t_id in townships:
            raise RegistryError(f"{t_where}.id: duplicate township {t_id!r}")
        townships[t_id] = str(township.get("name", t_id))
        t_path = f"{county_id}/{t_id}"
        drafts[t_path] = _Draft(
            (t_id,),
            t_path,
            townships[t_id],
            ROLES["township"],
            _holders(township, ROLES["township"], t_where, False),
            t_where,
        )
        for vi, village in enumerate(_need(township, "villages", t_where)):
            v_where = f"{t_where}.villages[{vi}]"
            v_id = _ident(village, v_where)
            if (t_id, v_id) in village_raw:
                raise RegistryError(f"{v_where}.id: duplicate village {v_id!r}")
            village_raw[(t_id, v_id)] = village
            v_path = f"{t_path}/{v_id}"
            drafts[v_path] = _Draft((t_id, v_id), v_path, str(village.get("name", v_id)),
                                    ROLES["village"], _village_holders(village, v_where, officers),
                                    v_where)  # fmt: skip
            for ni, raw_node in enumerate(village.get("nodes") or []):
                node = _node(raw_node, (county_id, t_id, v_id), f"{v_where}.nodes[{ni}]")
                if node.id in nodes:
                    raise RegistryError(f"{v_where}.nodes[{ni}].id: duplicate node {node.id!r}")
                if node.permit is not None and node.permit not in permits:
                    raise RegistryError(
                        f"{v_where}.nodes[{ni}].permit: unknown permit {node.permit!r}"
                    )
                nodes[node.id] = node
    _check_known(drafts, officers)
    rosters = _rosters(raw.get("rosters"), drafts, timezone)
    cells = {d.key: _cell(d, rosters.get(path), timezone) for path, d in drafts.items()}
    villages = {
        key: Village(key[1], cells[key].name, key[0], officers[cells[key].holders[0]])
        for key in village_raw
    }
    return Registry(
        county=county_id,
        county_name=county_name,
        timezone=timezone,
        township_names=townships,
        villages=villages,
        nodes=nodes,
        permits=permits,
        officers=officers,
        cells=cells,
        escalation=parse_escalation(raw.get("escalation"), "escalation"),
    )


def load_registry(path: str | Path) -> Registry:
    try:
        raw = yaml.safe_load(Path(path).read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"{path}: {exc}") from exc
    return parse_registry(raw)
