"""The streaming detector: series registry, hourly means, limits and the episode policy.

Score, decide and act are separate: the kernels compute hourly means and compare them with
limits; the episode policy turns hour-by-hour verdicts into one event stream per episode;
grid decides who is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np

from detect import _kernels
from detect._batch import ReadingBatch
from detect._events import ExceedanceEvent
from detect._hourly import ClosedHours, HourlyMeans
from tianwang.quantities import quantity_table
from tianwang.standards import Limit, StandardError, gb3095

RULE_1H = "1h_mean"


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Args:
    timezone: the county's zone; standards' editions change on local dates.
    pinned_edition: use this edition of GB 3095 whatever the sample date.
    min_hour_minutes: GB 3095-2026 Table 4: >= 45 min of sampling for a valid hour.
    """

    timezone: str = "Asia/Shanghai"
    pinned_edition: str | None = None
    min_hour_minutes: int = 45


@dataclass(slots=True)
class DetectorStats:
    hours_closed: int = 0
    hours_invalid: int = 0
    hours_exceeded: int = 0
    hours_without_edition: int = 0  # sample dates before any edition of the standard
    late_samples: int = 0


@dataclass(slots=True)
class _Episode:
    start_s: int
    peak: float


@dataclass(slots=True)
class _Series:
    node: str
    quantity: str
    grade: int
    unit: str
    episode: _Episode | None = field(default=None)


class Detector:
    """Flags hours whose mean exceeds the GB 3095 1-hour limit of the node's zone grade."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.stats = DetectorStats()
        self._zone = ZoneInfo(self.config.timezone)
        self._hourly = HourlyMeans()
        self._ids: dict[tuple[str, str], int] = {}
        self._series: list[_Series] = []
        self._limits: dict[tuple[str, int, date], Limit | None] = {}
        self._no_edition: set[tuple[str, int, date]] = set()
        if self.config.pinned_edition is not None:
            gb3095().edition(date.today(), self.config.pinned_edition)  # fail now, not mid-stream

    def series_id(self, node: str, quantity: str, zone_class: int = 2) -> int:
        """Index of the (node, quantity) series, registering it on first sight."""
        key = (node, quantity)
        sid = self._ids.get(key)
        if sid is None:
            sid = self._ids[key] = self._hourly.add_series()
            known = quantity_table().quantities.get(quantity)
            self._series.append(_Series(node, quantity, zone_class, known.unit if known else ""))
        return sid

    def update(self, batch: ReadingBatch) -> list[ExceedanceEvent]:
        closed = self._hourly.update(batch)
        self.stats.late_samples = self._hourly.late
        return self._judge(closed)

    def close_until(self, cutoff_s: int) -> list[ExceedanceEvent]:
        """Close every hour that ends by ``cutoff_s`` (end of stream, or a quiet period)."""
        return self._judge(self._hourly.close_until(cutoff_s))

    def _limit(self, sid: int, hour_start_s: int) -> Limit | None:
        """The 1-h limit for the series' zone grade in the edition in force that local day;
        None where there is none (no 1-h limit, or a date before any edition: counted)."""
        s = self._series[sid]
        day = datetime.fromtimestamp(hour_start_s, self._zone).date()
        key = (s.quantity, s.grade, day)
        if key not in self._limits:
            try:
                self._limits[key] = gb3095().limit(
                    s.quantity, "1h", s.grade, day, self.config.pinned_edition
                )
            except StandardError:
                self._limits[key] = None
                self._no_edition.add(key)
        if key in self._no_edition:
            self.stats.hours_without_edition += 1
        return self._limits[key]

    def _judge(self, closed: ClosedHours) -> list[ExceedanceEvent]:
        if not len(closed):
            return []
        limits = [
            self._limit(int(s), int(h))
            for s, h in zip(closed.series, closed.hour_start_s, strict=True)
        ]
        limit_values = np.array([lim.value if lim else np.nan for lim in limits])
        verdicts = _kernels.exceeds(
            closed.mean, closed.minutes, limit_values, self.config.min_hour_minutes
        )
        self.stats.hours_closed += len(closed)
        self.stats.hours_invalid += int(
            np.count_nonzero(closed.minutes < self.config.min_hour_minutes)
        )
        self.stats.hours_exceeded += int(np.count_nonzero(verdicts == 1))
        events = []
        for i in np.flatnonzero(verdicts >= 0):
            event = self._step(
                int(closed.series[i]),
                int(closed.hour_start_s[i]),
                float(closed.mean[i]),
                bool(verdicts[i]),
                limits[i],
            )
            if event:
                events.append(event)
        return events

    def _step(
        self, sid: int, hour_s: int, mean: float, exceeded: bool, limit: Limit | None
    ) -> ExceedanceEvent | None:
        """Episode policy: open on the first exceeding hour, update while it lasts,
        close on the first valid hour within the limit. Invalid hours change nothing."""
        assert limit is not None
        s = self._series[sid]
        if exceeded and s.episode is None:
            s.episode = _Episode(hour_s, mean)
            kind = "open"
        elif exceeded and s.episode is not None:
            s.episode.peak = max(s.episode.peak, mean)
            kind = "update"
        elif s.episode is not None:
            kind = "close"
        else:
            return None
        episode = s.episode
        if kind == "close":
            s.episode = None
        return ExceedanceEvent(
            kind=kind,
            node=s.node,
            quantity=s.quantity,
            rule=RULE_1H,
            hour_start_s=hour_s,
            value=mean,
            limit=limit.value,
            unit=s.unit,
            standard=limit.standard,
            edition=limit.edition,
            clause=limit.clause,
            episode_start_s=episode.start_s,
            peak=episode.peak,
        )
