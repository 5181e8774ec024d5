"""Scenarios (data files): baseline signal parameters and injected pollution episodes,
with the ground truth a detector run is scored against."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tianwang.registry import Registry


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Baseline:
    mean: float
    diurnal: float  # amplitude of the daily cycle
    noise: float  # standard deviation of white noise


@dataclass(frozen=True, slots=True)
class Episode:
    """A plume over some nodes: each quantity rises by ``add`` over ``ramp_min`` minutes,
    holds, and falls back over ``ramp_min`` minutes at the end."""

    id: str
    nodes: frozenset[str]
    start_min: float
    duration_min: float
    ramp_min: float
    add: dict[str, float]

    def excess(self, quantity: str, minute: float) -> float:
        amount = self.add.get(quantity, 0.0)
        t = minute - self.start_min
        if not amount or t < 0 or t > self.duration_min:
            return 0.0
        ramp = max(self.ramp_min, 1e-9)
        return amount * min(1.0, t / ramp, (self.duration_min - t) / ramp)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    start: float | None  # epoch seconds UTC; None = the last whole hour that ends the run now
    duration_h: float
    seed: int
    baseline: dict[str, Baseline]
    episodes: tuple[Episode, ...]

    def ground_truth(self) -> list[dict[str, Any]]:
        """One label per (episode, node, quantity) that the episode raises."""
        return [
            {
                "episode": e.id,
                "node": node,
                "quantity": q,
                "start_min": e.start_min,
                "end_min": e.start_min + e.duration_min,
                "add": amount,
            }
            for e in self.episodes
            for node in sorted(e.nodes)
            for q, amount in e.add.items()
        ]

    def start_time(self, now: float) -> float:
        if self.start is not None:
            return self.start
        return math.floor(now / 3600) * 3600 - self.duration_h * 3600


def _episode(raw: dict[str, Any], registry: Registry, where: str) -> Episode:
    nodes = set(raw.get("nodes") or [])
    for township in raw.get("townships") or []:
        if township not in registry.township_names:
            raise ScenarioError(f"{where}.townships: unknown township {township!r}")
        nodes |= {n.id for n in registry.nodes.values() if n.place.township == township}
    for village in raw.get("villages") or []:
        township, _, village_id = str(village).partition("/")
        if (township, village_id) not in registry.villages:
            raise ScenarioError(f"{where}.villages: unknown village {village!r} (township/village)")
        nodes |= {
            n.id
            for n in registry.nodes.values()
            if (n.place.township, n.place.village) == (township, village_id)
        }
    unknown = nodes - registry.nodes.keys()
    if unknown:
        raise ScenarioError(f"{where}.nodes: unknown nodes {sorted(unknown)}")
    if not nodes:
        raise ScenarioError(f"{where}: affects no node")
    try:
        return Episode(
            str(raw["id"]),
            frozenset(nodes),
            float(raw["start_min"]),
            float(raw["duration_min"]),
            float(raw.get("ramp_min", 0)),
            {str(k): float(v) for k, v in raw["add"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc!r}") from exc


def load_scenario(path: str | Path, registry: Registry) -> Scenario:
    raw = yaml.safe_load(Path(path).read_text("utf-8"))
    start = raw.get("start")
    if isinstance(start, str) and start != "auto":
        start = datetime.fromisoformat(start)
    if isinstance(start, datetime):
        if start.tzinfo is None:
            raise ScenarioError("start: needs a UTC offset")
        start = start.timestamp()
    elif start in (None, "auto"):
        start = None
    else:
        raise ScenarioError(f"start: expected RFC 3339 or 'auto', got {start!r}")
    baseline = {
        q: Baseline(float(b["mean"]), float(b.get("diurnal", 0)), float(b.get("noise", 0)))
        for q, b in (raw.get("baseline") or {}).items()
    }
    episodes = tuple(
        _episode(e, registry, f"episodes[{i}]") for i, e in enumerate(raw.get("episodes") or [])
    )
    return Scenario(
        str(raw.get("name", Path(path).stem)),
        start,
        float(raw.get("duration_h", 2)),
        int(raw.get("seed", 0)),
        baseline,
        episodes,
    )
