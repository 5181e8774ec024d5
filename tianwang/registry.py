"""The node registry: the county's places, nodes and officers, read from a grid file (YAML).

Ingest checks nodes and topic paths against it, firmware_sim builds its fleet from it and
grid routes incidents with it. Format: docs/architecture.md and examples/county.yaml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tianwang.quantities import quantity_table
from tianwang.standards import NOISE_ZONES, WATER_CLASSES, Permit
from tianwang.topics import NodeTopic

_IDENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class RegistryError(ValueError):
    """A grid file that cannot be used; the message names the offending field."""


@dataclass(frozen=True, slots=True)
class Officer:
    id: str
    name: str
    phone: str


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
    officer: Officer


@dataclass(frozen=True, slots=True)
class Registry:
    county: str
    county_name: str
    timezone: str
    township_names: dict[str, str]
    villages: dict[tuple[str, str], Village]
    nodes: dict[str, Node]
    permits: dict[str, Permit] = field(default_factory=dict)

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


def parse_registry(raw: dict[str, Any]) -> Registry:
    county = _need(raw, "county", "grid")
    county_id = _ident(county, "county")
    townships: dict[str, str] = {}
    villages: dict[tuple[str, str], Village] = {}
    nodes: dict[str, Node] = {}
    permits = _permits(raw.get("permits") if isinstance(raw, dict) else None)
    for ti, township in enumerate(_need(raw, "townships", "grid")):
        t_where = f"townships[{ti}]"
        t_id = _ident(township, t_where)
        if t_id in townships:
            raise RegistryError(f"{t_where}.id: duplicate township {t_id!r}")
        townships[t_id] = str(township.get("name", t_id))
        for vi, village in enumerate(_need(township, "villages", t_where)):
            v_where = f"{t_where}.villages[{vi}]"
            v_id = _ident(village, v_where)
            if (t_id, v_id) in villages:
                raise RegistryError(f"{v_where}.id: duplicate village {v_id!r}")
            officer = _need(village, "officer", v_where)
            villages[(t_id, v_id)] = Village(
                id=v_id,
                name=str(village.get("name", v_id)),
                township=t_id,
                officer=Officer(
                    id=_ident(officer, f"{v_where}.officer"),
                    name=str(_need(officer, "name", f"{v_where}.officer")),
                    phone=str(officer.get("phone", "")),
                ),
            )
            for ni, raw_node in enumerate(village.get("nodes") or []):
                node = _node(raw_node, (county_id, t_id, v_id), f"{v_where}.nodes[{ni}]")
                if node.id in nodes:
                    raise RegistryError(f"{v_where}.nodes[{ni}].id: duplicate node {node.id!r}")
                if node.permit is not None and node.permit not in permits:
                    raise RegistryError(
                        f"{v_where}.nodes[{ni}].permit: unknown permit {node.permit!r}"
                    )
                nodes[node.id] = node
    return Registry(
        county=county_id,
        county_name=str(county.get("name", county_id)),
        timezone=str(county.get("timezone", "Asia/Shanghai")),
        township_names=townships,
        villages=villages,
        nodes=nodes,
        permits=permits,
    )


def load_registry(path: str | Path) -> Registry:
    try:
        raw = yaml.safe_load(Path(path).read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"{path}: {exc}") from exc
    return parse_registry(raw)
