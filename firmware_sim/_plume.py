"""Pollution episodes: plumes from a source that reach neighbouring nodes late and weaker,
night-time discharges, construction dust.

Every episode has the same time shape at a node: the excess rises linearly over ``ramp_min``,
holds at its peak and falls linearly over the last ``ramp_min`` of ``duration_min``. An
episode without a ``source`` raises every targeted node at once by ``add`` (the original demo
format). With a ``source`` (lat, lon), a node at great-circle distance ``d`` gets the shape

    delayed by   d / speed               (``spread: {speed_m_s}``: isotropic), or
                 d cos(a) / speed        (``wind: {speed_m_s, from_deg, spread_deg}``: carried
                                          downwind; ``a`` is the angle between the node's
                                          bearing from the source and the downwind direction)
    scaled by    exp(-d / decay_km)      (times exp(-a^2 / (2 spread_deg^2)) with wind)

and nothing if ``d > range_km`` (default 3 decay lengths), if the scale is below
``min_fraction`` (default 0.01), or, with wind, if the node is not downwind (|a| >= 90°).
Candidates are the targeted nodes (``nodes``/``villages``/``townships``), or every node of the
grid when none is named.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from firmware_sim._parse import (
    Fields,
    ScenarioError,
    check_quantities,
    quantity_map,
    targets,
)
from tianwang.quantities import quantity_table
from tianwang.registry import Node, Registry

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
MIN_SPEED_M_S = 0.01
MAX_MIN = 10 * 366 * 1440.0  # no window is longer than ten years
EPISODE_KINDS = ("plume", "discharge", "construction_dust")
_EPISODE_KEYS = (
    "id", "kind", "nodes", "villages", "townships", "start_min", "duration_min", "ramp_min",
    "add", "source", "spread", "wind", "decay_km", "range_km", "min_fraction",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reach:
    """How an episode arrives at one node."""

    delay_min: float
    scale: float
    distance_km: float = 0.0


_DIRECT = Reach(0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Episode:
    """An injected pollution event over some nodes (see the module docstring).

    ``nodes`` are the nodes it reaches that measure one of the quantities it raises;
    ``reach`` says how (empty: every node at once, in full); ``add`` is the increment at the
    source, canonical units.
    """

    id: str
    nodes: frozenset[str]
    start_min: float
    duration_min: float
    ramp_min: float
    add: dict[str, float]
    kind: str = "plume"
    source: tuple[float, float] | None = None
    reach: dict[str, Reach] = field(default_factory=dict)

    def reach_of(self, node: str) -> Reach:
        return self.reach.get(node, _DIRECT)

    def shape(self, minute: float) -> float:
        """The time shape (0..1) at ``minute`` after the episode reached the node."""
        if minute < 0 or minute > self.duration_min:
            return 0.0
        ramp = max(self.ramp_min, 1e-9)
        return min(1.0, minute / ramp, (self.duration_min - minute) / ramp)

    def excess(self, quantity: str, minute: float, node: str | None = None) -> float:
        """The increment at ``node`` (default: an unscaled, undelayed node) at ``minute`` of
        the run; the slow, obvious reference for the vectorised ``EpisodeTrack``."""
        amount = self.add.get(quantity, 0.0)
        if not amount or (node is not None and node not in self.nodes):
            return 0.0
        r = self.reach_of(node) if node is not None else _DIRECT
        return amount * r.scale * self.shape(minute - self.start_min - r.delay_min)

    def peak(self, quantity: str, node: str) -> float:
        """The largest increment ``node`` sees."""
        top = min(1.0, self.duration_min / (2 * self.ramp_min)) if self.ramp_min > 0 else 1.0
        return self.add.get(quantity, 0.0) * self.reach_of(node).scale * top


class EpisodeTrack:
    """Every episode at one node, vectorised over episodes and the node's quantities."""

    def __init__(self, episodes: Sequence[Episode], node: str,
                 quantities: Sequence[str]) -> None:  # fmt: skip
        mine = [(e, e.reach_of(node)) for e in episodes if node in e.nodes]
        self.start_s = np.array([(e.start_min + r.delay_min) * 60 for e, r in mine])
        self.duration_s = np.array([e.duration_min * 60 for e, _ in mine])
        self.ramp_s = np.array([max(e.ramp_min * 60, 1e-9) for e, _ in mine])
        self.amount = np.array(
            [[e.add.get(q, 0.0) * r.scale for q in quantities] for e, r in mine]
        ).reshape(len(mine), len(quantities))
        self.first_s = float(self.start_s.min()) if mine else math.inf
        self.last_s = float((self.start_s + self.duration_s).max()) if mine else -math.inf

    def __bool__(self) -> bool:
        return len(self.start_s) > 0

    def at(self, elapsed_s: float) -> np.ndarray | None:
        """The increment per quantity ``elapsed_s`` after the run start, None when zero."""
        if elapsed_s < self.first_s or elapsed_s > self.last_s:
            return None
        t = elapsed_s - self.start_s
        f = np.minimum(np.minimum(t, self.duration_s - t) / self.ramp_s, 1.0)
        f = np.maximum(f, 0.0, out=f)
        if not f.any():
            return None
        return f @ self.amount


def haversine_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    p1, p2 = math.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons) - math.radians(lon)
    a = np.sin(dp / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def bearing_deg(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Initial great-circle bearing from (lat, lon) to each point, degrees clockwise from N."""
    p1, p2 = math.radians(lat), np.radians(lats)
    dl = np.radians(lons) - math.radians(lon)
    y = np.sin(dl) * np.cos(p2)
    x = math.cos(p1) * np.sin(p2) - math.sin(p1) * np.cos(p2) * np.cos(dl)
    return np.degrees(np.arctan2(y, x)) % 360.0


@dataclass(frozen=True, slots=True)
class Spread:
    speed_m_s: float
    decay_km: float
    range_km: float
    min_fraction: float
    from_deg: float | None = None  # wind direction (where it blows from); None: isotropic
    spread_deg: float = 30.0


def reach(source: tuple[float, float], spread: Spread, nodes: Sequence[Node]) -> dict[str, Reach]:
    """Delay and scale at each reached node (see the module docstring)."""
    lats = np.array([n.lat for n in nodes])
    lons = np.array([n.lon for n in nodes])
    d = haversine_km(*source, lats, lons)
    scale = np.exp(-d / spread.decay_km)
    path_km = d
    if spread.from_deg is not None:
        downwind = (spread.from_deg + 180.0) % 360.0
        angle = (bearing_deg(*source, lats, lons) - downwind + 180.0) % 360.0 - 180.0
        angle = np.where(d < 1e-9, 0.0, angle)  # at the source: no direction
        scale = scale * np.exp(-0.5 * (angle / spread.spread_deg) ** 2)
        scale = np.where(np.abs(angle) < 90.0, scale, 0.0)
        path_km = d * np.cos(np.radians(angle))
    delay_min = path_km * 1000.0 / spread.speed_m_s / 60.0
    keep = (d <= spread.range_km) & (scale >= spread.min_fraction)
    return {
        n.id: Reach(float(delay_min[i]), float(scale[i]), float(d[i]))
        for i, n in enumerate(nodes)
        if keep[i]
    }


def _spread(fields: Fields) -> Spread:
    decay = fields.number("decay_km", positive=True, high=1e4)
    common = {
        "decay_km": decay,
        "range_km": fields.number("range_km", 3 * decay, positive=True),
        "min_fraction": fields.number("min_fraction", 0.01, low=0, high=1),
    }
    if fields.has("spread") == fields.has("wind"):
        raise ScenarioError(f"{fields.where}: a source needs exactly one of spread or wind")
    if fields.has("spread"):
        spread = Fields(fields.get("spread"), fields.at("spread"), ("speed_m_s",))
        return Spread(spread.number("speed_m_s", low=MIN_SPEED_M_S, high=1e3), **common)
    wind = Fields(fields.get("wind"), fields.at("wind"), ("speed_m_s", "from_deg", "spread_deg"))
    return Spread(
        wind.number("speed_m_s", low=MIN_SPEED_M_S, high=1e3),
        from_deg=wind.number("from_deg", low=0, high=360),
        spread_deg=wind.number("spread_deg", 30.0, positive=True, high=90),
        **common,
    )


def parse_episode(raw: object, registry: Registry, where: str, run_min: float) -> Episode:
    fields = Fields(raw, where, _EPISODE_KEYS)
    ident = fields.ident("id")
    kind = fields.string("kind", "plume", choices=EPISODE_KINDS)
    start = fields.number("start_min", low=0)
    if start >= run_min:
        raise ScenarioError(f"{fields.at('start_min')}: {start:g} is after the run ends")
    duration = fields.number("duration_min", positive=True, high=MAX_MIN)
    ramp = fields.number("ramp_min", 0.0, low=0, high=MAX_MIN)
    add = quantity_map(fields, "add", quantity_table().quantities)
    if not add:
        raise ScenarioError(f"{fields.at('add')}: missing")
    chosen = targets(fields, registry)
    source = None
    ways: dict[str, Reach] = {}
    if fields.has("source"):
        pos = Fields(fields.get("source"), fields.at("source"), ("lat", "lon"))
        source = (pos.number("lat", low=-90, high=90), pos.number("lon", low=-180, high=180))
        candidates = sorted(chosen if chosen is not None else registry.nodes)
        ways = reach(source, _spread(fields), [registry.nodes[n] for n in candidates])
        if not ways:
            raise ScenarioError(f"{where}: the plume reaches no node")
        chosen = frozenset(ways)
    else:
        for key in ("spread", "wind", "decay_km", "range_km", "min_fraction"):
            if fields.has(key):
                raise ScenarioError(f"{fields.at(key)}: only with a source")
        if chosen is None:
            raise ScenarioError(f"{where}: needs nodes, villages, townships or a source")
    check_quantities(add, chosen, registry, fields.at("add"))
    chosen = frozenset(n for n in chosen if not add.keys().isdisjoint(registry.nodes[n].quantities))
    ways = {n: r for n, r in ways.items() if n in chosen}
    return Episode(ident, chosen, start, duration, ramp, add, kind, source, ways)
