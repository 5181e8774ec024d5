"""Scenarios (data files): baseline signal parameters, injected episodes, sensor faults, network
faults and replayed data, with the ground truth a detector run is scored against.

File format (YAML; every section but ``name``/``start``/``duration_h``/``seed`` is optional;
unknown keys are errors; times are minutes after the run's start; amounts canonical units)::

    name: county-day
    start: 2026-06-01T00:00:00+08:00   # or auto / null: the last whole hours before now
    duration_h: 24                      # (0, 87840]
    seed: 20260601                      # integer in [0, 2**63)
    baseline:                           # overrides of firmware_sim/data/signals.yaml
      NO2: {mean: 35, diurnal: 10, noise: 4}            # key by key, per quantity
      LAeq: {night_offset: -10, unit: dB(A)}
    replay:                              # or a list; see _replay.py
      station_csv: ../../../shared/data/beijing/PRSA_Data_Dongsi_20130301-20170228.csv
      from: 2014-09-02T00:00:00+08:00
      townships: [lucun]
    episodes:                            # see _plume.py
      - id: plant-release                # [A-Za-z0-9_.:-]{1,64}, unique across the file
        kind: plume                      # plume (default), discharge, construction_dust
        villages: [yuezhuang/yuezhuang]  # targets: nodes, villages (township/village), townships
        source: {lat: 36.11, lon: 118.24}                 # optional
        spread: {speed_m_s: 1.5}         # or wind: {speed_m_s, from_deg, spread_deg}
        decay_km: 2.0
        start_min: 20
        duration_min: 80
        ramp_min: 5
        add: {NO2: 420, SO2: 1200}
    sensor_faults:                       # see _faults.py
      - {id: f1, kind: drift, nodes: [yy-0001], quantities: [NO2], start_min: 60,
         duration_min: 600, rate_per_h: 2}
    network_faults:                      # see _network.py
      - {id: n1, kind: node_offline, nodes: [yy-0002], start_min: 300, duration_min: 45}

Every quantity named must be measured by at least one targeted node (it applies to the
targeted nodes that measure it). Every error is a ``ScenarioError`` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from firmware_sim import _labels, _network
from firmware_sim._baseline import Baseline, parse_baselines
from firmware_sim._faults import SensorFault, parse_sensor_fault
from firmware_sim._network import NetworkFault, parse_network_fault
from firmware_sim._parse import Fields, ScenarioError, join
from firmware_sim._plume import Episode, parse_episode
from firmware_sim._replay import Replay, parse_replay
from tianwang.registry import Node, Registry

MAX_DURATION_H = 10 * 366 * 24.0
_TOP_KEYS = (
    "name", "start", "duration_h", "seed", "baseline", "replay", "episodes", "sensor_faults",
    "network_faults",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    start: float | None  # epoch seconds UTC; None = the last whole hour that ends the run now
    duration_h: float
    seed: int
    baseline: dict[str, Baseline]  # every known quantity: defaults with the file's overrides
    episodes: tuple[Episode, ...]
    sensor_faults: tuple[SensorFault, ...] = ()
    network_faults: tuple[NetworkFault, ...] = ()
    replays: tuple[Replay, ...] = ()
    timezone: str = "Asia/Shanghai"  # the grid's: daily cycles follow local time
    grid_nodes: dict[str, Node] = field(default_factory=dict)  # the grid it was checked against
    # State every driver of this scenario shares (the county-wide weather); see _signals.
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def ground_truth(self, start: float | None = None) -> list[dict[str, Any]]:
        """One label per (event or fault, node, quantity); see ``firmware_sim._labels``.

        ``start`` is the run's start (epoch seconds UTC), for the labels' absolute times;
        without it they are given only for a scenario with a fixed start."""
        return _labels.ground_truth(self, start)

    def start_time(self, now: float) -> float:
        if self.start is not None:
            return self.start
        return math.floor(now / 3600) * 3600 - self.duration_h * 3600

    # --- network faults, for the fleet runner (see firmware_sim._network) -------------------

    def network_faults_for(self, node: str) -> tuple[NetworkFault, ...]:
        return _network.faults_for(self.network_faults, node)

    def offline_windows(self, node: str, start: float = 0.0) -> list[tuple[float, float]]:
        """``[begin, end)`` windows when ``node`` is offline (seconds after ``start``)."""
        return _network.offline_windows(self.network_faults, node, start)

    def broker_downtimes(self, start: float = 0.0) -> list[tuple[float, float]]:
        return _network.broker_downtimes(self.network_faults, start)

    def clock_offset_s(self, node: str, elapsed_s: float) -> float:
        """How far ``node``'s clock is ahead, ``elapsed_s`` seconds into the run."""
        return _network.clock_offset_s(self.network_faults, node, elapsed_s)


def _entries(fields: Fields, key: str, parse: Any, seen: set[str]) -> tuple[Any, ...]:
    out = []
    for where, raw in fields.items(key):
        entry = parse(raw, where)
        if entry.id in seen:
            raise ScenarioError(f"{join(where, 'id')}: duplicate id {entry.id!r}")
        seen.add(entry.id)
        out.append(entry)
    return tuple(out)


def _replays(fields: Fields, registry: Registry, base: Path, start: float | None,
             run_s: float) -> tuple[Replay, ...]:  # fmt: skip
    raw = fields.raw.get("replay")
    if raw is None:
        return ()
    items = [("replay", raw)] if isinstance(raw, dict) else list(fields.items("replay"))
    replays = tuple(parse_replay(r, registry, where, base, start, run_s) for where, r in items)
    covered: set[str] = set()
    for (where, _), replay in zip(items, replays, strict=True):
        nodes = set(registry.nodes) if replay.nodes is None else set(replay.nodes)
        if nodes & covered:
            raise ScenarioError(f"{where}: targets overlap another replay entry")
        covered |= nodes
    return replays


def parse_scenario(raw: Any, registry: Registry, base: Path, default_name: str) -> Scenario:
    """A scenario from its parsed YAML; relative paths are relative to ``base``."""
    fields = Fields(raw, "", _TOP_KEYS)
    name = fields.get("name", default_name)
    if not isinstance(name, str | int | float) or isinstance(name, bool):
        raise ScenarioError(f"name: must be a string, got {name!r}")
    start = fields.time("start")
    duration_h = fields.number("duration_h", 2.0, positive=True, high=MAX_DURATION_H)
    seed = fields.integer("seed", 0, low=0, high=2**63 - 1)
    try:
        ZoneInfo(registry.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScenarioError(f"grid timezone {registry.timezone!r}: unknown") from exc
    baseline = parse_baselines(fields)
    run_min = duration_h * 60
    seen: set[str] = set()
    episodes = _entries(
        fields, "episodes", lambda r, w: parse_episode(r, registry, w, run_min), seen
    )
    sensor_faults = _entries(
        fields,
        "sensor_faults",
        lambda r, w: parse_sensor_fault(r, registry, w, run_min, baseline),
        seen,
    )
    network_faults = _entries(
        fields, "network_faults", lambda r, w: parse_network_fault(r, registry, w, run_min), seen
    )
    return Scenario(
        name=str(name),
        start=start,
        duration_h=duration_h,
        seed=seed,
        baseline=baseline,
        episodes=episodes,
        sensor_faults=sensor_faults,
        network_faults=network_faults,
        replays=_replays(fields, registry, base, start, run_min * 60),
        timezone=registry.timezone,
        grid_nodes=dict(registry.nodes),
    )


def load_scenario(path: str | Path, registry: Registry) -> Scenario:
    """Read and check a scenario file against ``registry``; any problem with the file is a
    ``ScenarioError`` whose message names the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return parse_scenario(raw, registry, path.parent, path.stem)
