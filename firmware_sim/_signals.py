"""Simulated sensor physics: the driver that turns a scenario into one node's readings.

Per read, vectorised over the node's quantities (canonical units)::

    value = mean + daily cycle(local minute)
          + weather_sd * (sqrt(c) * C_q(t) + sqrt(1 - c) * L_q(t))    # c: common_fraction
          + noise * N(0, 1)
          [replayed quantities: station value interpolated to t, + noise * N(0, 1)]
          + episode increments (delayed and decayed for plumes)
    clipped to the quantity's physical range; then the sensor faults; rounded to 3 decimals
    in the unit the sensor reports.

``L`` is the node's own Ornstein-Uhlenbeck path, advanced exactly over each step
(``x <- phi x + sqrt(1 - phi^2) z`` with ``phi = exp(-dt / tau)``), so a read costs the same
whatever the gap since the last one. ``C`` is county-wide (``_baseline.CommonWeather``, held on
60-s knots), one object per scenario shared by every driver. The daily cycle is a table by
local minute; the county's UTC offset is taken at the run's start (a DST change during a run
is ignored; China has none). Randomness: a ``numpy`` Generator seeded with ``(seed, crc32(node
id))`` for the node's draws, drawn ``DRAW_BATCH`` reads at a time; deterministic for a given
scenario, node, run start and sequence of sample times.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from edge import SensorValue
from firmware_sim._baseline import DAY_S, CommonWeather, diurnal_table, signal_defaults
from firmware_sim._faults import FaultTrack
from firmware_sim._plume import EpisodeTrack
from firmware_sim._replay import StationSeries
from firmware_sim._scenario import Scenario
from tianwang.quantities import quantity_table
from tianwang.registry import Node

DRAW_BATCH = 16  # reads' worth of random numbers drawn at once (memory: 2.3 KiB a node)
_value = SensorValue._make


class _Shared:
    """What every driver of one scenario shares: weather, daily-cycle tables."""

    def __init__(self, scenario: Scenario) -> None:
        defaults = signal_defaults()
        self.quantities = tuple(scenario.baseline)
        self.column = {q: i for i, q in enumerate(self.quantities)}
        baselines = [scenario.baseline[q] for q in self.quantities]
        tau_s = np.array([b.weather_tau_h * 3600.0 for b in baselines])
        self.weather = CommonWeather(scenario.seed, self.quantities, tau_s,
                                     defaults.common_step_s)  # fmt: skip
        self._w_common = np.array([b.weather_sd * math.sqrt(b.common_fraction)
                                   for b in baselines])  # fmt: skip
        self._table = diurnal_table(baselines, defaults.night_hours)
        self._tables: dict[tuple[int, ...], np.ndarray] = {}
        self._step_s = defaults.common_step_s
        self._full: tuple[int | None, np.ndarray] = (None, self._w_common)
        self._terms: dict[tuple[int, ...], tuple[int, np.ndarray]] = {}

    def table(self, columns: tuple[int, ...]) -> np.ndarray:
        """Mean + daily cycle by local minute for these columns, shared by equal nodes."""
        table = self._tables.get(columns)
        if table is None:
            table = np.ascontiguousarray(self._table[:, list(columns)])
            self._tables[columns] = table
        return table

    def common_term(self, t: float, columns: tuple[int, ...], index: np.ndarray) -> np.ndarray:
        """``weather_sd * sqrt(common_fraction) * C(t)`` for these columns (do not modify);
        nodes that sample within one knot step share one computation."""
        k = math.floor(t / self._step_s)
        last = self._terms.get(columns)
        if last is not None and last[0] == k:
            return last[1]
        if self._full[0] != k:
            self._full = (k, self._w_common * self.weather.knot(k))
        term = self._full[1][index]
        self._terms[columns] = (k, term)
        return term


def _shared(scenario: Scenario) -> _Shared:
    shared = scenario.shared.get("signals")
    if shared is None:
        shared = scenario.shared["signals"] = _Shared(scenario)
    return shared


@dataclass(frozen=True, slots=True)
class _ReplayCols:
    series: StationSeries
    shift_s: float  # station time minus sample time
    ours: np.ndarray  # the node's columns
    theirs: np.ndarray  # the series' columns
    noise: float  # 1.0: add the model's white noise, 0.0: not


class SimulatedDriver:
    """The edge ``Driver`` for one simulated node; ``start`` is the run's start (epoch
    seconds UTC), from which the scenario's minutes count."""

    def __init__(self, node: Node, scenario: Scenario, start: float) -> None:
        self.node = node
        self.scenario = scenario
        self.start = start
        self._shared = shared = _shared(scenario)
        table = quantity_table()
        self._q = tuple(q for q in node.quantities if q in shared.column)
        self._key = tuple(shared.column[q] for q in self._q)
        self._cols = np.array(self._key, dtype=np.intp)
        self._table = shared.table(self._key)
        self._n = n = len(self._q)
        self._rng = np.random.default_rng([scenario.seed, zlib.crc32(node.id.encode())])
        base = [scenario.baseline[q] for q in self._q]
        sd = np.array([b.weather_sd for b in base])
        share = np.array([b.common_fraction for b in base])
        self._w_local = sd * np.sqrt(1.0 - share)
        self._use_common = bool((sd * share).any())
        self._tau_s = np.array([b.weather_tau_h * 3600.0 for b in base])
        self._noise = np.array([b.noise for b in base])
        self._low = np.array([table.quantities[q].min for q in self._q])
        self._high = np.array([table.quantities[q].max for q in self._q])
        units = [b.unit or table.quantities[q].unit for q, b in zip(self._q, base, strict=True)]
        self._replay = self._replay_setup(units)
        self._units = tuple(units)
        # to the reported unit, and x 1000 for rounding to 3 decimals
        factors = [table.factor(q, u) for q, u in zip(self._q, units, strict=True)]
        self._out = 1000.0 / np.array(factors)
        offset = ZoneInfo(scenario.timezone).utcoffset(datetime.fromtimestamp(start, UTC))
        self._utc_offset_s = offset.total_seconds() if offset else 0.0
        episodes = EpisodeTrack(scenario.episodes, node.id, self._q)
        self._episodes = episodes if episodes else None
        faults = FaultTrack(scenario.sensor_faults, node, self._q)
        self._faults = faults if faults else None
        self._y = np.zeros(n)  # the node's weather term, w_local * L(t)
        self._t = math.nan
        self._dt = math.nan
        self._phi = np.zeros(n)
        self._gain = self._w_local.copy()  # w_local * sqrt(1 - phi^2)
        self._z = np.zeros((0, n))  # N(0, 1) innovations of L for the next reads
        self._inc = self._z  # gain * z
        self._e = self._z  # white noise for the next reads, noise * N(0, 1)
        self._i = 0

    def _replay_setup(self, units: list[str]) -> _ReplayCols | None:
        for replay in self.scenario.replays:
            if not replay.covers(self.node.id):
                continue
            ours, theirs = [], []
            for j, q in enumerate(replay.quantities):
                if q in self._q:
                    i = self._q.index(q)
                    ours.append(i)
                    theirs.append(j)
                    units[i] = replay.units[j]
            if not ours:
                return None
            return _ReplayCols(replay.series, replay.shift_s(self.start), np.array(ours),
                               np.array(theirs), 1.0 if replay.noise else 0.0)  # fmt: skip
        return None

    def _draw(self) -> None:
        """Random numbers for the next ``DRAW_BATCH`` reads at once (a fixed order, so runs
        stay deterministic)."""
        z = self._rng.standard_normal((DRAW_BATCH, 2 * self._n))
        self._z = z[:, : self._n]
        self._inc = self._z * self._gain
        self._e = z[:, self._n :] * self._noise
        self._i = 0

    def sample(self, sample_time: float) -> np.ndarray:
        """This sample's values, canonical units, unrounded; NaN = no value."""
        if self._i == DRAW_BATCH or not len(self._z):
            self._draw()
        i = self._i
        self._i += 1
        dt = sample_time - self._t
        self._t = sample_time
        y = self._y
        if math.isnan(dt):
            np.multiply(self._w_local, self._z[i], out=y)  # first read: a stationary draw
        else:
            if dt != self._dt:  # exact OU step for this gap: phi = exp(-dt / tau)
                self._dt = dt
                self._phi = np.exp(-abs(dt) / self._tau_s)
                self._gain = self._w_local * np.sqrt(1.0 - self._phi * self._phi)
                self._inc = self._z * self._gain
            y *= self._phi
            y += self._inc[i]
        minute = int((sample_time + self._utc_offset_s) % DAY_S // 60)
        v = self._table[minute] + self._e[i]
        v += y
        if self._use_common:
            v += self._shared.common_term(sample_time, self._key, self._cols)
        if self._replay is not None:
            r = self._replay
            v[r.ours] = (
                r.series.at(sample_time + r.shift_s)[r.theirs] + self._e[i][r.ours] * r.noise
            )
        elapsed = sample_time - self.start
        if self._episodes is not None:
            excess = self._episodes.at(elapsed)
            if excess is not None:
                v += excess
        np.maximum(v, self._low, out=v)
        np.minimum(v, self._high, out=v)
        if self._faults is not None:
            self._faults.apply(elapsed, v)
        return v

    async def read(self, sample_time: float) -> list[SensorValue]:
        """One value per quantity of the node, in the unit the sensor reports, rounded to 3
        decimals; a value the sensor cannot give (a dropout, a gap in replayed data) is NaN
        with flag "D"."""
        v = self.sample(sample_time)
        v *= self._out
        np.rint(v, out=v)
        v /= 1000.0
        return [
            _value((q, x, u, "N" if x == x else "D"))
            for q, x, u in zip(self._q, v.tolist(), self._units, strict=True)
        ]
