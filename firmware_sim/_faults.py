"""Sensor faults: they act inside the simulated driver, on the values it returns.

Within ``[start_min, start_min + duration_min)`` of the run, on each targeted node and quantity:

- ``drift``: adds a bias growing at ``rate_per_h`` per hour since the start; flag N.
- ``spike``: the one sample in ``[start_min, start_min + sampling period)`` jumps by ``add``
  (default: 8 x the quantity's baseline sd, ``hypot(noise, weather_sd)``, or its mean if
  that is 0); flag N. ``duration_min`` is not allowed.
- ``stuck``: repeats the last value the sensor returned before the fault; flag N.
- ``out_of_range``: returns ``value`` (default 1.5 x the quantity's maximum in
  tianwang/data/quantities.yaml; any value outside [min, max] may be given); flag N, so the
  edge pre-check (flag T) and ingest's range check are what catch it.
- ``dropout``: NaN with flag "D" (the edge ``Driver`` contract for a channel that gives no
  value): the reading is still stored and published. A node that sends nothing at all is a
  network fault (``node_offline``), a different state.

Several faults on one value apply in the order above, whatever their order in the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from firmware_sim._baseline import Baseline
from firmware_sim._parse import (
    Fields,
    ScenarioError,
    check_quantities,
    join,
    number,
    targets,
)
from firmware_sim._plume import MAX_MIN
from tianwang.quantities import quantity_table
from tianwang.registry import Node, Registry

FAULT_KINDS = ("drift", "spike", "stuck", "out_of_range", "dropout")  # order of application
_ORDER = {kind: i for i, kind in enumerate(FAULT_KINDS)}
# The parameter each kind takes: its magnitude per quantity.
PARAM = {"drift": "rate_per_h", "spike": "add", "out_of_range": "value"}
_FAULT_KEYS = (
    "id", "kind", "nodes", "villages", "townships", "quantities", "start_min", "duration_min",
    "rate_per_h", "add", "value",
)  # fmt: skip
SPIKE_SDS = 8.0
OUT_OF_RANGE_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class SensorFault:
    """A fault of the sensors of some nodes (see the module docstring)."""

    id: str
    kind: str
    nodes: frozenset[str]
    quantities: tuple[str, ...]  # empty: every quantity of each node
    start_min: float
    duration_min: float
    magnitude: dict[str, float]  # per quantity: drift rate per hour, spike add, out_of_range value

    def quantities_of(self, node: Node) -> tuple[str, ...]:
        if not self.quantities:
            return node.quantities
        return tuple(q for q in node.quantities if q in self.quantities)

    def window_min(self, sampling_s: float) -> tuple[float, float]:
        """``[start, end)`` in minutes of the run; a spike lasts one sampling period."""
        if self.kind == "spike":
            return self.start_min, self.start_min + sampling_s / 60.0
        return self.start_min, self.start_min + self.duration_min


class FaultTrack:
    """The faults of one node, applied in place to each read's values (canonical units)."""

    def __init__(self, faults: Sequence[SensorFault], node: Node,
                 quantities: Sequence[str]) -> None:  # fmt: skip
        column = {q: i for i, q in enumerate(quantities)}
        entries = []
        for f in sorted((f for f in faults if node.id in f.nodes), key=lambda f: _ORDER[f.kind]):
            cols = [column[q] for q in f.quantities_of(node) if q in column]
            if not cols:
                continue
            begin, end = f.window_min(node.sampling_s)
            mag = np.array([f.magnitude.get(quantities[c], 0.0) for c in cols])
            entries.append((f.kind, begin * 60.0, end * 60.0, np.array(cols), mag))
        self._entries = entries
        self._frozen: dict[int, np.ndarray] = {}
        self._last = np.full(len(quantities), math.nan)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def apply(self, elapsed_s: float, values: np.ndarray) -> None:
        for i, (kind, begin, end, cols, mag) in enumerate(self._entries):
            if not begin <= elapsed_s < end:
                continue
            if kind == "drift":
                values[cols] += mag * ((elapsed_s - begin) / 3600.0)
            elif kind == "spike":
                values[cols] += mag
            elif kind == "stuck":
                frozen = self._frozen.get(i)
                if frozen is None:
                    last = self._last[cols]
                    frozen = np.where(np.isnan(last), values[cols], last)
                    self._frozen[i] = frozen
                values[cols] = frozen
            elif kind == "out_of_range":
                values[cols] = mag
            else:  # dropout
                values[cols] = math.nan
        np.copyto(self._last, values, where=~np.isnan(values))


def _spike(b: Baseline) -> float:
    """The default spike: 8 sd of the baseline's variation, or its mean if it has none."""
    return SPIKE_SDS * math.hypot(b.noise, b.weather_sd) or abs(b.mean)


def _magnitudes(fields: Fields, kind: str, quantities: set[str],
                baselines: Mapping[str, Baseline]) -> dict[str, float]:  # fmt: skip
    key = PARAM.get(kind)
    for other in set(PARAM.values()) - {key}:
        if fields.has(other):
            raise ScenarioError(f"{fields.at(other)}: not a parameter of {kind}")
    if key is None:
        return {}
    table = quantity_table().quantities
    raw = fields.get(key, None)
    if raw is None:
        if kind == "drift":
            raise ScenarioError(f"{fields.at(key)}: missing")
        if kind == "spike":
            return {q: _spike(baselines[q]) for q in quantities}
        return {q: OUT_OF_RANGE_FACTOR * table[q].max for q in quantities}
    if isinstance(raw, dict):
        unknown = sorted(str(q) for q in raw if q not in quantities)
        if unknown:
            raise ScenarioError(f"{fields.at(key)}: {unknown} not among the fault's quantities")
        missing = sorted(quantities - raw.keys())
        if missing:
            raise ScenarioError(f"{fields.at(key)}: no value for {missing}")
        values = {q: number(v, join(fields.at(key), q)) for q, v in raw.items()}
    else:
        value = number(raw, fields.at(key))
        values = dict.fromkeys(quantities, value)
    if kind == "out_of_range":
        for q, v in values.items():
            if table[q].min <= v <= table[q].max:
                raise ScenarioError(
                    f"{fields.at(key)}: {v:g} is inside {q}'s range "
                    f"[{table[q].min:g}, {table[q].max:g}]"
                )
    return values


def parse_sensor_fault(raw: object, registry: Registry, where: str, run_min: float,
                       baselines: Mapping[str, Baseline]) -> SensorFault:  # fmt: skip
    fields = Fields(raw, where, _FAULT_KEYS)
    ident = fields.ident("id")
    kind = fields.string("kind", choices=FAULT_KINDS)
    start = fields.number("start_min", low=0)
    if start >= run_min:
        raise ScenarioError(f"{fields.at('start_min')}: {start:g} is after the run ends")
    duration = (
        0.0 if kind == "spike" else fields.number("duration_min", positive=True, high=MAX_MIN)
    )
    if kind == "spike" and fields.has("duration_min"):
        raise ScenarioError(f"{fields.at('duration_min')}: a spike is one sample")
    nodes = targets(fields, registry)
    if nodes is None:
        raise ScenarioError(f"{where}: needs nodes, villages or townships")
    named = fields.strings("quantities")
    known = quantity_table().quantities
    for q in named:
        if q not in known:
            raise ScenarioError(f"{fields.at('quantities')}: unknown quantity {q!r}")
    check_quantities(named, nodes, registry, fields.at("quantities"))
    if named:
        nodes = frozenset(
            n for n in nodes if not set(named).isdisjoint(registry.nodes[n].quantities)
        )
    involved = set(named) or {q for n in nodes for q in registry.nodes[n].quantities}
    magnitude = _magnitudes(fields, kind, involved, baselines)
    return SensorFault(ident, kind, nodes, tuple(named), start, duration, magnitude)
