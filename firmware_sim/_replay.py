"""Replay of real hourly data as the baseline (e.g. ../shared/data/beijing/, UCI PRSA format).

A ``replay:`` entry (a mapping, or a list of them with disjoint targets) names a station CSV
with ``year, month, day, hour`` columns in local time and one column per quantity. For the
targeted nodes (default: all) and the mapped quantities, the station's value, linearly
interpolated to the sample time, replaces the model's mean, daily cycle and weather; the
model's white noise is still added unless ``noise: false``; episodes and faults apply as
usual. Conventions, all stated in the file format:

- Time: row ``hour = h`` is the mean of the hour *ending* at ``h:00`` local (the CNEMC
  publishing convention, ``hour_label: ending``; ``beginning`` for the hour starting at h:00)
  and is placed at that hour's midpoint; local time is ``utc_offset_h`` (default 8, Beijing,
  no DST) ahead of UTC. Sample times map to station times unchanged, or, with ``from:``, so
  that the run's start replays that station time.
- Gaps: an ``NA`` (or empty) cell stays a gap. A sample time with a gap on either side of it
  gives NaN with flag "D" (no value from the instrument), and every such stretch is a
  ``replay_gap`` label in the ground truth.
- Units: ``units:`` per quantity, default ``ug/m3`` for every column (the PRSA files' unit,
  CO included; see the data set's README). The driver reports replayed values in that unit,
  as the station's instrument did, so CO goes out in ug/m3 and the edge agent converts it to
  the canonical mg/m3 once (tianwang.quantities.factor), like for a real sensor. Internally,
  values are canonical so that episodes and faults add canonical amounts.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np

from firmware_sim._parse import (
    Fields,
    ScenarioError,
    check_quantities,
    join,
    parse_time,
    targets,
)
from tianwang.quantities import UnitError, quantity_table
from tianwang.registry import Registry

HOUR_S = 3600.0
_REPLAY_KEYS = (
    "station_csv", "from", "columns", "units", "hour_label", "utc_offset_h", "noise",
    "nodes", "villages", "townships",
)  # fmt: skip
PRSA_COLUMNS = {q: q for q in ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3")}
DEFAULT_UNIT = "ug/m3"


@dataclass(frozen=True, slots=True)
class StationSeries:
    """One station's hourly values in canonical units, placed at hour midpoints."""

    path: str
    t0: float  # epoch seconds UTC of row 0's value
    values: np.ndarray  # (rows, quantities), NaN for gaps

    @property
    def t_end(self) -> float:
        return self.t0 + (len(self.values) - 1) * HOUR_S

    def at(self, t: float) -> np.ndarray:
        """Values at ``t`` (epoch seconds UTC), linearly interpolated; NaN in a gap or
        outside the data."""
        x = (t - self.t0) / HOUR_S
        i = math.floor(x)
        f = x - i
        if i < 0 or i >= len(self.values) or (f > 0 and i + 1 >= len(self.values)):
            return np.full(self.values.shape[1], math.nan)
        a = self.values[i]
        return a if f == 0 else a + (self.values[i + 1] - a) * f

    def gaps(self, column: int, begin: float, end: float) -> list[tuple[float, float]]:
        """Stretches of ``[begin, end)`` where ``at`` gives NaN for ``column``."""
        bad = np.isnan(self.values[:, column])
        out: list[tuple[float, float]] = []
        first = max(0, math.floor((begin - self.t0) / HOUR_S) - 1)
        last = min(len(bad) - 1, math.ceil((end - self.t0) / HOUR_S) + 1)
        i = first
        while i <= last:
            if not bad[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(bad) and bad[j + 1]:
                j += 1
            # NaN strictly between the neighbouring valid rows i-1 and j+1
            lo = self.t0 + (i - 1) * HOUR_S
            hi = self.t0 + (j + 1) * HOUR_S
            lo, hi = max(lo, begin), min(hi, end)
            if lo < hi:
                out.append((lo, hi))
            i = j + 1
        return out


@dataclass(frozen=True, slots=True)
class Replay:
    """Real hourly data as the baseline of some nodes (see the module docstring)."""

    series: StationSeries
    quantities: tuple[str, ...]  # column j of ``series.values``
    units: tuple[str, ...]  # the unit the driver reports each in
    nodes: frozenset[str] | None  # None: every node
    from_time: float | None  # station time replayed at the run start; None: same time
    noise: bool

    def shift_s(self, start: float) -> float:
        """Station time minus sample time for a run that starts at ``start``."""
        return 0.0 if self.from_time is None else self.from_time - start

    def covers(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes


def _row_time(row: dict[str, str], where: str, utc_offset_h: float, ending: bool) -> float:
    try:
        local = datetime(int(row["year"]), int(row["month"]), int(row["day"]), tzinfo=UTC)
        hour = int(row["hour"])
        if not 0 <= hour <= 23:
            raise ValueError(f"hour {hour} not in 0..23")
        mid = hour - 0.5 if ending else hour + 0.5
        return (local + timedelta(hours=mid - utc_offset_h)).timestamp()
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ScenarioError(f"{where}: bad year/month/day/hour: {exc}") from exc


@cache
def load_station(path: str, columns: tuple[str, ...], factors: tuple[float, ...],
                 utc_offset_h: float, ending: bool) -> StationSeries:  # fmt: skip
    """Read a station CSV once per process (every node of a fleet shares it)."""
    if not Path(path).is_file():
        raise ScenarioError(f"{path} is not a file")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        raise ScenarioError(f"cannot read {path}: {exc}") from exc
    if not rows:
        raise ScenarioError(f"{path} has no rows")
    missing = [c for c in ("year", "month", "day", "hour", *columns) if c not in rows[0]]
    if missing:
        raise ScenarioError(f"{path} has no column(s) {missing}")
    t0 = _row_time(rows[0], f"{path}:2", utc_offset_h, ending)
    values = np.empty((len(rows), len(columns)))
    for i, row in enumerate(rows):
        where = f"{path}:{i + 2}"
        if _row_time(row, where, utc_offset_h, ending) != t0 + i * HOUR_S:
            raise ScenarioError(f"{where}: rows must be hourly without gaps")
        for j, column in enumerate(columns):
            cell = (row.get(column) or "").strip()
            try:
                values[i, j] = math.nan if cell in ("", "NA") else float(cell) * factors[j]
            except ValueError as exc:
                raise ScenarioError(f"{where}: {column} {cell!r} is not a number") from exc
    values.setflags(write=False)
    return StationSeries(path, t0, values)


def parse_replay(raw: object, registry: Registry, where: str, base: Path,
                 start: float | None, run_s: float) -> Replay:  # fmt: skip
    fields = Fields(raw, where, _REPLAY_KEYS)
    path = base / fields.string("station_csv")
    columns = fields.mapping("columns") or PRSA_COLUMNS
    units = fields.mapping("units")
    known = quantity_table().quantities
    quantities, names, reported, factors = [], [], [], []
    for q, column in columns.items():
        if q not in known:
            raise ScenarioError(f"{join(fields.at('columns'), q)}: unknown quantity")
        if not isinstance(column, str) or not column:
            raise ScenarioError(f"{join(fields.at('columns'), q)}: must name a CSV column")
        unit = units.get(q, DEFAULT_UNIT)
        try:
            factor = quantity_table().factor(q, unit)
        except (UnitError, TypeError) as exc:
            raise ScenarioError(f"{join(fields.at('units'), q)}: {exc}") from exc
        quantities.append(q)
        names.append(column)
        reported.append(unit)
        factors.append(factor)
    for q in units:
        if q not in columns:
            raise ScenarioError(f"{join(fields.at('units'), q)}: not a replayed quantity")
    ending = fields.string("hour_label", "ending", choices=("ending", "beginning")) == "ending"
    offset = fields.number("utc_offset_h", 8.0, low=-14, high=14)
    try:
        series = load_station(str(path), tuple(names), tuple(factors), offset, ending)
    except ScenarioError as exc:
        raise ScenarioError(f"{fields.at('station_csv')}: {exc}") from exc
    from_time = parse_time(fields.raw.get("from"), fields.at("from"))
    first = from_time if from_time is not None else start
    if first is None:
        raise ScenarioError(f"{fields.at('from')}: needed when the scenario's start is auto")
    if first < series.t0 or first + run_s > series.t_end:
        span = f"{_iso(series.t0)} .. {_iso(series.t_end)}"
        raise ScenarioError(f"{fields.at('from')}: the run is not inside the data ({span} UTC)")
    nodes = targets(fields, registry)
    check_quantities(quantities, registry.nodes if nodes is None else nodes, registry,
                     fields.at("columns"))  # fmt: skip
    return Replay(
        series, tuple(quantities), tuple(reported), nodes, from_time, fields.boolean("noise", True)
    )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M")
