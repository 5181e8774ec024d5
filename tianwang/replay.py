"""Replay hourly air-quality records (UCI PRSA CSV format) through the daily statistics.

Each station is a node. Its hourly values are already hourly means, so they enter the daily
stages as closed hours (60 minutes of data, or none where the cell is ``NA``). Outputs:

- ``daily_statistics.csv``: per node, natural day and pollutant, the 24-h mean
  (SO2, NO2, CO, PM10, PM2.5) or the O3 daily maximum 8-h mean, judged against GB 3095
  (GB 3095-2026 §3, Table 1, Table 4) for the edition in force that day unless pinned;
- ``daily_aqi.csv``: the daily AQI per HJ 633 for the edition in force (or matching the pin);
- ``events.csv``: the detector's episode events over the same hours (``Detector.judge_hours``):
  the 1-hour, 24-hour and O3 8-hour rules with the episode policy and evidence. Early
  warnings are left out: they project a day from the latest hour of a live stream.

Hour labels: PRSA ``hour`` h is taken as the mean of the hour ENDING at h:00 local time, the
convention of the China National Environmental Monitoring Centre, which publishes these
Guokong data (standards README: "the hourly value for hour 16 is the mean over 15:00-16:00").
So the natural day D holds hours 1..23 of D and hour 0 of D+1.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from detect import (
    ClosedDays,
    ClosedHours,
    ClosedMax8h,
    DailyMeans,
    Detector,
    DetectorConfig,
    EightHourMeans,
    ExceedanceEvent,
    hj633,
)
from tianwang.standards import gb3095

DAILY_QUANTITIES = ("SO2", "NO2", "CO", "PM10", "PM2.5")  # 24-h mean, GB 3095 Table 1
O3 = "O3"
SCALE = {"CO": 1e-3}  # PRSA CO is in ug/m3; canonical CO is mg/m3 (BRIEF, GB 3095 Table 1)
STAT_24H = "24h_mean"
STAT_8H_MAX = "8h_max"
STATISTICS_CSV = "daily_statistics.csv"
AQI_CSV = "daily_aqi.csv"
EVENTS_CSV = "events.csv"
EVENT_COLUMNS = ("node", "quantity", "rule", "kind", "period_start", "value", "limit", "unit",
                 "standard", "edition", "clause", "episode_start", "peak", "periods")  # fmt: skip
STAT_COLUMNS = ("node", "natural_day", "quantity", "statistic", "valid_hours", "value",
                "limit", "exceeded", "standard", "edition")  # fmt: skip
_DAY_S = 86400


class ReplayError(ValueError):
    """A file that is not in the PRSA format, or a zone with a varying UTC offset."""


@dataclass(slots=True)
class ReplaySummary:
    """Counts of one replay. ``days``: node-days with any hour; ``valid_days`` and
    ``exceedance_days`` per quantity (node-days with a valid statistic / above the limit)."""

    nodes: int = 0
    hours: int = 0
    days: int = 0
    valid_days: Counter[str] = field(default_factory=Counter)
    exceedance_days: Counter[str] = field(default_factory=Counter)
    aqi_days: int = 0
    episodes: Counter[str] = field(default_factory=Counter)  # rule -> episodes opened
    files: tuple[Path, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-ready counts (what ``tianwang replay`` prints)."""
        return {
            "nodes": self.nodes,
            "hours": self.hours,
            "days": self.days,
            "valid_days": dict(sorted(self.valid_days.items())),
            "exceedance_days": dict(sorted(self.exceedance_days.items())),
            "aqi_days": self.aqi_days,
            "episodes": dict(sorted(self.episodes.items())),
            "files": [str(p) for p in self.files],
        }


@dataclass(frozen=True, slots=True)
class _Station:
    node: str
    hour_start_s: np.ndarray  # int64, epoch s UTC, start of each hour
    values: dict[str, np.ndarray]  # quantity -> float64 in canonical units, NaN when NA


def _fixed_offset_s(zone: ZoneInfo, local: list[datetime]) -> int:
    """The zone's UTC offset, checked constant on every date of the data (Asia/Shanghai
    has had no DST since 1991); the daily stages take one offset per county."""
    dates = {t.date() for t in local}
    offsets = {
        int(zone.utcoffset(datetime(d.year, d.month, d.day, 12)).total_seconds())  # type: ignore[union-attr]
        for d in dates
    }
    if len(offsets) != 1:
        raise ReplayError(f"{zone.key}: the UTC offset varies; replay needs a fixed offset")
    return offsets.pop()


def _read_station(path: Path, zone: ZoneInfo) -> tuple[_Station, int]:
    """One PRSA file: hour starts (hour-ending labels) and canonical values."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "station" not in rows[0] or "hour" not in rows[0]:
        raise ReplayError(f"{path}: not a PRSA file (no station/hour column)")
    stations = {r["station"] for r in rows}
    if len(stations) != 1:
        raise ReplayError(f"{path}: several stations in one file: {sorted(stations)}")
    local = [datetime(int(r["year"]), int(r["month"]), int(r["day"]), int(r["hour"])) for r in rows]
    offset = _fixed_offset_s(zone, local)
    epoch = datetime(1970, 1, 1)
    hour_start = np.array(
        [(t - epoch) // timedelta(seconds=1) - 3600 - offset for t in local], np.int64
    )
    values = {}
    for q in (*DAILY_QUANTITIES, O3):
        cells = [r[q] for r in rows]
        v = np.array([math.nan if c in ("", "NA") else float(c) for c in cells], np.float64)
        values[q] = v * SCALE.get(q, 1.0)
    return _Station(stations.pop(), hour_start, values), offset


def _closed_hours(series: int, station: _Station, quantity: str) -> ClosedHours:
    v = station.values[quantity]
    n = v.shape[0]
    minutes = np.where(np.isfinite(v), 60, 0).astype(np.int64)
    return ClosedHours(np.full(n, series, np.int64), station.hour_start_s, v, minutes)


def _local_date(day_start_s: int, offset_s: int) -> date:
    return datetime.fromtimestamp(day_start_s + offset_s, UTC).date()


@dataclass(slots=True)
class _Row:
    node: str
    day: date
    quantity: str
    statistic: str
    valid_hours: int
    value: float


def _day_rows(
    days: Iterable[ClosedDays | ClosedMax8h],
    labels: list[tuple[str, str]],
    statistic: str,
    offset_s: int,
) -> Iterator[_Row]:
    for closed in days:
        values = closed.mean if isinstance(closed, ClosedDays) else closed.max8h
        for s, d, v, n in zip(closed.series, closed.day_start_s, values, closed.valid_hours,
                              strict=True):  # fmt: skip
            node, quantity = labels[int(s)]
            yield _Row(node, _local_date(int(d), offset_s), quantity, statistic, int(n), float(v))


def _aqi_pin(pinned_edition: str | None) -> str | None:
    """HJ 633 edition matching a pinned GB 3095 edition (both changed on 2026-03-01)."""
    if pinned_edition is None:
        return None
    return "HJ 633-2012" if pinned_edition.startswith("GB 3095-2012") else "HJ 633-2026"


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.6g}"


def replay_csv(
    paths: Iterable[Path | str],
    out_dir: Path | str,
    *,
    timezone: str = "Asia/Shanghai",
    pinned_edition: str | None = None,
    grade: int = 2,
) -> ReplaySummary:
    """Replay PRSA files; write daily_statistics.csv and daily_aqi.csv into ``out_dir``.

    Args:
        paths: PRSA CSV files, one station each (the station is the node).
        out_dir: created if missing.
        timezone: the county's zone; natural days and editions follow its local dates.
        pinned_edition: a GB 3095 edition name (e.g. "GB 3095-2012") to use for every day;
            the AQI then uses the HJ 633 edition of the same year.
        grade: zone grade (1 or 2) of the GB 3095 limits.
    """
    zone = ZoneInfo(timezone)
    gb3095().edition(date.today(), pinned_edition)  # fail now on an unknown pin
    detector = Detector(DetectorConfig(timezone=timezone, pinned_edition=pinned_edition))
    events: list[ExceedanceEvent] = []
    last_hour = 0
    daily, eight = DailyMeans(), EightHourMeans()
    labels_24: list[tuple[str, str]] = []
    labels_8: list[tuple[str, str]] = []
    rows: list[_Row] = []
    o3_max_1h: dict[tuple[str, date], float] = {}
    summary = ReplaySummary()
    for path in map(Path, paths):
        station, offset = _read_station(path, zone)
        summary.nodes += 1
        summary.hours += int(station.hour_start_s.shape[0])
        end = int(station.hour_start_s.max()) + 2 * _DAY_S
        last_hour = max(last_hour, end)
        for q in (*DAILY_QUANTITIES, O3):
            sid = detector.series_id(station.node, q, f"air:{grade}")
            events += detector.judge_hours(_closed_hours(sid, station, q))
        for q in DAILY_QUANTITIES:
            labels_24.append((station.node, q))
            closed = _closed_hours(daily.add_series(), station, q)
            got = [daily.update(closed, offset), daily.close_until(end)]
            rows += _day_rows(got, labels_24, STAT_24H, offset)
        labels_8.append((station.node, O3))
        closed = _closed_hours(eight.add_series(), station, O3)
        _moving, got_8 = eight.update(closed, offset)
        rows += _day_rows([got_8, eight.close_until(end)], labels_8, STAT_8H_MAX, offset)
        for h, v in zip(station.hour_start_s, station.values[O3], strict=True):
            if math.isfinite(v):
                key = (station.node, _local_date(int(h) - (int(h) + offset) % _DAY_S, offset))
                o3_max_1h[key] = max(o3_max_1h.get(key, -math.inf), float(v))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stat_path = _write_statistics(rows, out / STATISTICS_CSV, grade, pinned_edition, summary)
    aqi_path = _write_aqi(rows, o3_max_1h, out / AQI_CSV, _aqi_pin(pinned_edition), summary)
    events += detector.close_until(last_hour)
    events_path = _write_events(events, out / EVENTS_CSV, zone, summary)
    summary.days = len({(r.node, r.day) for r in rows})
    summary.files = (stat_path, aqi_path, events_path)
    return summary


def _write_events(events: list[ExceedanceEvent], path: Path, zone: ZoneInfo,
                  summary: ReplaySummary) -> Path:  # fmt: skip
    """One line per event, in the order the detector emitted them; times local ISO."""

    def local(t: int) -> str:
        return datetime.fromtimestamp(t, zone).isoformat()

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(EVENT_COLUMNS)
        for e in events:
            summary.episodes[e.rule] += e.kind == "open"
            w.writerow([
                e.node, e.quantity, e.rule, e.kind, local(e.hour_start_s), _fmt(e.value),
                _fmt(e.limit), e.unit, e.standard, e.edition, e.clause,
                local(e.episode_start_s), _fmt(e.peak), e.periods,
            ])  # fmt: skip
    return path


def _write_statistics(
    rows: list[_Row], path: Path, grade: int, pinned: str | None, summary: ReplaySummary
) -> Path:
    """One line per node, day and statistic; limits of GB 3095 Table 1 for that day."""
    period = {STAT_24H: "24h", STAT_8H_MAX: "8h_max"}
    rows.sort(key=lambda r: (r.node, r.day, r.quantity))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(STAT_COLUMNS)
        for r in rows:
            limit = gb3095().limit(r.quantity, period[r.statistic], grade, r.day, pinned)
            valid = not math.isnan(r.value)
            exceeded = valid and limit is not None and r.value > limit.value  # "above" the limit
            summary.valid_days[r.quantity] += valid
            summary.exceedance_days[r.quantity] += exceeded
            w.writerow([
                r.node, r.day.isoformat(), r.quantity, r.statistic, r.valid_hours,
                _fmt(r.value), _fmt(limit.value) if limit else "",
                ("true" if exceeded else "false") if valid and limit else "",
                limit.standard if limit else "", limit.edition if limit else "",
            ])  # fmt: skip
    return path


def _write_aqi(
    rows: list[_Row],
    o3_max_1h: dict[tuple[str, date], float],
    path: Path,
    pinned: str | None,
    summary: ReplaySummary,
) -> Path:
    """Daily AQI per node and day (HJ 633 §4.4, §5.1): IAQI of each daily indicator."""
    by_day: dict[tuple[str, date], dict[str, float]] = {}
    for r in rows:
        period = "24h" if r.statistic == STAT_24H else "8h_max"
        by_day.setdefault((r.node, r.day), {})[f"{r.quantity} {period}"] = r.value
    for key, v in o3_max_1h.items():
        by_day.setdefault(key, {})["O3 1h_max"] = v
    std = hj633()
    keys = sorted(by_day)
    editions = [std.edition(day, pinned) for _, day in keys]
    iaqis: list[dict[str, float]] = [{} for _ in keys]
    for name in {e.name for e in editions}:  # one vectorised IAQI call per indicator
        rows_of = [i for i, e in enumerate(editions) if e.name == name]
        edition = editions[rows_of[0]]
        for q, p in edition.daily:
            label = f"{q} {p}"
            conc = np.array([by_day[keys[i]].get(label, math.nan) for i in rows_of])
            for i, v in zip(rows_of, edition.iaqi(q, p, conc).tolist(), strict=True):
                iaqis[i][label] = v
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["node", "natural_day", "aqi", "primary", "published", "standard",
                    "edition", "iaqi"])  # fmt: skip
        for (node, day), edition, values in zip(keys, editions, iaqis, strict=True):
            result = std.daily_aqi(values, day, pinned)
            summary.aqi_days += not math.isnan(result.aqi)
            detail = ";".join(f"{k}={_fmt(v)}" for k, v in values.items() if not math.isnan(v))
            w.writerow([node, day.isoformat(), _fmt(result.aqi), "/".join(result.primary),
                        "true" if result.published else "false", std.name, edition.name,
                        detail])  # fmt: skip
    return path
